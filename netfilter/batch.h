// SPDX-License-Identifier: GPL-2.0-or-later
#pragma once
// Pure batch building (STYLE C4): NatSpec -> the bytes of one nfnetlink transaction, built
// with libnftnl into a paged nftnl_batch as nftables does, plus a table that maps every
// message's sequence number back to the object it creates or deletes, so a kernel error can
// name that object. No syscalls here.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "netfilter/spec.h"

struct nftnl_rule;

namespace hanat::netfilter {

// The postrouting chain's fixed identity. `priority srcnat` is NF_IP_PRI_NAT_SRC (100).
inline constexpr std::string_view kChainName = "postrouting";
inline constexpr int32_t kChainPriority = 100;

// The forward-path counters (NatSpec::forward_counters). A NAT can answer pings, pass its
// own egress check and still drop every packet it should forward (a forward-hook drop, an
// rp_filter or routing mistake): those paths never cross the kernel's FORWARD hook. So
// hanat counts, in two filter chains of its own table,
//   forward_in   prerouting:  ct direction original ip ttl > 1 fib daddr type unicast counter
//   forward_out  postrouting: ct direction original fib saddr type unicast counter
// i.e. new-direction packets arriving for a non-local destination with a TTL that lets
// them be forwarded (TTL 1 expires here: ICMP time exceeded, never forwarded)
// and new-direction packets leaving with a non-local source (forwarded; locally generated
// packets carry a local source, replies are excluded by the direction). Both chains run at
// priority mangle (-150): after conntrack (-200) has assigned the direction, before
// destination NAT (-100) rewrites a reply's address and before masquerade (srcnat, 100)
// replaces the source. Packets in with none out means the forward path is dropping them.
inline constexpr std::string_view kForwardInChain = "forward_in";
inline constexpr std::string_view kForwardOutChain = "forward_out";
inline constexpr int32_t kForwardChainPriority = -150;

// The post-NAT leak counter (NatSpec::leak_counter). A flow whose first packet was forwarded
// while the masquerade was missing keeps a conntrack entry without source NAT, and NAT is
// decided on a connection's first packet only (conntrack.h): its packets leave with their
// private source, which the internet gateway drops. Such packets are counted in
//   leak_out  postrouting, priority srcnat + 1:
//             oifname "<egress>" [ip saddr <cidr>] ct direction original
//             fib saddr type unicast counter       (one rule per source CIDR)
// After srcnat the source of a NATed packet is this host's own address (fib type local), so
// only packets that escaped NAT still have a forwarded (unicast, non-local) source there.
// The priority must be above NF_IP_PRI_NAT_SRC: the nat hook rewrites the packet before
// chains of a higher number see it. Any count is a data-plane fault: the daemon purges.
inline constexpr std::string_view kLeakChain = "leak_out";
inline constexpr int32_t kLeakChainPriority = kChainPriority + 1;

struct Batch {
  std::vector<uint8_t> bytes;  // BEGIN, objects..., END; sent with one sendmsg
  uint32_t begin_seq = 0;
  uint32_t end_seq = 0;
  // One entry per object message (everything between BEGIN and END), in order. Every one
  // carries NLM_F_ACK, so the kernel answers each.
  std::vector<std::pair<uint32_t, std::string>> objects;

  // The object a sequence number belongs to, or "batch" for BEGIN/END/unknown.
  [[nodiscard]] std::string what(uint32_t seq) const;
  // The sequence number after this batch: where the next one may start.
  [[nodiscard]] uint32_t next_seq() const { return end_seq + 1; }
};

using RulePtr = std::unique_ptr<nftnl_rule, void (*)(const nftnl_rule*)>;

// The desired rules of chain postrouting as libnftnl objects (validated first): the snat
// rules, one per (rule, CIDR), then one masquerade rule per source CIDR, in the order given;
// a /0 CIDR means "any source" and gets no saddr match.
//
// `as_dumped`: the rules as the kernel dumps them back rather than as nft builds them. Only
// `snat to` differs: nft sends the address register alone, and the kernel's nft_nat_init
// sets NF_NAT_RANGE_MAP_IPS and addr_max = addr_min itself, which nft_nat_dump reports
// (`[ nat snat ip addr_min reg 1 addr_max reg 1 flags 0x1 ]`).
[[nodiscard]] core::Result<std::vector<RulePtr>, Error> desired_rules(const NatSpec& spec,
                                                                      bool as_dumped = false);

// The counting rule of chain forward_in (`outgoing` false) or forward_out (true).
[[nodiscard]] core::Result<RulePtr, Error> forward_counter_rule(const NatSpec& spec, bool outgoing);

// The rules of chain leak_out: first one `oifname "<if>" ip saddr <address> accept` per
// distinct snat address (a packet SNATed to a secondary private IP that is not configured
// on the host is no leak, though fib does not call its source local), then the counting
// rules, one per source CIDR (one for any source when the list is empty), in order.
[[nodiscard]] core::Result<std::vector<RulePtr>, Error> leak_counter_rules(const NatSpec& spec);

// Replace the table atomically: BEGIN, NEWTABLE (create if missing), DELTABLE, NEWTABLE,
// NEWCHAIN, NEWRULE..., END. The first NEWTABLE makes the DELTABLE valid whether or not the
// table exists (the `nft -f` idiom "table x; delete table x; table x {...}"), so applying
// twice leaves exactly one copy, and an error anywhere aborts the whole transaction: the
// kernel never shows a half-built table.
//
// `replaces` (a rename by reload): the table hanat owned under its previous name is
// deleted in the same transaction (BEGIN, NEWTABLE old, DELTABLE old, then as above), so a
// failure anywhere leaves the old table in place — never a host without masquerade.
[[nodiscard]] core::Result<Batch, Error> build_batch(const NatSpec& spec, uint32_t first_seq,
                                                     std::string_view replaces = {});

// Remove the table in one transaction: BEGIN, NEWTABLE, DELTABLE, END. Removing a table
// that does not exist succeeds.
[[nodiscard]] core::Result<Batch, Error> build_removal(std::string_view table, uint32_t first_seq);

// Expressions of a rule, one "[ meta load oifname => reg 1 ]" string per expression, as
// nftnl_rule_snprintf and `nft --debug=netlink` print them. Comparing these ignores the
// rule's handle and position, which the kernel assigns. A counter is rendered "[ counter ]"
// without its values, which change with every packet.
[[nodiscard]] std::vector<std::string> rule_expressions(const nftnl_rule* rule);

// The packet count of the first counter expression of a rule, if it has one.
[[nodiscard]] std::optional<uint64_t> rule_counter_packets(const nftnl_rule* rule);

// nftnl_rule_snprintf of a rule: "ip hanat postrouting\n" then one "  [ ... ]\n" line per
// expression, the block `nft --debug=netlink` prints. For golden tests and debug logs.
[[nodiscard]] std::string rule_debug_text(const nftnl_rule* rule);

// Parses a batch back into a human-readable listing, one line per message (type, object,
// flags, seq) with each rule's expressions below it. Used by the golden tests (build ->
// parse round trip) and for debug output.
[[nodiscard]] std::string describe(const Batch& batch);

}  // namespace hanat::netfilter
