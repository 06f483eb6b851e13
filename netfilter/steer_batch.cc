// SPDX-License-Identifier: GPL-2.0-or-later
#include "netfilter/steer_batch.h"

#include <arpa/inet.h>
#include <endian.h>
#include <libmnl/libmnl.h>
#include <libnftnl/batch.h>
#include <libnftnl/chain.h>
#include <libnftnl/common.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <libnftnl/set.h>
#include <libnftnl/table.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_conntrack_common.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/rtnetlink.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/tcp.h>
#include <sys/uio.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstring>

#include "core/base/ipv4.h"
#include "netfilter/nft_builder.h"

namespace hanat::netfilter {

namespace {

using nft::Builder;
using nft::ChainPtr;
using nft::enomem;
using nft::ExprPtr;
using nft::make_expr;
using nft::make_table;
using nft::TablePtr;
using SetPtr = std::unique_ptr<nftnl_set, void (*)(const nftnl_set*)>;

// The set's id inside the creating transaction: the lookup expression refers to the set by
// name and by this id, as nft does, because the set does not exist until the commit.
constexpr uint32_t kSetId = 1;
// nftables' datatype numbers (nftables src/datatype.h) folded as nft folds a concatenation
// (6 bits per field): nft then lists the set as ipv4_addr . ipv4_addr . inet_proto .
// inet_service . inet_service.
constexpr uint32_t kTypeIpv4Addr = 7;
constexpr uint32_t kTypeInetProto = 12;
constexpr uint32_t kTypeInetService = 13;
constexpr uint32_t kKeyType =
    ((((kTypeIpv4Addr << 6 | kTypeIpv4Addr) << 6 | kTypeInetProto) << 6 | kTypeInetService) << 6) |
    kTypeInetService;
constexpr uint32_t kKeyLen = 20;
// When a missing element is created only to be deleted in the same transaction.
constexpr uint64_t kTransientTimeoutMs = 1000;

Error invalid(const std::string& what) {
  return Error{std::make_error_code(std::errc::invalid_argument), what};
}

std::string hex8(uint32_t v) {
  std::array<char, 9> buf{};
  std::snprintf(buf.data(), buf.size(), "%08x", v);
  return buf.data();
}

bool add(nftnl_rule* r, ExprPtr e) {
  if (!e) return false;
  nftnl_rule_add_expr(r, e.release());
  return true;
}

ExprPtr payload(uint32_t base, uint32_t offset, uint32_t len, uint32_t dreg) {
  auto e = make_expr("payload");
  if (!e) return e;
  nftnl_expr_set_u32(e.get(), NFTNL_EXPR_PAYLOAD_DREG, dreg);
  nftnl_expr_set_u32(e.get(), NFTNL_EXPR_PAYLOAD_BASE, base);
  nftnl_expr_set_u32(e.get(), NFTNL_EXPR_PAYLOAD_OFFSET, offset);
  nftnl_expr_set_u32(e.get(), NFTNL_EXPR_PAYLOAD_LEN, len);
  return e;
}

ExprPtr meta_load(uint32_t key, uint32_t dreg) {
  auto e = make_expr("meta");
  if (!e) return e;
  nftnl_expr_set_u32(e.get(), NFTNL_EXPR_META_KEY, key);
  nftnl_expr_set_u32(e.get(), NFTNL_EXPR_META_DREG, dreg);
  return e;
}

ExprPtr cmp(uint32_t op, const void* data, uint32_t len) {
  auto e = make_expr("cmp");
  if (!e) return e;
  nftnl_expr_set_u32(e.get(), NFTNL_EXPR_CMP_SREG, NFT_REG_1);
  nftnl_expr_set_u32(e.get(), NFTNL_EXPR_CMP_OP, op);
  nftnl_expr_set(e.get(), NFTNL_EXPR_CMP_DATA, data, len);
  return e;
}

ExprPtr bitwise_and(const void* mask, uint32_t len) {
  auto e = make_expr("bitwise");
  if (!e) return e;
  const std::array<uint8_t, 4> zero{};
  nftnl_expr_set_u32(e.get(), NFTNL_EXPR_BITWISE_SREG, NFT_REG_1);
  nftnl_expr_set_u32(e.get(), NFTNL_EXPR_BITWISE_DREG, NFT_REG_1);
  nftnl_expr_set_u32(e.get(), NFTNL_EXPR_BITWISE_LEN, len);
  nftnl_expr_set(e.get(), NFTNL_EXPR_BITWISE_MASK, mask, len);
  nftnl_expr_set(e.get(), NFTNL_EXPR_BITWISE_XOR, zero.data(), len);
  return e;
}

// `meta mark set <mark>`: the mark goes through a register, as nft linearises it.
bool add_mark_set(nftnl_rule* r, uint32_t mark) {
  auto imm = make_expr("immediate");
  auto meta = make_expr("meta");
  if (!imm || !meta) return false;
  nftnl_expr_set_u32(imm.get(), NFTNL_EXPR_IMM_DREG, NFT_REG_1);
  nftnl_expr_set(imm.get(), NFTNL_EXPR_IMM_DATA, &mark, sizeof mark);
  nftnl_expr_set_u32(meta.get(), NFTNL_EXPR_META_KEY, NFT_META_MARK);
  nftnl_expr_set_u32(meta.get(), NFTNL_EXPR_META_SREG, NFT_REG_1);
  return add(r, std::move(imm)) && add(r, std::move(meta));
}

RulePtr make_rule(const SteerSpec& spec, std::string_view chain) {
  RulePtr r(nftnl_rule_alloc(), nftnl_rule_free);
  if (!r) return r;
  nftnl_rule_set_u32(r.get(), NFTNL_RULE_FAMILY, NFPROTO_IPV4);
  nftnl_rule_set_str(r.get(), NFTNL_RULE_TABLE, steer_table_name(spec.peer).c_str());
  nftnl_rule_set_str(r.get(), NFTNL_RULE_CHAIN, std::string(chain).c_str());
  return r;
}

// ip saddr . ip daddr . meta l4proto . th sport . th dport @flows meta mark set <mark>
core::Result<RulePtr, Error> lookup_rule(const SteerSpec& spec) {
  auto r = make_rule(spec, kSteerChain);
  const std::string what = "flow lookup rule";
  if (!r) return core::Unexpected(enomem(what));
  auto lookup = make_expr("lookup");
  if (!lookup) return core::Unexpected(enomem(what));
  nftnl_expr_set_u32(lookup.get(), NFTNL_EXPR_LOOKUP_SREG, NFT_REG_1);
  nftnl_expr_set_str(lookup.get(), NFTNL_EXPR_LOOKUP_SET, std::string(kSteerSet).c_str());
  nftnl_expr_set_u32(lookup.get(), NFTNL_EXPR_LOOKUP_SET_ID, kSetId);
  // Each concatenated field starts in its own 32-bit register (NFT_REG32_00 is NFT_REG_1);
  // the fifth starts a 128-bit register again, which nft names NFT_REG_2 (= NFT_REG32_04).
  const bool built =
      add(r.get(), payload(NFT_PAYLOAD_NETWORK_HEADER, offsetof(iphdr, saddr), 4, NFT_REG_1)) &&
      add(r.get(), payload(NFT_PAYLOAD_NETWORK_HEADER, offsetof(iphdr, daddr), 4, NFT_REG32_01)) &&
      add(r.get(), meta_load(NFT_META_L4PROTO, NFT_REG32_02)) &&
      add(r.get(), payload(NFT_PAYLOAD_TRANSPORT_HEADER, 0, 2, NFT_REG32_03)) &&
      add(r.get(), payload(NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2, NFT_REG_2)) &&
      add(r.get(), std::move(lookup)) && add_mark_set(r.get(), spec.mark);
  if (!built) return core::Unexpected(enomem(what));
  return r;
}

core::Result<RulePtr, Error> jump_rule(const SteerSpec& spec) {
  auto r = make_rule(spec, kSteerChain);
  auto imm = make_expr("immediate");
  if (!r || !imm) return core::Unexpected(enomem("jump rule"));
  nftnl_expr_set_u32(imm.get(), NFTNL_EXPR_IMM_DREG, NFT_REG_VERDICT);
  nftnl_expr_set_u32(imm.get(), NFTNL_EXPR_IMM_VERDICT, static_cast<uint32_t>(NFT_JUMP));
  nftnl_expr_set_str(imm.get(), NFTNL_EXPR_IMM_CHAIN, std::string(kSteerCatchChain).c_str());
  if (!add(r.get(), std::move(imm))) return core::Unexpected(enomem("jump rule"));
  return r;
}

// meta mark <mark> meta mark set 0x00000000, in the forward chain: after the routing
// decision has used the mark, before the packet reaches the tunnel device. The VXLAN driver
// routes the outer packet with the inner packet's mark (vxlan_xmit_one: flowi4_mark =
// skb->mark): left set, the fwmark rule would send the outer packet into the tunnel again,
// which the driver drops as a loop (counted as tx collisions).
core::Result<RulePtr, Error> clear_rule(const SteerSpec& spec) {
  auto r = make_rule(spec, kSteerForwardChain);
  if (!r) return core::Unexpected(enomem("clear rule"));
  const uint32_t zero = 0;
  auto imm = make_expr("immediate");
  auto meta = make_expr("meta");
  if (!imm || !meta) return core::Unexpected(enomem("clear rule"));
  nftnl_expr_set_u32(imm.get(), NFTNL_EXPR_IMM_DREG, NFT_REG_1);
  nftnl_expr_set(imm.get(), NFTNL_EXPR_IMM_DATA, &zero, sizeof zero);
  nftnl_expr_set_u32(meta.get(), NFTNL_EXPR_META_KEY, NFT_META_MARK);
  nftnl_expr_set_u32(meta.get(), NFTNL_EXPR_META_SREG, NFT_REG_1);
  const bool built = add(r.get(), meta_load(NFT_META_MARK, NFT_REG_1)) &&
                     add(r.get(), cmp(NFT_CMP_EQ, &spec.mark, 4)) && add(r.get(), std::move(imm)) &&
                     add(r.get(), std::move(meta));
  if (!built) return core::Unexpected(enomem("clear rule"));
  return r;
}

SetPtr make_set(const SteerSpec& spec) {
  SetPtr s(nftnl_set_alloc(), nftnl_set_free);
  if (!s) return s;
  nftnl_set_set_u32(s.get(), NFTNL_SET_FAMILY, NFPROTO_IPV4);
  nftnl_set_set_str(s.get(), NFTNL_SET_TABLE, steer_table_name(spec.peer).c_str());
  nftnl_set_set_str(s.get(), NFTNL_SET_NAME, std::string(kSteerSet).c_str());
  return s;
}

// NEWSETELEM (or DELSETELEM) messages for `flows`, kSteerElemsPerMessage per message.
bool add_elements(Builder& b, const SteerSpec& spec, const std::vector<Flow>& flows, uint16_t type,
                  bool transient, const std::string& what) {
  for (size_t at = 0; at < flows.size(); at += kSteerElemsPerMessage) {
    SetPtr s = make_set(spec);
    if (!s) return false;
    const size_t end = std::min(flows.size(), at + kSteerElemsPerMessage);
    for (size_t i = at; i < end; ++i) {
      nftnl_set_elem* e = nftnl_set_elem_alloc();
      if (e == nullptr) return false;
      const auto key = steer_key(flows[i]);
      nftnl_set_elem_set(e, NFTNL_SET_ELEM_KEY, key.data(), key.size());
      if (type == NFT_MSG_NEWSETELEM) {
        nftnl_set_elem_set_u64(e, NFTNL_SET_ELEM_TIMEOUT,
                               transient ? kTransientTimeoutMs : steer_timeout_ms(spec, flows[i]));
      }
      nftnl_set_elem_add(s.get(), e);
    }
    const uint16_t flags = type == NFT_MSG_NEWSETELEM ? NLM_F_CREATE : 0;
    if (!b.add(type, flags, s.get(), nftnl_set_elems_nlmsg_build_payload,
               what + " " + std::to_string(at + 1) + "-" + std::to_string(end))) {
      return false;
    }
  }
  return true;
}

std::string set_what(const SteerSpec& spec) {
  return "set ip " + steer_table_name(spec.peer) + " " + std::string(kSteerSet);
}

core::Result<std::vector<Flow>, Error> steerable_flows(const SteerSpec& spec,
                                                       std::span<const Flow> flows,
                                                       size_t* skipped) {
  if (auto v = validate(spec); !v) return core::Unexpected(v.error());
  std::vector<Flow> out;
  out.reserve(flows.size());
  for (const auto& f : flows) {
    if (steerable(f)) {
      out.push_back(f);
    } else {
      ++*skipped;
    }
  }
  if (out.size() > spec.max_flows) {
    return core::Unexpected(invalid("flows of peer " + core::ipv4_text(spec.peer) + ": " +
                                    std::to_string(out.size()) + " in one batch, more than the " +
                                    "flow set holds (max_flows " + std::to_string(spec.max_flows) +
                                    ")"));
  }
  return out;
}

}  // namespace

Status validate(const SteerSpec& spec) {
  const std::string who = "steering to peer " + core::ipv4_text(spec.peer);
  if (spec.peer == 0)
    return fail(std::make_error_code(std::errc::invalid_argument),
                "steering: peer address 0.0.0.0");
  if (spec.local == 0 || spec.local == spec.peer) {
    return fail(std::make_error_code(std::errc::invalid_argument),
                who + ": local address " + core::ipv4_text(spec.local) + " is not usable");
  }
  if (spec.mark == 0) {
    return fail(std::make_error_code(std::errc::invalid_argument), who + ": mark 0");
  }
  if (spec.route_table == 0 ||
      (spec.route_table >= RT_TABLE_DEFAULT && spec.route_table <= RT_TABLE_LOCAL)) {
    return fail(std::make_error_code(std::errc::invalid_argument),
                who + ": route table " + std::to_string(spec.route_table) +
                    " is reserved (0, 253 default, 254 main, 255 local)");
  }
  // 0 is the local table's rule; from 32766 on are main and default: a rule there would be
  // consulted after main's default route has already sent the packet to the internet.
  if (spec.rule_priority == 0 || spec.rule_priority >= 32766) {
    return fail(std::make_error_code(std::errc::invalid_argument),
                who + ": rule priority " + std::to_string(spec.rule_priority) +
                    " not in 1..32765 (before the main table's rule)");
  }
  if (spec.port == 0) {
    return fail(std::make_error_code(std::errc::invalid_argument), who + ": port 0");
  }
  if (spec.max_flows == 0) {
    return fail(std::make_error_code(std::errc::invalid_argument), who + ": max_flows 0");
  }
  if (spec.max_timeout_s == 0) {
    return fail(std::make_error_code(std::errc::invalid_argument), who + ": max_timeout_s 0");
  }
  // IPv4's minimum MTU (RFC 791: every host must accept 68-byte datagrams); 65535 is a
  // datagram's maximum size.
  if (spec.mtu != 0 && (spec.mtu < 68 || spec.mtu > 65535)) {
    return fail(std::make_error_code(std::errc::invalid_argument),
                who + ": tunnel mtu " + std::to_string(spec.mtu) + " not in 68..65535");
  }
  return ok();
}

std::string steer_table_name(uint32_t peer) {
  return std::string(kSteerTablePrefix) + hex8(peer);
}

std::string steer_link_name(uint32_t peer) {
  return std::string(kSteerLinkPrefix) + hex8(peer);
}

uint32_t steer_vni(uint32_t a, uint32_t b) {
  const uint32_t x = a ^ b;  // symmetric; members differ, so x != 0
  const uint32_t vni = (x ^ (x >> 24)) & 0xffffffU;
  return vni == 0 ? 1 : vni;
}

std::array<uint8_t, 20> steer_key(const Flow& flow) {
  std::array<uint8_t, 20> key{};
  const uint32_t src = htonl(flow.src);
  const uint32_t dst = htonl(flow.dst);
  const uint16_t sport = htons(flow.sport);
  const uint16_t dport = htons(flow.dport);
  std::memcpy(key.data(), &src, 4);
  std::memcpy(key.data() + 4, &dst, 4);
  key[8] = flow.proto;  // one byte, then 3 bytes of register padding
  std::memcpy(key.data() + 12, &sport, 2);
  std::memcpy(key.data() + 16, &dport, 2);
  return key;
}

bool steerable(const Flow& flow) {
  return flow.proto == IPPROTO_TCP || flow.proto == IPPROTO_UDP;
}

uint64_t steer_timeout_ms(const SteerSpec& spec, const Flow& flow) {
  const uint32_t s =
      flow.timeout_s == 0 ? spec.max_timeout_s : std::min(flow.timeout_s, spec.max_timeout_s);
  return uint64_t{s} * 1000U;
}

core::Result<std::vector<RulePtr>, Error> steer_rules(const SteerSpec& spec) {
  if (auto v = validate(spec); !v) return core::Unexpected(v.error());
  std::vector<RulePtr> rules;
  auto l = lookup_rule(spec);
  if (!l) return core::Unexpected(l.error());
  rules.push_back(std::move(*l));
  auto j = jump_rule(spec);
  if (!j) return core::Unexpected(j.error());
  rules.push_back(std::move(*j));
  auto c = clear_rule(spec);
  if (!c) return core::Unexpected(c.error());
  rules.push_back(std::move(*c));
  return rules;
}

// meta l4proto tcp tcp flags & syn == 0 ct state new,invalid fib daddr type unicast
//   meta mark set <mark>
//
// A packet of a flow that the taking NAT has no entry for gets one now: with
// nf_conntrack_tcp_loose (default 1) a mid-stream ACK is picked up as NEW, and a FIN or RST
// of an unknown flow is INVALID (nf_conntrack_proto_tcp.c: sNO + FIN/RST -> sIV). The taking
// NAT's own flows begin with a SYN and are ESTABLISHED once answered, so they never match.
// A picked-up flow stays NEW here for good: its replies go from the leaving NAT straight to
// the private host, never through this one. fib daddr type unicast keeps this host's own
// traffic (a stale connection to its agent port) out.
core::Result<RulePtr, Error> steer_catch_rule(const SteerSpec& spec) {
  if (auto v = validate(spec); !v) return core::Unexpected(v.error());
  auto r = make_rule(spec, kSteerCatchChain);
  const std::string what = "catch rule";
  if (!r) return core::Unexpected(enomem(what));
  const uint8_t tcp = IPPROTO_TCP;
  const uint8_t syn = TH_SYN;
  const uint8_t zero8 = 0;
  const uint32_t states = NF_CT_STATE_BIT(IP_CT_NEW) | NF_CT_STATE_INVALID_BIT;
  const uint32_t zero32 = 0;
  const uint32_t unicast = RTN_UNICAST;
  auto ct = make_expr("ct");
  auto fib = make_expr("fib");
  if (!ct || !fib) return core::Unexpected(enomem(what));
  nftnl_expr_set_u32(ct.get(), NFTNL_EXPR_CT_KEY, NFT_CT_STATE);
  nftnl_expr_set_u32(ct.get(), NFTNL_EXPR_CT_DREG, NFT_REG_1);
  nftnl_expr_set_u32(fib.get(), NFTNL_EXPR_FIB_FLAGS, NFTA_FIB_F_DADDR);
  nftnl_expr_set_u32(fib.get(), NFTNL_EXPR_FIB_RESULT, NFT_FIB_RESULT_ADDRTYPE);
  nftnl_expr_set_u32(fib.get(), NFTNL_EXPR_FIB_DREG, NFT_REG_1);
  const bool built = add(r.get(), meta_load(NFT_META_L4PROTO, NFT_REG_1)) &&
                     add(r.get(), cmp(NFT_CMP_EQ, &tcp, 1)) &&
                     add(r.get(), payload(NFT_PAYLOAD_TRANSPORT_HEADER, 13, 1, NFT_REG_1)) &&
                     add(r.get(), bitwise_and(&syn, 1)) &&
                     add(r.get(), cmp(NFT_CMP_EQ, &zero8, 1)) && add(r.get(), std::move(ct)) &&
                     add(r.get(), bitwise_and(&states, 4)) &&
                     add(r.get(), cmp(NFT_CMP_NEQ, &zero32, 4)) && add(r.get(), std::move(fib)) &&
                     add(r.get(), cmp(NFT_CMP_EQ, &unicast, 4)) && add_mark_set(r.get(), spec.mark);
  if (!built) return core::Unexpected(enomem(what));
  return r;
}

core::Result<Batch, Error> build_steer_table(const SteerSpec& spec, uint32_t first_seq) {
  auto rules = steer_rules(spec);
  if (!rules) return core::Unexpected(rules.error());
  const std::string table = steer_table_name(spec.peer);
  auto t = make_table(table);
  SetPtr s = make_set(spec);
  ChainPtr pre(nftnl_chain_alloc(), nftnl_chain_free);
  ChainPtr catcher(nftnl_chain_alloc(), nftnl_chain_free);
  ChainPtr fwd(nftnl_chain_alloc(), nftnl_chain_free);
  Builder b(first_seq);
  if (!t || !s || !pre || !catcher || !fwd || !b.ok()) return core::Unexpected(enomem(table));
  nftnl_set_set_u32(s.get(), NFTNL_SET_ID, kSetId);
  nftnl_set_set_u32(s.get(), NFTNL_SET_KEY_TYPE, kKeyType);
  nftnl_set_set_u32(s.get(), NFTNL_SET_KEY_LEN, kKeyLen);
  nftnl_set_set_u32(s.get(), NFTNL_SET_FLAGS, NFT_SET_TIMEOUT);
  nftnl_set_set_u32(s.get(), NFTNL_SET_DESC_SIZE, spec.max_flows);
  for (nftnl_chain* c : {pre.get(), catcher.get(), fwd.get()}) {
    nftnl_chain_set_u32(c, NFTNL_CHAIN_FAMILY, NFPROTO_IPV4);
    nftnl_chain_set_str(c, NFTNL_CHAIN_TABLE, table.c_str());
  }
  nftnl_chain_set_str(pre.get(), NFTNL_CHAIN_NAME, std::string(kSteerChain).c_str());
  nftnl_chain_set_str(pre.get(), NFTNL_CHAIN_TYPE, "filter");
  nftnl_chain_set_u32(pre.get(), NFTNL_CHAIN_HOOKNUM, NF_INET_PRE_ROUTING);
  nftnl_chain_set_s32(pre.get(), NFTNL_CHAIN_PRIO, kSteerChainPriority);
  nftnl_chain_set_str(catcher.get(), NFTNL_CHAIN_NAME, std::string(kSteerCatchChain).c_str());
  nftnl_chain_set_str(fwd.get(), NFTNL_CHAIN_NAME, std::string(kSteerForwardChain).c_str());
  nftnl_chain_set_str(fwd.get(), NFTNL_CHAIN_TYPE, "filter");
  nftnl_chain_set_u32(fwd.get(), NFTNL_CHAIN_HOOKNUM, NF_INET_FORWARD);
  nftnl_chain_set_s32(fwd.get(), NFTNL_CHAIN_PRIO, kSteerChainPriority);
  const std::string tw = "table ip " + table;
  const std::string cw = "chain ip " + table + " ";
  const bool built =
      b.begin() &&
      b.add(NFT_MSG_NEWTABLE, NLM_F_CREATE, t.get(), nftnl_table_nlmsg_build_payload, tw) &&
      b.add(NFT_MSG_DELTABLE, 0, t.get(), nftnl_table_nlmsg_build_payload, tw) &&
      b.add(NFT_MSG_NEWTABLE, NLM_F_CREATE, t.get(), nftnl_table_nlmsg_build_payload, tw) &&
      b.add(NFT_MSG_NEWSET, NLM_F_CREATE, s.get(), nftnl_set_nlmsg_build_payload, set_what(spec)) &&
      b.add(NFT_MSG_NEWCHAIN, NLM_F_CREATE, catcher.get(), nftnl_chain_nlmsg_build_payload,
            cw + std::string(kSteerCatchChain)) &&
      b.add(NFT_MSG_NEWCHAIN, NLM_F_CREATE, pre.get(), nftnl_chain_nlmsg_build_payload,
            cw + std::string(kSteerChain)) &&
      b.add(NFT_MSG_NEWRULE, NLM_F_CREATE | NLM_F_APPEND, (*rules)[0].get(),
            nftnl_rule_nlmsg_build_payload,
            "rule 1 in " + cw + std::string(kSteerChain) + " (flow lookup, mark)") &&
      b.add(NFT_MSG_NEWRULE, NLM_F_CREATE | NLM_F_APPEND, (*rules)[1].get(),
            nftnl_rule_nlmsg_build_payload,
            "rule 2 in " + cw + std::string(kSteerChain) + " (jump catch_unknown)") &&
      b.add(NFT_MSG_NEWCHAIN, NLM_F_CREATE, fwd.get(), nftnl_chain_nlmsg_build_payload,
            cw + std::string(kSteerForwardChain)) &&
      b.add(NFT_MSG_NEWRULE, NLM_F_CREATE | NLM_F_APPEND, (*rules)[2].get(),
            nftnl_rule_nlmsg_build_payload,
            "rule 1 in " + cw + std::string(kSteerForwardChain) + " (clear mark)") &&
      b.end();
  if (!built) return core::Unexpected(enomem(tw));
  return b.finish();
}

core::Result<FlowBatch, Error> build_flow_add(const SteerSpec& spec, std::span<const Flow> flows,
                                              uint32_t first_seq) {
  FlowBatch out;
  auto list = steerable_flows(spec, flows, &out.skipped);
  if (!list) return core::Unexpected(list.error());
  out.elements = list->size();
  Builder b(first_seq);
  if (!b.ok()) return core::Unexpected(enomem(set_what(spec)));
  const bool built =
      b.begin() &&
      add_elements(b, spec, *list, NFT_MSG_NEWSETELEM, false, "elements of " + set_what(spec)) &&
      b.end();
  if (!built) return core::Unexpected(enomem(set_what(spec)));
  out.batch = b.finish();
  return out;
}

core::Result<FlowBatch, Error> build_flow_remove(const SteerSpec& spec, std::span<const Flow> flows,
                                                 uint32_t first_seq) {
  FlowBatch out;
  auto list = steerable_flows(spec, flows, &out.skipped);
  if (!list) return core::Unexpected(list.error());
  out.elements = list->size();
  Builder b(first_seq);
  if (!b.ok()) return core::Unexpected(enomem(set_what(spec)));
  const bool built = b.begin() &&
                     add_elements(b, spec, *list, NFT_MSG_NEWSETELEM, true,
                                  "elements of " + set_what(spec) + " (if missing)") &&
                     add_elements(b, spec, *list, NFT_MSG_DELSETELEM, false,
                                  "deleting elements of " + set_what(spec)) &&
                     b.end();
  if (!built) return core::Unexpected(enomem(set_what(spec)));
  out.batch = b.finish();
  return out;
}

core::Result<Batch, Error> build_catch_unknown(const SteerSpec& spec, bool on, uint32_t first_seq) {
  auto rule = steer_catch_rule(spec);
  if (!rule) return core::Unexpected(rule.error());
  auto flush = make_rule(spec, kSteerCatchChain);
  Builder b(first_seq);
  if (!flush || !b.ok()) return core::Unexpected(enomem("catch rule"));
  const std::string cw =
      "chain ip " + steer_table_name(spec.peer) + " " + std::string(kSteerCatchChain);
  // A DELRULE without a handle flushes the chain (nf_tables_delrule -> nft_delrule_by_chain).
  bool built = b.begin() && b.add(NFT_MSG_DELRULE, 0, flush.get(), nftnl_rule_nlmsg_build_payload,
                                  "flushing " + cw);
  if (built && on) {
    built = b.add(NFT_MSG_NEWRULE, NLM_F_CREATE | NLM_F_APPEND, rule->get(),
                  nftnl_rule_nlmsg_build_payload, "rule 1 in " + cw + " (catch unknown TCP)");
  }
  if (!(built && b.end())) return core::Unexpected(enomem("catch rule"));
  return b.finish();
}

namespace {

// The top-level attribute of `type` of an nfnetlink message, or nullptr.
const nlattr* elems_attr(const nlmsghdr* nlh, uint16_t type) {
  const auto* end = static_cast<const char*>(mnl_nlmsg_get_payload_tail(nlh));
  for (const auto* a =
           static_cast<const nlattr*>(mnl_nlmsg_get_payload_offset(nlh, sizeof(nfgenmsg)));
       mnl_attr_ok(a, static_cast<int>(end - reinterpret_cast<const char*>(a)));
       a = mnl_attr_next(a)) {
    if (mnl_attr_get_type(a) == type) return a;
  }
  return nullptr;
}

// Every attribute directly inside a nest.
std::vector<const nlattr*> nested_all(const nlattr* nest) {
  std::vector<const nlattr*> out;
  const auto* end = reinterpret_cast<const char*>(nest) + nest->nla_len;
  for (const auto* a = static_cast<const nlattr*>(mnl_attr_get_payload(nest));
       mnl_attr_ok(a, static_cast<int>(end - reinterpret_cast<const char*>(a)));
       a = mnl_attr_next(a)) {
    out.push_back(a);
  }
  return out;
}

// The attribute of `type` directly inside a nest, or nullptr.
const nlattr* nested_attr(const nlattr* nest, uint16_t type) {
  for (const nlattr* a : nested_all(nest))
    if (mnl_attr_get_type(a) == type) return a;
  return nullptr;
}

}  // namespace

std::string describe_steer(const Batch& batch) {
  std::string out;
  const void* data = batch.bytes.data();
  int len = static_cast<int>(batch.bytes.size());
  for (auto* nlh = static_cast<const nlmsghdr*>(data); mnl_nlmsg_ok(nlh, len);
       nlh = mnl_nlmsg_next(nlh, &len)) {
    const uint16_t type = nlh->nlmsg_type;
    const int msg = type & 0xff;
    const bool elems = (type >> 8) == NFNL_SUBSYS_NFTABLES &&
                       (msg == NFT_MSG_NEWSETELEM || msg == NFT_MSG_DELSETELEM);
    const bool set = (type >> 8) == NFNL_SUBSYS_NFTABLES && msg == NFT_MSG_NEWSET;
    const bool delrule = (type >> 8) == NFNL_SUBSYS_NFTABLES && msg == NFT_MSG_DELRULE;
    if (!elems && !set && !delrule) {
      // Everything else describe() already spells out: hand it this one message.
      Batch one;
      const auto* p = reinterpret_cast<const uint8_t*>(nlh);
      one.bytes.assign(p, p + nlh->nlmsg_len);
      out += describe(one);
      continue;
    }
    const std::string seq = "seq " + std::to_string(nlh->nlmsg_seq) + " ";
    if (delrule) {
      RulePtr r(nftnl_rule_alloc(), nftnl_rule_free);
      if (!r || nftnl_rule_nlmsg_parse(nlh, r.get()) < 0) {
        out += seq + "unparsable delrule\n";
        continue;
      }
      const char* chain = nftnl_rule_get_str(r.get(), NFTNL_RULE_CHAIN);
      out += seq + "delrule (flush) chain " + (chain ? chain : "(none)") + "\n";
      continue;
    }
    if (set) {
      SetPtr s(nftnl_set_alloc(), nftnl_set_free);
      if (!s || nftnl_set_nlmsg_parse(nlh, s.get()) < 0) {
        out += seq + "unparsable set message\n";
        continue;
      }
      const char* name = nftnl_set_get_str(s.get(), NFTNL_SET_NAME);
      const char* table = nftnl_set_get_str(s.get(), NFTNL_SET_TABLE);
      out += seq + "newset " + (table ? table : "(none)") + " " + (name ? name : "(none)") +
             " keylen " + std::to_string(nftnl_set_get_u32(s.get(), NFTNL_SET_KEY_LEN)) +
             " flags " + std::to_string(nftnl_set_get_u32(s.get(), NFTNL_SET_FLAGS)) + " size " +
             std::to_string(nftnl_set_get_u32(s.get(), NFTNL_SET_DESC_SIZE)) + "\n";
      continue;
    }
    // Elements are walked here rather than with nftnl_set_elems_nlmsg_parse: libnftnl 1.2.4
    // numbers the element nests 1, 2, 3... when building (the kernel ignores the nest type)
    // but its parser accepts only NFTA_LIST_ELEM (1), so it refuses its own batches of more
    // than one element.
    out += seq + (msg == NFT_MSG_NEWSETELEM ? "newsetelem" : "delsetelem") + "\n";
    const auto* list = elems_attr(nlh, NFTA_SET_ELEM_LIST_ELEMENTS);
    if (list == nullptr) continue;
    for (const nlattr* elem : nested_all(list)) {
      const nlattr* key = nested_attr(elem, NFTA_SET_ELEM_KEY);
      const nlattr* value = key != nullptr ? nested_attr(key, NFTA_DATA_VALUE) : nullptr;
      out += "  key";
      if (value != nullptr) {
        const auto* k = static_cast<const uint8_t*>(mnl_attr_get_payload(value));
        for (uint16_t i = 0; i < mnl_attr_get_payload_len(value); ++i) {
          std::array<char, 4> h{};
          std::snprintf(h.data(), h.size(), "%02x", k[i]);
          out += (i % 4 == 0 ? " " : "") + std::string(h.data());
        }
      }
      if (const nlattr* t = nested_attr(elem, NFTA_SET_ELEM_TIMEOUT);
          t != nullptr && mnl_attr_get_payload_len(t) == 8) {
        out += " timeout " + std::to_string(be64toh(mnl_attr_get_u64(t))) + "ms";
      }
      out += "\n";
    }
  }
  return out;
}

}  // namespace hanat::netfilter
