#include "lorart/dist/collective.h"

#include <dlfcn.h>
#include <sched.h>
#include <time.h>
#include <unistd.h>

#include <chrono>
#include <climits>
#include <cstdlib>
#include <thread>

#include "lorart/base/strings.h"
#include "lorart/dist/mpi_shim.h"

namespace lorart::dist {

struct MpiApi {
  int (*abi)();
  int (*init)(int*, int*, int*, char*, int);
  void (*library_version)(char*, int);
  int (*iallreduce_sum)(void*, long long, int, void**, char*, int);
  int (*test)(void*, int*, char*, int);
  int (*ibcast)(void*, long long, int, void**, char*, int);
  int (*roll_call)(long long, double, long long*, char*, int);
  void (*abort)(int);
  int (*finalize)();
};

namespace {

constexpr int kErrLen = 512;
constexpr int kFloat = 0, kDouble = 1;

std::string ExecutableDir() {
  char buf[PATH_MAX];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return "";
  std::string path(buf, static_cast<size_t>(n));
  size_t slash = path.rfind('/');
  return slash == std::string::npos ? "" : path.substr(0, slash);
}

// Loads the shim once; the handle stays for the life of the process (MPI is
// initialized once per process).
Status LoadMpi(const MpiApi** out) {
  static MpiApi api;
  static std::string error;
  static bool loaded = false;
  if (loaded) {
    *out = &api;
    return OkStatus();
  }
  std::vector<std::string> names;
  if (const char* env = std::getenv("LORART_MPI_SHIM"); env && *env) {
    names.push_back(env);
  } else {
    std::string dir = ExecutableDir();
    if (!dir.empty()) {
      names.push_back(dir + "/../lib/liblorart_mpi.so");
      names.push_back(dir + "/liblorart_mpi.so");
    }
    names.push_back("liblorart_mpi.so");
  }
  void* lib = nullptr;
  std::string tried;
  for (const std::string& n : names) {
    // RTLD_GLOBAL: Open MPI's own plugins, which it dlopens, resolve
    // libmpi's symbols globally.
    if ((lib = ::dlopen(n.c_str(), RTLD_NOW | RTLD_GLOBAL))) break;
    const char* e = ::dlerror();
    tried += "\n  " + n + ": " + (e ? e : "not found");
  }
  if (!lib)
    return UnavailableError(
        "this process was started by an MPI launcher but lorart's MPI support "
        "(liblorart_mpi.so, built when MPI is found: apt-get install libopenmpi-dev) could not "
        "be loaded; set LORART_MPI_SHIM to its path. Tried:" +
        tried);
  auto sym = [&](const char* name, auto* fn) -> Status {
    void* p = ::dlsym(lib, name);
    if (!p) return UnavailableError(StrFormat("liblorart_mpi.so has no %s", name));
    *fn = reinterpret_cast<std::remove_pointer_t<decltype(fn)>>(p);
    return OkStatus();
  };
  LORA_RETURN_IF_ERROR(sym("lorart_mpi_abi", &api.abi));
  if (api.abi() != LORART_MPI_SHIM_ABI)
    return UnavailableError(StrFormat(
        "liblorart_mpi.so has interface version %d, this lorart needs %d: use the shim built "
        "with this lorart",
        api.abi(), LORART_MPI_SHIM_ABI));
  LORA_RETURN_IF_ERROR(sym("lorart_mpi_init", &api.init));
  LORA_RETURN_IF_ERROR(sym("lorart_mpi_library_version", &api.library_version));
  LORA_RETURN_IF_ERROR(sym("lorart_mpi_iallreduce_sum", &api.iallreduce_sum));
  LORA_RETURN_IF_ERROR(sym("lorart_mpi_test", &api.test));
  LORA_RETURN_IF_ERROR(sym("lorart_mpi_ibcast", &api.ibcast));
  LORA_RETURN_IF_ERROR(sym("lorart_mpi_roll_call", &api.roll_call));
  LORA_RETURN_IF_ERROR(sym("lorart_mpi_abort", &api.abort));
  LORA_RETURN_IF_ERROR(sym("lorart_mpi_finalize", &api.finalize));
  loaded = true;
  *out = &api;
  return OkStatus();
}

}  // namespace

void Backoff::Pause() {
  if (++rounds_ < 64) {
    sched_yield();
    return;
  }
  timespec ts{0, std::min<long>(1000000, 20000L * (rounds_ - 63))};
  nanosleep(&ts, nullptr);
}

std::unique_ptr<Collective> Collective::Single() {
  return std::unique_ptr<Collective>(new Collective());
}

Status Collective::Mpi(const CollectiveOptions& options, std::unique_ptr<Collective>* out) {
  if (!(options.timeout_s > 0))
    return InvalidArgumentError(
        StrFormat("the collective timeout must be positive, got %g s", options.timeout_s));
  const MpiApi* api = nullptr;
  LORA_RETURN_IF_ERROR(LoadMpi(&api));
  std::unique_ptr<Collective> c(new Collective());
  c->mpi_ = api;
  c->options_ = options;
  char err[kErrLen] = "";
  if (api->init(&c->rank_, &c->size_, &c->local_rank_, err, kErrLen) != 0)
    return UnavailableError(StrFormat("MPI initialization failed: %s", err));
  char version[256] = "";
  api->library_version(version, sizeof version);
  c->description_ = StrFormat("mpi: %s, %d ranks", version, c->size_);
  *out = std::move(c);
  return OkStatus();
}

Collective::~Collective() {
  if (mpi_) {
    (void)WaitAll();
    mpi_->finalize();
  }
}

Status Collective::StartAllReduce(void* data, size_t n, int dtype, Request* out) {
  char err[kErrLen] = "";
  if (mpi_->iallreduce_sum(data, static_cast<long long>(n), dtype, &out->handle, err, kErrLen))
    return UnavailableError(StrFormat("MPI_Iallreduce: %s", err));
  out->done = false;
  return OkStatus();
}

Status Collective::TestRequests(std::vector<Request>* requests, bool* all_done) {
  *all_done = true;
  for (Request& r : *requests) {
    if (r.done) continue;
    int done = 0;
    char err[kErrLen] = "";
    if (mpi_->test(r.handle, &done, err, kErrLen))
      return UnavailableError(StrFormat("MPI_Test: %s", err));
    r.done = done != 0;
    if (!r.done) *all_done = false;
  }
  return OkStatus();
}

Status Collective::TimedOut(int64_t seq, const std::string& what) {
  std::vector<long long> seen(static_cast<size_t>(size_), -1);
  char err[kErrLen] = "";
  const double grace = std::min(10.0, std::max(1.0, options_.timeout_s / 4));
  mpi_->roll_call(seq, grace, seen.data(), err, kErrLen);
  std::string silent, elsewhere;
  for (int r = 0; r < size_; ++r) {
    if (r == rank_) continue;
    if (seen[r] < 0)
      silent += (silent.empty() ? "" : ", ") + std::to_string(r);
    else if (seen[r] != seq)
      elsewhere +=
          StrFormat("%srank %d at collective #%lld", elsewhere.empty() ? "" : ", ", r, seen[r]);
  }
  std::string who;
  if (!silent.empty())
    who += StrFormat("; rank%s %s did not answer (stopped, hung or dead)",
                     silent.find(',') == std::string::npos ? "" : "s", silent.c_str());
  if (!elsewhere.empty()) who += "; waiting elsewhere: " + elsewhere;
  if (who.empty()) who = "; every rank answered at this collective (a slow network?)";
  return UnavailableError(StrFormat(
      "rank %d of %d: collective #%lld (%s) did not complete in %g s%s (raise "
      "--collective-timeout for steps that are legitimately this slow)",
      rank_, size_, static_cast<long long>(seq), what.c_str(), options_.timeout_s, who.c_str()));
}

Status Collective::WaitRequests(std::vector<Request>* requests, int64_t seq,
                                const std::string& what) {
  const auto deadline = Deadline();
  Backoff backoff;
  for (;;) {
    bool done = false;
    LORA_RETURN_IF_ERROR(TestRequests(requests, &done), "collective #%lld (%s)",
                         static_cast<long long>(seq), what.c_str());
    if (done) return OkStatus();
    if (std::chrono::steady_clock::now() > deadline) return TimedOut(seq, what);
    backoff.Pause();
  }
}

Status Collective::BlockingAllReduce(void* data, size_t n, int dtype, const std::string& what) {
  if (size_ == 1 || n == 0) return OkStatus();
  std::vector<Request> r(1);
  const int64_t seq = seq_++;
  LORA_RETURN_IF_ERROR(StartAllReduce(data, n, dtype, &r[0]), "collective #%lld (%s)",
                       static_cast<long long>(seq), what.c_str());
  return WaitRequests(&r, seq, what);
}

Status Collective::AllReduceSum(float* data, size_t n, const std::string& what) {
  return BlockingAllReduce(data, n, kFloat, what);
}

Status Collective::AllReduceSum(double* data, size_t n, const std::string& what) {
  return BlockingAllReduce(data, n, kDouble, what);
}

Status Collective::StartBucket(int64_t bucket, const std::vector<Span>& tensors,
                               const std::string& what) {
  if (size_ == 1) return OkStatus();
  if (buckets_.count(bucket))
    return InternalError(StrFormat("gradient bucket %lld was started twice without a wait",
                                   static_cast<long long>(bucket)));
  Bucket& b = buckets_[bucket];
  b.seq = seq_++;
  b.what = what;
  b.requests.resize(tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i)
    LORA_RETURN_IF_ERROR(StartAllReduce(tensors[i].data, tensors[i].n, kFloat, &b.requests[i]),
                         "collective #%lld (%s)", static_cast<long long>(b.seq), what.c_str());
  return OkStatus();
}

Status Collective::WaitBucket(int64_t bucket) {
  auto it = buckets_.find(bucket);
  if (it == buckets_.end()) return OkStatus();
  Status s = WaitRequests(&it->second.requests, it->second.seq, it->second.what);
  buckets_.erase(it);
  return s;
}

Status Collective::Progress() {
  // One MPI_Test drives MPI's progress engine for every outstanding
  // operation: testing the oldest unfinished request is enough (a large
  // model has thousands of requests in flight and a step thousands of
  // launches).
  for (auto& [id, b] : buckets_) {
    for (Request& r : b.requests) {
      if (r.done) continue;
      int done = 0;
      char err[kErrLen] = "";
      if (mpi_->test(r.handle, &done, err, kErrLen))
        return UnavailableError(StrFormat("collective #%lld (%s): MPI_Test: %s",
                                          static_cast<long long>(b.seq), b.what.c_str(), err));
      r.done = done != 0;
      if (!r.done) return OkStatus();
    }
  }
  return OkStatus();
}

Status Collective::WaitAll() {
  while (!buckets_.empty()) LORA_RETURN_IF_ERROR(WaitBucket(buckets_.begin()->first));
  return OkStatus();
}

Status Collective::Broadcast(void* data, size_t bytes, int root, const std::string& what) {
  if (size_ == 1) return OkStatus();
  char err[kErrLen] = "";
  const int64_t seq = seq_++;
  std::vector<Request> r(1);
  if (mpi_->ibcast(data, static_cast<long long>(bytes), root, &r[0].handle, err, kErrLen))
    return UnavailableError(StrFormat("collective #%lld (%s): MPI_Ibcast: %s",
                                      static_cast<long long>(seq), what.c_str(), err));
  // Waited for like every collective: a rank that never arrives is named.
  return WaitRequests(&r, seq, what);
}

void Collective::Abort(int code) {
  if (mpi_ && size_ > 1) mpi_->abort(code);
}

Status FromEnvironment(const std::string& mode, const CollectiveOptions& options,
                       std::unique_ptr<Collective>* out) {
  auto env = [](const char* name) -> std::string {
    const char* v = std::getenv(name);
    return v ? v : "";
  };
  if (mode == "none") {
    *out = Collective::Single();
    return OkStatus();
  }
  if (mode != "auto" && mode != "mpi")
    return InvalidArgumentError("--dist must be auto, mpi or none, got '" + mode + "'");
  const bool mpi_launcher =
      !env("OMPI_COMM_WORLD_SIZE").empty() || !env("PMI_SIZE").empty() || !env("PMIX_RANK").empty();
  if (mode == "mpi" || mpi_launcher) return Collective::Mpi(options, out);
  const std::string world = env("WORLD_SIZE");
  if (!world.empty() && world != "1" && world != "0")
    return InvalidArgumentError(
        "WORLD_SIZE=" + world +
        " (a torchrun-style launch) but no MPI launcher: lorart's data-parallel runs are started "
        "with mpirun or srun (docs/distributed.md; CUDA plans too: NCCL's unique id goes over "
        "MPI); the torchrun-style bootstrap is not built. Unset WORLD_SIZE or pass --dist none "
        "for one process");
  *out = Collective::Single();
  return OkStatus();
}

}  // namespace lorart::dist
