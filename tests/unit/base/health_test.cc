// SPDX-License-Identifier: GPL-2.0-or-later
#include "core/base/health.h"

#include <gtest/gtest.h>

namespace hanat::core {
namespace {

TEST(HealthTracker, UnknownSettlesOnFirstThresholdReached) {
  HealthTracker up{{.rise = 2, .fall = 3}};
  EXPECT_EQ(up.record(true), HealthChange::Pending);
  EXPECT_EQ(up.record(true), HealthChange::Changed);
  EXPECT_EQ(up.state(), Health::Up);

  HealthTracker down{{.rise = 2, .fall = 3}};
  EXPECT_EQ(down.record(false), HealthChange::Pending);
  EXPECT_EQ(down.record(false), HealthChange::Pending);
  EXPECT_EQ(down.record(false), HealthChange::Changed);
  EXPECT_EQ(down.state(), Health::Down);
}

TEST(HealthTracker, FallsExactlyAtFallThreshold) {
  HealthTracker t{{.rise = 5, .fall = 3}, Health::Up};
  EXPECT_EQ(t.record(false), HealthChange::Pending);
  EXPECT_EQ(t.record(false), HealthChange::Pending);
  EXPECT_EQ(t.state(), Health::Up);
  EXPECT_EQ(t.record(false), HealthChange::Changed);
  EXPECT_EQ(t.state(), Health::Down);
  EXPECT_EQ(t.record(false), HealthChange::Unchanged);
}

TEST(HealthTracker, OppositeResultResetsTheCounter) {
  HealthTracker t{{.rise = 5, .fall = 3}, Health::Up};
  for (int round = 0; round < 10; ++round) {
    EXPECT_EQ(t.record(false), HealthChange::Pending);
    EXPECT_EQ(t.record(false), HealthChange::Pending);
    EXPECT_EQ(t.record(true), HealthChange::Unchanged);  // resets the failure run
  }
  EXPECT_EQ(t.state(), Health::Up);
  EXPECT_EQ(t.failures(), 0);
}

TEST(HealthTracker, RiseHysteresis) {
  HealthTracker t{{.rise = 5, .fall = 3}, Health::Down};
  for (int i = 0; i < 4; ++i) EXPECT_EQ(t.record(true), HealthChange::Pending);
  EXPECT_EQ(t.record(false), HealthChange::Unchanged);  // one failure restarts the rise
  for (int i = 0; i < 4; ++i) EXPECT_EQ(t.record(true), HealthChange::Pending);
  EXPECT_EQ(t.record(true), HealthChange::Changed);
  EXPECT_EQ(t.state(), Health::Up);
}

TEST(HealthTracker, ForceFlipsAtOnceAndClearsRuns) {
  HealthTracker t{{.rise = 5, .fall = 3}, Health::Up};
  EXPECT_EQ(t.record(true), HealthChange::Unchanged);
  EXPECT_EQ(t.force(Health::Down), HealthChange::Changed);
  EXPECT_EQ(t.state(), Health::Down);
  EXPECT_EQ(t.successes(), 0);
  EXPECT_EQ(t.force(Health::Down), HealthChange::Unchanged);
}

}  // namespace
}  // namespace hanat::core
