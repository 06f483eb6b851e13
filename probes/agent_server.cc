// SPDX-License-Identifier: GPL-2.0-or-later
#include "probes/agent_server.h"

#include "probes/agent_line.h"
#include "probes/net.h"

namespace hanat::probes {

AgentServer::AgentServer(uv::Loop& loop, Provider provider, uv::AcceptBudget::Limits budget)
    : loop_(loop),
      provider_(std::move(provider)),
      listener_(loop),
      accepts_(loop, budget, [this] { accept_one(); }) {}

AgentServer::~AgentServer() = default;

std::error_code AgentServer::listen(const sockaddr_in& addr, std::string* error) {
  auto report = [&](const char* what, std::error_code ec) {
    if (error)
      *error = std::string("agent port ") + to_string(addr) + ":" +
               std::to_string(ntohs(addr.sin_port)) + ": " + what + ": " + ec.message();
    return ec;
  };
  if (auto e = listener_.init_error(); e) return report("uv_tcp_init", e);
  if (auto e = listener_.bind(reinterpret_cast<const sockaddr*>(&addr)); e) {
    return report("bind", e);
  }
  if (auto e = listener_.listen(128, [this](std::error_code ec) { on_connection(ec); }); e) {
    return report("listen", e);
  }
  sockaddr_storage ss{};
  if (auto e = listener_.sockname(ss); e) return report("getsockname", e);
  port_ = ntohs(reinterpret_cast<const sockaddr_in*>(&ss)->sin_port);
  return {};
}

void AgentServer::on_connection(std::error_code ec) {
  if (ec) return;  // accept errors (EMFILE, ...) are transient; the next connection retries
  accepts_.offer();
}

void AgentServer::accept_one() {
  auto conn = std::make_unique<uv::Tcp>(loop_);
  if (conn->init_error() || listener_.accept(*conn)) return;
  if (conns_.size() >= kMaxConnections) return;  // conn is closed unanswered on return
  std::optional<AgentReply> reply = provider_ ? provider_() : AgentReply{};
  if (!reply) return;  // conn is closed unanswered on return
  std::uint64_t id = next_id_++;
  std::string line = format_agent_line(*reply);
  ++served_;
  // Closing after the write completes sends FIN after the line; the reader sees line + EOF.
  if (conn->write(std::move(line), [this, id](std::error_code) { conns_.erase(id); })) return;
  conns_.emplace(id, std::move(conn));
}

}  // namespace hanat::probes
