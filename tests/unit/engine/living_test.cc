// SPDX-License-Identifier: GPL-2.0-or-later
// A living group (DESIGN rules 3 and 9): members that join and leave while the engine runs,
// routes an operator pointed elsewhere on purpose (foreign: never written), and tagged
// instances that run no hanatd (never allocated anything).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "core/engine/machine.h"
#include "tests/unit/engine/harness.h"

namespace hanat::engine::testing {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::SizeIs;

const std::vector<TableSpec> kHomeTables{{"rtb-a", "a", inst("i-a")}, {"rtb-b", "b", inst("i-b")}};

const TableSnapshot& table(const Snapshot& s, const std::string& id) {
  for (const auto& t : s.tables) {
    if (t.id == id) return t;
  }
  static TableSnapshot none;
  ADD_FAILURE() << "no table " << id;
  return none;
}

const MemberSnapshot* member(const Snapshot& s, const std::string& id) {
  for (const auto& m : s.members) {
    if (m.instance_id == id) return &m;
  }
  return nullptr;
}

Target tgw(std::string id) {
  return Target{TargetKind::TransitGateway, std::move(id)};
}

std::vector<Member> with(std::vector<Member> ms, const Member& extra) {
  ms.push_back(extra);
  return ms;
}

// ---- joins --------------------------------------------------------------------------------

TEST(LivingGroup, MemberThatJoinsIsAllocatedNothingBeforeItIsUp) {
  Harness h{base_config()};
  // No member in zone c yet: rtb-c is served by a.
  h.start({{"rtb-a", "a", inst("i-a")}, {"rtb-b", "b", inst("i-b")}, {"rtb-c", "c", inst("i-a")}});
  h.take();
  h.send(MembersChanged{with(h.cfg().members, {"i-c", "eni-c", "c", 300}), h.now()});
  ASSERT_NE(member(h.snap(), "i-c"), nullptr);
  EXPECT_EQ(member(h.snap(), "i-c")->health, Health::Unknown);
  EXPECT_NE(table(h.snap(), "rtb-c").allocated, (Target{TargetKind::Eni, "eni-c"}));
  h.probes("i-c", true, 4);
  EXPECT_NE(table(h.snap(), "rtb-c").allocated, (Target{TargetKind::Eni, "eni-c"}))
      << "4 of rise=5 probes";
  h.probes("i-c", true, 1);
  EXPECT_EQ(table(h.snap(), "rtb-c").allocated, (Target{TargetKind::Eni, "eni-c"}));
  EXPECT_THAT(only<WriteRoute>(h.take()), IsEmpty()) << "i-c claims its table; a never pushes";
}

TEST(LivingGroup, RouteAtAJoiningMemberIsNotTakenWhileItsHealthIsUnknown) {
  Harness h{base_config()};
  h.start(kHomeTables);
  h.take();
  // The new instance claimed rtb-b before this member re-read the group: foreign until then.
  h.observe({{"rtb-a", "a", inst("i-a")}, {"rtb-b", "b", (Target{TargetKind::Eni, "eni-c"})}});
  EXPECT_TRUE(table(h.snap(), "rtb-b").routes.at(0).foreign);
  h.send(MembersChanged{with(h.cfg().members, {"i-c", "eni-c", "b", 300}), h.now()});
  EXPECT_FALSE(table(h.snap(), "rtb-b").routes.at(0).foreign);
  auto rf = only<RouteForeign>(h.take());
  ASSERT_THAT(rf, SizeIs(2));
  EXPECT_TRUE(rf[0].foreign);
  EXPECT_FALSE(rf[1].foreign);
  h.probes("i-b", false, 3);  // the old holder of zone b dies: rtb-b is i-c's now
  h.advance(5min);
  EXPECT_THAT(only<WriteRoute>(h.take()), IsEmpty());
}

TEST(LivingGroup, TaggedInstanceWithoutHanatdGetsNothingAndIsReported) {
  auto cfg = base_config();
  cfg.probe_kinds = {ProbeKind::Icmp, ProbeKind::Agent};
  Harness h{cfg};
  h.start(kHomeTables);  // i-b answers ICMP only
  h.take();
  for (int i = 0; i < 3; ++i) {
    h.advance(200ms);
    h.send(ProbeResult{"i-b", ProbeKind::Agent, false, h.now()});
  }
  const Snapshot snap = h.snap();  // kept: b points into it
  const MemberSnapshot* b = member(snap, "i-b");
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->health, Health::Up) << "it answers ICMP";
  EXPECT_FALSE(b->agent_answered);
  EXPECT_TRUE(b->no_agent);
  auto reported = only<PeerWithoutAgent>(h.take());
  ASSERT_THAT(reported, SizeIs(1));
  EXPECT_EQ(reported[0].peer, "i-b");
  EXPECT_EQ(table(h.snap(), "rtb-b").allocated, inst("i-a"));
  // Its route is held by a live member: nothing is written while it stays up...
  h.advance(1min);
  EXPECT_THAT(only<WriteRoute>(h.take()), IsEmpty());
  // ... and once its hanatd answers, it is allocated its home table.
  h.advance(200ms);
  h.send(ProbeResult{"i-b", ProbeKind::Agent, true, h.now()});
  EXPECT_TRUE(member(h.snap(), "i-b")->agent_answered);
  EXPECT_FALSE(member(h.snap(), "i-b")->no_agent);
  EXPECT_EQ(table(h.snap(), "rtb-b").allocated, inst("i-b"));
}

