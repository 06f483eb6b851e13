// SPDX-License-Identifier: GPL-2.0-or-later
#pragma once
// DOC: steering — the taking NAT sends a leaving NAT's established flows back to it.
//
// In a planned handover member A (leaving) hands its route tables to member B (taking). A's
// conntrack holds the NAT bindings of the flows it translates (A's address and ports); B has
// none. Packets of those flows now arrive at B: B must pass them to A unchanged — no NAT at
// B — so A keeps translating them, and the internet's replies, addressed to A's public
// address, reach A and go from there straight to the private hosts. New flows are B's.
//
// Why a tunnel, not a next hop. In AWS the members sit in different subnets (usually
// different AZs): "next hop = A's private address" is not on-link for B, and a packet B
// sends to its subnet's router is forwarded by the VPC route table of B's subnet — by its
// destination, the internet, to the internet gateway — not to A. So B encapsulates: an IPIP
// tunnel (RFC 2003, IP protocol 4) from B's private address to A's. IPIP rather than GRE or
// FOU: 20 bytes of overhead (GRE 24, FOU 28), no key or port to agree on, no extra module
// beyond ipip, and the VPC routes it like any packet between two private addresses. The
// outer packet fits: the VPC MTU is 9001 and a flow to the internet carries at most 1500-byte
// packets (the internet gateway's MTU), so 1520 bytes cross the VPC unfragmented. The
// security groups of the members must allow IP protocol 4 between them (README).
//
// On B (install()):
//   link  hanat-<A hex>   ipip local B remote A, up, rp_filter 2
//   rule  fwmark <mark> lookup <table>, priority <rule_priority>, protocol kSteerRouteProto
//   route default dev hanat-<A hex> table <table>
//   table ip hanat_steer_<A hex>  (steer_batch.h): flows set, mark rule, catch_unknown chain
//
// No NAT at B: a steered packet leaves through the tunnel device, and hanat's masquerade
// rules match `oifname "<egress>"` only, so the nat hook gives B's conntrack entry for it a
// null binding. Neither a skip mark in the masquerade chain nor notrack is needed, and
// conntrack stays on for these packets, which the catch rule needs: "TCP, not a SYN, and B
// has no entry" is exactly `ct state new,invalid` with the SYN bit clear after conntrack
// has seen the packet (steer_batch.cc). The outer packet is B's own (source B's private
// address, protocol 4): the masquerade rule, if it matches at all, maps B's address to
// itself. Another masquerade rule the operator installed without an oifname would NAT
// steered packets too: keep such rules to the egress interface.
//
// Host firewalls. B's entries for steered flows are NEW (or INVALID for a FIN/RST of an
// unknown flow) for their whole life, because B never sees a reply. A forward chain that
// drops `ct state invalid`, or accepts only `ct state established,related` plus new flows
// from the private subnets, drops them: let packets out to hanat-* devices pass (e.g.
// `oifname "hanat-*" accept` before the drop). On A, decapsulated packets arrive on the
// tunnel device as established flows; a forward chain filtering by iif must accept
// hanat-*, and an input chain must accept IP protocol 4 from the members.
//
// On A (accept_steered(), by the leaving member): the same ipip link towards B (one device
// per pair: the kernel keys IPIP tunnels by their addresses, so the taking and the leaving
// side of a pair share it), with rp_filter 2 on it. The effective rp_filter is the maximum of
// conf.all and conf.<dev> (Documentation/networking/ip-sysctl.rst): 2 (loose) accepts the
// private host's source, which A reaches through its private interface and not through the
// tunnel, whatever conf.all says; strict (1) would drop every steered packet. Forwarding is
// on already (a NAT); the decapsulated packet matches A's conntrack entry and is translated
// as before.
//
// Removal leaves nothing: remove() deletes the table, the rule and the link (the route goes
// with its device). A crash leaves them; cleanup_stale_steering() at start-up removes every
// hanat_steer_* table, every rule of protocol kSteerRouteProto and every hanat-* ipip link.
//
// Like the nftables commit, everything here is a few messages to the local kernel and runs
// synchronously on the loop, every read bounded by SO_RCVTIMEO (netlink.h).

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <span>

#include "netfilter/flow.h"
#include "netfilter/netlink.h"
#include "netfilter/steer_batch.h"

namespace hanat::netfilter {

// rtm_protocol / FRA_PROTOCOL of hanat's steering rules and routes, so the start-up cleanup
// finds them and `ip rule` shows who put them there. Unassigned in iproute2's rt_protos.
inline constexpr uint8_t kSteerRouteProto = 245;

// The tunnel both sides use: this member's private address and the peer's.
struct SteerTunnel {
  uint32_t local = 0;
  uint32_t peer = 0;
  uint32_t mtu = 0;  // 0 = the kernel's choice (path MTU to the peer - 20)
};

class Steering {
 public:
  [[nodiscard]] static core::Result<Steering, Error> open(
      std::chrono::milliseconds timeout = std::chrono::milliseconds(1000));

  // Tunnel, rule, route and table for one leaving peer; replaces whatever a previous install
  // for the same peer left (idempotent). The set starts empty, catch-unknown off. On failure
  // nothing of it is left.
  [[nodiscard]] Status install(const SteerSpec& spec);

  // Adds flows of an installed peer (see build_flow_add). Returns how many were added; flows
  // that are not TCP/UDP are skipped. A full set is an error naming the peer and max_flows.
  [[nodiscard]] core::Result<size_t, Error> add_flows(uint32_t peer, std::span<const Flow> flows);
  // Deletes flows (a flow not in the set is fine: it ended or timed out).
  [[nodiscard]] Status remove_flows(uint32_t peer, std::span<const Flow> flows);

  // Steers TCP packets that are not SYNs and match no flow this host knows to `peer`, or
  // stops doing so (nullopt). At most one peer catches at a time.
  [[nodiscard]] Status set_catch_unknown_tcp(std::optional<uint32_t> peer);

  // Removes everything install() created for the peer. Removing a peer that is not
  // installed (or already gone) succeeds.
  [[nodiscard]] Status remove(uint32_t peer);

  [[nodiscard]] bool installed(uint32_t peer) const { return specs_.contains(peer); }

 private:
  explicit Steering(Netlink nft) : nft_(std::move(nft)) {}
  [[nodiscard]] Status commit(core::Result<Batch, Error> batch);

  Netlink nft_;
  std::map<uint32_t, SteerSpec> specs_;
  std::optional<uint32_t> catching_;
};

// The leaving member's side: the ipip link towards the taking member, with rp_filter 2.
// Idempotent. stop_accepting() removes it (absent is fine).
[[nodiscard]] Status accept_steered(const SteerTunnel& tunnel);
[[nodiscard]] Status stop_accepting(uint32_t peer);

// What a start-up cleanup removed.
struct SteerCleanup {
  size_t tables = 0;
  size_t rules = 0;
  size_t links = 0;
};

// Removes steering state a previous process left (crash, kill -9): every nftables table
// `ip hanat_steer_*`, every policy rule of protocol kSteerRouteProto, every ipip link named
// hanat-<8 hex digits>. Nothing else is touched.
[[nodiscard]] core::Result<SteerCleanup, Error> cleanup_stale_steering();

}  // namespace hanat::netfilter
