#include "lorart/dist/collective.h"

#include <dlfcn.h>
#include <sched.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <climits>
#include <cstring>
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
constexpr long long kNotThere = -2;  // a roll call's answer for a rank not in the job

// Deadlines are time points: a timeout must stay far inside their range.
constexpr double kMaxTimeoutS = 1e7;  // about 116 days

Status CheckTimeout(const CollectiveOptions& options) {
  if (!(options.timeout_s > 0) || !(options.timeout_s <= kMaxTimeoutS))
    return InvalidArgumentError(
        StrFormat("--collective-timeout must be positive and at most %g s, got %g s", kMaxTimeoutS,
                  options.timeout_s));
  return OkStatus();
}

// "rank 3" or "ranks 1, 4".
std::string Ranks(const std::vector<int>& ranks) {
  std::string list;
  for (int r : ranks) list += (list.empty() ? "" : ", ") + std::to_string(r);
  return StrFormat("rank%s %s", ranks.size() == 1 ? "" : "s", list.c_str());
}

// Adds the `n` values of type T in `part` to `sum` (or copies them, for
// the first part).
template <class T>
void AddPart(const std::string& part, size_t n, bool first, T* sum) {
  for (size_t i = 0; i < n; ++i) {
    T x;
    std::memcpy(&x, part.data() + i * sizeof x, sizeof x);
    sum[i] = first ? x : sum[i] + x;
  }
}

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
  LORA_RETURN_IF_ERROR(CheckTimeout(options));
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

std::string Collective::StoreRollCall(int64_t seq, double grace_s, std::vector<long long>* seen) {
  // Every rank that timed out posts the collective it waits at; after the
  // grace period each reads the others' posts. A rank that is not there
  // (never joined, finished, gone) is named apart from the silent ones.
  (*seen)[static_cast<size_t>(rank_)] = seq;
  const auto post_by = std::chrono::steady_clock::now() + std::chrono::seconds(2) +
                       std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                           std::chrono::duration<double>(grace_s));
  if (Status s = store_->Set("roll/" + std::to_string(rank_), std::to_string(seq), post_by);
      !s.ok())
    return "; " + s.message();
  std::this_thread::sleep_for(std::chrono::duration<double>(grace_s));
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  std::vector<int> never, finished, gone;
  std::string states;
  if (store_->Joined(deadline, &states).ok() && states.size() == static_cast<size_t>(size_))
    for (int r = 0; r < size_; ++r) {
      const char state = states[static_cast<size_t>(r)];
      if (r == rank_ || state == '1') continue;
      (state == '0' ? never : state == '2' ? finished : gone).push_back(r);
      (*seen)[static_cast<size_t>(r)] = kNotThere;
    }
  for (int r = 0; r < size_; ++r) {
    if (r == rank_ || (*seen)[static_cast<size_t>(r)] == kNotThere) continue;
    std::string value;
    bool found = false;
    if (store_->TryGet("roll/" + std::to_string(r), deadline, &value, &found).ok() && found)
      (*seen)[static_cast<size_t>(r)] = std::atoll(value.c_str());
  }
  std::string note;
  if (!never.empty())
    note += StrFormat("; %s never joined the rendezvous at %s", Ranks(never).c_str(),
                      store_->address().c_str());
  if (!finished.empty()) note += "; " + Ranks(finished) + " finished and left";
  if (!gone.empty()) note += "; " + Ranks(gone) + " left without finishing (exited or died)";
  return note;
}

Status Collective::TimedOut(int64_t seq, const std::string& what) {
  std::vector<long long> seen(static_cast<size_t>(size_), -1);
  const double grace = std::min(10.0, std::max(1.0, options_.timeout_s / 4));
  std::string note;
  if (store_) {
    note = StoreRollCall(seq, grace, &seen);
  } else {
    char err[kErrLen] = "";
    mpi_->roll_call(seq, grace, seen.data(), err, kErrLen);
  }
  std::vector<int> silent;
  std::string elsewhere;
  for (int r = 0; r < size_; ++r) {
    if (r == rank_ || seen[r] == kNotThere) continue;
    if (seen[r] < 0)
      silent.push_back(r);
    else if (seen[r] != seq)
      elsewhere +=
          StrFormat("%srank %d at collective #%lld", elsewhere.empty() ? "" : ", ", r, seen[r]);
  }
  std::string who;
  if (!silent.empty()) who += "; " + Ranks(silent) + " did not answer (stopped, hung or dead)";
  if (!elsewhere.empty()) who += "; waiting elsewhere: " + elsewhere;
  who += note;
  if (who.empty()) who = "; every rank answered at this collective (a slow network?)";
  return UnavailableError(StrFormat(
      "rank %d of %d: collective #%lld (%s) did not complete in %g s%s (raise "
      "--collective-timeout for steps that are legitimately this slow)",
      rank_, size_, static_cast<long long>(seq), what.c_str(), options_.timeout_s, who.c_str()));
}

