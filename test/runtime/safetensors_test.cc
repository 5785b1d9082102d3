// Safetensors headers: a real file read back, and every malformed case the
// parser rejects (each checked for its code and for a message that names the
// file and the offending tensor or field).
#include "lorart/io/safetensors.h"

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "lorart/io/mapped_file.h"
#include "test_util.h"

namespace lorart {
namespace {

using testing::BuildSafetensors;
using testing::MakeSafetensors;
using testing::MakeSafetensorsWithLength;
using testing::TempDir;
using testing::TensorSpec;
using testing::WriteFile;

constexpr char kPath[] = "model.safetensors";

Status Parse(const std::string& bytes, SafetensorsHeader* out) {
  return ParseSafetensorsHeader(bytes, bytes.size(), kPath, out);
}

TEST(DTypeTest, NamesSizesAndKinds) {
  struct Case {
    const char* name;
    DType dtype;
    size_t size;
    bool is_float;
  };
  const Case cases[] = {
      {"F64", DType::kF64, 8, true},      {"F32", DType::kF32, 4, true},
      {"F16", DType::kF16, 2, true},      {"BF16", DType::kBF16, 2, true},
      {"I64", DType::kI64, 8, false},     {"I32", DType::kI32, 4, false},
      {"I16", DType::kI16, 2, false},     {"I8", DType::kI8, 1, false},
      {"U8", DType::kU8, 1, false},       {"BOOL", DType::kBool, 1, false},
      {"F8_E4M3", DType::kF8E4M3, 1, true}, {"F8_E5M2", DType::kF8E5M2, 1, true},
      {"U16", DType::kU16, 2, false},     {"U32", DType::kU32, 4, false},
      {"U64", DType::kU64, 8, false},
  };
  for (const Case& c : cases) {
    DType d = DType::kF32;
    ASSERT_TRUE(ParseDType(c.name, &d)) << c.name;
    EXPECT_EQ(d, c.dtype) << c.name;
    EXPECT_STREQ(DTypeName(d), c.name);
    EXPECT_EQ(DTypeSize(d), c.size) << c.name;
    EXPECT_EQ(IsFloatDType(d), c.is_float) << c.name;
  }
  DType d;
  EXPECT_FALSE(ParseDType("Q4", &d));
  EXPECT_FALSE(ParseDType("f32", &d));
  EXPECT_FALSE(ParseDType("", &d));
}

TEST(SafetensorsTest, ReadsARealFileBack) {
  TempDir dir;
  const std::string path = dir.Join("model.safetensors");
  const std::vector<TensorSpec> specs = {
      {"model.embed_tokens.weight", "BF16", {4, 3}, 2},
      {"model.layers.0.self_attn.q_proj.weight", "F32", {3, 3}, 4},
      {"model.norm.weight", "F16", {3}, 2},
      {"step", "I64", {}, 8},
      {"empty", "U8", {0, 5}, 1},
      {"mask", "BOOL", {2}, 1},
  };
  const std::string bytes = BuildSafetensors(specs, {{"format", "pt"}});
  WriteFile(path, bytes);

  SafetensorsHeader h;
  Status s = ReadSafetensorsHeader(path, &h);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(h.path, path);
  EXPECT_EQ(h.file_size, bytes.size());
  EXPECT_EQ(h.header_size % 8, 0u);
  EXPECT_EQ(h.DataOffset(), 8 + h.header_size);
  ASSERT_EQ(h.tensors.size(), specs.size());
  ASSERT_EQ(h.metadata.size(), 1u);
  EXPECT_EQ(h.metadata.at("format"), "pt");
  for (size_t i = 1; i < h.tensors.size(); ++i) {
    EXPECT_LE(h.tensors[i - 1].begin, h.tensors[i].begin);  // sorted by offset
  }

  const TensorInfo* q = h.Find("model.layers.0.self_attn.q_proj.weight");
  ASSERT_NE(q, nullptr);
  EXPECT_EQ(q->dtype, DType::kF32);
  EXPECT_EQ(q->shape, (std::vector<int64_t>{3, 3}));
  EXPECT_EQ(q->begin, 24u);  // after 4x3 BF16
  EXPECT_EQ(q->end, 60u);
  EXPECT_EQ(q->NumElements(), 9);
  EXPECT_EQ(q->ByteSize(), 36u);
  const TensorInfo* step = h.Find("step");
  ASSERT_NE(step, nullptr);
  EXPECT_TRUE(step->shape.empty());
  EXPECT_EQ(step->NumElements(), 1);
  EXPECT_EQ(ShapeToString(step->shape), "[]");
  const TensorInfo* empty = h.Find("empty");
  ASSERT_NE(empty, nullptr);
  EXPECT_EQ(empty->NumElements(), 0);
  EXPECT_EQ(empty->begin, empty->end);
  EXPECT_EQ(ShapeToString(empty->shape), "[0, 5]");
  EXPECT_EQ(h.Find("missing"), nullptr);

  // The data section through a mapping: each tensor's bytes are the pattern
  // BuildSafetensors wrote for it.
  MappedFile file;
  ASSERT_TRUE(file.Open(path).ok());
  ASSERT_EQ(file.size(), bytes.size());
  EXPECT_EQ(std::memcmp(file.data(), bytes.data(), bytes.size()), 0);
  for (size_t t = 0; t < specs.size(); ++t) {
    const TensorInfo* info = h.Find(specs[t].name);
    ASSERT_NE(info, nullptr);
    const uint8_t* p = nullptr;
    ASSERT_TRUE(file.Slice(h.DataOffset() + info->begin, info->ByteSize(), &p).ok());
    for (size_t i = 0; i < info->ByteSize(); ++i) {
      ASSERT_EQ(p[i], static_cast<uint8_t>((t * 31 + i * 7 + 1) & 0xff)) << specs[t].name;
    }
  }
}

TEST(SafetensorsTest, EmptyHeaderWithoutDataIsValid) {
  SafetensorsHeader h;
  Status s = Parse(MakeSafetensors("{}", ""), &h);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_TRUE(h.tensors.empty());
  s = Parse(MakeSafetensors("{\"__metadata__\": null}  ", ""), &h);
  EXPECT_TRUE(s.ok()) << s.ToString();
}

TEST(SafetensorsTest, ZeroSizedTensorsAtBoundariesAreValid) {
  SafetensorsHeader h;
  const std::string header =
      R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
      R"("z0":{"dtype":"F32","shape":[0],"data_offsets":[0,0]},)"
      R"("z8":{"dtype":"F32","shape":[0],"data_offsets":[8,8]}})";
  Status s = Parse(MakeSafetensors(header, std::string(8, 'x')), &h);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(h.tensors.size(), 3u);
}

// --- Length prefix and file-level errors -----------------------------------

TEST(SafetensorsTest, HeaderLengthLargerThanFile) {
  SafetensorsHeader h;
  std::string bytes = MakeSafetensorsWithLength(123456789, "{}", std::string(990, ' '));
  ASSERT_EQ(bytes.size(), 1000u);
  Status s = Parse(bytes, &h);
  EXPECT_EQ(s.code(), StatusCode::kDataLoss);
  EXPECT_EQ(s.message(),
            "model.safetensors: header length 123456789 is larger than the file (1000 bytes)");
}

TEST(SafetensorsTest, HeaderLengthOverTheLimit) {
  SafetensorsHeader h;
  // The file is large enough; the length is not believable.
  std::string bytes = MakeSafetensorsWithLength(kMaxSafetensorsHeaderSize + 1, "{}", "");
  Status s = ParseSafetensorsHeader(bytes, 1ull << 30, kPath, &h);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("model.safetensors: header length 104857601 is larger than the "
                             "limit of 104857600 bytes"),
            std::string::npos)
      << s.message();
  // Larger than both: the file size is what the message says.
  bytes = MakeSafetensorsWithLength(UINT64_MAX, "{}", "");
  s = Parse(bytes, &h);
  EXPECT_EQ(s.code(), StatusCode::kDataLoss);
  EXPECT_NE(s.message().find("header length 18446744073709551615 is larger than the file (10 "
                             "bytes)"),
            std::string::npos)
      << s.message();
}

TEST(SafetensorsTest, FileShorterThanLengthField) {
  SafetensorsHeader h;
  Status s = ParseSafetensorsHeader("abc", 3, kPath, &h);
  EXPECT_EQ(s.code(), StatusCode::kDataLoss);
  EXPECT_NE(s.message().find("model.safetensors: file has 3 bytes"), std::string::npos);
}

TEST(SafetensorsTest, PrefixShorterThanHeaderIsTruncation) {
  SafetensorsHeader h;
  std::string bytes = BuildSafetensors({{"w", "F32", {4}, 4}});
  Status s = ParseSafetensorsHeader(std::string_view(bytes).substr(0, 20), bytes.size(), kPath,
                                    &h);
  EXPECT_EQ(s.code(), StatusCode::kDataLoss);
  EXPECT_NE(s.message().find("model.safetensors: truncated"), std::string::npos) << s.message();
  s = ParseSafetensorsHeader(std::string_view(bytes).substr(0, 5), bytes.size(), kPath, &h);
  EXPECT_EQ(s.code(), StatusCode::kDataLoss);
  s = ParseSafetensorsHeader(bytes, bytes.size() - 1, kPath, &h);  // prefix > file
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
}

TEST(SafetensorsTest, ReadErrorsNameThePath) {
  TempDir dir;
  SafetensorsHeader h;
  Status s = ReadSafetensorsHeader(dir.Join("nope.safetensors"), &h);
  EXPECT_EQ(s.code(), StatusCode::kNotFound);
  EXPECT_NE(s.message().find("nope.safetensors"), std::string::npos);

  s = ReadSafetensorsHeader(dir.path(), &h);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("not a regular file"), std::string::npos) << s.message();