TEST(LivingGroup, ZoneWithOnlyATaggedBystanderFailsOverToAMemberThatRunsHanatd) {
  auto cfg = base_config();
  cfg.probe_kinds = {ProbeKind::Icmp, ProbeKind::Agent};
  cfg.members.push_back({"i-app", "", "b", 50});  // an application host with the group tag
  Harness h{cfg};
  h.start(kHomeTables);
  h.take();
  for (int i = 0; i < 5; ++i) {
    h.advance(200ms);
    h.send(ProbeResult{"i-b", ProbeKind::Agent, true, h.now()});
    h.send(ProbeResult{"i-app", ProbeKind::Agent, false, h.now()});
  }
  // zone b's NAT dies; the bystander in zone b still answers ICMP.
  for (int i = 0; i < 3; ++i) {
    h.advance(200ms);
    h.send(ProbeResult{"i-b", ProbeKind::Icmp, false, h.now()});
    h.send(ProbeResult{"i-b", ProbeKind::Agent, false, h.now()});
    h.send(ProbeResult{"i-app", ProbeKind::Icmp, true, h.now()});
  }
  EXPECT_EQ(table(h.snap(), "rtb-b").allocated, inst("i-a"));
  EXPECT_THAT(write_tables(h.take()), ElementsAre("rtb-b"));
}

// ---- leaves -------------------------------------------------------------------------------

TEST(LivingGroup, MemberThatLeavesWhileHoldingRoutesLosesThemAtOnce) {
  Harness h{base_config()};
  h.start(kHomeTables);
  h.take();
  // i-b is terminated: still Up by probes a moment ago, but gone from the group.
  h.send(MembersChanged{{h.cfg().members.front()}, h.now()});
  EXPECT_EQ(member(h.snap(), "i-b"), nullptr);
  auto w = only<WriteRoute>(h.take());
  ASSERT_THAT(w, SizeIs(1));
  EXPECT_EQ(w[0].table, "rtb-b");
  EXPECT_EQ(w[0].target, inst("i-a"));
  EXPECT_FALSE(table(h.snap(), "rtb-b").routes.at(0).foreign) << "a departed member, not foreign";
}

TEST(LivingGroup, DepartureEndsAHoldDownAtOnce) {
  Harness h{base_config()};
  h.start(kHomeTables);
  h.probes("i-b", false, 3);
  h.complete_writes();
  h.advance(3s);
  h.take();
  // i-b, seen dead, rewrites rtb-b back to itself: a backs off (it may be partitioned).
  h.observe({{"rtb-a", "a", inst("i-a")}, {"rtb-b", "b", inst("i-b")}});
  ASSERT_TRUE(table(h.snap(), "rtb-b").hold_until.has_value());
  EXPECT_THAT(only<WriteRoute>(h.take()), IsEmpty());
  h.send(MembersChanged{{h.cfg().members.front()}, h.now()});
  EXPECT_THAT(write_tables(h.take()), ElementsAre("rtb-b"));
}

