#include "lorart/dist/nccl.h"

#include <dlfcn.h>

#include <cstdlib>
#include <cstring>

#include "lorart/base/strings.h"
#include "lorart/dist/collective.h"

namespace lorart::dist {

namespace {

// ncclUniqueId: 128 opaque bytes, passed by value.
struct UniqueId {
  char internal[128];
};
constexpr int kNcclFloat32 = 7;  // ncclDataType_t
constexpr int kNcclSum = 0;      // ncclRedOp_t
constexpr int kNcclInProgress = 7;

}  // namespace

struct NcclApi {
  int (*get_version)(int*);
  int (*get_unique_id)(UniqueId*);
  int (*comm_init_rank)(void**, int, UniqueId, int);
  int (*all_reduce)(const void*, void*, size_t, int, int, void*, void*);
  int (*group_start)();
  int (*group_end)();
  int (*comm_get_async_error)(void*, int*);
  int (*comm_abort)(void*);
  int (*comm_destroy)(void*);
  const char* (*error_string)(int);
};

namespace {

Status LoadNccl(const NcclApi** out) {
  static NcclApi api;
  static Status status = [] {
    const char* env = std::getenv("LORART_NCCL");
    const std::string name = env && *env ? env : "libnccl.so.2";
    void* lib = ::dlopen(name.c_str(), RTLD_NOW | RTLD_GLOBAL);
    if (!lib) {
      const char* e = ::dlerror();
      return UnavailableError(StrFormat(
          "NCCL could not be loaded (%s: %s): a data-parallel CUDA run needs libnccl.so.2 "
          "(the CUDA toolkit's, or pip's nvidia-nccl-cu12); set LORART_NCCL to its path",
          name.c_str(), e ? e : "not found"));
    }
    std::string missing;
    auto sym = [&](const char* n, auto* fn) {
      void* p = ::dlsym(lib, n);
      if (!p) missing += std::string(missing.empty() ? "" : ", ") + n;
      *fn = reinterpret_cast<std::remove_pointer_t<decltype(fn)>>(p);
    };
    sym("ncclGetVersion", &api.get_version);
    sym("ncclGetUniqueId", &api.get_unique_id);
    sym("ncclCommInitRank", &api.comm_init_rank);
    sym("ncclAllReduce", &api.all_reduce);
    sym("ncclGroupStart", &api.group_start);
    sym("ncclGroupEnd", &api.group_end);
    sym("ncclCommGetAsyncError", &api.comm_get_async_error);
    sym("ncclCommAbort", &api.comm_abort);
    sym("ncclCommDestroy", &api.comm_destroy);
    sym("ncclGetErrorString", &api.error_string);
    if (!missing.empty())
      return UnavailableError(StrFormat("%s has no %s", name.c_str(), missing.c_str()));
    return OkStatus();
  }();
  *out = &api;
  return status;
}

}  // namespace

Status Nccl::Check(int rc, const char* call) const {
  if (rc == 0) return OkStatus();
  return UnavailableError(StrFormat("%s: NCCL error %d (%s)", call, rc, api_->error_string(rc)));
}

Status Nccl::Create(Collective* ranks, std::unique_ptr<Nccl>* out) {
  std::unique_ptr<Nccl> n(new Nccl());
  LORA_RETURN_IF_ERROR(LoadNccl(&n->api_));
  int v = 0;
  LORA_RETURN_IF_ERROR(n->Check(n->api_->get_version(&v), "ncclGetVersion"));
  n->version_ = v >= 10000 ? StrFormat("NCCL %d.%d.%d", v / 10000, v / 100 % 100, v % 100)
                           : StrFormat("NCCL %d.%d.%d", v / 1000, v / 100 % 10, v % 100);
  UniqueId id;
  std::memset(&id, 0, sizeof id);
  if (ranks->rank() == 0)
    LORA_RETURN_IF_ERROR(n->Check(n->api_->get_unique_id(&id), "ncclGetUniqueId"));
  LORA_RETURN_IF_ERROR(ranks->Broadcast(&id, sizeof id, 0, "NCCL's unique id"));
  // Every rank arrives before ncclCommInitRank, which waits for absent
  // peers without a deadline of ours: a rank that never started is named
  // here, after --collective-timeout.
  float here = 1;
  LORA_RETURN_IF_ERROR(ranks->AllReduceSum(&here, 1, "every rank present before ncclCommInitRank"));
  LORA_RETURN_IF_ERROR(
      n->Check(n->api_->comm_init_rank(&n->comm_, ranks->world_size(), id, ranks->rank()),
               "ncclCommInitRank"));
  *out = std::move(n);
  return OkStatus();
}

Nccl::~Nccl() {
  if (comm_) api_->comm_destroy(comm_);
}

Status Nccl::GroupStart() { return Check(api_->group_start(), "ncclGroupStart"); }
Status Nccl::GroupEnd() { return Check(api_->group_end(), "ncclGroupEnd"); }

Status Nccl::AllReduceSum(uint64_t send, uint64_t recv, size_t count, void* stream) {
  return Check(api_->all_reduce(reinterpret_cast<const void*>(send), reinterpret_cast<void*>(recv),
                                count, kNcclFloat32, kNcclSum, comm_, stream),
               "ncclAllReduce");
}

Status Nccl::AsyncError() {
  int rc = 0;
  LORA_RETURN_IF_ERROR(Check(api_->comm_get_async_error(comm_, &rc), "ncclCommGetAsyncError"));
  if (rc == kNcclInProgress) return OkStatus();
  return Check(rc, "NCCL (asynchronous)");
}

void Nccl::Abort() {
  if (comm_) api_->comm_abort(comm_);
  comm_ = nullptr;
}

}  // namespace lorart::dist
