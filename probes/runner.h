// SPDX-License-Identifier: GPL-2.0-or-later
#pragma once
// Drives a Schedule from one libuv timer and hands each launch to the right prober. Shared by
// PeerMonitor and EgressCheck.

#include <netinet/in.h>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <system_error>
#include <vector>

#include "core/uv/uv.h"
#include "probes/icmp.h"
#include "probes/schedule.h"
#include "probes/tcp.h"
#include "probes/types.h"

namespace hanat::probes {

struct Target {
  std::string name;  // ProbeResult::peer
  ProbeKind kind = ProbeKind::Icmp;
  sockaddr_in addr{};     // port set for Tcp and Agent
  std::string expect_id;  // agent: the instance id the peer must report
  // Sent in the same phase of the interval as this earlier target (Schedule::add).
  std::optional<std::size_t> same_phase_as;
};

class Runner {
 public:
  using OnResult = std::function<void(std::size_t target, const ProbeResult&)>;
  // `icmp` / `tcp` must outlive the runner and be non-null when a target needs them.
  Runner(uv::Loop& loop, std::vector<Target> targets, std::chrono::milliseconds interval,
         std::chrono::milliseconds timeout, IcmpProber* icmp, TcpProber* tcp, OnResult on_result);
  ~Runner();
  Runner(const Runner&) = delete;
  Runner& operator=(const Runner&) = delete;

  // Spreads the targets over one interval starting now and arms the timer.
  [[nodiscard]] std::error_code start();
  void stop();

  [[nodiscard]] const Schedule& schedule() const { return schedule_; }
  [[nodiscard]] const std::vector<Target>& targets() const { return targets_; }

 private:
  void on_timer();
  void arm();
  void launch(Schedule::Launch l);
  void on_done(std::size_t slot, Time planned, Time sent, Outcome o);

  uv::Loop& loop_;
  std::vector<Target> targets_;
  std::chrono::milliseconds timeout_;
  IcmpProber* icmp_;
  TcpProber* tcp_;
  OnResult on_result_;
  Schedule schedule_;
  uv::Timer timer_;
  bool running_ = false;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace hanat::probes
