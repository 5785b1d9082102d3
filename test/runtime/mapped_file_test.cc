#include "lorart/io/mapped_file.h"

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <utility>

#include "test_util.h"

namespace lorart {
namespace {

using testing::TempDir;
using testing::WriteFile;

TEST(MappedFileTest, MapsContents) {
  TempDir dir;
  const std::string bytes = "hello, mapped world";
  WriteFile(dir.Join("f"), bytes);
  MappedFile f;
  EXPECT_FALSE(f.is_open());
  ASSERT_TRUE(f.Open(dir.Join("f")).ok());
  EXPECT_TRUE(f.is_open());
  ASSERT_EQ(f.size(), bytes.size());
  EXPECT_EQ(f.view(), bytes);
  EXPECT_EQ(f.path(), dir.Join("f"));
  const uint8_t* p = nullptr;
  ASSERT_TRUE(f.Slice(7, 6, &p).ok());
  EXPECT_EQ(std::memcmp(p, "mapped", 6), 0);
  ASSERT_TRUE(f.Slice(bytes.size(), 0, &p).ok());
  Status s = f.Slice(bytes.size() - 2, 3, &p);
  EXPECT_EQ(s.code(), StatusCode::kOutOfRange);
  EXPECT_NE(s.message().find(dir.Join("f")), std::string::npos);
  s = f.Slice(UINT64_MAX, 2, &p);
  EXPECT_EQ(s.code(), StatusCode::kOutOfRange);
  s = f.Slice(1, UINT64_MAX, &p);
  EXPECT_EQ(s.code(), StatusCode::kOutOfRange);
}

TEST(MappedFileTest, ReleasedPagesReadTheFileAgain) {
  // Release drops resident pages; a later read faults the file's contents in
  // again. Ranges outside the mapping, and empty ones, are ignored.
  TempDir dir;
  std::string bytes(3 * 65536 + 123, '\0');
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<char>(i * 7 + i / 4096);
  WriteFile(dir.Join("f"), bytes);
  MappedFile f;
  ASSERT_TRUE(f.Open(dir.Join("f")).ok());
  ASSERT_EQ(f.view(), bytes);  // every page resident
  f.Release(f.data() + 100, 2 * 65536);
  f.Release(f.data(), f.size());
  f.Release(f.data() + f.size() - 10, 100);  // past the end: ignored
  f.Release(f.data(), 0);
  EXPECT_EQ(f.view(), bytes);
  MappedFile closed;
  closed.Release(nullptr, 10);
}

TEST(MappedFileTest, MoveTransfersTheMapping) {
  TempDir dir;
  WriteFile(dir.Join("f"), "abc");
  MappedFile a;
  ASSERT_TRUE(a.Open(dir.Join("f")).ok());
  MappedFile b(std::move(a));
  EXPECT_EQ(b.view(), "abc");
  EXPECT_EQ(a.data(), nullptr);  // NOLINT(bugprone-use-after-move)
  MappedFile c;
  c = std::move(b);
  EXPECT_EQ(c.view(), "abc");
  c.Close();
  EXPECT_FALSE(c.is_open());
  EXPECT_EQ(c.size(), 0u);
}

TEST(MappedFileTest, EmptyFile) {
  TempDir dir;
  WriteFile(dir.Join("empty"), "");
  MappedFile f;
  ASSERT_TRUE(f.Open(dir.Join("empty")).ok());
  EXPECT_TRUE(f.is_open());
  EXPECT_EQ(f.size(), 0u);
  EXPECT_EQ(f.data(), nullptr);
}

TEST(MappedFileTest, Errors) {
  TempDir dir;
  MappedFile f;
  Status s = f.Open(dir.Join("missing"));
  EXPECT_EQ(s.code(), StatusCode::kNotFound);
  EXPECT_NE(s.message().find("missing"), std::string::npos);
  s = f.Open(dir.path());
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("not a regular file"), std::string::npos);
  EXPECT_FALSE(f.is_open());
}

}  // namespace
}  // namespace lorart
