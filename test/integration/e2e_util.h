// Helpers shared by the end-to-end GoogleTest files: a random tiny model
// directory per suite, and a session's state tensors.
#ifndef LORART_TEST_INTEGRATION_E2E_UTIL_H_
#define LORART_TEST_INTEGRATION_E2E_UTIL_H_

#include <gtest/gtest.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "lorart/exec/session.h"

namespace lorart::testing {

// `lorart init-model` of the tiny test config into the test temp directory,
// once per (name, dtype, seed).
inline std::string MakeTinyModel(const std::string& name, const char* dtype, int seed) {
  std::string d = ::testing::TempDir() + name;
  std::string cmd = std::string(LORART_BIN) + " init-model --config " + LORAC_TINY_CONFIG +
                    " -o " + d + " --dtype " + dtype + " --seed " + std::to_string(seed) +
                    " > /dev/null";
  EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
  return d;
}

// The session's state tensors (host copies); empty, with a failure, on error.
inline std::vector<Session::StateTensor> StateOf(const Session& s) {
  StatusOr<std::vector<Session::StateTensor>> st = s.State();
  EXPECT_TRUE(st.ok()) << st.status().ToString();
  return st.ok() ? *st : std::vector<Session::StateTensor>{};
}

}  // namespace lorart::testing

#endif  // LORART_TEST_INTEGRATION_E2E_UTIL_H_
