#include "lorart/io/safetensors.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <set>

#include "lorart/base/strings.h"
#include "lorart/io/json.h"

namespace lorart {
namespace {

struct DTypeEntry {
  const char* name;
  DType dtype;
  size_t size;
  bool is_float;
};

constexpr DTypeEntry kDTypes[] = {
    {"F64", DType::kF64, 8, true},        {"F32", DType::kF32, 4, true},
    {"F16", DType::kF16, 2, true},        {"BF16", DType::kBF16, 2, true},
    {"I64", DType::kI64, 8, false},       {"I32", DType::kI32, 4, false},
    {"I16", DType::kI16, 2, false},       {"I8", DType::kI8, 1, false},
    {"U8", DType::kU8, 1, false},         {"BOOL", DType::kBool, 1, false},
    {"F8_E4M3", DType::kF8E4M3, 1, true}, {"F8_E5M2", DType::kF8E5M2, 1, true},
    {"U16", DType::kU16, 2, false},       {"U32", DType::kU32, 4, false},
    {"U64", DType::kU64, 8, false},
};

// Dtypes of newer safetensors versions that lorart does not handle (sub-byte
// or complex element types).
constexpr const char* kUnsupportedDTypes[] = {"F4", "F6_E2M3", "F6_E3M2", "F8_E8M0", "C64"};

const DTypeEntry& Entry(DType dtype) {
  for (const DTypeEntry& e : kDTypes) {
    if (e.dtype == dtype) return e;
  }
  return kDTypes[1];  // unreachable for valid enum values
}

std::string Offsets(uint64_t begin, uint64_t end) {
  return StrFormat("[%llu, %llu)", static_cast<unsigned long long>(begin),
                   static_cast<unsigned long long>(end));
}

uint64_t ReadLE64(const char* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}

// Reads a JSON integer in [0, max] into *out; false for anything else
// (negative, fractional, float-typed, too large, not a number).
bool GetUnsigned(const Json& v, uint64_t max, uint64_t* out) {
  if (v.is_number_unsigned()) {
    uint64_t x = v.get<uint64_t>();
    if (x > max) return false;
    *out = x;
    return true;
  }
  if (v.is_number_integer()) {  // signed: a negative value
    int64_t x = v.get<int64_t>();
    if (x < 0 || static_cast<uint64_t>(x) > max) return false;
    *out = static_cast<uint64_t>(x);
    return true;
  }
  return false;
}

class HeaderParser {
 public:
  HeaderParser(const std::string& path, uint64_t data_size)
      : path_(path), data_size_(data_size) {}

  Status ParseTensor(const std::string& name, const Json& value, TensorInfo* out);
  Status ParseMetadata(const Json& value, std::map<std::string, std::string>* out);
  Status CheckLayout(std::vector<TensorInfo>* tensors);

 private:
  Status TensorError(const std::string& name, const std::string& what) const {
    return InvalidArgumentError(
        StrFormat("%s: tensor %s: %s", path_.c_str(), Quote(name).c_str(), what.c_str()));
  }

