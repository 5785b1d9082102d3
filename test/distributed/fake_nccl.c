/* A stand-in for libnccl.so.2, for testing lorart's NCCL path on the CUDA
 * simulator (test/cuda_sim/sim_driver.cc), whose device memory is host
 * memory. Its transport is files: ncclGetUniqueId makes a directory and
 * puts its path in the id, which lorart must hand to every rank (over MPI
 * or through the torchrun-style rendezvous; a rank that did not get rank
 * 0's id finds no such directory and fails); ncclAllReduce number k writes
 * this rank's values to k.RANK and sums every rank's file in rank order. So
 * the fake needs no MPI and serves both launchers, on one host. On the
 * default stream an operation runs when called; on a stream of lorart's own
 * it is deferred to that stream through the simulator (lora_sim_defer) and
 * runs when lorart waits for it, so a missing wait leaves the gradients
 * unsummed and the test's bitwise comparison fails. Only what lorart calls
 * is here, and only float sums: anything else is refused
 * (ncclInvalidArgument), so that a change in how lorart calls NCCL fails the
 * test instead of passing on a fake that accepts it. A peer that does not
 * write its part within LORART_FAKE_NCCL_TIMEOUT seconds (default 120) is a
 * remote error. The directory is made in $TMPDIR (the tests point it into
 * their work directory), else /tmp. lorart loads it through LORART_NCCL. */
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

typedef struct {
  char internal[128];
} ncclUniqueId;

enum { kTagLen = 16, kPathLen = 128 - kTagLen };
static const char kIdTag[kTagLen] = "lorart-fakenccl";

typedef struct {
  int rank, size;
  int aborted;   /* ncclCommAbort: operations still deferred are dropped */
  long long seq; /* operations run so far */
  char dir[kPathLen];
} FakeComm;

enum {
  kSuccess = 0,
  kSystemError = 2,
  kInvalidArgument = 4,
  kRemoteError = 6,
  kFloat32 = 7,
  kSum = 0,
  kMaxQueued = 4096
};

/* Operations issued between ncclGroupStart and ncclGroupEnd. */
typedef struct {
  const void* send;
  void* recv;
  size_t count;
  void* stream;
  FakeComm* comm;
} Op;
static Op queued[kMaxQueued];
static int num_queued = 0, group_depth = 0;
static int async_error = kSuccess;

int ncclGetVersion(int* version) {
  *version = 29999; /* "NCCL 2.99.99": not a real release */
  return kSuccess;
}

const char* ncclGetErrorString(int result) {
  switch (result) {
    case kSuccess: return "no error";
    case kSystemError: return "system error (fake NCCL: its directory)";
    case kRemoteError: return "remote error (fake NCCL: a peer did not arrive)";
    default: return "invalid argument (fake NCCL)";
  }
}

int ncclGetUniqueId(ncclUniqueId* id) {
  memset(id, 0, sizeof *id);
  memcpy(id->internal, kIdTag, kTagLen);
  char* dir = id->internal + kTagLen;
  const char* tmp = getenv("TMPDIR");
  if (!tmp || !*tmp || strlen(tmp) + 32 > kPathLen) tmp = "/tmp";
  snprintf(dir, kPathLen, "%s/lorart-fake-nccl-XXXXXX", tmp);
  return mkdtemp(dir) ? kSuccess : kSystemError;
}

static double Now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static double Timeout(void) {
  const char* v = getenv("LORART_FAKE_NCCL_TIMEOUT");
  return v && *v ? atof(v) : 120.0;
}

/* Writes `bytes` bytes to DIR/NAME whole (a temporary file renamed). */
static int WriteFile(const FakeComm* c, const char* name, const void* data, size_t bytes) {
  char tmp[kPathLen + 64], path[kPathLen + 64];
  snprintf(tmp, sizeof tmp, "%s/.%s.tmp", c->dir, name);
  snprintf(path, sizeof path, "%s/%s", c->dir, name);
  FILE* f = fopen(tmp, "wb");
  if (!f) return kSystemError;
  int ok = fwrite(data, 1, bytes, f) == bytes;
  ok = fclose(f) == 0 && ok;
  return ok && rename(tmp, path) == 0 ? kSuccess : kSystemError;
}

/* Waits for DIR/NAME and reads exactly `bytes` bytes of it. */
static int ReadFile(const FakeComm* c, const char* name, void* data, size_t bytes) {
  char path[kPathLen + 64];
  snprintf(path, sizeof path, "%s/%s", c->dir, name);
  const double deadline = Now() + Timeout();
  long pause_ns = 20000;
  FILE* f;
  while (!(f = fopen(path, "rb"))) {
    if (errno != ENOENT || Now() > deadline) return kRemoteError;
    struct timespec ts = {0, pause_ns};
    nanosleep(&ts, NULL);
    if (pause_ns < 1000000) pause_ns *= 2;
  }
  size_t got = fread(data, 1, bytes, f);
  int extra = fgetc(f) != EOF;
  fclose(f);
  return got == bytes && !extra ? kSuccess : kInvalidArgument;
}

