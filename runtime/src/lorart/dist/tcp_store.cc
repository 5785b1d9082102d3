#include "lorart/dist/tcp_store.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>
#include <set>
#include <thread>
#include <vector>

namespace lorart::dist {

namespace {

// A request: op (1 byte), id (4), key length (4), value length (8), key,
// value. A reply: id (4; 0 for a failure notice the server pushes), code
// (1), payload length (8), payload. Integers little-endian.
enum Op : uint8_t { kHello = 1, kSet, kGet, kTryGet, kDone, kJoined, kFail, kBye };
enum Code : uint8_t { kOk = 0, kNotFound = 1, kRefused = 2, kFailed = 3 };
constexpr size_t kRequestHeader = 17, kReplyHeader = 13;
// The store carries ids and sums of a few numbers: a larger message is a
// bug or not ours.
constexpr uint64_t kMaxKey = 4096, kMaxValue = uint64_t{16} << 20;
// A client that does not take a reply within this long is dropped (the
// server thread must never block on one).
constexpr int kSendTimeoutS = 10;

void PutInt(std::string* s, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) s->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
uint64_t GetInt(const std::string& s, size_t at, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v |= uint64_t{static_cast<uint8_t>(s[at + i])} << (8 * i);
  return v;
}

bool SendAll(int fd, const std::string& data) {
  size_t sent = 0;
  while (sent < data.size()) {
    ssize_t n = ::send(fd, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    sent += static_cast<size_t>(n);
  }
  return true;
}

std::string Reply(uint32_t id, uint8_t code, const std::string& payload) {
  std::string r;
  PutInt(&r, id, 4);
  r.push_back(static_cast<char>(code));
  PutInt(&r, payload.size(), 8);
  return r + payload;
}

int MillisUntil(TcpStore::Clock::time_point deadline) {
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - TcpStore::Clock::now())
                .count();
  return static_cast<int>(std::clamp<int64_t>(ms, 0, 60000));
}

TcpStore::Clock::time_point After(double seconds) {
  return TcpStore::Clock::now() + std::chrono::duration_cast<TcpStore::Clock::duration>(
                                      std::chrono::duration<double>(seconds));
}

// A TCP socket of `family` bound to `port` on every interface (IPv6 also
// takes IPv4), or -1 with *err set.
int BindAny(int family, int port, int* err) {
  int fd = ::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1, zero = 0;
  sockaddr_storage a{};
  socklen_t len = 0;
  if (family == AF_INET6) {
    auto* a6 = reinterpret_cast<sockaddr_in6*>(&a);
    a6->sin6_family = AF_INET6;
    a6->sin6_addr = in6addr_any;
    a6->sin6_port = htons(static_cast<uint16_t>(port));
    len = sizeof *a6;
  } else {
    auto* a4 = reinterpret_cast<sockaddr_in*>(&a);
    a4->sin_family = AF_INET;
    a4->sin_addr.s_addr = htonl(INADDR_ANY);
    a4->sin_port = htons(static_cast<uint16_t>(port));
    len = sizeof *a4;
  }
  if (fd < 0 ||
      (family == AF_INET6 && ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero)) ||
      ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) ||
      ::bind(fd, reinterpret_cast<sockaddr*>(&a), len)) {
    *err = errno;
    if (fd >= 0) ::close(fd);
    return -1;
  }
  return fd;
}

}  // namespace

