// The C interface of liblorart_mpi.so, the one file of lorart compiled
// against an MPI implementation's mpi.h (mpi_shim.c). lorart loads it with
// dlopen (lorart/dist/collective.cc), so the lorart binary starts, and runs
// single-process plans, on a machine without MPI, and works with whichever
// MPI the shim was built for (handles such as MPI_Comm differ in type between
// Open MPI and MPICH; only the shim sees them).
//
// Every function returns 0 on success, or an MPI error code and writes its
// message (MPI_Error_string) to `err` (`err_len` bytes, NUL-terminated).
#ifndef LORART_DIST_MPI_SHIM_H_
#define LORART_DIST_MPI_SHIM_H_

#ifdef __cplusplus
extern "C" {
#endif

// Raised when the interface changes; collective.cc refuses another.
#define LORART_MPI_SHIM_ABI 2

int lorart_mpi_abi(void);
// MPI_Init_thread (MPI_THREAD_FUNNELED: only the thread that called it
// makes MPI calls) with errors returned, not fatal; the rank, the number of
// ranks and the rank among those of this host (a shared-memory split).
int lorart_mpi_init(int* rank, int* size, int* local_rank, char* err, int err_len);
// The MPI library's version string.
void lorart_mpi_library_version(char* out, int out_len);
// Starts summing `count` values in place over all ranks (dtype 0: float, 1:
// double); `*request` is an opaque handle for lorart_mpi_test.
int lorart_mpi_iallreduce_sum(void* data, long long count, int dtype, void** request, char* err,
                              int err_len);
// Sets `*done` to 1 and frees the handle when the operation has completed.
int lorart_mpi_test(void* request, int* done, char* err, int err_len);
// Starts broadcasting `bytes` bytes from `root`; `*request` as above.
int lorart_mpi_ibcast(void* data, long long bytes, int root, void** request, char* err,
                      int err_len);
// After a timeout: sends `seq` (the collective this rank waits at) to every
// other rank and collects theirs for `grace_s` seconds. `seen[r]` is the
// sequence number rank r sent, or -1 when it did not answer (seen[rank] is
// this rank's own).
int lorart_mpi_roll_call(long long seq, double grace_s, long long* seen, char* err, int err_len);
// Ends every rank of the job with `code` (MPI_Abort).
void lorart_mpi_abort(int code);
int lorart_mpi_finalize(void);

#ifdef __cplusplus
}
#endif

#endif  // LORART_DIST_MPI_SHIM_H_
