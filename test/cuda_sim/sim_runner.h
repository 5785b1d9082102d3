// Compiles a generated CUDA C++ kernel for the CPU simulator (lora_cuda_sim.h)
// with the host compiler and launches it. Test-only.
#ifndef LORART_TEST_CUDA_SIM_RUNNER_H_
#define LORART_TEST_CUDA_SIM_RUNNER_H_

#include <array>
#include <string>
#include <vector>

namespace lora_sim_test {

class SimKernel {
 public:
  SimKernel() = default;
  ~SimKernel();
  SimKernel(const SimKernel&) = delete;
  SimKernel& operator=(const SimKernel&) = delete;

  // Compiles `source` (whose __global__ function is `entry`) in `work_dir`.
  // Returns "" or the error (with the compiler's output).
  std::string Compile(const std::string& source, const std::string& entry,
                      const std::string& work_dir);
  // Runs the kernel on host pointers. Returns "" or the simulator's error
  // (deadlock, a shuffle of an exited lane, a wrong argument count).
  std::string Launch(std::array<unsigned, 3> grid, std::array<unsigned, 3> block,
                     size_t shared_bytes, const std::vector<void*>& args) const;

 private:
  std::string Open(const std::string& so, const std::string& entry);
  void* handle_ = nullptr;
  using LaunchFn = const char* (*)(const unsigned*, const unsigned*, size_t, void**, size_t);
  LaunchFn launch_ = nullptr;
};

// Builds `source` with the host compiler into a shared object (cached in
// `work_dir` by source and entries) exporting, for each entry E,
// `size_t lora_sim_arity_E()` and `const char* lora_sim_launch_E(grid, block,
// dynamic_smem, void** argument_values, count)` ("" or the simulator's
// error). Returns "" or the error; *so_path receives the object.
std::string BuildSimObject(const std::string& source, const std::vector<std::string>& entries,
                           const std::string& work_dir, std::string* so_path);

// Whether the host compiler and the CUDA headers the kernels include are
// present ("" when they are, else why not).
std::string SimAvailable();

}  // namespace lora_sim_test

#endif  // LORART_TEST_CUDA_SIM_RUNNER_H_