  WriteFile(dir.Join("short.safetensors"), "abcd");
  s = ReadSafetensorsHeader(dir.Join("short.safetensors"), &h);
  EXPECT_EQ(s.code(), StatusCode::kDataLoss);
  EXPECT_NE(s.message().find("short.safetensors: file has 4 bytes"), std::string::npos);

  // A file cut in the middle of its header.
  std::string full = BuildSafetensors({{"w", "F32", {4}, 4}});
  WriteFile(dir.Join("cut.safetensors"), full.substr(0, 30));
  s = ReadSafetensorsHeader(dir.Join("cut.safetensors"), &h);
  EXPECT_EQ(s.code(), StatusCode::kDataLoss);
  EXPECT_NE(s.message().find("cut.safetensors: header length"), std::string::npos) << s.message();

  // A file cut in its data section.
  WriteFile(dir.Join("cut_data.safetensors"), full.substr(0, full.size() - 4));
  s = ReadSafetensorsHeader(dir.Join("cut_data.safetensors"), &h);
  EXPECT_EQ(s.code(), StatusCode::kOutOfRange);
  EXPECT_NE(s.message().find("cut_data.safetensors: tensor 'w'"), std::string::npos)
      << s.message();
}

// --- Malformed headers, one case each ----------------------------------------

