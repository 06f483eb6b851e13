// SPDX-License-Identifier: GPL-2.0-or-later
#pragma once
// ForwardCheck: the daemon's forward-path check. NatManager reads the forward counters of
// hanat's table on the loop and reports them (netfilter/manager.h, ForwardSample); this
// class feeds each reading to the engine's judgement (core/engine/forward_watch.h for the
// rule) and reports its verdicts. netfilter measures, the engine judges, the shell wires
// the two together. When the engine sees packets leave un-NATed (the leak counter grew), this
// class runs the purge of un-NATed flows at once (NatManager::purge_now).

#include <chrono>
#include <functional>
#include <optional>
#include <string>

#include "core/engine/forward_watch.h"
#include "netfilter/manager.h"

namespace hanat::daemon {

struct ForwardCheckOptions {
  std::chrono::milliseconds interval{200};
  engine::ForwardWatchOptions watch;  // its interval is set from `interval`
};

class ForwardCheck {
 public:
  // Subscribes to `nat`'s counter readings; `nat` must outlive this.
  explicit ForwardCheck(netfilter::NatManager& nat);
  ForwardCheck(const ForwardCheck&) = delete;
  ForwardCheck& operator=(const ForwardCheck&) = delete;

  // Starts (or reconfigures) the check: every `interval`, the counters of the applied table
  // are read and judged. nullopt stops it (its state goes back to Unknown and is reported
  // once through the callback).
  void watch_forwarding(std::optional<ForwardCheckOptions> o);
  // Called when the verdict changes (Unknown -> Up, Up -> Down, Down -> Up, and -> Unknown
  // when the check is turned off).
  void on_forward_change(std::function<void(const engine::ForwardWatch::Verdict&)> cb) {
    on_change_ = std::move(cb);
  }
  // One counter reading, as NatManager reports it (public for tests).
  void feed(const netfilter::ForwardSample& s);

  [[nodiscard]] const engine::ForwardWatch& forward() const { return watch_; }
  [[nodiscard]] bool forward_watching() const { return nat_.forward_watching(); }
  // Why the last counter reading failed (empty after a good one).
  [[nodiscard]] const std::string& forward_read_error() const { return nat_.forward_read_error(); }

 private:
  netfilter::NatManager& nat_;
  engine::ForwardWatch watch_;
  std::function<void(const engine::ForwardWatch::Verdict&)> on_change_;
};

}  // namespace hanat::daemon
