// SPDX-License-Identifier: GPL-2.0-or-later
#pragma once
// When to send which probe. Pure (no clock reads, no I/O) so the spreading and no-overlap
// rules are tested with a fake clock; the Runner drives it from one libuv timer.
//
// Rules:
//   - Slot i of n first fires at start + interval * i / n, so n targets are spread evenly over
//     the interval instead of bursting together (a burst of 500 sends would also show up as
//     scheduling jitter of the last ones).
//   - Slots added as sharing a phase with an earlier slot fire at the same offset: the spread is
//     over phases, not slots. A peer probed on two paths shares the phase of each probe kind
//     across its paths, so the last path's fall-th failure (a peer is DOWN only when every
//     path failed) comes as early as with one path instead of up to a slot later.
//   - A slot fires every `interval` after its planned time (anchored, so jitter does not
//     accumulate into drift).
//   - A slot never has two probes in flight: when it is due while its previous probe is still
//     running (timeout >= interval), it is deferred and fires as soon as that probe completes.
//   - Periods that passed entirely (a stalled loop) are skipped, not caught up in a burst.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <queue>
#include <vector>

#include "probes/types.h"

namespace hanat::probes {

// Offset of slot i among n spread over one interval.
[[nodiscard]] std::chrono::nanoseconds spread_offset(std::size_t i, std::size_t n,
                                                     std::chrono::nanoseconds interval);

class Schedule {
 public:
  using SlotId = std::size_t;
  struct Launch {
    SlotId slot;
    Time planned;  // when it should have been sent (for jitter)
  };

  explicit Schedule(std::chrono::nanoseconds interval) : interval_(interval) {}

  // A slot with a phase of its own, or sharing the phase of the earlier slot `same_phase_as`.
  SlotId add(std::optional<SlotId> same_phase_as = std::nullopt);
  // Sets every slot's first due time, spread from `start`.
  void start(Time start);
  // Slots due at `now`: launches to perform now. Due slots still in flight are deferred.
  [[nodiscard]] std::vector<Launch> due(Time now);
  // The probe of `slot` finished; returns a deferred launch to perform now, if any.
  [[nodiscard]] std::optional<Launch> complete(SlotId slot, Time now);
  // Earliest due time of a slot not in flight.
  [[nodiscard]] std::optional<Time> next_deadline() const;

  [[nodiscard]] bool in_flight(SlotId s) const { return slots_[s].in_flight; }
  // When the slot is next due (idle) or was planned (in flight or deferred).
  [[nodiscard]] Time next_due(SlotId s) const { return slots_[s].next; }
  [[nodiscard]] std::size_t phases() const { return phases_; }
  [[nodiscard]] std::size_t size() const { return slots_.size(); }
  [[nodiscard]] std::uint64_t deferred() const { return deferred_; }
  [[nodiscard]] std::uint64_t skipped() const { return skipped_; }

 private:
  struct Slot {
    std::size_t phase = 0;
    Time next{};
    bool in_flight = false;
    bool deferred = false;
  };
  struct Entry {
    Time due;
    SlotId slot;
    bool operator>(const Entry& o) const { return due > o.due || (due == o.due && slot > o.slot); }
  };
  Launch launch(SlotId s, Time planned, Time now);

  std::chrono::nanoseconds interval_;
  std::vector<Slot> slots_;
  std::size_t phases_ = 0;
  std::priority_queue<Entry, std::vector<Entry>, std::greater<>> heap_;
  std::uint64_t deferred_ = 0;
  std::uint64_t skipped_ = 0;
};

}  // namespace hanat::probes
