// The rendezvous of torchrun-style launches (lorart/dist/tcp_store.h) and
// the Collective over it: ranks as threads of this process (and one forked
// process that dies), on 127.0.0.1.
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "lorart/dist/collective.h"
#include "lorart/dist/tcp_store.h"

namespace lorart::dist {
namespace {

int FreePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

Status Join(int port, int rank, int world, double timeout_s, std::unique_ptr<Collective>* out) {
  StoreOptions s;
  s.host = "127.0.0.1";
  s.port = port;
  s.rank = rank;
  s.world_size = world;
  CollectiveOptions o;
  o.timeout_s = timeout_s;
  return Collective::Rendezvous(s, rank, o, out);
}

// Runs body(rank) on `world` threads and returns each one's status.
std::vector<Status> OnRanks(int world, const std::function<Status(int)>& body) {
  std::vector<Status> status(static_cast<size_t>(world));
  std::vector<std::thread> threads;
  for (int r = 0; r < world; ++r) threads.emplace_back([&, r] { status[r] = body(r); });
  for (std::thread& t : threads) t.join();
  return status;
}

TEST(TcpStoreTest, SumsAndBroadcastsAgreeOnEveryRank) {
  const int port = FreePort(), world = 3;
  std::vector<std::vector<float>> floats(world);
  std::vector<std::vector<double>> doubles(world);
  std::vector<std::string> broadcast(world);
  std::vector<std::string> described(world);
  std::vector<Status> st = OnRanks(world, [&](int r) -> Status {
    std::unique_ptr<Collective> c;
    LORA_RETURN_IF_ERROR(Join(port, r, world, 30, &c));
    described[r] = c->description();
    if (c->rank() != r || c->world_size() != world || c->local_rank() != r)
      return InternalError("wrong rank");
    // Values whose float sum depends on the order: every rank must get the
    // same bits (the sum runs in rank order everywhere).
    floats[r] = {1.0f + r, 1e8f * (r == 0 ? 1 : -0.5f), 0.1f * (r + 1)};
    LORA_RETURN_IF_ERROR(c->AllReduceSum(floats[r].data(), floats[r].size(), "floats"));
    doubles[r] = {0.25 * r, -1.0 * r * r};
    LORA_RETURN_IF_ERROR(c->AllReduceSum(doubles[r].data(), doubles[r].size(), "doubles"));
    broadcast[r] = r == 2 ? "from2" : "xxxxx";
    LORA_RETURN_IF_ERROR(c->Broadcast(broadcast[r].data(), broadcast[r].size(), 2, "bytes"));
    // Many small collectives in a row (keys are forgotten once every rank
    // has read them).
    for (int i = 0; i < 200; ++i) {
      double x = r + i;
      LORA_RETURN_IF_ERROR(c->AllReduceSum(&x, 1, "loop"));
      if (x != 3.0 * i + 3) return InternalError("loop sum");
    }
    return OkStatus();
  });
  for (int r = 0; r < world; ++r) {
    ASSERT_TRUE(st[r].ok()) << "rank " << r << ": " << st[r].ToString();
    EXPECT_EQ(floats[r][0], 6.0f);
    float expect = 1e8f;
    expect = expect + -0.5e8f;
    expect = expect + -0.5e8f;
    EXPECT_EQ(floats[r][1], expect);
    EXPECT_EQ(std::memcmp(floats[r].data(), floats[0].data(), 3 * sizeof(float)), 0);
    EXPECT_EQ(doubles[r][0], 0.75);
    EXPECT_EQ(doubles[r][1], -5.0);
    EXPECT_EQ(broadcast[r], "from2");
    EXPECT_EQ(described[r],
              "torchrun-style: rendezvous at 127.0.0.1:" + std::to_string(port) + ", 3 ranks");
  }
}

TEST(TcpStoreTest, TimeoutNamesTheRankThatDoesNotArrive) {
  const int port = FreePort(), world = 3;
  std::atomic<int> finished{0};
  std::vector<Status> st = OnRanks(world, [&](int r) -> Status {
    std::unique_ptr<Collective> c;
    LORA_RETURN_IF_ERROR(Join(port, r, world, 1, &c));
    if (r == 2) {  // joined, then never calls the collective
      while (finished < 2) std::this_thread::sleep_for(std::chrono::milliseconds(10));
      return OkStatus();
    }
    float x = 1;
    Status s = c->AllReduceSum(&x, 1, "the step's loss");
    ++finished;
    return s;
  });
  for (int r = 0; r < 2; ++r) {
    ASSERT_FALSE(st[r].ok());
    const std::string m = st[r].message();
    EXPECT_NE(m.find("rank " + std::to_string(r) +
                     " of 3: collective #0 (the step's loss) did not complete in 1 s"),
              std::string::npos)
        << m;
    EXPECT_NE(m.find("rank 2 did not answer (stopped, hung or dead)"), std::string::npos) << m;
    EXPECT_EQ(m.find("rank " + std::to_string(1 - r) + " did not answer"), std::string::npos) << m;
  }
  EXPECT_TRUE(st[2].ok());
}

TEST(TcpStoreTest, TimeoutNamesTheRankThatNeverJoined) {
  const int port = FreePort();
  std::unique_ptr<Collective> c;
  ASSERT_TRUE(Join(port, 0, 2, 1, &c).ok());
  float x = 1;
  Status s = c->AllReduceSum(&x, 1, "first");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(
      s.message().find("rank 1 never joined the rendezvous at 127.0.0.1:" + std::to_string(port)),
      std::string::npos)
      << s.message();
}

TEST(TcpStoreTest, AbortEndsTheOthersWaitsAtOnce) {
  const int port = FreePort();
  const auto start = std::chrono::steady_clock::now();
  std::vector<Status> st = OnRanks(2, [&](int r) -> Status {
    std::unique_ptr<Collective> c;
    LORA_RETURN_IF_ERROR(Join(port, r, 2, 60, &c));
    if (r == 1) {
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      c->Abort(1, "its data file is missing");
      return OkStatus();
    }
    double x = 1;
    return c->AllReduceSum(&x, 1, "the step's loss");
  });
  const double took =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ASSERT_FALSE(st[0].ok());
  EXPECT_NE(st[0].message().find("rank 1 of 2 ended the job: its data file is missing"),
            std::string::npos)
      << st[0].message();
  EXPECT_LT(took, 20);
}

TEST(TcpStoreTest, PeerFailureReachesARankThatOnlyPolls) {
  const int port = FreePort();
  std::vector<Status> st = OnRanks(2, [&](int r) -> Status {
    std::unique_ptr<Collective> c;
    LORA_RETURN_IF_ERROR(Join(port, r, 2, 60, &c));
    if (r == 1) {
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      c->Abort(1, "out of memory");
      return OkStatus();
    }
    // As the CUDA executor does while NCCL's kernels run.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (std::chrono::steady_clock::now() < deadline) {
      LORA_RETURN_IF_ERROR(c->PeerFailure());
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return OkStatus();
  });
  ASSERT_FALSE(st[0].ok());
  EXPECT_NE(st[0].message().find("rank 1 of 2 ended the job: out of memory"), std::string::npos)
      << st[0].message();
}

TEST(TcpStoreTest, ARankThatDiesFailsTheOthers) {
  const int port = FreePort();
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // Rank 1 joins, then dies without a goodbye.
    std::unique_ptr<Collective> c;
    if (!Join(port, 1, 2, 30, &c).ok()) ::_exit(3);
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    ::_exit(0);
  }
  std::unique_ptr<Collective> c;
  ASSERT_TRUE(Join(port, 0, 2, 60, &c).ok());
  float x = 1;
  Status s = c->AllReduceSum(&x, 1, "the step's loss");
  int wstatus = 0;
  ::waitpid(child, &wstatus, 0);
  EXPECT_TRUE(WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("rank 1 of 2 left the rendezvous without finishing"),
            std::string::npos)
      << s.message();
}

TEST(TcpStoreTest, RefusesAWrongWorldSizeAndARankTwice) {
  const int port = FreePort();
  std::unique_ptr<Collective> zero, one, again, other;
  ASSERT_TRUE(Join(port, 0, 2, 10, &zero).ok());
  ASSERT_TRUE(Join(port, 1, 2, 10, &one).ok());
  Status s = Join(port, 1, 2, 10, &again);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("RANK=1 joined twice"), std::string::npos) << s.message();
  s = Join(port, 1, 3, 10, &other);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("rank 1 says WORLD_SIZE=3, rank 0 says 2"), std::string::npos)
      << s.message();
  // A misconfigured job ends for the ranks already there too, at once.
  const auto start = std::chrono::steady_clock::now();
  float x = 1;
  s = zero->AllReduceSum(&x, 1, "first");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("the rendezvous refused a rank: RANK=1 joined twice"),
            std::string::npos)
      << s.message();
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), 5);
}

