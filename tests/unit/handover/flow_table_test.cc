// SPDX-License-Identifier: GPL-2.0-or-later
// FlowTable (handover/flow_table.h): bounds, expiry, destroy, duplicates, resync.
#include "core/handover/flow_table.h"

#include <gtest/gtest.h>

#include <netinet/in.h>

namespace hanat::handover {
namespace {

using namespace std::chrono_literals;
using ms = std::chrono::milliseconds;

Flow flow(uint16_t sport, uint32_t timeout_s = 350) {
  Flow f;
  f.proto = IPPROTO_TCP;
  f.src = 0xC6120102;
  f.dst = 0xC6130102;
  f.sport = sport;
  f.dport = 443;
  f.timeout_s = timeout_s;
  return f;
}

FlowTable::Limits limits(size_t max) {
  FlowTable::Limits l;
  l.max_flows = max;
  l.min_ttl = 60s;
  l.max_ttl = 300s;
  return l;
}

TEST(FlowTable, HoldsUpToItsBoundAndRefusesBeyond) {
  FlowTable t(limits(2));
  EXPECT_EQ(t.add(flow(1), 0ms), FlowTable::Added::New);
  EXPECT_EQ(t.add(flow(2), 0ms), FlowTable::Added::New);
  EXPECT_EQ(t.add(flow(3), 0ms), FlowTable::Added::Full);
  EXPECT_EQ(t.size(), 2U);
  EXPECT_FALSE(t.contains(flow(3)));
  EXPECT_EQ(t.counters().refused, 1U);
  // A flow already held is refreshed even when full.
  EXPECT_EQ(t.add(flow(2), 1000ms), FlowTable::Added::Refreshed);
}

TEST(FlowTable, DuplicateIsOneEntryWhateverItsTimeout) {
  FlowTable t(limits(10));
  EXPECT_EQ(t.add(flow(1, 30), 0ms), FlowTable::Added::New);
  EXPECT_EQ(t.add(flow(1, 300), 0ms), FlowTable::Added::Refreshed);
  EXPECT_EQ(t.size(), 1U);
  EXPECT_EQ(t.snapshot()[0].timeout_s, 300U);
  EXPECT_EQ(t.counters().refreshed, 1U);
}

TEST(FlowTable, DestroyRemovesOnlyThatFlow) {
  FlowTable t(limits(10));
  (void)t.add(flow(1), 0ms);
  (void)t.add(flow(2), 0ms);
  EXPECT_TRUE(t.remove(flow(1)));
  EXPECT_FALSE(t.remove(flow(1)));
  EXPECT_FALSE(t.contains(flow(1)));
  EXPECT_TRUE(t.contains(flow(2)));
  EXPECT_EQ(t.counters().destroyed, 1U);
}

TEST(FlowTable, EntriesExpireAfterTheirClampedTimeout) {
  FlowTable t(limits(10));
  (void)t.add(flow(1, 10), 0ms);    // below the floor: 60 s
  (void)t.add(flow(2, 120), 0ms);   // as the kernel said
  (void)t.add(flow(3, 9999), 0ms);  // above the ceiling: 300 s
  (void)t.add(flow(4, 0), 0ms);     // unknown: 300 s
  EXPECT_EQ(t.next_expiry(), ms(60000));
  EXPECT_EQ(t.expire(59999ms), 0U);
  EXPECT_EQ(t.expire(60000ms), 1U);
  EXPECT_FALSE(t.contains(flow(1)));
  std::vector<Flow> removed;
  EXPECT_EQ(t.expire(120000ms, &removed), 1U);
  EXPECT_EQ(removed, std::vector<Flow>{flow(2)});
  EXPECT_EQ(t.expire(299999ms), 0U);
  EXPECT_EQ(t.expire(300000ms), 2U);
  EXPECT_EQ(t.size(), 0U);
  EXPECT_EQ(t.counters().expired, 4U);
  EXPECT_EQ(t.next_expiry(), std::nullopt);
}

TEST(FlowTable, RefreshPostponesExpiry) {
  FlowTable t(limits(10));
  (void)t.add(flow(1, 60), 0ms);
  (void)t.add(flow(1, 60), 50000ms);
  EXPECT_EQ(t.expire(60000ms), 0U);
  EXPECT_EQ(t.expire(110000ms), 1U);
}

TEST(FlowTable, ReplaceKeepsOnlyTheNewSetWithinTheBound) {
  FlowTable t(limits(2));
  (void)t.add(flow(1), 0ms);
  EXPECT_EQ(t.replace({flow(2), flow(3), flow(4)}, 0ms), 1U);
  EXPECT_FALSE(t.contains(flow(1)));
  EXPECT_EQ(t.snapshot(), (std::vector<Flow>{flow(2), flow(3)}));
}

}  // namespace
}  // namespace hanat::handover
