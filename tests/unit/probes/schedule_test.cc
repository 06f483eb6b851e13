// SPDX-License-Identifier: GPL-2.0-or-later
#include "probes/schedule.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <set>

namespace hanat::probes {
namespace {

using namespace std::chrono_literals;

TEST(SpreadOffset, EvenlyCoversOneInterval) {
  EXPECT_EQ(spread_offset(0, 4, 200ms), 0ms);
  EXPECT_EQ(spread_offset(1, 4, 200ms), 50ms);
  EXPECT_EQ(spread_offset(3, 4, 200ms), 150ms);
  EXPECT_EQ(spread_offset(0, 0, 200ms), 0ms);
  // Non-divisible: offsets stay inside the interval, strictly increasing.
  std::chrono::nanoseconds prev{-1};
  for (std::size_t i = 0; i < 7; ++i) {
    auto o = spread_offset(i, 7, 100ms);
    EXPECT_GT(o, prev);
    EXPECT_LT(o, 100ms);
    prev = o;
  }
  EXPECT_EQ(spread_offset(499, 500, 100ms), 99800us);
}

// Drives a schedule with a fake clock in 1 ms steps; completes probes after `rtt`.
struct Sim {
  explicit Sim(std::size_t n, std::chrono::milliseconds interval) : s(interval) {
    for (std::size_t i = 0; i < n; ++i) (void)s.add();
  }
  Schedule s;
  Time now{};
  std::map<Schedule::SlotId, std::vector<Time>> sends;
  std::map<Schedule::SlotId, Time> done_at;
  std::size_t max_in_flight_per_slot = 0;

