#include "lorart/io/safetensors_write.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <set>

#include <nlohmann/json.hpp>

namespace lorart {

namespace {

// Writes all of `data` to fd; a short write (disk full) is an error.
Status WriteAll(int fd, const void* data, size_t size, const std::string& path) {
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    ssize_t n = ::write(fd, p, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      return UnavailableError(StrFormat("%s: write failed: %s", path.c_str(), std::strerror(errno)));
    }
    p += n;
    size -= static_cast<size_t>(n);
  }
  return OkStatus();
}

// Runs `write` on a temporary file next to `path` and renames it into place.
template <typename F>
Status WriteThroughTemp(const std::string& path, F write) {
  std::string tmp = path + ".tmp." + std::to_string(::getpid());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0)
    return UnavailableError(StrFormat("%s: cannot create: %s", tmp.c_str(), std::strerror(errno)));
  Status st = write(fd, tmp);
  if (st.ok() && ::fsync(fd) != 0)
    st = UnavailableError(StrFormat("%s: fsync failed: %s", tmp.c_str(), std::strerror(errno)));
  if (::close(fd) != 0 && st.ok())
    st = UnavailableError(StrFormat("%s: close failed: %s", tmp.c_str(), std::strerror(errno)));
  if (st.ok() && std::rename(tmp.c_str(), path.c_str()) != 0)
    st = UnavailableError(StrFormat("%s: cannot rename to %s: %s", tmp.c_str(), path.c_str(),
                                    std::strerror(errno)));
  if (!st.ok()) ::unlink(tmp.c_str());
  return st;
}

}  // namespace

Status WriteFileAtomically(const std::string& path, const std::string& contents) {
  return WriteThroughTemp(path, [&](int fd, const std::string& tmp) {
    return WriteAll(fd, contents.data(), contents.size(), tmp);
  });
}

Status WriteSafetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                        const std::map<std::string, std::string>& metadata) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::set<std::string> names;
  uint64_t offset = 0;
  std::vector<uint64_t> sizes;
  for (const TensorToWrite& t : tensors) {
    if (!names.insert(t.name).second)
      return InvalidArgumentError(StrFormat("%s: tensor '%s' written twice", path.c_str(), t.name.c_str()));
    uint64_t n = 1;
    for (int64_t d : t.shape) n *= static_cast<uint64_t>(d);
    uint64_t bytes = n * DTypeSize(t.dtype);
    header[t.name] = {{"dtype", DTypeName(t.dtype)},
                      {"shape", t.shape},
                      {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
    sizes.push_back(bytes);
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  uint64_t len = text.size();
  return WriteThroughTemp(path, [&](int fd, const std::string& tmp) -> Status {
    unsigned char le[8];
    for (int i = 0; i < 8; ++i) le[i] = static_cast<unsigned char>(len >> (8 * i));
    LORA_RETURN_IF_ERROR(WriteAll(fd, le, 8, tmp));
    LORA_RETURN_IF_ERROR(WriteAll(fd, text.data(), text.size(), tmp));
    for (size_t i = 0; i < tensors.size(); ++i)
      LORA_RETURN_IF_ERROR(WriteAll(fd, tensors[i].data, sizes[i], tmp));
    return OkStatus();
  });
}

}  // namespace lorart
