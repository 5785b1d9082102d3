// Collectives between the ranks of a data-parallel run (docs/distributed.md).
//
// A Collective is this process's place among the run's ranks and the
// operations the plan's collective kernels (grad_all_reduce_start/_wait,
// all_reduce_sum) and the trainer (its metrics) call. One run is either a
// single process (world size 1: every operation is the identity, nothing is
// loaded), MPI ranks, through liblorart_mpi.so loaded with dlopen (the
// lorart binary links no MPI), or the ranks of a torchrun-style launch,
// which meet at a TCP rendezvous served by rank 0 (tcp_store.h): that one
// carries the host-side sums and broadcasts (bytes per step) and NCCL's
// unique id, never gradients, so CPU plans, whose gradient sums are host
// collectives, need MPI. The ranks must issue the same collectives in
// the same order: every operation has a sequence number, equal on all ranks,
// that errors and the timeout report name.
//
// Timeouts: a wait that lasts longer than `timeout_s` asks every rank which
// collective it waits at (a roll call, with point-to-point messages or
// through the rendezvous) and
// fails naming the ranks that did not answer (hung or dead) and those that
// wait elsewhere; the caller then ends the job (Abort) so that no rank waits
// forever.
#ifndef LORART_DIST_COLLECTIVE_H_
#define LORART_DIST_COLLECTIVE_H_

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "lorart/base/status.h"
#include "lorart/dist/tcp_store.h"

namespace lorart::dist {

struct MpiApi;  // the shim's functions (collective.cc)

struct CollectiveOptions {
  double timeout_s = 600;  // a collective that waits longer fails
};

// Polls without holding a core: a few yields, then sleeps growing to 1 ms
// (ranks share cores with each other's compute threads).
class Backoff {
 public:
  void Pause();

 private:
  int rounds_ = 0;
};

class Collective {
 public:
  // One process, world size 1.
  static std::unique_ptr<Collective> Single();
  // The MPI ranks of the job this process was started in (mpirun, srun):
  // loads liblorart_mpi.so (LORART_MPI_SHIM, else next to the executable's
  // lib/ directory, else the loader's search path) and initializes MPI.
  static Status Mpi(const CollectiveOptions& options, std::unique_ptr<Collective>* out);
  // The ranks of a torchrun-style launch: joins the rendezvous at
  // store.host:store.port (StoreOptions' timeout is options.timeout_s).
  static Status Rendezvous(StoreOptions store, int local_rank, const CollectiveOptions& options,
                           std::unique_ptr<Collective>* out);
  ~Collective();

  int rank() const { return rank_; }
  int world_size() const { return size_; }
  int local_rank() const { return local_rank_; }
  // "single process", "mpi: Open MPI v4.1.4, 2 ranks" or "torchrun-style:
  // rendezvous at node0:29500, 2 ranks".
  const std::string& description() const { return description_; }
  // Whether gradient buckets can be summed on the host (StartBucket): one
  // process or MPI, not the rendezvous of a torchrun-style launch.
  bool sums_host_gradients() const { return store_ == nullptr; }

  // Sums `n` values over all ranks, in place on every rank, and returns when
  // done. `what` names the collective in errors.
  Status AllReduceSum(float* data, size_t n, const std::string& what);
  Status AllReduceSum(double* data, size_t n, const std::string& what);

  // Starts summing the tensors of gradient bucket `bucket` in place (one
  // request per tensor) and returns at once; Progress lets it advance,
  // WaitBucket ends it. A bucket is started at most once before its wait.
  struct Span {
    float* data;
    size_t n;
  };
  Status StartBucket(int64_t bucket, const std::vector<Span>& tensors, const std::string& what);
  // Waits for bucket `bucket`; OK when it was not started (nothing to wait
  // for: the caller did not ask for a synchronizing step).
  Status WaitBucket(int64_t bucket);
  bool pending() const { return !buckets_.empty(); }
  // Tests the oldest unfinished request once (MPI progresses every
  // nonblocking collective inside any of its calls: the executor calls this
  // between launches).
  Status Progress();
  // Waits for every started bucket (a step that is skipped after its
  // gradients were started).
  Status WaitAll();

