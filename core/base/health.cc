// SPDX-License-Identifier: GPL-2.0-or-later
#include "core/base/health.h"

namespace hanat::core {

HealthChange HealthTracker::record(bool ok) {
  if (ok) {
    fail_run_ = 0;
    ++ok_run_;
    if (state_ == Health::Up) return HealthChange::Unchanged;
    if (ok_run_ >= t_.rise) {
      state_ = Health::Up;
      return HealthChange::Changed;
    }
    return HealthChange::Pending;
  }
  ok_run_ = 0;
  ++fail_run_;
  if (state_ == Health::Down) return HealthChange::Unchanged;
  if (fail_run_ >= t_.fall) {
    state_ = Health::Down;
    return HealthChange::Changed;
  }
  return HealthChange::Pending;
}

HealthChange HealthTracker::force(Health h) {
  ok_run_ = 0;
  fail_run_ = 0;
  if (state_ == h) return HealthChange::Unchanged;
  state_ = h;
  return HealthChange::Changed;
}

const char* to_string(Health h) {
  switch (h) {
    case Health::Unknown:
      return "unknown";
    case Health::Up:
      return "up";
    case Health::Down:
      return "down";
  }
  return "?";
}

}  // namespace hanat::core
