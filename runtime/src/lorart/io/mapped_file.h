// A read-only memory-mapped file: how base weights are bound without copies.
#ifndef LORART_IO_MAPPED_FILE_H_
#define LORART_IO_MAPPED_FILE_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "lorart/base/status.h"

namespace lorart {

class MappedFile {
 public:
  MappedFile() = default;
  ~MappedFile();
  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  // Maps the whole regular file at `path` read-only (closing any previous
  // mapping). An empty file maps to data() == nullptr, size() == 0.
  Status Open(const std::string& path);
  void Close();

  bool is_open() const { return open_; }
  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  std::string_view view() const {
    return std::string_view(reinterpret_cast<const char*>(data_), size_);
  }
  const std::string& path() const { return path_; }

  // Bytes [offset, offset + length) of the file, or OUT_OF_RANGE naming the
  // path when they are not all inside it.
  Status Slice(uint64_t offset, uint64_t length, const uint8_t** out) const;

  // Drops the resident pages of [p, p + length) (a range of this mapping)
  // from the process, from the page holding p up to the last page that
  // ends inside the range: a reader done with a range gives its memory back
  // (a later read faults the file's pages in again). Advisory; ranges
  // outside the mapping are ignored.
  void Release(const uint8_t* p, size_t length) const;

 private:
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  bool open_ = false;
};

}  // namespace lorart

#endif  // LORART_IO_MAPPED_FILE_H_
