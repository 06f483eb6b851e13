// SPDX-License-Identifier: GPL-2.0-or-later
#include "netfilter/compare.h"

#include <linux/netfilter.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace hanat::netfilter {
namespace {

using ::testing::HasSubstr;

NatSpec spec() {
  NatSpec s;
  s.egress_interface = "eth0";
  s.source_cidrs = {"198.18.0.0/15", "198.19.1.0/24"};
  return s;
}

TableState want() {
  return desired_state(spec()).value();
}

TEST(DesiredState, OneNatChainWithOneRulePerCidr) {
  const auto t = want();
  EXPECT_TRUE(t.exists);
  EXPECT_EQ(t.name, "hanat");
  ASSERT_EQ(t.chains.size(), 1U);
  EXPECT_EQ(t.chains[0].name, "postrouting");
  EXPECT_EQ(t.chains[0].type, "nat");
  EXPECT_EQ(t.chains[0].hook, NF_INET_POST_ROUTING);
  EXPECT_EQ(t.chains[0].priority, 100);
  ASSERT_EQ(t.chains[0].rules.size(), 2U);
  EXPECT_EQ(t.chains[0].rules[1].back(), "[ masq ]");
}

TEST(DesiredState, ForwardCountersAddTwoFilterChainsAtMangle) {
  auto s = spec();
  s.forward_counters = true;
  const auto t = desired_state(s).value();
  ASSERT_EQ(t.chains.size(), 3U);
  EXPECT_EQ(t.chains[1].name, "forward_in");
  EXPECT_EQ(t.chains[1].type, "filter");
  EXPECT_EQ(t.chains[1].hook, NF_INET_PRE_ROUTING);
  EXPECT_EQ(t.chains[1].priority, -150);
  EXPECT_EQ(t.chains[2].name, "forward_out");
  EXPECT_EQ(t.chains[2].hook, NF_INET_POST_ROUTING);
  ASSERT_EQ(t.chains[2].rules.size(), 1U);
  EXPECT_EQ(t.chains[2].rules[0].back(), "[ counter ]");
  // A deleted counting chain is drift, named like any other.
  auto actual = t;
  actual.chains.pop_back();
  EXPECT_EQ(compare(t, actual), "chain ip hanat forward_out: missing");
  // ...and with the check off, those chains are not ours to keep.
  EXPECT_EQ(compare(want(), t), "chain ip hanat forward_in: not ours (unexpected chain)");
}

TEST(DesiredState, LeakCounterIsAFilterChainJustAfterSourceNat) {
  auto s = spec();
  s.leak_counter = true;
  const auto t = desired_state(s).value();
  ASSERT_EQ(t.chains.size(), 2U);
  EXPECT_EQ(t.chains[1].name, "leak_out");
  EXPECT_EQ(t.chains[1].type, "filter");
  EXPECT_EQ(t.chains[1].hook, NF_INET_POST_ROUTING);
  EXPECT_EQ(t.chains[1].priority, 101);
  ASSERT_EQ(t.chains[1].rules.size(), 2U);  // one per source CIDR
  EXPECT_EQ(t.chains[1].rules[1].back(), "[ counter ]");
  auto actual = t;
  actual.chains[1].rules.pop_back();
  EXPECT_EQ(compare(t, actual), "chain ip hanat leak_out: 1 rules, want 2");
}

TEST(Compare, EqualStatesHaveNoDifference) {
  auto actual = want();
  actual.chains[0].policy = NF_ACCEPT;  // the kernel reports the default policy explicitly
  EXPECT_EQ(compare(want(), actual), std::nullopt);
}

TEST(Compare, MissingTable) {
  TableState actual;
  actual.name = "hanat";
  EXPECT_EQ(compare(want(), actual), "table ip hanat: missing");
}

TEST(Compare, DormantTable) {
  auto actual = want();
  actual.flags = 1;
  EXPECT_THAT(compare(want(), actual).value(), HasSubstr("table is dormant"));
}

TEST(Compare, MissingChainAndForeignChain) {
  auto actual = want();
  actual.chains.clear();
  EXPECT_EQ(compare(want(), actual), "chain ip hanat postrouting: missing");
  actual = want();
  ChainState sneaky;
  sneaky.name = "sneaky";
  actual.chains.push_back(sneaky);
  EXPECT_EQ(compare(want(), actual), "chain ip hanat sneaky: not ours (unexpected chain)");
}

TEST(Compare, AlteredChain) {
  auto actual = want();
  actual.chains[0].priority = 0;
  EXPECT_THAT(compare(want(), actual).value(),
              HasSubstr("chain ip hanat postrouting: type nat hook 4 priority 0"));
  actual = want();
  actual.chains[0].policy = NF_DROP;
  EXPECT_EQ(compare(want(), actual), "chain ip hanat postrouting: policy 0, want 1");
}

TEST(Compare, MissingAndAlteredRules) {
  auto actual = want();
  actual.chains[0].rules.pop_back();
  EXPECT_EQ(compare(want(), actual), "chain ip hanat postrouting: 1 rules, want 2");
  actual = want();
  actual.chains[0].rules[1].back() = "[ masq flags 0x10 ]";
  EXPECT_THAT(compare(want(), actual).value(),
              HasSubstr("rule 2 in chain ip hanat postrouting: expressions differ"));
  actual = want();
  std::swap(actual.chains[0].rules[0], actual.chains[0].rules[1]);
  EXPECT_THAT(compare(want(), actual).value(), HasSubstr("rule 1 in chain"));
}

}  // namespace
}  // namespace hanat::netfilter
