// SPDX-License-Identifier: GPL-2.0-or-later
// Scenario tests of the failover Machine, one per rule of DESIGN "Failover semantics",
// each named after the behaviour it pins.
#include "core/engine/machine.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

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

Target current(const Harness& h, const std::string& id) {
  return table(h.snap(), id).routes.at(0).current;
}

Health health_of(const Snapshot& s, const std::string& id) {
  for (const auto& m : s.members) {
    if (m.instance_id == id) return m.health;
  }
  return Health::Unknown;
}

// Index of the first action of type T in `log`, or -1.
template <class T>
int index_of(const std::vector<Action>& log) {
  for (std::size_t i = 0; i < log.size(); ++i) {
    if (std::holds_alternative<T>(log[i])) return static_cast<int>(i);
  }
  return -1;
}

// ---- start-up -----------------------------------------------------------------------------

TEST(FailoverMachine, StartsByApplyingNatAndReadingRoutes) {
  Harness h{base_config()};
  auto a = h.send(Tick{h.now()});
  EXPECT_THAT(only<ApplyNat>(a), SizeIs(1));
  EXPECT_THAT(only<DescribeRoutes>(a), SizeIs(1));
  EXPECT_EQ(h.state(), State::Starting);
  h.start(kHomeTables);
  EXPECT_EQ(h.state(), State::Active);  // owns rtb-a already: no write
  EXPECT_EQ(h.snap().writes_total, 0u);
}

TEST(FailoverMachine, NatFailureAtStartIsUnhealthyAndRetried) {
  auto cfg = base_config();
  cfg.nat_retry = 5s;
  Harness h{cfg};
  auto a = h.send(Tick{h.now()});
  auto nat = only<ApplyNat>(a).at(0);
  h.observe(kHomeTables);
  h.send(NatApplied{nat.op, nat.epoch, false, "rule missing after commit", h.now()});
  EXPECT_EQ(h.state(), State::Unhealthy);
  h.take();
  h.advance(4999ms);
  EXPECT_THAT(only<ApplyNat>(h.take()), IsEmpty());
  h.advance(1ms);
  auto retry = only<ApplyNat>(h.take());
  ASSERT_THAT(retry, SizeIs(1));
  h.send(NatApplied{retry[0].op, retry[0].epoch, true, "", h.now()});
  EXPECT_EQ(h.state(), State::Active);
}

// ---- takeover -----------------------------------------------------------------------------

TEST(FailoverMachine, TakesOverExactlyAtFallThresholdAndNotBefore) {
  Harness h{base_config()};
  h.start(kHomeTables);
  h.take();
  EXPECT_THAT(write_tables(h.probes("i-b", false, 2)), IsEmpty());
  auto a = h.probes("i-b", false, 1);
  auto changed = only<PeerChanged>(a);
  ASSERT_THAT(changed, SizeIs(1));
  EXPECT_EQ(changed[0].to, Health::Down);
  EXPECT_EQ(changed[0].detail, "3 icmp probes failed, fall=3");
  auto w = only<WriteRoute>(a);
  ASSERT_THAT(w, SizeIs(1));
  EXPECT_EQ(w[0].table, "rtb-b");
  EXPECT_EQ(w[0].destination, "0.0.0.0/0");
  EXPECT_EQ(w[0].target, inst("i-a"));
  EXPECT_EQ(w[0].verb, RouteVerb::Replace);
}

TEST(FailoverMachine, OneSuccessResetsTheFallCount) {
  Harness h{base_config()};
  h.start(kHomeTables);
  for (int round = 0; round < 20; ++round) {
    h.probes("i-b", false, 2);
    h.probes("i-b", true, 1);
  }
  EXPECT_EQ(h.snap().writes_total, 0u);
  EXPECT_EQ(health_of(h.snap(), "i-b"), Health::Up);
}

TEST(FailoverMachine, PeerCountsAsUpOnlyAfterRiseConsecutiveSuccesses) {
  Harness h{base_config()};
  h.start(kHomeTables);
  h.probes("i-b", false, 3);
  h.complete_writes();
  EXPECT_EQ(current(h, "rtb-b"), inst("i-a"));
  h.take();
  h.probes("i-b", true, 4);
  h.probes("i-b", false, 1);  // restarts the rise count
  h.probes("i-b", true, 4);
  EXPECT_THAT(only<PeerChanged>(h.take()), IsEmpty());
  EXPECT_EQ(table(h.snap(), "rtb-b").allocated, inst("i-a"));
  auto a = h.probes("i-b", true, 1);
  ASSERT_THAT(only<PeerChanged>(a), SizeIs(1));
  // b's table is b's again, but claim-don't-push: a never writes it away from itself.
  EXPECT_EQ(table(h.snap(), "rtb-b").allocated, inst("i-b"));
  EXPECT_THAT(only<WriteRoute>(a), IsEmpty());
  h.advance(5min);
  EXPECT_THAT(only<WriteRoute>(h.take()), IsEmpty());
}

TEST(FailoverMachine, UnknownPeerIsNeitherTakenFromNorGivenTables) {
  Harness h{base_config()};
  auto a = h.send(Tick{h.now()});
  h.send(NatApplied{only<ApplyNat>(a).at(0).op, 1, true, "", h.now()});
  h.observe(kHomeTables);
  EXPECT_EQ(h.state(), State::Active);
  EXPECT_EQ(health_of(h.snap(), "i-b"), Health::Unknown);
  EXPECT_EQ(h.snap().writes_total, 0u) << "rtb-b points at a peer of unknown health";
}

