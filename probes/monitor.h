// SPDX-License-Identifier: GPL-2.0-or-later
#pragma once
// The two things the daemon runs: PeerMonitor (liveness and data plane of the peer NATs) and
// EgressCheck (this host's own way out). Both report every raw probe result (what
// core/engine's ProbeResult is made from) and their combined verdicts.

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/base/result.h"
#include "core/uv/uv.h"
#include "probes/egress_window.h"
#include "probes/icmp.h"
#include "probes/peer_health.h"
#include "probes/runner.h"
#include "probes/tcp.h"
#include "probes/types.h"

namespace hanat::probes {

// Callbacks run on the loop. They may call stop()/start(), but must not destroy the monitor
// (use uv::DeferredDelete for that): the result callback is followed by the transition one.
struct MonitorCallbacks {
  std::function<void(const ProbeResult&)> on_result;         // every probe
  std::function<void(const PeerTransition&)> on_transition;  // combined peer state changes
};

class PeerMonitor {
 public:
  // Validates everything first; errors name the peer and field. Opens the ICMP socket only
  // when a peer uses ICMP (mode Auto: ping socket if allowed, else raw).
  [[nodiscard]] static core::Result<std::unique_ptr<PeerMonitor>, std::string> create(
      uv::Loop& loop, std::vector<PeerSpec> peers, const ProbeOptions& opts, MonitorCallbacks cb,
      IcmpMode icmp_mode = IcmpMode::Auto);

  // start() spreads the first probes over one interval from now. stop() sends no new probe;
  // probes already in flight still report their result. start() may follow stop().
  [[nodiscard]] std::error_code start() { return runner_->start(); }
  void stop() { runner_->stop(); }

  // Every peer's combined state on its private path, in PeerSpec order (the engine judges
  // both paths).
  [[nodiscard]] const std::vector<PeerHealth>& peers() const { return health_; }
  // nullptr for an unknown id.
  [[nodiscard]] const PeerHealth* peer(std::string_view id) const;
  // The socket kind in use, or Auto when no peer uses ICMP.
  [[nodiscard]] IcmpMode icmp_mode() const { return icmp_ ? icmp_->mode() : IcmpMode::Auto; }
  [[nodiscard]] const Schedule& schedule() const { return runner_->schedule(); }

 private:
  PeerMonitor() = default;
  void on_result(std::size_t target, const ProbeResult& r);

  MonitorCallbacks cb_;
  std::unique_ptr<IcmpProber> icmp_;
  std::unique_ptr<TcpProber> tcp_;
  std::vector<PeerHealth> health_;    // one per peer
  std::vector<std::size_t> peer_of_;  // target index -> peer index
  std::vector<ProbePath> path_of_;    // target index -> the path it probes
  std::unique_ptr<Runner> runner_;
};

struct EgressCallbacks {
  std::function<void(const ProbeResult&)> on_result;
  std::function<void(const EgressWindow::Verdict&)> on_change;  // state changed
};

class EgressCheck {
 public:
  // Probes every target every opts.interval through spec.interface; the window is
  // opts.fall x opts.interval. opts.interface/source_address are ignored (the spec's apply).
  [[nodiscard]] static core::Result<std::unique_ptr<EgressCheck>, std::string> create(
      uv::Loop& loop, EgressSpec spec, const ProbeOptions& opts, EgressCallbacks cb,
      IcmpMode icmp_mode = IcmpMode::Auto);
  ~EgressCheck();

  [[nodiscard]] std::error_code start();
  void stop();
  [[nodiscard]] EgressWindow::Verdict verdict() const;

 private:
  explicit EgressCheck(uv::Loop& loop) : loop_(loop), timer_(loop) {}
  void on_result(std::size_t target, const ProbeResult& r);
  void evaluate();

  uv::Loop& loop_;
  EgressCallbacks cb_;
  int k_ = 1;
  std::chrono::nanoseconds window_{};
  std::chrono::milliseconds timeout_{};
  std::unique_ptr<IcmpProber> icmp_;
  std::unique_ptr<TcpProber> tcp_;
  std::unique_ptr<EgressWindow> window_state_;
  core::Health last_ = core::Health::Unknown;
  uv::Timer timer_;
  std::unique_ptr<Runner> runner_;
};

}  // namespace hanat::probes
