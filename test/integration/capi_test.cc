// The C API (lorart.h): open, bind, train, step, save, reload, evaluate, and
// failures that return -1 with a message instead of aborting.
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "lorart.h"

namespace {

std::string Plan(const char* name) { return std::string(LORAC_TEST_PLAN_DIR) + "/" + name + ".bin"; }

std::string Model() {
  static std::string dir = [] {
    std::string d = ::testing::TempDir() + "lorart_capi_model";
    std::string cmd = std::string(LORART_BIN) + " init-model --config " + LORAC_TINY_CONFIG +
                      " -o " + d + " --dtype f32 --seed 5 > /dev/null";
    EXPECT_EQ(std::system(cmd.c_str()), 0);
    return d;
  }();
  return dir;
}

TEST(CApi, TrainSaveReloadEvaluate) {
  lorart_session* s = lorart_open(Plan("lora_b2_t8").c_str(), 2);
  ASSERT_NE(s, nullptr) << lorart_last_error();
  ASSERT_EQ(lorart_bind_weights(s, Model().c_str(), 1), 0) << lorart_last_error();
  ASSERT_EQ(lorart_micro_batch(s), 2);
  ASSERT_EQ(lorart_seq_len(s), 8);
  std::vector<int32_t> tokens(16), positions(16), segments(16, 0), targets(16);
  std::vector<uint8_t> mask(16, 1);
  for (int i = 0; i < 16; ++i) {
    tokens[i] = (i * 37 + 11) % 256;
    positions[i] = i % 8;
    targets[i] = (tokens[i] + 1) % 256;
  }
  mask[7] = mask[15] = 0;
  double loss0 = 0, count = 0;
  ASSERT_EQ(lorart_eval_step(s, tokens.data(), positions.data(), segments.data(), targets.data(),
                             mask.data(), &loss0, &count), 0) << lorart_last_error();
  EXPECT_EQ(count, 14);
  for (int step = 1; step <= 3; ++step) {
    double l = 0, n = 0, norm = 0;
    ASSERT_EQ(lorart_train_step(s, tokens.data(), positions.data(), segments.data(),
                                targets.data(), mask.data(), step, &l, &n), 0)
        << lorart_last_error();
    ASSERT_EQ(lorart_optimizer_step(s, 1e-2f, step, n, &norm), 0) << lorart_last_error();
    EXPECT_GT(norm, 0);
  }
  double loss1 = 0;
  ASSERT_EQ(lorart_eval_step(s, tokens.data(), positions.data(), segments.data(), targets.data(),
                             mask.data(), &loss1, &count), 0);
  EXPECT_LT(loss1, loss0);
  std::string dir = ::testing::TempDir() + "lorart_capi_adapter";
  ASSERT_EQ(lorart_save_adapter(s, dir.c_str(), "tiny"), 0) << lorart_last_error();
  lorart_close(s);

  // A fresh session with the saved adapter reproduces the trained loss.
  lorart_session* t = lorart_open(Plan("lora_b2_t8").c_str(), 2);
  ASSERT_NE(t, nullptr);
  ASSERT_EQ(lorart_bind_weights(t, Model().c_str(), 99), 0);
  ASSERT_EQ(lorart_load_adapter(t, dir.c_str()), 0) << lorart_last_error();
  double loss2 = 0;
  ASSERT_EQ(lorart_eval_step(t, tokens.data(), positions.data(), segments.data(), targets.data(),
                             mask.data(), &loss2, &count), 0);
  EXPECT_NEAR(loss2, loss1, 1e-6 * std::abs(loss1));
  lorart_close(t);
}

TEST(CApi, FailuresReturnAMessage) {
  EXPECT_EQ(lorart_open("/nonexistent/train.bin", 1), nullptr);
  EXPECT_NE(std::string(lorart_last_error()).find("/nonexistent/train.bin"), std::string::npos);
  lorart_session* s = lorart_open(Plan("lora_b2_t8").c_str(), 1);
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(lorart_bind_weights(s, "/nonexistent-model", 0), -1);
  EXPECT_NE(std::string(lorart_last_error()).find("/nonexistent-model"), std::string::npos);
  EXPECT_EQ(lorart_load_adapter(s, "/nonexistent-adapter"), -1);
  // A packed plan needs segment ids.
  std::vector<int32_t> v(16, 0);
  std::vector<uint8_t> m(16, 0);
  EXPECT_EQ(lorart_train_step(s, v.data(), v.data(), nullptr, v.data(), m.data(), 0, nullptr,
                              nullptr), -1);
  EXPECT_NE(std::string(lorart_last_error()).find("segment_ids is required"), std::string::npos);
  EXPECT_EQ(lorart_optimizer_step(s, 1e-3f, 0, 10, nullptr), -1);
  lorart_close(s);
}

}  // namespace
