// SPDX-License-Identifier: GPL-2.0-or-later
#pragma once
// Combines a peer's probe kinds into one state, for status and for tests. The engine runs its
// own trackers on the raw results; this is the probes module's view, with the same rise/fall
// tracker (core/base/health.h).
//
// The rule (documented here and in README):
//   1. An agent that *says* down (or draining) makes the peer DOWN at once, with the agent's
//      reason; the peer stays DOWN until the agent kind has risen again (rise successes).
//      This is how a NAT whose data plane failed hands its routes away immediately.
//   2. Otherwise the peer is DOWN when every configured kind has reached fall. A peer whose
//      hanatd crashed but whose kernel still forwards (ICMP up, agent refused) stays UP: its
//      routes keep working, and failing it over would cause an outage, not end one.
//   3. Otherwise UP when at least one kind is UP; UNKNOWN until a kind settles.

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/base/health.h"
#include "probes/types.h"

namespace hanat::probes {

using core::Health;
using core::HealthChange;

struct PeerTransition {
  std::string peer;
  Health from = Health::Unknown;
  Health to = Health::Unknown;
  std::string reason;
  Time at{};
};

class PeerHealth {
 public:
  PeerHealth(std::string peer, const std::vector<ProbeKind>& kinds, core::Thresholds t);

  struct Update {
    HealthChange kind_change = HealthChange::Unchanged;
    std::optional<PeerTransition> peer;  // set when the combined state changed
  };
  // Records one raw result of a configured kind. A result of a kind that was not configured
  // is ignored (Unchanged).
  Update record(ProbeKind kind, const Outcome& o, Time at);

  [[nodiscard]] const std::string& id() const { return peer_; }
  [[nodiscard]] Health state() const { return state_; }
  [[nodiscard]] Health kind_state(ProbeKind k) const;
  [[nodiscard]] Time since() const { return since_; }
  [[nodiscard]] const std::string& reason() const { return reason_; }
  [[nodiscard]] bool agent_said_down() const { return agent_said_down_; }

 private:
  [[nodiscard]] Health combine() const;
  std::string peer_;
  core::Thresholds thresholds_;
  std::map<ProbeKind, core::HealthTracker> trackers_;
  bool agent_said_down_ = false;
  std::string agent_reason_;
  Health state_ = Health::Unknown;
  Time since_{};
  std::string reason_;
};

}  // namespace hanat::probes
