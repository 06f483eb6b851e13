// SPDX-License-Identifier: GPL-2.0-or-later
#include "core/daemon/keep_plan.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace hanat::daemon::keep {
namespace {

using std::chrono::milliseconds;
using ::testing::ElementsAre;
using ::testing::IsEmpty;

const std::map<std::string, std::vector<std::string>> kTableCidrs = {
    {"rtb-a", {"198.18.1.0/24", "198.18.3.0/24"}},
    {"rtb-b", {"198.18.2.0/24", "198.18.1.0/24"}},
    {"rtb-empty", {}},
};

TEST(KeepSources, AreTheSubnetsOfTheTablesHandedOver) {
  Sources s = handover_sources({"rtb-a"}, kTableCidrs, {"198.18.0.0/15"});
  EXPECT_FALSE(s.fallback);
  EXPECT_THAT(s.cidrs, ElementsAre("198.18.1.0/24", "198.18.3.0/24"));
}

TEST(KeepSources, OfSeveralTablesAreSortedAndUnique) {
  Sources s = handover_sources({"rtb-b", "rtb-a"}, kTableCidrs, {});
  EXPECT_FALSE(s.fallback);
  EXPECT_THAT(s.cidrs, ElementsAre("198.18.1.0/24", "198.18.2.0/24", "198.18.3.0/24"));
}

TEST(KeepSources, FallBackToNatSourcesWhenATableHasNoKnownSubnet) {
  Sources s = handover_sources({"rtb-a", "rtb-empty"}, kTableCidrs, {"198.18.0.0/15"});
  EXPECT_TRUE(s.fallback);
  EXPECT_THAT(s.cidrs, ElementsAre("198.18.0.0/15"));
  s = handover_sources({"rtb-unknown"}, kTableCidrs, {"198.18.0.0/15"});
  EXPECT_TRUE(s.fallback);
  EXPECT_THAT(s.cidrs, ElementsAre("198.18.0.0/15"));
}

TEST(KeepSources, EmptyNatSourcesMeanEverySource) {
  Sources s = handover_sources({"rtb-unknown"}, kTableCidrs, {});
  EXPECT_TRUE(s.fallback);
  EXPECT_THAT(s.cidrs, IsEmpty());
}

TEST(KeepSlot, IsTheLowestFreeAndStableForAPeerThatHoldsOne) {
  std::map<uint32_t, uint32_t> held;
  auto a = choose_steer_slot(0xC6120101, held);
  ASSERT_TRUE(a);
  EXPECT_EQ(*a, (SteerSlot{0, 0x68610000, 0x68610000, 400}));
  held[0xC6120101] = a->index;
  auto b = choose_steer_slot(0xC6120202, held);
  ASSERT_TRUE(b);
  EXPECT_EQ(b->index, 1u);
  EXPECT_EQ(b->mark, 0x68610001u);
  EXPECT_EQ(b->route_table, 0x68610001u);
  EXPECT_EQ(b->rule_priority, 401u);
  held[0xC6120202] = b->index;
  // A re-install for a peer keeps its slot: its flows' mark does not change.
  EXPECT_EQ(choose_steer_slot(0xC6120202, held), b);
  // A freed slot is reused.
  held.erase(0xC6120101);
  auto c = choose_steer_slot(0xC6120303, held);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->index, 0u);
}

TEST(KeepSlot, NoneWhenEverySlotIsTaken) {
  std::map<uint32_t, uint32_t> held;
  for (uint32_t i = 0; i < kMaxSteerSlots; ++i) held[0xC6120000 + i] = i;
  EXPECT_FALSE(choose_steer_slot(0xC6130001, held));
  EXPECT_TRUE(choose_steer_slot(0xC6120005, held));  // a holder still finds its own
}

TEST(KeepSlot, NeverUsesReservedTablesOrPassesMain) {
  for (uint32_t i = 0; i < kMaxSteerSlots; ++i) {
    SteerSlot s = steer_slot(i);
    EXPECT_NE(s.mark, 0u);
    EXPECT_GT(s.route_table, 255u);
    EXPECT_GT(s.rule_priority, 0u);
    EXPECT_LT(s.rule_priority, 32766u);
  }
}

TEST(KeepSteer, DropsWhenThePeerIsDownLeftOrEnded) {
  EXPECT_EQ(steer_verdict({.held = 5}), SteerVerdict::Keep);
  EXPECT_EQ(steer_verdict({.down = true, .held = 5}), SteerVerdict::Down);
  EXPECT_EQ(steer_verdict({.member = false, .held = 5}), SteerVerdict::Left);
  EXPECT_EQ(steer_verdict({.ended = true, .held = 5}), SteerVerdict::Ended);
  // Leaving the group wins over DOWN (both drop; the reason shown is the stronger one).
  EXPECT_EQ(steer_verdict({.member = false, .down = true}), SteerVerdict::Left);
}

TEST(KeepSteer, AClosedChannelKeepsHeldFlowsButNotAnEmptySet) {
  EXPECT_EQ(steer_verdict({.held = 3, .channel_open = false}), SteerVerdict::Keep);
  EXPECT_EQ(steer_verdict({.held = 0, .channel_open = false}), SteerVerdict::Drained);
  // An open channel with nothing held yet is a handover starting: keep.
  EXPECT_EQ(steer_verdict({.held = 0, .channel_open = true}), SteerVerdict::Keep);
}

TEST(KeepDrain, EndsAtNoFlowsFlowDrainDeadlineOrForce) {
  DrainView d{.flows_left = 10, .elapsed = milliseconds(1000), .flow_drain = milliseconds(300000)};
  EXPECT_EQ(drain_verdict(d), DrainVerdict::Wait);
  d.flows_left = 0;
  EXPECT_EQ(drain_verdict(d), DrainVerdict::NoFlows);
  d.flows_left = 10;
  d.elapsed = milliseconds(300000);
  EXPECT_EQ(drain_verdict(d), DrainVerdict::FlowDrain);
  // A spot notice's two minutes bound the drain below flow_drain.
  d.elapsed = milliseconds(120000);
  d.deadline = milliseconds(120000);
  EXPECT_EQ(drain_verdict(d), DrainVerdict::Deadline);
  d.elapsed = milliseconds(1);
  EXPECT_EQ(drain_verdict(d), DrainVerdict::Wait);
  d.forced = true;
  EXPECT_EQ(drain_verdict(d), DrainVerdict::Forced);
}

TEST(KeepStop, TimeoutCoversHandoverDrainAndMargin) {
  EXPECT_EQ(stop_timeout(milliseconds(10000), milliseconds(300000)), milliseconds(330000));
}

}  // namespace
}  // namespace hanat::daemon::keep