TEST(FailoverMachine, TakesBlackholedAndMissingRoutesAtOnceButNeverForeignOnes) {
  Harness h{base_config()};
  h.start({});
  auto a = h.observe(
      {{"rtb-a", "a", blackhole()}, {"rtb-x", "a", inst("i-stranger")}, {"rtb-m", "a", Target{}}});
  EXPECT_THAT(write_tables(a), ElementsAre("rtb-a", "rtb-m"));
  EXPECT_EQ(only<WriteRoute>(a).at(1).verb, RouteVerb::Create);  // destination missing
}

TEST(FailoverMachine, NeverTakesATableFromALivePeer) {
  auto cfg = base_config();
  cfg.members.push_back({"i-c", "", "c", 300});
  Harness h{cfg};
  // rtb-c's zone has i-c, but i-b holds it and is alive: not a's to take even when c dies.
  h.start({{"rtb-a", "a", inst("i-a")}, {"rtb-c", "c", inst("i-b")}});
  h.take();
  h.probes("i-c", false, 3);
  EXPECT_THAT(only<WriteRoute>(h.take()), IsEmpty());
}

TEST(FailoverMachine, AgentVerdictDownIsImmediate) {
  auto cfg = base_config();
  cfg.probe_kinds = {ProbeKind::Icmp, ProbeKind::Agent};
  Harness h{cfg};
  h.start(kHomeTables);
  for (int i = 0; i < 5; ++i) {
    h.advance(200ms);
    h.send(ProbeResult{"i-b", ProbeKind::Agent, true, h.now()});
  }
  h.take();
  // ICMP alone failing does not take b down while the agent still answers.
  h.probes("i-b", false, 10, 200ms, ProbeKind::Icmp);
  EXPECT_EQ(health_of(h.snap(), "i-b"), Health::Up);
  EXPECT_THAT(only<WriteRoute>(h.take()), IsEmpty());
  auto a = h.send(ProbeResult{"i-b", ProbeKind::Agent, false, h.now(), /*reports_down=*/true});
  EXPECT_EQ(health_of(h.snap(), "i-b"), Health::Down);
  EXPECT_THAT(write_tables(a), ElementsAre("rtb-b"));
}

// ---- allocation in a group of three ------------------------------------------------------

TEST(FailoverMachine, ThreeMembersTwoZonesClaimOnlyTheirOwnAllocation) {
  auto cfg = base_config();
  cfg.members = {{"i-a", "", "a", 100}, {"i-b", "", "a", 200}, {"i-c", "", "b", 300}};
  Harness h{cfg};
  h.start({});
  h.take();
  auto a = h.observe({{"rtb-a1", "a", blackhole()},
                      {"rtb-a2", "a", blackhole()},
                      {"rtb-b1", "b", blackhole()},
                      {"rtb-c1", "c", blackhole()},
                      {"rtb-c2", "c", blackhole()}});
  // Zone a is shared a1->i-a, a2->i-b; b1->i-c; zone c has nobody: c1 to the least loaded
  // (all have one; i-a is oldest), c2 to the next least loaded (i-b older than i-c).
  auto s = h.snap();
  EXPECT_EQ(table(s, "rtb-a1").allocated, inst("i-a"));
  EXPECT_EQ(table(s, "rtb-a2").allocated, inst("i-b"));
  EXPECT_EQ(table(s, "rtb-b1").allocated, inst("i-c"));
  EXPECT_EQ(table(s, "rtb-c1").allocated, inst("i-a"));
  EXPECT_EQ(table(s, "rtb-c2").allocated, inst("i-b"));
  EXPECT_THAT(write_tables(a), ElementsAre("rtb-a1", "rtb-c1"));
  h.complete_writes();

  // The others claimed theirs. Then zone b loses its only member: b1 goes to the least
  // loaded survivor, and nothing held by live i-b moves.
  h.observe({{"rtb-a1", "a", inst("i-a")},
             {"rtb-a2", "a", inst("i-b")},
             {"rtb-b1", "b", inst("i-c")},
             {"rtb-c1", "c", inst("i-a")},
             {"rtb-c2", "c", inst("i-b")}});
  h.take();
  a = h.probes("i-c", false, 3);
  EXPECT_EQ(table(h.snap(), "rtb-b1").allocated, inst("i-a"));
  EXPECT_THAT(write_tables(a), ElementsAre("rtb-b1"));
}

// ---- failback -----------------------------------------------------------------------------

TEST(FailoverMachine, FailsBackAfterTheDelayAndNotBefore) {
  Harness h{base_config()};  // failback_delay 30s
  Time ready = h.now();
  h.start({{"rtb-a", "a", inst("i-b")}, {"rtb-b", "b", inst("i-b")}});
  EXPECT_EQ(h.state(), State::Standby);
  h.take();
  h.advance(ready + 30s - 1ms - h.now());
  EXPECT_THAT(only<WriteRoute>(h.take()), IsEmpty());
  h.advance(1ms);
  EXPECT_THAT(write_tables(h.take()), ElementsAre("rtb-a"));
  EXPECT_EQ(h.state(), State::Active);
}

TEST(FailoverMachine, NoFailbackWithPreemptOffButStillTakesFromTheDead) {
  auto cfg = base_config();
  cfg.preempt = false;
  Harness h{cfg};
  h.start({{"rtb-a", "a", inst("i-b")}, {"rtb-b", "b", inst("i-b")}});
  h.advance(10min);
  EXPECT_THAT(only<WriteRoute>(h.take()), IsEmpty());
  h.probes("i-b", false, 3);
  EXPECT_THAT(write_tables(h.take()), ElementsAre("rtb-a", "rtb-b"));
}

// ---- failback that keeps connections (Config::reclaim_wait) --------------------------------

