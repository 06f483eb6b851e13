// SPDX-License-Identifier: GPL-2.0-or-later
#include "probes/send_delay.h"

#include <gtest/gtest.h>

namespace hanat::probes {
namespace {

using std::chrono::microseconds;

TEST(SendDelay, NothingSentIsAllZero) {
  SendDelay d;
  auto s = d.summary();
  EXPECT_EQ(s.samples, 0u);
  EXPECT_EQ(s.p99, microseconds(0));
  EXPECT_EQ(s.max, microseconds(0));
}

TEST(SendDelay, PercentilesAreNearestRankOverTheSends) {
  SendDelay d;
  // 1..100 us in a shuffled order: p50 is the 50th value, p99 the 99th.
  for (int i = 0; i < 100; ++i) d.add(microseconds((i * 37) % 100 + 1));
  auto s = d.summary();
  EXPECT_EQ(s.samples, 100u);
  EXPECT_EQ(s.p50, microseconds(50));
  EXPECT_EQ(s.p99, microseconds(99));
  EXPECT_EQ(s.max, microseconds(100));
}

TEST(SendDelay, EarlySendsCountAsOnTime) {
  SendDelay d;
  d.add(microseconds(-800));
  EXPECT_EQ(d.summary().max, microseconds(0));
}

TEST(SendDelay, OnlyTheLastWindowCounts) {
  SendDelay d;
  d.add(microseconds(250000));  // one stall long ago
  for (std::size_t i = 0; i < SendDelay::kWindow; ++i) d.add(microseconds(300));
  auto s = d.summary();
  EXPECT_EQ(s.samples, SendDelay::kWindow);
  EXPECT_EQ(s.max, microseconds(300)) << "a stall older than the window still shows";
  EXPECT_EQ(d.total(), SendDelay::kWindow + 1);
}

TEST(SendDelay, OneStallInAHundredSendsIsTheP99) {
  SendDelay d;
  for (int i = 0; i < 98; ++i) d.add(microseconds(200));
  d.add(microseconds(7000));
  d.add(microseconds(9000));
  auto s = d.summary();
  EXPECT_EQ(s.p50, microseconds(200));
  EXPECT_EQ(s.p99, microseconds(7000));
  EXPECT_EQ(s.max, microseconds(9000));
}

}  // namespace
}  // namespace hanat::probes
