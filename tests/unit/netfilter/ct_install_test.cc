// SPDX-License-Identifier: GPL-2.0-or-later
// Stateful failover without a kernel: what the parser yields for replication
// (replicated_flow(), TCP protoinfo) and the ctnetlink requests that install and remove a
// replicated flow (netfilter/ct_install.h), checked attribute by attribute and pinned byte
// for byte.
#include <arpa/inet.h>
#include <libmnl/libmnl.h>
#include <linux/netfilter/nf_conntrack_common.h>
#include <linux/netfilter/nf_conntrack_tcp.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <netinet/in.h>

#include <array>
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "netfilter/conntrack.h"
#include "netfilter/ct_install.h"
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

constexpr uint32_t kNatted = IPS_CONFIRMED | IPS_SEEN_REPLY | IPS_ASSURED | IPS_SRC_NAT |
                             IPS_SRC_NAT_DONE | IPS_DST_NAT_DONE;

CtSpec tcp_dump() {
  CtSpec s;
  s.proto = IPPROTO_TCP;
  s.orig_src = ip("198.18.1.2");
  s.orig_dst = ip("198.19.1.2");
  s.sport = 40000;
  s.dport = 443;
  s.reply_dst = ip("198.19.1.1");
  s.reply_dport = 61000;
  s.status = kNatted;
  s.timeout = 431990;
  s.id = 5;
  s.with_tcp_info = true;
  s.tcp_state = TCP_CONNTRACK_ESTABLISHED;
  s.wscale_orig = 7;
  s.wscale_reply = 9;
  s.flags_orig = IP_CT_TCP_FLAG_WINDOW_SCALE | IP_CT_TCP_FLAG_SACK_PERM;
  s.flags_reply = IP_CT_TCP_FLAG_WINDOW_SCALE | IP_CT_TCP_FLAG_DATA_UNACKNOWLEDGED;
  return s;
}

ReplicatedFlow udp_replica() {
  ReplicatedFlow r;
  r.flow.proto = IPPROTO_UDP;
  r.flow.src = ip("198.18.1.2");
  r.flow.dst = ip("198.19.1.2");
  r.flow.sport = 5000;
  r.flow.dport = 6000;
  r.flow.timeout_s = 120;
  r.public_port = 40000;
  r.status = kNatted;
  return r;
}

ReplicatedFlow tcp_replica() {
  ReplicatedFlow r = udp_replica();
  r.flow.proto = IPPROTO_TCP;
  r.flow.timeout_s = 431990;
  TcpInfo t;
  t.state = TCP_CONNTRACK_ESTABLISHED;
  t.wscale_orig = 7;
  t.wscale_reply = 9;
  t.flags_orig = IP_CT_TCP_FLAG_WINDOW_SCALE | IP_CT_TCP_FLAG_SACK_PERM;
  t.flags_reply = IP_CT_TCP_FLAG_WINDOW_SCALE | IP_CT_TCP_FLAG_MAXACK_SET;
  r.tcp = t;
  return r;
}

// ---- parsing for replication ----------------------------------------------------------------

TEST(Replication, DumpReplyOfATcpFlowYieldsPublicPortStatusAndTcpState) {
  const auto msg = build_ct(tcp_dump());
  auto m = parse_ct_message(msg.data(), msg.size());
  ASSERT_TRUE(m) << m.error();
  EXPECT_EQ(m->reply_dport, 61000);
  auto r = replicated_flow(*m);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->flow, m->flow);
  EXPECT_EQ(r->flow.timeout_s, 431990U);
  EXPECT_EQ(r->public_port, 61000);
  EXPECT_EQ(r->status, kNatted);
  ASSERT_TRUE(r->tcp.has_value());
  EXPECT_EQ(r->tcp->state, TCP_CONNTRACK_ESTABLISHED);
  EXPECT_EQ(r->tcp->wscale_orig, 7);
  EXPECT_EQ(r->tcp->wscale_reply, 9);
  EXPECT_EQ(r->tcp->flags_orig, IP_CT_TCP_FLAG_WINDOW_SCALE | IP_CT_TCP_FLAG_SACK_PERM);
  EXPECT_EQ(r->tcp->flags_reply, IP_CT_TCP_FLAG_WINDOW_SCALE | IP_CT_TCP_FLAG_DATA_UNACKNOWLEDGED);
}

