// SPDX-License-Identifier: GPL-2.0-or-later
#pragma once
// The agent port: every hanatd listens on TCP and answers each connection with one agent
// line (agent_line.h) describing its own health, then closes. The health comes from a
// provider the daemon fills in (netfilter verification, egress self-check, drain state), read
// afresh on every connection so a failed data plane is reported on the very next probe.

#include <netinet/in.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <system_error>
#include <unordered_map>

#include "core/uv/accept_budget.h"
#include "core/uv/uv.h"
#include "probes/types.h"

namespace hanat::probes {

class AgentServer {
 public:
  // nullopt: not ready to judge itself yet; the connection is closed unanswered, which a
  // peer counts as a failed agent probe, not as a "down" report.
  using Provider = std::function<std::optional<AgentReply>()>;
  // At most this many connections are served at once; more are closed unanswered, which a
  // peer sees as an error, so a connection flood cannot grow our memory.
  static constexpr std::size_t kMaxConnections = 64;

  // `budget`: connections accepted per loop turn and per second, as the status socket
  // (core/uv/accept_budget.h): a connection flood at the agent port cannot hold the loop,
  // and with it this host's own probe sends, for more than a budget's worth per turn.
  AgentServer(uv::Loop& loop, Provider provider, uv::AcceptBudget::Limits budget = {});
  ~AgentServer();
  AgentServer(const AgentServer&) = delete;
  AgentServer& operator=(const AgentServer&) = delete;

  // Binds and listens (port 0 picks a free port; see port()). The error names the address.
  [[nodiscard]] std::error_code listen(const sockaddr_in& addr, std::string* error = nullptr);
  [[nodiscard]] std::uint16_t port() const { return port_; }
  [[nodiscard]] std::uint64_t served() const { return served_; }
  [[nodiscard]] std::size_t open_connections() const { return conns_.size(); }
  // Times a connection had to wait for the accept budget.
  [[nodiscard]] std::uint64_t deferred_accepts() const { return accepts_.deferred(); }

 private:
  void on_connection(std::error_code ec);
  void accept_one();
  uv::Loop& loop_;
  Provider provider_;
  uv::Tcp listener_;
  std::uint16_t port_ = 0;
  std::uint64_t next_id_ = 1;
  std::uint64_t served_ = 0;
  std::unordered_map<std::uint64_t, std::unique_ptr<uv::Tcp>> conns_;
  uv::AcceptBudget accepts_;
};

}  // namespace hanat::probes