// The home member asks the live peer for its flows and holds the failback until they are
// installed here: the write goes at ReclaimReady, not before.
TEST(FailoverMachine, FailbackFromALivePeerWaitsForItsFlows) {
  auto cfg = base_config();
  cfg.reclaim_wait = 500ms;
  Harness h{cfg};
  Time ready = h.now();
  h.start({{"rtb-a", "a", inst("i-b")}, {"rtb-b", "b", inst("i-b")}});
  h.take();
  h.advance(ready + 30s - h.now());
  auto due = h.take();
  EXPECT_THAT(only<WriteRoute>(due), IsEmpty());
  auto asked = only<Reclaim>(due);
  ASSERT_THAT(asked, SizeIs(1));
  EXPECT_EQ(asked[0].peer, "i-b");
  EXPECT_THAT(asked[0].tables, ElementsAre("rtb-a"));
  h.advance(200ms);
  EXPECT_THAT(h.take(), IsEmpty());  // neither a write nor a second Reclaim
  EXPECT_THAT(write_tables(h.send(ReclaimReady{"i-b", h.now()})), ElementsAre("rtb-a"));
  h.complete_writes();
  EXPECT_EQ(current(h, "rtb-a"), inst("i-a"));
  EXPECT_EQ(h.state(), State::Active);
}

// A peer that never answers (unreachable, older version, flow_drain 0 there) delays the
// failback by the bound only.
TEST(FailoverMachine, FailbackHoldIsBoundedByReclaimWait) {
  auto cfg = base_config();
  cfg.reclaim_wait = 500ms;
  Harness h{cfg};
  Time ready = h.now();
  h.start({{"rtb-a", "a", inst("i-b")}, {"rtb-b", "b", inst("i-b")}});
  h.advance(ready + 30s - h.now());
  EXPECT_THAT(only<Reclaim>(h.take()), SizeIs(1));
  h.advance(499ms);
  EXPECT_THAT(only<WriteRoute>(h.take()), IsEmpty());
  h.advance(1ms);
  EXPECT_THAT(write_tables(h.take()), ElementsAre("rtb-a"));
  // A late ReclaimReady changes nothing; the write is not repeated.
  EXPECT_THAT(h.send(ReclaimReady{"i-b", h.now()}), IsEmpty());
}

// The hold is for failback from a live peer only: routes of a dead peer, blackholes and the
// fallback NAT Gateway have no flows to hand over and are written at once, without a Reclaim.
TEST(FailoverMachine, NoReclaimHoldForTheDeadTheOrphanedOrTheFallback) {
  auto cfg = base_config();
  cfg.reclaim_wait = 500ms;
  cfg.fallback_nat_gateway = "nat-0fb";
  Harness h{cfg};
  Time ready = h.now();
  h.start(
      {{"rtb-a", "a", natgw("nat-0fb")}, {"rtb-b", "b", inst("i-b")}, {"rtb-x", "a", blackhole()}});
  EXPECT_THAT(write_tables(h.take()), ElementsAre("rtb-x"));
  h.advance(ready + 30s - h.now());
  auto a = h.take();
  EXPECT_THAT(only<Reclaim>(a), IsEmpty());
  EXPECT_THAT(write_tables(a), ElementsAre("rtb-a"));
  h.take();
  h.probes("i-b", false, 3);
  auto dead = h.take();
  EXPECT_THAT(only<Reclaim>(dead), IsEmpty());
  EXPECT_THAT(write_tables(dead), ElementsAre("rtb-b"));
}

// Every table due from one peer goes into one Reclaim; one ReclaimReady releases them all.
// Tables of two peers are asked for separately and released separately.
TEST(FailoverMachine, ReclaimAsksEachPeerOnceForAllItsTables) {
  auto cfg = base_config();
  cfg.members.push_back({"i-c", "", "c", 300});
  cfg.reclaim_wait = 500ms;
  Harness h{cfg};
  Time ready = h.now();
  h.start({{"rtb-a1", "a", inst("i-b")},
           {"rtb-a2", "a", inst("i-c"), 5},
           {"rtb-a3", "a", inst("i-b")},
           {"rtb-b", "b", inst("i-b")},
           {"rtb-c", "c", inst("i-c")}});
  h.take();
  h.advance(ready + 30s - h.now());
  auto asked = only<Reclaim>(h.take());
  ASSERT_THAT(asked, SizeIs(2));
  EXPECT_EQ(asked[0].peer, "i-b");
  EXPECT_THAT(asked[0].tables, ElementsAre("rtb-a1", "rtb-a3"));
  EXPECT_EQ(asked[1].peer, "i-c");
  EXPECT_THAT(asked[1].tables, ElementsAre("rtb-a2"));
  EXPECT_THAT(write_tables(h.send(ReclaimReady{"i-c", h.now()})), ElementsAre("rtb-a2"));
  EXPECT_THAT(write_tables(h.send(ReclaimReady{"i-b", h.now()})), ElementsAre("rtb-a1", "rtb-a3"));
}

// A hold that ended (written) starts afresh at the next failback: the peer is asked again.
TEST(FailoverMachine, EachFailbackAsksAgain) {
  auto cfg = base_config();
  cfg.reclaim_wait = 500ms;
  Harness h{cfg};
  Time ready = h.now();
  h.start({{"rtb-a", "a", inst("i-b")}, {"rtb-b", "b", inst("i-b")}});
  h.advance(ready + 30s - h.now());
  h.take();
  h.send(ReclaimReady{"i-b", h.now()});
  h.complete_writes();
  h.take();
  // Someone else (an operator, i-b after a restart) points it at i-b again: damping holds it
  // down first, then the failback is due again and asks again.
  h.advance(3s);
  h.observe({{"rtb-a", "a", inst("i-b")}, {"rtb-b", "b", inst("i-b")}});
  h.advance(10s);
  auto again = only<Reclaim>(h.take());
  ASSERT_THAT(again, SizeIs(1));
  EXPECT_THAT(again[0].tables, ElementsAre("rtb-a"));
}