// Serves the store on a thread of rank 0's process.
class TcpStore::Server {
 public:
  static Status Start(const StoreOptions& o, std::unique_ptr<Server>* out, int* port) {
    std::unique_ptr<Server> s(new Server());
    s->world_ = o.world_size;
    s->states_.assign(static_cast<size_t>(o.world_size), '0');
    s->drain_s_ = o.timeout_s;
    // Every interface, IPv6 and IPv4 both where the host has IPv6 (else
    // IPv4 alone).
    int err = 0;
    int fd = BindAny(AF_INET6, o.port, &err);
    if (fd < 0 && err != EADDRINUSE) fd = BindAny(AF_INET, o.port, &err);
    if (fd < 0 && err == EADDRINUSE) return InUse(o);
    if (fd < 0)
      return UnavailableError(StrFormat("rank 0 cannot serve the rendezvous on port %d: %s", o.port,
                                        std::strerror(err)));
    if (::listen(fd, 1024) != 0) {
      const int e = errno;
      ::close(fd);
      if (e == EADDRINUSE) return InUse(o);
      return UnavailableError(StrFormat("listen on port %d: %s", o.port, std::strerror(e)));
    }
    sockaddr_storage bound{};
    socklen_t len = sizeof bound;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &len);
    *port = bound.ss_family == AF_INET6 ? ntohs(reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port)
                                        : ntohs(reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
    s->listen_ = fd;
    s->thread_ = std::thread([p = s.get()] { p->Loop(); });
    *out = std::move(s);
    return OkStatus();
  }

  ~Server() {
    drain_deadline_ = After(drain_s_);
    draining_ = true;
    if (thread_.joinable()) thread_.join();
    for (Client& c : clients_) ::close(c.fd);
    if (listen_ >= 0) ::close(listen_);
  }

 private:
  struct Client {
    int fd = -1;
    uint64_t serial = 0;  // this connection's number (fds are reused)
    int rank = -1;        // -1 until its hello
    bool bye = false, closed = false;
    std::string in;
  };
  struct Waiter {
    uint64_t serial;  // the client's
    uint32_t id;
  };

  Server() = default;

  static Status InUse(const StoreOptions& o) {
    return UnavailableError(StrFormat(
        "port %d (%s) is in use on rank 0's host: choose a free port (every rank must be given "
        "the same; LORART_RENDEZVOUS_PORT names it), or check that no other process was given "
        "RANK=0 with it",
        o.port, o.port_source.c_str()));
  }

  // While draining: done when the job failed, or the deadline passed, or
  // every rank of the world has said bye (nobody is left to finish a
  // collective), or every rank that joined has left and no collective waits
  // for a rank to finish it. The last matters when rank 0 finishes first:
  // the root of a broadcast does not wait, so a slow rank may not even have
  // connected yet when rank 0 leaves, and the store must still be there for
  // it.
  bool Drained() const {
    if (!draining_) return false;
    if (!failed_.empty() || Clock::now() > drain_deadline_) return true;
    if (states_.find_first_not_of('2') == std::string::npos) return true;
    for (const Client& c : clients_)
      if (c.rank >= 0 && !c.bye && !c.closed) return false;
    return done_.empty();
  }

  void Loop() {
    while (!Drained()) {
      std::vector<pollfd> fds;
      fds.push_back({listen_, POLLIN, 0});
      for (const Client& c : clients_) fds.push_back({c.fd, POLLIN, 0});
      if (::poll(fds.data(), fds.size(), 50) <= 0) continue;
      if (fds[0].revents & POLLIN) {
        int fd = ::accept4(listen_, nullptr, nullptr, SOCK_CLOEXEC);
        if (fd >= 0) {
          int one = 1;
          ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          timeval tv{kSendTimeoutS, 0};
          ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
          Client c;
          c.fd = fd;
          c.serial = ++serials_;
          clients_.push_back(std::move(c));
        }
      }
      for (size_t i = 1; i < fds.size(); ++i) {
        if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
        Client& c = clients_[i - 1];
        char buf[65536];
        ssize_t n = ::recv(c.fd, buf, sizeof buf, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
          Gone(&c);
          continue;
        }
        c.in.append(buf, static_cast<size_t>(n));
        if (!Parse(&c)) Gone(&c);
      }
      clients_.erase(std::remove_if(clients_.begin(), clients_.end(),
                                    [](const Client& c) {
                                      if (c.closed) ::close(c.fd);
                                      return c.closed;
                                    }),
                     clients_.end());
    }
  }

