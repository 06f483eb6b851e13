// SPDX-License-Identifier: GPL-2.0-or-later
#include "probes/net.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <cerrno>

namespace hanat::probes {
namespace {

using namespace std::chrono_literals;

TEST(ParseIpv4, AcceptsNumericAddressWithPort) {
  auto a = parse_ipv4("198.18.0.1", "peer", 4242);
  ASSERT_TRUE(a) << a.error();
  EXPECT_EQ(a->sin_family, AF_INET);
  EXPECT_EQ(ntohs(a->sin_port), 4242);
  EXPECT_EQ(to_string(*a), "198.18.0.1");
}

TEST(ParseIpv4, RejectsNamesAndGarbageNamingTheField) {
  for (const char* bad : {"", "localhost", "198.18.0.300", "198.18.0", "::1", "198.18.0.1 "}) {
    auto a = parse_ipv4(bad, "peer 'i-b' address");
    ASSERT_FALSE(a) << bad;
    EXPECT_EQ(a.error(),
              std::string("peer 'i-b' address: '") + bad + "' is not a numeric IPv4 address");
  }
}

TEST(BindOptions, ValidatesInterfaceAndSource) {
  EXPECT_TRUE(make_bind_options("", ""));
  auto ok = make_bind_options("198.18.0.2", "eth0");
  ASSERT_TRUE(ok) << ok.error();
  EXPECT_TRUE(ok->has_source);
  EXPECT_EQ(ok->interface, "eth0");
  auto long_if = make_bind_options("", "a-very-long-interface-name");
  ASSERT_FALSE(long_if);
  EXPECT_EQ(long_if.error(),
            "interface: 'a-very-long-interface-name' is not a valid interface name");
  auto bad_src = make_bind_options("eth0", "");
  ASSERT_FALSE(bad_src);
  EXPECT_EQ(bad_src.error(), "source address: 'eth0' is not a numeric IPv4 address");
}

TEST(CheckOptions, NamesTheBadField) {
  EXPECT_EQ(check_options({}), "");
  ProbeOptions o;
  o.interval = 5ms;
  EXPECT_EQ(check_options(o), "probe interval 5 ms is outside 10..60000 ms");
  o = {};
  o.timeout = 0ms;
  EXPECT_EQ(check_options(o), "probe timeout 0 ms is outside 1..60000 ms");
  o = {};
  o.rise = 0;
  EXPECT_EQ(check_options(o), "rise 0 is outside 1..100");
  o = {};
  o.fall = 101;
  EXPECT_EQ(check_options(o), "fall 101 is outside 1..100");
  o = {};
  o.source_address = "nat-a";
  EXPECT_EQ(check_options(o), "source address: 'nat-a' is not a numeric IPv4 address");
}

TEST(ClassifyErrno, MapsToFailureKinds) {
  EXPECT_EQ(classify_errno(ECONNREFUSED), Failure::Refused);
  EXPECT_EQ(classify_errno(ETIMEDOUT), Failure::Timeout);
  EXPECT_EQ(classify_errno(ENETUNREACH), Failure::Unreachable);
  EXPECT_EQ(classify_errno(EHOSTUNREACH), Failure::Unreachable);
  EXPECT_EQ(classify_errno(EMFILE), Failure::Error);
  EXPECT_STREQ(to_string(Failure::AgentDown), "agent-down");
  EXPECT_STREQ(to_string(ProbeKind::Agent), "agent");
}

}  // namespace
}  // namespace hanat::probes