TEST(FailoverMachine, ReclaimWaitMustNotBeNegative) {
  auto cfg = base_config();
  cfg.reclaim_wait = -1ms;
  EXPECT_THAT(validate(cfg), ElementsAre("reclaim_wait must not be negative"));
}

// ---- fallback and self-health -------------------------------------------------------------

TEST(FailoverMachine, AllMembersDownFallsBackToTheNatGateway) {
  auto cfg = base_config();
  cfg.fallback_nat_gateway = "nat-0fb";
  Harness h{cfg};
  h.start({{"rtb-a", "a", inst("i-a")}, {"rtb-b", "b", inst("i-b"), 10}});
  h.probes("i-b", false, 3);
  h.complete_writes();
  EXPECT_EQ(current(h, "rtb-b"), inst("i-a"));
  h.take();
  auto a = h.send(SelfHealth{false, "egress probe to 198.18.0.1 failed", h.now()});
  EXPECT_EQ(h.state(), State::Failing);
  auto w = only<WriteRoute>(a);
  ASSERT_THAT(w, SizeIs(2));
  EXPECT_EQ(w[0].table, "rtb-b");  // priority 10 first
  EXPECT_EQ(w[0].target, natgw("nat-0fb"));
  EXPECT_EQ(w[1].target, natgw("nat-0fb"));
  h.complete_writes();
  EXPECT_EQ(h.state(), State::Unhealthy);
}

TEST(FailoverMachine, UnhealthyMemberRescuesBlackholesToTheFallbackOnly) {
  auto cfg = base_config();
  cfg.fallback_nat_gateway = "nat-0fb";
  Harness h{cfg};
  h.start({}, /*peers_up=*/false);
  h.send(SelfHealth{false, "egress", h.now()});
  EXPECT_EQ(h.state(), State::Unhealthy);
  h.take();
  auto a = h.observe({{"rtb-b", "b", inst("i-b")}, {"rtb-x", "b", blackhole()}});
  // i-b looks dead, but an unhealthy member's view is not trusted: only the blackhole moves.
  auto w = only<WriteRoute>(a);
  ASSERT_THAT(w, SizeIs(1));
  EXPECT_EQ(w[0].table, "rtb-x");
  EXPECT_EQ(w[0].target, natgw("nat-0fb"));
}

TEST(FailoverMachine, LeavesTheFallbackOnlyAfterBeingStableForTheFailbackDelay) {
  auto cfg = base_config();
  cfg.fallback_nat_gateway = "nat-0fb";
  Harness h{cfg};
  Time ready = h.now();
  h.start({{"rtb-a", "a", natgw("nat-0fb")}});
  h.advance(ready + 30s - 1ms - h.now());
  EXPECT_THAT(only<WriteRoute>(h.take()), IsEmpty());
  h.advance(1ms);
  EXPECT_THAT(write_tables(h.take()), ElementsAre("rtb-a"));
}

TEST(FailoverMachine, SelfHealthFailureHandsRoutesToThePeerAndFailsBackLater) {
  Harness h{base_config()};
  h.start(kHomeTables);
  h.take();
  auto a = h.send(SelfHealth{false, "egress probe failed", h.now()});
  auto n = only<Notify>(a);
  ASSERT_THAT(n, SizeIs(1));
  EXPECT_EQ(n[0].to, State::Failing);
  EXPECT_EQ(n[0].reason, Reason::SelfUnhealthy);
  auto w = only<WriteRoute>(a);
  ASSERT_THAT(w, SizeIs(1));
  EXPECT_EQ(w[0].table, "rtb-a");
  EXPECT_EQ(w[0].target, inst("i-b"));
  h.complete_writes();
  EXPECT_EQ(h.state(), State::Unhealthy);
  h.send(SelfHealth{true, "", h.now()});
  EXPECT_EQ(h.state(), State::Standby);
  h.take();
  h.advance(30s);
  EXPECT_THAT(write_tables(h.take()), ElementsAre("rtb-a"));
}

// ---- damping ------------------------------------------------------------------------------

TEST(FailoverMachine, HoldsDownExponentiallyWhenItsRouteIsRewritten) {
  Harness h{base_config()};  // hold-down 10s, doubling, max 160s
  h.start(kHomeTables);
  h.probes("i-b", false, 3);  // b is down in a's view (a partition)
  h.complete_writes();
  h.take();
  std::vector<Millis> holds;
  for (int round = 0; round < 6; ++round) {
    // b, alive on its side, rewrites rtb-b; a learns it from a Describe.
    h.advance(2s);
    h.observe({{"rtb-a", "a", inst("i-a")}, {"rtb-b", "b", inst("i-b")}});
    auto hold = table(h.snap(), "rtb-b").hold_until;
    ASSERT_TRUE(hold.has_value());
    holds.push_back(std::chrono::duration_cast<Millis>(*hold - h.now()));
    EXPECT_THAT(only<WriteRoute>(h.take()), IsEmpty()) << "round " << round;
    h.advance(*hold - h.now() - 1ms);
    EXPECT_THAT(only<WriteRoute>(h.take()), IsEmpty()) << "round " << round;
    h.advance(1ms);
    EXPECT_THAT(write_tables(h.take()), ElementsAre("rtb-b")) << "round " << round;
    h.complete_writes();
  }
  EXPECT_THAT(holds, ElementsAre(10s, 20s, 40s, 80s, 160s, 160s));
}