  void send(const Schedule::Launch& l, std::chrono::milliseconds rtt) {
    sends[l.slot].push_back(now);
    EXPECT_FALSE(done_at.count(l.slot)) << "slot " << l.slot << " overlapped";
    done_at[l.slot] = now + rtt;
  }
  void run(std::chrono::milliseconds for_, std::chrono::milliseconds rtt) {
    Time end = now + for_;
    for (; now < end; now += 1ms) {
      for (auto it = done_at.begin(); it != done_at.end();) {
        if (it->second <= now) {
          auto slot = it->first;
          it = done_at.erase(it);
          if (auto again = s.complete(slot, now)) send(*again, rtt);
        } else {
          ++it;
        }
      }
      for (const auto& l : s.due(now)) {
        EXPECT_LE(l.planned, now);
        EXPECT_GT(l.planned + 1ms, now) << "a fake clock stepping every 1 ms is < 1 ms late";
        send(l, rtt);
      }
    }
  }
};

TEST(Schedule, SpreadsFirstSendsOverTheInterval) {
  Sim sim(10, 100ms);
  sim.s.start(sim.now);
  sim.run(100ms, 1ms);
  std::set<Time> first;
  for (auto& [slot, times] : sim.sends) {
    ASSERT_EQ(times.size(), 1u) << "slot " << slot;
    first.insert(times[0]);
  }
  EXPECT_EQ(first.size(), 10u) << "no two targets share a send time";
  EXPECT_EQ(*first.begin(), Time{});
  EXPECT_EQ(*first.rbegin(), Time{} + 90ms);
}

TEST(Schedule, EverySlotFiresOncePerIntervalWithoutDrift) {
  Sim sim(5, 50ms);
  sim.s.start(sim.now);
  sim.run(1000ms, 3ms);
  for (auto& [slot, times] : sim.sends) {
    ASSERT_EQ(times.size(), 20u) << "slot " << slot;
    for (std::size_t i = 1; i < times.size(); ++i) EXPECT_EQ(times[i] - times[i - 1], 50ms);
  }
  EXPECT_EQ(sim.s.deferred(), 0u);
  EXPECT_EQ(sim.s.skipped(), 0u);
}

TEST(Schedule, NeverOverlapsASlotWhenTimeoutExceedsInterval) {
  Sim sim(3, 50ms);
  sim.s.start(sim.now);
  sim.run(1000ms, 70ms);  // each probe takes longer than the interval
  for (auto& [slot, times] : sim.sends) {
    for (std::size_t i = 1; i < times.size(); ++i) {
      EXPECT_GE(times[i] - times[i - 1], 70ms) << "slot " << slot << " sent while in flight";
    }
    EXPECT_GE(times.size(), 13u);  // one every ~70-100 ms: deferred, not dropped for good
  }
  EXPECT_GT(sim.s.deferred(), 0u);
}

TEST(Schedule, DeferredSlotLaunchesOnCompletionWithItsPlannedTime) {
  Schedule s(100ms);
  auto a = s.add();
  s.start(Time{});
  auto first = s.due(Time{});
  ASSERT_EQ(first.size(), 1u);
  EXPECT_TRUE(s.in_flight(a));
  EXPECT_TRUE(s.due(Time{} + 100ms).empty()) << "in flight: deferred";
  EXPECT_EQ(s.deferred(), 1u);
  EXPECT_FALSE(s.next_deadline()) << "a deferred slot has no timer deadline";
  auto again = s.complete(a, Time{} + 120ms);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->planned, Time{} + 100ms);
  EXPECT_EQ(s.next_deadline(), Time{} + 200ms);
  EXPECT_FALSE(s.complete(a, Time{} + 130ms)) << "nothing deferred any more";
}

TEST(Schedule, StalledLoopSkipsMissedPeriodsInsteadOfBursting) {
  Schedule s(100ms);
  auto a = s.add();
  s.start(Time{});
  ASSERT_EQ(s.due(Time{}).size(), 1u);
  EXPECT_FALSE(s.complete(a, Time{} + 10ms));
  auto late = s.due(Time{} + 550ms);  // loop stalled for 5 periods
  ASSERT_EQ(late.size(), 1u) << "one probe, not five";
  EXPECT_EQ(late[0].planned, Time{} + 100ms);
  EXPECT_EQ(s.next_deadline(), Time{} + 600ms);
  EXPECT_EQ(s.skipped(), 4u);
}

TEST(Schedule, RestartDoesNotOverlapAProbeStillInFlight) {
  Schedule s(100ms);
  auto a = s.add();
  s.start(Time{});
  ASSERT_EQ(s.due(Time{}).size(), 1u);
  s.start(Time{} + 10ms);  // stop + start while the probe runs
  EXPECT_TRUE(s.due(Time{} + 10ms).empty());
  auto again = s.complete(a, Time{} + 30ms);
  ASSERT_TRUE(again) << "deferred, then launched on completion";
  EXPECT_EQ(again->planned, Time{} + 10ms);
}

TEST(Schedule, NextDeadlineIsEarliestIdleSlot) {
  Schedule s(100ms);
  for (int i = 0; i < 4; ++i) (void)s.add();
  EXPECT_FALSE(s.next_deadline());
  s.start(Time{} + 1s);
  EXPECT_EQ(s.next_deadline(), Time{} + 1s);
  ASSERT_EQ(s.due(Time{} + 1s).size(), 1u);
  EXPECT_EQ(s.next_deadline(), Time{} + 1s + 25ms);
}

TEST(Schedule, SlotsSharingAPhaseFireTogetherAndTheSpreadIsOverPhases) {
  // One peer, two kinds, two paths: the second path's slots share the first path's phases,
  // so the four slots fire at two offsets, interval/2 apart, as one path's two slots would.
  Schedule s(200ms);
  auto icmp_private = s.add();
  auto agent_private = s.add();
  auto icmp_public = s.add(icmp_private);
  auto agent_public = s.add(agent_private);
  EXPECT_EQ(s.phases(), 2u);
  s.start(Time{});
  EXPECT_EQ(s.next_due(icmp_public), s.next_due(icmp_private));
  EXPECT_EQ(s.next_due(agent_public), s.next_due(agent_private));
  EXPECT_EQ(s.next_due(agent_private) - s.next_due(icmp_private), 100ms);
  auto first = s.due(Time{});
  ASSERT_EQ(first.size(), 2u) << "both paths' ICMP probes go out in the same slot";
  EXPECT_EQ(first[0].slot, icmp_private);
  EXPECT_EQ(first[1].slot, icmp_public);
  // Sharing a phase does not share the no-overlap rule's flag: each slot is its own target.
  EXPECT_FALSE(s.complete(icmp_private, Time{} + 5ms));
  EXPECT_TRUE(s.in_flight(icmp_public));
  std::set<Schedule::SlotId> launched;
  for (const auto& l : s.due(Time{} + 200ms)) launched.insert(l.slot);
  EXPECT_EQ(launched, (std::set<Schedule::SlotId>{icmp_private, agent_private, agent_public}))
      << "icmp_public, still in flight, is deferred";
  auto again = s.complete(icmp_public, Time{} + 210ms);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->planned, Time{} + 200ms);
}

TEST(Schedule, UnknownSharedSlotGetsAPhaseOfItsOwn) {
  Schedule s(100ms);
  (void)s.add(7);  // no slot 7 yet
  (void)s.add();
  EXPECT_EQ(s.phases(), 2u);
}

}  // namespace
}  // namespace hanat::probes
