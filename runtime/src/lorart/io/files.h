// Directories and whole files: what the trainer (checkpoints), the session
// (adapters, models) and merging (model directories) share.
#ifndef LORART_IO_FILES_H_
#define LORART_IO_FILES_H_

#include <string>

#include "lorart/base/status.h"

namespace lorart {

// Creates `dir` and its missing parents (like mkdir -p).
Status MakeDirs(const std::string& dir);
// Removes `path` and everything below it; OK when it does not exist.
Status RemoveTree(const std::string& path);
bool PathExists(const std::string& path);
// The whole file; NotFound naming it when it cannot be read.
StatusOr<std::string> ReadWholeFile(const std::string& path);

}  // namespace lorart

#endif  // LORART_IO_FILES_H_
