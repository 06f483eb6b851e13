// SPDX-License-Identifier: GPL-2.0-or-later
#include "core/daemon/takeover.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>

namespace hanat::daemon::takeover {
namespace {

using std::chrono::milliseconds;
using ::testing::ElementsAre;
using ::testing::IsEmpty;

constexpr uint32_t kZoneB = 0xC6130100;  // 198.19.1.0/24: zone b's private subnet
constexpr uint32_t kZoneC = 0xC6130200;  // 198.19.2.0/24
constexpr uint32_t kAddrB = 0xC612000B;  // 198.18.0.11: zone b's secondary IP here
constexpr uint32_t kAddrC = 0xC612000C;  // 198.18.0.12

ReplicatedFlow tcp(uint32_t src, uint16_t sport) {
  ReplicatedFlow f;
  f.flow = {IPPROTO_TCP, src, 0xC6138001, sport, 443, 432000};
  f.public_port = sport;
  f.tcp = netfilter::TcpInfo{3, 7, 7, 0x03, 0x03};
  return f;
}

engine::WriteRoute claim(engine::OpId op, const std::string& table) {
  engine::WriteRoute w;
  w.op = op;
  w.table = table;
  w.destination = "0.0.0.0/0";
  w.target = {engine::TargetKind::Instance, "i-self"};
  return w;
}

std::vector<std::string> tables(const Install::Release& r) {
  std::vector<std::string> out;
  for (const auto& w : r.writes) out.push_back(w.table);
  return out;
}

Time t0() {
  return Time{} + std::chrono::hours(1);
}

ClaimView dead(size_t replicated) {
  ClaimView v;
  v.stateful = true;
  v.previous = "i-dead";
  v.previous_down = true;
  v.previous_silent = true;
  v.replicated = replicated;
  return v;
}

TEST(TakeoverJudge, OnlyTheSilentDeadWithReplicatedFlows) {
  EXPECT_EQ(judge(dead(10)), Verdict::Stateful);
  auto off = dead(10);
  off.stateful = false;
  EXPECT_EQ(judge(off), Verdict::Off);
  auto not_member = dead(10);
  not_member.previous.clear();  // a blackhole, the fallback NAT gateway
  EXPECT_EQ(judge(not_member), Verdict::Off);
  // DOWN for allocation but its agent answers "draining": it hands over itself.
  auto draining = dead(10);
  draining.previous_silent = false;
  EXPECT_EQ(judge(draining), Verdict::NotDead);
  auto up = dead(10);
  up.previous_down = false;
  EXPECT_EQ(judge(up), Verdict::NotDead);
  auto steered = dead(10);
  steered.previous_steered = true;
  EXPECT_EQ(judge(steered), Verdict::Steered);
  EXPECT_EQ(judge(dead(0)), Verdict::NoReplica);
}

TEST(TakeoverSplit, EachFlowGoesToItsZonesAddressLongestPrefix) {
  std::vector<AddressRoute> routes{
      {kZoneB, 24, kAddrB}, {kZoneC, 24, kAddrC}, {0xC6130000, 16, 0xC6120001}};
  auto s = split_by_address({tcp(kZoneC + 5, 1), tcp(kZoneB + 5, 2), tcp(0xC6130305, 3),
                             tcp(0x0A000001, 4), tcp(kZoneB + 6, 5)},
                            routes);
  ASSERT_EQ(s.groups.size(), 3u);
  EXPECT_EQ(s.groups[0].address, 0xC6120001u);
  EXPECT_EQ(s.groups[0].flows.size(), 1u);  // 198.19.3.5 only matches the /16
  EXPECT_EQ(s.groups[1].address, kAddrB);
  EXPECT_EQ(s.groups[1].flows.size(), 2u);
  EXPECT_EQ(s.groups[2].address, kAddrC);
  EXPECT_EQ(s.unroutable, 1u);  // 10.0.0.1: no zone of ours
}

Split split_of(size_t n_b, size_t n_c) {
  std::vector<ReplicatedFlow> flows;
  for (size_t i = 0; i < n_b; ++i)
    flows.push_back(tcp(kZoneB + 5, static_cast<uint16_t>(1000 + i)));
  for (size_t i = 0; i < n_c; ++i)
    flows.push_back(tcp(kZoneC + 5, static_cast<uint16_t>(1000 + i)));
  return split_by_address(flows, {{kZoneB, 24, kAddrB}, {kZoneC, 24, kAddrC}});
}

TEST(TakeoverInstall, ChunksPerAddressAndBoundedInSize) {
  Install in{"i-dead", split_of(5, 3), t0(), {2, milliseconds(1000)}};
  EXPECT_EQ(in.counters().flows, 8u);
  std::vector<std::pair<uint32_t, size_t>> seen;
  std::vector<bool> firsts;
  while (auto c = in.next_chunk()) {
    seen.emplace_back(c->address, c->flows.size());
    firsts.push_back(c->first_of_address);
    (void)in.chunk_done(c->flows.size(), 0, 0, t0());
  }
  EXPECT_THAT(seen, ElementsAre(std::pair{kAddrB, size_t{2}}, std::pair{kAddrB, size_t{2}},
                                std::pair{kAddrB, size_t{1}}, std::pair{kAddrC, size_t{2}},
                                std::pair{kAddrC, size_t{1}}));
  EXPECT_THAT(firsts, ElementsAre(true, false, false, true, false));
  EXPECT_TRUE(in.finished());
  EXPECT_EQ(in.counters().installed, 8u);
}

TEST(TakeoverInstall, ClaimsWaitForTheLastChunk) {
  Install in{"i-dead", split_of(4, 0), t0(), {2, milliseconds(1000)}};
  EXPECT_THAT(in.hold(claim(1, "rtb-1"), t0()).writes, IsEmpty());
  EXPECT_THAT(in.hold(claim(2, "rtb-2"), t0()).writes, IsEmpty());
  EXPECT_EQ(in.held(), 2u);
  auto c = in.next_chunk();
  ASSERT_TRUE(c);
  EXPECT_THAT(in.chunk_done(2, 0, 0, t0() + milliseconds(20)).writes, IsEmpty());
  c = in.next_chunk();
  ASSERT_TRUE(c);
  auto r = in.chunk_done(1, 1, 0, t0() + milliseconds(40));
  EXPECT_THAT(tables(r), ElementsAre("rtb-1", "rtb-2"));
  EXPECT_TRUE(r.why.empty());
  EXPECT_TRUE(in.released());
  EXPECT_FALSE(in.next_chunk());
  EXPECT_EQ(in.counters().installed, 3u);
  EXPECT_EQ(in.counters().collided, 1u);
  // A later claim of the same member (a retry) passes at once.
  EXPECT_THAT(tables(in.hold(claim(3, "rtb-3"), t0() + milliseconds(50))), ElementsAre("rtb-3"));
}

TEST(TakeoverInstall, BoundReleasesTheClaimsAndTheInstallationGoesOn) {
  Install in{"i-dead", split_of(4, 0), t0(), {2, milliseconds(1000)}};
  (void)in.hold(claim(1, "rtb-1"), t0() + milliseconds(10));
  ASSERT_TRUE(in.deadline());
  EXPECT_EQ(*in.deadline(), t0() + milliseconds(1010));
  EXPECT_THAT(in.tick(t0() + milliseconds(1009)).writes, IsEmpty());
  auto r = in.tick(t0() + milliseconds(1010));
  EXPECT_THAT(tables(r), ElementsAre("rtb-1"));
  EXPECT_THAT(r.why, ::testing::HasSubstr("longer than 1000 ms"));
  EXPECT_FALSE(in.deadline());
  // Flows not yet touched by a packet can still be kept.
  ASSERT_TRUE(in.next_chunk());
  EXPECT_THAT(in.chunk_done(2, 0, 0, t0() + milliseconds(1020)).writes, IsEmpty());
  ASSERT_TRUE(in.next_chunk());
  EXPECT_THAT(in.chunk_done(2, 0, 0, t0() + milliseconds(1030)).writes, IsEmpty());
  EXPECT_TRUE(in.finished());
  EXPECT_EQ(in.counters().installed, 4u);
}

TEST(TakeoverInstall, AFailedChunkCountsTheRestAndReleases) {
  Install in{"i-dead", split_of(3, 2), t0(), {2, milliseconds(1000)}};
  (void)in.hold(claim(1, "rtb-1"), t0());
  ASSERT_TRUE(in.next_chunk());
  (void)in.chunk_done(2, 0, 0, t0());
  ASSERT_TRUE(in.next_chunk());
  auto r = in.chunk_failed("conntrack: Operation not permitted", t0());
  EXPECT_THAT(tables(r), ElementsAre("rtb-1"));
  EXPECT_THAT(r.why, ::testing::HasSubstr("Operation not permitted"));
  EXPECT_EQ(in.counters().failed, 3u);  // the failed chunk (1) and zone c's 2
  EXPECT_TRUE(in.finished());
  EXPECT_FALSE(in.next_chunk());
}

TEST(TakeoverInstall, NothingRoutableReleasesAtOnce) {
  Install in{"i-dead", split_by_address({tcp(0x0A000001, 1)}, {{kZoneB, 24, kAddrB}}), t0(), {}};
  EXPECT_TRUE(in.finished());
  EXPECT_EQ(in.counters().unroutable, 1u);
  EXPECT_THAT(tables(in.hold(claim(1, "rtb-1"), t0())), ElementsAre("rtb-1"));
}

TEST(TakeoverInstall, AnAbandonedClaimIsNotReleased) {
  Install in{"i-dead", split_of(2, 0), t0(), {}};
  (void)in.hold(claim(1, "rtb-1"), t0());
  (void)in.hold(claim(2, "rtb-2"), t0());
  EXPECT_TRUE(in.cancel(1));
  EXPECT_FALSE(in.cancel(7));
  ASSERT_TRUE(in.next_chunk());
  EXPECT_THAT(tables(in.chunk_done(2, 0, 0, t0())), ElementsAre("rtb-2"));
}

engine::ObservedTable table(const std::string& id, const std::string& zone,
                            const std::string& target) {
  engine::ObservedTable t;
  t.id = id;
  t.zone = zone;
  t.routes.push_back({"0.0.0.0/0", engine::Target{engine::TargetKind::Eni, target}});
  return t;
}

// nat1 (i-1, eni-1) in zone a serves rtb-a; nat2 (eni-2) serves rtb-b.
TEST(ServedTables, ATableThatRoutedHereAndNowRoutesElsewhereIsReportedOnce) {
  ServedTables s;
  const std::set<std::string> self{"i-1", "eni-1"};
  EXPECT_EQ(s.observe({table("rtb-a", "a", "eni-1"), table("rtb-b", "b", "eni-2")}, self), "");
  // The peer took rtb-a (a cut of this host's private link, a partition, a gateway).
  EXPECT_EQ(s.observe({table("rtb-a", "a", "eni-2"), table("rtb-b", "b", "eni-2")}, self), "rtb-a");
  // Still elsewhere at the next read-back: already told.
  EXPECT_EQ(s.observe({table("rtb-a", "a", "eni-2"), table("rtb-b", "b", "eni-2")}, self), "");
  // Back here, then away again: told again.
  EXPECT_EQ(s.observe({table("rtb-a", "a", "i-1")}, self), "");
  EXPECT_EQ(s.observe({table("rtb-a", "a", "nat-0123")}, self), "rtb-a");
}

TEST(ServedTables, ATableNeverSeenRoutingHereIsNotTakenFromThisHost) {
  ServedTables s;
  const std::set<std::string> self{"i-1", "eni-1"};
  // First read-back after start-up: rtb-a is on the peer (this host's previous process was
  // killed, or a claim is in flight): nothing is known to have routed here.
  EXPECT_EQ(s.observe({table("rtb-a", "a", "eni-2"), table("rtb-b", "b", "eni-2")}, self), "");
  // A peer's table this host took over and handed back.
  EXPECT_EQ(s.observe({table("rtb-b", "b", "eni-1")}, self), "");
  EXPECT_EQ(s.observe({table("rtb-b", "b", "eni-2")}, self), "rtb-b");
}

TEST(ServedTables, AClaimOfATableOfThisHostsZoneBringsItsConnectionsBack) {
  ServedTables s;
  const std::set<std::string> self{"i-1", "eni-1"};
  EXPECT_FALSE(s.claimed_own("rtb-a", "a")) << "a table never read back has no known zone";
  (void)s.observe({table("rtb-a", "a", "eni-2"), table("rtb-b", "b", "eni-2")}, self);
  EXPECT_TRUE(s.claimed_own("rtb-a", "a"));
  EXPECT_FALSE(s.claimed_own("rtb-b", "a")) << "a peer's table taken over";
  EXPECT_FALSE(s.claimed_own("rtb-a", "")) << "no zone of its own (identity unknown)";
}

}  // namespace
}  // namespace hanat::daemon::takeover