struct BadHeader {
  const char* test_name;
  std::string header;     // the JSON text
  size_t data_size;       // bytes after the header
  StatusCode code;
  std::vector<std::string> needles;  // each must appear in the message
};

void PrintTo(const BadHeader& c, std::ostream* os) { *os << c.test_name; }

class BadHeaderTest : public ::testing::TestWithParam<BadHeader> {};

TEST_P(BadHeaderTest, IsRejectedWithANamedMessage) {
  const BadHeader& c = GetParam();
  SafetensorsHeader h;
  Status s = Parse(MakeSafetensors(c.header, std::string(c.data_size, '\0')), &h);
  ASSERT_FALSE(s.ok()) << c.header;
  EXPECT_EQ(s.code(), c.code) << s.ToString();
  EXPECT_EQ(s.message().rfind("model.safetensors: ", 0), 0u) << s.message();
  EXPECT_EQ(s.message().find('\n'), std::string::npos) << s.message();
  for (const std::string& needle : c.needles) {
    EXPECT_NE(s.message().find(needle), std::string::npos)
        << "message: " << s.message() << "\nmissing: " << needle;
  }
}

// A tensor entry with the given fields.
std::string T(const std::string& dtype, const std::string& shape, const std::string& offsets) {
  return R"({"dtype":)" + dtype + R"(,"shape":)" + shape + R"(,"data_offsets":)" + offsets + "}";
}

std::string Deep(int levels) {
  return std::string(static_cast<size_t>(levels), '[') + std::string(static_cast<size_t>(levels), ']');
}

const StatusCode kInvalid = StatusCode::kInvalidArgument;

