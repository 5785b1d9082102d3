// liblorart_cuda_sim_driver.so: the CUDA driver API and NVRTC entry points
// lorart loads, implemented on the CPU simulator (lora_cuda_sim.h), so that
// the runtime's CUDA executor — the very code that runs on a GPU: device
// allocation, uploads, module loading, argument binding, launches with
// workspaces, cuda_next steps and dropout keys — runs in CI without a GPU.
// Test-only. Point the runtime at it with
//   LORART_CUDA_DRIVER=.../liblorart_cuda_sim_driver.so
//   LORART_NVRTC=.../liblorart_cuda_sim_driver.so
//
// "NVRTC" compiles a kernel's source with the host compiler into a shared
// object (lora_sim_launch_<entry> per __global__ function) whose bytes stand
// in for the CUBIN; "cuModuleLoadData" writes them to a file and dlopens it.
// Device memory is host memory; every kernel argument and copy must lie in
// an allocation (a wrong offset in the executor's binding is an error, as it
// would be a fault on a GPU). A launch above 48 KiB of dynamic shared memory
// without cuFuncSetAttribute fails as on a GPU. A kernel the simulator
// reports (deadlock, a shuffle of an exited lane, a shared-memory overrun)
// makes the next cuCtxSynchronize return CUDA_ERROR_LAUNCH_FAILED, with the
// simulator's message on stderr.
#include <dlfcn.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>
#include <string>
#include <vector>

#include "sim_runner.h"

#define SIM_API extern "C" __attribute__((visibility("default")))

namespace {

constexpr int kSuccess = 0, kInvalidValue = 1, kNotInitialized = 3, kNotFound = 500,
              kInvalidImage = 200, kLaunchFailed = 719, kOutOfMemory = 2;
// The simulated device's memory: 8 GiB, or LORA_SIM_DEVICE_MEMORY bytes
// (tests of the runtime's device-memory check).
size_t DeviceMemory() {
  const char* env = std::getenv("LORA_SIM_DEVICE_MEMORY");
  return env && *env ? static_cast<size_t>(std::strtoull(env, nullptr, 10)) : size_t{8} << 30;
}
constexpr int kMaxSharedOptin = 166912;  // an A100's opt-in limit per block
constexpr size_t kDefaultShared = 48 * 1024;

std::string WorkDir() {
  const char* w = std::getenv("LORA_SIM_WORK");
  return w && *w ? w : "/tmp/lorart-cuda-sim";
}

struct State {
  std::mutex mu;
  bool initialized = false;
  std::map<uintptr_t, size_t> allocations;  // base -> bytes
  size_t allocated = 0;
  int sticky = kSuccess;
  std::vector<void*> streams;  // cuStreamCreate's, live
  bool default_stream_stuck = false;  // waited for a stuck event (LORA_SIM_STUCK_STREAMS)
  // Work deferred to a stream of our own (lora_sim_defer), in issue order:
  // per stream, the ops not yet run and how many were ever issued (those
  // run are issued - pending).
  struct Deferred {
    void (*fn)(void*);
    void* ctx;
  };
  std::map<void*, std::vector<Deferred>> pending;
  std::map<void*, size_t> issued;
};
State& S() {
  static State s;
  return s;
}

// Whether [p, p + bytes) lies inside one allocation.
bool InAllocation(uintptr_t p, size_t bytes) {
  auto& a = S().allocations;
  auto it = a.upper_bound(p);
  if (it == a.begin()) return false;
  --it;
  return p >= it->first && p + bytes <= it->first + it->second;
}

struct SimFunction {
  std::string entry;
  size_t (*arity)() = nullptr;
  const char* (*launch)(const unsigned*, const unsigned*, size_t, void**, size_t) = nullptr;
  int max_dynamic_shared = kDefaultShared;
};
struct SimModule {
  void* handle = nullptr;
  std::string path;
  std::vector<SimFunction*> functions;
};

// The __global__ functions of a source: `__global__ void [__launch_bounds__(...)] NAME(`.
std::vector<std::string> GlobalEntries(const std::string& src) {
  std::vector<std::string> out;
  for (size_t at = src.find("__global__"); at != std::string::npos;
       at = src.find("__global__", at + 1)) {
    size_t p = src.find("void", at);
    if (p == std::string::npos) break;
    p += 4;
    auto skip_space = [&] {
      while (p < src.size() && std::isspace(static_cast<unsigned char>(src[p]))) ++p;
    };
    skip_space();
    if (src.compare(p, 17, "__launch_bounds__") == 0) {
      p = src.find(')', p);
      if (p == std::string::npos) break;
      ++p;
      skip_space();
    }
    size_t b = p;
    while (p < src.size() && (std::isalnum(static_cast<unsigned char>(src[p])) || src[p] == '_'))
      ++p;
    if (p > b) out.push_back(src.substr(b, p - b));
  }
  return out;
}

struct Program {
  std::string source, name, log, object;
};

// An ELF shared object's size from its header (cuModuleLoadData gets no size).
size_t ElfSize(const unsigned char* p) {
  if (std::memcmp(p, "\x7f" "ELF", 4) != 0 || p[4] != 2) return 0;
  uint64_t shoff, phoff;
  uint16_t phentsize, phnum, shentsize, shnum;
  std::memcpy(&phoff, p + 0x20, 8);
  std::memcpy(&shoff, p + 0x28, 8);
  std::memcpy(&phentsize, p + 0x36, 2);
  std::memcpy(&phnum, p + 0x38, 2);
  std::memcpy(&shentsize, p + 0x3a, 2);
  std::memcpy(&shnum, p + 0x3c, 2);
  return std::max<size_t>(shoff + size_t{shentsize} * shnum, phoff + size_t{phentsize} * phnum);
}

}  // namespace

