#include "lorart/dist/tcp_store.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>
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
constexpr uint64_t kMaxKey = 4096, kMaxValue = uint64_t{1} << 30;

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

}  // namespace

// Serves the store on a thread of rank 0's process.
class TcpStore::Server {
 public:
  static Status Start(const StoreOptions& o, std::unique_ptr<Server>* out, int* port) {
    std::unique_ptr<Server> s(new Server());
    s->world_ = o.world_size;
    s->states_.assign(static_cast<size_t>(o.world_size), '0');
    s->drain_s_ = o.timeout_s;
    // Every interface, IPv6 and IPv4 both where the host has IPv6.
    int fd = ::socket(AF_INET6, SOCK_STREAM, 0);
    int one = 1, zero = 0;
    if (fd >= 0) {
      ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
      ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
      sockaddr_in6 a{};
      a.sin6_family = AF_INET6;
      a.sin6_addr = in6addr_any;
      a.sin6_port = htons(static_cast<uint16_t>(o.port));
      if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
        const int e = errno;
        ::close(fd);
        fd = -1;
        if (e == EADDRINUSE) return InUse(o.port);
      }
    }
    if (fd < 0) {
      fd = ::socket(AF_INET, SOCK_STREAM, 0);
      if (fd < 0) return UnavailableError(StrFormat("socket: %s", std::strerror(errno)));
      ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_addr.s_addr = htonl(INADDR_ANY);
      a.sin_port = htons(static_cast<uint16_t>(o.port));
      if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
        const int e = errno;
        ::close(fd);
        if (e == EADDRINUSE) return InUse(o.port);
        return UnavailableError(StrFormat("rank 0 cannot serve the rendezvous on port %d: %s",
                                          o.port, std::strerror(e)));
      }
    }
    if (::listen(fd, 1024) != 0) {
      const int e = errno;
      ::close(fd);
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
    int rank = -1;  // -1 until its hello
    bool bye = false, closed = false;
    std::string in;
  };
  struct Waiter {
    int fd;
    uint32_t id;
  };

  Server() = default;

  static Status InUse(int port) {
    return UnavailableError(StrFormat(
        "port %d (MASTER_PORT, or LORART_RENDEZVOUS_PORT) is in use on rank 0's host: choose "
        "a free port (every rank must be given the same) or end the process that holds it",
        port));
  }

  // While draining: done when the job failed, or every rank that joined has
  // left, or the deadline passed.
  bool Drained() const {
    if (!draining_) return false;
    if (!failed_.empty() || Clock::now() > drain_deadline_) return true;
    for (const Client& c : clients_)
      if (c.rank >= 0 && !c.bye && !c.closed) return false;
    return true;
  }

  void Loop() {
    while (!Drained()) {
      std::vector<pollfd> fds;
      fds.push_back({listen_, POLLIN, 0});
      for (const Client& c : clients_) fds.push_back({c.fd, POLLIN, 0});
      if (::poll(fds.data(), fds.size(), 50) <= 0) continue;
      if (fds[0].revents & POLLIN) {
        int fd = ::accept(listen_, nullptr, nullptr);
        if (fd >= 0) {
          int one = 1;
          ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          Client c;
          c.fd = fd;
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
      if (klen > kMaxKey || vlen > kMaxValue) return false;
      if (c->in.size() < kRequestHeader + klen + vlen) return true;
      std::string key = c->in.substr(kRequestHeader, klen);
      std::string value = c->in.substr(kRequestHeader + klen, vlen);
      c->in.erase(0, kRequestHeader + klen + vlen);
      Handle(c, op, id, key, value);
      if (c->closed) return true;
    }
    return true;
  }

  void Send(const Client& c, uint32_t id, uint8_t code, const std::string& payload) {
    (void)SendAll(c.fd, Reply(id, code, payload));
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
          for (const Waiter& x : w->second) (void)SendAll(x.fd, Reply(x.id, kOk, value));
          waiters_.erase(w);
        }
        return Send(*c, id, kOk, "");
      }
      case kGet: {
        auto it = kv_.find(key);
        if (it != kv_.end()) return Send(*c, id, kOk, it->second);
        waiters_[key].push_back({c->fd, id});
        return;
      }
      case kTryGet: {
        auto it = kv_.find(key);
        return it != kv_.end() ? Send(*c, id, kOk, it->second) : Send(*c, id, kNotFound, "");
      }
      case kDone: {
        if (++done_[key] == world_) {
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
        c->closed = true;
    }
  }

  void Hello(Client* c, uint32_t id, const std::string& value) {
    int rank = -1, world = -1;
    std::string why;
    if (std::sscanf(value.c_str(), "%d %d", &rank, &world) != 2)
      why = "a malformed hello";
    else if (world != world_)
      why = StrFormat(
          "rank %d says WORLD_SIZE=%d, rank 0 says %d: every rank must be given the "
          "same WORLD_SIZE",
          rank, world, world_);
    else if (rank < 0 || rank >= world_)
      why = StrFormat("RANK=%d is not in 0..%d", rank, world_ - 1);
    else if (states_[static_cast<size_t>(rank)] != '0')
      why = StrFormat("RANK=%d joined twice: every rank must be given its own RANK", rank);
    if (!why.empty()) {
      Send(*c, id, kRefused, why);
      c->closed = true;
      return;
    }
    c->rank = rank;
    states_[static_cast<size_t>(rank)] = '1';
    Send(*c, id, kOk, "");
  }

  void Gone(Client* c) {
    c->closed = true;
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
  std::map<std::string, int> done_;
  std::string states_, failed_;
};

Status TcpStore::Connect(const StoreOptions& o, std::unique_ptr<TcpStore>* out) {
  std::unique_ptr<TcpStore> s(new TcpStore());
  s->options_ = o;
  s->port_ = o.port;
  if (o.rank == 0) LORA_RETURN_IF_ERROR(Server::Start(o, &s->server_, &s->port_));
  s->address_ = StrFormat("%s:%d", o.host.c_str(), s->port_);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  const std::string port = std::to_string(s->port_);
  if (int rc = ::getaddrinfo(o.host.c_str(), port.c_str(), &hints, &found); rc != 0)
    return InvalidArgumentError(StrFormat("MASTER_ADDR=%s: %s", o.host.c_str(), gai_strerror(rc)));
  const auto deadline = After(o.timeout_s);
  std::string last = "no address";
  while (s->fd_ < 0) {
    for (addrinfo* a = found; a && s->fd_ < 0; a = a->ai_next) {
      int fd = ::socket(a->ai_family, a->ai_socktype, a->ai_protocol);
      if (fd < 0) continue;
      if (::connect(fd, a->ai_addr, a->ai_addrlen) == 0) {
        s->fd_ = fd;
      } else {
        last = std::strerror(errno);
        ::close(fd);
      }
    }
    if (s->fd_ >= 0) break;
    if (Clock::now() > deadline) {
      ::freeaddrinfo(found);
      return UnavailableError(StrFormat(
          "rank %d could not reach the rendezvous at %s (MASTER_ADDR:MASTER_PORT) in %g s: %s "
          "(is rank 0 running, and the port open between the hosts?)",
          o.rank, s->address_.c_str(), o.timeout_s, last.c_str()));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ::freeaddrinfo(found);
  int one = 1;
  ::setsockopt(s->fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  uint8_t code = 0;
  std::string reply;
  bool timed_out = false;
  LORA_RETURN_IF_ERROR(s->Call(kHello, "", StrFormat("%d %d", o.rank, o.world_size), deadline,
                               &code, &reply, &timed_out));
  if (timed_out)
    return UnavailableError(StrFormat("the rendezvous at %s did not answer rank %d's hello in %g s",
                                      s->address_.c_str(), o.rank, o.timeout_s));
  if (code != kOk)
    return InvalidArgumentError(StrFormat("the rendezvous at %s refused rank %d: %s",
                                          s->address_.c_str(), o.rank, reply.c_str()));
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
    if (got_id == id) return OkStatus();
    // The late reply of a request whose wait timed out: dropped.
  }
}

Status TcpStore::Set(const std::string& key, const std::string& value) {
  uint8_t code = 0;
  std::string reply;
  bool timed_out = false;
  LORA_RETURN_IF_ERROR(
      Call(kSet, key, value, After(options_.timeout_s), &code, &reply, &timed_out));
  if (timed_out)
    return UnavailableError(StrFormat("the rendezvous at %s did not answer in %g s (rank 0 hung?)",
                                      address_.c_str(), options_.timeout_s));
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
  uint8_t code = 0;
  std::string reply;
  bool timed_out = false;
  LORA_RETURN_IF_ERROR(
      Call(kDone, prefix, "", After(options_.timeout_s), &code, &reply, &timed_out));
  if (timed_out)
    return UnavailableError(StrFormat("the rendezvous at %s did not answer in %g s (rank 0 hung?)",
                                      address_.c_str(), options_.timeout_s));
  return OkStatus();
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