TEST(TcpStoreTest, TimeoutNamesARankThatFinished) {
  const int port = FreePort();
  std::unique_ptr<Collective> zero, one;
  ASSERT_TRUE(Join(port, 0, 2, 1, &zero).ok());
  ASSERT_TRUE(Join(port, 1, 2, 1, &one).ok());
  one.reset();  // says goodbye
  float x = 1;
  Status s = zero->AllReduceSum(&x, 1, "after the end");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("; rank 1 finished and left"), std::string::npos) << s.message();
  EXPECT_EQ(s.message().find("did not answer"), std::string::npos) << s.message();
}

TEST(TcpStoreTest, BroadcastsInARowKeepTheirOwnKeys) {
  // "b1/" must not erase "b10/": the root of a broadcast does not wait.
  const int port = FreePort(), world = 3;
  std::vector<Status> st = OnRanks(world, [&](int r) -> Status {
    std::unique_ptr<Collective> c;
    LORA_RETURN_IF_ERROR(Join(port, r, world, 20, &c));
    if (r == 2) std::this_thread::sleep_for(std::chrono::milliseconds(300));
    for (int i = 0; i < 25; ++i) {
      int v = r == 0 ? 1000 + i : -1;
      LORA_RETURN_IF_ERROR(c->Broadcast(&v, sizeof v, 0, "value"));
      if (v != 1000 + i) return InternalError(StrFormat("broadcast %d gave %d", i, v));
    }
    return OkStatus();
  });
  for (int r = 0; r < world; ++r) EXPECT_TRUE(st[r].ok()) << r << ": " << st[r].ToString();
}