TEST(Replication, NewAndUpdateEventsYieldAFlowButDestroyDoesNot) {
  CtSpec s = tcp_dump();
  s.flags = NLM_F_CREATE | NLM_F_EXCL;  // the NEW event
  auto msg = build_ct(s);
  auto m = parse_ct_message(msg.data(), msg.size());
  ASSERT_TRUE(m) << m.error();
  EXPECT_EQ(m->kind, CtKind::New);
  EXPECT_TRUE(replicated_flow(*m).has_value());
  s.flags = 0;  // an update event
  msg = build_ct(s);
  m = parse_ct_message(msg.data(), msg.size());
  ASSERT_TRUE(m);
  EXPECT_EQ(m->kind, CtKind::Update);
  EXPECT_TRUE(replicated_flow(*m).has_value());
  s.type = IPCTNL_MSG_CT_DELETE;
  msg = build_ct(s);
  m = parse_ct_message(msg.data(), msg.size());
  ASSERT_TRUE(m);
  EXPECT_EQ(m->kind, CtKind::Destroy);
  EXPECT_FALSE(replicated_flow(*m).has_value());
}

TEST(Replication, UdpFlowHasNoTcpStateAndAnEntryWithoutStatusIsNotReplicated) {
  CtSpec s = tcp_dump();
  s.proto = IPPROTO_UDP;
  s.with_tcp_info = false;
  auto msg = build_ct(s);
  auto m = parse_ct_message(msg.data(), msg.size());
  ASSERT_TRUE(m) << m.error();
  auto r = replicated_flow(*m);
  ASSERT_TRUE(r.has_value());
  EXPECT_FALSE(r->tcp.has_value());
  EXPECT_EQ(r->public_port, 61000);
  s.no_status = true;
  msg = build_ct(s);
  m = parse_ct_message(msg.data(), msg.size());
  ASSERT_TRUE(m);
  EXPECT_FALSE(replicated_flow(*m).has_value());
}

TEST(Replication, IcmpFlowsPublicPortIsTheReplyEchoId) {
  CtSpec s;
  s.proto = IPPROTO_ICMP;
  s.orig_src = ip("198.18.1.2");
  s.orig_dst = ip("198.19.1.2");
  s.icmp_id = 4242;  // the builder sends the same id in both tuples
  s.reply_dst = ip("198.19.1.1");
  s.status = kNatted;
  s.timeout = 30;
  const auto msg = build_ct(s);
  auto m = parse_ct_message(msg.data(), msg.size());
  ASSERT_TRUE(m) << m.error();
  auto r = replicated_flow(*m);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->public_port, 4242);
  EXPECT_EQ(r->flow.sport, 4242);
}

TEST(Replication, MalformedTcpProtoinfoIsAnErrorNamingIt) {
  CtSpec s = tcp_dump();
  s.tcp_info_without_state = true;
  auto msg = build_ct(s);
  auto m = parse_ct_message(msg.data(), msg.size());
  ASSERT_FALSE(m);
  EXPECT_THAT(m.error(), HasSubstr("TCP protoinfo without state"));
  s = tcp_dump();
  s.tcp_state = TCP_CONNTRACK_MAX;
  msg = build_ct(s);
  m = parse_ct_message(msg.data(), msg.size());
  ASSERT_FALSE(m);
  EXPECT_THAT(m.error(), HasSubstr("TCP state"));
  EXPECT_EQ(m.error().rfind("conntrack message: ", 0), 0U);
}

// ---- building the install request ----------------------------------------------------------

// Attribute table of one nest (or of the message when `nest` is null).
std::array<const nlattr*, CTA_MAX + 1> attrs(const nlmsghdr* nlh, const nlattr* nest = nullptr) {
  std::array<const nlattr*, CTA_MAX + 1> tb{};
  auto cb = [](const nlattr* a, void* data) {
    auto* t = static_cast<const nlattr**>(data);
    if (mnl_attr_get_type(a) <= CTA_MAX) t[mnl_attr_get_type(a)] = a;
    return MNL_CB_OK;
  };
  if (nest == nullptr) {
    EXPECT_GE(mnl_attr_parse(nlh, sizeof(nfgenmsg), cb, tb.data()), 0);
  } else {
    EXPECT_GE(mnl_attr_parse_nested(nest, cb, tb.data()), 0);
  }
  return tb;
}