TEST(FailoverMachine, HoldDownEndsWhenTheRewriterGoesDown) {
  Harness h{base_config()};
  h.start({{"rtb-a", "a", inst("i-a")}, {"rtb-x", "c", blackhole()}});
  h.complete_writes();  // a took the orphan rtb-x
  h.advance(3s);
  // b (alive) took rtb-x: a backs off.
  h.observe({{"rtb-a", "a", inst("i-a")}, {"rtb-x", "c", inst("i-b")}});
  EXPECT_TRUE(table(h.snap(), "rtb-x").hold_until.has_value());
  h.take();
  auto a = h.probes("i-b", false, 3);  // now b dies: its claim no longer holds a back
  EXPECT_THAT(write_tables(a), ElementsAre("rtb-x"));
}

TEST(FailoverMachine, IgnoresObservationsOlderThanItsOwnWrite) {
  Harness h{base_config()};  // observe_settle 2s
  h.start(kHomeTables);
  h.probes("i-b", false, 3);
  h.complete_writes();
  h.take();
  // A Describe sent 1s after the write still shows the old target (eventual consistency).
  Time sent = h.now() + 1s;
  h.advance(3s);  // the answer arrives later; what counts is when it was sent
  h.send(Harness::observation({{"rtb-a", "a", inst("i-a")}, {"rtb-b", "b", inst("i-b")}}, sent));
  EXPECT_EQ(current(h, "rtb-b"), inst("i-a"));
  EXPECT_FALSE(table(h.snap(), "rtb-b").hold_until.has_value());
  EXPECT_THAT(only<WriteRoute>(h.take()), IsEmpty());
}

// ---- write economy ------------------------------------------------------------------------

TEST(FailoverMachine, NoWriteWhenTheObservedTargetAlreadyMatches) {
  Harness h{base_config()};
  h.start({{"rtb-a", "a", inst("i-a")}, {"rtb-b", "b", inst("i-a")}});
  h.advance(10min);  // Describes keep coming; nothing to write
  for (int i = 0; i < 40; ++i)
    h.observe({{"rtb-a", "a", inst("i-a")}, {"rtb-b", "b", inst("i-a")}});
  h.probes("i-b", false, 3);
  EXPECT_THAT(only<WriteRoute>(h.take()), IsEmpty());
  EXPECT_EQ(h.snap().writes_total, 0u);
}

TEST(FailoverMachine, RereadsRoutesOneSettleTimeAfterASuccessfulWrite) {
  Config c = base_config();
  c.describe_interval = 15s;
  c.observe_settle = 2s;
  Harness h{c};
  h.start(kHomeTables);
  h.advance(15s);  // let the periodic Describe schedule settle
  h.take();
  h.probes("i-b", false, 3);  // takeover write
  ASSERT_THAT(h.in_flight(), SizeIs(1));
  h.take();
  h.complete_writes();
  h.advance(1900ms);
  EXPECT_THAT(only<DescribeRoutes>(h.take()), IsEmpty()) << "re-read before the settle time";
  h.advance(200ms);
  EXPECT_THAT(only<DescribeRoutes>(h.take()), SizeIs(1)) << "no re-read after the write";
}

TEST(FailoverMachine, InFlightWriteIsNotDuplicated) {
  Harness h{base_config()};
  h.start(kHomeTables);
  h.probes("i-b", false, 3);
  EXPECT_THAT(h.in_flight(), SizeIs(1));
  h.take();
  h.advance(20s);  // Describes come back unchanged while the write is still in flight
  h.observe(kHomeTables);
  h.probes("i-b", false, 5);
  EXPECT_THAT(only<WriteRoute>(h.take()), IsEmpty());
  EXPECT_EQ(table(h.snap(), "rtb-b").writes, 1u);
}

TEST(FailoverMachine, TableThatVanishesAndReturnsIsNotWrittenTwice) {
  Harness h{base_config()};
  h.start(kHomeTables);
  h.probes("i-b", false, 3);
  ASSERT_THAT(h.in_flight(), SizeIs(1));
  h.take();
  h.observe({{"rtb-a", "a", inst("i-a")}});  // rtb-b untagged for a moment
  h.observe(kHomeTables);
  EXPECT_THAT(only<WriteRoute>(h.take()), IsEmpty());
  h.complete_writes();
  EXPECT_EQ(current(h, "rtb-b"), inst("i-a"));
}

TEST(FailoverMachine, TokenBucketPacesALargeFailover) {
  Harness h{base_config()};  // 50 burst, 5/s
  std::vector<TableSpec> tables;
  for (int i = 0; i < 200; ++i) {
    char id[16];
    std::snprintf(id, sizeof id, "rtb-%03d", i);
    tables.push_back({id, "b", inst("i-b"), 200 - i});
  }
  h.start(tables);
  h.take();
  auto a = h.probes("i-b", false, 3);
  auto w = only<WriteRoute>(a);
  ASSERT_THAT(w, SizeIs(50));  // the burst, at once, highest priority first
  EXPECT_EQ(w.front().table, "rtb-000");
  EXPECT_EQ(w.back().table, "rtb-049");
  h.take();
  h.complete_writes();
  h.advance(10s);  // 5 a second
  w = only<WriteRoute>(h.take());
  ASSERT_THAT(w, SizeIs(50));
  EXPECT_EQ(w.front().table, "rtb-050");
  h.complete_writes();
  h.advance(20s);
  EXPECT_EQ(h.snap().writes_total, 200u);
}