int ncclCommInitRank(void** comm, int nranks, ncclUniqueId id, int rank) {
  if (memcmp(id.internal, kIdTag, kTagLen) != 0 || nranks < 1 || rank < 0 || rank >= nranks)
    return kInvalidArgument;
  FakeComm* c = (FakeComm*)calloc(1, sizeof *c);
  if (!c) return kSystemError;
  c->rank = rank;
  c->size = nranks;
  memcpy(c->dir, id.internal + kTagLen, kPathLen);
  c->dir[kPathLen - 1] = '\0';
  /* Each rank announces itself once (a second rank with the same number is
   * refused: link() does not replace) and checks that every rank was told
   * the same number of ranks. */
  char name[64], tmp[kPathLen + 64], path[kPathLen + 64];
  snprintf(name, sizeof name, "rank.%d", rank);
  snprintf(tmp, sizeof tmp, "%s/.rank.%d.%d", c->dir, rank, (int)getpid());
  snprintf(path, sizeof path, "%s/%s", c->dir, name);
  int rc = kSuccess;
  FILE* f = fopen(tmp, "wb");
  if (!f || fwrite(&nranks, sizeof nranks, 1, f) != 1) rc = kSystemError;
  if (f && fclose(f) != 0) rc = kSystemError;
  if (rc == kSuccess && link(tmp, path) != 0) rc = errno == EEXIST ? kInvalidArgument : kSystemError;
  unlink(tmp);
  for (int r = 0; r < nranks && rc == kSuccess; ++r) {
    int theirs = 0;
    snprintf(name, sizeof name, "rank.%d", r);
    rc = ReadFile(c, name, &theirs, sizeof theirs);
    if (rc == kSuccess && theirs != nranks) rc = kInvalidArgument;
  }
  if (rc != kSuccess) {
    free(c);
    return rc;
  }
  *comm = c;
  return kSuccess;
}

static int Run(const Op* op) {
  FakeComm* c = op->comm;
  const long long k = c->seq++;
  const size_t bytes = op->count * sizeof(float);
  char name[64];
  snprintf(name, sizeof name, "%lld.%d", k, c->rank);
  int rc = WriteFile(c, name, op->send, bytes);
  if (rc != kSuccess) return rc;
  /* Every rank has read operation k - 2 before anyone writes k. */
  if (k >= 2) {
    char old[kPathLen + 64];
    snprintf(old, sizeof old, "%s/%lld.%d", c->dir, k - 2, c->rank);
    unlink(old);
  }
  float* sum = (float*)malloc(bytes ? bytes : 1);
  float* part = (float*)malloc(bytes ? bytes : 1);
  if (!sum || !part) rc = kSystemError;
  for (int r = 0; r < c->size && rc == kSuccess; ++r) {
    snprintf(name, sizeof name, "%lld.%d", k, r);
    rc = ReadFile(c, name, r == 0 ? sum : part, bytes);
    if (rc == kSuccess && r > 0)
      for (size_t i = 0; i < op->count; ++i) sum[i] += part[i];
  }
  if (rc == kSuccess) memcpy(op->recv, sum, bytes);
  free(sum);
  free(part);
  return rc;
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
  int rc = o->comm->aborted ? kSuccess : Run(o);
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
  Op o = {send, recv, count, stream, (FakeComm*)comm};
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

/* The comm stays allocated (operations deferred to lorart's stream still
 * point to it; they are dropped): a few bytes per aborted run. */
int ncclCommAbort(void* comm) {
  if (!comm) return kInvalidArgument;
  ((FakeComm*)comm)->aborted = 1;
  return kSuccess;
}

/* Each rank says goodbye; rank 0 waits for every goodbye (a peer still
 * reading the last sum needs its files) and removes the directory. */
int ncclCommDestroy(void* comm) {
  FakeComm* c = (FakeComm*)comm;
  if (!c) return kInvalidArgument;
  char name[64];
  snprintf(name, sizeof name, "bye.%d", c->rank);
  int rc = WriteFile(c, name, &c->rank, sizeof c->rank);
  if (rc == kSuccess && c->rank == 0) {
    for (int r = 0; r < c->size && rc == kSuccess; ++r) {
      int who = -1;
      snprintf(name, sizeof name, "bye.%d", r);
      rc = ReadFile(c, name, &who, sizeof who);
    }
    DIR* d = opendir(c->dir);
    struct dirent* e;
    while (d && (e = readdir(d))) {
      char path[kPathLen + 300];
      if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
      snprintf(path, sizeof path, "%s/%s", c->dir, e->d_name);
      unlink(path);
    }
    if (d) closedir(d);
    rmdir(c->dir);
  }
  free(c);
  return rc;
}