struct Tuple {
  uint32_t src = 0, dst = 0;
  uint8_t proto = 0;
  uint16_t sport = 0, dport = 0;
};

Tuple tuple_of(const nlmsghdr* nlh, const nlattr* t) {
  Tuple out;
  auto tb = attrs(nlh, t);
  auto ipt = attrs(nlh, tb[CTA_TUPLE_IP]);
  out.src = ntohl(mnl_attr_get_u32(ipt[CTA_IP_V4_SRC]));
  out.dst = ntohl(mnl_attr_get_u32(ipt[CTA_IP_V4_DST]));
  auto p = attrs(nlh, tb[CTA_TUPLE_PROTO]);
  out.proto = mnl_attr_get_u8(p[CTA_PROTO_NUM]);
  out.sport = ntohs(mnl_attr_get_u16(p[CTA_PROTO_SRC_PORT]));
  out.dport = ntohs(mnl_attr_get_u16(p[CTA_PROTO_DST_PORT]));
  return out;
}

TEST(InstallMessage, UdpFlowCarriesBothTuplesSourceNatStatusAndTimeout) {
  std::vector<uint8_t> out;
  append_install_message(out, udp_replica(), ip("198.19.9.9"), 77);
  ASSERT_GE(out.size(), sizeof(nlmsghdr));
  const auto* nlh = reinterpret_cast<const nlmsghdr*>(out.data());
  EXPECT_EQ(nlh->nlmsg_len, out.size());
  EXPECT_EQ(nlh->nlmsg_type, (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_NEW);
  EXPECT_EQ(nlh->nlmsg_flags, NLM_F_REQUEST | NLM_F_CREATE | NLM_F_EXCL | NLM_F_ACK);
  EXPECT_EQ(nlh->nlmsg_seq, 77U);
  const auto* nfg = static_cast<const nfgenmsg*>(mnl_nlmsg_get_payload(nlh));
  EXPECT_EQ(nfg->nfgen_family, AF_INET);
  auto tb = attrs(nlh);
  ASSERT_NE(tb[CTA_TUPLE_ORIG], nullptr);
  ASSERT_NE(tb[CTA_TUPLE_REPLY], nullptr);
  ASSERT_NE(tb[CTA_NAT_SRC], nullptr);
  ASSERT_NE(tb[CTA_STATUS], nullptr);
  ASSERT_NE(tb[CTA_TIMEOUT], nullptr);
  EXPECT_EQ(tb[CTA_PROTOINFO], nullptr);
  EXPECT_EQ(tb[CTA_NAT_DST], nullptr);
  const Tuple o = tuple_of(nlh, tb[CTA_TUPLE_ORIG]);
  EXPECT_EQ(o.src, ip("198.18.1.2"));
  EXPECT_EQ(o.dst, ip("198.19.1.2"));
  EXPECT_EQ(o.proto, IPPROTO_UDP);
  EXPECT_EQ(o.sport, 5000);
  EXPECT_EQ(o.dport, 6000);
  // The reply untranslated: the kernel's NAT binding rewrites it from CTA_NAT_SRC (given the
  // translated reply it would bind nothing).
  const Tuple r = tuple_of(nlh, tb[CTA_TUPLE_REPLY]);
  EXPECT_EQ(r.src, ip("198.19.1.2"));
  EXPECT_EQ(r.dst, ip("198.18.1.2"));
  EXPECT_EQ(r.sport, 6000);
  EXPECT_EQ(r.dport, 5000);
  auto nat = attrs(nlh, tb[CTA_NAT_SRC]);
  EXPECT_EQ(ntohl(mnl_attr_get_u32(nat[CTA_NAT_V4_MINIP])), ip("198.19.9.9"));
  EXPECT_EQ(ntohl(mnl_attr_get_u32(nat[CTA_NAT_V4_MAXIP])), ip("198.19.9.9"));
  auto natp = attrs(nlh, nat[CTA_NAT_PROTO]);
  EXPECT_EQ(ntohs(mnl_attr_get_u16(natp[CTA_PROTONAT_PORT_MIN])), 40000);
  EXPECT_EQ(ntohs(mnl_attr_get_u16(natp[CTA_PROTONAT_PORT_MAX])), 40000);
  // CONFIRMED (the create path sets it: a status without it is EBUSY) plus the two settable
  // bits of the original; the NAT bits are the binding's business.
  EXPECT_EQ(ntohl(mnl_attr_get_u32(tb[CTA_STATUS])), IPS_CONFIRMED | IPS_SEEN_REPLY | IPS_ASSURED);
  EXPECT_EQ(ntohl(mnl_attr_get_u32(tb[CTA_TIMEOUT])), 120U);
}

std::string hex(const std::vector<uint8_t>& v) {
  std::string s;
  char b[3];
  for (uint8_t c : v) {
    std::snprintf(b, sizeof b, "%02x", c);
    s += b;
  }
  return s;
}

TEST(InstallMessage, UdpRequestIsPinnedByteForByte) {
  ReplicatedFlow f = udp_replica();
  f.status = IPS_CONFIRMED | IPS_SEEN_REPLY;
  std::vector<uint8_t> out;
  append_install_message(out, f, ip("198.19.9.9"), 1);
  // nlmsghdr (len 180, type 0x0100 = CTNETLINK|CT_NEW, flags 0x0605 =
  // REQUEST|ACK|EXCL|CREATE, seq 1, pid 0), nfgenmsg (AF_INET, v0, res 0), then (nests carry
  // NLA_F_NESTED, 0x8000, as libmnl sets it; the kernel masks it off)
  // ORIG {IP {198.18.1.2, 198.19.1.2}, PROTO {NUM 17, SPORT 5000, DPORT 6000}},
  // REPLY {IP {198.19.1.2, 198.18.1.2}, PROTO {17, 6000, 5000}} (untranslated),
  // NAT_SRC {MINIP, MAXIP 198.19.9.9, PROTO {MIN 40000, MAX 40000}}, STATUS 0x0a, TIMEOUT 120.
  EXPECT_EQ(hex(out),
            "b4000000000105060100000000000000"
            "02000000"
            "34000180"
            "1400018008000100c612010208000200c6130102"
            "1c000280050001001100000006000200138800000600030017700000"
            "34000280"
            "1400018008000100c613010208000200c6120102"
            "1c000280050001001100000006000200177000000600030013880000"
            "28000680"
            "08000100c613090908000200c6130909"
            "14000380060001009c400000060002009c400000"
            "080003000000000a"
            "0800070000000078");
}

TEST(InstallMessage, TcpRequestCarriesStateScalesAndFlagsWithLiberalTracking) {
  std::vector<uint8_t> out;
  append_install_message(out, tcp_replica(), ip("198.19.9.9"), 3);
  const auto* nlh = reinterpret_cast<const nlmsghdr*>(out.data());
  auto tb = attrs(nlh);
  ASSERT_NE(tb[CTA_PROTOINFO], nullptr);
  auto info = attrs(nlh, tb[CTA_PROTOINFO]);
  ASSERT_NE(info[CTA_PROTOINFO_TCP], nullptr);
  auto tcp = attrs(nlh, info[CTA_PROTOINFO_TCP]);
  EXPECT_EQ(mnl_attr_get_u8(tcp[CTA_PROTOINFO_TCP_STATE]), TCP_CONNTRACK_ESTABLISHED);
  EXPECT_EQ(mnl_attr_get_u8(tcp[CTA_PROTOINFO_TCP_WSCALE_ORIGINAL]), 7);
  EXPECT_EQ(mnl_attr_get_u8(tcp[CTA_PROTOINFO_TCP_WSCALE_REPLY]), 9);
  ASSERT_EQ(mnl_attr_get_payload_len(tcp[CTA_PROTOINFO_TCP_FLAGS_ORIGINAL]),
            sizeof(nf_ct_tcp_flags));
  const auto* fo = static_cast<const nf_ct_tcp_flags*>(
      mnl_attr_get_payload(tcp[CTA_PROTOINFO_TCP_FLAGS_ORIGINAL]));
  const auto* fr =
      static_cast<const nf_ct_tcp_flags*>(mnl_attr_get_payload(tcp[CTA_PROTOINFO_TCP_FLAGS_REPLY]));
  const uint8_t mask =
      IP_CT_TCP_FLAG_WINDOW_SCALE | IP_CT_TCP_FLAG_SACK_PERM | IP_CT_TCP_FLAG_BE_LIBERAL;
  EXPECT_EQ(fo->mask, mask);
  EXPECT_EQ(fr->mask, mask);
  EXPECT_EQ(fo->flags,
            IP_CT_TCP_FLAG_WINDOW_SCALE | IP_CT_TCP_FLAG_SACK_PERM | IP_CT_TCP_FLAG_BE_LIBERAL);
  // MAXACK_SET describes sequence history the new entry does not have: not carried.
  EXPECT_EQ(fr->flags, IP_CT_TCP_FLAG_WINDOW_SCALE | IP_CT_TCP_FLAG_BE_LIBERAL);
}

TEST(InstallMessage, ParsesBackToTheSameFlowAndTcpState) {
  const ReplicatedFlow f = tcp_replica();
  std::vector<uint8_t> out;
  append_install_message(out, f, ip("198.19.9.9"), 9);
  auto m = parse_ct_message(out.data(), out.size());
  ASSERT_TRUE(m) << m.error();
  EXPECT_EQ(m->kind, CtKind::New);
  // The same flow; its 5-day ESTABLISHED timeout sent as the install bound.
  Flow want = f.flow;
  want.timeout_s = kInstallTimeoutMaxS;
  EXPECT_EQ(m->flow, want);
  EXPECT_EQ(m->flow.timeout_s, kInstallTimeoutMaxS);
  EXPECT_EQ(m->entry.reply.dst, f.flow.src);
  ASSERT_TRUE(m->tcp.has_value());
  EXPECT_EQ(m->tcp->state, f.tcp->state);
  EXPECT_EQ(m->tcp->wscale_orig, 7);
  EXPECT_EQ(m->tcp->wscale_reply, 9);
}

TEST(InstallMessage, IcmpRequestUsesEchoTuplesAndThePublicIdAsItsRange) {
  ReplicatedFlow f = udp_replica();
  f.flow.proto = IPPROTO_ICMP;
  f.flow.sport = 4242;  // the private host's echo id
  f.flow.dport = 0;
  f.public_port = 777;
  std::vector<uint8_t> out;
  append_install_message(out, f, ip("198.19.9.9"), 1);
  const auto* nlh = reinterpret_cast<const nlmsghdr*>(out.data());
  auto tb = attrs(nlh);
  auto op = attrs(nlh, attrs(nlh, tb[CTA_TUPLE_ORIG])[CTA_TUPLE_PROTO]);
  EXPECT_EQ(ntohs(mnl_attr_get_u16(op[CTA_PROTO_ICMP_ID])), 4242);
  EXPECT_EQ(mnl_attr_get_u8(op[CTA_PROTO_ICMP_TYPE]), 8);
  EXPECT_EQ(mnl_attr_get_u8(op[CTA_PROTO_ICMP_CODE]), 0);
  auto rp = attrs(nlh, attrs(nlh, tb[CTA_TUPLE_REPLY])[CTA_TUPLE_PROTO]);
  EXPECT_EQ(ntohs(mnl_attr_get_u16(rp[CTA_PROTO_ICMP_ID])), 4242);  // untranslated
  EXPECT_EQ(mnl_attr_get_u8(rp[CTA_PROTO_ICMP_TYPE]), 0);
  // The public id is the NAT range.
  auto natp = attrs(nlh, attrs(nlh, tb[CTA_NAT_SRC])[CTA_NAT_PROTO]);
  EXPECT_EQ(ntohs(mnl_attr_get_u16(natp[CTA_PROTONAT_PORT_MIN])), 777);
}

TEST(InstallMessage, ZeroTimeoutIsSentAsOneSecond) {
  ReplicatedFlow f = udp_replica();
  f.flow.timeout_s = 0;
  std::vector<uint8_t> out;
  append_install_message(out, f, ip("198.19.9.9"), 1);
  auto tb = attrs(reinterpret_cast<const nlmsghdr*>(out.data()));
  EXPECT_EQ(ntohl(mnl_attr_get_u32(tb[CTA_TIMEOUT])), 1U);
}

// An ESTABLISHED TCP flow's replicated timeout is the kernel's 5 days: installed with
// kInstallTimeoutMaxS (350 s), so an entry whose connection died with its NAT is gone
// within minutes; shorter timeouts pass unchanged.
TEST(InstallMessage, TimeoutIsBoundedByTheInstallMaximum) {
  auto timeout_of = [](uint32_t replicated) {
    ReplicatedFlow f = tcp_replica();
    f.flow.timeout_s = replicated;
    std::vector<uint8_t> out;
    append_install_message(out, f, ip("198.19.9.9"), 1);
    auto tb = attrs(reinterpret_cast<const nlmsghdr*>(out.data()));
    return ntohl(mnl_attr_get_u32(tb[CTA_TIMEOUT]));
  };
  EXPECT_EQ(kInstallTimeoutMaxS, 350U);
  EXPECT_EQ(timeout_of(431990), 350U);
  EXPECT_EQ(timeout_of(351), 350U);
  EXPECT_EQ(timeout_of(350), 350U);
  EXPECT_EQ(timeout_of(120), 120U);
  EXPECT_EQ(timeout_of(0xffffffffU), 350U);
}

TEST(InstallMessage, MessagesAppendBackToBack) {
  std::vector<uint8_t> out;
  append_install_message(out, udp_replica(), ip("198.19.9.9"), 1);
  const size_t first = out.size();
  append_install_message(out, tcp_replica(), ip("198.19.9.9"), 2);
  int len = static_cast<int>(out.size());
  int n = 0;
  for (auto* nlh = reinterpret_cast<const nlmsghdr*>(out.data()); mnl_nlmsg_ok(nlh, len);
       nlh = mnl_nlmsg_next(nlh, &len)) {
    EXPECT_EQ(nlh->nlmsg_seq, static_cast<uint32_t>(++n));
  }
  EXPECT_EQ(n, 2);
  EXPECT_EQ(len, 0);
  EXPECT_EQ(first % 4, 0U);
}

TEST(InstallMessage, RemoveRequestNamesTheOriginalTupleOnly) {
  std::vector<uint8_t> out;
  append_remove_message(out, udp_replica(), 4);
  const auto* nlh = reinterpret_cast<const nlmsghdr*>(out.data());
  EXPECT_EQ(nlh->nlmsg_type, (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_DELETE);
  EXPECT_EQ(nlh->nlmsg_flags, NLM_F_REQUEST | NLM_F_ACK);
  auto tb = attrs(nlh);
  ASSERT_NE(tb[CTA_TUPLE_ORIG], nullptr);
  EXPECT_EQ(tb[CTA_TUPLE_REPLY], nullptr);
  EXPECT_EQ(tb[CTA_NAT_SRC], nullptr);
  EXPECT_EQ(tuple_of(nlh, tb[CTA_TUPLE_ORIG]).sport, 5000);
}

TEST(InstallProblem, NamesWhatMakesAFlowUninstallable) {
  EXPECT_EQ(install_problem(udp_replica()), std::nullopt);
  EXPECT_EQ(install_problem(tcp_replica()), std::nullopt);
  ReplicatedFlow f = tcp_replica();
  f.tcp.reset();
  EXPECT_THAT(install_problem(f).value_or(""), HasSubstr("without TCP state"));
  f = udp_replica();
  f.public_port = 0;
  EXPECT_THAT(install_problem(f).value_or(""), HasSubstr("no public port"));
  f = udp_replica();
  f.flow.proto = IPPROTO_SCTP;
  EXPECT_THAT(install_problem(f).value_or(""), HasSubstr("protocol 132"));
}

}  // namespace
}  // namespace hanat::netfilter
