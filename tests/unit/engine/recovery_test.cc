// SPDX-License-Identifier: GPL-2.0-or-later
// Safe recovery (DESIGN rules 8 and 10, machine.h "Recovery" and "Self-suspicion"): only a
// peer silent on every probe kind and path is fenced, only by a member whose own checks
// pass; a member that sees every peer fall silent at once suspects itself first; a peer
// whose hanatd is away while its host answers keeps its routes, is never fenced and is
// allocated nothing.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>

#include "tests/unit/engine/harness.h"

namespace hanat::engine::testing {
namespace {

using ::testing::IsEmpty;
using ::testing::SizeIs;

const std::vector<TableSpec> kTwo{{"rtb-a", "a", inst("i-a")}, {"rtb-b", "b", inst("i-b")}};
const std::vector<TableSpec> kThree{
    {"rtb-a", "a", inst("i-a")}, {"rtb-b", "b", inst("i-b")}, {"rtb-c", "c", inst("i-c")}};

// i-a (self, oldest), i-b and i-c, probed with ICMP and the agent; recovery after 60 s,
// cool-down 10 min.
Config three(bool agent = true) {
  Config c = base_config();
  c.members = {{"i-a", "", "a", 100}, {"i-b", "", "b", 200}, {"i-c", "", "c", 300}};
  c.probe_kinds =
      agent ? std::vector{ProbeKind::Icmp, ProbeKind::Agent} : std::vector{ProbeKind::Icmp};
  c.recovery = RecoveryAction::StopStart;
  c.recovery_after = 60s;
  c.recovery_cooldown = 10min;
  c.suspect_window = 1s;
  return c;
}

Config two() {
  Config c = three(false);
  c.members = {{"i-a", "", "a", 100}, {"i-b", "", "b", 200}};
  return c;
}

const TableSnapshot& table(const Snapshot& s, const std::string& id) {
  for (const auto& t : s.tables) {
    if (t.id == id) return t;
  }
  static TableSnapshot none;
  ADD_FAILURE() << "no table " << id;
  return none;
}

const MemberSnapshot& member(const Snapshot& s, const std::string& id) {
  for (const auto& m : s.members) {
    if (m.instance_id == id) return m;
  }
  static MemberSnapshot none;
  ADD_FAILURE() << "no member " << id;
  return none;
}

// One probe round every 200 ms: for every peer, one result per kind as `answer` says.
struct Answer {
  bool icmp = true;
  bool agent = true;
  bool says_down = false;  // the agent answers "down"/"draining"
};
using Answers = std::map<std::string, Answer>;

void rounds(Harness& h, const Answers& a, int n) {
  for (int i = 0; i < n; ++i) {
    h.advance(200ms);
    for (const auto& [peer, ans] : a) {
      h.send(ProbeResult{peer, ProbeKind::Icmp, ans.icmp, h.now()});
      if (std::find(h.cfg().probe_kinds.begin(), h.cfg().probe_kinds.end(), ProbeKind::Agent) !=
          h.cfg().probe_kinds.end()) {
        h.send(ProbeResult{peer, ProbeKind::Agent, ans.agent && !ans.says_down, h.now(),
                           ans.says_down});
      }
    }
  }
}

// Runs `d` of probe rounds; returns the RecoverPeer actions emitted meanwhile.
std::vector<RecoverPeer> run(Harness& h, const Answers& a, std::chrono::seconds d) {
  h.take();
  rounds(h, a, static_cast<int>(d / 200ms));
  return only<RecoverPeer>(h.take());
}

// Started with every peer up on every kind, NAT applied, tables read.
void started(Harness& h, const std::vector<TableSpec>& tables, const Answers& up) {
  h.start(tables);
  rounds(h, up, 6);
  h.take();
}

SelfHealth self(bool egress_confirmed, bool link_ok, Time at) {
  SelfHealth s;
  s.ok = true;
  s.egress_confirmed = egress_confirmed;
  s.link_ok = link_ok;
  s.at = at;
  return s;
}

const Answer kUp{};
const Answer kSilent{false, false, false};

TEST(Recovery, FencesAPeerSilentOnEveryKindOnce) {
  Harness h{three()};
  started(h, kThree, {{"i-b", kUp}, {"i-c", kUp}});
  auto r = run(h, {{"i-b", kSilent}, {"i-c", kUp}}, 59s);
  EXPECT_THAT(r, IsEmpty());
  EXPECT_TRUE(member(h.snap(), "i-b").silent);
  EXPECT_FALSE(h.snap().suspect) << "i-c still answers: this member's path works";
  r = run(h, {{"i-b", kSilent}, {"i-c", kUp}}, 2s);
  ASSERT_THAT(r, SizeIs(1));
  EXPECT_EQ(r[0].peer, "i-b");
  EXPECT_EQ(r[0].what, RecoveryAction::StopStart);
  EXPECT_TRUE(member(h.snap(), "i-b").last_recovery.has_value());
  EXPECT_THAT(run(h, {{"i-b", kSilent}, {"i-c", kUp}}, 5min), IsEmpty()) << "cool-down";
}

TEST(Recovery, NeverFencesAPeerWhoseAgentAnswersDraining) {
  Harness h{three()};
  started(h, kThree, {{"i-b", kUp}, {"i-c", kUp}});
  // Even with ICMP lost too: the agent's "draining" is an answer.
  Answer draining{false, true, true};
  auto r = run(h, {{"i-b", draining}, {"i-c", kUp}}, 30min);
  EXPECT_THAT(r, IsEmpty());
  EXPECT_EQ(member(h.snap(), "i-b").health, Health::Down) << "its routes are handed over";
  EXPECT_FALSE(member(h.snap(), "i-b").silent);
}

TEST(Recovery, NeverFencesAPeerWhoseHanatdStoppedWhileItsHostAnswers) {
  Harness h{three()};
  started(h, kThree, {{"i-b", kUp}, {"i-c", kUp}});
  // hanatd on i-b hands over (agent: draining), exits (agent port refused); ICMP answers.
  EXPECT_THAT(run(h, {{"i-b", Answer{true, true, true}}, {"i-c", kUp}}, 2s), IsEmpty());
  auto r = run(h, {{"i-b", Answer{true, false, false}}, {"i-c", kUp}}, 30min);
  EXPECT_THAT(r, IsEmpty());
  EXPECT_FALSE(member(h.snap(), "i-b").silent);
}

TEST(Recovery, APeerHeardOnceIsSilentAgainOnlyAfterFallOnEveryKind) {
  Harness h{three()};
  started(h, kThree, {{"i-b", kUp}, {"i-c", kUp}});
  EXPECT_THAT(run(h, {{"i-b", kSilent}, {"i-c", kUp}}, 50s), IsEmpty());
  // One ICMP answer: alive; the 60 s start again from its next silence.
  h.advance(200ms);
  h.send(ProbeResult{"i-b", ProbeKind::Icmp, true, h.now()});
  EXPECT_FALSE(member(h.snap(), "i-b").silent);
  EXPECT_THAT(run(h, {{"i-b", kSilent}, {"i-c", kUp}}, 59s), IsEmpty());
  EXPECT_THAT(run(h, {{"i-b", kSilent}, {"i-c", kUp}}, 2s), SizeIs(1));
}

TEST(Recovery, NoneWhileTheOwnLinkIsDownOrTheOwnEgressFailed) {
  Harness h{three()};
  started(h, kThree, {{"i-b", kUp}, {"i-c", kUp}});
  h.send(self(false, false, h.now()));
  EXPECT_THAT(run(h, {{"i-b", kSilent}, {"i-c", kUp}}, 3min), IsEmpty());
  // Link back, but the egress check failed: this member hands its routes away.
  h.send(SelfHealth{false, "egress self-check failed", h.now(), false, true});
  EXPECT_THAT(run(h, {{"i-b", kSilent}, {"i-c", kUp}}, 3min), IsEmpty());
  // Healthy again: i-b has been silent far longer than recovery_after.
  h.take();
  h.send(self(false, true, h.now()));
  auto r = only<RecoverPeer>(h.take());
  EXPECT_THAT(r, SizeIs(1));
  EXPECT_THAT(run(h, {{"i-b", kSilent}, {"i-c", kUp}}, 2min), IsEmpty());
}

TEST(Recovery, CooldownSurvivesARestartThroughPastRecovery) {
  Harness h{three()};
  started(h, kThree, {{"i-b", kUp}, {"i-c", kUp}});
  h.send(PastRecovery{"i-b", h.now() - 2min});  // read back from the state directory
  EXPECT_TRUE(member(h.snap(), "i-b").last_recovery.has_value());
  // Silent for 60 s at +61 s, but the cool-down (10 min from -2 min) ends at +8 min.
  EXPECT_THAT(run(h, {{"i-b", kSilent}, {"i-c", kUp}}, 7min + 58s), IsEmpty());
  EXPECT_THAT(run(h, {{"i-b", kSilent}, {"i-c", kUp}}, 4s), SizeIs(1));
}

// ---- self-suspicion -----------------------------------------------------------------------

TEST(SelfSuspicion, AllPeersSilentAtOnceFenceNobodyWithoutAnEgressCheck) {
  Harness h{three()};
  started(h, kThree, {{"i-b", kUp}, {"i-c", kUp}});
  auto r = run(h, {{"i-b", kSilent}, {"i-c", kSilent}}, 30min);
  EXPECT_THAT(r, IsEmpty());
  EXPECT_TRUE(h.snap().suspect);
  EXPECT_FALSE(h.snap().self_confirmed);
}

TEST(SelfSuspicion, PeersSilentAtDifferentTimesAreNotSuspicious) {
  Harness h{three()};
  started(h, kThree, {{"i-b", kUp}, {"i-c", kUp}});
  EXPECT_THAT(run(h, {{"i-b", kSilent}, {"i-c", kUp}}, 5s), IsEmpty());
  auto r = run(h, {{"i-b", kSilent}, {"i-c", kSilent}}, 2min);
  EXPECT_FALSE(h.snap().suspect) << "i-c fell silent 5 s after i-b: two failures";
  EXPECT_THAT(r, SizeIs(2));
}

TEST(SelfSuspicion, WhenItEndsThePeersStillSilentAreJudgedAfresh) {
  Harness h{three()};
  started(h, kThree, {{"i-b", kUp}, {"i-c", kUp}});
  EXPECT_THAT(run(h, {{"i-b", kSilent}, {"i-c", kSilent}}, 2min), IsEmpty());
  EXPECT_TRUE(h.snap().suspect);
  // This member's path comes back: i-b's answer gets through a round before i-c's. The
  // 2 min of silence of i-c were seen through a broken path: they do not count.
  auto r = run(h, {{"i-b", kUp}, {"i-c", kSilent}}, 1s);
  EXPECT_THAT(r, IsEmpty()) << "i-c fenced on the strength of this member's own outage";
  EXPECT_FALSE(h.snap().suspect);
  // i-c really is gone: silent on every kind again, then recovery_after.
  EXPECT_THAT(run(h, {{"i-b", kUp}, {"i-c", kSilent}}, 58s), IsEmpty());
  r = run(h, {{"i-b", kUp}, {"i-c", kSilent}}, 3s);
  ASSERT_THAT(r, SizeIs(1));
  EXPECT_EQ(r[0].peer, "i-c");
}

TEST(SelfSuspicion, AnEgressCheckThatPassedThroughoutClearsIt) {
  Config c = two();
  c.egress_check = true;
  Harness h{c};
  started(h, kTwo, {{"i-b", kUp}});
  h.send(self(true, true, h.now()));
  auto r = run(h, {{"i-b", kSilent}}, 61s);
  EXPECT_TRUE(h.snap().suspect) << "its only peer fell silent: every peer at once";
  EXPECT_TRUE(h.snap().self_confirmed);
  ASSERT_THAT(r, SizeIs(1));
  EXPECT_EQ(r[0].peer, "i-b");
}

TEST(SelfSuspicion, AnEgressCheckThatPassesOnlyAfterwardsDoesNot) {
  Config c = two();
  c.egress_check = true;
  Harness h{c};
  started(h, kTwo, {{"i-b", kUp}});
  h.send(self(true, true, h.now()));
  rounds(h, {{"i-b", kSilent}}, 2);
  h.send(self(false, true, h.now()));  // the egress check failed with the peer
  rounds(h, {{"i-b", kSilent}}, 2);
  h.send(self(true, true, h.now()));  // and passes again later
  EXPECT_THAT(run(h, {{"i-b", kSilent}}, 30min), IsEmpty());
  EXPECT_FALSE(h.snap().self_confirmed);
}

TEST(SelfSuspicion, TakesOverOnlyWhileItsEgressCheckPasses) {
  Config c = two();
  c.egress_check = true;
  Harness h{c};
  started(h, kTwo, {{"i-b", kUp}});
  h.send(self(false, true, h.now()));  // egress check configured, not Up (yet)
  rounds(h, {{"i-b", kSilent}}, 4);
  EXPECT_EQ(member(h.snap(), "i-b").health, Health::Down);
  EXPECT_THAT(write_tables(h.take()), IsEmpty()) << "suspect, own checks unconfirmed";
  h.send(self(true, true, h.now()));
  EXPECT_THAT(write_tables(h.take()), ::testing::ElementsAre("rtb-b"));
}

TEST(SelfSuspicion, WithoutAnEgressCheckTheLinkAndNatDecideTheTakeover) {
  Harness h{two()};  // no egress check: nothing better to confirm with
  started(h, kTwo, {{"i-b", kUp}});
  h.send(self(false, false, h.now()));
  rounds(h, {{"i-b", kSilent}}, 4);
  EXPECT_THAT(write_tables(h.take()), IsEmpty()) << "own link down";
  h.send(self(false, true, h.now()));
  EXPECT_THAT(write_tables(h.take()), ::testing::ElementsAre("rtb-b"));
  EXPECT_THAT(run(h, {{"i-b", kSilent}}, 30min), IsEmpty()) << "but never fences";
}

// ---- a peer whose hanatd is away ----------------------------------------------------------

TEST(AgentSilent, KeepsItsRoutesIsNeverFencedAndIsAllocatedNothing) {
  Harness h{three()};
  started(h, kThree, {{"i-b", kUp}, {"i-c", kUp}});
  EXPECT_EQ(table(h.snap(), "rtb-b").allocated, inst("i-b"));
  // i-b's hanatd crashed: no agent answer, the host still pings.
  auto r = run(h, {{"i-b", Answer{true, false, false}}, {"i-c", kUp}}, 30min);
  EXPECT_THAT(r, IsEmpty());
  const auto snap = h.snap();
  const auto& b = member(snap, "i-b");
  EXPECT_EQ(b.health, Health::Up) << "restart is not stop (DESIGN rule 10)";
  EXPECT_TRUE(b.agent_silent);
  EXPECT_NE(table(h.snap(), "rtb-b").allocated, inst("i-b"));
  EXPECT_EQ(table(h.snap(), "rtb-b").routes[0].current, inst("i-b")) << "nobody took it";
  // A new table of zone b, unserved: never given to i-b.
  h.observe({{"rtb-a", "a", inst("i-a")},
             {"rtb-b", "b", inst("i-b")},
             {"rtb-b2", "b", blackhole()},
             {"rtb-c", "c", inst("i-c")}});
  EXPECT_NE(table(h.snap(), "rtb-b2").allocated, inst("i-b"));
  // Its agent answers again: allocated again after rise.
  rounds(h, {{"i-b", kUp}, {"i-c", kUp}}, 6);
  EXPECT_FALSE(member(h.snap(), "i-b").agent_silent);
  EXPECT_EQ(table(h.snap(), "rtb-b").allocated, inst("i-b"));
}

}  // namespace
}  // namespace hanat::engine::testing
