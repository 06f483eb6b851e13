// SPDX-License-Identifier: GPL-2.0-or-later
#include "core/daemon/replica_store.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>

#include <map>
#include <random>
#include <set>

namespace hanat::daemon::replica {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

constexpr char kA[] = "i-aaaa";
constexpr char kB[] = "i-bbbb";

ReplicatedFlow tcp(uint16_t sport, uint32_t timeout_s = 432000, uint16_t public_port = 0) {
  ReplicatedFlow f;
  f.flow = {IPPROTO_TCP, 0xC6130005, 0xC6138001, sport, 443, timeout_s};
  f.public_port = public_port == 0 ? sport : public_port;
  f.status = 0x0e;
  f.tcp = netfilter::TcpInfo{3, 7, 7, 0x03, 0x03};
  return f;
}

std::vector<uint16_t> sports(const std::vector<ReplicatedFlow>& v) {
  std::vector<uint16_t> out;
  for (const auto& f : v) out.push_back(f.flow.sport);
  return out;
}

Batch upserts(std::vector<ReplicatedFlow> u) {
  Batch b;
  b.upserts = std::move(u);
  return b;
}

TEST(ReplicaStore, UpsertKeysByOriginalTupleAndKeepsTheLatest) {
  Store s{Limits{}};
  s.apply(kA, upserts({tcp(1000), tcp(1001)}), ms(0));
  auto changed = tcp(1000);
  changed.tcp->state = 5;  // FIN_WAIT: an UPDATE event
  changed.public_port = 2000;
  s.apply(kA, upserts({changed}), ms(10));
  auto got = s.take(kA, ms(20));
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0], changed);
  EXPECT_EQ(s.size(), 2u);
  EXPECT_EQ(s.origins().at(kA).counters.upserts, 3u);
}

TEST(ReplicaStore, MembersAreSeparate) {
  Store s{Limits{}};
  s.apply(kA, upserts({tcp(1000)}), ms(0));
  s.apply(kB, upserts({tcp(1000), tcp(1001)}), ms(0));
  EXPECT_EQ(s.size(kA), 1u);
  EXPECT_EQ(s.size(kB), 2u);
  EXPECT_EQ(s.size(), 3u);
  EXPECT_EQ(s.drop(kB), 2u);
  EXPECT_EQ(s.size(), 1u);
  EXPECT_THAT(s.take(kB, ms(0)), IsEmpty());
  EXPECT_THAT(sports(s.take(kA, ms(0))), ElementsAre(1000));
}

TEST(ReplicaStore, DestroyDropsTheEntry) {
  Store s{Limits{}};
  s.apply(kA, upserts({tcp(1000), tcp(1001)}), ms(0));
  Batch d;
  d.destroys = {tcp(1000).flow, tcp(5555).flow};  // the second was never held
  s.apply(kA, d, ms(1));
  EXPECT_THAT(sports(s.take(kA, ms(2))), ElementsAre(1001));
  EXPECT_EQ(s.origins().at(kA).counters.destroyed, 1u);
}

TEST(ReplicaStore, CompletedResyncDropsWhatWasNotReAnnounced) {
  Store s{Limits{}};
  s.apply(kA, upserts({tcp(1000), tcp(1001), tcp(1002)}), ms(0));
  s.apply(kB, upserts({tcp(1000)}), ms(0));
  Batch begin;
  begin.resync_begin = true;
  begin.upserts = {tcp(1000)};
  s.apply(kA, begin, ms(100));
  EXPECT_TRUE(s.origins().at(kA).resyncing);
  // A flow that starts during the resync arrives as an ordinary upsert: it is kept.
  s.apply(kA, upserts({tcp(1003)}), ms(150));
  Batch done;
  done.upserts = {tcp(1002)};
  done.resync_complete = true;
  s.apply(kA, done, ms(200));
  EXPECT_THAT(sports(s.take(kA, ms(300))), ElementsAre(1000, 1002, 1003));
  const auto v = s.origins().at(kA);
  EXPECT_FALSE(v.resyncing);
  EXPECT_TRUE(v.synced);
  EXPECT_EQ(v.counters.swept, 1u);
  EXPECT_EQ(v.counters.resyncs, 1u);
  EXPECT_EQ(s.size(kB), 1u);  // another member's resync touches nothing of B
  EXPECT_EQ(s.size(), 4u);
}

