// SPDX-License-Identifier: GPL-2.0-or-later
#include "core/engine/allocation.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>

namespace hanat::engine {
namespace {

using ::testing::ElementsAre;

// Names the member each table went to ("-" for fallback, "?" for nobody).
std::vector<std::string> names(const std::vector<AllocMember>& m, const std::vector<int>& a) {
  std::vector<std::string> out;
  for (int i : a) {
    out.push_back(i >= 0 ? std::string(m[static_cast<std::size_t>(i)].id)
                         : (i == kAllocFallback ? "-" : "?"));
  }
  return out;
}

TEST(Allocation, PrefersAHealthyMemberInTheHomeZone) {
  std::vector<AllocMember> m{{"i-a", "a", 1}, {"i-b", "b", 2}};
  std::vector<AllocTable> t{{"rtb-b", "b"}, {"rtb-a", "a"}};
  EXPECT_THAT(names(m, allocate(m, t, false)), ElementsAre("i-b", "i-a"));
}

TEST(Allocation, SpreadsAZoneEvenlyWithStableTieBreakById) {
  std::vector<AllocMember> m{{"i-y", "a", 1}, {"i-x", "a", 2}};
  std::vector<AllocTable> t{{"rtb-4", "a"}, {"rtb-1", "a"}, {"rtb-3", "a"}, {"rtb-2", "a"}};
  // In id order rtb-1..4 go i-x, i-y, i-x, i-y: even, and by id rather than launch order.
  EXPECT_THAT(names(m, allocate(m, t, false)), ElementsAre("i-y", "i-x", "i-x", "i-y"));
}

TEST(Allocation, LeastLoadedMemberTakesTablesOfAZoneWithoutMembers) {
  std::vector<AllocMember> m{{"i-a", "a", 300}, {"i-b", "b", 100}, {"i-c", "b", 200}};
  std::vector<AllocTable> t{
      {"rtb-a1", "a"}, {"rtb-b1", "b"}, {"rtb-c1", "c"}, {"rtb-c2", "c"}, {"rtb-c3", "c"}};
  // Zone step: a1->i-a, b1->i-b; i-c has none, so it takes c1 first; then all have one and
  // the oldest (i-b, launch 100) takes c2; then i-a and i-c tie at one, i-c is older.
  EXPECT_THAT(names(m, allocate(m, t, false)), ElementsAre("i-a", "i-b", "i-c", "i-b", "i-c"));
}

TEST(Allocation, SameAnswerWhateverTheInputOrder) {
  std::vector<AllocMember> m{{"i-a", "a", 1}, {"i-b", "a", 2}, {"i-c", "b", 3}};
  std::vector<AllocTable> t{{"r1", "a"}, {"r2", "a"}, {"r3", "b"}, {"r4", "c"}, {"r5", "c"}};
  auto ref = names(m, allocate(m, t, false));
  std::vector<AllocMember> m2{m[2], m[0], m[1]};
  std::vector<AllocTable> t2{t[4], t[2], t[0], t[3], t[1]};
  auto got = names(m2, allocate(m2, t2, false));
  EXPECT_THAT(got, ElementsAre(ref[4], ref[2], ref[0], ref[3], ref[1]));
}

TEST(Allocation, FallbackOnlyWhenNoMemberIsHealthy) {
  std::vector<AllocMember> none;
  std::vector<AllocTable> t{{"r1", "a"}, {"r2", "b"}};
  EXPECT_THAT(allocate(none, t, true), ElementsAre(kAllocFallback, kAllocFallback));
  EXPECT_THAT(allocate(none, t, false), ElementsAre(kAllocNobody, kAllocNobody));
  std::vector<AllocMember> one{{"i-a", "a", 1}};
  EXPECT_THAT(allocate(one, t, true), ElementsAre(0, 0));
}

}  // namespace
}  // namespace hanat::engine