TEST(FailoverMachine, ThrottledWritesAreRetriedInPriorityOrder) {
  Harness h{base_config()};
  h.start({{"rtb-a", "a", inst("i-a")},
           {"rtb-b1", "b", inst("i-b"), 1},
           {"rtb-b2", "b", inst("i-b"), 5},
           {"rtb-b3", "b", inst("i-b"), 3}});
  h.take();
  auto a = h.probes("i-b", false, 3);
  EXPECT_THAT(write_tables(a), ElementsAre("rtb-b2", "rtb-b3", "rtb-b1"));
  h.take();
  h.complete_writes(Ec2Outcome::Throttled, "RequestLimitExceeded");
  EXPECT_EQ(h.snap().write_tokens, 0.0);
  EXPECT_THAT(only<WriteRoute>(h.take()), IsEmpty());
  h.advance(199ms);
  EXPECT_THAT(only<WriteRoute>(h.take()), IsEmpty());
  h.advance(2s);
  // One token per 200 ms: the retries trickle out, in priority order, one write per table.
  EXPECT_THAT(write_tables(h.take()), ElementsAre("rtb-b2", "rtb-b3", "rtb-b1"));
  h.complete_writes();
  EXPECT_EQ(current(h, "rtb-b1"), inst("i-a"));
  EXPECT_EQ(table(h.snap(), "rtb-b1").routes[0].attempts, 0);
}

TEST(FailoverMachine, RetryableErrorsBackOffExponentially) {
  Harness h{base_config()};  // retry 200ms doubling to 10s
  h.start(kHomeTables);
  h.probes("i-b", false, 3);
  h.take();
  std::vector<Millis> gaps;
  Time last = h.now();
  for (int i = 0; i < 8; ++i) {
    h.complete_writes(Ec2Outcome::Retryable, "InternalError");
    last = h.now();
    while (h.in_flight().empty()) h.advance(1ms);
    gaps.push_back(std::chrono::duration_cast<Millis>(h.now() - last));
  }
  EXPECT_THAT(gaps, ElementsAre(200ms, 400ms, 800ms, 1600ms, 3200ms, 6400ms, 10s, 10s));
}

TEST(FailoverMachine, SwitchesToCreateRouteWhenReplaceFindsNoRoute) {
  Harness h{base_config()};
  h.start(kHomeTables);
  h.probes("i-b", false, 3);
  h.complete_writes(Ec2Outcome::Fatal, "InvalidRoute.NotFound");
  h.take();
  h.advance(1s);
  auto w = only<WriteRoute>(h.take());
  ASSERT_THAT(w, SizeIs(1));
  EXPECT_EQ(w[0].verb, RouteVerb::Create);
}

TEST(FailoverMachine, StaleCompletionIsRecordedAndIgnored) {
  Harness h{base_config()};
  h.start(kHomeTables);
  h.probes("i-b", false, 3);
  ASSERT_THAT(h.in_flight(), SizeIs(1));
  auto old = h.in_flight()[0];
  h.forget_in_flight();
  auto cfg = base_config();
  cfg.failback_delay = 60s;
  h.reload(cfg);
  EXPECT_EQ(h.snap().epoch, old.epoch + 1);
  h.take();
  auto a = h.send(Ec2Done{old.op, old.epoch, Ec2Outcome::Ok, "", h.now()});
  EXPECT_EQ(h.snap().stale_completions, 1u);
  EXPECT_EQ(current(h, "rtb-b"), inst("i-b")) << "a stale outcome is not believed";
  EXPECT_THAT(only<WriteRoute>(a), IsEmpty()) << "waits for a Describe instead of rewriting";
  EXPECT_THAT(only<DescribeRoutes>(a), SizeIs(1));
  a = h.observe({{"rtb-a", "a", inst("i-a")}, {"rtb-b", "b", inst("i-a")}});
  EXPECT_THAT(only<WriteRoute>(a), IsEmpty());
  EXPECT_EQ(current(h, "rtb-b"), inst("i-a"));
  h.send(Ec2Done{424242, old.epoch, Ec2Outcome::Ok, "", h.now()});  // unknown op
  EXPECT_EQ(h.snap().stale_completions, 2u);
}

// ---- planned handover ---------------------------------------------------------------------

TEST(FailoverMachine, DrainHandsRoutesToThePeerThenIsDrained) {
  Harness h{base_config()};
  h.start(kHomeTables);
  h.take();
  auto a = h.send(Drain{true, h.now()});
  EXPECT_EQ(h.state(), State::Draining);
  auto w = only<WriteRoute>(a);
  ASSERT_THAT(w, SizeIs(1));
  EXPECT_EQ(w[0].target, inst("i-b"));
  h.complete_writes();
  EXPECT_EQ(h.state(), State::Drained);
  EXPECT_THAT(only<ExitReady>(h.take()), IsEmpty());
  h.advance(5min);
  EXPECT_THAT(only<WriteRoute>(h.take()), IsEmpty()) << "a drained member claims nothing";
  h.send(Drain{false, h.now()});
  EXPECT_EQ(h.state(), State::Standby);
  h.advance(30s);
  EXPECT_THAT(write_tables(h.take()), ElementsAre("rtb-a"));
}

void expect_handover_before_exit(const std::function<Event(Time)>& make, Reason why) {
  Harness h{base_config()};
  h.start({{"rtb-a", "a", inst("i-a")}, {"rtb-b", "b", inst("i-b")}, {"rtb-c", "c", inst("i-a")}});
  h.take();
  h.send(make(h.now()));
  EXPECT_EQ(h.state(), State::Leaving);
  auto log = h.take();
  auto n = only<Notify>(log);
  ASSERT_THAT(n, SizeIs(1));
  EXPECT_EQ(n[0].reason, why);
  EXPECT_THAT(write_tables(log), ElementsAre("rtb-a", "rtb-c"));
  for (const auto& w : only<WriteRoute>(log)) EXPECT_EQ(w.target, inst("i-b"));
  EXPECT_EQ(index_of<ExitReady>(log), -1) << "exit-ready before the peer writes completed";
  h.complete_writes();
  log = h.take();
  auto exit = only<ExitReady>(log);
  ASSERT_THAT(exit, SizeIs(1));
  EXPECT_EQ(exit[0].reason, Reason::HandoverComplete);
  EXPECT_EQ(h.state(), State::ExitReady);
}

