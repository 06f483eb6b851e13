// SPDX-License-Identifier: GPL-2.0-or-later
#include "probes/egress_window.h"

#include <algorithm>

namespace hanat::probes {

EgressWindow::EgressWindow(std::size_t targets, int k, std::chrono::nanoseconds window, Time start)
    : last_ok_(targets),
      k_(static_cast<std::size_t>(std::max(k, 1))),
      window_(window),
      start_(start) {}

void EgressWindow::record(std::size_t target, bool ok, Time at) {
  if (target >= last_ok_.size() || !ok) return;
  if (!last_ok_[target] || *last_ok_[target] < at) last_ok_[target] = at;
  if (!been_up_ && evaluate(at).state == core::Health::Up) been_up_ = true;
}

EgressWindow::Verdict EgressWindow::evaluate(Time now) const {
  Verdict v;
  for (const auto& t : last_ok_) {
    if (t && now - *t <= window_) ++v.answered;
  }
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(window_).count();
  v.detail = std::to_string(v.answered) + " of " + std::to_string(last_ok_.size()) +
             " egress targets answered within " + std::to_string(ms) + " ms (need " +
             std::to_string(k_) + ")";
  if (v.answered >= k_) {
    v.state = core::Health::Up;
  } else if (!been_up_ && now - start_ < window_) {
    v.state = core::Health::Unknown;
  } else {
    v.state = core::Health::Down;
  }
  return v;
}

std::optional<Time> EgressWindow::next_change(Time now) const {
  std::optional<Time> best;
  auto consider = [&best, now](Time t) {
    if (t > now && (!best || t < *best)) best = t;
  };
  consider(start_ + window_);
  for (const auto& t : last_ok_) {
    if (t) consider(*t + window_ + std::chrono::nanoseconds{1});
  }
  return best;
}

}  // namespace hanat::probes
