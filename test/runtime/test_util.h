// Helpers for the runtime tests: building safetensors files in memory and in
// temporary directories.
#ifndef LORART_TEST_RUNTIME_TEST_UTIL_H_
#define LORART_TEST_RUNTIME_TEST_UTIL_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace lorart {
namespace testing {

// 8-byte little-endian length of `header`, `header`, then `data`.
std::string MakeSafetensors(const std::string& header, const std::string& data);
// The same with an explicit length field (which may disagree with `header`).
std::string MakeSafetensorsWithLength(uint64_t length, const std::string& header,
                                      const std::string& data);

struct TensorSpec {
  std::string name;
  std::string dtype;  // "F32", ...
  std::vector<int64_t> shape;
  size_t element_size;  // bytes per element for the data section
};

// A valid file: tensors laid out back to back in the given order, data bytes
// a pattern that depends on the tensor's index and the byte position, the
// header padded with spaces to a multiple of 8 (as the reference writer does).
std::string BuildSafetensors(const std::vector<TensorSpec>& tensors,
                             const std::map<std::string, std::string>& metadata = {});

// A fresh directory under the test temp dir, removed with its contents.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string Join(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

void WriteFile(const std::string& path, const std::string& bytes);

}  // namespace testing
}  // namespace lorart

#endif  // LORART_TEST_RUNTIME_TEST_UTIL_H_
