// SPDX-License-Identifier: GPL-2.0-or-later
#include "probes/icmp.h"

#include <netinet/ip.h>
#include <netinet/ip_icmp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <random>

namespace hanat::probes {
namespace {

// From <linux/icmp.h>, which cannot be included next to <netinet/ip_icmp.h> (both define
// struct icmphdr): a raw ICMP socket drops the types whose bit is set in this mask.
constexpr int kIcmpFilter = 1;
struct IcmpFilter {
  std::uint32_t data;
};

constexpr std::size_t kPayload = 16;  // 8-byte cookie + 8-byte send time (debugging aid)

std::uint16_t checksum(const std::uint8_t* p, std::size_t n) {
  std::uint32_t sum = 0;
  for (std::size_t i = 0; i + 1 < n; i += 2) {
    sum += static_cast<std::uint32_t>(p[i] << 8 | p[i + 1]);
  }
  if (n % 2 != 0) sum += static_cast<std::uint32_t>(p[n - 1] << 8);
  while (sum >> 16) sum = (sum & 0xffffu) + (sum >> 16);
  return htons(static_cast<std::uint16_t>(~sum & 0xffffu));
}

std::string errno_text(int err) {
  return std::strerror(err);
}

std::uint64_t random64() {
  std::random_device rd;
  return (static_cast<std::uint64_t>(rd()) << 32) ^ rd();
}

}  // namespace

const char* to_string(IcmpMode m) {
  switch (m) {
    case IcmpMode::Auto:
      return "auto";
    case IcmpMode::Ping:
      return "ping-socket";
    case IcmpMode::Raw:
      return "raw-socket";
  }
  return "?";
}

core::Result<std::unique_ptr<IcmpProber>, std::string> IcmpProber::open(uv::Loop& loop,
                                                                        IcmpMode mode,
                                                                        const BindOptions& bind) {
  using Err = core::Unexpected<std::string>;
  int fd = -1;
  IcmpMode got = mode;
  std::string ping_error;
  if (mode == IcmpMode::Auto || mode == IcmpMode::Ping) {
    fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_ICMP);
    got = IcmpMode::Ping;
    if (fd < 0) {
      ping_error = "ICMP ping socket: " + errno_text(errno) +
                   (errno == EACCES ? " (our group is outside net.ipv4.ping_group_range)" : "");
      if (mode == IcmpMode::Ping) return Err(ping_error);
    }
  }
  if (fd < 0) {
    fd = socket(AF_INET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_ICMP);
    got = IcmpMode::Raw;
    if (fd < 0) {
      std::string e =
          "ICMP raw socket: " + errno_text(errno) + (errno == EPERM ? " (needs CAP_NET_RAW)" : "");
      return Err(ping_error.empty() ? e : ping_error + "; " + e);
    }
    IcmpFilter f{
        ~((1u << ICMP_ECHOREPLY) | (1u << ICMP_DEST_UNREACH) | (1u << ICMP_TIME_EXCEEDED))};
    (void)setsockopt(fd, SOL_RAW, kIcmpFilter, &f, sizeof(f));  // an optimisation only
  }
  // Many targets answer in the same loop iteration; a bigger buffer avoids drops in bursts.
  int rcvbuf = 256 * 1024;
  (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));

  std::error_code ec = apply_bind(fd, bind);
  std::uint16_t ident = 0;
  if (!ec && got == IcmpMode::Ping && !bind.has_source) {
    // Binding assigns the echo identifier (ping_get_port), which we read back below.
    sockaddr_in any{};
    any.sin_family = AF_INET;
    if (::bind(fd, reinterpret_cast<sockaddr*>(&any), sizeof(any)) != 0) {
      ec = {errno, std::system_category()};
    }
  }
  if (ec) {
    ::close(fd);
    return Err(std::string("ICMP ") + to_string(got) + ": binding to " +
               (bind.interface.empty() ? "" : "interface '" + bind.interface + "' ") +
               (bind.has_source ? "source " + to_string(bind.source) + " " : "") +
               "failed: " + ec.message());
  }
  if (got == IcmpMode::Ping) {
    sockaddr_in me{};
    socklen_t len = sizeof(me);
    if (getsockname(fd, reinterpret_cast<sockaddr*>(&me), &len) != 0) {
      int err = errno;
      ::close(fd);
      return Err("ICMP ping socket: getsockname: " + errno_text(err));
    }
    ident = ntohs(me.sin_port);
  } else {
    ident = static_cast<std::uint16_t>(random64() & 0xffffu);
  }
  std::unique_ptr<IcmpProber> p(new IcmpProber(loop, fd, got, ident));
  if (auto e = p->poll_.init_error(); e) return Err("ICMP: uv_poll_init: " + e.message());
  IcmpProber* self = p.get();
  if (auto e = p->poll_.start(UV_READABLE, [self](int, int) { self->on_readable(); }); e) {
    return Err("ICMP: uv_poll_start: " + e.message());
  }
  return p;
}

