// The CUDA driver API, loaded with dlopen (lorart links no libcuda): the
// entry points the executor needs, resolved by name through one table, and a
// Device that owns a context on one GPU. Every call returns a Status naming
// the call and the driver's error name and text.
//
// $LORART_CUDA_DRIVER names the library to load instead of libcuda.so.1
// (the tests point it at the CUDA simulator's driver, test/cuda_sim).
#ifndef LORART_CUDA_DRIVER_H_
#define LORART_CUDA_DRIVER_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "lorart/base/status.h"

namespace lorart::cuda {

using DevicePtr = uint64_t;  // CUdeviceptr
using Module = void*;        // CUmodule
using Function = void*;      // CUfunction
using Event = void*;         // CUevent
using Stream = void*;        // CUstream; nullptr is the default (legacy) stream

struct Dim3 {
  unsigned x = 1, y = 1, z = 1;
};

// The loaded driver library with every entry point lorart uses.
struct DriverApi;
StatusOr<const DriverApi*> LoadDriver();

class Device {
 public:
  // Initializes the driver and retains the primary context of GPU `ordinal`.
  static StatusOr<std::unique_ptr<Device>> Open(int ordinal = 0);
  ~Device();
  Device(const Device&) = delete;
  Device& operator=(const Device&) = delete;

  const std::string& name() const { return name_; }
  int major() const { return major_; }
  int minor() const { return minor_; }
  // The NVRTC architecture of the device: "sm_80", "sm_86", "sm_90a" (Hopper's
  // arch-specific features), ...
  std::string arch() const;
  uint64_t total_memory() const { return total_memory_; }
  // The largest dynamic shared memory a block may opt in to.
  int max_shared_optin() const { return max_shared_optin_; }

  Status Alloc(size_t bytes, DevicePtr* out);
  void Free(DevicePtr p);
  Status Upload(DevicePtr dst, const void* src, size_t bytes);
  Status Download(void* dst, DevicePtr src, size_t bytes);
  Status Zero(DevicePtr dst, size_t bytes);

  Status LoadModule(const std::string& cubin, Module* out);
  Status GetFunction(Module m, const std::string& entry, Function* out);
  // Raises a function's dynamic shared memory limit (needed above 48 KiB).
  Status SetMaxDynamicShared(Function f, int bytes);
  // `args` holds a pointer to each argument's value (cuLaunchKernel's
  // kernelParams).
  Status Launch(Function f, Dim3 grid, Dim3 block, unsigned shared_bytes, void** args);
  // Waits for all launched work; asynchronous kernel faults surface here.
  Status Synchronize();
  // Whether a stream's work (the default stream's by default) has finished
  // (cuStreamQuery), without waiting.
  Status Query(bool* done, Stream stream = nullptr);
  // Events, for timing launches on the default stream (RecordEvent after the
  // work to time, ElapsedMs waits for `end` and gives the milliseconds
  // between the two) and for ordering work between streams (WaitEvent: the
  // stream's later work waits for the event's last record; `timing` false
  // makes a lighter event for that). UNIMPLEMENTED where the driver lacks
  // events.
  Status CreateEvent(Event* out, bool timing = true);
  void DestroyEvent(Event e);
  Status RecordEvent(Event e, Stream stream = nullptr);
  Status ElapsedMs(Event start, Event end, float* ms);
  // A second stream that does not wait for the default one (non-blocking:
  // ordering with it goes through events only); NCCL's sums run there.
  // UNIMPLEMENTED where the driver lacks streams (cuStreamCreate, cuStreamWaitEvent).
  Status CreateStream(Stream* out);
  void DestroyStream(Stream s);
  Status WaitEvent(Stream stream, Event e);
  // Free and total device memory now.
  Status MemoryInfo(size_t* free_bytes, size_t* total_bytes);

 private:
  Device() = default;
  Status Check(int rc, const char* call) const;
  Status MakeCurrent() const;

  const DriverApi* api_ = nullptr;
  int device_ = 0;
  void* context_ = nullptr;
  std::string name_;
  int major_ = 0, minor_ = 0, max_shared_optin_ = 48 * 1024;
  uint64_t total_memory_ = 0;
};

// Whether a CUDA driver with at least one device is present: OK, or
// Unavailable with one line saying why ("no CUDA driver: libcuda.so.1 could
// not be loaded", "no CUDA device").
Status CudaDeviceAvailable();
// How many GPUs the driver sees (0 without a driver).
int CudaDeviceCount();

}  // namespace lorart::cuda

#endif  // LORART_CUDA_DRIVER_H_
