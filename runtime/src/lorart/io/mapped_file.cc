#include "lorart/io/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

namespace lorart {

MappedFile::~MappedFile() { Close(); }

MappedFile::MappedFile(MappedFile&& other) noexcept
    : path_(std::move(other.path_)), data_(other.data_), size_(other.size_), open_(other.open_) {
  other.data_ = nullptr;
  other.size_ = 0;
  other.open_ = false;
}

MappedFile& MappedFile::operator=(MappedFile&& other) noexcept {
  if (this != &other) {
    Close();
    path_ = std::move(other.path_);
    data_ = other.data_;
    size_ = other.size_;
    open_ = other.open_;
    other.data_ = nullptr;
    other.size_ = 0;
    other.open_ = false;
  }
  return *this;
}

void MappedFile::Close() {
  if (data_ != nullptr) ::munmap(const_cast<uint8_t*>(data_), size_);
  data_ = nullptr;
  size_ = 0;
  open_ = false;
}

Status MappedFile::Open(const std::string& path) {
  Close();
  path_ = path;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    std::string message = StrFormat("%s: cannot open: %s", path.c_str(), std::strerror(err));
    return err == ENOENT ? NotFoundError(message) : InvalidArgumentError(message);
  }
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    return InvalidArgumentError(StrFormat("%s: cannot stat: %s", path.c_str(), std::strerror(err)));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return InvalidArgumentError(StrFormat("%s: not a regular file", path.c_str()));
  }
  size_t size = static_cast<size_t>(st.st_size);
  if (size == 0) {
    ::close(fd);
    open_ = true;
    return OkStatus();
  }
  void* p = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  int err = errno;
  ::close(fd);  // the mapping keeps the file alive
  if (p == MAP_FAILED) {
    return InvalidArgumentError(StrFormat("%s: mmap of %zu bytes failed: %s", path.c_str(), size,
                                          std::strerror(err)));
  }
  data_ = static_cast<const uint8_t*>(p);
  size_ = size;
  open_ = true;
  return OkStatus();
}

Status MappedFile::Slice(uint64_t offset, uint64_t length, const uint8_t** out) const {
  if (offset > size_ || length > size_ - offset) {
    return OutOfRangeError(StrFormat("%s: bytes [%llu, +%llu) are outside the file (%zu bytes)",
                                     path_.c_str(), static_cast<unsigned long long>(offset),
                                     static_cast<unsigned long long>(length), size_));
  }
  *out = data_ != nullptr ? data_ + offset : nullptr;
  return OkStatus();
}

void MappedFile::Release(const uint8_t* p, size_t length) const {
  if (!open_ || data_ == nullptr || p < data_ || p + length > data_ + size_ || length == 0) return;
  static const uintptr_t page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  const uintptr_t begin = reinterpret_cast<uintptr_t>(p) / page * page;
  const uintptr_t end = (reinterpret_cast<uintptr_t>(p) + length) / page * page;
  if (end <= begin) return;
  ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);
}

}  // namespace lorart
