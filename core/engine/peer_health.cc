// SPDX-License-Identifier: GPL-2.0-or-later
#include "core/engine/peer_health.h"

namespace hanat::engine {

void PeerHealth::configure(Thresholds t, const std::vector<ProbeKind>& kinds) {
  enabled_.fill(false);
  for (ProbeKind k : kinds) enabled_[static_cast<std::size_t>(k)] = true;
  for (auto& tr : trackers_) tr.set_thresholds(t);
  Health next = combine();
  if (next != Health::Unknown) state_ = next;
}

Health PeerHealth::combine() const {
  if (reports_down_) return Health::Down;
  bool any_up = false;
  bool all_down = true;
  bool any_enabled = false;
  for (std::size_t i = 0; i < trackers_.size(); ++i) {
    if (!enabled_[i]) continue;
    any_enabled = true;
    any_up = any_up || trackers_[i].state() == Health::Up;
    all_down = all_down && trackers_[i].state() == Health::Down;
  }
  if (!any_enabled) return state_;
  if (all_down) return Health::Down;
  if (any_up) return Health::Up;
  return state_;
}

HealthChange PeerHealth::record(const ProbeResult& r) {
  auto k = static_cast<std::size_t>(r.kind);
  if (k >= trackers_.size() || !enabled_[k]) return HealthChange::Unchanged;
  if (r.kind == ProbeKind::Agent && !r.ok && r.reports_down) {
    reports_down_ = true;
    for (auto& tr : trackers_) (void)tr.force(Health::Down);
    why_ = "agent reports its data plane down";
  } else {
    if (r.kind == ProbeKind::Agent && r.ok) reports_down_ = false;
    HealthChange c = trackers_[k].record(r.ok);
    if (c == HealthChange::Changed) {
      const Thresholds& t = trackers_[k].thresholds();
      why_ = r.ok ? std::to_string(t.rise) + " " + to_string(r.kind) +
                        " probes succeeded, rise=" + std::to_string(t.rise)
                  : std::to_string(t.fall) + " " + to_string(r.kind) +
                        " probes failed, fall=" + std::to_string(t.fall);
    }
  }
  Health next = combine();
  if (next == state_) return HealthChange::Unchanged;
  state_ = next;
  return HealthChange::Changed;
}

}  // namespace hanat::engine