  // Handles every whole request in c->in; false on a malformed one.
  bool Parse(Client* c) {
    while (c->in.size() >= kRequestHeader) {
      const uint8_t op = static_cast<uint8_t>(c->in[0]);
      const uint32_t id = static_cast<uint32_t>(GetInt(c->in, 1, 4));
      const uint64_t klen = GetInt(c->in, 5, 4), vlen = GetInt(c->in, 9, 8);
      if (klen > kMaxKey || vlen > kMaxValue) {
        const std::string why =
            StrFormat("a request of %llu bytes, more than the rendezvous takes (%llu)",
                      static_cast<unsigned long long>(klen + vlen),
                      static_cast<unsigned long long>(kMaxKey + kMaxValue));
        Send(*c, id, kRefused, why);
        if (c->rank >= 0 && failed_.empty()) {
          failed_ = StrFormat("rank %d of %d sent %s", c->rank, world_, why.c_str());
          Announce(c->rank);
        }
        return false;
      }
      if (c->in.size() < kRequestHeader + klen + vlen) return true;
      std::string key = c->in.substr(kRequestHeader, klen);
      std::string value = c->in.substr(kRequestHeader + klen, vlen);
      c->in.erase(0, kRequestHeader + klen + vlen);
      Handle(c, op, id, key, value);
      if (c->closed) return true;
    }
    return true;
  }

  // A client that does not take its reply in time is dropped.
  void Send(Client& c, uint32_t id, uint8_t code, const std::string& payload) {
    if (!c.closed && !SendAll(c.fd, Reply(id, code, payload))) Gone(&c);
  }
  Client* BySerial(uint64_t serial) {
    for (Client& c : clients_)
      if (c.serial == serial && !c.closed) return &c;
    return nullptr;
  }
  // Forgets what a client that left was waiting for.
  void DropWaiters(uint64_t serial) {
    for (auto it = waiters_.begin(); it != waiters_.end();) {
      auto& list = it->second;
      list.erase(std::remove_if(list.begin(), list.end(),
                                [&](const Waiter& w) { return w.serial == serial; }),
                 list.end());
      it = list.empty() ? waiters_.erase(it) : std::next(it);
    }
  }

  void Handle(Client* c, uint8_t op, uint32_t id, const std::string& key,
              const std::string& value) {
    if (op == kHello) return Hello(c, id, value);
    if (c->rank < 0) {
      Send(*c, id, kRefused, "the rendezvous expected a hello first");
      c->closed = true;
      return;
    }
    if (op == kBye) {
      c->bye = true;
      states_[static_cast<size_t>(c->rank)] = '2';
      DropWaiters(c->serial);
      return;
    }
    if (op == kFail) {
      if (failed_.empty()) failed_ = value;
      Announce(c->rank);
      return;
    }
    if (!failed_.empty()) return Send(*c, id, kFailed, failed_);
    switch (op) {
      case kSet: {
        kv_[key] = value;
        auto w = waiters_.find(key);
        if (w != waiters_.end()) {
          std::vector<Waiter> list = std::move(w->second);
          waiters_.erase(w);
          for (const Waiter& x : list)
            if (Client* other = BySerial(x.serial)) Send(*other, x.id, kOk, value);
        }
        return Send(*c, id, kOk, "");
      }
      case kGet: {
        auto it = kv_.find(key);
        if (it != kv_.end()) return Send(*c, id, kOk, it->second);
        waiters_[key].push_back({c->serial, id});
        return;
      }
      case kTryGet: {
        auto it = kv_.find(key);
        return it != kv_.end() ? Send(*c, id, kOk, it->second) : Send(*c, id, kNotFound, "");
      }
      case kDone: {  // counted once per rank
        std::set<int>& said = done_[key];
        said.insert(c->rank);
        if (static_cast<int>(said.size()) == world_) {
          done_.erase(key);
          for (auto it = kv_.lower_bound(key); it != kv_.end() && it->first.rfind(key, 0) == 0;)
            it = kv_.erase(it);
        }
        return Send(*c, id, kOk, "");
      }
      case kJoined:
        return Send(*c, id, kOk, states_);
      default:
        Send(*c, id, kRefused, StrFormat("unknown request %d", op));
        Gone(c);
    }
  }