TEST(TcpStoreTest, RankZeroServesARankThatJoinsAfterItFinished) {
  // Rank 0 broadcasts (the root does not wait) and leaves before rank 1 has
  // even connected (a slow start under load): its store must stay up until
  // rank 1 has taken the value, not close because every rank that had
  // joined has left.
  const int port = FreePort(), world = 2;
  std::atomic<bool> zero_finished{false};
  std::vector<Status> st = OnRanks(world, [&](int r) -> Status {
    if (r == 1) {
      while (!zero_finished) std::this_thread::sleep_for(std::chrono::milliseconds(5));
      std::this_thread::sleep_for(std::chrono::milliseconds(200));  // rank 0 is leaving
    }
    std::unique_ptr<Collective> c;
    LORA_RETURN_IF_ERROR(Join(port, r, world, 20, &c));
    int v = r == 0 ? 42 : -1;
    LORA_RETURN_IF_ERROR(c->Broadcast(&v, sizeof v, 0, "before rank 1 joined"));
    if (v != 42) return InternalError(StrFormat("rank %d got %d", r, v));
    if (r == 0) zero_finished = true;
    return OkStatus();  // rank 0's store drains here
  });
  for (int r = 0; r < world; ++r) EXPECT_TRUE(st[r].ok()) << r << ": " << st[r].ToString();
}

TEST(TcpStoreTest, RankZeroLeavesOnceEveryRankSaidBye) {
  // Rank 0 broadcasts a value rank 1 never takes (plans with other
  // collectives): once rank 1 has said bye nobody can finish it, so rank 0's
  // store stops at once instead of waiting out the 60 s timeout.
  const int port = FreePort(), world = 2;
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<Status> st = OnRanks(world, [&](int r) -> Status {
    std::unique_ptr<Collective> c;
    LORA_RETURN_IF_ERROR(Join(port, r, world, 60, &c));
    int v = 42;
    if (r == 0) LORA_RETURN_IF_ERROR(c->Broadcast(&v, sizeof v, 0, "only rank 0's"));
    return OkStatus();
  });
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  for (int r = 0; r < world; ++r) EXPECT_TRUE(st[r].ok()) << r << ": " << st[r].ToString();
  EXPECT_LT(s, 30.0) << "rank 0 waited for a collective no rank was left to finish";
}

