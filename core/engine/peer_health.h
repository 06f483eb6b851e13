// SPDX-License-Identifier: GPL-2.0-or-later
#pragma once
// A peer's health as this member sees it, combined from one rise/fall tracker per configured
// probe kind and path and the peer's own verdict from the agent check.
//
// Combination rule:
//  - DOWN at once when the peer's agent answers and says its own data plane is down; every
//    tracker is then forced Down, so the peer must reach `rise` again to come back.
//  - DOWN when every configured kind on every probed path has reached `fall`. A peer that
//    still answers one kind of probe on one path is alive: a lost ICMP path alone, or a
//    security group that cuts the private path between two healthy NATs while the public
//    path still answers, does not take its routes away (DESIGN rule 4).
//  - UP when any configured kind on any path has reached `rise` and the agent does not say
//    down.
//  - Otherwise the previous state stands (Unknown until a threshold is first reached).
// A peer probed on its private path only (no public address, or `probe.paths` names only
// "private") is judged exactly as before paths existed.

#include <array>
#include <string>
#include <vector>

#include "core/engine/types.h"

namespace hanat::engine {

class PeerHealth {
 public:
  PeerHealth() = default;
  PeerHealth(Thresholds t, const std::vector<ProbeKind>& kinds, bool public_path = false) {
    configure(t, kinds, public_path);
  }

  // Keeps the counters and state of kinds and paths that stay configured. A path that stops
  // being probed forgets its trackers, so that it starts from Unknown when probed again.
  void configure(Thresholds t, const std::vector<ProbeKind>& kinds, bool public_path = false);
  // Forgets every verdict: all trackers and the combined state go back to Unknown, as for
  // a peer never probed (thresholds and probed kinds stay). For silence that proves nothing
  // about the peer (machine.h, "Self-suspicion" and "Own recovery").
  void forget(std::string why);
  // Records one result; returns Changed when the combined state flipped.
  HealthChange record(const ProbeResult& r);

  [[nodiscard]] Health state() const { return state_; }
  [[nodiscard]] bool reports_down() const { return reports_down_; }
  // The tracker of a kind on the private path (the path every peer has).
  [[nodiscard]] const HealthTracker& tracker(ProbeKind k) const {
    return tracker(ProbePath::Private, k);
  }
  [[nodiscard]] const HealthTracker& tracker(ProbePath p, ProbeKind k) const {
    return trackers_[static_cast<std::size_t>(p)][static_cast<std::size_t>(k)];
  }
  [[nodiscard]] bool probed(ProbePath p) const { return p == ProbePath::Private || public_path_; }
  // Up when a kind on the path reached `rise`, Down when every kind on it reached `fall`,
  // Unknown otherwise (or when the path is not probed).
  [[nodiscard]] Health path_state(ProbePath p) const;
  // Both paths are probed and exactly one of them is Down while the peer is not: the
  // operator has a broken path to fix (typically a security group), but nothing moves.
  [[nodiscard]] bool path_broken() const;
  // Human-readable cause of the last change, e.g. "3 icmp probes failed, fall=3".
  [[nodiscard]] const std::string& why() const { return why_; }

 private:
  Health combine() const;
  bool enabled(ProbePath p, ProbeKind k) const {
    return probed(p) && kinds_[static_cast<std::size_t>(k)];
  }

  std::array<std::array<HealthTracker, kProbeKinds>, kProbePaths> trackers_;
  std::array<bool, kProbeKinds> kinds_{};
  bool public_path_ = false;
  bool reports_down_ = false;
  Health state_ = Health::Unknown;
  std::string why_;
};

}  // namespace hanat::engine