  void Hello(Client* c, uint32_t id, const std::string& value) {
    long rank = -1, world = -1;
    std::string why;
    const char* text = value.c_str();
    char* end = nullptr;
    rank = std::strtol(text, &end, 10);
    const bool first_ok = end != text && *end == ' ';
    const char* rest = first_ok ? end + 1 : text;
    world = std::strtol(rest, &end, 10);
    const bool well_formed = first_ok && end != rest && *end == '\0' && rank >= 0 &&
                             rank < (1L << 24) && world > 0 && world < (1L << 24);
    if (!well_formed || c->rank >= 0) {
      // Not one of ours (or a second hello): only this connection ends.
      Send(*c, id, kRefused, c->rank >= 0 ? "a second hello" : "a malformed hello");
      Gone(c);
      return;
    }
    if (world != world_)
      why = StrFormat(
          "rank %ld says WORLD_SIZE=%ld, rank 0 says %d: every rank must be given the "
          "same WORLD_SIZE",
          rank, world, world_);
    else if (rank >= world_)
      why = StrFormat("RANK=%ld is not in 0..%d", rank, world_ - 1);
    else if (states_[static_cast<size_t>(rank)] != '0')
      why = StrFormat("RANK=%ld joined twice: every rank must be given its own RANK", rank);
    if (!why.empty()) {
      // A misconfigured job: the ranks already here stop with the reason
      // rather than wait for a rank that will never take part.
      Send(*c, id, kRefused, why);
      c->closed = true;
      if (failed_.empty()) {
        failed_ = "the rendezvous refused a rank: " + why;
        Announce(-1);
      }
      return;
    }
    c->rank = static_cast<int>(rank);
    states_[static_cast<size_t>(rank)] = '1';
    Send(*c, id, kOk, "");
  }

  void Gone(Client* c) {
    if (c->closed) return;
    c->closed = true;
    DropWaiters(c->serial);
    if (c->rank < 0) return;
    states_[static_cast<size_t>(c->rank)] = c->bye ? '2' : '3';
    if (c->bye || !failed_.empty()) return;
    failed_ = StrFormat(
        "rank %d of %d left the rendezvous without finishing (it exited or died; its own output "
        "says why)",
        c->rank, world_);
    Announce(c->rank);
  }

  // Tells every other rank still here that the job failed; requests that
  // wait get the notice instead of their reply.
  void Announce(int from) {
    waiters_.clear();
    for (Client& other : clients_)
      if (other.rank >= 0 && other.rank != from && !other.closed && !other.bye)
        Send(other, 0, kFailed, failed_);
  }

  int world_ = 1;
  int listen_ = -1;
  double drain_s_ = 600;
  std::atomic<bool> draining_{false};
  Clock::time_point drain_deadline_;
  std::thread thread_;
  std::vector<Client> clients_;
  std::map<std::string, std::string> kv_;
  std::map<std::string, std::vector<Waiter>> waiters_;
  std::map<std::string, std::set<int>> done_;
  uint64_t serials_ = 0;
  std::string states_, failed_;
};

namespace {

// Connects to `a` within `deadline` (a blackholed host must not hold a rank
// past it); the socket, or -1 with *error set.
int ConnectBy(const addrinfo* a, TcpStore::Clock::time_point deadline, std::string* error) {
  int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, a->ai_protocol);
  if (fd < 0) {
    *error = std::strerror(errno);
    return -1;
  }
  int rc = ::connect(fd, a->ai_addr, a->ai_addrlen);
  if (rc != 0 && errno == EINPROGRESS) {
    pollfd p{fd, POLLOUT, 0};
    int err = ETIMEDOUT;
    if (::poll(&p, 1, std::max(1, MillisUntil(deadline))) == 1) {
      socklen_t len = sizeof err;
      ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
    }
    rc = err == 0 ? 0 : -1;
    errno = err;
  }
  if (rc != 0) {
    *error = std::strerror(errno);
    ::close(fd);
    return -1;
  }
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  return fd;
}

}  // namespace