  // Copies `bytes` bytes from rank `root` to every rank.
  Status Broadcast(void* data, size_t bytes, int root, const std::string& what);

  // Ends the job: MPI ends every rank with `code` (MPI_Abort, no return);
  // the rendezvous tells the other ranks `why` (their waits fail with it)
  // and returns, as for a single process.
  void Abort(int code, const std::string& why);
  // A failure another rank announced through the rendezvous, checked
  // without waiting (the CUDA executor's waits for NCCL call it: NCCL may
  // not notice a peer that ended the job). OK under MPI, where MPI_Abort
  // ends every rank.
  Status PeerFailure() { return store_ ? store_->PeerFailure() : OkStatus(); }

  // When a wait that starts now times out.
  std::chrono::steady_clock::time_point Deadline() const {
    return std::chrono::steady_clock::now() +
           std::chrono::duration_cast<std::chrono::steady_clock::duration>(
               std::chrono::duration<double>(options_.timeout_s));
  }
  // The error of a wait outside MPI (NCCL's) that timed out: the ranks that
  // do not answer a roll call over MPI are named.
  Status Unresponsive(const std::string& what) { return TimedOut(seq_++, what); }

 private:
  Collective() = default;
  struct Request {
    void* handle = nullptr;
    bool done = false;
  };
  struct Bucket {
    int64_t seq = 0;
    std::string what;
    std::vector<Request> requests;
  };
  // Waits until every request is done, or fails after the timeout.
  Status WaitRequests(std::vector<Request>* requests, int64_t seq, const std::string& what);
  Status TestRequests(std::vector<Request>* requests, bool* all_done);
  Status StartAllReduce(void* data, size_t n, int dtype, Request* out);
  Status BlockingAllReduce(void* data, size_t n, int dtype, const std::string& what);
  Status TimedOut(int64_t seq, const std::string& what);
  // The rendezvous's sum and broadcast (keys named by `seq`).
  Status StoreSum(void* data, size_t n, int dtype, int64_t seq, const std::string& what);
  Status StoreWait(const std::string& key, TcpStore::Clock::time_point deadline, int64_t seq,
                   const std::string& what, std::string* value);
  // Each rank's answer to a roll call through the rendezvous (-1: none, -2:
  // never joined); returns what to add to the error.
  std::string StoreRollCall(int64_t seq, double grace_s, std::vector<long long>* seen);

  const MpiApi* mpi_ = nullptr;
  std::unique_ptr<TcpStore> store_;  // a torchrun-style launch
  int rank_ = 0, size_ = 1, local_rank_ = 0;
  std::string description_ = "single process";
  CollectiveOptions options_;
  int64_t seq_ = 0;                    // collectives issued so far
  std::map<int64_t, Bucket> buckets_;  // started, not yet waited for
};

// The ranks of `lorart run`, by `mode`:
// - "auto": MPI when an MPI launcher started this process (mpirun/mpiexec of
//   Open MPI: OMPI_COMM_WORLD_SIZE; MPICH/Hydra: PMI_SIZE; srun with PMIx:
//   PMIX_RANK), else the rendezvous when WORLD_SIZE is set (torchrun, or
//   the same variables set by hand), else one process.
// - "mpi": MPI in any case (a single rank started without a launcher too).
// - "torchrun": the rendezvous in any case: RANK, WORLD_SIZE, LOCAL_RANK,
//   MASTER_ADDR and MASTER_PORT must all be set (WORLD_SIZE=1: one process).
// - "none": one process, whatever the environment says.
Status FromEnvironment(const std::string& mode, const CollectiveOptions& options,
                       std::unique_ptr<Collective>* out);

}  // namespace lorart::dist

#endif  // LORART_DIST_COLLECTIVE_H_
