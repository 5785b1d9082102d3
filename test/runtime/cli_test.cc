// The lorart command line, run in-process with captured streams.
#include "lorart/cli/main.h"
#include "lorart/cuda/driver.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "test_util.h"

namespace lorart {
namespace {

using testing::BuildSafetensors;
using testing::TempDir;
using testing::WriteFile;

struct Result {
  int code;
  std::string out;
  std::string err;
};

Result Lorart(std::vector<std::string> args) {
  args.insert(args.begin(), "lorart");
  std::vector<const char*> argv;
  for (const std::string& a : args) argv.push_back(a.c_str());
  std::ostringstream out, err;
  int code = cli::Main(static_cast<int>(argv.size()), argv.data(), out, err);
  return {code, out.str(), err.str()};
}

void ExpectOneLineError(const Result& r, const std::string& needle) {
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err.rfind("lorart: error: ", 0), 0u) << r.err;
  ASSERT_FALSE(r.err.empty());
  EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << r.err;  // one line
  EXPECT_NE(r.err.find(needle), std::string::npos) << r.err;
}

TEST(CliTest, Version) {
  Result r = Lorart({"version"});
  EXPECT_EQ(r.code, 0);
  // This machine has no GPU (CI never does): the CUDA line says why.
  EXPECT_EQ(r.out.rfind("lorart 0.1.0\ncpu: always\ncuda: ", 0), 0u) << r.out;
  if (!lorart::cuda::CudaDeviceAvailable().ok()) {
    EXPECT_NE(r.out.find("cuda: unavailable (no CUDA"), std::string::npos) << r.out;
  }
  EXPECT_EQ(r.err, "");
  r = Lorart({"--version"});
  EXPECT_EQ(r.code, 0);
  EXPECT_NE(r.out.find("lorart 0.1.0"), std::string::npos);
}

TEST(CliTest, HelpListsCommandsAndDefaults) {
  Result r = Lorart({"--help"});
  EXPECT_EQ(r.code, 0);
  EXPECT_NE(r.out.find("inspect"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("version"), std::string::npos) << r.out;
  r = Lorart({"inspect", "--help"});
  EXPECT_EQ(r.code, 0);
  EXPECT_NE(r.out.find("--sort"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("=name"), std::string::npos) << r.out;  // the default
}

TEST(CliTest, UsageErrorsAreOneLine) {
  ExpectOneLineError(Lorart({}), "subcommand");
  ExpectOneLineError(Lorart({"frobnicate"}), "unknown command 'frobnicate'");
  ExpectOneLineError(Lorart({"inspect"}), "PATH is required");
  ExpectOneLineError(Lorart({"inspect", "x", "--sort", "size"}), "size");
}

TEST(CliTest, InspectFile) {
  TempDir dir;
  const std::string path = dir.Join("tiny.safetensors");
  WriteFile(path, BuildSafetensors({{"model.layers.10.w", "F32", {2, 3}, 4},
                                    {"model.layers.2.w", "BF16", {4}, 2},
                                    {"model.norm.weight", "F16", {3}, 2}},
                                   {{"format", "pt"}}));
  Result r = Lorart({"inspect", path});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("3 tensors in 1 file"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("metadata format = pt"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("total: 3 tensors, 13 parameters (13), 38 bytes (38 B)"),
            std::string::npos)
      << r.out;
  // Natural order: layers.2 before layers.10.
  EXPECT_LT(r.out.find("model.layers.2.w"), r.out.find("model.layers.10.w")) << r.out;
  r = Lorart({"inspect", path, "--sort", "offset"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_GT(r.out.find("model.layers.2.w"), r.out.find("model.layers.10.w")) << r.out;
}

TEST(CliTest, InspectJson) {
  TempDir dir;
  WriteFile(dir.Join("model.safetensors"),
            BuildSafetensors({{"a", "F32", {2, 3}, 4}, {"b", "I64", {}, 8}}));
  Result r = Lorart({"inspect", "--json", dir.path()});
  ASSERT_EQ(r.code, 0) << r.err;
  nlohmann::json doc = nlohmann::json::parse(r.out, nullptr, /*allow_exceptions=*/false);
  ASSERT_FALSE(doc.is_discarded()) << r.out;
  EXPECT_EQ(doc["total_tensors"], 2);
  EXPECT_EQ(doc["total_parameters"], 7);
  EXPECT_EQ(doc["total_bytes"], 32);
  ASSERT_EQ(doc["tensors"].size(), 2u);
  EXPECT_EQ(doc["tensors"][0]["name"], "a");
  EXPECT_EQ(doc["tensors"][0]["dtype"], "F32");
  EXPECT_EQ(doc["tensors"][0]["shape"], nlohmann::json::array({2, 3}));
  EXPECT_EQ(doc["tensors"][1]["shape"], nlohmann::json::array());
  EXPECT_EQ(doc["shards"][0]["path"], dir.Join("model.safetensors"));
}

TEST(CliTest, InspectShardedDirectory) {
  TempDir dir;
  WriteFile(dir.Join("s1.safetensors"), BuildSafetensors({{"a", "F32", {2}, 4}}));
  WriteFile(dir.Join("s2.safetensors"), BuildSafetensors({{"b", "F32", {3}, 4}}));
  WriteFile(dir.Join("model.safetensors.index.json"),
            R"({"weight_map": {"a": "s1.safetensors", "b": "s2.safetensors"}})");
  Result r = Lorart({"inspect", dir.path()});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("2 tensors in 2 shards"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("s2.safetensors"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("total: 2 tensors, 5 parameters"), std::string::npos) << r.out;
}

TEST(CliTest, InspectErrors) {
  TempDir dir;
  ExpectOneLineError(Lorart({"inspect", dir.Join("missing.safetensors")}), "missing.safetensors");
  ExpectOneLineError(Lorart({"inspect", dir.path()}), "no model.safetensors");
  WriteFile(dir.Join("bad.safetensors"), testing::MakeSafetensors("{\"w\":\n 1}", ""));
  ExpectOneLineError(Lorart({"inspect", dir.Join("bad.safetensors")}),
                     "bad.safetensors: tensor 'w'");
}

}  // namespace
}  // namespace lorart
