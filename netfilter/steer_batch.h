// SPDX-License-Identifier: GPL-2.0-or-later
#pragma once
// Steering of a leaving member's flows, pure part: SteerSpec -> nfnetlink batches (libnftnl),
// no syscalls. The I/O half (tunnel, policy routing, commits) is netfilter/steer.h, which
// explains the design; this file pins what goes into the kernel's nftables.
//
// Per leaving peer, the taking member owns one table `ip hanat_steer_<peer hex>`:
//
//   table ip hanat_steer_c6120202 {
//     set flows {
//       typeof ip saddr . ip daddr . meta l4proto . th sport . th dport
//       size <max_flows>; flags timeout
//     }
//     chain prerouting {                    # type filter hook prerouting priority mangle
//       ip saddr . ip daddr . meta l4proto . th sport . th dport @flows meta mark set <mark>
//       jump catch_unknown
//     }
//     chain catch_unknown {                 # empty, or while the handover lasts:
//       meta l4proto tcp tcp flags & syn == 0 ct state new,invalid fib daddr type unicast
//         meta mark set <mark>
//     }
//     chain forward {                       # type filter hook forward priority mangle
//       meta mark <mark> meta mark set 0x00000000   # routed already; see clear_rule()
//     }
//   }
//
// A table per peer makes remove() one DELTABLE and lets two handovers (to two peers) never
// share state. Priority mangle (-150) runs after conntrack (-200), whose view the catch rule
// needs, and before the routing decision that reads the mark.

#include <array>
#include <cstdint>
#include <span>
#include <string>

#include "netfilter/batch.h"
#include "netfilter/flow.h"
#include "netfilter/spec.h"

namespace hanat::netfilter {

inline constexpr std::string_view kSteerTablePrefix = "hanat_steer_";
inline constexpr std::string_view kSteerSet = "flows";
inline constexpr std::string_view kSteerChain = "prerouting";
inline constexpr std::string_view kSteerCatchChain = "catch_unknown";
inline constexpr std::string_view kSteerForwardChain = "forward";
inline constexpr int32_t kSteerChainPriority = -150;  // NF_IP_PRI_MANGLE
// Tunnel devices are "hanat-" + the peer's address in 8 hex digits: 14 characters, within
// IFNAMSIZ - 1, and recognisable by the start-up cleanup.
inline constexpr std::string_view kSteerLinkPrefix = "hanat-";
// IANA's VXLAN port (RFC 7348). The security groups must allow it between members.
inline constexpr uint16_t kSteerVxlanPort = 4789;

// Set elements per NEWSETELEM message: about 44 bytes each, so a message (11 KiB) fits in
// one 16 KiB page of the batch. nftnl_batch moves a message that crosses its page limit to a
// fresh page; one larger than a whole page overflows that page too and is lost.
inline constexpr size_t kSteerElemsPerMessage = 256;

// What the taking member needs to steer one leaving peer's flows to it.
struct SteerSpec {
  uint32_t local = 0;               // this member's private address: the tunnel's outer source
  uint32_t peer = 0;                // the leaving member's private address: the outer destination
  uint32_t mark = 0;                // fwmark of steered packets (non-zero); one per peer
  uint32_t route_table = 0;         // routing table with the default into the tunnel (1..2^32-1,
                                    // not 253-255: default, main, local)
  uint32_t rule_priority = 0;       // the fwmark rule's priority; before "main" (32766)
  uint32_t max_flows = 65536;       // the set's size; the kernel refuses elements beyond it
  uint32_t max_timeout_s = 300;     // cap on an element's life: the handover's flow_drain
  uint32_t mtu = 0;                 // tunnel MTU; 0 = the kernel's (1500 for VXLAN, see steer.h)
  uint16_t port = kSteerVxlanPort;  // the VXLAN UDP port both members use

  friend bool operator==(const SteerSpec&, const SteerSpec&) = default;
};

// Checks a SteerSpec without touching the system; the message names the field and value.
[[nodiscard]] Status validate(const SteerSpec& spec);

[[nodiscard]] std::string steer_table_name(uint32_t peer);
[[nodiscard]] std::string steer_link_name(uint32_t peer);

// The VXLAN network identifier of the tunnel between two members: the same whichever side
// asks (both devices must carry it), 24 bits, never 0.
[[nodiscard]] uint32_t steer_vni(uint32_t a, uint32_t b);

// The set element key of a flow: saddr . daddr . l4proto . sport . dport, each field in
// network order in a 32-bit register slot (nftables pads concatenated fields to 4 bytes).
[[nodiscard]] std::array<uint8_t, 20> steer_key(const Flow& flow);

// Whether a flow can be steered by its 5-tuple: TCP and UDP. ICMP is not: `th sport` reads
// the ICMP type/code, not the echo id, and an echo needs no steering anyway — after the route
// moves, the next echo request gets a fresh binding at the taking NAT and its reply comes back
// through it, so a ping loses nothing.
[[nodiscard]] bool steerable(const Flow& flow);

// The element's timeout in ms: the flow's remaining conntrack timeout, capped by
// max_timeout_s (an established TCP entry has 5 days left); unknown (0) means the cap.
[[nodiscard]] uint64_t steer_timeout_ms(const SteerSpec& spec, const Flow& flow);

// The table, replaced atomically (the masquerade table's idiom: NEWTABLE, DELTABLE,
// NEWTABLE, ...): the set (empty), both chains, the prerouting rules; catch_unknown empty.
[[nodiscard]] core::Result<Batch, Error> build_steer_table(const SteerSpec& spec,
                                                           uint32_t first_seq);

// The rules, for golden tests and read-back: prerouting's two, forward's one; and the catch
// rule.
[[nodiscard]] core::Result<std::vector<RulePtr>, Error> steer_rules(const SteerSpec& spec);
[[nodiscard]] core::Result<RulePtr, Error> steer_catch_rule(const SteerSpec& spec);

struct FlowBatch {
  Batch batch;
  size_t elements = 0;  // flows in the batch (steerable ones, duplicates included)
  size_t skipped = 0;   // flows left out (not TCP/UDP)
};

// Adds flows to the set. More than max_flows steerable flows in one call is an error naming
// both counts (the kernel would refuse the overflow anyway, and the whole batch with it).
// An element already in the set is left as it is (no NLM_F_EXCL). Empty input: a batch of
// no object (elements == 0), which the caller need not commit.
[[nodiscard]] core::Result<FlowBatch, Error> build_flow_add(const SteerSpec& spec,
                                                            std::span<const Flow> flows,
                                                            uint32_t first_seq);

// Deletes flows from the set. Each element is first created if missing (no NLM_F_EXCL, same
// 1 ms timeout) and then deleted in the same transaction, so an element that has already
// timed out in the kernel does not abort the batch with ENOENT (the NEWTABLE/DELTABLE idiom).
[[nodiscard]] core::Result<FlowBatch, Error> build_flow_remove(const SteerSpec& spec,
                                                               std::span<const Flow> flows,
                                                               uint32_t first_seq);

// Flushes catch_unknown (DELRULE without a handle) and, when `on`, adds the catch rule: one
// transaction, idempotent.
[[nodiscard]] core::Result<Batch, Error> build_catch_unknown(const SteerSpec& spec, bool on,
                                                             uint32_t first_seq);

// A listing of a steering batch, one line per message, with set elements and rules spelled
// out: for the golden tests.
[[nodiscard]] std::string describe_steer(const Batch& batch);

}  // namespace hanat::netfilter
