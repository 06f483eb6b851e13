// SPDX-License-Identifier: GPL-2.0-or-later
// The forward-path check's rule (core/engine/forward_watch.h): counters in/out per window.
#include "core/engine/forward_watch.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace hanat::engine {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;

// Feeds readings one interval apart, with running totals, like the daemon's timer does.
class Feeder {
 public:
  explicit Feeder(ForwardWatchOptions o = {}) : w(o), interval(o.interval) {}

  // One window in which `in` packets arrived and `out` left. Returns the verdict, if any.
  std::optional<ForwardWatch::Verdict> window(std::uint64_t in, std::uint64_t out,
                                              std::uint64_t leaked = 0) {
    in_ += in;
    out_ += out;
    leaked_ += leaked;
    now += interval;
    return w.sample(in_, out_, leaked_, now);
  }
  std::optional<ForwardWatch::Verdict> idle_for(std::chrono::nanoseconds d) {
    std::optional<ForwardWatch::Verdict> v;
    for (auto t = 0ns; t < d; t += interval) {
      if (auto x = window(0, 0)) v = x;
    }
    return v;
  }

  ForwardWatch w;
  std::chrono::nanoseconds interval;
  Time now{};

 private:
  std::uint64_t in_ = 1000;  // counters rarely start at zero: the first reading is a baseline
  std::uint64_t out_ = 990;
  std::uint64_t leaked_ = 7;
};

TEST(ForwardWatch, FirstReadingIsOnlyABaseline) {
  ForwardWatch w;
  EXPECT_FALSE(w.sample(5000, 0, Time{} + 1s));  // huge "in" with no "out" yet: no verdict
  EXPECT_EQ(w.state(), Health::Unknown);
}

TEST(ForwardWatch, TrafficGoingOutMakesItUp) {
  Feeder f;
  f.window(0, 0);
  auto v = f.window(40, 38);
  ASSERT_TRUE(v);
  EXPECT_EQ(v->state, Health::Up);
  EXPECT_THAT(v->detail, HasSubstr("38 packets forwarded"));
}

TEST(ForwardWatch, StallIsDownAfterFallWindowsWithEnoughPackets) {
  Feeder f;  // fall 3, min_packets 10, interval 200 ms
  f.window(0, 0);
  f.window(40, 40);
  EXPECT_FALSE(f.window(40, 0));
  EXPECT_FALSE(f.window(40, 0));
  auto v = f.window(40, 0);
  ASSERT_TRUE(v);
  EXPECT_EQ(v->state, Health::Down);
  EXPECT_EQ(v->detail, "120 packets arrived to be forwarded in 600 ms and none left");
  EXPECT_EQ(f.w.state(), Health::Down);
  ASSERT_TRUE(f.w.recheck_at());
  EXPECT_EQ(*f.w.recheck_at(), f.now + 60s);
}

TEST(ForwardWatch, FewPacketsNeedMoreWindows) {
  Feeder f;
  f.window(0, 0);
  for (int i = 0; i < 4; ++i) EXPECT_FALSE(f.window(2, 0)) << "window " << i;  // 8 packets
  auto v = f.window(2, 0);  // 10 packets over 5 windows
  ASSERT_TRUE(v);
  EXPECT_EQ(v->state, Health::Down);
}

TEST(ForwardWatch, IdleWindowBreaksTheStallRun) {
  Feeder f;
  f.window(0, 0);
  for (int round = 0; round < 10; ++round) {
    EXPECT_FALSE(f.window(20, 0));
    EXPECT_FALSE(f.window(20, 0));
    EXPECT_FALSE(f.window(0, 0));  // a host retrying now and then into a firewall drop
  }
  EXPECT_EQ(f.w.state(), Health::Unknown);
}

TEST(ForwardWatch, AnyPacketOutBreaksTheStallRun) {
  Feeder f;
  f.window(0, 0);
  for (int round = 0; round < 10; ++round) {
    EXPECT_FALSE(f.window(50, 0));
    EXPECT_FALSE(f.window(50, 0));
    f.window(50, 1);  // the host's firewall drops most, but the path works
  }
  EXPECT_EQ(f.w.state(), Health::Up);
}

TEST(ForwardWatch, RecoversAfterRiseWindowsOfForwarding) {
  Feeder f;
  f.window(0, 0);
  for (int i = 0; i < 3; ++i) f.window(40, 0);
  ASSERT_EQ(f.w.state(), Health::Down);
  EXPECT_FALSE(f.window(40, 40));
  EXPECT_FALSE(f.window(40, 40));
  auto v = f.window(40, 40);
  ASSERT_TRUE(v);
  EXPECT_EQ(v->state, Health::Up);
  EXPECT_FALSE(f.w.recheck_at());
}

TEST(ForwardWatch, WithoutTrafficItIsOfferedBackAfterTheRecheckDelay) {
  Feeder f;
  f.window(0, 0);
  for (int i = 0; i < 3; ++i) f.window(40, 0);
  ASSERT_EQ(f.w.state(), Health::Down);
  // Routes moved away: nothing arrives. Still DOWN just before the delay...
  EXPECT_FALSE(f.idle_for(60s - 200ms));
  EXPECT_EQ(f.w.state(), Health::Down);
  // ...and offered back at it.
  auto v = f.window(0, 0);
  ASSERT_TRUE(v);
  EXPECT_EQ(v->state, Health::Up);
  EXPECT_THAT(v->detail, HasSubstr("offered back"));
}

