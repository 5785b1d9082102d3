#include "lorart/cuda/nvrtc.h"

#include <cctype>

#include <dlfcn.h>
#include <sys/stat.h>

#include <cstdlib>
#include <fstream>
#include <mutex>
#include <sstream>

#include "lorart/io/safetensors_write.h"

namespace lorart::cuda {

// The few NVRTC entry points lorart uses, resolved by name (the C ABI of
// nvrtc.h; types reduced to what crosses the boundary).
struct Nvrtc::Api {
  using Program = void*;
  int (*version)(int*, int*);
  int (*create)(Program*, const char*, const char*, int, const char* const*, const char* const*);
  int (*compile)(Program, int, const char* const*);
  int (*log_size)(Program, size_t*);
  int (*log)(Program, char*);
  int (*cubin_size)(Program, size_t*);
  int (*cubin)(Program, char*);
  int (*destroy)(Program*);
  const char* (*error_string)(int);
};

namespace {

void* OpenFirst(const std::vector<std::string>& names, std::string* tried) {
  for (const std::string& n : names) {
    if (void* h = ::dlopen(n.c_str(), RTLD_NOW | RTLD_LOCAL)) return h;
    *tried += (tried->empty() ? "" : ", ") + n;
  }
  return nullptr;
}

template <typename F>
bool Resolve(void* lib, const char* name, F* out) {
  *out = reinterpret_cast<F>(::dlsym(lib, name));
  return *out != nullptr;
}

uint64_t Fnv1a(const std::string& s, uint64_t h = 1469598103934665603ull) {
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

}  // namespace

StatusOr<const Nvrtc*> Nvrtc::Get() {
  static Nvrtc instance;
  static Status status = [] {
    std::string tried;
    std::vector<std::string> names = {"libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so",
                                      "/usr/local/cuda/lib64/libnvrtc.so"};
    if (const char* env = std::getenv("LORART_NVRTC"); env && *env) names = {env};
    void* lib = OpenFirst(names, &tried);
    if (!lib) return UnavailableError("NVRTC is not installed (tried " + tried + ")");
    static Api api;
    bool ok = Resolve(lib, "nvrtcVersion", &api.version) &&
              Resolve(lib, "nvrtcCreateProgram", &api.create) &&
              Resolve(lib, "nvrtcCompileProgram", &api.compile) &&
              Resolve(lib, "nvrtcGetProgramLogSize", &api.log_size) &&
              Resolve(lib, "nvrtcGetProgramLog", &api.log) &&
              Resolve(lib, "nvrtcGetCUBINSize", &api.cubin_size) &&
              Resolve(lib, "nvrtcGetCUBIN", &api.cubin) &&
              Resolve(lib, "nvrtcDestroyProgram", &api.destroy) &&
              Resolve(lib, "nvrtcGetErrorString", &api.error_string);
    if (!ok) return UnavailableError("the NVRTC library lacks an entry point lorart needs");
    instance.api_ = &api;
    api.version(&instance.major_, &instance.minor_);
    return OkStatus();
  }();
  if (!status.ok()) return status;
  return &instance;
}

Status Nvrtc::CompileToCubin(const std::string& source, const std::string& name,
                             const std::string& arch, const std::vector<std::string>& options,
                             std::string* cubin, std::string* log_out) const {
  Api::Program prog = nullptr;
  std::string file = name + ".cu";
  if (int rc = api_->create(&prog, source.c_str(), file.c_str(), 0, nullptr, nullptr))
    return InternalError(StrFormat("kernel %s: nvrtcCreateProgram failed: %s", name.c_str(),
                                   api_->error_string(rc)));
  std::vector<std::string> opts = options;
  opts.push_back("--gpu-architecture=" + arch);
  opts.push_back("-std=c++17");
  std::vector<const char*> argv;
  for (const std::string& o : opts) argv.push_back(o.c_str());
  int rc = api_->compile(prog, static_cast<int>(argv.size()), argv.data());
  Status st;
  if (rc != 0) {
    size_t n = 0;
    api_->log_size(prog, &n);
    std::string log(n, '\0');
    if (n) api_->log(prog, log.data());
    while (!log.empty() && (log.back() == '\0' || log.back() == '\n')) log.pop_back();
    st = InvalidArgumentError(StrFormat("kernel %s failed to compile for %s: %s; NVRTC log: %s",
                                        name.c_str(), arch.c_str(), api_->error_string(rc),
                                        log.c_str()));
  } else {
    size_t n = 0;
    api_->cubin_size(prog, &n);
    cubin->assign(n, '\0');
    api_->cubin(prog, cubin->data());
    if (log_out) {
      size_t ln = 0;
      api_->log_size(prog, &ln);
      log_out->assign(ln, '\0');
      if (ln) api_->log(prog, log_out->data());
      while (!log_out->empty() && log_out->back() == '\0') log_out->pop_back();
    }
  }
  api_->destroy(&prog);
  return st;
}

Status ParsePtxasReport(const std::string& log, const std::string& entry, KernelResources* out) {
  // ptxas info    : Compiling entry function 'NAME' for 'sm_80'
  // ptxas info    : Function properties for NAME
  // ptxas         .     0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
  // ptxas info    : Used 32 registers, used 0 barriers, 360 bytes cmem[0]
  size_t at = log.find("Compiling entry function '" + entry + "'");
  if (at == std::string::npos)
    return NotFoundError("no ptxas report for kernel " + entry + " in the NVRTC log");
  size_t next = log.find("Compiling entry function", at + 1);
  std::string part = log.substr(at, next == std::string::npos ? std::string::npos : next - at);
  KernelResources r;
  auto number_before = [&](const std::string& what, int64_t* v) {
    size_t p = part.find(what);
    if (p == std::string::npos) return false;
    size_t e = p;
    while (e > 0 && part[e - 1] == ' ') --e;
    size_t b = e;
    while (b > 0 && std::isdigit(static_cast<unsigned char>(part[b - 1]))) --b;
    if (b == e) return false;
    *v = std::stoll(part.substr(b, e - b));
    return true;
  };
  if (!number_before("registers", &r.registers))
    return NotFoundError("no register count for kernel " + entry + " in the ptxas report");
  number_before("bytes stack frame", &r.stack_bytes);
  number_before("bytes spill stores", &r.spill_store_bytes);
  number_before("bytes spill loads", &r.spill_load_bytes);
  *out = r;
  return OkStatus();
}

std::vector<std::string> DefaultNvrtcOptions() {
  std::vector<std::string> opts;
  for (const char* dir : {"/usr/local/cuda/include"}) {
    struct stat sb;
    if (::stat(dir, &sb) == 0) {
      opts.push_back(std::string("-I") + dir);
      std::string cccl = std::string(dir) + "/cccl";
      if (::stat(cccl.c_str(), &sb) == 0) opts.push_back("-I" + cccl);
    }
  }
  return opts;
}

std::string KernelCacheDir(const std::string& dir) {
  if (!dir.empty()) return dir;
  if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x) return std::string(x) + "/lorac";
  if (const char* h = std::getenv("HOME"); h && *h) return std::string(h) + "/.cache/lorac";
  return "/tmp/lorac-kernel-cache";
}

Status CompileCached(const Nvrtc& nvrtc, const std::string& cache_dir, const std::string& source,
                     const std::string& name, const std::string& arch,
                     const std::vector<std::string>& options, std::string* cubin, bool* hit) {
  std::string key_text = source + '\0' + arch + '\0' + std::to_string(nvrtc.major()) + "." +
                         std::to_string(nvrtc.minor());
  for (const std::string& o : options) key_text += '\0' + o;
  char key[17];
  snprintf(key, sizeof key, "%016llx", static_cast<unsigned long long>(Fnv1a(key_text)));
  std::string path = cache_dir + "/" + key + ".cubin";
  std::ifstream in(path, std::ios::binary);
  if (in) {
    std::stringstream ss;
    ss << in.rdbuf();
    *cubin = ss.str();
    *hit = true;
    return OkStatus();
  }
  *hit = false;
  LORA_RETURN_IF_ERROR(nvrtc.CompileToCubin(source, name, arch, options, cubin));
  std::string parent;
  for (char c : cache_dir + "/") {
    if (c == '/' && !parent.empty()) ::mkdir(parent.c_str(), 0755);
    parent.push_back(c);
  }
  // A cache that cannot be written costs a recompile next time, nothing more.
  (void)WriteFileAtomically(path, *cubin);
  return OkStatus();
}

}  // namespace lorart::cuda
