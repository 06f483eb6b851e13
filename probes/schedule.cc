// SPDX-License-Identifier: GPL-2.0-or-later
#include "probes/schedule.h"

namespace hanat::probes {

std::chrono::nanoseconds spread_offset(std::size_t i, std::size_t n,
                                       std::chrono::nanoseconds interval) {
  if (n == 0) return std::chrono::nanoseconds{0};
  // i * interval / n without overflow for any realistic interval (< 2^63 ns / n).
  auto step = interval.count() / static_cast<std::int64_t>(n);
  auto rem = interval.count() % static_cast<std::int64_t>(n);
  auto si = static_cast<std::int64_t>(i);
  auto sn = static_cast<std::int64_t>(n);
  return std::chrono::nanoseconds{si * step + (si * rem) / sn};
}

Schedule::SlotId Schedule::add(std::optional<SlotId> same_phase_as) {
  Slot s;
  if (same_phase_as && *same_phase_as < slots_.size()) {
    s.phase = slots_[*same_phase_as].phase;
  } else {
    s.phase = phases_++;
  }
  slots_.push_back(s);
  return slots_.size() - 1;
}

void Schedule::start(Time start) {
  heap_ = {};
  for (SlotId s = 0; s < slots_.size(); ++s) {
    // A probe still in flight from before a restart keeps its flag, so due() defers the
    // slot instead of overlapping it.
    bool in_flight = slots_[s].in_flight;
    slots_[s] = Slot{.phase = slots_[s].phase,
                     .next = start + spread_offset(slots_[s].phase, phases_, interval_),
                     .in_flight = in_flight,
                     .deferred = false};
    heap_.push({slots_[s].next, s});
  }
}

Schedule::Launch Schedule::launch(SlotId s, Time planned, Time now) {
  Slot& slot = slots_[s];
  slot.in_flight = true;
  slot.deferred = false;
  Time next = planned + interval_;
  while (next <= now) {  // whole periods missed: skip them rather than burst
    next += interval_;
    ++skipped_;
  }
  slot.next = next;
  heap_.push({next, s});
  return {s, planned};
}

std::vector<Schedule::Launch> Schedule::due(Time now) {
  std::vector<Launch> out;
  while (!heap_.empty() && heap_.top().due <= now) {
    Entry e = heap_.top();
    heap_.pop();
    Slot& slot = slots_[e.slot];
    if (e.due != slot.next) continue;  // stale entry
    if (slot.in_flight) {
      slot.deferred = true;  // no heap entry: complete() relaunches it
      ++deferred_;
      continue;
    }
    out.push_back(launch(e.slot, e.due, now));
  }
  return out;
}

std::optional<Schedule::Launch> Schedule::complete(SlotId s, Time now) {
  Slot& slot = slots_[s];
  slot.in_flight = false;
  if (!slot.deferred) return std::nullopt;
  return launch(s, slot.next, now);
}

std::optional<Time> Schedule::next_deadline() const {
  if (heap_.empty()) return std::nullopt;
  return heap_.top().due;
}

}  // namespace hanat::probes