  const std::string& path_;
  uint64_t data_size_;
};

Status HeaderParser::ParseTensor(const std::string& name, const Json& value, TensorInfo* out) {
  if (!value.is_object()) {
    return TensorError(name, StrFormat("must be an object with 'dtype', 'shape' and "
                                       "'data_offsets', not %s",
                                       JsonTypeName(value)));
  }
  for (const auto& item : value.items()) {
    const std::string& field = item.key();
    if (field != "dtype" && field != "shape" && field != "data_offsets") {
      return TensorError(name, StrFormat("unknown field %s (expected 'dtype', 'shape', "
                                         "'data_offsets')",
                                         Quote(field).c_str()));
    }
  }
  for (const char* field : {"dtype", "shape", "data_offsets"}) {
    if (!value.contains(field)) return TensorError(name, StrFormat("missing field '%s'", field));
  }
  out->name = name;

  // dtype
  const Json& dtype = value["dtype"];
  if (!dtype.is_string()) {
    return TensorError(name, StrFormat("field 'dtype' must be a string, not %s",
                                       JsonSnippet(dtype).c_str()));
  }
  const std::string& dtype_name = dtype.get_ref<const std::string&>();
  if (!ParseDType(dtype_name, &out->dtype)) {
    for (const char* unsupported : kUnsupportedDTypes) {
      if (dtype_name == unsupported) {
        return UnimplementedError(StrFormat("%s: tensor %s: field 'dtype' \"%s\" is not supported "
                                            "by lorart",
                                            path_.c_str(), Quote(name).c_str(), unsupported));
      }
    }
    return TensorError(name, StrFormat("field 'dtype' %s is not a safetensors dtype",
                                       JsonSnippet(dtype).c_str()));
  }

  // shape
  const Json& shape = value["shape"];
  if (!shape.is_array()) {
    return TensorError(name, StrFormat("field 'shape' must be a list of non-negative integers, "
                                       "not %s",
                                       JsonSnippet(shape).c_str()));
  }
  out->shape.clear();
  out->shape.reserve(shape.size());
  int64_t elements = 1;
  bool overflow = false;
  for (size_t i = 0; i < shape.size(); ++i) {
    uint64_t dim = 0;
    if (!GetUnsigned(shape[i], static_cast<uint64_t>(INT64_MAX), &dim)) {
      return TensorError(name, StrFormat("field 'shape' %s: entry %zu (%s) is not a "
                                         "non-negative integer that fits in int64",
                                         JsonSnippet(shape).c_str(), i,
                                         JsonSnippet(shape[i]).c_str()));
    }
    out->shape.push_back(static_cast<int64_t>(dim));
    if (__builtin_mul_overflow(elements, static_cast<int64_t>(dim), &elements)) overflow = true;
  }
  // A zero dimension makes any product 0, even after an overflow.
  if (std::find(out->shape.begin(), out->shape.end(), 0) != out->shape.end()) {
    elements = 0;
    overflow = false;
  }
  if (overflow) {
    return TensorError(name, StrFormat("field 'shape' %s has more elements than fit in int64",
                                       ShapeToString(out->shape).c_str()));
  }

  // data_offsets
  const Json& offsets = value["data_offsets"];
  uint64_t begin = 0, end = 0;
  if (!offsets.is_array() || offsets.size() != 2 || !GetUnsigned(offsets[0], UINT64_MAX, &begin) ||
      !GetUnsigned(offsets[1], UINT64_MAX, &end)) {
    return TensorError(name, StrFormat("field 'data_offsets' %s must be [begin, end] with two "
                                       "non-negative integers",
                                       JsonSnippet(offsets).c_str()));
  }
  if (begin > end) {
    return TensorError(name, StrFormat("field 'data_offsets' [%llu, %llu] has begin > end",
                                       static_cast<unsigned long long>(begin),
                                       static_cast<unsigned long long>(end)));
  }
  if (end > data_size_) {
    return OutOfRangeError(StrFormat(
        "%s: tensor %s: field 'data_offsets' %s ends past the data section (%llu bytes; is the "
        "file truncated?)",
        path_.c_str(), Quote(name).c_str(), Offsets(begin, end).c_str(),
        static_cast<unsigned long long>(data_size_)));
  }
  out->begin = begin;
  out->end = end;

  uint64_t expected = 0;
  bool too_big =
      __builtin_mul_overflow(static_cast<uint64_t>(elements), DTypeSize(out->dtype), &expected);
  if (too_big || expected != end - begin) {
    std::string needed =
        too_big ? std::string("more than 2^64")
                : StrFormat("%llu", static_cast<unsigned long long>(expected));
    return TensorError(name, StrFormat("dtype %s x shape %s needs %s bytes but field "
                                       "'data_offsets' %s holds %llu",
                                       DTypeName(out->dtype), ShapeToString(out->shape).c_str(),
                                       needed.c_str(), Offsets(begin, end).c_str(),
                                       static_cast<unsigned long long>(end - begin)));
  }
  return OkStatus();
}

Status HeaderParser::ParseMetadata(const Json& value, std::map<std::string, std::string>* out) {
  // The reference implementation reads an Option<HashMap<String, String>>:
  // null is the same as no metadata.
  if (value.is_null()) return OkStatus();
  if (!value.is_object()) {
    return InvalidArgumentError(StrFormat("%s: field '__metadata__' must be an object of "
                                          "string -> string, not %s",
                                          path_.c_str(), JsonTypeName(value)));
  }
  for (const auto& item : value.items()) {
    if (!item.value().is_string()) {
      return InvalidArgumentError(StrFormat("%s: field '__metadata__': key %s must have a string "
                                            "value, not %s",
                                            path_.c_str(), Quote(item.key()).c_str(),
                                            JsonSnippet(item.value()).c_str()));
    }
    (*out)[item.key()] = item.value().get<std::string>();
  }
  return OkStatus();
}

Status HeaderParser::CheckLayout(std::vector<TensorInfo>* tensors) {
  std::sort(tensors->begin(), tensors->end(), [](const TensorInfo& a, const TensorInfo& b) {
    if (a.begin != b.begin) return a.begin < b.begin;
    if (a.end != b.end) return a.end < b.end;
    return a.name < b.name;
  });
  // Walk in offset order: each tensor must start exactly where the covered
  // prefix of the data section ends (as the reference implementation checks).
  uint64_t covered = 0;
  const TensorInfo* last = nullptr;  // the tensor that ends at `covered`
  for (const TensorInfo& t : *tensors) {
    if (t.begin < covered) {
      return InvalidArgumentError(StrFormat("%s: tensor %s %s overlaps tensor %s %s",
                                            path_.c_str(), Quote(last->name).c_str(),
                                            Offsets(last->begin, last->end).c_str(),
                                            Quote(t.name).c_str(),
                                            Offsets(t.begin, t.end).c_str()));
    }
    if (t.begin > covered) {
      unsigned long long gap = t.begin - covered;
      if (last == nullptr) {
        return InvalidArgumentError(StrFormat("%s: %llu bytes at the start of the data section "
                                              "(before tensor %s) are not covered by any tensor",
                                              path_.c_str(), gap, Quote(t.name).c_str()));
      }
      return InvalidArgumentError(StrFormat("%s: %llu bytes of the data section after tensor %s "
                                            "(before tensor %s) are not covered by any tensor",
                                            path_.c_str(), gap, Quote(last->name).c_str(),
                                            Quote(t.name).c_str()));
    }
    if (t.end > covered || last == nullptr) {
      covered = t.end;
      last = &t;
    }
  }
  if (covered < data_size_) {
    unsigned long long gap = data_size_ - covered;
    if (last == nullptr) {
      return InvalidArgumentError(StrFormat("%s: the data section has %llu bytes but the header "
                                            "lists no tensors",
                                            path_.c_str(), gap));
    }
    return InvalidArgumentError(StrFormat("%s: %llu bytes of the data section after tensor %s "
                                          "are not covered by any tensor",
                                          path_.c_str(), gap, Quote(last->name).c_str()));
  }
  return OkStatus();
}

Status Errno(const std::string& path, const char* what) {
  int err = errno;
  std::string message = StrFormat("%s: %s: %s", path.c_str(), what, std::strerror(err));
  if (err == ENOENT) return NotFoundError(message);
  return InvalidArgumentError(message);
}

// Reads exactly `size` bytes at `offset`.
Status PreadAll(int fd, const std::string& path, uint64_t offset, size_t size, char* out) {
  size_t done = 0;
  while (done < size) {
    ssize_t n = ::pread(fd, out + done, size - done, static_cast<off_t>(offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return Errno(path, "read failed");
    }
    if (n == 0) {
      return DataLossError(StrFormat("%s: file ended after %llu bytes while reading the header",
                                     path.c_str(),
                                     static_cast<unsigned long long>(offset + done)));
    }
    done += static_cast<size_t>(n);
  }
  return OkStatus();
}

// Opens `path` as a regular file for reading; *size gets its size.
Status OpenRegularFile(const std::string& path, int* fd, uint64_t* size) {
  *fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (*fd < 0) return Errno(path, "cannot open");
  struct stat st;
  if (::fstat(*fd, &st) != 0) {
    Status s = Errno(path, "cannot stat");
    ::close(*fd);
    return s;
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(*fd);
    return InvalidArgumentError(StrFormat("%s: not a regular file%s", path.c_str(),
                                          S_ISDIR(st.st_mode) ? " (a directory)" : ""));
  }
  *size = static_cast<uint64_t>(st.st_size);
  return OkStatus();
}

bool IsRegularFile(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

// A shard name from an index must name a file in the model directory.
bool IsPlainFileName(const std::string& name) {
  return !name.empty() && name != "." && name != ".." &&
         name.find_first_of(std::string("/\\\0", 3)) == std::string::npos;
}

}  // namespace

bool ParseDType(std::string_view name, DType* out) {
  for (const DTypeEntry& e : kDTypes) {
    if (name == e.name) {
      *out = e.dtype;
      return true;
    }
  }
  return false;
}

const char* DTypeName(DType dtype) { return Entry(dtype).name; }
size_t DTypeSize(DType dtype) { return Entry(dtype).size; }
bool IsFloatDType(DType dtype) { return Entry(dtype).is_float; }

int64_t TensorInfo::NumElements() const {
  int64_t n = 1;
  for (int64_t d : shape) {
    // Validated headers never overflow; saturate rather than wrap otherwise.
    if (__builtin_mul_overflow(n, d, &n)) return INT64_MAX;
  }
  return n;
}

std::string ShapeToString(const std::vector<int64_t>& shape) {
  std::string out = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) out += ", ";
    out += std::to_string(shape[i]);
  }
  return out + "]";
}

const TensorInfo* SafetensorsHeader::Find(std::string_view name) const {
  for (const TensorInfo& t : tensors) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

Status ParseSafetensorsHeader(std::string_view prefix, uint64_t file_size,
                              const std::string& path, SafetensorsHeader* out) {
  *out = SafetensorsHeader();
  out->path = path;
  out->file_size = file_size;
  const char* p = path.c_str();
  if (prefix.size() > file_size) {
    return InvalidArgumentError(StrFormat("%s: %zu bytes given but the file has %llu", p,
                                          prefix.size(),
                                          static_cast<unsigned long long>(file_size)));
  }
  if (file_size < 8) {
    return DataLossError(StrFormat("%s: file has %llu bytes, fewer than the 8-byte header length",
                                   p, static_cast<unsigned long long>(file_size)));
  }
  if (prefix.size() < 8) {
    return DataLossError(StrFormat("%s: truncated: %zu bytes given, fewer than the 8-byte header "
                                   "length",
                                   p, prefix.size()));
  }
  const uint64_t n = ReadLE64(prefix.data());
  if (n > file_size - 8) {
    return DataLossError(StrFormat("%s: header length %llu is larger than the file (%llu bytes)", p,
                                   static_cast<unsigned long long>(n),
                                   static_cast<unsigned long long>(file_size)));
  }
  if (n > kMaxSafetensorsHeaderSize) {
    return InvalidArgumentError(StrFormat("%s: header length %llu is larger than the limit of "
                                          "%llu bytes",
                                          p, static_cast<unsigned long long>(n),
                                          static_cast<unsigned long long>(
                                              kMaxSafetensorsHeaderSize)));
  }
  if (prefix.size() - 8 < n) {
    return DataLossError(StrFormat("%s: truncated: header length is %llu but only %zu header "
                                   "bytes were given",
                                   p, static_cast<unsigned long long>(n), prefix.size() - 8));
  }
  out->header_size = n;
  std::string_view text = prefix.substr(8, static_cast<size_t>(n));
  if (text.empty() || text[0] != '{') {
    return InvalidArgumentError(StrFormat("%s: header does not start with '{'%s", p,
                                          text.empty() ? " (it is empty)" : ""));
  }
  Json root;
  LORA_RETURN_IF_ERROR(ParseJson(text, path, "header", &root));
  if (!root.is_object()) {
    return InvalidArgumentError(StrFormat("%s: header must be a JSON object, not %s", p,
                                          JsonTypeName(root)));
  }
  HeaderParser parser(path, out->DataSize());
  out->tensors.reserve(root.size());
  for (const auto& item : root.items()) {
    if (item.key() == "__metadata__") {
      LORA_RETURN_IF_ERROR(parser.ParseMetadata(item.value(), &out->metadata));
      continue;
    }
    TensorInfo info;
    LORA_RETURN_IF_ERROR(parser.ParseTensor(item.key(), item.value(), &info));
    out->tensors.push_back(std::move(info));
  }
  return parser.CheckLayout(&out->tensors);
}

Status ReadSafetensorsHeader(const std::string& path, SafetensorsHeader* out) {
  *out = SafetensorsHeader();
  out->path = path;
  int fd = -1;
  uint64_t file_size = 0;
  LORA_RETURN_IF_ERROR(OpenRegularFile(path, &fd, &file_size));
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};

  if (file_size < 8) {
    return DataLossError(StrFormat("%s: file has %llu bytes, fewer than the 8-byte header length",
                                   path.c_str(), static_cast<unsigned long long>(file_size)));
  }
  char length[8];
  LORA_RETURN_IF_ERROR(PreadAll(fd, path, 0, sizeof(length), length));
  uint64_t n = ReadLE64(length);
  // A length past the file or the limit is reported by ParseSafetensorsHeader
  // from the 8 length bytes alone: read nothing more.
  uint64_t to_read = (n <= file_size - 8 && n <= kMaxSafetensorsHeaderSize) ? n : 0;
  std::string prefix(8 + static_cast<size_t>(to_read), '\0');
  std::memcpy(prefix.data(), length, 8);
  LORA_RETURN_IF_ERROR(PreadAll(fd, path, 8, static_cast<size_t>(to_read), prefix.data() + 8));
  return ParseSafetensorsHeader(prefix, file_size, path, out);
}

Status ReadSafetensorsIndex(const std::string& path, SafetensorsIndex* out) {
  *out = SafetensorsIndex();
  out->path = path;
  int fd = -1;
  uint64_t file_size = 0;
  LORA_RETURN_IF_ERROR(OpenRegularFile(path, &fd, &file_size));
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  if (file_size > kMaxSafetensorsHeaderSize) {
    return InvalidArgumentError(StrFormat("%s: index is %llu bytes, larger than the limit of %llu",
                                          path.c_str(), static_cast<unsigned long long>(file_size),
                                          static_cast<unsigned long long>(
                                              kMaxSafetensorsHeaderSize)));
  }
  std::string text(static_cast<size_t>(file_size), '\0');
  LORA_RETURN_IF_ERROR(PreadAll(fd, path, 0, text.size(), text.data()));

  const char* p = path.c_str();
  Json root;
  LORA_RETURN_IF_ERROR(ParseJson(text, path, "index", &root));
  if (!root.is_object()) {
    return InvalidArgumentError(StrFormat("%s: index must be a JSON object, not %s", p,
                                          JsonTypeName(root)));
  }
  if (root.contains("metadata") && !root["metadata"].is_object() && !root["metadata"].is_null()) {
    return InvalidArgumentError(StrFormat("%s: field 'metadata' must be an object, not %s", p,
                                          JsonTypeName(root["metadata"])));
  }
  if (!root.contains("weight_map")) {
    return InvalidArgumentError(StrFormat("%s: missing field 'weight_map'", p));
  }
  const Json& weight_map = root["weight_map"];
  if (!weight_map.is_object()) {
    return InvalidArgumentError(StrFormat("%s: field 'weight_map' must be an object of tensor name "
                                          "-> shard file name, not %s",
                                          p, JsonTypeName(weight_map)));
  }
  if (weight_map.empty()) {
    return InvalidArgumentError(StrFormat("%s: field 'weight_map' is empty", p));
  }
  for (const auto& item : weight_map.items()) {
    if (!item.value().is_string()) {
      return InvalidArgumentError(StrFormat("%s: field 'weight_map': tensor %s must map to a shard "
                                            "file name, not %s",
                                            p, Quote(item.key()).c_str(),
                                            JsonSnippet(item.value()).c_str()));
    }
    const std::string& shard = item.value().get_ref<const std::string&>();
    if (!IsPlainFileName(shard)) {
      return InvalidArgumentError(StrFormat("%s: field 'weight_map': tensor %s maps to %s, which "
                                            "is not a plain file name in the model directory",
                                            p, Quote(item.key()).c_str(), Quote(shard).c_str()));
    }
    out->weight_map[item.key()] = shard;
  }
  return OkStatus();
}

const TensorInfo* SafetensorsModel::Find(std::string_view name,
                                         const SafetensorsHeader** shard) const {
  auto it = by_name.find(std::string(name));
  if (it == by_name.end()) return nullptr;
  const SafetensorsHeader& header = shards[it->second.first];
  if (shard != nullptr) *shard = &header;
  return &header.tensors[it->second.second];
}

Status OpenSafetensorsModelHeaders(const std::string& dir, SafetensorsModel* out) {
  *out = SafetensorsModel();
  struct stat st;
  if (::stat(dir.c_str(), &st) != 0) return Errno(dir, "cannot open model directory");
  if (!S_ISDIR(st.st_mode)) {
    return InvalidArgumentError(StrFormat("%s: not a directory (expected a model directory with "
                                          "%s or %s)",
                                          dir.c_str(), kSafetensorsSingleFile,
                                          kSafetensorsIndexFile));
  }

  const std::string single = JoinPath(dir, kSafetensorsSingleFile);
  if (IsRegularFile(single)) {
    SafetensorsHeader header;
    LORA_RETURN_IF_ERROR(ReadSafetensorsHeader(single, &header));
    for (size_t i = 0; i < header.tensors.size(); ++i) {
      out->by_name[header.tensors[i].name] = {0, i};
    }
    out->shards.push_back(std::move(header));
    return OkStatus();
  }

  const std::string index_path = JoinPath(dir, kSafetensorsIndexFile);
  if (!IsRegularFile(index_path)) {
    std::string hint;
    if (IsRegularFile(JoinPath(dir, "pytorch_model.bin")) ||
        IsRegularFile(JoinPath(dir, "pytorch_model.bin.index.json"))) {
      hint = " (found pytorch_model.bin: convert the checkpoint to safetensors)";
    }
    return NotFoundError(StrFormat("no %s or %s in %s%s", kSafetensorsSingleFile,
                                   kSafetensorsIndexFile, dir.c_str(), hint.c_str()));
  }
  SafetensorsIndex index;
  LORA_RETURN_IF_ERROR(ReadSafetensorsIndex(index_path, &index));

  // Shards in name order ("model-00001-of-00004.safetensors", ...); the first
  // tensor mapped to each is named in a missing-shard message.
  std::map<std::string, std::string> shard_names;  // shard -> first tensor
  for (const auto& [tensor, shard] : index.weight_map) shard_names.emplace(shard, tensor);
  std::map<std::string, size_t> shard_number;
  for (const auto& [shard, first_tensor] : shard_names) {
    const std::string shard_path = JoinPath(dir, shard);
    SafetensorsHeader header;
    Status s = ReadSafetensorsHeader(shard_path, &header);
    if (s.code() == StatusCode::kNotFound) {
      return NotFoundError(StrFormat("%s: shard %s (holding tensor %s) does not exist: %s",
                                     index_path.c_str(), Quote(shard).c_str(),
                                     Quote(first_tensor).c_str(), shard_path.c_str()));
    }
    LORA_RETURN_IF_ERROR(std::move(s));
    shard_number[shard] = out->shards.size();
    out->shards.push_back(std::move(header));
  }

  // Every tensor of every listed shard, each in one shard only.
  for (size_t s = 0; s < out->shards.size(); ++s) {
    const SafetensorsHeader& header = out->shards[s];
    for (size_t i = 0; i < header.tensors.size(); ++i) {
      auto [it, inserted] = out->by_name.emplace(header.tensors[i].name, std::make_pair(s, i));
      if (!inserted) {
        return InvalidArgumentError(StrFormat(
            "%s: tensor %s is in two shards: %s and %s", index_path.c_str(),
            Quote(header.tensors[i].name).c_str(),
            out->shards[it->second.first].path.c_str(), header.path.c_str()));
      }
    }
  }
  // Every indexed tensor where the index says it is.
  for (const auto& [tensor, shard] : index.weight_map) {
    auto it = out->by_name.find(tensor);
    if (it == out->by_name.end()) {
      return NotFoundError(StrFormat("%s: tensor %s is mapped to shard %s but is not in it",
                                     index_path.c_str(), Quote(tensor).c_str(),
                                     Quote(shard).c_str()));
    }
    if (it->second.first != shard_number[shard]) {
      return InvalidArgumentError(StrFormat(
          "%s: tensor %s is mapped to shard %s but is in %s", index_path.c_str(),
          Quote(tensor).c_str(), Quote(shard).c_str(),
          out->shards[it->second.first].path.c_str()));
    }
  }
  return OkStatus();
}

}  // namespace lorart
