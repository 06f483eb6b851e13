// SPDX-License-Identifier: GPL-2.0-or-later
// The purge decision of netfilter/conntrack.h on hand-built entries: no kernel needed.
#include "netfilter/conntrack.h"

#include <arpa/inet.h>
#include <linux/netfilter/nf_conntrack_common.h>

#include <gtest/gtest.h>

namespace hanat::netfilter {
namespace {

uint32_t ip(const char* text) {
  in_addr a{};
  EXPECT_EQ(inet_pton(AF_INET, text, &a), 1) << text;
  return ntohl(a.s_addr);
}

// A flow from `src` to `dst`; `nat` is the address the reply goes to (the original source
// when there was no source NAT).
CtEntry flow(const char* src, const char* dst, const char* reply_to, uint32_t status) {
  CtEntry e;
  e.orig = {ip(src), ip(dst)};
  e.reply = {ip(dst), ip(reply_to)};
  e.status = status;
  return e;
}

constexpr uint32_t kConfirmed = IPS_CONFIRMED | IPS_SEEN_REPLY | IPS_ASSURED;

PurgeFilter filter(std::vector<std::string> cidrs, std::vector<const char*> local = {}) {
  NatSpec s;
  s.egress_interface = "wan0";
  s.source_cidrs = std::move(cidrs);
  auto f = purge_filter(s);
  EXPECT_TRUE(f) << f.error().message;
  PurgeFilter out = f ? *f : PurgeFilter{};
  for (const char* l : local) out.local.push_back(ip(l));
  return out;
}

TEST(ConntrackPurge, UnnattedFlowFromAConfiguredSourceIsPurged) {
  const auto f = filter({"198.18.1.0/24"}, {"198.19.1.1", "198.18.1.1"});
  EXPECT_TRUE(should_purge(flow("198.18.1.2", "198.19.1.2", "198.18.1.2", kConfirmed), f));
  // Without CTA_STATUS the reply tuple alone decides.
  CtEntry no_status = flow("198.18.1.2", "198.19.1.2", "198.18.1.2", 0);
  no_status.status.reset();
  EXPECT_TRUE(should_purge(no_status, f));
}

TEST(ConntrackPurge, NattedFlowIsKept) {
  const auto f = filter({"198.18.1.0/24"}, {"198.19.1.1"});
  // Masqueraded: the reply goes to the NAT's address, and the kernel set IPS_SRC_NAT.
  EXPECT_FALSE(should_purge(
      flow("198.18.1.2", "198.19.1.2", "198.19.1.1", kConfirmed | IPS_SRC_NAT | IPS_SRC_NAT_DONE),
      f));
  // Either sign alone is enough.
  EXPECT_FALSE(
      should_purge(flow("198.18.1.2", "198.19.1.2", "198.18.1.2", kConfirmed | IPS_SRC_NAT), f));
  EXPECT_FALSE(should_purge(flow("198.18.1.2", "198.19.1.2", "198.19.1.1", kConfirmed), f));
  // A null binding (nat hook ran, no rule matched) is no source NAT.
  EXPECT_TRUE(should_purge(
      flow("198.18.1.2", "198.19.1.2", "198.18.1.2", kConfirmed | IPS_SRC_NAT_DONE), f));
}

TEST(ConntrackPurge, SourceOutsideTheCidrsIsKept) {
  const auto f = filter({"198.18.1.0/24", "198.18.4.0/22"});
  EXPECT_FALSE(should_purge(flow("198.18.2.2", "198.19.1.2", "198.18.2.2", kConfirmed), f));
  EXPECT_FALSE(should_purge(flow("198.18.0.255", "198.19.1.2", "198.18.0.255", kConfirmed), f));
  EXPECT_TRUE(should_purge(flow("198.18.1.255", "198.19.1.2", "198.18.1.255", kConfirmed), f));
  EXPECT_TRUE(should_purge(flow("198.18.7.9", "198.19.1.2", "198.18.7.9", kConfirmed), f));
  EXPECT_FALSE(should_purge(flow("198.18.8.0", "198.19.1.2", "198.18.8.0", kConfirmed), f));
}

TEST(ConntrackPurge, EmptySourceListMeansAnySourceLikeTheRule) {
  const auto f = filter({}, {"198.19.1.1"});
  EXPECT_TRUE(should_purge(flow("198.18.9.9", "198.19.1.2", "198.18.9.9", kConfirmed), f));
  const auto all = filter({"0.0.0.0/0"});
  EXPECT_TRUE(should_purge(flow("198.18.9.9", "198.19.1.2", "198.18.9.9", kConfirmed), all));
}

TEST(ConntrackPurge, TheHostsOwnConnectionsAreKept) {
  const auto f = filter({"198.18.0.0/15"}, {"198.18.1.1", "198.19.1.1"});
  // Outbound from the NAT host itself (its address is inside the VPC CIDR).
  EXPECT_FALSE(should_purge(flow("198.19.1.1", "198.19.1.2", "198.19.1.1", kConfirmed), f));
  // Inbound to the NAT host (a peer's probe or agent check, an ssh session).
  EXPECT_FALSE(should_purge(flow("198.18.1.2", "198.18.1.1", "198.18.1.2", kConfirmed), f));
  // Redirected to the host (DNAT to a local address): the reply comes from the host.
  CtEntry redirected = flow("198.18.1.2", "198.19.1.2", "198.18.1.2", kConfirmed | IPS_DST_NAT);
  redirected.reply.src = ip("198.18.1.1");
  EXPECT_FALSE(should_purge(redirected, f));
  // Loopback, with or without lo's address in the list.
  EXPECT_FALSE(should_purge(flow("127.0.0.1", "127.0.0.1", "127.0.0.1", kConfirmed), f));
}

TEST(ConntrackPurge, FilterNamesABadCidr) {
  NatSpec s;
  s.source_cidrs = {"198.18.1.0/24", "198.18.1.1/24"};
  auto f = purge_filter(s);
  ASSERT_FALSE(f);
  EXPECT_NE(f.error().message.find("\"198.18.1.1/24\""), std::string::npos) << f.error().message;
}

}  // namespace
}  // namespace hanat::netfilter