TEST(FailoverMachine, ShutdownHandsOverBeforeExitReady) {
  expect_handover_before_exit([](Time t) { return Shutdown{t}; }, Reason::ShutdownRequested);
}

TEST(FailoverMachine, TerminationNoticeHandsOverBeforeExitReady) {
  expect_handover_before_exit(
      [](Time t) {
        return TerminationNotice{TerminationKind::Spot, t};
      },
      Reason::TerminationNotice);
}

TEST(FailoverMachine, HandoverIsBoundedByItsDeadline) {
  Harness h{base_config()};  // handover_deadline 10s
  h.start(kHomeTables);
  h.take();
  h.send(TerminationNotice{TerminationKind::Asg, h.now()});
  EXPECT_THAT(only<WriteRoute>(h.take()), SizeIs(1));
  h.advance(10s - 1ms);  // the write never completes
  EXPECT_THAT(only<ExitReady>(h.take()), IsEmpty());
  h.advance(1ms);
  auto exit = only<ExitReady>(h.take());
  ASSERT_THAT(exit, SizeIs(1));
  EXPECT_EQ(exit[0].reason, Reason::HandoverTimeout);
}

TEST(FailoverMachine, HandoverWithNoHealthyPeerGoesToTheFallback) {
  auto cfg = base_config();
  cfg.fallback_nat_gateway = "nat-0fb";
  Harness h{cfg};
  h.start(kHomeTables);
  h.probes("i-b", false, 3);
  h.complete_writes();
  h.take();
  auto a = h.send(Shutdown{h.now()});
  auto w = only<WriteRoute>(a);
  ASSERT_THAT(w, SizeIs(2));
  EXPECT_EQ(w[0].target, natgw("nat-0fb"));
  EXPECT_EQ(w[1].target, natgw("nat-0fb"));
}

TEST(FailoverMachine, ShutdownWithNothingToHandOverIsExitReadyAtOnce) {
  Harness h{base_config()};
  h.start({{"rtb-b", "b", inst("i-b")}});
  auto a = h.send(Shutdown{h.now()});
  EXPECT_THAT(only<ExitReady>(a), SizeIs(1));
  EXPECT_EQ(h.state(), State::ExitReady);
}

TEST(FailoverMachine, ShutdownDuringADrainLeavesAndDrainDuringShutdownIsIgnored) {
  Harness h{base_config()};
  h.start(kHomeTables);
  h.send(Drain{true, h.now()});
  EXPECT_EQ(h.state(), State::Draining);
  h.send(Shutdown{h.now()});
  EXPECT_EQ(h.state(), State::Leaving);
  h.send(Drain{false, h.now()});
  h.send(Drain{true, h.now()});
  EXPECT_EQ(h.state(), State::Leaving);
  EXPECT_EQ(h.in_flight().size(), 1u) << "the handover write is not repeated";
  h.complete_writes();
  EXPECT_EQ(h.state(), State::ExitReady);
}

TEST(FailoverMachine, UndrainWhileDrainingReturnsToService) {
  Harness h{base_config()};
  h.start(kHomeTables);
  h.send(Drain{true, h.now()});
  h.send(Drain{false, h.now()});
  EXPECT_EQ(h.state(), State::Active) << "rtb-a is still ours until the handover lands";
  h.complete_writes();  // the handover write lands after all
  EXPECT_EQ(h.state(), State::Standby);
  EXPECT_EQ(current(h, "rtb-a"), inst("i-b"));
}

TEST(FailoverMachine, SelfHealthFailureDuringADrainStillEndsDrained) {
  Harness h{base_config()};
  h.start(kHomeTables);
  h.send(SelfHealth{false, "egress", h.now()});
  EXPECT_EQ(h.state(), State::Failing);
  h.send(Drain{true, h.now()});
  EXPECT_EQ(h.state(), State::Draining);
  h.complete_writes();
  EXPECT_EQ(h.state(), State::Drained);
  h.send(Drain{false, h.now()});
  EXPECT_EQ(h.state(), State::Unhealthy) << "undrained, but its data plane is still down";
}

// ---- reload -------------------------------------------------------------------------------

// Drives a fresh harness into `target`, leaving any handover writes in flight.
void drive_to(Harness& h, State target) {
  if (target == State::Starting) {
    h.send(Tick{h.now()});
    return;
  }
  if (target == State::Standby) {
    h.start({{"rtb-b", "b", inst("i-b")}});
    return;
  }
  h.start(kHomeTables);
  switch (target) {
    case State::Failing:
    case State::Unhealthy:
      h.send(SelfHealth{false, "egress", h.now()});
      break;
    case State::Draining:
    case State::Drained:
      h.send(Drain{true, h.now()});
      break;
    case State::Leaving:
    case State::ExitReady:
      h.send(Shutdown{h.now()});
      break;
    default:
      break;
  }
  if (target == State::Unhealthy || target == State::Drained || target == State::ExitReady) {
    h.complete_writes();
  }
}

class ReloadIn : public ::testing::TestWithParam<State> {};

TEST_P(ReloadIn, KeepsStateAppliesNewThresholdsAndWritesNothing) {
  Harness h{base_config()};
  drive_to(h, GetParam());
  ASSERT_EQ(h.state(), GetParam());
  Epoch before = h.snap().epoch;
  h.take();
  auto cfg = base_config();
  cfg.peer_thresholds.fall = 1;
  h.reload(cfg);
  auto log = h.take();
  EXPECT_EQ(h.state(), GetParam());
  EXPECT_EQ(h.snap().epoch, before + 1);
  EXPECT_THAT(only<WriteRoute>(log), IsEmpty());
  EXPECT_THAT(only<ApplyNat>(log), SizeIs(GetParam() == State::ExitReady ? 0 : 1));
  if (GetParam() == State::Active || GetParam() == State::Standby) {
    // fall=1 is in force: one failed probe takes b's table.
    EXPECT_THAT(write_tables(h.probes("i-b", false, 1)), ElementsAre("rtb-b"));
  }
  // Completions of writes requested before the reload are stale.
  std::uint64_t in_flight = h.in_flight().size();
  h.complete_writes();
  if (GetParam() == State::Active || GetParam() == State::Standby) in_flight = 0;
  EXPECT_EQ(h.snap().stale_completions, in_flight);
}

