// SPDX-License-Identifier: GPL-2.0-or-later
// Steering batches (netfilter/steer_batch.h): rules as nft builds them (golden files from
// tests/golden/nft/regen_steer.sh), the set element key layout, batch shapes and bounds.
#include "netfilter/steer_batch.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>

#include <fstream>
#include <sstream>
#include <vector>

namespace hanat::netfilter {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

std::string read_golden(const std::string& name) {
  std::ifstream in(std::string(HANAT_NFT_GOLDEN_DIR) + "/" + name);
  EXPECT_TRUE(in.good()) << "missing golden file " << name;
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

constexpr uint32_t ip(uint32_t a, uint32_t b, uint32_t c, uint32_t d) {
  return a << 24 | b << 16 | c << 8 | d;
}

SteerSpec spec() {
  SteerSpec s;
  s.local = ip(198, 18, 3, 2);
  s.peer = ip(198, 18, 2, 2);
  s.mark = 0x48000001;
  s.route_table = 4800;
  s.rule_priority = 4800;
  s.max_flows = 1000;
  s.max_timeout_s = 300;
  return s;
}

Flow tcp(uint16_t sport, uint32_t timeout_s = 0) {
  return Flow{IPPROTO_TCP, ip(198, 18, 1, 2), ip(198, 19, 0, 1), sport, 443, timeout_s};
}

size_t count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

TEST(SteerBatch, NamesCarryThePeerAddressInHex) {
  EXPECT_EQ(steer_table_name(ip(198, 18, 2, 2)), "hanat_steer_c6120202");
  EXPECT_EQ(steer_link_name(ip(198, 18, 2, 2)), "hanat-c6120202");
  EXPECT_LE(steer_link_name(0xffffffff).size(), 15U) << "IFNAMSIZ - 1";
}

TEST(SteerBatch, VniIsTheSameFromBothSidesAndFitsIn24Bits) {
  const uint32_t a = ip(198, 18, 2, 2);
  const uint32_t b = ip(198, 18, 3, 2);
  EXPECT_EQ(steer_vni(a, b), steer_vni(b, a));
  EXPECT_NE(steer_vni(a, b), steer_vni(a, ip(198, 18, 4, 2)));
  EXPECT_LT(steer_vni(ip(10, 255, 255, 255), ip(11, 0, 0, 0)), 1U << 24);
  EXPECT_NE(steer_vni(ip(10, 0, 0, 1), ip(11, 0, 0, 1)), 0U) << "VNI 0 is avoided";
}

TEST(SteerBatch, RulesAreTheExpressionsNftBuildsForTheSameText) {
  SteerSpec s = spec();
  s.peer = ip(198, 18, 2, 2);
  auto rules = steer_rules(s);
  ASSERT_TRUE(rules) << rules.error().message;
  auto catcher = steer_catch_rule(s);
  ASSERT_TRUE(catcher) << catcher.error().message;
  const std::string text =
      rule_debug_text(catcher->get()) + "\n" + rule_debug_text((*rules)[0].get()) + "\n" +
      rule_debug_text((*rules)[1].get()) + "\n" + rule_debug_text((*rules)[2].get()) + "\n";
  EXPECT_EQ(text, read_golden("steer_rules.txt"));
}

TEST(SteerBatch, ElementKeyIsTheLayoutNftUses) {
  // steer_elements.txt: nft prints the key as host-order 32-bit words:
  //   element 020112c6 010013c6 00000006 0000409c 0000bb01
  const auto key = steer_key(Flow{IPPROTO_TCP, ip(198, 18, 1, 2), ip(198, 19, 0, 1), 40000, 443});
  const std::vector<uint8_t> want = {0xc6, 0x12, 0x01, 0x02, 0xc6, 0x13, 0x00, 0x01, 0x06, 0x00,
                                     0x00, 0x00, 0x9c, 0x40, 0x00, 0x00, 0x01, 0xbb, 0x00, 0x00};
  EXPECT_EQ(std::vector<uint8_t>(key.begin(), key.end()), want);
  EXPECT_THAT(read_golden("steer_elements.txt"),
              HasSubstr("element 020112c6 010013c6 00000006 0000409c 0000bb01"));
}

TEST(SteerBatch, TableIsReplacedAtomicallyWithAnEmptyBoundedSet) {
  auto b = build_steer_table(spec(), 10);
  ASSERT_TRUE(b) << b.error().message;
  const std::string d = describe_steer(*b);
  EXPECT_EQ(count(d, "newtable ip hanat_steer_c6120202"), 2U) << d;
  EXPECT_EQ(count(d, "deltable ip hanat_steer_c6120202"), 1U) << d;
  EXPECT_THAT(d, HasSubstr("newset hanat_steer_c6120202 flows keylen 20 flags 16 size 1000"));
  EXPECT_THAT(d, HasSubstr("type filter hook prerouting prio -150"));
  EXPECT_THAT(d, Not(HasSubstr("newsetelem")));
  EXPECT_EQ(b->begin_seq, 10U);
  EXPECT_THAT(d,
              HasSubstr("newchain ip hanat_steer_c6120202 forward type filter hook 2 prio -150"));
  EXPECT_EQ(b->what(b->objects.back().first),
            "rule 1 in chain ip hanat_steer_c6120202 forward (clear mark)");
}

TEST(SteerBatch, FlowsGetTheirConntrackTimeoutCappedByTheDrain) {
  const SteerSpec s = spec();
  EXPECT_EQ(steer_timeout_ms(s, tcp(1, 0)), 300000U) << "unknown: the cap";
  EXPECT_EQ(steer_timeout_ms(s, tcp(1, 120)), 120000U);
  EXPECT_EQ(steer_timeout_ms(s, tcp(1, 432000)), 300000U) << "established TCP: 5 days left";
  auto b = build_flow_add(s, std::vector<Flow>{tcp(40000, 120)}, 1);
  ASSERT_TRUE(b) << b.error().message;
  EXPECT_THAT(describe_steer(b->batch),
              HasSubstr("  key c6120102 c6130001 06000000 9c400000 01bb0000 timeout 120000ms"));
}

TEST(SteerBatch, IcmpAndOtherProtocolsAreSkippedNotSteered) {
  std::vector<Flow> flows = {tcp(1), Flow{IPPROTO_ICMP, ip(198, 18, 1, 2), ip(198, 19, 0, 1), 7, 0},
                             Flow{IPPROTO_UDP, ip(198, 18, 1, 2), ip(198, 19, 0, 1), 5353, 53},
                             Flow{47, ip(198, 18, 1, 2), ip(198, 19, 0, 1), 0, 0}};
  auto b = build_flow_add(spec(), flows, 1);
  ASSERT_TRUE(b) << b.error().message;
  EXPECT_EQ(b->elements, 2U);
  EXPECT_EQ(b->skipped, 2U);
  EXPECT_EQ(count(describe_steer(b->batch), "  key "), 2U);
}

TEST(SteerBatch, MoreFlowsThanTheSetHoldsIsRefusedNamingBothCounts) {
  SteerSpec s = spec();
  s.max_flows = 3;
  std::vector<Flow> flows = {tcp(1), tcp(2), tcp(3)};
  EXPECT_TRUE(build_flow_add(s, flows, 1));
  flows.push_back(tcp(4));
  auto b = build_flow_add(s, flows, 1);
  ASSERT_FALSE(b);
  EXPECT_EQ(b.error().message,
            "flows of peer 198.18.2.2: 4 in one batch, more than the flow set holds (max_flows 3)");
  // Skipped flows do not count against the bound.
  flows.back().proto = IPPROTO_ICMP;
  EXPECT_TRUE(build_flow_add(s, flows, 1));
}

TEST(SteerBatch, LargeAddsAreSplitIntoBoundedMessagesOfOneTransaction) {
  SteerSpec s = spec();
  s.max_flows = 65536;
  std::vector<Flow> flows;
  for (uint16_t p = 1; p <= 1100; ++p) flows.push_back(tcp(p));
  auto b = build_flow_add(s, flows, 1);
  ASSERT_TRUE(b) << b.error().message;
  const std::string d = describe_steer(b->batch);
  EXPECT_EQ(count(d, "newsetelem"), 5U) << "4 x 256 + 76";
  EXPECT_EQ(count(d, "  key "), 1100U);
  EXPECT_EQ(count(d, "batch begin"), 1U);
  EXPECT_EQ(count(d, "batch end"), 1U);
  EXPECT_EQ(b->batch.what(b->batch.objects[1].first),
            "elements of set ip hanat_steer_c6120202 flows 257-512");
  for (size_t i = 0; i + 1 < b->batch.objects.size(); ++i) {
    EXPECT_LT(b->batch.objects[i].first, b->batch.objects[i + 1].first);
  }
}

TEST(SteerBatch, RemovalCreatesMissingElementsThenDeletesThem) {
  auto b = build_flow_remove(spec(), std::vector<Flow>{tcp(1), tcp(2)}, 1);
  ASSERT_TRUE(b) << b.error().message;
  const std::string d = describe_steer(b->batch);
  const auto add = d.find("newsetelem");
  const auto del = d.find("delsetelem");
  ASSERT_NE(add, std::string::npos) << d;
  ASSERT_NE(del, std::string::npos) << d;
  EXPECT_LT(add, del);
  EXPECT_EQ(count(d, "  key "), 4U);
  EXPECT_EQ(count(d, "timeout 1000ms"), 2U) << "transient elements";
}

TEST(SteerBatch, CatchUnknownFlushesThenAddsOrOnlyFlushes) {
  auto on = build_catch_unknown(spec(), true, 1);
  ASSERT_TRUE(on) << on.error().message;
  const std::string d_on = describe_steer(*on);
  EXPECT_THAT(d_on, HasSubstr("delrule (flush) chain catch_unknown"));
  EXPECT_THAT(d_on, HasSubstr("[ ct load state => reg 1 ]"));
  auto off = build_catch_unknown(spec(), false, 1);
  ASSERT_TRUE(off) << off.error().message;
  const std::string d_off = describe_steer(*off);
  EXPECT_THAT(d_off, HasSubstr("delrule (flush) chain catch_unknown"));
  EXPECT_THAT(d_off, Not(HasSubstr("newrule")));
}

TEST(SteerBatch, BadSpecsAreRefusedNamingTheFieldAndValue) {
  auto msg = [](SteerSpec s) {
    auto v = validate(s);
    return v ? std::string("ok") : v.error().message;
  };
  EXPECT_EQ(msg(spec()), "ok");
  SteerSpec s = spec();
  s.peer = 0;
  EXPECT_EQ(msg(s), "steering: peer address 0.0.0.0");
  s = spec();
  s.local = s.peer;
  EXPECT_EQ(msg(s), "steering to peer 198.18.2.2: local address 198.18.2.2 is not usable");
  s = spec();
  s.mark = 0;
  EXPECT_EQ(msg(s), "steering to peer 198.18.2.2: mark 0");
  s = spec();
  s.route_table = 254;
  EXPECT_THAT(msg(s), HasSubstr("route table 254 is reserved"));
  s = spec();
  s.rule_priority = 32766;
  EXPECT_THAT(msg(s), HasSubstr("rule priority 32766 not in 1..32765"));
  s = spec();
  s.max_flows = 0;
  EXPECT_THAT(msg(s), HasSubstr("max_flows 0"));
  s = spec();
  s.mtu = 40;
  EXPECT_THAT(msg(s), HasSubstr("tunnel mtu 40 not in 68..65535"));
  // Every builder refuses a bad spec rather than building half a table.
  s = spec();
  s.mark = 0;
  EXPECT_FALSE(build_steer_table(s, 1));
  EXPECT_FALSE(build_flow_add(s, std::vector<Flow>{tcp(1)}, 1));
  EXPECT_FALSE(build_catch_unknown(s, true, 1));
}

}  // namespace
}  // namespace hanat::netfilter