TEST(TcpStoreTest, RankZeroFindsItsPortTaken) {
  const int port = FreePort();
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_ANY);
  a.sin_port = htons(static_cast<uint16_t>(port));
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ASSERT_EQ(::listen(fd, 1), 0);
  std::unique_ptr<Collective> c;
  Status s = Join(port, 0, 2, 5, &c);
  ::close(fd);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("port " + std::to_string(port) +
                             " (MASTER_PORT) is in use on rank 0's host"),
            std::string::npos)
      << s.message();
}

TEST(TcpStoreTest, EnvironmentVariablesAreChecked) {
  struct Var {
    const char* name;
    const char* value;
  };
  auto with = [](std::vector<Var> vars, const std::string& mode) {
    for (const char* n :
         {"RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "OMPI_COMM_WORLD_SIZE",
          "PMI_SIZE", "PMIX_RANK", "TORCHELASTIC_USE_AGENT_STORE", "LORART_RENDEZVOUS_PORT"})
      ::unsetenv(n);
    for (const Var& v : vars) ::setenv(v.name, v.value, 1);
    std::unique_ptr<Collective> c;
    Status s = FromEnvironment(mode, CollectiveOptions(), &c);
    for (const Var& v : vars) ::unsetenv(v.name);
    return s.ok() ? std::string("ok, world size ") + std::to_string(c->world_size()) + ", " +
                        c->description()
                  : s.message();
  };
  EXPECT_EQ(with({{"WORLD_SIZE", "1"}}, "auto"), "ok, world size 1, single process");
  EXPECT_EQ(with({}, "auto"), "ok, world size 1, single process");
  EXPECT_NE(with({}, "torchrun").find("WORLD_SIZE is not set"), std::string::npos);
  EXPECT_NE(with({{"WORLD_SIZE", "2"}, {"RANK", "0"}}, "auto").find("LOCAL_RANK is not set"),
            std::string::npos);
  EXPECT_NE(with({{"WORLD_SIZE", "2"}, {"RANK", "-1"}}, "auto")
                .find("RANK=-1: expected an integer in 0..1"),
            std::string::npos);
  EXPECT_NE(with({{"WORLD_SIZE", "2"},
                  {"RANK", "0"},
                  {"LOCAL_RANK", "0"},
                  {"MASTER_ADDR", "127.0.0.1"},
                  {"MASTER_PORT", "70000"}},
                 "auto")
                .find("MASTER_PORT=70000: expected an integer in 1..65535"),
            std::string::npos);
  EXPECT_EQ(with({{"WORLD_SIZE", "4"}, {"RANK", "3"}}, "none"), "ok, world size 1, single process");
  // Rank 0 alone joins its own rendezvous (the others are waited for at the
  // first collective): on MASTER_PORT, on the next port when torchrun's
  // agent holds MASTER_PORT, on LORART_RENDEZVOUS_PORT when set.
  const int port = FreePort();
  const std::string p = std::to_string(port), next = std::to_string(port + 1);
  const std::vector<Var> rank0 = {{"WORLD_SIZE", "2"},
                                  {"RANK", "0"},
                                  {"LOCAL_RANK", "0"},
                                  {"MASTER_ADDR", "127.0.0.1"},
                                  {"MASTER_PORT", p.c_str()}};
  EXPECT_EQ(with(rank0, "auto"),
            "ok, world size 2, torchrun-style: rendezvous at 127.0.0.1:" + p + ", 2 ranks");
  std::vector<Var> agent = rank0;
  agent.push_back({"TORCHELASTIC_USE_AGENT_STORE", "True"});
  EXPECT_EQ(with(agent, "torchrun"),
            "ok, world size 2, torchrun-style: rendezvous at 127.0.0.1:" + next + ", 2 ranks");
  std::vector<Var> own = agent;
  own.push_back({"LORART_RENDEZVOUS_PORT", p.c_str()});
  EXPECT_EQ(with(own, "auto"),
            "ok, world size 2, torchrun-style: rendezvous at 127.0.0.1:" + p + ", 2 ranks");
  own.back().value = "0";
  EXPECT_NE(with(own, "auto").find("LORART_RENDEZVOUS_PORT=0: expected an integer in 1..65535"),
            std::string::npos);
  EXPECT_NE(with({}, "gloo").find("--dist must be auto, mpi, torchrun or none"), std::string::npos);
}

}  // namespace
}  // namespace lorart::dist