TEST(ForwardWatch, StillStalledTrafficKeepsItDownPastTheRecheck) {
  Feeder f;
  f.window(0, 0);
  for (int i = 0; i < 3; ++i) f.window(40, 0);
  for (int i = 0; i < 400; ++i) EXPECT_FALSE(f.window(40, 0));  // 80 s, no one took over
  EXPECT_EQ(f.w.state(), Health::Down);
}

TEST(ForwardWatch, RepeatedStallsDoubleTheRecheckUpToTheMaximum) {
  ForwardWatchOptions o;
  o.recheck = 10s;
  o.recheck_max = 35s;
  Feeder f(o);
  f.window(0, 0);
  std::vector<std::chrono::nanoseconds> delays;
  for (int stall = 0; stall < 4; ++stall) {
    for (int i = 0; i < 3; ++i) f.window(40, 0);
    ASSERT_EQ(f.w.state(), Health::Down);
    delays.push_back(*f.w.recheck_at() - f.now);
    ASSERT_TRUE(f.idle_for(delays.back()));
    ASSERT_EQ(f.w.state(), Health::Up);
  }
  EXPECT_EQ(delays, (std::vector<std::chrono::nanoseconds>{10s, 20s, 35s, 35s}));
  // A stall long after the last one starts from the base delay again.
  f.idle_for(40s);
  for (int i = 0; i < 3; ++i) f.window(40, 0);
  EXPECT_EQ(*f.w.recheck_at() - f.now, 10s);
}

TEST(ForwardWatch, CountersGoingBackStartANewBaseline) {
  Feeder f;
  f.window(0, 0);
  f.window(40, 40);
  // The table was re-created: counters restart near zero. No stall from a negative delta.
  EXPECT_FALSE(f.w.sample(3, 0, f.now + 200ms));
  EXPECT_FALSE(f.w.sample(43, 0, f.now + 400ms));
  EXPECT_EQ(f.w.state(), Health::Up);
  EXPECT_EQ(f.w.in_total(), 80U);
  EXPECT_EQ(f.w.out_total(), 40U);
}

// --- the post-NAT leak counter (issue #23) ---

TEST(ForwardWatch, AnyLeakAsksForAPurgeAndIsNoSuccess) {
  Feeder f;
  f.window(0, 0);
  EXPECT_FALSE(f.w.purge_wanted());
  // Packets left, but some still carried a private source: not a proof of forwarding.
  EXPECT_FALSE(f.window(40, 40, 1));
  EXPECT_TRUE(f.w.purge_wanted());
  EXPECT_EQ(f.w.state(), Health::Unknown);
  // The purge worked: the next window is clean, and it is the success.
  auto v = f.window(40, 40);
  EXPECT_FALSE(f.w.purge_wanted());
  ASSERT_TRUE(v);
  EXPECT_EQ(v->state, Health::Up);
  EXPECT_EQ(f.w.leaked_total(), 1U);
}

TEST(ForwardWatch, LeaksThatOutlastThePurgesAreDown) {
  Feeder f;  // leak_fall 3
  f.window(0, 0);
  f.window(40, 40);
  ASSERT_EQ(f.w.state(), Health::Up);
  EXPECT_FALSE(f.window(40, 40, 5));
  EXPECT_FALSE(f.window(40, 40, 5));
  auto v = f.window(40, 40, 5);
  ASSERT_TRUE(v);
  EXPECT_EQ(v->state, Health::Down);
  EXPECT_EQ(v->detail,
            "15 packets left the egress interface without source NAT in 600 ms, despite purging "
            "their flows");
  EXPECT_TRUE(f.w.purge_wanted()) << "purging goes on while down";
  ASSERT_TRUE(f.w.recheck_at());
  EXPECT_EQ(*f.w.recheck_at(), f.now + 60s);
  // Still leaking: down stays; clean forwarding for `rise` windows: up.
  EXPECT_FALSE(f.window(40, 40, 5));
  EXPECT_FALSE(f.window(40, 40));
  EXPECT_FALSE(f.window(40, 40));
  auto up = f.window(40, 40);
  ASSERT_TRUE(up);
  EXPECT_EQ(up->state, Health::Up);
  EXPECT_FALSE(f.w.recheck_at());
}

TEST(ForwardWatch, ACleanWindowBreaksTheLeakRun) {
  Feeder f;
  f.window(0, 0);
  f.window(40, 40);
  f.window(40, 40, 3);
  f.window(40, 40, 3);
  f.window(40, 40);  // the purge caught up
  EXPECT_FALSE(f.window(40, 40, 3));
  EXPECT_FALSE(f.window(40, 40, 3));
  EXPECT_EQ(f.w.state(), Health::Up);
}

TEST(ForwardWatch, LeakCounterGoingBackIsANewBaseline) {
  Feeder f;
  f.window(0, 0);
  f.window(40, 40, 2);
  // The table was re-created (repair): every counter restarts, none is a leak.
  EXPECT_FALSE(f.w.sample(1, 1, 0, f.now + 200ms));
  EXPECT_FALSE(f.w.purge_wanted());
  auto v = f.w.sample(41, 41, 0, f.now + 400ms);
  EXPECT_FALSE(f.w.purge_wanted());
  ASSERT_TRUE(v);  // the first clean window after the leak is the proof of forwarding
  EXPECT_EQ(v->state, Health::Up);
  EXPECT_EQ(f.w.leaked_total(), 2U);
}

}  // namespace
}  // namespace hanat::engine
