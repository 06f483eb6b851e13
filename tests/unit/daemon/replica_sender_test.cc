// SPDX-License-Identifier: GPL-2.0-or-later
// Stateful failover's replication sender (core/daemon/replica_sender.h): who receives this
// member's flows, and one target's stream: resyncs, batching, coalescing, bounds.
#include "core/daemon/replica_sender.h"

#include <gtest/gtest.h>
#include <netinet/in.h>

namespace hanat::daemon::replica {
namespace {

using handover::ReplicaBatch;
using std::chrono::milliseconds;
using std::chrono::seconds;

// ---- targets ----------------------------------------------------------------------------------

TargetMember member(const std::string& id, const std::string& zone, bool healthy = true,
                    int64_t launch = 0) {
  return TargetMember{id, zone, launch, healthy};
}

TEST(ReplicaTargets, TheZonePeerTakesWhatThisMemberHolds) {
  // self and i-c share zone a (its two tables split between them), i-b serves zone b.
  const std::vector<TargetMember> members = {member("i-self", "a"), member("i-b", "b"),
                                             member("i-c", "a")};
  const std::vector<TargetTable> tables = {{"rtb-a1", "a"}, {"rtb-a2", "a"}, {"rtb-b", "b"}};
  const auto t = replica_targets("i-self", members, tables);
  // Round-robin by id within zone a: i-c gets rtb-a1, i-self rtb-a2; without self, i-c
  // gets both.
  ASSERT_EQ(t.size(), 1U);
  EXPECT_EQ(t[0], (Target{"i-c", {"rtb-a2"}}));
}

TEST(ReplicaTargets, WithoutAZonePeerTheLeastLoadedTakesAndTablesMaySplit) {
  const std::vector<TargetMember> members = {member("i-self", "a"), member("i-b", "b"),
                                             member("i-c", "c")};
  const std::vector<TargetTable> tables = {
      {"rtb-a1", "a"}, {"rtb-a2", "a"}, {"rtb-b", "b"}, {"rtb-c", "c"}};
  const auto t = replica_targets("i-self", members, tables);
  // Without self, zone a's tables go to the member with the fewest tables, one each.
  ASSERT_EQ(t.size(), 2U);
  EXPECT_EQ(t[0], (Target{"i-b", {"rtb-a1"}}));
  EXPECT_EQ(t[1], (Target{"i-c", {"rtb-a2"}}));
}

TEST(ReplicaTargets, UnhealthyPeersTakeNothingAndNoPeerMeansNoTarget) {
  const std::vector<TargetTable> tables = {{"rtb-a", "a"}, {"rtb-b", "b"}};
  // i-c (zone a) is down: zone a's table would go to i-b.
  auto t = replica_targets(
      "i-self", {member("i-self", "a"), member("i-b", "b"), member("i-c", "a", false)}, tables);
  ASSERT_EQ(t.size(), 1U);
  EXPECT_EQ(t[0], (Target{"i-b", {"rtb-a"}}));
  // Alone: nobody to replicate to (the fallback NAT Gateway installs nothing).
  EXPECT_TRUE(replica_targets("i-self", {member("i-self", "a"), member("i-b", "b", false)}, tables)
                  .empty());
  // This member holds no table (another member of its zone sorts first and there is one).
  EXPECT_TRUE(
      replica_targets("i-z", {member("i-z", "a"), member("i-a", "a")}, {{"rtb-a", "a"}}).empty());
  // This member is unknown to the list: nothing.
  EXPECT_TRUE(replica_targets("i-x", {member("i-b", "b")}, tables).empty());
}

TEST(ReplicaTargets, ATableRoutedHereGoesToItsTakerAlthoughAllocatedElsewhere) {
  // i-a (zone a) failed, this member took rtb-a; i-a is back and healthy, so the allocation
  // gives rtb-a to it again, but until its failback the route and the flows are here.
  const std::vector<TargetMember> members = {member("i-self", "b"), member("i-a", "a")};
  std::vector<TargetTable> tables = {{"rtb-a", "a", true}, {"rtb-b", "b", false}};
  auto t = replica_targets("i-self", members, tables);
  ASSERT_EQ(t.size(), 1U);
  EXPECT_EQ(t[0], (Target{"i-a", {"rtb-a", "rtb-b"}}));
  // After the failback rtb-a routes to i-a: only this member's own table is left.
  tables[0].here = false;
  t = replica_targets("i-self", members, tables);
  ASSERT_EQ(t.size(), 1U);
  EXPECT_EQ(t[0], (Target{"i-a", {"rtb-b"}}));
}

TEST(ReplicaTargets, UnionOfSources) {
  EXPECT_EQ(union_sources({{"198.18.2.0/24"}, {"198.18.1.0/24", "198.18.2.0/24"}}),
            (std::vector<std::string>{"198.18.1.0/24", "198.18.2.0/24"}));
  EXPECT_TRUE(union_sources({{"198.18.2.0/24"}, {}}).empty());  // one takes every source
}

// ---- stream -----------------------------------------------------------------------------------

const Time t0 = Time{} + seconds(1000);

netfilter::Flow flow(uint16_t sport, uint32_t src = 0xC6120102) {
  netfilter::Flow f;
  f.proto = IPPROTO_TCP;
  f.src = src;
  f.dst = 0xC6130102;
  f.sport = sport;
  f.dport = 443;
  f.timeout_s = 300;
  return f;
}

netfilter::ReplicatedFlow rep(uint16_t sport, uint8_t state = 3) {
  netfilter::ReplicatedFlow r;
  r.flow = flow(sport);
  r.public_port = static_cast<uint16_t>(sport + 1);
  r.status = 0x1be;
  r.tcp = netfilter::TcpInfo{state, 7, 7, 0, 0};
  return r;
}

netfilter::FlowEvent upsert_ev(uint16_t sport, uint8_t state = 3) {
  netfilter::FlowEvent e(false, flow(sport));
  e.replicated = rep(sport, state);
  return e;
}

netfilter::FlowEvent destroy_ev(uint16_t sport) {
  return netfilter::FlowEvent(true, flow(sport));
}

TEST(ReplicaStream, DownQueuesNothingAndAConnectionResyncsFirst) {
  Stream s;
  EXPECT_FALSE(s.add(upsert_ev(1), t0));
  EXPECT_EQ(s.pending(), 0U);
  EXPECT_FALSE(s.resync_due(t0, 0));
  EXPECT_EQ(s.next_deadline(), std::nullopt);
  s.connected(t0);
  EXPECT_TRUE(s.resync_due(t0, 0));
  const auto frames = s.resync({rep(1), rep(2)}, t0);
  ASSERT_EQ(frames.size(), 1U);
  EXPECT_EQ(frames[0].flags, ReplicaBatch::kResyncBegin | ReplicaBatch::kResyncComplete);
  EXPECT_EQ(frames[0].upserts, (std::vector<netfilter::ReplicatedFlow>{rep(1), rep(2)}));
  EXPECT_EQ(s.counters().resyncs, 1U);
  EXPECT_EQ(s.counters().flows_sent, 2U);
  EXPECT_EQ(s.last_resync(), t0);
  // The next one is due kResyncEvery later.
  EXPECT_FALSE(s.resync_due(t0 + kResyncEvery - milliseconds(1), 0));
  EXPECT_TRUE(s.resync_due(t0 + kResyncEvery, 0));
  EXPECT_EQ(s.next_deadline(), t0 + kResyncEvery);
}

TEST(ReplicaStream, AnEmptyResyncIsOneFrameAndABigOneIsSplitWithinTheBound) {
  Stream s;
  s.connected(t0);
  auto empty = s.resync({}, t0);
  ASSERT_EQ(empty.size(), 1U);
  EXPECT_EQ(empty[0].flags, ReplicaBatch::kResyncBegin | ReplicaBatch::kResyncComplete);
  std::vector<netfilter::ReplicatedFlow> many;
  for (uint16_t i = 0; i < 5000; ++i) many.push_back(rep(i));
  auto frames = s.resync(many, t0);
  ASSERT_EQ(frames.size(), 3U);  // 2257 upserts per frame
  EXPECT_EQ(frames[0].flags, ReplicaBatch::kResyncBegin);
  EXPECT_EQ(frames[1].flags, 0);
  EXPECT_EQ(frames[2].flags, ReplicaBatch::kResyncComplete);
  size_t n = 0;
  for (const auto& f : frames) {
    EXPECT_LE(f.entry_bytes(), handover::kMaxReplicaBytes);
    n += f.upserts.size();
  }
  EXPECT_EQ(n, 5000U);
  // Every frame encodes (encode() checks the bound).
  for (const auto& f : frames) EXPECT_LE(handover::encode(f).size(), handover::kMaxFrameBytes);
}

// A dump read in steps: what was queued when it began is dropped then; events queued while
// it is read are kept and go out after the resync (the node holds its flushes meanwhile).
TEST(ReplicaStream, EventsQueuedDuringASteppedDumpFollowItsResync) {
  Stream s;
  s.connected(t0);
  (void)s.resync({}, t0);
  EXPECT_FALSE(s.add(upsert_ev(1), t0));  // older than the dump
  s.drop_pending();
  EXPECT_EQ(s.pending(), 0U);
  EXPECT_FALSE(s.add(destroy_ev(2), t0 + milliseconds(5)));  // read during the dump
  const auto frames = s.resync({rep(2), rep(3)}, t0 + milliseconds(10), /*drop_queued=*/false);
  ASSERT_EQ(frames.size(), 1U);
  EXPECT_EQ(frames[0].upserts, (std::vector<netfilter::ReplicatedFlow>{rep(2), rep(3)}));
  EXPECT_EQ(s.pending(), 1U);
  const auto after = s.flush(t0 + milliseconds(5) + kFlushEvery, 0);
  ASSERT_EQ(after.size(), 1U);
  EXPECT_TRUE(after[0].upserts.empty());
  EXPECT_EQ(after[0].destroys, (std::vector<netfilter::Flow>{flow(2)}));
  // The default drops what is queued, as a dump read in one piece supersedes it.
  EXPECT_FALSE(s.add(upsert_ev(4), t0 + milliseconds(20)));
  (void)s.resync({}, t0 + milliseconds(30));
  EXPECT_EQ(s.pending(), 0U);
}

TEST(ReplicaStream, EventsAreBatchedForTheFlushIntervalAndCoalescedPerFlow) {
  Stream s;
  s.connected(t0);
  (void)s.resync({}, t0);
  EXPECT_FALSE(s.add(upsert_ev(1, 3), t0));                     // ESTABLISHED
  EXPECT_FALSE(s.add(upsert_ev(1, 4), t0 + milliseconds(10)));  // FIN_WAIT: replaces it
  EXPECT_FALSE(s.add(upsert_ev(2), t0 + milliseconds(20)));
  EXPECT_FALSE(s.add(destroy_ev(2), t0 + milliseconds(30)));  // ended inside the batch
  EXPECT_FALSE(s.add(destroy_ev(3), t0 + milliseconds(30)));
  EXPECT_EQ(s.pending(), 3U);
  EXPECT_EQ(s.counters().coalesced, 2U);
  EXPECT_EQ(s.next_deadline(), t0 + kFlushEvery);
  EXPECT_TRUE(s.flush(t0 + kFlushEvery - milliseconds(1), 0).empty());
  const auto frames = s.flush(t0 + kFlushEvery, 0);
  ASSERT_EQ(frames.size(), 1U);
  EXPECT_EQ(frames[0].flags, 0);
  EXPECT_EQ(frames[0].upserts, (std::vector<netfilter::ReplicatedFlow>{rep(1, 4)}));
  EXPECT_EQ(frames[0].destroys, (std::vector<netfilter::Flow>{flow(2), flow(3)}));
  EXPECT_EQ(s.counters().events, 3U);
  EXPECT_EQ(s.pending(), 0U);
  EXPECT_TRUE(s.flush(t0 + seconds(1), 0).empty());  // nothing left
  EXPECT_EQ(s.events_per_second(t0 + kFlushEvery + seconds(1)), 3U);
}

TEST(ReplicaStream, AFullFrameFlushesAtOnce) {
  Stream s;
  s.connected(t0);
  (void)s.resync({}, t0);
  const size_t per_frame = handover::kMaxReplicaBytes / handover::kUpsertBytes;
  bool full = false;
  size_t added = 0;
  while (!full) {
    full = s.add(upsert_ev(static_cast<uint16_t>(added)), t0);
    ++added;
    ASSERT_LE(added, per_frame + 1);
  }
  EXPECT_EQ(added, per_frame);
  const auto frames = s.flush(t0, 0);  // no wait
  ASSERT_EQ(frames.size(), 1U);
  EXPECT_EQ(frames[0].upserts.size(), per_frame);
  EXPECT_LE(handover::encode(frames[0]).size(), handover::kMaxFrameBytes);
}

TEST(ReplicaStream, OverTheBoundEventsAreDroppedCountedAndAResyncForced) {
  Stream::Settings st;
  st.max_pending = 4;
  Stream s(st);
  s.connected(t0);
  (void)s.resync({}, t0);
  for (uint16_t i = 0; i < 4; ++i) (void)s.add(upsert_ev(i), t0);
  EXPECT_FALSE(s.resync_due(t0 + seconds(1), 0));
  // A repeat of a queued flow still fits (coalesced); a fifth flow does not.
  (void)s.add(upsert_ev(0, 4), t0);
  EXPECT_EQ(s.counters().drops, 0U);
  (void)s.add(upsert_ev(9), t0);
  EXPECT_EQ(s.counters().drops, 5U);
  EXPECT_EQ(s.pending(), 0U);
  EXPECT_TRUE(s.resync_due(t0 + seconds(1), 0));
}

TEST(ReplicaStream, ASocketThatDoesNotDrainHoldsFlushesAndResyncs) {
  Stream::Settings st;
  st.max_backlog = 1000;
  Stream s(st);
  s.connected(t0);
  EXPECT_FALSE(s.resync_due(t0, 1001));
  EXPECT_TRUE(s.resync_due(t0, 1000));
  (void)s.resync({}, t0);
  (void)s.add(upsert_ev(1), t0);
  EXPECT_TRUE(s.flush(t0 + seconds(1), 1001).empty());
  EXPECT_EQ(s.pending(), 1U);
  EXPECT_EQ(s.flush(t0 + seconds(1), 0).size(), 1U);
}

TEST(ReplicaStream, OnlyTheTargetsSourcesAreSent) {
  Stream s;
  s.set_sources({netfilter::Ipv4Prefix{0xC6120100, 24}});  // 198.18.1.0/24
  s.connected(t0);
  auto other = rep(7);
  other.flow.src = 0xC6120202;  // 198.18.2.2
  const auto frames = s.resync({rep(1), other}, t0);
  ASSERT_EQ(frames.size(), 1U);
  EXPECT_EQ(frames[0].upserts, (std::vector<netfilter::ReplicatedFlow>{rep(1)}));
  netfilter::FlowEvent e(true, other.flow);
  EXPECT_FALSE(s.add(e, t0));
  EXPECT_EQ(s.pending(), 0U);
  EXPECT_EQ(s.counters().filtered, 1U);
}

TEST(ReplicaStream, ADisconnectDropsTheQueueAndTheResyncSupersedesIt) {
  Stream s;
  s.connected(t0);
  (void)s.resync({}, t0);
  (void)s.add(upsert_ev(1), t0);
  s.disconnected();
  EXPECT_EQ(s.pending(), 0U);
  EXPECT_FALSE(s.up());
  s.connected(t0 + seconds(2));
  (void)s.add(upsert_ev(2), t0 + seconds(2));
  EXPECT_TRUE(s.resync_due(t0 + seconds(2), 0));
  EXPECT_EQ(s.next_deadline(), Time{});  // due now
  (void)s.resync({rep(2)}, t0 + seconds(2));
  EXPECT_EQ(s.pending(), 0U);  // the event is older than the dump
  // An overrun (events lost) asks for a resync at once.
  s.force_resync();
  EXPECT_TRUE(s.resync_due(t0 + seconds(3), 0));
}

TEST(ReplicaStream, EventsWithoutAPublicPortAreNotSent) {
  Stream s;
  s.connected(t0);
  (void)s.resync({}, t0);
  EXPECT_FALSE(s.add(netfilter::FlowEvent(false, flow(1)), t0));
  EXPECT_EQ(s.pending(), 0U);
}

}  // namespace
}  // namespace hanat::daemon::replica
