// SPDX-License-Identifier: GPL-2.0-or-later
#pragma once
// A peer's health as this member sees it, combined from one rise/fall tracker per configured
// probe kind and the peer's own verdict from the agent check.
//
// Combination rule:
//  - DOWN at once when the peer's agent answers and says its own data plane is down; every
//    tracker is then forced Down, so the peer must reach `rise` again to come back.
//  - DOWN when every configured kind has reached `fall` (a peer that still answers one kind
//    of probe is alive: a lost ICMP path alone does not take its routes away).
//  - UP when any configured kind has reached `rise` and the agent does not say down.
//  - Otherwise the previous state stands (Unknown until a threshold is first reached).

#include <array>
#include <string>
#include <vector>

#include "core/engine/types.h"

namespace hanat::engine {

class PeerHealth {
 public:
  PeerHealth() = default;
  PeerHealth(Thresholds t, const std::vector<ProbeKind>& kinds) { configure(t, kinds); }

  // Keeps the counters and state of kinds that stay configured.
  void configure(Thresholds t, const std::vector<ProbeKind>& kinds);
  // Records one result; returns Changed when the combined state flipped.
  HealthChange record(const ProbeResult& r);

  [[nodiscard]] Health state() const { return state_; }
  [[nodiscard]] bool reports_down() const { return reports_down_; }
  [[nodiscard]] const HealthTracker& tracker(ProbeKind k) const {
    return trackers_[static_cast<std::size_t>(k)];
  }
  // Human-readable cause of the last change, e.g. "3 icmp probes failed, fall=3".
  [[nodiscard]] const std::string& why() const { return why_; }

 private:
  Health combine() const;

  std::array<HealthTracker, kProbeKinds> trackers_;
  std::array<bool, kProbeKinds> enabled_{};
  bool reports_down_ = false;
  Health state_ = Health::Unknown;
  std::string why_;
};

}  // namespace hanat::engine