TEST(ReplicaStore, CompleteWithoutBeginSweepsNothing) {
  Store s{Limits{}};
  s.apply(kA, upserts({tcp(1000)}), ms(0));
  Batch done;
  done.resync_complete = true;
  s.apply(kA, done, ms(1));
  EXPECT_EQ(s.size(kA), 1u);
  EXPECT_FALSE(s.origins().at(kA).synced);
}

TEST(ReplicaStore, RestartedResyncCountsFromTheLastBegin) {
  Store s{Limits{}};
  Batch begin;
  begin.resync_begin = true;
  begin.upserts = {tcp(1000), tcp(1001)};
  s.apply(kA, begin, ms(0));
  // The sender reconnected and began again: only 1001 is re-announced this time.
  begin.upserts = {tcp(1001)};
  s.apply(kA, begin, ms(10));
  Batch done;
  done.resync_complete = true;
  s.apply(kA, done, ms(20));
  EXPECT_THAT(sports(s.take(kA, ms(30))), ElementsAre(1001));
}

TEST(ReplicaStore, ExpiresByTimeoutWithTheResyncFloor) {
  Limits l;
  l.min_ttl = ms(90000);
  l.max_ttl = ms(600000);
  Store s{l};
  // UDP-like 30 s timeout: kept for the floor (90 s), since only resyncs refresh a live flow.
  s.apply(kA, upserts({tcp(1000, 30), tcp(1001, 300), tcp(1002, 0)}), ms(0));
  EXPECT_THAT(sports(s.take(kA, ms(89999))), ElementsAre(1000, 1001, 1002));
  EXPECT_THAT(sports(s.take(kA, ms(90000))), ElementsAre(1001, 1002));
  EXPECT_EQ(s.live(kA, ms(90000)), 2u);
  EXPECT_EQ(s.live(kB, ms(90000)), 0u);
  // take() filters; expire() frees.
  EXPECT_EQ(s.size(), 3u);
  EXPECT_EQ(s.expire(ms(90000)), 1u);
  EXPECT_EQ(s.expire(ms(300000)), 1u);                             // 300 s
  EXPECT_THAT(sports(s.take(kA, ms(599999))), ElementsAre(1002));  // 0 = unknown: max_ttl
  EXPECT_EQ(s.expire(ms(600000)), 1u);
  EXPECT_EQ(s.size(), 0u);
  EXPECT_EQ(s.origins().at(kA).counters.expired, 3u);
}

TEST(ReplicaStore, AnnouncementRefreshesExpiry) {
  Limits l;
  l.min_ttl = ms(1000);
  Store s{l};
  s.apply(kA, upserts({tcp(1000, 1)}), ms(0));
  s.apply(kA, upserts({tcp(1000, 1)}), ms(900));
  EXPECT_THAT(sports(s.take(kA, ms(1500))), ElementsAre(1000));
  EXPECT_THAT(s.take(kA, ms(1900)), IsEmpty());
}

TEST(ReplicaStore, BatchesSweepExpiredEntriesAtMostOnceASecond) {
  Limits l;
  l.min_ttl = ms(1000);
  Store s{l};
  s.apply(kA, upserts({tcp(1000, 1)}), ms(0));
  s.apply(kB, upserts({tcp(2000, 1)}), ms(2000));  // sweeps A's expired entry
  EXPECT_EQ(s.size(kA), 0u);
  s.apply(kB, upserts({tcp(2001, 1)}), ms(3100));  // A sweep was due: 2000 expired at 3000
  EXPECT_EQ(s.size(kB), 1u);
}

