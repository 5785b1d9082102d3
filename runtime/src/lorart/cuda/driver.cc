#include "lorart/cuda/driver.h"

#include <dlfcn.h>

#include <cstdlib>
#include <vector>

namespace lorart::cuda {

// The driver entry points lorart uses, by their exported (versioned) names;
// types reduced to what crosses the boundary (CUresult is an int, handles
// are pointers, CUdeviceptr is a 64-bit integer).
struct DriverApi {
  int (*init)(unsigned);
  int (*device_count)(int*);
  int (*device_get)(int*, int);
  int (*device_name)(char*, int, int);
  int (*device_attribute)(int*, int, int);
  int (*device_total_mem)(size_t*, int);
  int (*primary_retain)(void**, int);
  int (*primary_release)(int);
  int (*ctx_set_current)(void*);
  int (*ctx_synchronize)();
  int (*mem_alloc)(DevicePtr*, size_t);
  int (*mem_free)(DevicePtr);
  int (*mem_get_info)(size_t*, size_t*);
  int (*memcpy_htod)(DevicePtr, const void*, size_t);
  int (*memcpy_dtoh)(void*, DevicePtr, size_t);
  int (*memset_d8)(DevicePtr, unsigned char, size_t);
  int (*module_load_data)(Module*, const void*);
  int (*module_unload)(Module);
  int (*module_get_function)(Function*, Module, const char*);
  int (*func_set_attribute)(Function, int, int);
  int (*launch_kernel)(Function, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned,
                       unsigned, void*, void**, void**);
  int (*error_name)(int, const char**);
  int (*error_string)(int, const char**);
  // Events (for `lorart profile`): optional, null where the driver lacks them.
  int (*event_create)(Event*, unsigned);
  int (*event_record)(Event, void*);
  int (*event_synchronize)(Event);
  int (*event_elapsed)(float*, Event, Event);
  int (*event_destroy)(Event);
  // cuStreamQuery: optional (Query falls back to a synchronize).
  int (*stream_query)(void*);
  // Streams of our own (for NCCL): optional, null where the driver lacks them.
  int (*stream_create)(Stream*, unsigned);
  int (*stream_destroy)(Stream);
  int (*stream_wait_event)(Stream, Event, unsigned);
};

namespace {

constexpr int kAttrComputeMajor = 75;        // CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR
constexpr int kAttrComputeMinor = 76;        // CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR
constexpr int kAttrMaxSharedOptin = 97;      // CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN
constexpr int kFuncMaxDynamicShared = 8;     // CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES

template <typename F>
bool Resolve(void* lib, const char* name, F* out, std::string* missing) {
  *out = reinterpret_cast<F>(::dlsym(lib, name));
  if (!*out) *missing += (missing->empty() ? "" : ", ") + std::string(name);
  return *out != nullptr;
}

}  // namespace

StatusOr<const DriverApi*> LoadDriver() {
  static DriverApi api;
  static Status status = [] {
    std::vector<std::string> names = {"libcuda.so.1", "libcuda.so"};
    if (const char* env = std::getenv("LORART_CUDA_DRIVER"); env && *env) names = {env};
    void* lib = nullptr;
    for (const std::string& n : names)
      if ((lib = ::dlopen(n.c_str(), RTLD_NOW | RTLD_LOCAL))) break;
    if (!lib)
      return UnavailableError("no CUDA driver: " + names.front() + " could not be loaded");
    std::string missing;
    Resolve(lib, "cuInit", &api.init, &missing);
    Resolve(lib, "cuDeviceGetCount", &api.device_count, &missing);
    Resolve(lib, "cuDeviceGet", &api.device_get, &missing);
    Resolve(lib, "cuDeviceGetName", &api.device_name, &missing);
    Resolve(lib, "cuDeviceGetAttribute", &api.device_attribute, &missing);
    Resolve(lib, "cuDeviceTotalMem_v2", &api.device_total_mem, &missing);
    Resolve(lib, "cuDevicePrimaryCtxRetain", &api.primary_retain, &missing);
    Resolve(lib, "cuDevicePrimaryCtxRelease_v2", &api.primary_release, &missing);
    Resolve(lib, "cuCtxSetCurrent", &api.ctx_set_current, &missing);
    Resolve(lib, "cuCtxSynchronize", &api.ctx_synchronize, &missing);
    Resolve(lib, "cuMemAlloc_v2", &api.mem_alloc, &missing);
    Resolve(lib, "cuMemFree_v2", &api.mem_free, &missing);
    Resolve(lib, "cuMemGetInfo_v2", &api.mem_get_info, &missing);
    Resolve(lib, "cuMemcpyHtoD_v2", &api.memcpy_htod, &missing);
    Resolve(lib, "cuMemcpyDtoH_v2", &api.memcpy_dtoh, &missing);
    Resolve(lib, "cuMemsetD8_v2", &api.memset_d8, &missing);
    Resolve(lib, "cuModuleLoadData", &api.module_load_data, &missing);
    Resolve(lib, "cuModuleUnload", &api.module_unload, &missing);
    Resolve(lib, "cuModuleGetFunction", &api.module_get_function, &missing);
    Resolve(lib, "cuFuncSetAttribute", &api.func_set_attribute, &missing);
    Resolve(lib, "cuLaunchKernel", &api.launch_kernel, &missing);
    Resolve(lib, "cuGetErrorName", &api.error_name, &missing);
    Resolve(lib, "cuGetErrorString", &api.error_string, &missing);
    if (!missing.empty())
      return UnavailableError("the CUDA driver " + names.front() + " lacks " + missing);
    std::string no_events;
    Resolve(lib, "cuEventCreate", &api.event_create, &no_events);
    Resolve(lib, "cuEventRecord", &api.event_record, &no_events);
    Resolve(lib, "cuEventSynchronize", &api.event_synchronize, &no_events);
    Resolve(lib, "cuEventElapsedTime", &api.event_elapsed, &no_events);
    Resolve(lib, "cuEventDestroy_v2", &api.event_destroy, &no_events);
    if (!no_events.empty()) api.event_create = nullptr;
    std::string no_query;
    Resolve(lib, "cuStreamQuery", &api.stream_query, &no_query);
    std::string no_streams;
    Resolve(lib, "cuStreamCreate", &api.stream_create, &no_streams);
    Resolve(lib, "cuStreamDestroy_v2", &api.stream_destroy, &no_streams);
    Resolve(lib, "cuStreamWaitEvent", &api.stream_wait_event, &no_streams);
    if (!no_streams.empty()) api.stream_create = nullptr;
    return OkStatus();
  }();
  if (!status.ok()) return status;
  return &api;
}

int CudaDeviceCount() {
  StatusOr<const DriverApi*> api = LoadDriver();
  int n = 0;
  if (!api.ok() || (*api)->init(0) != 0 || (*api)->device_count(&n) != 0) return 0;
  return n;
}

Status CudaDeviceAvailable() {
  LORA_RETURN_IF_ERROR(LoadDriver().status());
  if (CudaDeviceCount() == 0) return UnavailableError("no CUDA device");
  return OkStatus();
}

Status Device::Check(int rc, const char* call) const {
  if (rc == 0) return OkStatus();
  const char* name = nullptr;
  const char* text = nullptr;
  api_->error_name(rc, &name);
  api_->error_string(rc, &text);
  return UnavailableError(StrFormat("%s failed: %s (%s)", call, name ? name : "?",
                                    text ? text : "unknown CUDA error"));
}

Status Device::MakeCurrent() const { return Check(api_->ctx_set_current(context_), "cuCtxSetCurrent"); }

StatusOr<std::unique_ptr<Device>> Device::Open(int ordinal) {
  LORA_ASSIGN_OR_RETURN(const DriverApi* api, LoadDriver());
  std::unique_ptr<Device> d(new Device());
  d->api_ = api;
  LORA_RETURN_IF_ERROR(d->Check(api->init(0), "cuInit"));
  int count = 0;
  LORA_RETURN_IF_ERROR(d->Check(api->device_count(&count), "cuDeviceGetCount"));
  if (count == 0) return UnavailableError("no CUDA device");
  if (ordinal < 0 || ordinal >= count)
    return InvalidArgumentError(
        StrFormat("CUDA device %d does not exist (%d present)", ordinal, count));
  LORA_RETURN_IF_ERROR(d->Check(api->device_get(&d->device_, ordinal), "cuDeviceGet"));
  char name[256] = {0};
  LORA_RETURN_IF_ERROR(d->Check(api->device_name(name, sizeof name - 1, d->device_),
                                "cuDeviceGetName"));
  d->name_ = name;
  LORA_RETURN_IF_ERROR(d->Check(api->device_attribute(&d->major_, kAttrComputeMajor, d->device_),
                                "cuDeviceGetAttribute"));
  LORA_RETURN_IF_ERROR(d->Check(api->device_attribute(&d->minor_, kAttrComputeMinor, d->device_),
                                "cuDeviceGetAttribute"));
  LORA_RETURN_IF_ERROR(d->Check(
      api->device_attribute(&d->max_shared_optin_, kAttrMaxSharedOptin, d->device_),
      "cuDeviceGetAttribute"));
  size_t total = 0;
  LORA_RETURN_IF_ERROR(d->Check(api->device_total_mem(&total, d->device_), "cuDeviceTotalMem"));
  d->total_memory_ = total;
  if (d->major_ < 8)
    return UnavailableError(StrFormat("CUDA device %s has compute capability %d.%d; lorart's "
                                      "kernels need 8.0 or newer (bf16 tensor cores)",
                                      d->name_.c_str(), d->major_, d->minor_));
  LORA_RETURN_IF_ERROR(d->Check(api->primary_retain(&d->context_, d->device_),
                                "cuDevicePrimaryCtxRetain"));
  LORA_RETURN_IF_ERROR(d->MakeCurrent());
  return d;
}

Device::~Device() {
  if (context_) api_->primary_release(device_);
}

std::string Device::arch() const {
  // Hopper's arch-specific instructions (wgmma, TMA) need sm_90a; a CUBIN
  // for it runs on compute capability 9.0 only, which is this device.
  return StrFormat("sm_%d%d%s", major_, minor_, major_ == 9 && minor_ == 0 ? "a" : "");
}

Status Device::Alloc(size_t bytes, DevicePtr* out) {
  LORA_RETURN_IF_ERROR(MakeCurrent());
  Status st = Check(api_->mem_alloc(out, bytes == 0 ? 1 : bytes), "cuMemAlloc");
  if (!st.ok())
    return UnavailableError(StrFormat("cannot allocate %zu bytes on %s: %s", bytes, name_.c_str(),
                                      st.message().c_str()));
  return OkStatus();
}

void Device::Free(DevicePtr p) {
  if (p && MakeCurrent().ok()) api_->mem_free(p);
}

Status Device::Upload(DevicePtr dst, const void* src, size_t bytes) {
  if (bytes == 0) return OkStatus();
  LORA_RETURN_IF_ERROR(MakeCurrent());
  return Check(api_->memcpy_htod(dst, src, bytes), "cuMemcpyHtoD");
}

Status Device::Download(void* dst, DevicePtr src, size_t bytes) {
  if (bytes == 0) return OkStatus();
  LORA_RETURN_IF_ERROR(MakeCurrent());
  return Check(api_->memcpy_dtoh(dst, src, bytes), "cuMemcpyDtoH");
}

Status Device::Zero(DevicePtr dst, size_t bytes) {
  if (bytes == 0) return OkStatus();
  LORA_RETURN_IF_ERROR(MakeCurrent());
  return Check(api_->memset_d8(dst, 0, bytes), "cuMemsetD8");
}

Status Device::LoadModule(const std::string& cubin, Module* out) {
  LORA_RETURN_IF_ERROR(MakeCurrent());
  return Check(api_->module_load_data(out, cubin.data()), "cuModuleLoadData");
}

Status Device::GetFunction(Module m, const std::string& entry, Function* out) {
  Status st = Check(api_->module_get_function(out, m, entry.c_str()), "cuModuleGetFunction");
  if (!st.ok()) return NotFoundError("kernel entry " + entry + ": " + st.message());
  return OkStatus();
}

Status Device::SetMaxDynamicShared(Function f, int bytes) {
  return Check(api_->func_set_attribute(f, kFuncMaxDynamicShared, bytes), "cuFuncSetAttribute");
}

Status Device::Launch(Function f, Dim3 grid, Dim3 block, unsigned shared_bytes, void** args) {
  return Check(api_->launch_kernel(f, grid.x, grid.y, grid.z, block.x, block.y, block.z,
                                   shared_bytes, nullptr, args, nullptr),
               "cuLaunchKernel");
}

Status Device::Synchronize() {
  LORA_RETURN_IF_ERROR(MakeCurrent());
  return Check(api_->ctx_synchronize(), "cuCtxSynchronize");
}

Status Device::Query(bool* done, Stream stream) {
  LORA_RETURN_IF_ERROR(MakeCurrent());
  if (!api_->stream_query) {
    *done = true;
    return Synchronize();
  }
  constexpr int kNotReady = 600;  // CUDA_ERROR_NOT_READY
  int rc = api_->stream_query(stream);
  *done = rc != kNotReady;
  return rc == kNotReady ? OkStatus() : Check(rc, "cuStreamQuery");
}

Status Device::CreateEvent(Event* out, bool timing) {
  if (!api_->event_create)
    return UnimplementedError("the CUDA driver has no events (cuEventCreate and friends)");
  LORA_RETURN_IF_ERROR(MakeCurrent());
  constexpr unsigned kDisableTiming = 2;  // CU_EVENT_DISABLE_TIMING
  return Check(api_->event_create(out, timing ? 0 : kDisableTiming), "cuEventCreate");
}

void Device::DestroyEvent(Event e) {
  if (e && api_->event_destroy) api_->event_destroy(e);
}

Status Device::RecordEvent(Event e, Stream stream) {
  return Check(api_->event_record(e, stream), "cuEventRecord");
}

Status Device::CreateStream(Stream* out) {
  if (!api_->stream_create || !api_->event_create)
    return UnimplementedError(
        "the CUDA driver has no streams or events (cuStreamCreate, cuStreamWaitEvent, "
        "cuEventCreate)");
  LORA_RETURN_IF_ERROR(MakeCurrent());
  constexpr unsigned kNonBlocking = 1;  // CU_STREAM_NON_BLOCKING
  return Check(api_->stream_create(out, kNonBlocking), "cuStreamCreate");
}

void Device::DestroyStream(Stream s) {
  if (s && api_->stream_destroy) api_->stream_destroy(s);
}

Status Device::WaitEvent(Stream stream, Event e) {
  return Check(api_->stream_wait_event(stream, e, 0), "cuStreamWaitEvent");
}

Status Device::ElapsedMs(Event start, Event end, float* ms) {
  LORA_RETURN_IF_ERROR(Check(api_->event_synchronize(end), "cuEventSynchronize"));
  return Check(api_->event_elapsed(ms, start, end), "cuEventElapsedTime");
}

Status Device::MemoryInfo(size_t* free_bytes, size_t* total_bytes) {
  LORA_RETURN_IF_ERROR(MakeCurrent());
  return Check(api_->mem_get_info(free_bytes, total_bytes), "cuMemGetInfo");
}

}  // namespace lorart::cuda
