// SPDX-License-Identifier: GPL-2.0-or-later
#pragma once
// The egress self-check's verdict, pure: healthy when at least k of the n targets answered
// within the window (fall x interval, so a single lost probe never fails it, and a dead
// uplink is noticed within the same bound as a dead peer). Until one window has passed since
// start, a verdict that is not yet "healthy" stays Unknown (the first probes are still out),
// unless the check was already healthy: from then on it is only ever Up or Down.

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "core/base/health.h"
#include "probes/types.h"

namespace hanat::probes {

class EgressWindow {
 public:
  EgressWindow(std::size_t targets, int k, std::chrono::nanoseconds window, Time start);

  struct Verdict {
    core::Health state = core::Health::Unknown;
    std::size_t answered = 0;  // targets with a success inside the window
    std::string detail;        // "2 of 3 egress targets answered within 600 ms"
  };

  void record(std::size_t target, bool ok, Time at);
  [[nodiscard]] Verdict evaluate(Time now) const;
  // When evaluate() can next change on its own (a success ageing out, the first window).
  [[nodiscard]] std::optional<Time> next_change(Time now) const;

 private:
  std::vector<std::optional<Time>> last_ok_;
  std::size_t k_;
  std::chrono::nanoseconds window_;
  Time start_;
  bool been_up_ = false;
};

}  // namespace hanat::probes