TEST(LivingGroup, AMemberThatComesBackIsAMemberAgain) {
  Harness h{base_config()};
  h.start(kHomeTables);
  h.send(MembersChanged{{h.cfg().members.front()}, h.now()});
  h.complete_writes();
  h.send(MembersChanged{base_config().members, h.now()});
  ASSERT_NE(member(h.snap(), "i-b"), nullptr);
  EXPECT_EQ(member(h.snap(), "i-b")->health, Health::Unknown);
  h.take();
  h.advance(3s);
  h.observe({{"rtb-a", "a", inst("i-a")}, {"rtb-b", "b", inst("i-b")}});
  EXPECT_FALSE(table(h.snap(), "rtb-b").routes.at(0).foreign);
  EXPECT_THAT(only<WriteRoute>(h.take()), IsEmpty()) << "i-b is of unknown health: not taken";
}

TEST(LivingGroup, MembershipWithoutSelfIsIgnored) {
  Harness h{base_config()};
  h.start(kHomeTables);
  h.take();
  h.send(MembersChanged{{{"i-b", "", "b", 200}}, h.now()});
  EXPECT_NE(member(h.snap(), "i-a"), nullptr);
  EXPECT_NE(member(h.snap(), "i-b"), nullptr);
  EXPECT_THAT(only<WriteRoute>(h.take()), IsEmpty());
}

// ---- foreign routes -----------------------------------------------------------------------

TEST(LivingGroup, ForeignTargetIsNeverWrittenAndManagedAgainWhenItPointsAtAMember) {
  Harness h{base_config()};
  h.start(kHomeTables);
  h.take();
  h.advance(1s);
  h.observe({{"rtb-a", "a", inst("i-a")}, {"rtb-b", "b", tgw("tgw-1")}});
  auto rf = only<RouteForeign>(h.take());
  ASSERT_THAT(rf, SizeIs(1));
  EXPECT_EQ(rf[0].table, "rtb-b");
  EXPECT_EQ(rf[0].target, tgw("tgw-1"));
  EXPECT_TRUE(rf[0].foreign);
  EXPECT_TRUE(table(h.snap(), "rtb-b").routes.at(0).foreign);
  EXPECT_EQ(h.snap().foreign_routes, 1u);
  // The NAT that used to serve it dies: the table is still not touched.
  h.probes("i-b", false, 3);
  h.advance(10min);
  EXPECT_THAT(only<WriteRoute>(h.take()), IsEmpty());
  // The operator points it back at (dead) i-b: a takes it at once.
  h.observe({{"rtb-a", "a", inst("i-a")}, {"rtb-b", "b", inst("i-b")}});
  auto a = h.take();
  EXPECT_THAT(write_tables(a), ElementsAre("rtb-b"));
  rf = only<RouteForeign>(a);
  ASSERT_THAT(rf, SizeIs(1));
  EXPECT_FALSE(rf[0].foreign);
}

TEST(LivingGroup, OwnRouteTakenByAnOperatorIsNotAStrike) {
  Harness h{base_config()};
  h.start(kHomeTables);
  h.take();
  h.observe({{"rtb-a", "a", natgw("nat-incident")}, {"rtb-b", "b", inst("i-b")}});
  EXPECT_EQ(table(h.snap(), "rtb-a").strikes, 0);
  EXPECT_TRUE(table(h.snap(), "rtb-a").routes.at(0).foreign) << "a NAT Gateway, not the fallback";
  h.advance(10min);
  EXPECT_THAT(only<WriteRoute>(h.take()), IsEmpty());
  EXPECT_EQ(h.state(), State::Standby);
}

