// SPDX-License-Identifier: GPL-2.0-or-later
#include "netfilter/spec.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace hanat::netfilter {
namespace {

using ::testing::HasSubstr;

TEST(Ipv4Prefix, ParsesCidrAndBareAddress) {
  auto p = parse_ipv4_prefix("198.18.0.0/15");
  ASSERT_TRUE(p) << p.error();
  EXPECT_EQ(p->addr, 0xC6120000U);
  EXPECT_EQ(p->len, 15);
  EXPECT_EQ(to_string(*p), "198.18.0.0/15");
  auto host = parse_ipv4_prefix("198.19.1.7");
  ASSERT_TRUE(host);
  EXPECT_EQ(to_string(*host), "198.19.1.7/32");
  auto any = parse_ipv4_prefix("0.0.0.0/0");
  ASSERT_TRUE(any);
  EXPECT_EQ(any->len, 0);
}

TEST(Ipv4Prefix, RejectsBadInputNamingIt) {
  EXPECT_THAT(parse_ipv4_prefix("198.18.0.0/33").error(), HasSubstr("\"198.18.0.0/33\""));
  EXPECT_THAT(parse_ipv4_prefix("198.18.0.0/33").error(), HasSubstr("prefix length"));
  EXPECT_THAT(parse_ipv4_prefix("198.18.0/16").error(), HasSubstr("not an IPv4 address"));
  EXPECT_THAT(parse_ipv4_prefix("").error(), HasSubstr("not an IPv4 address"));
  EXPECT_THAT(parse_ipv4_prefix("198.18.0.0/").error(), HasSubstr("prefix length"));
  EXPECT_THAT(parse_ipv4_prefix("198.18.0.0/1x").error(), HasSubstr("prefix length"));
  EXPECT_THAT(parse_ipv4_prefix("198.18.0.1/15").error(),
              HasSubstr("host bits set (did you mean 198.18.0.0/15?)"));
}

NatSpec good() {
  NatSpec s;
  s.egress_interface = "eth0";
  s.source_cidrs = {"198.18.0.0/15"};
  return s;
}

TEST(ValidateNatSpec, AcceptsGoodSpec) {
  EXPECT_TRUE(validate(good()));
}

TEST(ValidateNatSpec, RejectsBadEgressInterfaceNamingIt) {
  auto s = good();
  s.egress_interface = "";
  EXPECT_EQ(validate(s).error().message, "nat egress interface \"\": empty");
  s.egress_interface = "averyveryverylong";  // 17 > 15
  EXPECT_EQ(validate(s).error().message,
            "nat egress interface \"averyveryverylong\": longer than 15 characters");
  s.egress_interface = "averyveryverylo";  // exactly 15: fine
  EXPECT_TRUE(validate(s));
  for (const char* bad : {"eth 0", "eth/0", "eth:0", "eth*", ".."}) {
    s.egress_interface = bad;
    auto v = validate(s);
    ASSERT_FALSE(v) << bad;
    EXPECT_THAT(v.error().message, HasSubstr(std::string("\"") + bad + "\""));
    EXPECT_EQ(v.error().code, std::errc::invalid_argument);
  }
}

TEST(ValidateNatSpec, RejectsBadTableAndCidr) {
  auto s = good();
  s.table = "";
  EXPECT_THAT(validate(s).error().message, HasSubstr("nat table name \"\": empty"));
  s.table = "1hanat";
  EXPECT_THAT(validate(s).error().message, HasSubstr("must start with a letter"));
  s.table = "ha nat";
  EXPECT_THAT(validate(s).error().message, HasSubstr("only letters, digits"));
  s.table = std::string(256, 'a');
  EXPECT_THAT(validate(s).error().message, HasSubstr("longer than 255"));
  s = good();
  s.source_cidrs = {"198.18.0.0/15", "198.19.1.1/24"};
  EXPECT_EQ(validate(s).error().message,
            "nat source CIDR \"198.19.1.1/24\": host bits set (did you mean 198.19.1.0/24?)");
}

TEST(RuleText, PrintsLikeNft) {
  auto s = good();
  EXPECT_EQ(rule_text(s, std::nullopt), "oifname \"eth0\" masquerade");
  s.fully_random = true;
  EXPECT_EQ(rule_text(s, parse_ipv4_prefix("198.18.0.0/15").value()),
            "oifname \"eth0\" ip saddr 198.18.0.0/15 masquerade fully-random");
  s.persistent = true;
  EXPECT_EQ(rule_text(s, std::nullopt), "oifname \"eth0\" masquerade fully-random,persistent");
  s.fully_random = false;
  EXPECT_EQ(rule_text(s, std::nullopt), "oifname \"eth0\" masquerade persistent");
}

}  // namespace
}  // namespace hanat::netfilter
