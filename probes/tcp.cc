// SPDX-License-Identifier: GPL-2.0-or-later
#include "probes/tcp.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "probes/agent_line.h"

namespace hanat::probes {

struct TcpProber::Attempt {
  Attempt(uv::Loop& loop) : tcp(loop), timer(loop) {}
  uv::Tcp tcp;
  uv::Timer timer;
  sockaddr_in target{};
  Time sent{};
  Time deadline{};
  bool read_line = false;
  bool connected = false;
  std::string expect_id;
  std::string buf;
  Done done;
};

TcpProber::TcpProber(uv::Loop& loop, BindOptions bind) : loop_(loop), bind_(std::move(bind)) {}

TcpProber::~TcpProber() {
  *alive_ = false;
}

void TcpProber::connect(const sockaddr_in& target, std::chrono::milliseconds timeout, Done done) {
  start(target, timeout, false, {}, std::move(done));
}

void TcpProber::agent(const sockaddr_in& target, std::chrono::milliseconds timeout,
                      std::string expect_id, Done done) {
  start(target, timeout, true, std::move(expect_id), std::move(done));
}

namespace {
std::chrono::microseconds since(Time t) {
  return std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - t);
}
}  // namespace

void TcpProber::start(const sockaddr_in& target, std::chrono::milliseconds timeout, bool read_line,
                      std::string expect_id, Done done) {
  auto a = std::make_unique<Attempt>(loop_);
  a->target = target;
  a->read_line = read_line;
  a->expect_id = std::move(expect_id);
  a->done = std::move(done);
  a->sent = Clock::now();
  auto fail_now = [&a](Failure f, std::string what) {
    Done d = std::move(a->done);
    a.reset();
    d(failed(f, std::move(what)));
  };
  if (auto e = a->tcp.init_error(); e)
    return fail_now(Failure::Error, "uv_tcp_init: " + e.message());

  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return fail_now(Failure::Error, std::string("socket: ") + std::strerror(errno));
  if (auto e = apply_bind(fd, bind_); e) {
    ::close(fd);
    return fail_now(Failure::Error, "binding the probe socket: " + e.message());
  }
  if (auto e = a->tcp.open(fd); e) {
    ::close(fd);
    return fail_now(Failure::Error, "uv_tcp_open: " + e.message());
  }
  std::uint64_t id = next_id_++;
  if (auto e = a->tcp.connect(reinterpret_cast<const sockaddr*>(&target),
                              [this, id](std::error_code ec) { on_connected(id, ec); });
      e) {
    // Immediate failures (no route) are reported by connect() itself.
    return fail_now(classify_errno(e.value()), "connect " + to_string(target) + ": " + e.message());
  }
  a->deadline = a->sent + timeout;
  arm_deadline(*a, id);
  attempts_.emplace(id, std::move(a));
}

void TcpProber::arm_deadline(Attempt& a, std::uint64_t id) {
  // libuv counts timeouts from its cached loop time, truncated to milliseconds: refresh it,
  // round up, and re-arm if the timer still fires a fraction of a millisecond early.
  uv_update_time(loop_.raw());
  auto left = std::chrono::ceil<std::chrono::milliseconds>(a.deadline - Clock::now());
  if (left.count() < 1) left = std::chrono::milliseconds(1);
  (void)a.timer.start(left, std::chrono::milliseconds(0), [this, id] {
    auto it = attempts_.find(id);
    if (it == attempts_.end()) return;
    if (Clock::now() < it->second->deadline) {
      arm_deadline(*it->second, id);
      return;
    }
    finish(id, failed(Failure::Timeout, it->second->connected ? "no agent line before the deadline"
                                                              : "no answer to connect"));
  });
}

void TcpProber::finish(std::uint64_t id, Outcome o) {
  auto it = attempts_.find(id);
  if (it == attempts_.end()) return;
  std::unique_ptr<Attempt> a = std::move(it->second);
  attempts_.erase(it);
  o.rtt = since(a->sent);
  if (a->tcp.valid()) {
    // RST instead of FIN/TIME_WAIT (see header). Harmless if the socket never connected.
    linger l{1, 0};
    (void)setsockopt(a->tcp.fd(), SOL_SOCKET, SO_LINGER, &l, sizeof(l));
  }
  Done done = std::move(a->done);
  a.reset();  // closes socket and timer; safe inside their callbacks (core/uv contract)
  done(std::move(o));
}

void TcpProber::on_connected(std::uint64_t id, std::error_code ec) {
  auto it = attempts_.find(id);
  if (it == attempts_.end()) return;
  Attempt& a = *it->second;
  if (ec) {
    Failure f = classify_errno(ec.value());
    finish(id, failed(f, "connect " + to_string(a.target) + ": " + ec.message()));
    return;
  }
  a.connected = true;
  if (!a.read_line) {
    finish(id, succeeded("connected"));
    return;
  }
  if (auto e = a.tcp.read_start(
          [this, id](std::error_code rec, std::string_view data) { on_data(id, rec, data); });
      e) {
    finish(id, failed(Failure::Error, "read_start: " + e.message()));
  }
}

void TcpProber::on_data(std::uint64_t id, std::error_code ec, std::string_view data) {
  auto it = attempts_.find(id);
  if (it == attempts_.end()) return;
  Attempt& a = *it->second;
  bool eof = false;
  if (ec) {
    if (ec.value() != -UV_EOF) {
      finish(id, failed(classify_errno(ec.value()), "reading the agent line: " + ec.message()));
      return;
    }
    eof = true;
  }
  if (a.buf.size() < kAgentLineMax + 2)
    a.buf.append(data.substr(0, kAgentLineMax + 2 - a.buf.size()));
  auto nl = a.buf.find('\n');
  if (nl == std::string::npos && !eof) {
    if (a.buf.size() > kAgentLineMax + 1) {
      finish(id, failed(Failure::Error,
                        "agent line longer than " + std::to_string(kAgentLineMax) + " bytes"));
    }
    return;  // wait for more
  }
  if (nl == std::string::npos && a.buf.empty()) {
    finish(id, failed(Failure::Error, "agent closed without a line"));
    return;
  }
  auto parsed = parse_agent_line(std::string_view(a.buf).substr(0, nl));
  if (!parsed) {
    finish(id, failed(Failure::Error, parsed.error()));
    return;
  }
  AgentReply r = std::move(parsed).value();
  Outcome o;
  if (!a.expect_id.empty() && r.instance_id != a.expect_id) {
    o.failure = Failure::Error;
    o.detail = "agent at " + to_string(a.target) + " is '" + r.instance_id + "', expected '" +
               a.expect_id + "'";
  } else if (!r.up) {
    o.failure = Failure::AgentDown;
    o.detail = r.reason;
  } else if (r.facts.draining) {
    o.failure = Failure::AgentDown;
    o.detail = "draining";
  } else {
    o.ok = true;
    o.detail = "agent up";
  }
  o.agent = std::move(r);
  finish(id, std::move(o));
}

}  // namespace hanat::probes
