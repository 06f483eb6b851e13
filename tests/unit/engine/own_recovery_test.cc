// SPDX-License-Identifier: GPL-2.0-or-later
// Own recovery (machine.h): a member whose network stalled saw every peer fall silent; when
// it works again it must not take the tables of peers that were alive all along.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "core/engine/machine.h"
#include "tests/unit/engine/harness.h"

namespace hanat::engine::testing {
namespace {

using ::testing::IsEmpty;
using ::testing::IsSubsetOf;
using ::testing::Not;
using ::testing::UnorderedElementsAre;

// The lab's two_per_zone group: two NATs in zone a (i-a is this member), one in zone b.
Config three_members() {
  Config c = base_config("i-a");
  c.members = {{"i-a", "", "a", 100}, {"i-b", "", "a", 200}, {"i-c", "", "b", 300}};
  return c;
}

const std::vector<TableSpec> kTables{{"rtb-a1", "a", inst("i-a")},
                                     {"rtb-a2", "a", inst("i-b")},
                                     {"rtb-b1", "b", inst("i-c")},
                                     {"rtb-b2", "b", inst("i-c")}};

Health health_of(const Snapshot& s, const std::string& id) {
  for (const auto& m : s.members) {
    if (m.instance_id == id) return m.health;
  }
  return Health::Unknown;
}

// One probe round every 200 ms to each listed peer, all with the same result.
void rounds(Harness& h, const std::vector<std::string>& peers, bool ok, int n) {
  for (int i = 0; i < n; ++i) {
    h.advance(200ms);
    for (const auto& p : peers) h.send(ProbeResult{p, ProbeKind::Icmp, ok, h.now()});
  }
}

// Writes among `actions` that point a table at this member (i-a).
std::vector<std::string> claims(const std::vector<Action>& actions) {
  std::vector<std::string> out;
  for (const auto& w : only<WriteRoute>(actions)) {
    if (w.target == inst("i-a")) out.push_back(w.table);
  }
  return out;
}

// i-a's frames are all dropped, carrier up: its peers fall silent, the takeover writes it
// sends cannot get out and time out, then its egress check fails. Returns with i-a
// Unhealthy and its peers DOWN in its view.
void stall(Harness& h) {
  h.start(kTables);
  ASSERT_EQ(h.state(), State::Active);
  h.take();
  rounds(h, {"i-b", "i-c"}, false, 3);
  ASSERT_EQ(health_of(h.snap(), "i-b"), Health::Down);
  ASSERT_EQ(health_of(h.snap(), "i-c"), Health::Down);
  // What this member does while stalled (it takes the peers' tables: nothing tells it yet
  // that the silence is its own) goes nowhere: every write times out.
  EXPECT_THAT(claims(h.take()), UnorderedElementsAre("rtb-a2", "rtb-b1", "rtb-b2"));
  h.advance(3s);
  h.complete_writes(Ec2Outcome::Retryable, "timeout");
  h.send(SelfHealth{false, "egress self-check failed: 0 of 1 egress targets answered", h.now()});
  h.complete_writes(Ec2Outcome::Retryable, "timeout");
  ASSERT_NE(h.state(), State::Active);
  ASSERT_NE(h.state(), State::Standby);
}

TEST(OwnRecovery, PeersSeenFallingWhileThisMemberWasStalledAreNotTakenWhenItReturns) {
  Harness h{three_members()};
  stall(h);
  h.take();
  // The network returns: the egress check passes again within a round, while the peers have
  // answered only twice (rise = 5): in this member's view they would still be DOWN.
  // (The first answer already shows every peer fell silent with this member's own path:
  // both are judged afresh then, machine.h "Self-suspicion"; the return of its own data
  // plane would do it otherwise.)
  rounds(h, {"i-b", "i-c"}, true, 2);
  h.send(SelfHealth{true, "", h.now()});
  auto back = h.take();
  EXPECT_TRUE(h.state() == State::Standby || h.state() == State::Active);
  EXPECT_EQ(health_of(h.snap(), "i-b"), Health::Unknown);
  EXPECT_EQ(health_of(h.snap(), "i-c"), Health::Unknown);
  auto changed = only<PeerChanged>(back);
  ASSERT_EQ(changed.size(), 2u);
  EXPECT_EQ(changed[0].from, Health::Down);
  EXPECT_EQ(changed[0].to, Health::Unknown);
  // The peers answer on: UP again, and their tables were never touched.
  rounds(h, {"i-b", "i-c"}, true, 5);
  h.advance(10s);
  EXPECT_EQ(health_of(h.snap(), "i-b"), Health::Up);
  EXPECT_EQ(health_of(h.snap(), "i-c"), Health::Up);
  EXPECT_THAT(claims(h.take()), IsEmpty());
}

TEST(OwnRecovery, APeerThatStaysSilentAfterTheReturnIsTakenOnFreshProbes) {
  Harness h{three_members()};
  stall(h);
  h.take();
  h.send(SelfHealth{true, "", h.now()});
  EXPECT_TRUE(h.state() == State::Standby || h.state() == State::Active);
  // i-b answers again; i-c really died meanwhile: its tables are taken once `fall` probes
  // sent after the return have failed, not before.
  for (int i = 0; i < 2; ++i) {
    h.advance(200ms);
    h.send(ProbeResult{"i-b", ProbeKind::Icmp, true, h.now()});
    h.send(ProbeResult{"i-c", ProbeKind::Icmp, false, h.now()});
  }
  EXPECT_THAT(claims(h.take()), IsEmpty());
  h.advance(200ms);
  h.send(ProbeResult{"i-b", ProbeKind::Icmp, true, h.now()});
  h.send(ProbeResult{"i-c", ProbeKind::Icmp, false, h.now()});
  EXPECT_EQ(health_of(h.snap(), "i-c"), Health::Down);
  // Zone b's tables are shared by the two healthy members of zone a (fewest tables first).
  auto taken = claims(h.take());
  EXPECT_THAT(taken, Not(IsEmpty()));
  EXPECT_THAT(taken, IsSubsetOf({"rtb-b1", "rtb-b2"}));
}

TEST(OwnRecovery, ClaimsInFlightAreAbandonedWhenTheOwnDataPlaneFails) {
  Harness h{three_members()};
  h.start(kTables);
  h.take();
  rounds(h, {"i-b", "i-c"}, false, 3);
  EXPECT_THAT(claims(h.take()), UnorderedElementsAre("rtb-a2", "rtb-b1", "rtb-b2"));
  // The writes hang (the stall); the egress check fails: each is abandoned, so that none
  // reaches EC2 when the network returns.
  auto failed = h.send(SelfHealth{false, "egress self-check failed", h.now()});
  std::vector<std::string> abandoned;
  for (const auto& a : only<AbandonWrite>(failed)) abandoned.push_back(a.table);
  EXPECT_THAT(abandoned, UnorderedElementsAre("rtb-a2", "rtb-b1", "rtb-b2"));
  for (const auto& w : h.in_flight()) {
    bool found = false;
    for (const auto& a : only<AbandonWrite>(failed)) found = found || a.op == w.op;
    EXPECT_TRUE(found) << "write " << w.op << " to " << w.table << " not abandoned";
  }
  // A completion that raced the cancel is stale: it changes nothing.
  const auto stale_before = h.snap().stale_completions;
  h.complete_writes(Ec2Outcome::Retryable, "timeout");
  EXPECT_EQ(h.snap().stale_completions, stale_before + 3);
  h.advance(10s);
  EXPECT_THAT(claims(h.take()), IsEmpty());
}

TEST(OwnRecovery, HandoverWritesAreNotAbandoned) {
  // Only claims: a write pointing this member's own table at a peer is what a failing
  // member must still send (DESIGN rule 6).
  Harness h{three_members()};
  h.start(kTables);
  h.take();
  auto failed = h.send(SelfHealth{false, "egress self-check failed", h.now()});
  EXPECT_THAT(only<AbandonWrite>(failed), IsEmpty());
  EXPECT_THAT(write_tables(failed), UnorderedElementsAre("rtb-a1"));
}

TEST(OwnRecovery, APeerHeardWhileThisMemberFailedStaysDown) {
  // Its egress fails while i-b still answers: its probes work, so i-c's silence is real, and
  // i-c is taken as soon as this member serves again.
  Harness h{three_members()};
  h.start(kTables);
  h.take();
  h.send(SelfHealth{false, "egress self-check failed", h.now()});
  h.complete_writes();
  for (int i = 0; i < 3; ++i) {
    h.advance(200ms);
    h.send(ProbeResult{"i-b", ProbeKind::Icmp, true, h.now()});
    h.send(ProbeResult{"i-c", ProbeKind::Icmp, false, h.now()});
  }
  ASSERT_EQ(health_of(h.snap(), "i-c"), Health::Down);
  h.take();
  auto back = h.send(SelfHealth{true, "", h.now()});
  EXPECT_THAT(only<PeerChanged>(back), IsEmpty());
  EXPECT_EQ(health_of(h.snap(), "i-c"), Health::Down);
}

TEST(OwnRecovery, WithoutTheOwnFailureADownPeerIsTakenAsBefore) {
  // Control: the rule is tied to this member's own recovery. A member that stayed healthy
  // takes a silent peer's tables as soon as it falls.
  Harness h{three_members()};
  h.start(kTables);
  h.take();
  rounds(h, {"i-c"}, false, 3);
  auto taken = claims(h.take());
  EXPECT_THAT(taken, Not(IsEmpty()));
  EXPECT_THAT(taken, IsSubsetOf({"rtb-b1", "rtb-b2"}));
}

}  // namespace
}  // namespace hanat::engine::testing
