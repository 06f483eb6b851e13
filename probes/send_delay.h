// SPDX-License-Identifier: GPL-2.0-or-later
#pragma once
// DOC: probes/send_delay keeps how late the last probe sends left against their schedule
// (sent - planned), so status and metrics show whether the loop keeps time. Every probe of
// every peer runs on the one libuv loop, so a late send means something else held the loop
// (or the host did not schedule hanatd): the figure an operator checks before trusting a
// 50 ms probe interval. Pure: the runner measures, this only counts.

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>

namespace hanat::probes {

class SendDelay {
 public:
  // The window: the last kWindow sends (about 50 s of two peers' three probes at 50 ms).
  static constexpr std::size_t kWindow = 1024;

  struct Summary {
    std::size_t samples = 0;  // sends in the window (<= kWindow)
    std::chrono::microseconds p50{0}, p99{0}, max{0};
  };

  // One send `delay` after its planned time; a negative delay (sent early, which libuv's
  // millisecond timers allow by up to 1 ms) counts as on time.
  void add(std::chrono::microseconds delay);
  // Nearest-rank percentiles over the window; all zero when nothing was sent.
  [[nodiscard]] Summary summary() const;
  [[nodiscard]] std::uint64_t total() const { return total_; }

 private:
  std::array<std::int64_t, kWindow> ring_{};  // microseconds
  std::size_t next_ = 0;
  std::uint64_t total_ = 0;
};

}  // namespace hanat::probes
