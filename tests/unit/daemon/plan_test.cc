// SPDX-License-Identifier: GPL-2.0-or-later
#include "core/daemon/plan.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace hanat::daemon {
namespace {

using engine::Target;
using engine::TargetKind;
using ::testing::HasSubstr;

PlanInput two_zones() {
  PlanInput in;
  in.self = "i-00000001";
  in.members = {{"i-00000001", "eni-0000000a", "zone-a", 1},
                {"i-00000002", "eni-0000000b", "zone-b", 2}};
  in.destinations = {"0.0.0.0/0"};
  in.tables = {{"rtb-0000000a", "zone-a", 0, {{"0.0.0.0/0", {TargetKind::Eni, "eni-0000000b"}}}},
               {"rtb-0000000b", "zone-b", 0, {{"0.0.0.0/0", {TargetKind::Eni, "eni-0000000b"}}}}};
  return in;
}

TEST(Plan, ClaimsOnlyTheHomeTableThatPointsElsewhere) {
  Plan p = make_plan(two_zones());
  ASSERT_EQ(p.allocated.size(), 2u);
  EXPECT_EQ(p.allocated[0], "eni-0000000a");
  EXPECT_EQ(p.allocated[1], "eni-0000000b");
  ASSERT_EQ(p.writes.size(), 1u);  // claim, don't push: table b is not ours to write
  EXPECT_EQ(p.writes[0].table, "rtb-0000000a");
  EXPECT_EQ(p.writes[0].to, (Target{TargetKind::Eni, "eni-0000000a"}));
  EXPECT_THAT(p.text,
              HasSubstr("ReplaceRoute rtb-0000000a 0.0.0.0/0: eni-0000000b -> eni-0000000a"));
  EXPECT_THAT(p.text, HasSubstr("i-00000001            zone-a"));
  EXPECT_THAT(p.text, HasSubstr("(this host)"));
}

TEST(Plan, NothingToDoWhenEverythingIsRight) {
  PlanInput in = two_zones();
  in.tables[0].routes[0].target = {TargetKind::Eni, "eni-0000000a"};
  Plan p = make_plan(in);
  EXPECT_TRUE(p.writes.empty());
  EXPECT_THAT(p.text, HasSubstr("writes this host would make now: none"));
}

TEST(Plan, MissingRouteIsCreated) {
  PlanInput in = two_zones();
  in.tables[0].routes.clear();
  Plan p = make_plan(in);
  ASSERT_EQ(p.writes.size(), 1u);
  EXPECT_THAT(p.text, HasSubstr("CreateRoute rtb-0000000a 0.0.0.0/0: (no route) -> eni-0000000a"));
}

TEST(Plan, ZoneWithoutMemberGoesToTheLeastLoaded) {
  PlanInput in = two_zones();
  in.tables.push_back({"rtb-0000000c", "zone-c", 0, {}});
  Plan p = make_plan(in);
  ASSERT_EQ(p.allocated.size(), 3u);
  EXPECT_FALSE(p.allocated[2].empty());
  EXPECT_THAT(p.text, HasSubstr("rtb-0000000c"));
}

TEST(Plan, ForeignRoutesAreNeverPlannedForAWrite) {
  PlanInput in = two_zones();
  in.fallback = "nat-0fa11bac";
  in.tables[0].routes[0].target = {TargetKind::TransitGateway, "tgw-0123"};
  Plan p = make_plan(in);
  EXPECT_TRUE(p.writes.empty());
  EXPECT_THAT(p.text, HasSubstr("(foreign: points at tgw-0123, never written)"));
  for (Target t :
       {Target{TargetKind::NatGateway, "nat-0other"}, Target{TargetKind::Eni, "eni-0appliance"},
        Target{TargetKind::Gateway, "vgw-0123", true}}) {
    in.tables[0].routes[0].target = t;
    EXPECT_TRUE(make_plan(in).writes.empty()) << t.id;
  }
  // The fallback, a blackhole and a member's instance id are not foreign.
  for (Target t : {Target{TargetKind::NatGateway, "nat-0fa11bac"},
                   Target{TargetKind::Blackhole, ""}, Target{TargetKind::Instance, "i-00000002"}}) {
    in.tables[0].routes[0].target = t;
    EXPECT_EQ(make_plan(in).writes.size(), 1u) << engine::to_string(t.kind);
  }
}

}  // namespace
}  // namespace hanat::daemon
