// SPDX-License-Identifier: GPL-2.0-or-later
#include "probes/peer_health.h"

#include <utility>

namespace hanat::probes {

PeerHealth::PeerHealth(std::string peer, const std::vector<ProbeKind>& kinds, core::Thresholds t)
    : peer_(std::move(peer)), thresholds_(t) {
  for (ProbeKind k : kinds) trackers_.emplace(k, core::HealthTracker{t});
}

Health PeerHealth::kind_state(ProbeKind k) const {
  auto it = trackers_.find(k);
  return it == trackers_.end() ? Health::Unknown : it->second.state();
}

Health PeerHealth::combine() const {
  if (agent_said_down_) return Health::Down;
  if (trackers_.empty()) return Health::Unknown;
  bool all_down = true;
  bool any_up = false;
  for (const auto& [kind, t] : trackers_) {
    all_down = all_down && t.state() == Health::Down;
    any_up = any_up || t.state() == Health::Up;
  }
  if (all_down) return Health::Down;
  return any_up ? Health::Up : Health::Unknown;
}

PeerHealth::Update PeerHealth::record(ProbeKind kind, const Outcome& o, Time at) {
  Update u;
  auto it = trackers_.find(kind);
  if (it == trackers_.end()) return u;
  core::HealthTracker& t = it->second;

  std::string why;
  bool said_down = kind == ProbeKind::Agent && o.failure == Failure::AgentDown;
  if (said_down) {
    u.kind_change = t.force(Health::Down);
    agent_said_down_ = true;
    agent_reason_ = o.detail;
  } else {
    u.kind_change = t.record(o.ok);
    if (kind == ProbeKind::Agent && t.state() == Health::Up) agent_said_down_ = false;
  }

  Health next = combine();
  if (next == state_) return u;
  if (said_down || (agent_said_down_ && next == Health::Down)) {
    why = "agent says down: " + agent_reason_;
  } else if (next == Health::Down) {
    why = "all probe kinds reached fall (" + std::to_string(thresholds_.fall) +
          " failures), last " + to_string(kind) + ": " + o.detail;
  } else if (next == Health::Up) {
    why = std::string(to_string(kind)) + " reached rise (" + std::to_string(thresholds_.rise) +
          " successes)";
  } else {
    why = "agent recovered, other kinds not settled";
  }
  u.peer = PeerTransition{.peer = peer_, .from = state_, .to = next, .reason = why, .at = at};
  state_ = next;
  since_ = at;
  reason_ = std::move(why);
  return u;
}

}  // namespace hanat::probes