INSTANTIATE_TEST_SUITE_P(
    Safetensors, BadHeaderTest,
    ::testing::Values(
        BadHeader{"InvalidJson", R"({"w": {"dtype": "F32", "shape": [1])", 0, kInvalid,
                  {"header is not valid JSON", "byte"}},
        BadHeader{"TrailingGarbage", R"({} x)", 0, kInvalid, {"header is not valid JSON"}},
        BadHeader{"InvalidUtf8", "{\"w\xff\": 1}", 0, kInvalid, {"header is not valid JSON"}},
        BadHeader{"NumberOverflow", R"({"w":)" + T(R"("F32")", "[1e400]", "[0,4]") + "}", 4,
                  kInvalid, {"header is not valid JSON", "1e400"}},
        BadHeader{"NotAnObject", R"([1, 2])", 0, kInvalid, {"does not start with '{'"}},
        BadHeader{"Empty", "", 0, kInvalid, {"does not start with '{'"}},
        BadHeader{"LeadingSpace", R"( {})", 0, kInvalid, {"does not start with '{'"}},
        BadHeader{"TooDeep", R"({"w": )" + Deep(100) + "}", 0, kInvalid,
                  {"header nests deeper than 64 levels"}},
        BadHeader{"DuplicateTensor",
                  R"({"w":)" + T(R"("F32")", "[1]", "[0,4]") + R"(,"w":)" +
                      T(R"("F32")", "[1]", "[4,8]") + "}",
                  8, kInvalid, {"has the key 'w' twice"}},
        BadHeader{"DuplicateField",
                  R"({"w":{"dtype":"F32","dtype":"F16","shape":[1],"data_offsets":[0,4]}})", 4,
                  kInvalid, {"key 'dtype' twice in 'w'"}},
        BadHeader{"TensorNotAnObject", R"({"model.norm.weight": [0, 4]})", 4, kInvalid,
                  {"tensor 'model.norm.weight'", "must be an object"}},
        BadHeader{"MissingDtype", R"({"w":{"shape":[1],"data_offsets":[0,4]}})", 4, kInvalid,
                  {"tensor 'w': missing field 'dtype'"}},
        BadHeader{"MissingShape", R"({"w":{"dtype":"F32","data_offsets":[0,4]}})", 4, kInvalid,
                  {"tensor 'w': missing field 'shape'"}},
        BadHeader{"MissingOffsets", R"({"w":{"dtype":"F32","shape":[1]}})", 4, kInvalid,
                  {"tensor 'w': missing field 'data_offsets'"}},
        BadHeader{"UnknownField",
                  R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"scale":2}})", 4,
                  kInvalid, {"tensor 'w': unknown field 'scale'"}},
        BadHeader{"UnknownDtype", R"({"w":)" + T(R"("Q4")", "[1]", "[0,4]") + "}", 4, kInvalid,
                  {"tensor 'w': field 'dtype' \"Q4\" is not a safetensors dtype"}},
        BadHeader{"DtypeNotAString", R"({"w":)" + T("4", "[1]", "[0,4]") + "}", 4, kInvalid,
                  {"tensor 'w': field 'dtype' must be a string"}},
        BadHeader{"UnsupportedDtype", R"({"w":)" + T(R"("F4")", "[2]", "[0,1]") + "}", 1,
                  StatusCode::kUnimplemented, {"tensor 'w': field 'dtype' \"F4\" is not supported"}},
        BadHeader{"ShapeNotAList", R"({"w":)" + T(R"("F32")", "4", "[0,16]") + "}", 16, kInvalid,
                  {"tensor 'w': field 'shape' must be a list"}},
        BadHeader{"ShapeNegative", R"({"w":)" + T(R"("F32")", "[-1,4]", "[0,16]") + "}", 16,
                  kInvalid, {"tensor 'w': field 'shape'", "entry 0 (-1)"}},
        BadHeader{"ShapeFraction", R"({"w":)" + T(R"("F32")", "[2.5]", "[0,8]") + "}", 8,
                  kInvalid, {"tensor 'w': field 'shape'", "entry 0 (2.5)"}},
        BadHeader{"ShapeFloatInteger", R"({"w":)" + T(R"("F32")", "[4,2.0]", "[0,32]") + "}", 32,
                  kInvalid, {"tensor 'w': field 'shape'", "entry 1 (2.0)"}},
        BadHeader{"ShapeString", R"({"w":)" + T(R"("F32")", R"(["4"])", "[0,16]") + "}", 16,
                  kInvalid, {"tensor 'w': field 'shape'", "entry 0 (\"4\")"}},
        BadHeader{"ShapeBeyondInt64",
                  R"({"w":)" + T(R"("U8")", "[9223372036854775808]", "[0,1]") + "}", 1, kInvalid,
                  {"tensor 'w': field 'shape'", "fits in int64"}},
        BadHeader{"ShapeProductOverflow",
                  R"({"w":)" + T(R"("U8")", "[4294967296,4294967296]", "[0,1]") + "}", 1,
                  kInvalid, {"tensor 'w': field 'shape' [4294967296, 4294967296] has more elements"}},
        BadHeader{"ByteSizeOverflow",
                  R"({"w":)" + T(R"("F64")", "[4611686018427387904]", "[0,8]") + "}", 8,
                  kInvalid, {"tensor 'w': dtype F64", "more than 2^64"}},
        BadHeader{"OffsetsBeginAfterEnd",
                  R"({"model.norm.weight":)" + T(R"("F32")", "[1]", "[10,4]") + "}", 16, kInvalid,
                  {"tensor 'model.norm.weight': field 'data_offsets' [10, 4] has begin > end"}},
        BadHeader{"OffsetsOneEntry", R"({"w":)" + T(R"("F32")", "[1]", "[4]") + "}", 4, kInvalid,
                  {"tensor 'w': field 'data_offsets' [4] must be [begin, end]"}},
        BadHeader{"OffsetsThreeEntries", R"({"w":)" + T(R"("F32")", "[1]", "[0,4,8]") + "}", 8,
                  kInvalid, {"tensor 'w': field 'data_offsets'"}},
        BadHeader{"OffsetsNegative", R"({"w":)" + T(R"("F32")", "[1]", "[-4,0]") + "}", 4,
                  kInvalid, {"tensor 'w': field 'data_offsets'"}},
        BadHeader{"OffsetsNotAList", R"({"w":)" + T(R"("F32")", "[1]", R"({"b":0})") + "}", 4,
                  kInvalid, {"tensor 'w': field 'data_offsets'"}},
        BadHeader{"OffsetsPastData", R"({"w":)" + T(R"("F32")", "[4]", "[0,16]") + "}", 8,
                  StatusCode::kOutOfRange,
                  {"tensor 'w': field 'data_offsets' [0, 16) ends past the data section (8 bytes"}},
        BadHeader{"ByteSizeMismatch", R"({"w":)" + T(R"("F32")", "[2,4]", "[0,24]") + "}", 24,
                  kInvalid, {"tensor 'w': dtype F32 x shape [2, 4] needs 32 bytes", "[0, 24)"}},
        BadHeader{"Overlap",
                  R"({"a":)" + T(R"("F32")", "[4]", "[0,16]") + R"(,"b":)" +
                      T(R"("F32")", "[4]", "[8,24]") + "}",
                  24, kInvalid, {"tensor 'a' [0, 16) overlaps tensor 'b' [8, 24)"}},
        BadHeader{"SameOffsets",
                  R"({"a":)" + T(R"("F32")", "[4]", "[0,16]") + R"(,"b":)" +
                      T(R"("I32")", "[4]", "[0,16]") + "}",
                  16, kInvalid, {"tensor 'a' [0, 16) overlaps tensor 'b' [0, 16)"}},
        BadHeader{"ZeroSizedInsideAnother",
                  R"({"a":)" + T(R"("F32")", "[4]", "[0,16]") + R"(,"z":)" +
                      T(R"("F32")", "[0]", "[8,8]") + "}",
                  16, kInvalid, {"tensor 'a' [0, 16) overlaps tensor 'z' [8, 8)"}},
        BadHeader{"HoleBetween",
                  R"({"a":)" + T(R"("F32")", "[4]", "[0,16]") + R"(,"b":)" +
                      T(R"("F32")", "[4]", "[32,48]") + "}",
                  48, kInvalid,
                  {"16 bytes of the data section after tensor 'a' (before tensor 'b') are not "
                   "covered by any tensor"}},
        BadHeader{"HoleAtEnd", R"({"x":)" + T(R"("F32")", "[4]", "[0,16]") + "}", 32, kInvalid,
                  {"16 bytes of the data section after tensor 'x' are not covered by any tensor"}},
        BadHeader{"HoleAtStart", R"({"x":)" + T(R"("F32")", "[4]", "[16,32]") + "}", 32,
                  kInvalid, {"16 bytes at the start of the data section (before tensor 'x')"}},
        BadHeader{"DataWithoutTensors", R"({})", 16, kInvalid,
                  {"the data section has 16 bytes but the header lists no tensors"}},
        BadHeader{"MetadataNotAnObject", R"({"__metadata__": "pt"})", 0, kInvalid,
                  {"field '__metadata__' must be an object"}},
        BadHeader{"MetadataValueNotAString", R"({"__metadata__": {"format": "pt", "step": 3}})",
                  0, kInvalid, {"field '__metadata__': key 'step' must have a string value"}},
        BadHeader{"ControlBytesInNameStayOnOneLine",
                  R"({"a\nb":)" + T(R"("F32")", "[1]", "[0,8]") + "}", 8, kInvalid,
                  {"tensor 'a\\nb'"}}),
    [](const ::testing::TestParamInfo<BadHeader>& info) { return info.param.test_name; });

}  // namespace
}  // namespace lorart
