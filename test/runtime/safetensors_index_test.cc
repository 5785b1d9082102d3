// Model directories: model.safetensors, or an index and its shards.
#include <gtest/gtest.h>

#include <string>

#include "lorart/io/safetensors.h"
#include "test_util.h"

namespace lorart {
namespace {

using testing::BuildSafetensors;
using testing::TempDir;
using testing::WriteFile;

bool Contains(const Status& s, const std::string& needle) {
  return s.message().find(needle) != std::string::npos;
}

// Two shards: a and b in shard 1, c in shard 2.
class ShardedModelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    WriteFile(dir_.Join("model-00001-of-00002.safetensors"),
              BuildSafetensors({{"a", "F32", {2, 2}, 4}, {"b", "BF16", {3}, 2}}));
    WriteFile(dir_.Join("model-00002-of-00002.safetensors"),
              BuildSafetensors({{"c", "F16", {5}, 2}}));
  }
  void WriteIndex(const std::string& weight_map) {
    WriteFile(dir_.Join("model.safetensors.index.json"),
              R"({"metadata": {"total_size": 36}, "weight_map": )" + weight_map + "}");
  }
  static constexpr char kGood[] =
      R"({"a": "model-00001-of-00002.safetensors", "b": "model-00001-of-00002.safetensors",
          "c": "model-00002-of-00002.safetensors"})";
  TempDir dir_;
  SafetensorsModel model_;
};

TEST_F(ShardedModelTest, OpensEveryShard) {
  WriteIndex(kGood);
  Status s = OpenSafetensorsModelHeaders(dir_.path(), &model_);
  ASSERT_TRUE(s.ok()) << s.ToString();
  ASSERT_EQ(model_.shards.size(), 2u);
  EXPECT_EQ(model_.NumTensors(), 3u);
  const SafetensorsHeader* shard = nullptr;
  const TensorInfo* c = model_.Find("c", &shard);
  ASSERT_NE(c, nullptr);
  ASSERT_NE(shard, nullptr);
  EXPECT_EQ(shard->path, dir_.Join("model-00002-of-00002.safetensors"));
  EXPECT_EQ(c->dtype, DType::kF16);
  EXPECT_EQ(c->shape, std::vector<int64_t>{5});
  const TensorInfo* b = model_.Find("b");
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->dtype, DType::kBF16);
  EXPECT_EQ(model_.Find("d"), nullptr);
}

TEST_F(ShardedModelTest, TrailingSlashInDirectory) {
  WriteIndex(kGood);
  Status s = OpenSafetensorsModelHeaders(dir_.path() + "/", &model_);
  ASSERT_TRUE(s.ok()) << s.ToString();
}

TEST_F(ShardedModelTest, MissingShardIsNotFound) {
  WriteIndex(R"({"a": "model-00001-of-00002.safetensors", "b": "model-00001-of-00002.safetensors",
                 "c": "model-00002-of-00002.safetensors", "d": "model-00003-of-00003.safetensors"})");
  Status s = OpenSafetensorsModelHeaders(dir_.path(), &model_);
  EXPECT_EQ(s.code(), StatusCode::kNotFound);
  EXPECT_TRUE(Contains(s, "model.safetensors.index.json")) << s.message();
  EXPECT_TRUE(Contains(s, "shard 'model-00003-of-00003.safetensors' (holding tensor 'd')"))
      << s.message();
}

TEST_F(ShardedModelTest, TensorInTheWrongShard) {
  WriteIndex(R"({"a": "model-00002-of-00002.safetensors", "b": "model-00001-of-00002.safetensors",
                 "c": "model-00002-of-00002.safetensors"})");
  Status s = OpenSafetensorsModelHeaders(dir_.path(), &model_);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(Contains(s, "model.safetensors.index.json: tensor 'a' is mapped to shard "
                          "'model-00002-of-00002.safetensors' but is in " +
                              dir_.Join("model-00001-of-00002.safetensors")))
      << s.message();
}