IcmpProber::IcmpProber(uv::Loop& loop, int fd, IcmpMode mode, std::uint16_t ident)
    : loop_(loop),
      fd_(fd),
      mode_(mode),
      ident_(ident),
      cookie_(random64()),
      poll_(loop, fd),
      timer_(loop) {}

IcmpProber::~IcmpProber() {
  *alive_ = false;
  poll_.reset();  // before close(): the fd number may be reused at once
  ::close(fd_);
}

void IcmpProber::probe(const sockaddr_in& target, std::chrono::milliseconds timeout, Done done) {
  if (pending_.size() >= 65535) {
    done(failed(Failure::Error, "too many ICMP probes in flight"));
    return;
  }
  std::uint16_t seq = next_seq_++;
  while (pending_.count(seq) != 0) seq = next_seq_++;

  std::uint8_t pkt[sizeof(icmphdr) + kPayload] = {};
  icmphdr h{};
  h.type = ICMP_ECHO;
  h.code = 0;
  h.un.echo.id = htons(ident_);  // a ping socket overwrites it with its own identifier
  h.un.echo.sequence = htons(seq);
  std::memcpy(pkt, &h, sizeof(h));
  Time sent = Clock::now();
  auto sent_ns = static_cast<std::uint64_t>(sent.time_since_epoch().count());
  std::memcpy(pkt + sizeof(h), &cookie_, sizeof(cookie_));
  std::memcpy(pkt + sizeof(h) + 8, &sent_ns, sizeof(sent_ns));
  if (mode_ == IcmpMode::Raw) {
    std::uint16_t sum = checksum(pkt, sizeof(pkt));
    std::memcpy(pkt + offsetof(icmphdr, checksum), &sum, sizeof(sum));
  }
  sockaddr_in to = target;
  to.sin_port = 0;
  ssize_t n;
  do {
    n = sendto(fd_, pkt, sizeof(pkt), 0, reinterpret_cast<const sockaddr*>(&to), sizeof(to));
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    int err = errno;
    done(failed(classify_errno(err), "sendto " + to_string(target) + ": " + errno_text(err)));
    return;
  }
  Time deadline = sent + timeout;
  pending_.emplace(seq, Pending{target, sent, deadline, std::move(done)});
  bool earliest = deadlines_.empty() || deadline < deadlines_.begin()->first;
  deadlines_.emplace(deadline, seq);
  if (earliest) arm();
}

void IcmpProber::arm() {
  if (deadlines_.empty()) {
    (void)timer_.stop();
    return;
  }
  auto wait = deadlines_.begin()->first - Clock::now();
  // Round up: firing a millisecond late is harmless, firing early just re-arms.
  auto ms = std::chrono::ceil<std::chrono::milliseconds>(wait);
  if (ms.count() < 0) ms = std::chrono::milliseconds(0);
  // libuv measures timer timeouts from its cached loop time, which is stale when we were
  // called after a long callback chain; refresh it so the deadline is not cut short.
  uv_update_time(loop_.raw());
  (void)timer_.start(ms, std::chrono::milliseconds(0), [this] { on_deadline(); });
}

void IcmpProber::on_deadline() {
  auto alive = alive_;
  Time now = Clock::now();
  while (!deadlines_.empty() && deadlines_.begin()->first <= now) {
    std::uint16_t seq = deadlines_.begin()->second;
    deadlines_.erase(deadlines_.begin());
    auto it = pending_.find(seq);
    auto rtt = it == pending_.end()
                   ? std::chrono::microseconds(0)
                   : std::chrono::duration_cast<std::chrono::microseconds>(now - it->second.sent);
    finish(seq, failed(Failure::Timeout, "no echo reply", rtt));
    if (!*alive) return;
  }
  arm();
}