// ---- NVRTC ----------------------------------------------------------------

SIM_API int nvrtcVersion(int* major, int* minor) {
  // Not a real NVRTC version: the kernel cache keys on it, so simulator
  // objects never meet real CUBINs.
  *major = 0;
  *minor = 1;
  return 0;
}

SIM_API int nvrtcCreateProgram(void** prog, const char* src, const char* name, int, const char* const*,
                               const char* const*) {
  auto* p = new Program;
  p->source = src;
  p->name = name ? name : "kernel.cu";
  *prog = p;
  return 0;
}

SIM_API int nvrtcCompileProgram(void* prog, int, const char* const*) {
  auto* p = static_cast<Program*>(prog);
  std::string so;
  std::string err = lora_sim_test::BuildSimObject(p->source, GlobalEntries(p->source), WorkDir(), &so);
  if (!err.empty()) {
    p->log = err;
    return 6;  // NVRTC_ERROR_COMPILATION
  }
  std::ifstream in(so, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  p->object = ss.str();
  return p->object.empty() ? 6 : 0;
}

SIM_API int nvrtcGetProgramLogSize(void* prog, size_t* n) {
  *n = static_cast<Program*>(prog)->log.size() + 1;
  return 0;
}
SIM_API int nvrtcGetProgramLog(void* prog, char* out) {
  const std::string& l = static_cast<Program*>(prog)->log;
  std::memcpy(out, l.c_str(), l.size() + 1);
  return 0;
}
SIM_API int nvrtcGetCUBINSize(void* prog, size_t* n) {
  *n = static_cast<Program*>(prog)->object.size();
  return 0;
}
SIM_API int nvrtcGetCUBIN(void* prog, char* out) {
  const std::string& o = static_cast<Program*>(prog)->object;
  std::memcpy(out, o.data(), o.size());
  return 0;
}
SIM_API int nvrtcDestroyProgram(void** prog) {
  delete static_cast<Program*>(*prog);
  *prog = nullptr;
  return 0;
}
SIM_API const char* nvrtcGetErrorString(int rc) {
  return rc == 6 ? "NVRTC_ERROR_COMPILATION" : rc == 0 ? "NVRTC_SUCCESS" : "NVRTC_ERROR";
}

// ---- The driver -----------------------------------------------------------

SIM_API int cuInit(unsigned) {
  std::lock_guard<std::mutex> l(S().mu);
  S().initialized = true;
  return kSuccess;
}
SIM_API int cuDeviceGetCount(int* n) {
  *n = 1;
  return S().initialized ? kSuccess : kNotInitialized;
}
SIM_API int cuDeviceGet(int* d, int ordinal) {
  if (ordinal != 0) return kInvalidValue;
  *d = 0;
  return kSuccess;
}
SIM_API int cuDeviceGetName(char* name, int len, int) {
  std::snprintf(name, static_cast<size_t>(len), "lorart CUDA simulator");
  return kSuccess;
}
SIM_API int cuDeviceGetAttribute(int* v, int attr, int) {
  switch (attr) {
    case 75: *v = 8; return kSuccess;  // compute capability 8.0
    case 76: *v = 0; return kSuccess;
    case 97: *v = kMaxSharedOptin; return kSuccess;
    default: return kInvalidValue;
  }
}
SIM_API int cuDeviceTotalMem_v2(size_t* bytes, int) {
  *bytes = DeviceMemory();
  return kSuccess;
}
SIM_API int cuDevicePrimaryCtxRetain(void** ctx, int) {
  static int context;
  *ctx = &context;
  return kSuccess;
}
SIM_API int cuDevicePrimaryCtxRelease_v2(int) { return kSuccess; }
SIM_API int cuCtxSetCurrent(void*) { return kSuccess; }
bool StuckStreams() {
  const char* stuck = std::getenv("LORA_SIM_STUCK_STREAMS");
  return stuck && *stuck == '1';
}

// Runs the work deferred to stream `s` up to its `upto`-th op, in order, out
// of the lock (an op may take long: the fake NCCL's MPI sums).
void Flush(void* s, size_t upto) {
  if (StuckStreams()) return;
  std::vector<State::Deferred> run;
  {
    std::lock_guard<std::mutex> l(S().mu);
    std::vector<State::Deferred>& q = S().pending[s];
    const size_t done = S().issued[s] - q.size();
    const size_t n = std::min(upto > done ? upto - done : 0, q.size());
    run.assign(q.begin(), q.begin() + static_cast<std::ptrdiff_t>(n));
    q.erase(q.begin(), q.begin() + static_cast<std::ptrdiff_t>(n));
  }
  for (const State::Deferred& d : run) d.fn(d.ctx);
}
void FlushAll() {
  std::vector<void*> streams;
  {
    std::lock_guard<std::mutex> l(S().mu);
    streams = S().streams;
  }
  for (void* s : streams) Flush(s, SIZE_MAX);
}

SIM_API int cuCtxSynchronize() {
  FlushAll();
  std::lock_guard<std::mutex> l(S().mu);
  return S().sticky;
}

// Streams: the simulator runs every launch to completion before returning,
// so the default stream is always idle. Work on a stream of our own can be
// deferred (lora_sim_defer, which the fake NCCL uses for its sums): it runs
// when something waits for it (cuStreamWaitEvent on an event recorded after
// it, cuStreamQuery or cuEventSynchronize that finds it, cuCtxSynchronize),
// so a missing wait leaves it undone, as on a GPU where it would still be
// running. The handles are checked (a destroyed or unknown stream is an
// error). LORA_SIM_STUCK_STREAMS=1 models a
// GPU whose NCCL stream never finishes (a peer stopped): the streams of our
// own never finish (cuStreamQuery says CUDA_ERROR_NOT_READY for ever), nor
// do events recorded on them, nor a stream that waits for such an event (the
// default stream too), so only the collective timeout can end the run.
constexpr int kNotReady = 600;  // CUDA_ERROR_NOT_READY
bool KnownStream(void* s) {
  std::lock_guard<std::mutex> l(S().mu);
  return !s || std::find(S().streams.begin(), S().streams.end(), s) != S().streams.end();
}
// For a stand-in library (fake NCCL): runs fn(ctx) as work on `stream`, now
// for the default stream, else when it is waited for. Not a CUDA symbol.
SIM_API int lora_sim_defer(void* stream, void (*fn)(void*), void* ctx) {
  if (!fn || !KnownStream(stream)) return kInvalidValue;
  if (!stream) {
    fn(ctx);
    return kSuccess;
  }
  std::lock_guard<std::mutex> l(S().mu);
  S().pending[stream].push_back({fn, ctx});
  ++S().issued[stream];
  return kSuccess;
}
SIM_API int cuStreamCreate(void** s, unsigned) {
  if (!s) return kInvalidValue;
  std::lock_guard<std::mutex> l(S().mu);
  *s = new char;
  S().streams.push_back(*s);
  return kSuccess;
}
SIM_API int cuStreamDestroy_v2(void* s) {
  if (!KnownStream(s)) return kInvalidValue;
  Flush(s, SIZE_MAX);  // CUDA lets the stream's work finish
  std::lock_guard<std::mutex> l(S().mu);
  auto it = std::find(S().streams.begin(), S().streams.end(), s);
  if (!s || it == S().streams.end()) return kInvalidValue;
  S().streams.erase(it);
  delete static_cast<char*>(s);
  return kSuccess;
}
SIM_API int cuStreamQuery(void* s) {
  if (!KnownStream(s)) return kInvalidValue;
  if (StuckStreams() && (s || S().default_stream_stuck)) return kNotReady;
  if (s) Flush(s, SIZE_MAX);
  return kSuccess;
}

SIM_API int cuMemAlloc_v2(uint64_t* p, size_t bytes) {
  std::lock_guard<std::mutex> l(S().mu);
  if (S().allocated + bytes > DeviceMemory()) return kOutOfMemory;
  void* m = std::aligned_alloc(256, (bytes + 255) / 256 * 256);
  if (!m) return kOutOfMemory;
  std::memset(m, 0xcd, bytes);  // uninitialised, as on a GPU
  S().allocations[reinterpret_cast<uintptr_t>(m)] = bytes;
  S().allocated += bytes;
  *p = reinterpret_cast<uintptr_t>(m);
  return kSuccess;
}
SIM_API int cuMemFree_v2(uint64_t p) {
  std::lock_guard<std::mutex> l(S().mu);
  auto it = S().allocations.find(p);
  if (it == S().allocations.end()) return kInvalidValue;
  S().allocated -= it->second;
  S().allocations.erase(it);
  std::free(reinterpret_cast<void*>(p));
  return kSuccess;
}
SIM_API int cuMemGetInfo_v2(size_t* free_bytes, size_t* total) {
  std::lock_guard<std::mutex> l(S().mu);
  *free_bytes = DeviceMemory() > S().allocated ? DeviceMemory() - S().allocated : 0;
  *total = DeviceMemory();
  return kSuccess;
}
SIM_API int cuMemcpyHtoD_v2(uint64_t dst, const void* src, size_t bytes) {
  std::lock_guard<std::mutex> l(S().mu);
  if (!InAllocation(dst, bytes)) return kInvalidValue;
  std::memcpy(reinterpret_cast<void*>(dst), src, bytes);
  return S().sticky;
}
SIM_API int cuMemcpyDtoH_v2(void* dst, uint64_t src, size_t bytes) {
  std::lock_guard<std::mutex> l(S().mu);
  if (!InAllocation(src, bytes)) return kInvalidValue;
  std::memcpy(dst, reinterpret_cast<const void*>(src), bytes);
  return S().sticky;
}
SIM_API int cuMemsetD8_v2(uint64_t dst, unsigned char v, size_t bytes) {
  std::lock_guard<std::mutex> l(S().mu);
  if (!InAllocation(dst, bytes)) return kInvalidValue;
  std::memset(reinterpret_cast<void*>(dst), v, bytes);
  return kSuccess;
}

SIM_API int cuModuleLoadData(void** module, const void* image) {
  const auto* bytes = static_cast<const unsigned char*>(image);
  size_t n = ElfSize(bytes);
  if (n == 0) return kInvalidImage;
  auto* m = new SimModule;
  char path[] = "/tmp/lorart-sim-module-XXXXXX";
  int fd = ::mkstemp(path);
  if (fd < 0 || ::write(fd, bytes, n) != static_cast<ssize_t>(n)) {
    if (fd >= 0) ::close(fd);
    delete m;
    return kInvalidImage;
  }
  ::close(fd);
  m->path = path;
  m->handle = dlopen(m->path.c_str(), RTLD_NOW | RTLD_LOCAL);
  std::remove(m->path.c_str());
  if (!m->handle) {
    std::fprintf(stderr, "cuda simulator: cannot load a module: %s\n", dlerror());
    delete m;
    return kInvalidImage;
  }
  *module = m;
  return kSuccess;
}
SIM_API int cuModuleUnload(void* module) {
  auto* m = static_cast<SimModule*>(module);
  for (SimFunction* f : m->functions) delete f;
  dlclose(m->handle);
  delete m;
  return kSuccess;
}
SIM_API int cuModuleGetFunction(void** fn, void* module, const char* name) {
  auto* m = static_cast<SimModule*>(module);
  auto* f = new SimFunction;
  f->entry = name;
  f->arity = reinterpret_cast<size_t (*)()>(dlsym(m->handle, ("lora_sim_arity_" + f->entry).c_str()));
  f->launch = reinterpret_cast<decltype(f->launch)>(
      dlsym(m->handle, ("lora_sim_launch_" + f->entry).c_str()));
  if (!f->arity || !f->launch) {
    delete f;
    return kNotFound;
  }
  m->functions.push_back(f);
  *fn = f;
  return kSuccess;
}
SIM_API int cuFuncSetAttribute(void* fn, int attr, int value) {
  if (attr != 8 || value < 0 || value > kMaxSharedOptin) return kInvalidValue;
  static_cast<SimFunction*>(fn)->max_dynamic_shared = value;
  return kSuccess;
}

SIM_API int cuLaunchKernel(void* fn, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by,
                           unsigned bz, unsigned smem, void* stream, void** params, void** extra) {
  auto* f = static_cast<SimFunction*>(fn);
  if (stream || extra || !params) return kInvalidValue;
  if (smem > static_cast<unsigned>(f->max_dynamic_shared)) {
    std::fprintf(stderr, "cuda simulator: %s: %u bytes of dynamic shared memory above the "
                 "function's limit of %d (cuFuncSetAttribute)\n", f->entry.c_str(), smem,
                 f->max_dynamic_shared);
    return kInvalidValue;
  }
  size_t n = f->arity();
  std::vector<void*> args(n);
  std::lock_guard<std::mutex> l(S().mu);
  for (size_t i = 0; i < n; ++i) {
    std::memcpy(&args[i], params[i], sizeof(void*));
    if (!InAllocation(reinterpret_cast<uintptr_t>(args[i]), 1)) {
      std::fprintf(stderr, "cuda simulator: %s: argument %zu (%p) is not device memory\n",
                   f->entry.c_str(), i, args[i]);
      return kInvalidValue;
    }
  }
  unsigned grid[3] = {gx, gy, gz}, block[3] = {bx, by, bz};
  const char* err = f->launch(grid, block, smem, args.data(), n);
  if (err && *err) {
    std::fprintf(stderr, "cuda simulator: %s: %s\n", f->entry.c_str(), err);
    S().sticky = kLaunchFailed;
  }
  return kSuccess;
}

// Events: launches run to completion inside cuLaunchKernel, so recording an
// event is reading the clock.
struct SimEvent {
  std::chrono::steady_clock::time_point at;
  bool recorded = false;
  bool stuck = false;  // recorded on a stream that never finishes
  bool timing = true;  // not created with CU_EVENT_DISABLE_TIMING
  void* stream = nullptr;  // where it was last recorded
  size_t upto = 0;         // that stream's deferred ops issued before the record
};
SIM_API int cuEventCreate(void** e, unsigned flags) {
  *e = new SimEvent();
  static_cast<SimEvent*>(*e)->timing = (flags & 2) == 0;
  return kSuccess;
}
SIM_API int cuEventDestroy_v2(void* e) {
  delete static_cast<SimEvent*>(e);
  return kSuccess;
}
SIM_API int cuEventRecord(void* e, void* stream) {
  if (!e || !KnownStream(stream)) return kInvalidValue;
  auto* ev = static_cast<SimEvent*>(e);
  ev->stuck = StuckStreams() && (stream || S().default_stream_stuck);
  ev->stream = stream;
  {
    std::lock_guard<std::mutex> l(S().mu);
    ev->upto = stream ? S().issued[stream] : 0;
  }
  ev->at = std::chrono::steady_clock::now();
  ev->recorded = true;
  return kSuccess;
}
SIM_API int cuStreamWaitEvent(void* s, void* e, unsigned flags) {
  if (!e || flags != 0 || !KnownStream(s)) return kInvalidValue;
  auto* ev = static_cast<SimEvent*>(e);
  if (!s && ev->stuck) S().default_stream_stuck = true;
  // Launches on `s` run when issued, so the event's work must be done now.
  if (ev->stream && ev->stream != s) Flush(ev->stream, ev->upto);
  return kSuccess;
}
SIM_API int cuEventSynchronize(void* e) {
  if (!e) return kInvalidValue;
  auto* ev = static_cast<SimEvent*>(e);
  if (ev->stream) Flush(ev->stream, ev->upto);
  return kSuccess;
}
SIM_API int cuEventElapsedTime(float* ms, void* a, void* b) {
  auto* x = static_cast<SimEvent*>(a);
  auto* y = static_cast<SimEvent*>(b);
  if (!x || !y || !x->recorded || !y->recorded || !x->timing || !y->timing) return kInvalidValue;
  *ms = std::chrono::duration<float, std::milli>(y->at - x->at).count();
  return kSuccess;
}

SIM_API int cuGetErrorName(int rc, const char** s) {
  switch (rc) {
    case kSuccess: *s = "CUDA_SUCCESS"; break;
    case kInvalidValue: *s = "CUDA_ERROR_INVALID_VALUE"; break;
    case kOutOfMemory: *s = "CUDA_ERROR_OUT_OF_MEMORY"; break;
    case kNotInitialized: *s = "CUDA_ERROR_NOT_INITIALIZED"; break;
    case kInvalidImage: *s = "CUDA_ERROR_INVALID_IMAGE"; break;
    case kNotFound: *s = "CUDA_ERROR_NOT_FOUND"; break;
    case kLaunchFailed: *s = "CUDA_ERROR_LAUNCH_FAILED"; break;
    default: *s = "CUDA_ERROR_UNKNOWN"; return kInvalidValue;
  }
  return kSuccess;
}
SIM_API int cuGetErrorString(int rc, const char** s) {
  switch (rc) {
    case kLaunchFailed: *s = "unspecified launch failure (the simulator's message is on stderr)"; break;
    case kInvalidValue: *s = "invalid argument"; break;
    case kOutOfMemory: *s = "out of memory"; break;
    default: return cuGetErrorName(rc, s);
  }
  return kSuccess;
}