TEST_F(ShardedModelTest, TensorInAShardTheIndexDoesNotList) {
  // Only the shards the index names are read: c's shard is never opened.
  WriteIndex(R"({"a": "model-00001-of-00002.safetensors", "b": "model-00001-of-00002.safetensors",
                 "c": "model-00001-of-00002.safetensors"})");
  Status s = OpenSafetensorsModelHeaders(dir_.path(), &model_);
  EXPECT_EQ(s.code(), StatusCode::kNotFound);
  EXPECT_TRUE(Contains(s, "tensor 'c' is mapped to shard 'model-00001-of-00002.safetensors' but "
                          "is not in it"))
      << s.message();
}

TEST_F(ShardedModelTest, IndexedTensorInNoShard) {
  WriteIndex(R"({"a": "model-00001-of-00002.safetensors", "b": "model-00001-of-00002.safetensors",
                 "c": "model-00002-of-00002.safetensors", "e": "model-00002-of-00002.safetensors"})");
  Status s = OpenSafetensorsModelHeaders(dir_.path(), &model_);
  EXPECT_EQ(s.code(), StatusCode::kNotFound);
  EXPECT_TRUE(Contains(s, "tensor 'e' is mapped to shard 'model-00002-of-00002.safetensors' but "
                          "is not in it"))
      << s.message();
}

TEST_F(ShardedModelTest, TensorInTwoShards) {
  WriteFile(dir_.Join("model-00002-of-00002.safetensors"),
            BuildSafetensors({{"c", "F16", {5}, 2}, {"a", "F32", {2, 2}, 4}}));
  WriteIndex(kGood);
  Status s = OpenSafetensorsModelHeaders(dir_.path(), &model_);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(Contains(s, "tensor 'a' is in two shards")) << s.message();
  EXPECT_TRUE(Contains(s, "model-00001-of-00002.safetensors")) << s.message();
  EXPECT_TRUE(Contains(s, "model-00002-of-00002.safetensors")) << s.message();
}

TEST_F(ShardedModelTest, CorruptShardNamesTheShard) {
  WriteFile(dir_.Join("model-00002-of-00002.safetensors"), testing::MakeSafetensors("{\"c\"", ""));
  WriteIndex(kGood);
  Status s = OpenSafetensorsModelHeaders(dir_.path(), &model_);
  EXPECT_FALSE(s.ok());
  EXPECT_TRUE(Contains(s, "model-00002-of-00002.safetensors")) << s.message();
}

