// SPDX-License-Identifier: GPL-2.0-or-later
#pragma once
// Builds ctnetlink messages laid out as the kernel sends them (nf_conntrack_netlink.c,
// ctnetlink_fill_info / ctnetlink_conntrack_event): nfgenmsg, CTA_TUPLE_ORIG and
// CTA_TUPLE_REPLY (nested IP and PROTO), CTA_STATUS, CTA_TIMEOUT, CTA_ID, CTA_PROTOINFO (TCP
// state, when asked for); all values in network
// byte order. Shared by the unit tests and the fuzz target's seed generator.

#include <arpa/inet.h>
#include <libmnl/libmnl.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <vector>

namespace hanat::netfilter::testing {

struct CtSpec {
  uint16_t type = IPCTNL_MSG_CT_NEW;
  uint16_t flags = NLM_F_MULTI;
  uint8_t family = AF_INET;
  uint8_t proto = IPPROTO_TCP;
  uint32_t orig_src = 0, orig_dst = 0;  // host byte order
  uint16_t sport = 0, dport = 0;
  uint16_t icmp_id = 0;
  uint32_t reply_dst = 0;  // the reply tuple's destination (the NAT address when NATed)
  uint16_t reply_dport = 0;
  uint32_t status = 0;
  uint32_t timeout = 0;
  uint32_t id = 0;
  bool with_reply = true;
  bool with_ports = true;
  bool no_status = false;
  bool short_status = false;  // a CTA_STATUS with a 2-byte payload
  // CTA_PROTOINFO / CTA_PROTOINFO_TCP as tcp_to_nlattr() sends it (flags with mask 0).
  bool with_tcp_info = false;
  bool tcp_info_without_state = false;
  uint8_t tcp_state = 3;  // TCP_CONNTRACK_ESTABLISHED
  uint8_t wscale_orig = 0, wscale_reply = 0;
  uint8_t flags_orig = 0, flags_reply = 0;
  bool short_tcp_state = false;  // with_tcp_info: the state attribute without its byte
};

inline void put_tuple(nlmsghdr* nlh, uint16_t type, const CtSpec& s, uint32_t src, uint32_t dst,
                      uint16_t sport, uint16_t dport) {
  nlattr* t = mnl_attr_nest_start(nlh, type);
  nlattr* ipn = mnl_attr_nest_start(nlh, CTA_TUPLE_IP);
  mnl_attr_put_u32(nlh, CTA_IP_V4_SRC, htonl(src));
  mnl_attr_put_u32(nlh, CTA_IP_V4_DST, htonl(dst));
  mnl_attr_nest_end(nlh, ipn);
  nlattr* pn = mnl_attr_nest_start(nlh, CTA_TUPLE_PROTO);
  mnl_attr_put_u8(nlh, CTA_PROTO_NUM, s.proto);
  if (s.proto == IPPROTO_ICMP) {
    mnl_attr_put_u16(nlh, CTA_PROTO_ICMP_ID, htons(s.icmp_id));
    mnl_attr_put_u8(nlh, CTA_PROTO_ICMP_TYPE, 8);
    mnl_attr_put_u8(nlh, CTA_PROTO_ICMP_CODE, 0);
  } else if (s.with_ports && (s.proto == IPPROTO_TCP || s.proto == IPPROTO_UDP)) {
    mnl_attr_put_u16(nlh, CTA_PROTO_SRC_PORT, htons(sport));
    mnl_attr_put_u16(nlh, CTA_PROTO_DST_PORT, htons(dport));
  }
  mnl_attr_nest_end(nlh, pn);
  mnl_attr_nest_end(nlh, t);
}

inline std::vector<uint8_t> build_ct(const CtSpec& s) {
  std::vector<uint8_t> buf(MNL_SOCKET_BUFFER_SIZE);
  nlmsghdr* nlh = mnl_nlmsg_put_header(buf.data());
  nlh->nlmsg_type = static_cast<uint16_t>((NFNL_SUBSYS_CTNETLINK << 8) | s.type);
  nlh->nlmsg_flags = s.flags;
  auto* nfg = static_cast<nfgenmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(nfgenmsg)));
  nfg->nfgen_family = s.family;
  nfg->version = NFNETLINK_V0;
  put_tuple(nlh, CTA_TUPLE_ORIG, s, s.orig_src, s.orig_dst, s.sport, s.dport);
  if (s.with_reply) {
    put_tuple(nlh, CTA_TUPLE_REPLY, s, s.orig_dst, s.reply_dst, s.dport, s.reply_dport);
  }
  if (s.short_status) {
    mnl_attr_put_u16(nlh, CTA_STATUS, 1);
  } else if (!s.no_status) {
    mnl_attr_put_u32(nlh, CTA_STATUS, htonl(s.status));
  }
  mnl_attr_put_u32(nlh, CTA_TIMEOUT, htonl(s.timeout));
  mnl_attr_put_u32(nlh, CTA_ID, htonl(s.id));
  if (s.with_tcp_info) {
    nlattr* info = mnl_attr_nest_start(nlh, CTA_PROTOINFO);
    nlattr* tcp = mnl_attr_nest_start(nlh, CTA_PROTOINFO_TCP);
    if (s.short_tcp_state) {
      mnl_attr_put(nlh, CTA_PROTOINFO_TCP_STATE, 0, nullptr);
    } else if (!s.tcp_info_without_state) {
      mnl_attr_put_u8(nlh, CTA_PROTOINFO_TCP_STATE, s.tcp_state);
    }
    mnl_attr_put_u8(nlh, CTA_PROTOINFO_TCP_WSCALE_ORIGINAL, s.wscale_orig);
    mnl_attr_put_u8(nlh, CTA_PROTOINFO_TCP_WSCALE_REPLY, s.wscale_reply);
    const uint8_t orig[2] = {s.flags_orig, 0};
    const uint8_t reply[2] = {s.flags_reply, 0};
    mnl_attr_put(nlh, CTA_PROTOINFO_TCP_FLAGS_ORIGINAL, sizeof orig, orig);
    mnl_attr_put(nlh, CTA_PROTOINFO_TCP_FLAGS_REPLY, sizeof reply, reply);
    mnl_attr_nest_end(nlh, tcp);
    mnl_attr_nest_end(nlh, info);
  }
  buf.resize(nlh->nlmsg_len);
  return buf;
}

}  // namespace hanat::netfilter::testing