Status Collective::StoreWait(const std::string& key, TcpStore::Clock::time_point deadline,
                             int64_t seq, const std::string& what, std::string* value) {
  bool timed_out = false;
  LORA_RETURN_IF_ERROR(store_->Get(key, deadline, value, &timed_out), "collective #%lld (%s)",
                       static_cast<long long>(seq), what.c_str());
  if (timed_out) return TimedOut(seq, what);
  return OkStatus();
}

Status Collective::StoreSum(void* data, size_t n, int dtype, int64_t seq, const std::string& what) {
  const auto deadline = Deadline();  // for the whole collective
  const size_t bytes = n * (dtype == kFloat ? sizeof(float) : sizeof(double));
  const std::string prefix = StrFormat("s%lld/", static_cast<long long>(seq));
  LORA_RETURN_IF_ERROR(
      store_->Set(prefix + std::to_string(rank_), std::string(static_cast<char*>(data), bytes)),
      "collective #%lld (%s)", static_cast<long long>(seq), what.c_str());
  // Every rank adds the same values in rank order: the sums agree bitwise
  // (into `data`, whose own values were sent above).
  for (int r = 0; r < size_; ++r) {
    std::string v;
    LORA_RETURN_IF_ERROR(StoreWait(prefix + std::to_string(r), deadline, seq, what, &v));
    if (v.size() != bytes)
      return InvalidArgumentError(
          StrFormat("collective #%lld (%s): rank %d sent %zu bytes, rank %d has %zu: the ranks "
                    "run different plans",
                    static_cast<long long>(seq), what.c_str(), r, v.size(), rank_, bytes));
    if (dtype == kFloat)
      AddPart(v, n, r == 0, static_cast<float*>(data));
    else
      AddPart(v, n, r == 0, static_cast<double*>(data));
  }
  return store_->Done(prefix);
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
  const int64_t seq = seq_++;
  if (store_) return StoreSum(data, n, dtype, seq, what);
  std::vector<Request> r(1);
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
  if (store_)
    return InternalError(
        "gradient sums on the host need MPI; the rendezvous of a torchrun-style launch does "
        "not carry them");
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
  const int64_t seq = seq_++;
  if (store_) {
    // "b<seq>/": Done erases by prefix, and "b1" would also be "b10"'s.
    const std::string key = StrFormat("b%lld/", static_cast<long long>(seq));
    if (rank_ == root) {
      LORA_RETURN_IF_ERROR(store_->Set(key, std::string(static_cast<const char*>(data), bytes)),
                           "collective #%lld (%s)", static_cast<long long>(seq), what.c_str());
    } else {
      std::string value;
      LORA_RETURN_IF_ERROR(StoreWait(key, Deadline(), seq, what, &value));
      if (value.size() != bytes)
        return InvalidArgumentError(
            StrFormat("collective #%lld (%s): rank %d sent %zu bytes, rank %d expects %zu",
                      static_cast<long long>(seq), what.c_str(), root, value.size(), rank_, bytes));
      std::memcpy(data, value.data(), bytes);
    }
    return store_->Done(key);
  }
  char err[kErrLen] = "";
  std::vector<Request> r(1);
  if (mpi_->ibcast(data, static_cast<long long>(bytes), root, &r[0].handle, err, kErrLen))
    return UnavailableError(StrFormat("collective #%lld (%s): MPI_Ibcast: %s",
                                      static_cast<long long>(seq), what.c_str(), err));
  // Waited for like every collective: a rank that never arrives is named.
  return WaitRequests(&r, seq, what);
}

void Collective::Abort(int code, const std::string& why) {
  if (store_) store_->Fail(StrFormat("rank %d of %d ended the job: %s", rank_, size_, why.c_str()));
  if (mpi_ && size_ > 1) mpi_->abort(code);
}

