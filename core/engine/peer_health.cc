// SPDX-License-Identifier: GPL-2.0-or-later
#include "core/engine/peer_health.h"

namespace hanat::engine {

void PeerHealth::configure(Thresholds t, const std::vector<ProbeKind>& kinds, bool public_path) {
  kinds_.fill(false);
  for (ProbeKind k : kinds) kinds_[static_cast<std::size_t>(k)] = true;
  if (public_path_ && !public_path) {
    for (auto& tr : trackers_[static_cast<std::size_t>(ProbePath::Public)]) tr = HealthTracker();
  }
  public_path_ = public_path;
  for (auto& path : trackers_) {
    for (auto& tr : path) tr.set_thresholds(t);
  }
  Health next = combine();
  if (next != Health::Unknown) state_ = next;
}

void PeerHealth::forget(std::string why) {
  for (auto& path : trackers_) {
    for (auto& tr : path) {
      const Thresholds t = tr.thresholds();
      tr = HealthTracker();
      tr.set_thresholds(t);
    }
  }
  reports_down_ = false;
  state_ = Health::Unknown;
  why_ = std::move(why);
}

Health PeerHealth::path_state(ProbePath p) const {
  if (!probed(p)) return Health::Unknown;
  bool any_up = false;
  bool all_down = true;
  bool any_enabled = false;
  for (int k = 0; k < kProbeKinds; ++k) {
    if (!enabled(p, static_cast<ProbeKind>(k))) continue;
    any_enabled = true;
    Health h = tracker(p, static_cast<ProbeKind>(k)).state();
    any_up = any_up || h == Health::Up;
    all_down = all_down && h == Health::Down;
  }
  if (!any_enabled) return Health::Unknown;
  if (any_up) return Health::Up;
  if (all_down) return Health::Down;
  return Health::Unknown;
}

bool PeerHealth::path_broken() const {
  if (!public_path_ || reports_down_ || state_ == Health::Down) return false;
  Health priv = path_state(ProbePath::Private);
  Health pub = path_state(ProbePath::Public);
  return (priv == Health::Down) != (pub == Health::Down);
}

Health PeerHealth::combine() const {
  if (reports_down_) return Health::Down;
  bool any_up = false;
  bool all_down = true;
  bool any_enabled = false;
  for (int p = 0; p < kProbePaths; ++p) {
    for (int k = 0; k < kProbeKinds; ++k) {
      if (!enabled(static_cast<ProbePath>(p), static_cast<ProbeKind>(k))) continue;
      any_enabled = true;
      Health h = tracker(static_cast<ProbePath>(p), static_cast<ProbeKind>(k)).state();
      any_up = any_up || h == Health::Up;
      all_down = all_down && h == Health::Down;
    }
  }
  if (!any_enabled) return state_;
  if (all_down) return Health::Down;
  if (any_up) return Health::Up;
  return state_;
}

HealthChange PeerHealth::record(const ProbeResult& r) {
  auto k = static_cast<std::size_t>(r.kind);
  auto p = static_cast<std::size_t>(r.path);
  if (k >= kinds_.size() || p >= trackers_.size() || !enabled(r.path, r.kind)) {
    return HealthChange::Unchanged;
  }
  if (r.kind == ProbeKind::Agent && !r.ok && r.reports_down) {
    // The agent answered (on whichever path) and says its data plane is down: it is.
    reports_down_ = true;
    for (auto& path : trackers_) {
      for (auto& tr : path) (void)tr.force(Health::Down);
    }
    why_ = "agent reports its data plane down";
  } else {
    if (r.kind == ProbeKind::Agent && r.ok) reports_down_ = false;
    HealthChange c = trackers_[p][k].record(r.ok);
    if (c == HealthChange::Changed) {
      const Thresholds& t = trackers_[p][k].thresholds();
      std::string what = std::string(to_string(r.kind)) + " probes";
      if (public_path_) what += std::string(" on the ") + to_string(r.path) + " path";
      why_ =
          r.ok ? std::to_string(t.rise) + " " + what + " succeeded, rise=" + std::to_string(t.rise)
               : std::to_string(t.fall) + " " + what + " failed, fall=" + std::to_string(t.fall);
    }
  }
  Health next = combine();
  if (next == state_) return HealthChange::Unchanged;
  state_ = next;
  return HealthChange::Changed;
}

}  // namespace hanat::engine
