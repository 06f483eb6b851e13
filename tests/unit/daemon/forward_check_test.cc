// SPDX-License-Identifier: GPL-2.0-or-later
#include "core/daemon/forward_check.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <vector>

#include "tests/support/uv_test_util.h"

namespace hanat::daemon {
namespace {

using namespace std::chrono_literals;
using engine::Health;
using ::testing::HasSubstr;

// The glue only: NatManager's readings reach the engine's ForwardWatch, failed readings lose
// the window, and turning the check off reports Unknown once. The rule itself is tested in
// tests/unit/engine/forward_watch_test.cc, the readings in the netfilter namespace test.
struct ForwardCheckTest : ::testing::Test {
  uv::Loop loop;
  std::optional<netfilter::NatManager> nat{std::in_place, loop};
  std::optional<ForwardCheck> check{std::in_place, *nat};
  std::vector<engine::ForwardWatch::Verdict> verdicts;
  std::chrono::steady_clock::time_point now{};

  ForwardCheckTest() {
    check->on_forward_change([this](const auto& v) { verdicts.push_back(v); });
    ForwardCheckOptions o;
    o.interval = 100ms;
    o.watch.fall = 2;
    o.watch.rise = 2;
    o.watch.min_packets = 1;
    check->watch_forwarding(o);
  }
  ~ForwardCheckTest() override {
    check.reset();
    nat->stop();
    nat.reset();
    testing::expect_clean_close(loop);
  }
  void reading(std::uint64_t in, std::uint64_t out) {
    now += 100ms;
    check->feed(netfilter::ForwardSample{true, {in, out}, now});
  }
  void failed_reading() {
    now += 100ms;
    check->feed(netfilter::ForwardSample{false, {}, now});
  }
};

TEST_F(ForwardCheckTest, ReadingsAreJudgedByTheEngineRule) {
  EXPECT_TRUE(check->forward_watching());
  reading(10, 10);
  reading(20, 20);
  ASSERT_EQ(verdicts.size(), 1u);
  EXPECT_EQ(verdicts.back().state, Health::Up);
  EXPECT_THAT(verdicts.back().detail, HasSubstr("packets forwarded in the last 100 ms"));
  reading(30, 20);
  reading(40, 20);
  ASSERT_EQ(verdicts.size(), 2u);
  EXPECT_EQ(check->forward().state(), Health::Down);
}

TEST_F(ForwardCheckTest, AFailedReadingLosesTheWindow) {
  reading(10, 10);
  failed_reading();
  reading(50, 10);  // a new baseline, not a stalled window
  reading(60, 10);
  EXPECT_TRUE(verdicts.empty());
  reading(70, 10);
  ASSERT_EQ(verdicts.size(), 1u);
  EXPECT_EQ(verdicts.back().state, Health::Down);
}

TEST_F(ForwardCheckTest, TurningItOffReportsUnknownOnce) {
  reading(10, 10);
  reading(20, 20);
  check->watch_forwarding(std::nullopt);
  EXPECT_FALSE(check->forward_watching());
  ASSERT_EQ(verdicts.size(), 2u);
  EXPECT_EQ(verdicts.back().state, Health::Unknown);
  EXPECT_EQ(verdicts.back().detail, "forward check off");
  check->watch_forwarding(std::nullopt);
  EXPECT_EQ(verdicts.size(), 2u);
}

}  // namespace
}  // namespace hanat::daemon