Status Collective::Rendezvous(StoreOptions store, int local_rank, const CollectiveOptions& options,
                              std::unique_ptr<Collective>* out) {
  LORA_RETURN_IF_ERROR(CheckTimeout(options));
  std::unique_ptr<Collective> c(new Collective());
  c->options_ = options;
  store.timeout_s = options.timeout_s;
  LORA_RETURN_IF_ERROR(TcpStore::Connect(store, &c->store_));
  c->rank_ = store.rank;
  c->size_ = store.world_size;
  c->local_rank_ = local_rank;
  c->description_ = StrFormat("torchrun-style: rendezvous at %s, %d ranks",
                              c->store_->address().c_str(), c->size_);
  *out = std::move(c);
  return OkStatus();
}

namespace {

constexpr const char* kTorchrunHelp =
    " (a torchrun-style launch sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT; "
    "docs/distributed.md)";

// A torchrun-style variable as an integer in [lo, hi].
Status EnvInt(const char* name, int lo, int hi, int* out) {
  const char* v = std::getenv(name);
  if (!v || !*v) return InvalidArgumentError(StrFormat("%s is not set%s", name, kTorchrunHelp));
  char* end = nullptr;
  errno = 0;
  long x = std::strtol(v, &end, 10);
  if (errno != 0 || *end != '\0' || x < lo || x > hi)
    return InvalidArgumentError(
        StrFormat("%s=%s: expected an integer in %d..%d%s", name, v, lo, hi, kTorchrunHelp));
  *out = static_cast<int>(x);
  return OkStatus();
}

Status FromTorchrunVariables(const CollectiveOptions& options, std::unique_ptr<Collective>* out) {
  int world = 0, rank = 0, local = 0, port = 0;
  LORA_RETURN_IF_ERROR(EnvInt("WORLD_SIZE", 1, 1 << 20, &world));
  if (world == 1) {
    *out = Collective::Single();
    return OkStatus();
  }
  LORA_RETURN_IF_ERROR(EnvInt("RANK", 0, world - 1, &rank));
  LORA_RETURN_IF_ERROR(EnvInt("LOCAL_RANK", 0, world - 1, &local));
  LORA_RETURN_IF_ERROR(EnvInt("MASTER_PORT", 1, 65535, &port));
  // torchrun's agent serves its own store (torch's TCPStore) on
  // MASTER_PORT and says so: the rendezvous then takes the next port.
  // LORART_RENDEZVOUS_PORT names one in any case.
  std::string source = "MASTER_PORT";
  if (const char* own = std::getenv("LORART_RENDEZVOUS_PORT"); own && *own) {
    LORA_RETURN_IF_ERROR(EnvInt("LORART_RENDEZVOUS_PORT", 1, 65535, &port));
    source = "LORART_RENDEZVOUS_PORT";
  } else if (const char* agent = std::getenv("TORCHELASTIC_USE_AGENT_STORE");
             agent && (std::string(agent) == "True" || std::string(agent) == "1")) {
    if (port == 65535)
      return InvalidArgumentError(
          "MASTER_PORT=65535 is torchrun's agent store and there is no next port for lorart's "
          "rendezvous: set LORART_RENDEZVOUS_PORT");
    ++port;
    source = "MASTER_PORT + 1: torchrun's agent holds MASTER_PORT";
  }
  const char* addr = std::getenv("MASTER_ADDR");
  if (!addr || !*addr)
    return InvalidArgumentError(std::string("MASTER_ADDR is not set") + kTorchrunHelp);
  StoreOptions store;
  store.host = addr;
  store.port = port;
  store.port_source = source;
  store.rank = rank;
  store.world_size = world;
  return Collective::Rendezvous(store, local, options, out);
}

}  // namespace

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
  if (mode != "auto" && mode != "mpi" && mode != "torchrun")
    return InvalidArgumentError("--dist must be auto, mpi, torchrun or none, got '" + mode + "'");
  if (mode == "torchrun") return FromTorchrunVariables(options, out);
  const bool mpi_launcher =
      !env("OMPI_COMM_WORLD_SIZE").empty() || !env("PMI_SIZE").empty() || !env("PMIX_RANK").empty();
  if (mode == "mpi" || mpi_launcher) return Collective::Mpi(options, out);
  if (!env("WORLD_SIZE").empty()) return FromTorchrunVariables(options, out);
  *out = Collective::Single();
  return OkStatus();
}

}  // namespace lorart::dist