Status TcpStore::Connect(const StoreOptions& o, std::unique_ptr<TcpStore>* out) {
  std::unique_ptr<TcpStore> s(new TcpStore());
  s->options_ = o;
  s->port_ = o.port;
  if (o.rank == 0) LORA_RETURN_IF_ERROR(Server::Start(o, &s->server_, &s->port_));
  // "[::1]" as well as "::1" for an IPv6 MASTER_ADDR.
  std::string host = o.host;
  if (host.size() > 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  s->address_ =
      StrFormat(host.find(':') != std::string::npos ? "[%s]:%d" : "%s:%d", host.c_str(), s->port_);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  const std::string port = std::to_string(s->port_);
  const auto deadline = After(o.timeout_s);
  std::string last = "no address";
  // Until the deadline: rank 0 may not serve yet, and a cluster's name
  // service may not know rank 0's host yet either.
  while (s->fd_ < 0) {
    addrinfo* found = nullptr;
    const int gai = ::getaddrinfo(host.c_str(), port.c_str(), &hints, &found);
    if (gai == 0) {
      for (addrinfo* a = found; a && s->fd_ < 0; a = a->ai_next)
        s->fd_ = ConnectBy(a, deadline, &last);
      ::freeaddrinfo(found);
    } else if (gai == EAI_AGAIN || gai == EAI_NONAME || gai == EAI_FAIL) {
      last = StrFormat("MASTER_ADDR=%s: %s", o.host.c_str(), gai_strerror(gai));
    } else {
      return InvalidArgumentError(
          StrFormat("MASTER_ADDR=%s: %s", o.host.c_str(), gai_strerror(gai)));
    }
    if (s->fd_ >= 0) break;
    if (Clock::now() > deadline)
      return UnavailableError(
          StrFormat("rank %d could not reach the rendezvous at %s (MASTER_ADDR, %s) in %g s: %s "
                    "(is rank 0 running, and the port open between the hosts?)",
                    o.rank, s->address_.c_str(), o.port_source.c_str(), o.timeout_s, last.c_str()));
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  int one = 1;
  ::setsockopt(s->fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  uint8_t code = 0;
  std::string reply;
  bool timed_out = false;
  LORA_RETURN_IF_ERROR(s->Call(kHello, "", StrFormat("%d %d", o.rank, o.world_size), deadline,
                               &code, &reply, &timed_out),
                       "the rendezvous at %s refused rank %d", s->address_.c_str(), o.rank);
  if (timed_out)
    return UnavailableError(StrFormat("the rendezvous at %s did not answer rank %d's hello in %g s",
                                      s->address_.c_str(), o.rank, o.timeout_s));
  *out = std::move(s);
  return OkStatus();
}

TcpStore::~TcpStore() {
  if (fd_ >= 0) {
    (void)Send(kBye, 0, "", "");
    ::close(fd_);
  }
  server_.reset();  // rank 0: serves until the others have left
}

Status TcpStore::Send(uint8_t op, uint32_t id, const std::string& key, const std::string& value) {
  if (key.size() > kMaxKey || value.size() > kMaxValue)
    return InvalidArgumentError(StrFormat("%zu bytes for the rendezvous, which takes at most %llu",
                                          key.size() + value.size(),
                                          static_cast<unsigned long long>(kMaxKey + kMaxValue)));
  std::string m;
  m.push_back(static_cast<char>(op));
  PutInt(&m, id, 4);
  PutInt(&m, key.size(), 4);
  PutInt(&m, value.size(), 8);
  m += key;
  m += value;
  if (!SendAll(fd_, m))
    return UnavailableError(StrFormat("lost the rendezvous at %s (rank 0 exited or died): %s",
                                      address_.c_str(), std::strerror(errno)));
  return OkStatus();
}

Status TcpStore::Receive(Clock::time_point deadline, uint32_t* id, uint8_t* code,
                         std::string* payload, bool* got) {
  *got = false;
  for (;;) {
    if (in_.size() >= kReplyHeader) {
      const uint64_t len = GetInt(in_, 5, 8);
      if (len > kMaxValue)
        return DataLossError(
            StrFormat("a malformed reply from the rendezvous at %s", address_.c_str()));
      if (in_.size() >= kReplyHeader + len) {
        *id = static_cast<uint32_t>(GetInt(in_, 0, 4));
        *code = static_cast<uint8_t>(in_[4]);
        *payload = in_.substr(kReplyHeader, len);
        in_.erase(0, kReplyHeader + len);
        *got = true;
        return OkStatus();
      }
    }
    pollfd p{fd_, POLLIN, 0};
    int r = ::poll(&p, 1, MillisUntil(deadline));
    if (r < 0 && errno == EINTR) continue;
    if (r == 0) {
      if (Clock::now() >= deadline) return OkStatus();
      continue;
    }
    char buf[65536];
    ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0)
      return UnavailableError(StrFormat(
          "lost the rendezvous at %s: rank 0, which serves it, exited or died", address_.c_str()));
    in_.append(buf, static_cast<size_t>(n));
  }
}

Status TcpStore::Call(uint8_t op, const std::string& key, const std::string& value,
                      Clock::time_point deadline, uint8_t* code, std::string* reply,
                      bool* timed_out) {
  *timed_out = false;
  if (!failed_.empty()) return UnavailableError(failed_);
  const uint32_t id = next_id_++;
  LORA_RETURN_IF_ERROR(Send(op, id, key, value));
  for (;;) {
    uint32_t got_id = 0;
    bool got = false;
    LORA_RETURN_IF_ERROR(Receive(deadline, &got_id, code, reply, &got));
    if (!got) {
      *timed_out = true;
      return OkStatus();
    }
    if (*code == kFailed) {
      failed_ = *reply;
      return UnavailableError(failed_);
    }
    if (got_id != id) continue;  // the late reply of a request whose wait timed out
    if (*code == kRefused) return InvalidArgumentError(*reply);
    return OkStatus();
  }
}

Status TcpStore::Set(const std::string& key, const std::string& value) {
  return Set(key, value, After(options_.timeout_s));
}

Status TcpStore::Set(const std::string& key, const std::string& value, Clock::time_point deadline) {
  return Answered(kSet, key, value, deadline);
}

Status TcpStore::Answered(uint8_t op, const std::string& key, const std::string& value,
                          Clock::time_point deadline) {
  uint8_t code = 0;
  std::string reply;
  bool timed_out = false;
  LORA_RETURN_IF_ERROR(Call(op, key, value, deadline, &code, &reply, &timed_out));
  if (timed_out)
    return UnavailableError(StrFormat(
        "the rendezvous at %s (rank 0) did not answer: stopped, hung or dead?", address_.c_str()));
  return OkStatus();
}

Status TcpStore::Get(const std::string& key, Clock::time_point deadline, std::string* value,
                     bool* timed_out) {
  uint8_t code = 0;
  return Call(kGet, key, "", deadline, &code, value, timed_out);
}

Status TcpStore::TryGet(const std::string& key, Clock::time_point deadline, std::string* value,
                        bool* found) {
  uint8_t code = 0;
  bool timed_out = false;
  LORA_RETURN_IF_ERROR(Call(kTryGet, key, "", deadline, &code, value, &timed_out));
  *found = !timed_out && code == kOk;
  return OkStatus();
}

Status TcpStore::Done(const std::string& prefix) {
  return Answered(kDone, prefix, "", After(options_.timeout_s));
}

Status TcpStore::Joined(Clock::time_point deadline, std::string* states) {
  uint8_t code = 0;
  bool timed_out = false;
  LORA_RETURN_IF_ERROR(Call(kJoined, "", "", deadline, &code, states, &timed_out));
  if (timed_out) states->clear();
  return OkStatus();
}

void TcpStore::Fail(const std::string& why) {
  if (failed_.empty()) (void)Send(kFail, 0, "", why);
}

Status TcpStore::PeerFailure() {
  if (!failed_.empty()) return UnavailableError(failed_);
  for (;;) {
    uint32_t id = 0;
    uint8_t code = 0;
    std::string payload;
    bool got = false;
    LORA_RETURN_IF_ERROR(Receive(Clock::now(), &id, &code, &payload, &got));
    if (!got) return OkStatus();
    if (code == kFailed) {
      failed_ = payload;
      return UnavailableError(failed_);
    }
  }
}

}  // namespace lorart::dist
