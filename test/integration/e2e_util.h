// Helpers shared by the end-to-end GoogleTest files: a random tiny model
// directory per suite, and a session's state tensors.
#ifndef LORART_TEST_INTEGRATION_E2E_UTIL_H_
#define LORART_TEST_INTEGRATION_E2E_UTIL_H_

#include <gtest/gtest.h>

#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "lorart/exec/session.h"

namespace lorart::testing {

// `lorart init-model` of the tiny test config into the test temp directory,
// once per (name, dtype, seed).
inline std::string MakeTinyModel(const std::string& name, const char* dtype, int seed,
                                 const char* config = LORAC_TINY_CONFIG) {
  std::string d = ::testing::TempDir() + name;
  std::string cmd = std::string(LORART_BIN) + " init-model --config " + config +
                    " -o " + d + " --dtype " + dtype + " --seed " + std::to_string(seed) +
                    " > /dev/null";
  EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
  return d;
}

// A session of the plan at `path` with the weights of `model_dir` bound and
// the trainable tensors initialized from `seed`; null, with a failure, on
// error.
inline std::unique_ptr<Session> OpenBound(const std::string& path, const SessionOptions& so,
                                          const std::string& model_dir, uint64_t seed) {
  std::unique_ptr<Session> s;
  Status st = Session::Open(path, so, &s);
  EXPECT_TRUE(st.ok()) << st.ToString();
  if (!st.ok()) return nullptr;
  st = s->BindWeights(model_dir);
  EXPECT_TRUE(st.ok()) << st.ToString();
  st = s->InitTrainable(seed);
  EXPECT_TRUE(st.ok()) << st.ToString();
  return s;
}

// The session's state tensors (host copies); empty, with a failure, on error.
inline std::vector<Session::StateTensor> StateOf(const Session& s) {
  StatusOr<std::vector<Session::StateTensor>> st = s.State();
  EXPECT_TRUE(st.ok()) << st.status().ToString();
  return st.ok() ? *st : std::vector<Session::StateTensor>{};
}

}  // namespace lorart::testing

#endif  // LORART_TEST_INTEGRATION_E2E_UTIL_H_