TEST_F(ShardedModelTest, ShardNamesMustBePlain) {
  for (const char* shard : {"../model-00001-of-00002.safetensors", "sub/x.safetensors", "..", ".",
                            "", "/etc/passwd"}) {
    WriteIndex(std::string(R"({"a": ")") + shard + R"("})");
    Status s = OpenSafetensorsModelHeaders(dir_.path(), &model_);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << shard;
    EXPECT_TRUE(Contains(s, "model.safetensors.index.json: field 'weight_map': tensor 'a' maps "
                            "to"))
        << s.message();
    EXPECT_TRUE(Contains(s, "not a plain file name")) << s.message();
  }
}

TEST_F(ShardedModelTest, WeightMapMustMapNamesToStrings) {
  const char* const kBad[] = {R"([])", R"("x")", R"({"a": 1})", R"({})"};
  for (const char* weight_map : kBad) {
    WriteIndex(weight_map);
    Status s = OpenSafetensorsModelHeaders(dir_.path(), &model_);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << weight_map;
    EXPECT_TRUE(Contains(s, "model.safetensors.index.json: field 'weight_map'")) << s.message();
  }
  WriteIndex(R"({"a": 1})");
  Status s = OpenSafetensorsModelHeaders(dir_.path(), &model_);
  EXPECT_TRUE(Contains(s, "tensor 'a' must map to a shard file name")) << s.message();
}

TEST_F(ShardedModelTest, IndexErrors) {
  WriteFile(dir_.Join("model.safetensors.index.json"), R"({"metadata": {}})");
  Status s = OpenSafetensorsModelHeaders(dir_.path(), &model_);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(Contains(s, "model.safetensors.index.json: missing field 'weight_map'"))
      << s.message();

  WriteFile(dir_.Join("model.safetensors.index.json"), R"({"weight_map": {"a": )");
  s = OpenSafetensorsModelHeaders(dir_.path(), &model_);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(Contains(s, "model.safetensors.index.json: index is not valid JSON")) << s.message();

  WriteFile(dir_.Join("model.safetensors.index.json"),
            R"({"weight_map": {"a": "x.safetensors", "a": "y.safetensors"}})");
  s = OpenSafetensorsModelHeaders(dir_.path(), &model_);
  EXPECT_TRUE(Contains(s, "key 'a' twice in 'weight_map'")) << s.message();

  WriteFile(dir_.Join("model.safetensors.index.json"), "[" + std::string(200, '[') + "]");
  s = OpenSafetensorsModelHeaders(dir_.path(), &model_);
  EXPECT_TRUE(Contains(s, "nests deeper than 64")) << s.message();

  WriteFile(dir_.Join("model.safetensors.index.json"), R"({"metadata": 3, "weight_map": {}})");
  s = OpenSafetensorsModelHeaders(dir_.path(), &model_);
  EXPECT_TRUE(Contains(s, "field 'metadata' must be an object")) << s.message();
}

TEST_F(ShardedModelTest, ReadIndexDirectly) {
  WriteIndex(kGood);
  SafetensorsIndex index;
  Status s = ReadSafetensorsIndex(dir_.Join("model.safetensors.index.json"), &index);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(index.weight_map.size(), 3u);
  EXPECT_EQ(index.weight_map.at("c"), "model-00002-of-00002.safetensors");
}

TEST(SafetensorsModelTest, SingleFileIsPreferredOverIndex) {
  TempDir dir;
  WriteFile(dir.Join("model.safetensors"), BuildSafetensors({{"x", "F32", {3}, 4}}));
  WriteFile(dir.Join("model.safetensors.index.json"), "not even json");
  SafetensorsModel model;
  Status s = OpenSafetensorsModelHeaders(dir.path(), &model);
  ASSERT_TRUE(s.ok()) << s.ToString();
  ASSERT_EQ(model.shards.size(), 1u);
  ASSERT_NE(model.Find("x"), nullptr);
  EXPECT_EQ(model.Find("x")->shape, std::vector<int64_t>{3});
}

TEST(SafetensorsModelTest, NeitherFile) {
  TempDir dir;
  SafetensorsModel model;
  Status s = OpenSafetensorsModelHeaders(dir.path(), &model);
  EXPECT_EQ(s.code(), StatusCode::kNotFound);
  EXPECT_EQ(s.message(),
            "no model.safetensors or model.safetensors.index.json in " + dir.path());
  WriteFile(dir.Join("pytorch_model.bin"), "x");
  s = OpenSafetensorsModelHeaders(dir.path(), &model);
  EXPECT_TRUE(Contains(s, "found pytorch_model.bin")) << s.message();
}

TEST(SafetensorsModelTest, DirectoryErrors) {
  TempDir dir;
  SafetensorsModel model;
  Status s = OpenSafetensorsModelHeaders(dir.Join("absent"), &model);
  EXPECT_EQ(s.code(), StatusCode::kNotFound);
  EXPECT_TRUE(Contains(s, "absent")) << s.message();
  WriteFile(dir.Join("file"), "x");
  s = OpenSafetensorsModelHeaders(dir.Join("file"), &model);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(Contains(s, "not a directory")) << s.message();
}

TEST(SafetensorsModelTest, CorruptSingleFileNamesIt) {
  TempDir dir;
  WriteFile(dir.Join("model.safetensors"), BuildSafetensors({{"x", "F32", {3}, 4}}) + "tail");
  SafetensorsModel model;
  Status s = OpenSafetensorsModelHeaders(dir.path(), &model);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(Contains(s, dir.Join("model.safetensors") + ": 4 bytes of the data section after "
                                                         "tensor 'x'"))
      << s.message();
}

}  // namespace
}  // namespace lorart
