// SPDX-License-Identifier: GPL-2.0-or-later
#pragma once
// TCP probers on libuv: a plain connect check, and the agent check (connect, read one line,
// parse it). Each attempt owns its own socket, created by us so that SO_BINDTODEVICE and the
// source address are set *before* connect (uv_tcp_connect would create the socket itself);
// libuv adopts it with uv_tcp_open. Connections are closed with SO_LINGER 0 (RST), as load
// balancers' health checkers do, so a 10 Hz check leaves no TIME_WAIT sockets behind.

#include <netinet/in.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>

#include "core/uv/uv.h"
#include "probes/net.h"
#include "probes/types.h"

namespace hanat::probes {

class TcpProber {
 public:
  using Done = std::function<void(Outcome)>;
  TcpProber(uv::Loop& loop, BindOptions bind);
  ~TcpProber();
  TcpProber(const TcpProber&) = delete;
  TcpProber& operator=(const TcpProber&) = delete;

  // Connect check: ok when the handshake completes before the deadline. Failure kinds:
  // Refused (RST), Timeout (no answer: filtered port, dead host), Unreachable (no route,
  // ICMP unreachable), Error (anything else). `done` runs exactly once, possibly before
  // connect() returns when the socket cannot even be set up; never after destruction.
  void connect(const sockaddr_in& target, std::chrono::milliseconds timeout, Done done);

  // Agent check: connect, read one line (at most kAgentLineMax bytes), parse it. ok when the
  // agent says "up" without draining. "down" (or draining) is Failure::AgentDown with the
  // agent's reason; an answer from another instance than `expect_id` (when non-empty), a
  // malformed line, or a close without a line is Failure::Error. The parsed line is kept in
  // Outcome::agent.
  void agent(const sockaddr_in& target, std::chrono::milliseconds timeout, std::string expect_id,
             Done done);

  [[nodiscard]] std::size_t in_flight() const { return attempts_.size(); }

 private:
  struct Attempt;
  void start(const sockaddr_in& target, std::chrono::milliseconds timeout, bool read_line,
             std::string expect_id, Done done);
  void arm_deadline(Attempt& a, std::uint64_t id);
  void finish(std::uint64_t id, Outcome o);
  void on_connected(std::uint64_t id, std::error_code ec);
  void on_data(std::uint64_t id, std::error_code ec, std::string_view data);

  uv::Loop& loop_;
  BindOptions bind_;
  std::uint64_t next_id_ = 1;
  std::unordered_map<std::uint64_t, std::unique_ptr<Attempt>> attempts_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace hanat::probes
