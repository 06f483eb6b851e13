// SPDX-License-Identifier: GPL-2.0-or-later
// parse_ct_message() and should_carry() of netfilter/conntrack.h on messages built here the
// way the kernel lays them out (nf_conntrack_netlink.c): no kernel needed.
#include <arpa/inet.h>
#include <libmnl/libmnl.h>
#include <linux/netfilter/nf_conntrack_common.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <netinet/in.h>

#include <cstring>
#include <optional>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <linux/netfilter/nf_conntrack_tcp.h>

#include "netfilter/conntrack.h"
#include "tests/unit/netfilter/ct_builder.h"

namespace hanat::netfilter {
namespace {

using testing::build_ct;
using testing::CtSpec;
using ::testing::HasSubstr;

uint32_t ip(const char* text) {
  in_addr a{};
  EXPECT_EQ(inet_pton(AF_INET, text, &a), 1) << text;
  return ntohl(a.s_addr);
}

constexpr uint32_t kNatted =
    IPS_CONFIRMED | IPS_SEEN_REPLY | IPS_ASSURED | IPS_SRC_NAT | IPS_SRC_NAT_DONE;

CtSpec tcp_flow() {
  CtSpec s;
  s.proto = IPPROTO_TCP;
  s.orig_src = ip("198.18.1.2");
  s.orig_dst = ip("198.19.1.2");
  s.sport = 40000;
  s.dport = 443;
  s.reply_dst = ip("198.19.1.1");  // masqueraded to the NAT's address
  s.reply_dport = 61000;
  s.status = kNatted;
  s.timeout = 300;
  s.id = 77;
  return s;
}

TEST(CtMessage, DumpReplyOfATcpFlowParsesToItsOriginalTuple) {
  const auto msg = build_ct(tcp_flow());
  auto m = parse_ct_message(msg.data(), msg.size());
  ASSERT_TRUE(m) << m.error();
  EXPECT_EQ(m->kind, CtKind::Update);
  EXPECT_EQ(m->family, AF_INET);
  EXPECT_EQ(m->flow.proto, IPPROTO_TCP);
  EXPECT_EQ(m->flow.src, ip("198.18.1.2"));
  EXPECT_EQ(m->flow.dst, ip("198.19.1.2"));
  EXPECT_EQ(m->flow.sport, 40000);
  EXPECT_EQ(m->flow.dport, 443);
  EXPECT_EQ(m->flow.timeout_s, 300U);
  EXPECT_EQ(m->entry.reply.dst, ip("198.19.1.1"));
  EXPECT_EQ(m->entry.status, kNatted);
  EXPECT_EQ(m->id, 77U);
}

TEST(CtMessage, TcpStateIsReadAndTimeWaitOrCloseIsAClosedFlow) {
  CtSpec s = tcp_flow();
  auto plain = build_ct(s);
  auto m = parse_ct_message(plain.data(), plain.size());
  ASSERT_TRUE(m) << m.error();
  EXPECT_EQ(m->tcp, std::nullopt);
  EXPECT_FALSE(tcp_closed(*m));
  const std::vector<std::pair<int, bool>> states = {
      {TCP_CONNTRACK_ESTABLISHED, false}, {TCP_CONNTRACK_FIN_WAIT, false},
      {TCP_CONNTRACK_CLOSE_WAIT, false},  {TCP_CONNTRACK_LAST_ACK, false},
      {TCP_CONNTRACK_TIME_WAIT, true},    {TCP_CONNTRACK_CLOSE, true}};
  for (const auto& [state, closed] : states) {
    s.with_tcp_info = true;
    s.tcp_state = static_cast<uint8_t>(state);
    auto msg = build_ct(s);
    auto t = parse_ct_message(msg.data(), msg.size());
    ASSERT_TRUE(t) << t.error();
    ASSERT_TRUE(t->tcp.has_value());
    EXPECT_EQ(t->tcp->state, state);
    EXPECT_EQ(tcp_closed(*t), closed) << state;
  }
  s.short_tcp_state = true;
  auto bad = build_ct(s);
  auto b = parse_ct_message(bad.data(), bad.size());
  ASSERT_FALSE(b);
  EXPECT_THAT(b.error(), HasSubstr("TCP state truncated"));
}

TEST(CtMessage, EventKindsFollowTypeAndFlags) {
  CtSpec s = tcp_flow();
  s.flags = NLM_F_CREATE | NLM_F_EXCL;
  auto msg = build_ct(s);
  auto m = parse_ct_message(msg.data(), msg.size());
  ASSERT_TRUE(m) << m.error();
  EXPECT_EQ(m->kind, CtKind::New);

  s.type = IPCTNL_MSG_CT_DELETE;
  s.flags = 0;
  msg = build_ct(s);
  m = parse_ct_message(msg.data(), msg.size());
  ASSERT_TRUE(m) << m.error();
  EXPECT_EQ(m->kind, CtKind::Destroy);
  EXPECT_EQ(m->flow.sport, 40000);
}

TEST(CtMessage, UdpAndIcmpTuples) {
  CtSpec s = tcp_flow();
  s.proto = IPPROTO_UDP;
  s.dport = 53;
  auto msg = build_ct(s);
  auto m = parse_ct_message(msg.data(), msg.size());
  ASSERT_TRUE(m) << m.error();
  EXPECT_EQ(m->flow.proto, IPPROTO_UDP);
  EXPECT_EQ(m->flow.dport, 53);

  s.proto = IPPROTO_ICMP;
  s.icmp_id = 4242;
  msg = build_ct(s);
  m = parse_ct_message(msg.data(), msg.size());
  ASSERT_TRUE(m) << m.error();
  EXPECT_EQ(m->flow.proto, IPPROTO_ICMP);
  EXPECT_EQ(m->flow.sport, 4242);
  EXPECT_EQ(m->flow.dport, 0);
}

TEST(CtMessage, Ipv6EntryIsRecognisedAndNotParsedFurther) {
  CtSpec s = tcp_flow();
  s.family = AF_INET6;
  const auto msg = build_ct(s);
  auto m = parse_ct_message(msg.data(), msg.size());
  ASSERT_TRUE(m) << m.error();
  EXPECT_EQ(m->family, AF_INET6);
  EXPECT_FALSE(should_carry(*m, FlowFilter{}));
}

TEST(CtMessage, MalformedInputIsAnErrorNamingWhatIsWrong) {
  const auto good = build_ct(tcp_flow());
  auto err = [](const std::vector<uint8_t>& b, size_t len) {
    auto m = parse_ct_message(b.data(), len);
    return m ? std::string("parsed") : m.error();
  };
  EXPECT_THAT(err(good, 3), HasSubstr("truncated header"));
  EXPECT_THAT(err(good, good.size() - 1), HasSubstr("beyond the"));
  auto other = good;
  reinterpret_cast<nlmsghdr*>(other.data())->nlmsg_type = (NFNL_SUBSYS_NFTABLES << 8) | 1;
  EXPECT_THAT(err(other, other.size()), HasSubstr("not ctnetlink"));
  other = good;
  reinterpret_cast<nlmsghdr*>(other.data())->nlmsg_type = (NFNL_SUBSYS_CTNETLINK << 8) | 9;
  EXPECT_THAT(err(other, other.size()), HasSubstr("type 9"));

  CtSpec s = tcp_flow();
  s.with_reply = false;
  auto b = build_ct(s);
  EXPECT_THAT(err(b, b.size()), HasSubstr("no reply tuple"));
  s = tcp_flow();
  s.with_ports = false;
  b = build_ct(s);
  EXPECT_THAT(err(b, b.size()), HasSubstr("original tuple ports"));
  s = tcp_flow();
  s.short_status = true;
  b = build_ct(s);
  EXPECT_THAT(err(b, b.size()), HasSubstr("status truncated"));
  // A message cut after its headers has no tuple at all.
  other = good;
  auto* nlh = reinterpret_cast<nlmsghdr*>(other.data());
  nlh->nlmsg_len = static_cast<uint32_t>(mnl_nlmsg_size(sizeof(nfgenmsg)));
  EXPECT_THAT(err(other, nlh->nlmsg_len), HasSubstr("no original tuple"));
}

TEST(CtMessage, EveryTruncationAndMisalignmentIsHandled) {
  const auto good = build_ct(tcp_flow());
  // Every prefix length, at an odd address: an error or a parse, never a read past the end
  // (ASan in the sanitizer build).
  for (size_t len = 0; len <= good.size(); ++len) {
    std::vector<uint8_t> shifted(len + 1);
    std::memcpy(shifted.data() + 1, good.data(), len);
    auto* nlh_len = shifted.data() + 1;
    if (len >= 4) {
      const uint32_t l = static_cast<uint32_t>(len);
      std::memcpy(nlh_len, &l, sizeof l);  // the header claims exactly what is there
    }
    auto m = parse_ct_message(shifted.data() + 1, len);
    if (len == good.size()) {
      ASSERT_TRUE(m) << m.error();
      EXPECT_EQ(m->flow.sport, 40000);
    }
  }
}

FlowFilter carry(std::vector<std::string> cidrs, std::vector<const char*> local) {
  auto f = flow_filter(cidrs);
  EXPECT_TRUE(f) << f.error().message;
  FlowFilter out = f ? *f : FlowFilter{};
  for (const char* l : local) out.local.push_back(ip(l));
  return out;
}

CtMessage parsed(const CtSpec& s) {
  const auto msg = build_ct(s);
  auto m = parse_ct_message(msg.data(), msg.size());
  EXPECT_TRUE(m) << m.error();
  return m ? *m : CtMessage{};
}

TEST(FlowCarry, SourceNattedFlowFromAGivenSourceIsCarried) {
  const auto f = carry({"198.18.1.0/24"}, {"198.19.1.1", "198.18.1.1"});
  EXPECT_TRUE(should_carry(parsed(tcp_flow()), f));
  EXPECT_TRUE(should_carry(parsed(tcp_flow()), carry({}, {"198.19.1.1"})));  // any source
}

TEST(FlowCarry, OtherFlowsAreNot) {
  const auto f = carry({"198.18.1.0/24"}, {"198.19.1.1", "198.18.1.1"});
  CtSpec s = tcp_flow();
  s.status = IPS_CONFIRMED | IPS_ASSURED;  // forwarded without NAT: nothing to steer
  EXPECT_FALSE(should_carry(parsed(s), f));
  s = tcp_flow();
  s.no_status = true;
  EXPECT_FALSE(should_carry(parsed(s), f));
  s = tcp_flow();
  s.orig_src = ip("198.18.2.9");  // another table's source
  EXPECT_FALSE(should_carry(parsed(s), f));
  s = tcp_flow();
  s.orig_src = ip("198.18.1.1");  // the NAT host itself (its LAN address)
  EXPECT_FALSE(should_carry(parsed(s), f));
  s = tcp_flow();
  s.orig_dst = ip("198.18.1.1");  // to the NAT host
  EXPECT_FALSE(should_carry(parsed(s), f));
  s = tcp_flow();
  s.proto = 47;  // GRE: no 5-tuple the steering could match
  EXPECT_FALSE(should_carry(parsed(s), f));
}

// A zone taken over leaves on a secondary IP (its Elastic IP there): a handover leaves its
// flows out (the EIP leaves with the zone), and carries the rest.
TEST(FlowCarry, AFlowTranslatedToANotAnsweringAddressIsNot) {
  auto f = carry({"198.18.1.0/24"}, {"198.19.1.1", "198.19.1.5", "198.18.1.1"});
  f.not_answering = {ip("198.19.1.5")};
  CtSpec s = tcp_flow();
  s.reply_dst = ip("198.19.1.5");
  EXPECT_FALSE(should_carry(parsed(s), f));
  EXPECT_TRUE(should_carry(parsed(tcp_flow()), f)) << "on the primary address: carried";
}

TEST(FlowCarry, UnparsableCidrIsNamed) {
  auto f = flow_filter({"198.18.1.0/24", "198.18.300.0/24"});
  ASSERT_FALSE(f);
  EXPECT_THAT(f.error().message, HasSubstr("\"198.18.300.0/24\""));
}

}  // namespace
}  // namespace hanat::netfilter
