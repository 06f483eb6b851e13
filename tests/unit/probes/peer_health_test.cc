// SPDX-License-Identifier: GPL-2.0-or-later
#include "probes/peer_health.h"

#include <gtest/gtest.h>

#include <vector>

namespace hanat::probes {
namespace {

using namespace std::chrono_literals;

// A fake clock: the combiner never reads time, each record carries its own.
struct FakeClock {
  Time now{};
  Time tick(std::chrono::milliseconds d = 50ms) { return now += d; }
};

Outcome ok() {
  return succeeded("ok");
}
Outcome timeout() {
  return failed(Failure::Timeout, "no echo reply");
}
Outcome agent_down(std::string why) {
  return failed(Failure::AgentDown, std::move(why));
}

class PeerHealthTest : public ::testing::Test {
 protected:
  FakeClock clock;
  PeerHealth peer{"i-b", {ProbeKind::Icmp, ProbeKind::Agent}, {.rise = 2, .fall = 3}};
  std::vector<PeerTransition> transitions;

  void feed(ProbeKind k, const Outcome& o, int times = 1) {
    for (int i = 0; i < times; ++i) {
      auto u = peer.record(k, o, clock.tick());
      if (u.peer) transitions.push_back(*u.peer);
    }
  }
  void both(const Outcome& o, int times = 1) {
    for (int i = 0; i < times; ++i) {
      feed(ProbeKind::Icmp, o);
      feed(ProbeKind::Agent, o);
    }
  }
};

TEST_F(PeerHealthTest, StartsUnknownAndRisesAfterRiseSuccesses) {
  EXPECT_EQ(peer.state(), Health::Unknown);
  feed(ProbeKind::Icmp, ok());
  EXPECT_EQ(peer.state(), Health::Unknown);
  feed(ProbeKind::Icmp, ok());
  EXPECT_EQ(peer.state(), Health::Up);
  ASSERT_EQ(transitions.size(), 1u);
  EXPECT_EQ(transitions[0].from, Health::Unknown);
  EXPECT_EQ(transitions[0].to, Health::Up);
  EXPECT_EQ(transitions[0].reason, "icmp reached rise (2 successes)");
  EXPECT_EQ(transitions[0].at, clock.now);
  EXPECT_EQ(peer.since(), clock.now);
}

TEST_F(PeerHealthTest, DownOnlyWhenEveryKindReachedFall) {
  both(ok(), 2);
  ASSERT_EQ(peer.state(), Health::Up);
  feed(ProbeKind::Icmp, timeout(), 5);  // ICMP blocked, agent fine: still forwarding
  EXPECT_EQ(peer.kind_state(ProbeKind::Icmp), Health::Down);
  EXPECT_EQ(peer.state(), Health::Up);
  feed(ProbeKind::Agent, timeout(), 2);
  EXPECT_EQ(peer.state(), Health::Up);
  feed(ProbeKind::Agent, timeout());
  EXPECT_EQ(peer.state(), Health::Down);
  ASSERT_EQ(transitions.size(), 2u);
  EXPECT_EQ(transitions[1].reason,
            "all probe kinds reached fall (3 failures), last agent: no echo reply");
}

TEST_F(PeerHealthTest, CrashedAgentOnForwardingHostStaysUp) {
  both(ok(), 2);
  feed(ProbeKind::Agent, failed(Failure::Refused, "connection refused"), 10);
  feed(ProbeKind::Icmp, ok(), 10);
  EXPECT_EQ(peer.state(), Health::Up);
  EXPECT_EQ(transitions.size(), 1u);
}

TEST_F(PeerHealthTest, AgentSayingDownFlipsAtOnce) {
  both(ok(), 2);
  feed(ProbeKind::Agent, agent_down("masquerade rule missing"));
  EXPECT_EQ(peer.state(), Health::Down);
  EXPECT_TRUE(peer.agent_said_down());
  ASSERT_EQ(transitions.size(), 2u);
  EXPECT_EQ(transitions[1].reason, "agent says down: masquerade rule missing");
  // ICMP still answers, but the peer said its data plane is broken: stays down.
  feed(ProbeKind::Icmp, ok(), 5);
  EXPECT_EQ(peer.state(), Health::Down);
}

TEST_F(PeerHealthTest, AfterAgentDownRecoveryNeedsRise) {
  both(ok(), 2);
  feed(ProbeKind::Agent, agent_down("draining"));
  feed(ProbeKind::Agent, ok());
  EXPECT_EQ(peer.state(), Health::Down) << "one good answer is not rise=2";
  feed(ProbeKind::Agent, ok());
  EXPECT_EQ(peer.state(), Health::Up);
  EXPECT_FALSE(peer.agent_said_down());
  EXPECT_EQ(transitions.back().reason, "agent reached rise (2 successes)");
}

TEST_F(PeerHealthTest, AgentDownThenUnreachableStaysDown) {
  both(ok(), 2);
  feed(ProbeKind::Agent, agent_down("ip forwarding is off"));
  feed(ProbeKind::Agent, timeout(), 5);
  feed(ProbeKind::Icmp, ok(), 5);
  EXPECT_EQ(peer.state(), Health::Down);
  EXPECT_EQ(transitions.size(), 2u);
}

TEST_F(PeerHealthTest, RepeatedAgentDownIsUnchanged) {
  both(ok(), 2);
  feed(ProbeKind::Agent, agent_down("x"));
  auto u = peer.record(ProbeKind::Agent, agent_down("x"), clock.tick());
  EXPECT_EQ(u.kind_change, HealthChange::Unchanged);
  EXPECT_FALSE(u.peer);
}

TEST_F(PeerHealthTest, FlappingBelowThresholdsNeverTransitions) {
  both(ok(), 2);
  transitions.clear();
  for (int round = 0; round < 50; ++round) {
    both(timeout(), 2);  // fall is 3
    both(ok(), 1);       // resets the failure run
  }
  EXPECT_TRUE(transitions.empty());
  EXPECT_EQ(peer.state(), Health::Up);
}

TEST_F(PeerHealthTest, ThreeValuedKindResult) {
  both(ok(), 2);
  EXPECT_EQ(peer.record(ProbeKind::Icmp, ok(), clock.tick()).kind_change, HealthChange::Unchanged);
  EXPECT_EQ(peer.record(ProbeKind::Icmp, timeout(), clock.tick()).kind_change,
            HealthChange::Pending);
  EXPECT_EQ(peer.record(ProbeKind::Icmp, timeout(), clock.tick()).kind_change,
            HealthChange::Pending);
  EXPECT_EQ(peer.record(ProbeKind::Icmp, timeout(), clock.tick()).kind_change,
            HealthChange::Changed);
}

TEST_F(PeerHealthTest, UnconfiguredKindIsIgnored) {
  auto u = peer.record(ProbeKind::Tcp, timeout(), clock.tick());
  EXPECT_EQ(u.kind_change, HealthChange::Unchanged);
  EXPECT_FALSE(u.peer);
  EXPECT_EQ(peer.kind_state(ProbeKind::Tcp), Health::Unknown);
}

TEST(PeerHealth, SingleKindPeerFollowsItsTracker) {
  FakeClock clock;
  PeerHealth p{"i-c", {ProbeKind::Tcp}, {.rise = 1, .fall = 2}};
  EXPECT_TRUE(p.record(ProbeKind::Tcp, ok(), clock.tick()).peer);
  EXPECT_FALSE(p.record(ProbeKind::Tcp, failed(Failure::Refused, "refused"), clock.tick()).peer);
  auto u = p.record(ProbeKind::Tcp, failed(Failure::Refused, "refused"), clock.tick());
  ASSERT_TRUE(u.peer);
  EXPECT_EQ(u.peer->to, Health::Down);
  EXPECT_EQ(u.peer->peer, "i-c");
}

TEST(PeerHealth, DeadAtStartSettlesDownWithoutGoingUp) {
  FakeClock clock;
  PeerHealth p{"i-d", {ProbeKind::Icmp, ProbeKind::Agent}, {.rise = 5, .fall = 3}};
  std::vector<PeerTransition> seen;
  for (int i = 0; i < 3; ++i) {
    for (ProbeKind k : {ProbeKind::Icmp, ProbeKind::Agent}) {
      auto u = p.record(k, timeout(), clock.tick());
      if (u.peer) seen.push_back(*u.peer);
    }
  }
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].from, Health::Unknown);
  EXPECT_EQ(seen[0].to, Health::Down);
}

}  // namespace
}  // namespace hanat::probes
