// SPDX-License-Identifier: GPL-2.0-or-later
// Multi-path peer health (DESIGN rule 4): a peer probed on its private and its public address
// is DOWN only when silent on both. A partition of the private path between two healthy NATs
// (a security group that drops ICMP and the agent port) moves nothing; a peer without a
// public path is judged on the private path alone, as before paths existed.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "core/engine/machine.h"
#include "core/engine/peer_health.h"
#include "tests/unit/engine/harness.h"

namespace hanat::engine::testing {
namespace {

using ::testing::IsEmpty;
using ::testing::SizeIs;

ProbeResult probe(ProbePath path, ProbeKind kind, bool ok, bool reports_down = false) {
  ProbeResult r;
  r.peer = "i-b";
  r.kind = kind;
  r.ok = ok;
  r.path = path;
  r.reports_down = reports_down;
  return r;
}

void feed(PeerHealth& h, ProbePath path, bool ok, int n,
          const std::vector<ProbeKind>& kinds = {ProbeKind::Icmp, ProbeKind::Agent}) {
  for (int i = 0; i < n; ++i) {
    for (ProbeKind k : kinds) (void)h.record(probe(path, k, ok));
  }
}

const Thresholds kT{.rise = 5, .fall = 3};
const std::vector<ProbeKind> kKinds{ProbeKind::Icmp, ProbeKind::Agent};

// ---- PeerHealth: the combination ----------------------------------------------------------

TEST(PeerPaths, BothPathsSilentIsDown) {
  PeerHealth h(kT, kKinds, true);
  feed(h, ProbePath::Private, true, 5);
  feed(h, ProbePath::Public, true, 5);
  ASSERT_EQ(h.state(), Health::Up);
  feed(h, ProbePath::Private, false, 3);
  EXPECT_EQ(h.state(), Health::Up) << "public path still answers";
  feed(h, ProbePath::Public, false, 3);
  EXPECT_EQ(h.state(), Health::Down);
  EXPECT_FALSE(h.path_broken()) << "a dead peer is not a broken path";
  EXPECT_EQ(h.path_state(ProbePath::Private), Health::Down);
  EXPECT_EQ(h.path_state(ProbePath::Public), Health::Down);
}

TEST(PeerPaths, PrivatePathDownPublicUpKeepsThePeerUpAndNamesThePath) {
  PeerHealth h(kT, kKinds, true);
  feed(h, ProbePath::Private, true, 5);
  feed(h, ProbePath::Public, true, 5);
  feed(h, ProbePath::Private, false, 50);
  feed(h, ProbePath::Public, true, 50);
  EXPECT_EQ(h.state(), Health::Up);
  EXPECT_EQ(h.path_state(ProbePath::Private), Health::Down);
  EXPECT_EQ(h.path_state(ProbePath::Public), Health::Up);
  EXPECT_TRUE(h.path_broken());
  // Healed: both paths up, nothing broken.
  feed(h, ProbePath::Private, true, 5);
  EXPECT_EQ(h.path_state(ProbePath::Private), Health::Up);
  EXPECT_FALSE(h.path_broken());
  EXPECT_EQ(h.state(), Health::Up);
}

TEST(PeerPaths, PublicPathDownPrivateUpIsAlsoABrokenPath) {
  PeerHealth h(kT, kKinds, true);
  feed(h, ProbePath::Private, true, 5);
  feed(h, ProbePath::Public, false, 3);
  EXPECT_EQ(h.state(), Health::Up);
  EXPECT_TRUE(h.path_broken());
}

TEST(PeerPaths, OneKindOnOnePathIsEnoughToStayUp) {
  PeerHealth h(kT, kKinds, true);
  feed(h, ProbePath::Private, true, 5);
  feed(h, ProbePath::Private, false, 3);
  feed(h, ProbePath::Public, false, 3, {ProbeKind::Icmp});
  EXPECT_EQ(h.state(), Health::Up) << "public agent not yet at fall";
  feed(h, ProbePath::Public, false, 3, {ProbeKind::Agent});
  EXPECT_EQ(h.state(), Health::Down);
}

TEST(PeerPaths, WithoutPublicPathTheyAreIgnoredAndPrivateDecidesAsBefore) {
  PeerHealth h(kT, kKinds, false);
  feed(h, ProbePath::Private, true, 5);
  feed(h, ProbePath::Public, true, 5);  // not probed: ignored
  EXPECT_EQ(h.path_state(ProbePath::Public), Health::Unknown);
  feed(h, ProbePath::Private, false, 3);
  EXPECT_EQ(h.state(), Health::Down);
  EXPECT_FALSE(h.path_broken());
}

TEST(PeerPaths, AgentReportingDownOnEitherPathIsDownAtOnce) {
  PeerHealth h(kT, kKinds, true);
  feed(h, ProbePath::Private, true, 5);
  feed(h, ProbePath::Public, true, 5);
  EXPECT_EQ(h.record(probe(ProbePath::Public, ProbeKind::Agent, false, true)),
            HealthChange::Changed);
  EXPECT_EQ(h.state(), Health::Down);
  EXPECT_FALSE(h.path_broken());
}

TEST(PeerPaths, DroppingThePublicPathForgetsItsTrackers) {
  PeerHealth h(kT, kKinds, true);
  feed(h, ProbePath::Private, true, 5);
  feed(h, ProbePath::Public, true, 5);
  h.configure(kT, kKinds, false);
  EXPECT_EQ(h.path_state(ProbePath::Public), Health::Unknown);
  feed(h, ProbePath::Private, false, 3);
  EXPECT_EQ(h.state(), Health::Down) << "private path alone decides again";
}

// ---- the machine: a partition of the private path moves nothing --------------------------

Config two_path_config() {
  Config c = base_config();
  for (auto& m : c.members) m.public_path = true;
  return c;
}

const std::vector<TableSpec> kHome{{"rtb-a", "a", inst("i-a")}, {"rtb-b", "b", inst("i-b")}};

void both_paths(Harness& h, bool private_ok, bool public_ok, int n) {
  for (int i = 0; i < n; ++i) {
    h.advance(200ms);
    ProbeResult r{"i-b", ProbeKind::Icmp, private_ok, h.now()};
    h.send(r);
    r.ok = public_ok;
    r.path = ProbePath::Public;
    h.send(r);
  }
}

TEST(PeerPathsMachine, PrivatePartitionWritesNothingAndWarns) {
  Harness h{two_path_config()};
  h.start(kHome);
  both_paths(h, true, true, 5);
  h.take();
  both_paths(h, false, true, 500);  // 100 s of a broken private path
  auto acts = h.take();
  EXPECT_THAT(only<WriteRoute>(acts), IsEmpty());
  EXPECT_THAT(only<PeerChanged>(acts), IsEmpty());
  auto changes = only<PeerPathChanged>(acts);
  ASSERT_THAT(changes, SizeIs(1));
  EXPECT_EQ(changes[0].path, ProbePath::Private);
  EXPECT_EQ(changes[0].to, Health::Down);
  EXPECT_TRUE(changes[0].broken);
  const Snapshot snap = h.snap();
  const MemberSnapshot& b = snap.members[1];
  EXPECT_EQ(b.health, Health::Up);
  EXPECT_TRUE(b.public_path);
  EXPECT_EQ(b.paths[static_cast<std::size_t>(ProbePath::Private)], Health::Down);
  EXPECT_EQ(b.paths[static_cast<std::size_t>(ProbePath::Public)], Health::Up);
  // Heal: the path comes back, still nothing moves.
  both_paths(h, true, true, 50);
  acts = h.take();
  EXPECT_THAT(only<WriteRoute>(acts), IsEmpty());
  changes = only<PeerPathChanged>(acts);
  ASSERT_THAT(changes, SizeIs(1));
  EXPECT_EQ(changes[0].to, Health::Up);
  EXPECT_FALSE(changes[0].broken);
}

TEST(PeerPathsMachine, PeerSilentOnBothPathsFailsOverAsBefore) {
  Harness h{two_path_config()};
  h.start(kHome);
  both_paths(h, true, true, 5);
  h.take();
  both_paths(h, false, false, 3);
  auto acts = h.take();
  ASSERT_THAT(only<PeerChanged>(acts), SizeIs(1));
  EXPECT_EQ(only<PeerChanged>(acts)[0].to, Health::Down);
  EXPECT_THAT(write_tables(acts), ::testing::ElementsAre("rtb-b"))
      << "same detection as a single path: fall probes on each";
}

TEST(PeerPathsMachine, WithoutPublicPathAPrivatePartitionFailsOverAsBefore) {
  Harness h{base_config()};
  h.start(kHome);
  h.take();
  both_paths(h, false, true, 3);  // public results of an unprobed path are ignored
  auto acts = h.take();
  EXPECT_THAT(write_tables(acts), ::testing::ElementsAre("rtb-b"));
  EXPECT_THAT(only<PeerPathChanged>(acts), IsEmpty());
}

}  // namespace
}  // namespace hanat::engine::testing