void IcmpProber::finish(std::uint16_t seq, Outcome o) {
  auto it = pending_.find(seq);
  if (it == pending_.end()) return;
  Done done = std::move(it->second.done);
  deadlines_.erase({it->second.deadline, seq});
  pending_.erase(it);
  done(std::move(o));
}

void IcmpProber::on_readable() {
  auto alive = alive_;
  // Bounded per wake-up so one busy socket cannot starve the loop.
  for (int i = 0; i < 256; ++i) {
    std::uint8_t buf[1500];
    sockaddr_in from{};
    socklen_t len = sizeof(from);
    ssize_t n = recvfrom(fd_, buf, sizeof(buf), 0, reinterpret_cast<sockaddr*>(&from), &len);
    if (n < 0) {
      if (errno == EINTR) continue;
      return;  // EAGAIN, or a transient error: the next readiness brings us back
    }
    handle_packet(buf, static_cast<std::size_t>(n), from);
    if (!*alive) return;
  }
}

void IcmpProber::handle_packet(const std::uint8_t* p, std::size_t n, const sockaddr_in& from) {
  if (mode_ == IcmpMode::Raw) {  // raw sockets deliver the IP header too
    if (n < sizeof(iphdr)) return;
    std::size_t ihl = static_cast<std::size_t>(p[0] & 0x0f) * 4;
    if (ihl < sizeof(iphdr) || n < ihl) return;
    p += ihl;
    n -= ihl;
  }
  if (n < sizeof(icmphdr)) return;
  icmphdr h;
  std::memcpy(&h, p, sizeof(h));

  if (h.type == ICMP_ECHOREPLY) {
    if (mode_ == IcmpMode::Raw && ntohs(h.un.echo.id) != ident_) return;  // someone else's
    std::uint64_t cookie = 0;
    if (n < sizeof(icmphdr) + kPayload) return;
    std::memcpy(&cookie, p + sizeof(icmphdr), sizeof(cookie));
    if (cookie != cookie_) return;
    std::uint16_t seq = ntohs(h.un.echo.sequence);
    auto it = pending_.find(seq);
    if (it == pending_.end() || it->second.target.sin_addr.s_addr != from.sin_addr.s_addr) {
      ++discarded_;  // late (deadline passed) or not from the target
      return;
    }
    auto rtt =
        std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - it->second.sent);
    finish(seq, succeeded("echo reply", rtt));
    return;
  }

  if (mode_ == IcmpMode::Raw && (h.type == ICMP_DEST_UNREACH || h.type == ICMP_TIME_EXCEEDED)) {
    // The error quotes our request: IP header, then at least 8 bytes of ICMP (RFC 792).
    const std::uint8_t* q = p + sizeof(icmphdr);
    std::size_t qn = n - sizeof(icmphdr);
    if (qn < sizeof(iphdr)) return;
    iphdr inner;
    std::memcpy(&inner, q, sizeof(inner));
    std::size_t ihl = static_cast<std::size_t>(inner.ihl) * 4;
    if (inner.protocol != IPPROTO_ICMP || ihl < sizeof(iphdr) || qn < ihl + sizeof(icmphdr)) {
      return;
    }
    icmphdr req;
    std::memcpy(&req, q + ihl, sizeof(req));
    if (req.type != ICMP_ECHO || ntohs(req.un.echo.id) != ident_) return;
    std::uint16_t seq = ntohs(req.un.echo.sequence);
    auto it = pending_.find(seq);
    if (it == pending_.end() || it->second.target.sin_addr.s_addr != inner.daddr) return;
    auto rtt =
        std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - it->second.sent);
    std::string what = h.type == ICMP_DEST_UNREACH ? "destination unreachable" : "time exceeded";
    finish(seq,
           failed(Failure::Unreachable,
                  what + " (code " + std::to_string(h.code) + ") from " + to_string(from), rtt));
  }
}

}  // namespace hanat::probes
