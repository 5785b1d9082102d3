#include "lorart/base/status.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "lorart/base/strings.h"

namespace lorart {
namespace {

TEST(StatusTest, DefaultIsOk) {
  Status s;
  EXPECT_TRUE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kOk);
  EXPECT_EQ(s.message(), "");
  EXPECT_EQ(s.ToString(), "OK");
  EXPECT_TRUE(OkStatus().ok());
  // OK is a null pointer: no bigger than one.
  EXPECT_EQ(sizeof(Status), sizeof(void*));
}

TEST(StatusTest, OkCodeWithMessageIsStillOk) {
  Status s(StatusCode::kOk, "ignored");
  EXPECT_TRUE(s.ok());
  EXPECT_EQ(s.message(), "");
}

TEST(StatusTest, ConstructorsSetCodes) {
  struct Case {
    Status status;
    StatusCode code;
    const char* name;
  };
  Case cases[] = {
      {InvalidArgumentError("m"), StatusCode::kInvalidArgument, "INVALID_ARGUMENT"},
      {NotFoundError("m"), StatusCode::kNotFound, "NOT_FOUND"},
      {OutOfRangeError("m"), StatusCode::kOutOfRange, "OUT_OF_RANGE"},
      {DataLossError("m"), StatusCode::kDataLoss, "DATA_LOSS"},
      {UnimplementedError("m"), StatusCode::kUnimplemented, "UNIMPLEMENTED"},
      {InternalError("m"), StatusCode::kInternal, "INTERNAL"},
      {UnavailableError("m"), StatusCode::kUnavailable, "UNAVAILABLE"},
  };
  for (const Case& c : cases) {
    EXPECT_FALSE(c.status.ok());
    EXPECT_EQ(c.status.code(), c.code);
    EXPECT_STREQ(StatusCodeName(c.code), c.name);
    EXPECT_EQ(c.status.message(), "m");
    EXPECT_EQ(c.status.ToString(), std::string(c.name) + ": m");
  }
  EXPECT_STREQ(StatusCodeName(StatusCode::kOk), "OK");
}

TEST(StatusTest, ContextChainsOutermostFirst) {
  Status s = OutOfRangeError("offset out of range");
  s.WithContext("tensor 'x'").WithContext("while loading a.bin");
  EXPECT_EQ(s.message(), "while loading a.bin: tensor 'x': offset out of range");
  EXPECT_EQ(s.code(), StatusCode::kOutOfRange);
  EXPECT_EQ(s.ToString(), "OUT_OF_RANGE: while loading a.bin: tensor 'x': offset out of range");
}

TEST(StatusTest, ContextOnOkIsNoOp) {
  Status s;
  s.WithContext("while doing nothing");
  EXPECT_TRUE(s.ok());
  EXPECT_EQ(s.message(), "");
}

TEST(StatusTest, CopyIsDeepAndMoveEmptiesSource) {
  Status a = NotFoundError("x");
  Status b = a;
  b.WithContext("ctx");
  EXPECT_EQ(a.message(), "x");
  EXPECT_EQ(b.message(), "ctx: x");
  Status c;
  c = b;
  EXPECT_EQ(c.message(), "ctx: x");
  c = Status();
  EXPECT_TRUE(c.ok());
  Status d = std::move(b);
  EXPECT_EQ(d.code(), StatusCode::kNotFound);
  Status& self = d;
  d = self;  // self-assignment keeps the value
  EXPECT_EQ(d.message(), "ctx: x");
}

Status Fails() { return DataLossError("truncated"); }
Status Succeeds() { return OkStatus(); }

Status ReturnIfErrorWithContext(const char* path, int* reached) {
  LORA_RETURN_IF_ERROR(Succeeds(), "never %s", "shown");
  ++*reached;
  LORA_RETURN_IF_ERROR(Fails(), "while loading %s", path);
  ++*reached;
  return OkStatus();
}

Status ReturnIfErrorPlain() {
  LORA_RETURN_IF_ERROR(Fails());
  return OkStatus();
}

TEST(StatusTest, ReturnIfErrorAddsContext) {
  int reached = 0;
  Status s = ReturnIfErrorWithContext("a.bin", &reached);
  EXPECT_EQ(reached, 1);
  EXPECT_EQ(s.code(), StatusCode::kDataLoss);
  EXPECT_EQ(s.message(), "while loading a.bin: truncated");
  Status p = ReturnIfErrorPlain();
  EXPECT_EQ(p.message(), "truncated");
}

StatusOr<int> Half(int x) {
  if (x % 2 != 0) return InvalidArgumentError(StrFormat("%d is odd", x));
  return x / 2;
}

Status Quarter(int x, int* out) {
  LORA_ASSIGN_OR_RETURN(int half, Half(x));
  LORA_ASSIGN_OR_RETURN(*out, Half(half));
  return OkStatus();
}

TEST(StatusOrTest, ValueAndError) {
  StatusOr<int> ok = Half(8);
  ASSERT_TRUE(ok.ok());
  EXPECT_TRUE(ok.status().ok());
  EXPECT_EQ(ok.value(), 4);
  EXPECT_EQ(*ok, 4);
  StatusOr<int> bad = Half(3);
  EXPECT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(bad.status().message(), "3 is odd");
}

TEST(StatusOrTest, AssignOrReturn) {
  int out = 0;
  EXPECT_TRUE(Quarter(8, &out).ok());
  EXPECT_EQ(out, 2);
  Status s = Quarter(6, &out);  // 6 -> 3 -> odd
  EXPECT_EQ(s.message(), "3 is odd");
  s = Quarter(5, &out);
  EXPECT_EQ(s.message(), "5 is odd");
}

TEST(StatusOrTest, MoveOnlyValue) {
  StatusOr<std::unique_ptr<int>> p = std::make_unique<int>(7);
  ASSERT_TRUE(p.ok());
  std::unique_ptr<int> v = std::move(p).value();
  EXPECT_EQ(*v, 7);
  StatusOr<std::string> s = std::string("abc");
  EXPECT_EQ(s->size(), 3u);
}

TEST(StatusOrTest, OkStatusWithoutValueIsInternalError) {
  StatusOr<int> s = OkStatus();
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), StatusCode::kInternal);
}

