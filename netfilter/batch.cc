// SPDX-License-Identifier: GPL-2.0-or-later
#include "netfilter/batch.h"
#include "netfilter/nft_builder.h"

#include <arpa/inet.h>
#include <libmnl/libmnl.h>
#include <libnftnl/batch.h>
#include <libnftnl/chain.h>
#include <libnftnl/common.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <libnftnl/table.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_nat.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <netinet/ip.h>
#include <sys/uio.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstring>

namespace hanat::netfilter {

namespace {

using nft::Builder;
using nft::ChainPtr;
using nft::enomem;
using nft::ExprPtr;
using nft::make_expr;
using nft::make_table;
using nft::TablePtr;

std::string table_what(std::string_view table) {
  return "table ip " + std::string(table);
}

// Adds `oifname == name`: the meta key loads the full IFNAMSIZ buffer, so the compared data
// is the name zero-padded to 16 bytes (an exact match, not a prefix).
bool add_meta_oifname(nftnl_rule* r, const std::string& name) {
  auto meta = make_expr("meta");
  auto cmp = make_expr("cmp");
  if (!meta || !cmp) return false;
  nftnl_expr_set_u32(meta.get(), NFTNL_EXPR_META_KEY, NFT_META_OIFNAME);
  nftnl_expr_set_u32(meta.get(), NFTNL_EXPR_META_DREG, NFT_REG_1);
  std::array<char, IFNAMSIZ> data{};
  std::memcpy(data.data(), name.data(), std::min(name.size(), data.size() - 1));
  nftnl_expr_set_u32(cmp.get(), NFTNL_EXPR_CMP_SREG, NFT_REG_1);
  nftnl_expr_set_u32(cmp.get(), NFTNL_EXPR_CMP_OP, NFT_CMP_EQ);
  nftnl_expr_set(cmp.get(), NFTNL_EXPR_CMP_DATA, data.data(), data.size());
  nftnl_rule_add_expr(r, meta.release());
  nftnl_rule_add_expr(r, cmp.release());
  return true;
}

// Adds `ip saddr <prefix>` the way nft 1.0 linearises it: a byte-aligned prefix loads only
// its significant bytes and compares them; any other prefix loads the 4-byte address, masks
// it with a bitwise expression and compares the masked value. Identical expressions mean
// `nft list` prints our rules exactly as if nft had written them.
bool add_saddr_prefix(nftnl_rule* r, const Ipv4Prefix& p) {
  const uint32_t net_addr = htonl(p.addr);
  std::array<uint8_t, 4> addr{};
  std::memcpy(addr.data(), &net_addr, 4);
  const bool aligned = p.len % 8 == 0;
  const uint32_t load_len = aligned ? p.len / 8U : 4U;
  auto payload = make_expr("payload");
  auto cmp = make_expr("cmp");
  if (!payload || !cmp) return false;
  nftnl_expr_set_u32(payload.get(), NFTNL_EXPR_PAYLOAD_DREG, NFT_REG_1);
  nftnl_expr_set_u32(payload.get(), NFTNL_EXPR_PAYLOAD_BASE, NFT_PAYLOAD_NETWORK_HEADER);
  nftnl_expr_set_u32(payload.get(), NFTNL_EXPR_PAYLOAD_OFFSET, offsetof(iphdr, saddr));
  nftnl_expr_set_u32(payload.get(), NFTNL_EXPR_PAYLOAD_LEN, load_len);
  nftnl_rule_add_expr(r, payload.release());
  if (!aligned) {
    auto bitwise = make_expr("bitwise");
    if (!bitwise) return false;
    const uint32_t mask = htonl(~0U << (32U - p.len));
    const uint32_t zero = 0;
    nftnl_expr_set_u32(bitwise.get(), NFTNL_EXPR_BITWISE_SREG, NFT_REG_1);
    nftnl_expr_set_u32(bitwise.get(), NFTNL_EXPR_BITWISE_DREG, NFT_REG_1);
    nftnl_expr_set_u32(bitwise.get(), NFTNL_EXPR_BITWISE_LEN, 4);
    nftnl_expr_set(bitwise.get(), NFTNL_EXPR_BITWISE_MASK, &mask, sizeof mask);
    nftnl_expr_set(bitwise.get(), NFTNL_EXPR_BITWISE_XOR, &zero, sizeof zero);
    nftnl_rule_add_expr(r, bitwise.release());
  }
  nftnl_expr_set_u32(cmp.get(), NFTNL_EXPR_CMP_SREG, NFT_REG_1);
  nftnl_expr_set_u32(cmp.get(), NFTNL_EXPR_CMP_OP, NFT_CMP_EQ);
  nftnl_expr_set(cmp.get(), NFTNL_EXPR_CMP_DATA, addr.data(), load_len);
  nftnl_rule_add_expr(r, cmp.release());
  return true;
}

// Adds `masquerade [fully-random] [persistent]`. The kernel dumps NFTA_MASQ_FLAGS only when
// non-zero (nft_masq_dump), so flags are set only when non-zero: the read-back then prints
// exactly what was built.
bool add_masq(nftnl_rule* r, bool fully_random, bool persistent) {
  auto masq = make_expr("masq");
  if (!masq) return false;
  uint32_t flags = 0;
  if (fully_random) flags |= NF_NAT_RANGE_PROTO_RANDOM_FULLY;
  if (persistent) flags |= NF_NAT_RANGE_PERSISTENT;
  if (flags != 0) nftnl_expr_set_u32(masq.get(), NFTNL_EXPR_MASQ_FLAGS, flags);
  nftnl_rule_add_expr(r, masq.release());
  return true;
}

// Adds `snat to <address>` as nft 1.0 linearises it: the address in register 1, then a
// nat expression reading it. `as_dumped` adds what the kernel fills in itself (batch.h).
bool add_snat(nftnl_rule* r, uint32_t addr, bool as_dumped) {
  auto imm = make_expr("immediate");
  auto nat = make_expr("nat");
  if (!imm || !nat) return false;
  const uint32_t net_addr = htonl(addr);
  nftnl_expr_set_u32(imm.get(), NFTNL_EXPR_IMM_DREG, NFT_REG_1);
  nftnl_expr_set(imm.get(), NFTNL_EXPR_IMM_DATA, &net_addr, sizeof net_addr);
  nftnl_expr_set_u32(nat.get(), NFTNL_EXPR_NAT_TYPE, NFT_NAT_SNAT);
  nftnl_expr_set_u32(nat.get(), NFTNL_EXPR_NAT_FAMILY, NFPROTO_IPV4);
  nftnl_expr_set_u32(nat.get(), NFTNL_EXPR_NAT_REG_ADDR_MIN, NFT_REG_1);
  if (as_dumped) {
    nftnl_expr_set_u32(nat.get(), NFTNL_EXPR_NAT_REG_ADDR_MAX, NFT_REG_1);
    nftnl_expr_set_u32(nat.get(), NFTNL_EXPR_NAT_FLAGS, NF_NAT_RANGE_MAP_IPS);
  }
  nftnl_rule_add_expr(r, imm.release());
  nftnl_rule_add_expr(r, nat.release());
  return true;
}

// Adds `accept`.
bool add_accept(nftnl_rule* r) {
  auto imm = make_expr("immediate");
  if (!imm) return false;
  nftnl_expr_set_u32(imm.get(), NFTNL_EXPR_IMM_DREG, NFT_REG_VERDICT);
  nftnl_expr_set_u32(imm.get(), NFTNL_EXPR_IMM_VERDICT, NF_ACCEPT);
  nftnl_rule_add_expr(r, imm.release());
  return true;
}

// Adds `ct direction original`: the direction is one byte (enum ip_conntrack_dir), so the
// compared data is that byte. A packet without a conntrack entry (untracked, invalid) makes
// the ct expression break the rule: such packets are counted neither in nor out.
bool add_ct_direction_original(nftnl_rule* r) {
  auto ct = make_expr("ct");
  auto cmp = make_expr("cmp");
  if (!ct || !cmp) return false;
  nftnl_expr_set_u32(ct.get(), NFTNL_EXPR_CT_KEY, NFT_CT_DIRECTION);
  nftnl_expr_set_u32(ct.get(), NFTNL_EXPR_CT_DREG, NFT_REG_1);
  const uint8_t original = 0;  // IP_CT_DIR_ORIGINAL
  nftnl_expr_set_u32(cmp.get(), NFTNL_EXPR_CMP_SREG, NFT_REG_1);
  nftnl_expr_set_u32(cmp.get(), NFTNL_EXPR_CMP_OP, NFT_CMP_EQ);
  nftnl_expr_set(cmp.get(), NFTNL_EXPR_CMP_DATA, &original, sizeof original);
  nftnl_rule_add_expr(r, ct.release());
  nftnl_rule_add_expr(r, cmp.release());
  return true;
}

// Adds `ip ttl > 1`. A packet that arrives with TTL 1 (or 0) is never forwarded: the kernel
// drops it in ip_forward() and answers ICMP time exceeded (RFC 1812 5.3.1). Counted as
// "arrived to be forwarded", such packets looked like a forward-path stall: a traceroute
// or a TTL-1 flood of ~17 packets/s from one private host on a quiet NAT tripped the
// forward check.
bool add_ttl_above_one(nftnl_rule* r) {
  auto payload = make_expr("payload");
  auto cmp = make_expr("cmp");
  if (!payload || !cmp) return false;
  nftnl_expr_set_u32(payload.get(), NFTNL_EXPR_PAYLOAD_DREG, NFT_REG_1);
  nftnl_expr_set_u32(payload.get(), NFTNL_EXPR_PAYLOAD_BASE, NFT_PAYLOAD_NETWORK_HEADER);
  nftnl_expr_set_u32(payload.get(), NFTNL_EXPR_PAYLOAD_OFFSET, offsetof(iphdr, ttl));
  nftnl_expr_set_u32(payload.get(), NFTNL_EXPR_PAYLOAD_LEN, 1);
  const uint8_t one = 1;
  nftnl_expr_set_u32(cmp.get(), NFTNL_EXPR_CMP_SREG, NFT_REG_1);
  nftnl_expr_set_u32(cmp.get(), NFTNL_EXPR_CMP_OP, NFT_CMP_GT);
  nftnl_expr_set(cmp.get(), NFTNL_EXPR_CMP_DATA, &one, sizeof one);
  nftnl_rule_add_expr(r, payload.release());
  nftnl_rule_add_expr(r, cmp.release());
  return true;
}

// Adds `fib daddr type unicast` (or saddr): the kernel's inet_dev_addr_type() of the address,
// a host-order u32 RTN_* value. RTN_UNICAST is every address that is not local, broadcast,
// multicast or anycast on this host — the destinations a NAT forwards to. Without the iif
// flag the kernel allows this in prerouting and postrouting alike (nft_fib_validate).
bool add_fib_type_unicast(nftnl_rule* r, bool source) {
  auto fib = make_expr("fib");
  auto cmp = make_expr("cmp");
  if (!fib || !cmp) return false;
  nftnl_expr_set_u32(fib.get(), NFTNL_EXPR_FIB_FLAGS, source ? NFTA_FIB_F_SADDR : NFTA_FIB_F_DADDR);
  nftnl_expr_set_u32(fib.get(), NFTNL_EXPR_FIB_RESULT, NFT_FIB_RESULT_ADDRTYPE);
  nftnl_expr_set_u32(fib.get(), NFTNL_EXPR_FIB_DREG, NFT_REG_1);
  const uint32_t unicast = RTN_UNICAST;
  nftnl_expr_set_u32(cmp.get(), NFTNL_EXPR_CMP_SREG, NFT_REG_1);
  nftnl_expr_set_u32(cmp.get(), NFTNL_EXPR_CMP_OP, NFT_CMP_EQ);
  nftnl_expr_set(cmp.get(), NFTNL_EXPR_CMP_DATA, &unicast, sizeof unicast);
  nftnl_rule_add_expr(r, fib.release());
  nftnl_rule_add_expr(r, cmp.release());
  return true;
}

// Adds `counter`, starting at zero as nft sends it (both values set, so the batch prints the
// same "[ counter pkts 0 bytes 0 ]" as `nft --debug=netlink`).
bool add_counter(nftnl_rule* r) {
  auto c = make_expr("counter");
  if (!c) return false;
  nftnl_expr_set_u64(c.get(), NFTNL_EXPR_CTR_PACKETS, 0);
  nftnl_expr_set_u64(c.get(), NFTNL_EXPR_CTR_BYTES, 0);
  nftnl_rule_add_expr(r, c.release());
  return true;
}

bool add_table_create(Builder& b, std::string_view name) {
  auto t = make_table(name);
  return t && b.add(NFT_MSG_NEWTABLE, NLM_F_CREATE, t.get(), nftnl_table_nlmsg_build_payload,
                    table_what(name));
}

bool add_table_delete(Builder& b, std::string_view name) {
  auto t = make_table(name);
  return t &&
         b.add(NFT_MSG_DELTABLE, 0, t.get(), nftnl_table_nlmsg_build_payload, table_what(name));
}

// The source of each rule, in order: one per CIDR, or a single "any source" rule. The spec
// must be valid.
std::vector<std::optional<Ipv4Prefix>> rule_sources(const NatSpec& spec) {
  std::vector<std::optional<Ipv4Prefix>> sources;
  for (const auto& c : spec.source_cidrs) sources.emplace_back(parse_ipv4_prefix(c).value());
  if (sources.empty()) sources.emplace_back(std::nullopt);
  return sources;
}

std::string forward_rule_text(bool outgoing) {
  return outgoing ? "ct direction original fib saddr type unicast counter"
                  : "ct direction original ip ttl > 1 fib daddr type unicast counter";
}

ChainPtr make_chain(const NatSpec& spec, std::string_view name, const char* type, uint32_t hook,
                    int32_t priority) {
  ChainPtr chain(nftnl_chain_alloc(), nftnl_chain_free);
  if (!chain) return chain;
  nftnl_chain_set_u32(chain.get(), NFTNL_CHAIN_FAMILY, NFPROTO_IPV4);
  nftnl_chain_set_str(chain.get(), NFTNL_CHAIN_TABLE, spec.table.c_str());
  nftnl_chain_set_str(chain.get(), NFTNL_CHAIN_NAME, std::string(name).c_str());
  nftnl_chain_set_str(chain.get(), NFTNL_CHAIN_TYPE, type);
  nftnl_chain_set_u32(chain.get(), NFTNL_CHAIN_HOOKNUM, hook);
  nftnl_chain_set_s32(chain.get(), NFTNL_CHAIN_PRIO, priority);
  return chain;
}

// One rule of chain postrouting: a snat rule (`snat_to` set) or a masquerade rule.
struct PostroutingRule {
  std::optional<Ipv4Prefix> src;
  std::optional<uint32_t> snat_to;  // host byte order
  std::string text;
};

// The rules of chain postrouting, in order (the spec must be valid).
std::vector<PostroutingRule> postrouting_rules(const NatSpec& spec) {
  std::vector<PostroutingRule> out;
  for (const auto& s : spec.snat) {
    in_addr a{};
    inet_pton(AF_INET, s.address.c_str(), &a);
    for (const auto& c : s.source_cidrs) {
      const Ipv4Prefix p = parse_ipv4_prefix(c).value();
      out.push_back({p, ntohl(a.s_addr), snat_rule_text(spec, p, s.address)});
    }
  }
  for (const auto& src : rule_sources(spec)) {
    out.push_back({src, std::nullopt, rule_text(spec, src)});
  }
  return out;
}

// The distinct snat addresses, in first-use order (host byte order).
std::vector<uint32_t> snat_addresses(const NatSpec& spec) {
  std::vector<uint32_t> out;
  for (const auto& s : spec.snat) {
    in_addr a{};
    inet_pton(AF_INET, s.address.c_str(), &a);
    const uint32_t h = ntohl(a.s_addr);
    if (std::find(out.begin(), out.end(), h) == out.end()) out.push_back(h);
  }
  return out;
}

std::string rule_what(const NatSpec& spec, size_t index, const std::string& text) {
  return "rule " + std::to_string(index + 1) + " in chain ip " + spec.table + " " +
         std::string(kChainName) + " (" + text + ")";
}

std::string leak_rule_what(const NatSpec& spec, size_t index,
                           const std::optional<Ipv4Prefix>& src) {
  std::string text = "oifname \"" + spec.egress_interface + "\"";
  if (src && src->len > 0) text += " ip saddr " + to_string(*src);
  text += " ct direction original fib saddr type unicast counter";
  return "rule " + std::to_string(index + 1) + " in chain ip " + spec.table + " " +
         std::string(kLeakChain) + " (" + text + ")";
}

std::string leak_accept_what(const NatSpec& spec, size_t index, uint32_t addr) {
  return "rule " + std::to_string(index + 1) + " in chain ip " + spec.table + " " +
         std::string(kLeakChain) + " (oifname \"" + spec.egress_interface + "\" ip saddr " +
         to_string(Ipv4Prefix{addr, 32}) + " accept)";
}

}  // namespace

std::string Batch::what(uint32_t seq) const {
  for (const auto& [s, w] : objects) {
    if (s == seq) return w;
  }
  return "batch";
}

core::Result<std::vector<RulePtr>, Error> desired_rules(const NatSpec& spec, bool as_dumped) {
  if (auto v = validate(spec); !v) return core::Unexpected(v.error());
  const auto wanted = postrouting_rules(spec);
  std::vector<RulePtr> rules;
  for (size_t i = 0; i < wanted.size(); ++i) {
    const auto& w = wanted[i];
    RulePtr r(nftnl_rule_alloc(), nftnl_rule_free);
    const std::string what = rule_what(spec, i, w.text);
    if (!r) return core::Unexpected(enomem(what));
    nftnl_rule_set_u32(r.get(), NFTNL_RULE_FAMILY, NFPROTO_IPV4);
    nftnl_rule_set_str(r.get(), NFTNL_RULE_TABLE, spec.table.c_str());
    nftnl_rule_set_str(r.get(), NFTNL_RULE_CHAIN, std::string(kChainName).c_str());
    bool built = add_meta_oifname(r.get(), spec.egress_interface);
    // 0.0.0.0/0 matches every packet: no saddr match at all is the same rule, cheaper.
    if (built && w.src && w.src->len > 0) built = add_saddr_prefix(r.get(), *w.src);
    if (built) {
      built = w.snat_to ? add_snat(r.get(), *w.snat_to, as_dumped)
                        : add_masq(r.get(), spec.fully_random, spec.persistent);
    }
    if (!built) return core::Unexpected(enomem(what));
    rules.push_back(std::move(r));
  }
  return rules;
}

core::Result<RulePtr, Error> forward_counter_rule(const NatSpec& spec, bool outgoing) {
  const std::string_view chain = outgoing ? kForwardOutChain : kForwardInChain;
  const std::string what = "rule 1 in chain ip " + spec.table + " " + std::string(chain) + " (" +
                           forward_rule_text(outgoing) + ")";
  RulePtr r(nftnl_rule_alloc(), nftnl_rule_free);
  if (!r) return core::Unexpected(enomem(what));
  nftnl_rule_set_u32(r.get(), NFTNL_RULE_FAMILY, NFPROTO_IPV4);
  nftnl_rule_set_str(r.get(), NFTNL_RULE_TABLE, spec.table.c_str());
  nftnl_rule_set_str(r.get(), NFTNL_RULE_CHAIN, std::string(chain).c_str());
  // Only packets that will be forwarded count in (TTL > 1); every packet that leaves
  // forwarded has passed that test already.
  if (!(add_ct_direction_original(r.get()) && (outgoing || add_ttl_above_one(r.get())) &&
        add_fib_type_unicast(r.get(), outgoing) && add_counter(r.get()))) {
    return core::Unexpected(enomem(what));
  }
  return r;
}

core::Result<std::vector<RulePtr>, Error> leak_counter_rules(const NatSpec& spec) {
  if (auto v = validate(spec); !v) return core::Unexpected(v.error());
  const auto sources = rule_sources(spec);
  const auto snat = snat_addresses(spec);
  std::vector<RulePtr> rules;
  for (size_t i = 0; i < snat.size(); ++i) {
    const std::string what = leak_accept_what(spec, i, snat[i]);
    RulePtr r(nftnl_rule_alloc(), nftnl_rule_free);
    if (!r) return core::Unexpected(enomem(what));
    nftnl_rule_set_u32(r.get(), NFTNL_RULE_FAMILY, NFPROTO_IPV4);
    nftnl_rule_set_str(r.get(), NFTNL_RULE_TABLE, spec.table.c_str());
    nftnl_rule_set_str(r.get(), NFTNL_RULE_CHAIN, std::string(kLeakChain).c_str());
    if (!(add_meta_oifname(r.get(), spec.egress_interface) &&
          add_saddr_prefix(r.get(), Ipv4Prefix{snat[i], 32}) && add_accept(r.get()))) {
      return core::Unexpected(enomem(what));
    }
    rules.push_back(std::move(r));
  }
  for (size_t i = 0; i < sources.size(); ++i) {
    const auto& src = sources[i];
    const std::string what = leak_rule_what(spec, snat.size() + i, src);
    RulePtr r(nftnl_rule_alloc(), nftnl_rule_free);
    if (!r) return core::Unexpected(enomem(what));
    nftnl_rule_set_u32(r.get(), NFTNL_RULE_FAMILY, NFPROTO_IPV4);
    nftnl_rule_set_str(r.get(), NFTNL_RULE_TABLE, spec.table.c_str());
    nftnl_rule_set_str(r.get(), NFTNL_RULE_CHAIN, std::string(kLeakChain).c_str());
    bool built = add_meta_oifname(r.get(), spec.egress_interface);
    if (built && src && src->len > 0) built = add_saddr_prefix(r.get(), *src);
    built = built && add_ct_direction_original(r.get()) && add_fib_type_unicast(r.get(), true) &&
            add_counter(r.get());
    if (!built) return core::Unexpected(enomem(what));
    rules.push_back(std::move(r));
  }
  return rules;
}

core::Result<Batch, Error> build_batch(const NatSpec& spec, uint32_t first_seq,
                                       std::string_view replaces) {
  auto rules = desired_rules(spec);
  if (!rules) return core::Unexpected(rules.error());
  if (replaces == spec.table) replaces = {};
  if (!replaces.empty()) {
    NatSpec old = spec;
    old.table = std::string(replaces);
    if (auto v = validate(old); !v) return core::Unexpected(v.error());
  }
  Builder b(first_seq);
  if (!b.ok()) return core::Unexpected(enomem("batch"));

  ChainPtr chain = make_chain(spec, kChainName, "nat", NF_INET_POST_ROUTING, kChainPriority);
  if (!chain) return core::Unexpected(enomem("chain"));

  bool built = b.begin();
  if (built && !replaces.empty())
    built = add_table_create(b, replaces) && add_table_delete(b, replaces);
  built = built && add_table_create(b, spec.table) && add_table_delete(b, spec.table) &&
          add_table_create(b, spec.table) &&
          b.add(NFT_MSG_NEWCHAIN, NLM_F_CREATE, chain.get(), nftnl_chain_nlmsg_build_payload,
                "chain ip " + spec.table + " " + std::string(kChainName));
  const auto sources = rule_sources(spec);
  const auto wanted = postrouting_rules(spec);
  for (size_t i = 0; built && i < rules->size(); ++i) {
    // Named after the rule it installs, numbered in chain order, so a kernel error reads
    // `rule 2 in chain ip hanat postrouting (oifname "eth0" ip saddr ... masquerade): ...`.
    built = b.add(NFT_MSG_NEWRULE, NLM_F_CREATE | NLM_F_APPEND, (*rules)[i].get(),
                  nftnl_rule_nlmsg_build_payload, rule_what(spec, i, wanted[i].text));
  }
  if (built && spec.forward_counters) {
    // In the same transaction as the masquerade chain: replacing the table resets both
    // counters together, which the forward check sees as counters going back and rebases on.
    for (const bool outgoing : {false, true}) {
      const std::string_view name = outgoing ? kForwardOutChain : kForwardInChain;
      ChainPtr c =
          make_chain(spec, name, "filter", outgoing ? NF_INET_POST_ROUTING : NF_INET_PRE_ROUTING,
                     kForwardChainPriority);
      auto rule = forward_counter_rule(spec, outgoing);
      if (!c) return core::Unexpected(enomem("chain"));
      if (!rule) return core::Unexpected(rule.error());
      built = built &&
              b.add(NFT_MSG_NEWCHAIN, NLM_F_CREATE, c.get(), nftnl_chain_nlmsg_build_payload,
                    "chain ip " + spec.table + " " + std::string(name)) &&
              b.add(NFT_MSG_NEWRULE, NLM_F_CREATE | NLM_F_APPEND, rule->get(),
                    nftnl_rule_nlmsg_build_payload,
                    "rule 1 in chain ip " + spec.table + " " + std::string(name) + " (" +
                        forward_rule_text(outgoing) + ")");
    }
  }
  if (built && spec.leak_counter) {
    ChainPtr c = make_chain(spec, kLeakChain, "filter", NF_INET_POST_ROUTING, kLeakChainPriority);
    auto leak = leak_counter_rules(spec);
    if (!c) return core::Unexpected(enomem("chain"));
    if (!leak) return core::Unexpected(leak.error());
    built = b.add(NFT_MSG_NEWCHAIN, NLM_F_CREATE, c.get(), nftnl_chain_nlmsg_build_payload,
                  "chain ip " + spec.table + " " + std::string(kLeakChain));
    const auto snat = snat_addresses(spec);
    for (size_t i = 0; built && i < leak->size(); ++i) {
      built = b.add(NFT_MSG_NEWRULE, NLM_F_CREATE | NLM_F_APPEND, (*leak)[i].get(),
                    nftnl_rule_nlmsg_build_payload,
                    i < snat.size() ? leak_accept_what(spec, i, snat[i])
                                    : leak_rule_what(spec, i, sources[i - snat.size()]));
    }
  }
  if (!built || !b.end()) return core::Unexpected(enomem("batch"));
  return b.finish();
}

core::Result<Batch, Error> build_removal(std::string_view table, uint32_t first_seq) {
  NatSpec probe;
  probe.table = std::string(table);
  probe.egress_interface = "lo";
  if (auto v = validate(probe); !v) return core::Unexpected(v.error());
  Builder b(first_seq);
  if (!b.ok()) return core::Unexpected(enomem("batch"));
  if (!(b.begin() && add_table_create(b, table) && add_table_delete(b, table) && b.end())) {
    return core::Unexpected(enomem("batch"));
  }
  return b.finish();
}

std::vector<std::string> rule_expressions(const nftnl_rule* rule) {
  std::vector<std::string> out;
  nftnl_expr_iter* it = nftnl_expr_iter_create(rule);
  if (it == nullptr) return out;
  for (nftnl_expr* e = nftnl_expr_iter_next(it); e != nullptr; e = nftnl_expr_iter_next(it)) {
    const char* name = nftnl_expr_get_str(e, NFTNL_EXPR_NAME);
    if (name != nullptr && std::string_view(name) == "counter") {
      out.emplace_back("[ counter ]");  // values change with traffic; not part of the rule
      continue;
    }
    std::array<char, 512> buf{};
    nftnl_expr_snprintf(buf.data(), buf.size(), e, NFTNL_OUTPUT_DEFAULT, 0);
    out.push_back(std::string("[ ") + (name ? name : "?") + " " + buf.data() + "]");
  }
  nftnl_expr_iter_destroy(it);
  return out;
}

std::optional<uint64_t> rule_counter_packets(const nftnl_rule* rule) {
  std::optional<uint64_t> packets;
  nftnl_expr_iter* it = nftnl_expr_iter_create(rule);
  if (it == nullptr) return packets;
  for (nftnl_expr* e = nftnl_expr_iter_next(it); e != nullptr; e = nftnl_expr_iter_next(it)) {
    const char* name = nftnl_expr_get_str(e, NFTNL_EXPR_NAME);
    if (name != nullptr && std::string_view(name) == "counter") {
      packets = nftnl_expr_get_u64(e, NFTNL_EXPR_CTR_PACKETS);
      break;
    }
  }
  nftnl_expr_iter_destroy(it);
  return packets;
}

std::string rule_debug_text(const nftnl_rule* rule) {
  std::string buf(1024, '\0');
  for (;;) {
    const int n = nftnl_rule_snprintf(buf.data(), buf.size(), rule, NFTNL_OUTPUT_DEFAULT, 0);
    if (n < 0) return {};
    if (static_cast<size_t>(n) < buf.size()) {
      buf.resize(static_cast<size_t>(n));
      return buf;
    }
    buf.assign(static_cast<size_t>(n) + 1, '\0');
  }
}

namespace {

std::string flags_text(uint16_t f) {
  std::string s;
  auto add = [&s](const char* n) { s += s.empty() ? n : std::string(",") + n; };
  if (f & NLM_F_CREATE) add("create");
  if (f & NLM_F_APPEND) add("append");
  if (f & NLM_F_EXCL) add("excl");
  if (f & NLM_F_ACK) add("ack");
  return "[" + s + "]";
}

// libnftnl returns NULL for an attribute the message lacked; describe() takes any bytes.
std::string str(const char* s) {
  return s != nullptr ? s : "(none)";
}

std::string family_text(uint32_t f) {
  return f == NFPROTO_IPV4 ? "ip" : std::to_string(f);
}

std::string hook_text(uint32_t h) {
  if (h == NF_INET_POST_ROUTING) return "postrouting";
  if (h == NF_INET_PRE_ROUTING) return "prerouting";
  return std::to_string(h);
}

}  // namespace

std::string describe(const Batch& batch) {
  std::string out;
  const void* data = batch.bytes.data();
  int len = static_cast<int>(batch.bytes.size());
  for (auto* nlh = static_cast<const nlmsghdr*>(data); mnl_nlmsg_ok(nlh, len);
       nlh = mnl_nlmsg_next(nlh, &len)) {
    const std::string seq = "seq " + std::to_string(nlh->nlmsg_seq) + " ";
    const uint16_t type = nlh->nlmsg_type;
    if (type == NFNL_MSG_BATCH_BEGIN || type == NFNL_MSG_BATCH_END) {
      out += seq + (type == NFNL_MSG_BATCH_BEGIN ? "batch begin\n" : "batch end\n");
      continue;
    }
    const int msg = type & 0xff;
    const std::string fl = " " + flags_text(nlh->nlmsg_flags);
    if ((type >> 8) != NFNL_SUBSYS_NFTABLES) {
      out += seq + "subsystem " + std::to_string(type >> 8) + " message " + std::to_string(msg) +
             fl + "\n";
      continue;
    }
    if (msg == NFT_MSG_NEWTABLE || msg == NFT_MSG_DELTABLE) {
      TablePtr t(nftnl_table_alloc(), nftnl_table_free);
      if (!t || nftnl_table_nlmsg_parse(nlh, t.get()) < 0) {
        out += seq + "unparsable table\n";
        continue;
      }
      out += seq + (msg == NFT_MSG_NEWTABLE ? "newtable " : "deltable ") +
             family_text(nftnl_table_get_u32(t.get(), NFTNL_TABLE_FAMILY)) + " " +
             str(nftnl_table_get_str(t.get(), NFTNL_TABLE_NAME)) + fl + "\n";
    } else if (msg == NFT_MSG_NEWCHAIN) {
      ChainPtr c(nftnl_chain_alloc(), nftnl_chain_free);
      if (!c || nftnl_chain_nlmsg_parse(nlh, c.get()) < 0) {
        out += seq + "unparsable chain\n";
        continue;
      }
      out += seq + "newchain " + family_text(nftnl_chain_get_u32(c.get(), NFTNL_CHAIN_FAMILY)) +
             " " + str(nftnl_chain_get_str(c.get(), NFTNL_CHAIN_TABLE)) + " " +
             str(nftnl_chain_get_str(c.get(), NFTNL_CHAIN_NAME)) + " type " +
             str(nftnl_chain_get_str(c.get(), NFTNL_CHAIN_TYPE)) + " hook " +
             hook_text(nftnl_chain_get_u32(c.get(), NFTNL_CHAIN_HOOKNUM)) + " prio " +
             std::to_string(nftnl_chain_get_s32(c.get(), NFTNL_CHAIN_PRIO)) + fl + "\n";
    } else if (msg == NFT_MSG_NEWRULE) {
      RulePtr r(nftnl_rule_alloc(), nftnl_rule_free);
      if (!r || nftnl_rule_nlmsg_parse(nlh, r.get()) < 0) {
        out += seq + "unparsable rule\n";
        continue;
      }
      out += seq + "newrule" + fl + "\n" + rule_debug_text(r.get());
    } else {
      out += seq + "nftables message " + std::to_string(msg) + fl + "\n";
    }
  }
  if (len != 0) out += "trailing " + std::to_string(len) + " bytes\n";
  return out;
}

}  // namespace hanat::netfilter