TEST(LivingGroup, EveryNonMemberTargetKindIsForeignAndTheFallbackIsNot) {
  auto cfg = base_config();
  cfg.fallback_nat_gateway = "nat-fallback";
  Harness h{cfg};
  h.start({});
  std::vector<TableSpec> tables;
  const std::vector<Target> foreign{
      tgw("tgw-1"),
      {TargetKind::Peering, "pcx-1"},
      {TargetKind::Gateway, "igw-1"},
      {TargetKind::Gateway, "vpce-1"},
      {TargetKind::EgressOnlyGateway, "eigw-1"},
      {TargetKind::LocalGateway, "lgw-1"},
      {TargetKind::CarrierGateway, "cagw-1"},
      {TargetKind::CoreNetwork, "arn:aws:networkmanager::1:core-network/core-network-1"},
      {TargetKind::Other, "x-1"},
      natgw("nat-other"),
      inst("i-stranger"),
      {TargetKind::Eni, "eni-appliance"},
      {TargetKind::Gateway, "vgw-1", true},  // propagated
  };
  for (std::size_t i = 0; i < foreign.size(); ++i) {
    tables.push_back({"rtb-" + std::to_string(10 + i), "a", foreign[i]});
  }
  tables.push_back({"rtb-fb", "a", natgw("nat-fallback")});
  auto a = h.observe(tables);
  EXPECT_EQ(h.snap().foreign_routes, foreign.size());
  EXPECT_EQ(only<RouteForeign>(a).size(), foreign.size());
  h.advance(1h);
  for (const auto& w : only<WriteRoute>(h.take())) EXPECT_EQ(w.table, "rtb-fb") << w.table;
}

TEST(LivingGroup, AdoptedTableIsWrittenOnceAndThenManagedAsAnyOther) {
  Harness h{base_config()};
  h.start({{"rtb-a", "a", Target{TargetKind::Peering, "pcx-1"}}, {"rtb-b", "b", inst("i-b")}});
  EXPECT_THAT(only<WriteRoute>(h.take()), IsEmpty());
  h.send(Adopt{"rtb-a", h.now()});
  EXPECT_TRUE(table(h.snap(), "rtb-a").adopted);
  EXPECT_THAT(write_tables(h.take()), ElementsAre("rtb-a"));
  h.complete_writes();
  h.advance(3s);
  h.observe(kHomeTables);
  EXPECT_FALSE(table(h.snap(), "rtb-a").adopted);
  // Pointed at the peering connection again: foreign again, not written.
  h.take();
  h.observe({{"rtb-a", "a", Target{TargetKind::Peering, "pcx-1"}}, {"rtb-b", "b", inst("i-b")}});
  h.advance(5min);
  EXPECT_THAT(only<WriteRoute>(h.take()), IsEmpty());
}

TEST(LivingGroup, AdoptingATableWithoutForeignRoutesChangesNothing) {
  Harness h{base_config()};
  h.start(kHomeTables);
  h.take();
  h.send(Adopt{"rtb-b", h.now()});
  h.send(Adopt{"rtb-unknown", h.now()});
  EXPECT_FALSE(table(h.snap(), "rtb-b").adopted);
  EXPECT_THAT(only<WriteRoute>(h.take()), IsEmpty());
}

TEST(LivingGroup, CreateThatFindsARouteReadsItBeforeWriting) {
  Harness h{base_config()};
  h.start({{"rtb-a", "a", Target{}}, {"rtb-b", "b", inst("i-b")}});
  auto w = only<WriteRoute>(h.take());
  ASSERT_THAT(w, SizeIs(1));
  EXPECT_EQ(w[0].verb, RouteVerb::Create);
  // Someone created the route meanwhile (an operator, toward a transit gateway).
  auto a = h.complete_writes(Ec2Outcome::Fatal, "RouteAlreadyExists");
  EXPECT_THAT(only<WriteRoute>(a), IsEmpty());
  EXPECT_THAT(only<DescribeRoutes>(a), SizeIs(1));
  h.observe({{"rtb-a", "a", tgw("tgw-1")}, {"rtb-b", "b", inst("i-b")}});
  h.advance(5min);
  EXPECT_THAT(only<WriteRoute>(h.take()), IsEmpty());
}

}  // namespace
}  // namespace hanat::engine::testing
