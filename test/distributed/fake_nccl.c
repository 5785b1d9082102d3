/* A stand-in for libnccl.so.2 over MPI, for testing lorart's NCCL path on
 * the CUDA simulator (test/cuda_sim/sim_driver.cc), whose device memory is
 * host memory: ncclAllReduce is an MPI_Allreduce of those bytes. On the
 * default stream it runs when called; on a stream of lorart's own it is
 * deferred to that stream through the simulator (lora_sim_defer) and runs
 * when lorart waits for it, so a missing wait leaves the gradients unsummed
 * and the test's bitwise comparison fails. Only what lorart calls is
 * here, and only float sums: anything else is refused (ncclInvalidArgument),
 * so that a change in how lorart calls NCCL fails the test instead of
 * passing on a fake that accepts it. lorart loads it through LORART_NCCL
 * (data_parallel_cuda_sim_test.sh). */
#include <dlfcn.h>
#include <mpi.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  char internal[128];
} ncclUniqueId;

typedef struct {
  int rank, size;
} FakeComm;

enum { kSuccess = 0, kInvalidArgument = 4, kFloat32 = 7, kSum = 0, kMaxQueued = 4096 };
static const char kIdTag[] = "lorart fake NCCL unique id";

/* Operations issued between ncclGroupStart and ncclGroupEnd. */
typedef struct {
  const void* send;
  void* recv;
  size_t count;
  void* stream;
} Op;
static Op queued[kMaxQueued];
static int num_queued = 0, group_depth = 0;
static int async_error = kSuccess;

int ncclGetVersion(int* version) {
  *version = 29999; /* "NCCL 2.99.99": not a real release */
  return kSuccess;
}

const char* ncclGetErrorString(int result) {
  return result == kSuccess ? "no error" : "invalid argument (fake NCCL)";
}

int ncclGetUniqueId(ncclUniqueId* id) {
  memset(id, 0, sizeof *id);
  memcpy(id->internal, kIdTag, sizeof kIdTag);
  return kSuccess;
}

int ncclCommInitRank(void** comm, int nranks, ncclUniqueId id, int rank) {
  int size = 0, me = -1;
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  MPI_Comm_rank(MPI_COMM_WORLD, &me);
  /* Every rank must have received rank 0's id (lorart broadcasts it). */
  if (memcmp(id.internal, kIdTag, sizeof kIdTag) != 0 || nranks != size || rank != me)
    return kInvalidArgument;
  FakeComm* c = (FakeComm*)malloc(sizeof *c);
  if (!c) return kInvalidArgument;
  c->rank = rank;
  c->size = nranks;
  *comm = c;
  return kSuccess;
}

static int Run(const Op* op) {
  void* in = op->send == op->recv ? MPI_IN_PLACE : (void*)op->send;
  if (op->count > 0x7fffffff) return kInvalidArgument;
  return MPI_Allreduce(in, op->recv, (int)op->count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD) ==
                 MPI_SUCCESS
             ? kSuccess
             : kInvalidArgument;
}

/* The simulator's lora_sim_defer, from the driver lorart loaded
 * (LORART_CUDA_DRIVER); null where there is none. */
typedef int (*DeferFn)(void*, void (*)(void*), void*);
static DeferFn Defer(void) {
  static int looked = 0;
  static DeferFn defer = NULL;
  if (!looked) {
    looked = 1;
    const char* path = getenv("LORART_CUDA_DRIVER");
    void* lib = path && *path ? dlopen(path, RTLD_NOW | RTLD_NOLOAD) : NULL;
    if (lib) *(void**)(&defer) = dlsym(lib, "lora_sim_defer");
  }
  return defer;
}

static void RunDeferred(void* ctx) {
  Op* o = (Op*)ctx;
  int rc = Run(o);
  if (rc != kSuccess) async_error = rc;
  free(o);
}

/* Runs the op on its stream: now on the default stream, else deferred. */
static int Issue(const Op* o) {
  DeferFn defer = Defer();
  if (!o->stream || !defer) return Run(o);
  Op* copy = (Op*)malloc(sizeof *copy);
  if (!copy) return kInvalidArgument;
  *copy = *o;
  if (defer(o->stream, RunDeferred, copy) != 0) {
    free(copy);
    return kInvalidArgument;
  }
  return kSuccess;
}

int ncclAllReduce(const void* send, void* recv, size_t count, int datatype, int op, void* comm,
                  void* stream) {
  if (!comm || datatype != kFloat32 || op != kSum) return kInvalidArgument;
  Op o = {send, recv, count, stream};
  if (group_depth == 0) return Issue(&o);
  if (num_queued == kMaxQueued) return kInvalidArgument;
  queued[num_queued++] = o;
  return kSuccess;
}

int ncclGroupStart(void) {
  ++group_depth;
  return kSuccess;
}

int ncclGroupEnd(void) {
  if (group_depth == 0) return kInvalidArgument;
  if (--group_depth > 0) return kSuccess;
  int rc = kSuccess;
  for (int i = 0; i < num_queued && rc == kSuccess; ++i) rc = Issue(&queued[i]);
  num_queued = 0;
  if (rc != kSuccess) async_error = rc;
  return rc;
}

int ncclCommGetAsyncError(void* comm, int* error) {
  (void)comm;
  *error = async_error;
  return kSuccess;
}

int ncclCommAbort(void* comm) {
  free(comm);
  return kSuccess;
}

int ncclCommDestroy(void* comm) {
  free(comm);
  return kSuccess;
}