INSTANTIATE_TEST_SUITE_P(EveryState, ReloadIn,
                         ::testing::Values(State::Starting, State::Standby, State::Active,
                                           State::Failing, State::Unhealthy, State::Draining,
                                           State::Drained, State::Leaving, State::ExitReady),
                         [](const ::testing::TestParamInfo<State>& p) {
                           std::string name;
                           for (char c : std::string(to_string(p.param))) {
                             if (c != '-') name += c;
                           }
                           return name;
                         });

TEST(FailoverMachine, ReloadAddingAMemberReallocates) {
  Harness h{base_config()};
  h.start({{"rtb-a", "a", inst("i-a")}, {"rtb-c", "c", inst("i-a")}});
  auto cfg = base_config();
  cfg.members.push_back({"i-c", "", "c", 300});
  h.reload(cfg);
  for (int i = 0; i < 5; ++i) {
    h.advance(200ms);
    h.send(ProbeResult{"i-c", ProbeKind::Icmp, true, h.now()});
  }
  EXPECT_EQ(table(h.snap(), "rtb-c").allocated, inst("i-c"));
  EXPECT_THAT(only<WriteRoute>(h.take()), IsEmpty()) << "i-c claims it; a does not push";
}

// ---- recovery -----------------------------------------------------------------------------

TEST(FailoverMachine, RecoversADeadPeerAfterTheDelayWithCooldown) {
  auto cfg = base_config();
  cfg.recovery = RecoveryAction::StopStart;
  cfg.recovery_after = 60s;
  cfg.recovery_cooldown = 10min;
  cfg.egress_check = true;
  Harness h{cfg};
  h.start(kHomeTables);
  // Its only peer failing is every peer failing at once: the egress check, passing from
  // before, clears the self-suspicion (recovery_test.cc has the cases).
  SelfHealth egress_up;
  egress_up.egress_confirmed = true;
  egress_up.at = h.now();
  h.send(egress_up);
  h.probes("i-b", false, 3);
  h.complete_writes();
  h.take();
  h.advance(60s - 1ms);
  EXPECT_THAT(only<RecoverPeer>(h.take()), IsEmpty());
  h.advance(1ms);
  auto r = only<RecoverPeer>(h.take());
  ASSERT_THAT(r, SizeIs(1));
  EXPECT_EQ(r[0].peer, "i-b");
  EXPECT_EQ(r[0].what, RecoveryAction::StopStart);
  h.advance(10min - 1ms);
  EXPECT_THAT(only<RecoverPeer>(h.take()), IsEmpty());
  h.advance(1ms);
  EXPECT_THAT(only<RecoverPeer>(h.take()), SizeIs(1));
}

TEST(FailoverMachine, OnlyTheOlderMemberOfAPairMayRecoverTheOther) {
  auto cfg = base_config("i-b");  // i-b launched after i-a
  cfg.recovery = RecoveryAction::Reboot;
  Harness h{cfg};
  h.start(kHomeTables);
  h.probes("i-a", false, 3);
  h.advance(30min);
  EXPECT_THAT(only<RecoverPeer>(h.take()), IsEmpty());
}

// The daemon hands the engine the EC2 client's buckets: the engine then paces from those
// (one set of buckets per process) and keeps none of its own.
class FakeBudget final : public WriteBudget {
 public:
  std::optional<Time> take(WriteApi api, Time now) override {
    ++asked[static_cast<int>(api)];
    if (left[static_cast<int>(api)] <= 0) return now + 1s;
    --left[static_cast<int>(api)];
    return std::nullopt;
  }
  void drain(WriteApi api, Time /*now*/) override { left[static_cast<int>(api)] = 0; }
  double tokens(WriteApi api, Time /*now*/) const override { return left[static_cast<int>(api)]; }
  int left[3] = {0, 2, 0};
  int asked[3] = {0, 0, 0};
};

TEST(FailoverMachine, WritesTakeTheirTokensFromTheGivenBudget) {
  Harness h{base_config()};  // its own buckets (50 burst) would let all four go at once
  auto budget = std::make_shared<FakeBudget>();
  h.m().use_write_budget(budget);
  h.start({{"rtb-b1", "b", inst("i-b"), 4},
           {"rtb-b2", "b", inst("i-b"), 3},
           {"rtb-b3", "b", inst("i-b"), 2},
           {"rtb-b4", "b", inst("i-b"), 1}});
  h.take();
  auto a = h.probes("i-b", false, 3);
  EXPECT_THAT(write_tables(a), ElementsAre("rtb-b1", "rtb-b2"));
  EXPECT_GE(budget->asked[static_cast<int>(WriteApi::ReplaceRoute)], 3);
  EXPECT_EQ(budget->asked[static_cast<int>(WriteApi::CreateRoute)], 0);
  EXPECT_EQ(h.snap().write_tokens, 0.0);
  h.take();
  h.complete_writes();
  budget->left[static_cast<int>(WriteApi::ReplaceRoute)] = 5;
  h.advance(1s);
  EXPECT_THAT(write_tables(h.take()), ElementsAre("rtb-b3", "rtb-b4"));
}

}  // namespace
}  // namespace hanat::engine::testing
