// Safetensors: header parsing and validation, memory-mapped tensor access.
// Format: 8-byte little-endian header length N, N bytes of JSON
// {"name": {"dtype": "BF16", "shape": [..], "data_offsets": [b, e]}, ...,
//  "__metadata__": {"k": "v"}}, then the data section; offsets are relative
// to the start of the data section.
#ifndef LORART_IO_SAFETENSORS_H_
#define LORART_IO_SAFETENSORS_H_

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "lorart/base/status.h"

namespace lorart {

// Every dtype of the safetensors format with a whole number of bytes per
// element. (F4, F6_E2M3, F6_E3M2, F8_E8M0 and C64 are recognized by the parser
// and rejected as UNIMPLEMENTED.)
enum class DType { kF64, kF32, kF16, kBF16, kI64, kI32, kI16, kI8, kU8, kBool, kF8E4M3, kF8E5M2,
                   kU16, kU32, kU64 };

// "F32" -> kF32 ...; false on an unknown name.
bool ParseDType(std::string_view name, DType* out);
const char* DTypeName(DType dtype);  // "F32", "BF16", ...
size_t DTypeSize(DType dtype);        // bytes per element
bool IsFloatDType(DType dtype);       // F64/F32/F16/BF16/F8*

struct TensorInfo {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  uint64_t begin = 0;  // offsets in the data section
  uint64_t end = 0;
  int64_t NumElements() const;  // product of shape; 1 for a scalar
  uint64_t ByteSize() const { return end - begin; }
};

// "[2, 4]"; "[]" for a scalar.
std::string ShapeToString(const std::vector<int64_t>& shape);

struct SafetensorsHeader {
  std::string path;                            // for messages
  uint64_t header_size = 0;                    // N
  uint64_t file_size = 0;
  std::vector<TensorInfo> tensors;             // sorted by begin offset
  std::map<std::string, std::string> metadata; // "__metadata__"
  const TensorInfo* Find(std::string_view name) const;
  uint64_t DataOffset() const { return 8 + header_size; }
  uint64_t DataSize() const { return file_size - DataOffset(); }
};

// Largest header we accept (the reference implementation's limit).
constexpr uint64_t kMaxSafetensorsHeaderSize = 100u << 20;

// Parses and validates a header given the first `prefix.size()` bytes of a
// file whose total size is `file_size`. `prefix` must hold at least the 8
// length bytes and the whole JSON header, or an error says the file is
// truncated. Every check names `path` and the offending tensor/field:
// length larger than the file or the limit, invalid JSON, a non-object,
// unknown dtype, a shape that is not a list of non-negative integers,
// data_offsets that are not [begin, end] with begin <= end, an end past the
// data section, a byte size that disagrees with dtype x shape, overlapping
// tensors, holes between tensors or after the last one.
Status ParseSafetensorsHeader(std::string_view prefix, uint64_t file_size,
                              const std::string& path, SafetensorsHeader* out);

// Reads only the header of the file at `path` (never the tensor data).
Status ReadSafetensorsHeader(const std::string& path, SafetensorsHeader* out);

// model.safetensors.index.json: {"metadata": {...}, "weight_map": {name: file}}.
struct SafetensorsIndex {
  std::string path;
  std::map<std::string, std::string> weight_map;  // tensor -> shard file name
};
Status ReadSafetensorsIndex(const std::string& path, SafetensorsIndex* out);

// A model's tensors across one file or the shards of an index: headers of
// every shard read and each tensor named in the index checked to be present
// in its shard (and nowhere else).
struct SafetensorsModel {
  std::vector<SafetensorsHeader> shards;
  // tensor name -> (shard index, tensor index within that shard)
  std::map<std::string, std::pair<size_t, size_t>> by_name;
  const TensorInfo* Find(std::string_view name, const SafetensorsHeader** shard = nullptr) const;
  size_t NumTensors() const { return by_name.size(); }
};

// File names OpenSafetensorsModelHeaders looks for.
constexpr const char kSafetensorsSingleFile[] = "model.safetensors";
constexpr const char kSafetensorsIndexFile[] = "model.safetensors.index.json";
// `dir` holds model.safetensors or model.safetensors.index.json + shards.
Status OpenSafetensorsModelHeaders(const std::string& dir, SafetensorsModel* out);

}  // namespace lorart

#endif  // LORART_IO_SAFETENSORS_H_
