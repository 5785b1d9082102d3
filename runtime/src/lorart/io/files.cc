#include "lorart/io/files.h"

#include <ftw.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

namespace lorart {

Status MakeDirs(const std::string& dir) {
  std::string path;
  for (size_t i = 0; i <= dir.size(); ++i) {
    if (i == dir.size() || dir[i] == '/') {
      if (!path.empty() && ::mkdir(path.c_str(), 0755) != 0 && errno != EEXIST)
        return UnavailableError(StrFormat("%s: cannot create directory: %s", path.c_str(),
                                          std::strerror(errno)));
    }
    if (i < dir.size()) path.push_back(dir[i]);
  }
  return OkStatus();
}

Status RemoveTree(const std::string& path) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) return OkStatus();
  auto remove_one = [](const char* p, const struct stat*, int, struct FTW*) {
    return std::remove(p) == 0 ? 0 : -1;
  };
  if (::nftw(path.c_str(), remove_one, 16, FTW_DEPTH | FTW_PHYS) != 0)
    return UnavailableError(StrFormat("%s: cannot remove: %s", path.c_str(), std::strerror(errno)));
  return OkStatus();
}

bool PathExists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

StatusOr<std::string> ReadWholeFile(const std::string& path) {
  // A directory opens like a file and reads as nothing: refused by name.
  struct stat st;
  if (::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode))
    return InvalidArgumentError(path + ": is a directory, not a file");
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFoundError(path + ": cannot be read");
  std::stringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return InvalidArgumentError(path + ": read failed");
  return ss.str();
}

}  // namespace lorart
