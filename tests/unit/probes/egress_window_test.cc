// SPDX-License-Identifier: GPL-2.0-or-later
#include "probes/egress_window.h"

#include <gtest/gtest.h>

namespace hanat::probes {
namespace {

using namespace std::chrono_literals;
using core::Health;

TEST(EgressWindow, UnknownUntilFirstWindowUnlessAlreadyHealthy) {
  Time t0{};
  EgressWindow w(3, 2, 600ms, t0);
  EXPECT_EQ(w.evaluate(t0 + 100ms).state, Health::Unknown);
  w.record(0, true, t0 + 100ms);
  EXPECT_EQ(w.evaluate(t0 + 150ms).state, Health::Unknown);
  w.record(2, true, t0 + 150ms);
  EXPECT_EQ(w.evaluate(t0 + 160ms).state, Health::Up);
  EXPECT_EQ(w.evaluate(t0 + 160ms).detail, "2 of 3 egress targets answered within 600 ms (need 2)");
}

TEST(EgressWindow, DownWhenFewerThanKAnsweredInTheWindow) {
  Time t0{};
  EgressWindow w(3, 2, 600ms, t0);
  EXPECT_EQ(w.evaluate(t0 + 600ms).state, Health::Down) << "nothing answered in a whole window";
  w.record(1, true, t0 + 700ms);
  w.record(1, false, t0 + 800ms);  // a failure never erases an earlier success
  EXPECT_EQ(w.evaluate(t0 + 800ms).answered, 1u);
  EXPECT_EQ(w.evaluate(t0 + 800ms).state, Health::Down);
}

TEST(EgressWindow, SuccessesAgeOutAfterTheWindow) {
  Time t0{};
  EgressWindow w(2, 1, 300ms, t0);
  w.record(0, true, t0 + 100ms);
  EXPECT_EQ(w.evaluate(t0 + 400ms).state, Health::Up) << "exactly at the edge still counts";
  EXPECT_EQ(w.evaluate(t0 + 401ms).state, Health::Down);
  EXPECT_EQ(w.next_change(t0 + 200ms), t0 + 300ms) << "end of the first window comes first";
  EXPECT_EQ(w.next_change(t0 + 300ms), t0 + 400ms + 1ns) << "then the success ages out";
}

TEST(EgressWindow, OnceHealthyNeverUnknownAgain) {
  Time t0{};
  EgressWindow w(2, 1, 300ms, t0 + 100ms);  // start includes a grace of one timeout
  w.record(0, true, t0 + 10ms);
  EXPECT_EQ(w.evaluate(t0 + 20ms).state, Health::Up);
  // The uplink dies: the success ages out while the first window is still open.
  EXPECT_EQ(w.evaluate(t0 + 311ms).state, Health::Down);
}

TEST(EgressWindow, NextChangeIncludesEndOfFirstWindow) {
  Time t0{};
  EgressWindow w(2, 1, 300ms, t0);
  EXPECT_EQ(w.next_change(t0), t0 + 300ms);
  EXPECT_FALSE(w.next_change(t0 + 1s)) << "no success to age out, first window over";
}

TEST(EgressWindow, IgnoresOutOfRangeTargetsAndClampsK) {
  Time t0{};
  EgressWindow w(1, 0, 300ms, t0);  // k < 1 means 1
  w.record(5, true, t0);
  EXPECT_EQ(w.evaluate(t0 + 10ms).answered, 0u);
  w.record(0, true, t0 + 10ms);
  EXPECT_EQ(w.evaluate(t0 + 20ms).state, Health::Up);
}

}  // namespace
}  // namespace hanat::probes
