// liblorart_mpi.so: lorart's calls into MPI (see mpi_shim.h).
#include "lorart/dist/mpi_shim.h"

#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int Fail(int rc, char* err, int err_len) {
  if (rc == MPI_SUCCESS) return 0;
  if (err && err_len > 0) {
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(rc, msg, &len) != MPI_SUCCESS)
      snprintf(msg, sizeof msg, "MPI error %d", rc);
    snprintf(err, (size_t)err_len, "%s", msg);
  }
  return rc;
}

int lorart_mpi_abi(void) { return LORART_MPI_SHIM_ABI; }

int lorart_mpi_init(int* rank, int* size, int* local_rank, char* err, int err_len) {
  int initialized = 0, provided = 0, rc;
  MPI_Initialized(&initialized);
  if (!initialized) {
    rc = MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided);
    if (rc != MPI_SUCCESS) {
      if (err && err_len > 0) snprintf(err, (size_t)err_len, "MPI_Init_thread failed (%d)", rc);
      return rc;
    }
  }
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  if ((rc = MPI_Comm_rank(MPI_COMM_WORLD, rank)) != MPI_SUCCESS) return Fail(rc, err, err_len);
  if ((rc = MPI_Comm_size(MPI_COMM_WORLD, size)) != MPI_SUCCESS) return Fail(rc, err, err_len);
  MPI_Comm node;
  rc = MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, *rank, MPI_INFO_NULL, &node);
  if (rc != MPI_SUCCESS) return Fail(rc, err, err_len);
  rc = MPI_Comm_rank(node, local_rank);
  MPI_Comm_free(&node);
  return Fail(rc, err, err_len);
}

void lorart_mpi_library_version(char* out, int out_len) {
  char v[MPI_MAX_LIBRARY_VERSION_STRING];
  int len = 0;
  if (MPI_Get_library_version(v, &len) != MPI_SUCCESS) snprintf(v, sizeof v, "MPI");
  char* nl = strchr(v, '\n');
  if (nl) *nl = 0;
  char* comma = strchr(v, ',');  // "Open MPI v4.1.4, package: ..." -> "Open MPI v4.1.4"
  if (comma) *comma = 0;
  snprintf(out, (size_t)out_len, "%s", v);
}

// A nonblocking operation on `count` elements: `start` posts it into a new
// request, handed out in `*request` (freed by lorart_mpi_test).
typedef int (*StartFn)(void* data, int count, int arg, MPI_Request* r);

static int Start(StartFn start, void* data, long long count, int arg, void** request, char* err,
                 int err_len) {
  if (count > 0x7fffffffLL) {
    snprintf(err, (size_t)err_len, "%lld elements are more than one MPI call takes", count);
    return MPI_ERR_COUNT;
  }
  MPI_Request* r = (MPI_Request*)malloc(sizeof(MPI_Request));
  if (!r) {
    snprintf(err, (size_t)err_len, "out of memory");
    return MPI_ERR_NO_MEM;
  }
  int rc = start(data, (int)count, arg, r);
  if (rc != MPI_SUCCESS) {
    free(r);
    return Fail(rc, err, err_len);
  }
  *request = r;
  return 0;
}

static int StartSum(void* data, int count, int dtype, MPI_Request* r) {
  return MPI_Iallreduce(MPI_IN_PLACE, data, count, dtype == 1 ? MPI_DOUBLE : MPI_FLOAT, MPI_SUM,
                        MPI_COMM_WORLD, r);
}

static int StartBcast(void* data, int bytes, int root, MPI_Request* r) {
  return MPI_Ibcast(data, bytes, MPI_BYTE, root, MPI_COMM_WORLD, r);
}

int lorart_mpi_iallreduce_sum(void* data, long long count, int dtype, void** request, char* err,
                              int err_len) {
  return Start(StartSum, data, count, dtype, request, err, err_len);
}

int lorart_mpi_test(void* request, int* done, char* err, int err_len) {
  MPI_Request* r = (MPI_Request*)request;
  int rc = MPI_Test(r, done, MPI_STATUS_IGNORE);
  if (rc != MPI_SUCCESS) return Fail(rc, err, err_len);
  if (*done) free(r);
  return 0;
}

int lorart_mpi_ibcast(void* data, long long bytes, int root, void** request, char* err,
                      int err_len) {
  return Start(StartBcast, data, bytes, root, request, err, err_len);
}

int lorart_mpi_roll_call(long long seq, double grace_s, long long* seen, char* err, int err_len) {
  enum { kTag = 0x10AC };
  int rank = 0, size = 1, rc;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  MPI_Request* recv = (MPI_Request*)calloc((size_t)size, sizeof(MPI_Request));
  MPI_Request* send = (MPI_Request*)calloc((size_t)size, sizeof(MPI_Request));
  if (!recv || !send) {
    free(recv);
    free(send);
    snprintf(err, (size_t)err_len, "out of memory");
    return MPI_ERR_NO_MEM;
  }
  for (int r = 0; r < size; ++r) {
    seen[r] = r == rank ? seq : -1;
    recv[r] = send[r] = MPI_REQUEST_NULL;
    if (r == rank) continue;
    if ((rc = MPI_Irecv(&seen[r], 1, MPI_LONG_LONG, r, kTag, MPI_COMM_WORLD, &recv[r])) ||
        (rc = MPI_Isend(&seq, 1, MPI_LONG_LONG, r, kTag, MPI_COMM_WORLD, &send[r]))) {
      free(recv);
      free(send);
      return Fail(rc, err, err_len);
    }
  }
  double end = MPI_Wtime() + grace_s;
  int all = 0;
  while (!all && MPI_Wtime() < end) {
    MPI_Testall(size, recv, &all, MPI_STATUSES_IGNORE);
    struct timespec ts = {0, 1000000};
    nanosleep(&ts, NULL);
  }
  // Unanswered receives are left posted: the job ends (MPI_Abort) next.
  free(recv);
  free(send);
  return 0;
}

void lorart_mpi_abort(int code) { MPI_Abort(MPI_COMM_WORLD, code); }

int lorart_mpi_finalize(void) {
  int finalized = 0;
  MPI_Finalized(&finalized);
  return finalized ? 0 : MPI_Finalize();
}