TEST(ReplicaStore, BoundedOverAllMembersAndRefusalsCounted) {
  Limits l;
  l.max_entries = 3;
  Store s{l};
  s.apply(kA, upserts({tcp(1000), tcp(1001)}), ms(0));
  s.apply(kB, upserts({tcp(1000), tcp(1001)}), ms(0));
  EXPECT_EQ(s.size(), 3u);
  EXPECT_EQ(s.origins().at(kB).counters.refused, 1u);
  // A held flow is refreshed even when full.
  s.apply(kA, upserts({tcp(1000)}), ms(5));
  EXPECT_EQ(s.origins().at(kA).counters.refused, 0u);
  // Room again after a destroy.
  Batch d;
  d.destroys = {tcp(1000).flow};
  s.apply(kA, d, ms(6));
  s.apply(kB, upserts({tcp(1001)}), ms(7));
  EXPECT_EQ(s.size(kB), 2u);
}

// Churn from three members with random cuts of their streams (a resync begun and never
// completed, a member dropped): the bound holds at every step, sizes add up, and once
// every member's flows ended and the clock passed their timeouts nothing is left.
TEST(ReplicaStore, SeededChurnKeepsTheBoundAndLeaksNothing) {
  std::mt19937 rng(20261203);
  Limits l;
  l.max_entries = 500;
  l.min_ttl = ms(2000);
  l.max_ttl = ms(10000);
  Store s{l};
  const std::vector<std::string> members{"i-a", "i-b", "i-c"};
  std::map<std::string, std::set<uint16_t>> live;  // what each sender still translates
  ms now{0};
  for (int step = 0; step < 5000; ++step) {
    now += ms(rng() % 20);
    const std::string& m = members[rng() % members.size()];
    Batch b;
    switch (rng() % 6) {
      case 0:
      case 1:
      case 2: {  // new flows, some short (UDP-like), some long
        for (int k = 0; k < 5; ++k) {
          const auto port = static_cast<uint16_t>(1000 + rng() % 400);
          b.upserts.push_back(tcp(port, rng() % 2 == 0 ? 1 : 300));
          live[m].insert(port);
        }
        break;
      }
      case 3: {  // flows end; some DESTROY events are lost
        for (auto it = live[m].begin(); it != live[m].end() && b.destroys.size() < 5;) {
          if (rng() % 3 != 0) b.destroys.push_back(tcp(*it).flow);
          it = live[m].erase(it);
        }
        break;
      }
      case 4: {  // a full resync (what the sender still translates), maybe cut short
        b.resync_begin = true;
        for (uint16_t p : live[m]) b.upserts.push_back(tcp(p, 300));
        b.resync_complete = rng() % 4 != 0;
        break;
      }
      default:
        if (rng() % 50 == 0) {
          s.drop(m);  // the member left
          live[m].clear();
          continue;
        }
    }
    s.apply(m, b, now);
    ASSERT_LE(s.size(), l.max_entries) << "step " << step;
    size_t sum = 0;
    for (const auto& [member, v] : s.origins()) sum += v.entries;
    ASSERT_EQ(sum, s.size()) << "step " << step;
  }
  // Nothing outlives its timeout, even with no resync at all...
  Store idle = s;
  ASSERT_GT(idle.size(), 0u);
  idle.expire(now + l.max_ttl);
  EXPECT_EQ(idle.size(), 0u);
  // ...and when every flow ended (its DESTROY lost), one completed resync each clears it.
  for (const auto& m : members) {
    Batch b;
    b.resync_begin = b.resync_complete = true;
    s.apply(m, b, now);
    EXPECT_EQ(s.size(m), 0u) << m;
  }
  EXPECT_EQ(s.size(), 0u);
}

TEST(ReplicaStore, MemoryPerEntryAsDocumented) {
  EXPECT_LE(Store::entry_bytes(), Store::kBytesPerEntry);
  EXPECT_GE(Store::entry_bytes() + 16, Store::kBytesPerEntry);
}

}  // namespace
}  // namespace hanat::daemon::replica