TEST(StrFormatTest, ShortAndLong) {
  EXPECT_EQ(StrFormat("%s=%d", "a", 5), "a=5");
  std::string big(1000, 'x');
  EXPECT_EQ(StrFormat("<%s>", big.c_str()), "<" + big + ">");
  EXPECT_EQ(StrFormat("%s", ""), "");
}

TEST(StringsTest, QuoteEscapesToOneLine) {
  EXPECT_EQ(Quote("model.norm.weight"), "'model.norm.weight'");
  EXPECT_EQ(Quote(std::string("a\nb\0c'\\", 7)), "'a\\nb\\x00c\\'\\\\'");
  EXPECT_EQ(Quote("abcdef", 3), "'abc...'");
  EXPECT_EQ(Quote("caf\xc3\xa9"), "'caf\xc3\xa9'");  // UTF-8 kept
  EXPECT_EQ(Quote("\xf0\x9f\x98\x80!"), "'\xf0\x9f\x98\x80!'");  // 4-byte sequences too
  // Bytes that are not UTF-8 are escaped: a lone continuation byte, a
  // sequence cut short (also by max_bytes), a lead byte no sequence has.
  EXPECT_EQ(Quote("~\x80sx"), "'~\\x80sx'");
  EXPECT_EQ(Quote("a\xc3"), "'a\\xc3'");
  EXPECT_EQ(Quote("\xe2\x82\xac", 2), "'\\xe2\\x82...'");
  EXPECT_EQ(Quote("\xff\xc0\xaf"), "'\\xff\\xc0\\xaf'");
}

TEST(StringsTest, NaturalLess) {
  EXPECT_TRUE(NaturalLess("layers.2.w", "layers.10.w"));
  EXPECT_FALSE(NaturalLess("layers.10.w", "layers.2.w"));
  EXPECT_TRUE(NaturalLess("a", "b"));
  EXPECT_TRUE(NaturalLess("a", "a.b"));
  EXPECT_FALSE(NaturalLess("a", "a"));
  EXPECT_TRUE(NaturalLess("x1", "x01"));
  EXPECT_FALSE(NaturalLess("x01", "x1"));
  EXPECT_TRUE(NaturalLess("layers.9", "layers.10"));
}

TEST(StringsTest, HumanUnitsAndPaths) {
  EXPECT_EQ(HumanBytes(512), "512 B");
  EXPECT_EQ(HumanBytes(1536), "1.50 KiB");
  EXPECT_EQ(HumanBytes(3ull << 30), "3.00 GiB");
  EXPECT_EQ(HumanCount(999), "999");
  EXPECT_EQ(HumanCount(6738415616ull), "6.74B");
  EXPECT_EQ(JoinPath("dir", "f"), "dir/f");
  EXPECT_EQ(JoinPath("dir/", "f"), "dir/f");
}

}  // namespace
}  // namespace lorart
