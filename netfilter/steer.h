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
// destination, the internet, to the internet gateway — not to A. So B encapsulates, from
// its private address to A's, and the VPC routes the outer packet like any packet between
// two private addresses.
//
// Why VXLAN (RFC 7348, UDP port 4789) rather than IPIP, GRE or FOU. IPIP (20 bytes) would be
// the lightest, but ipip, ip_gre and fou are optional modules that some kernels do not build
// (the kernel hanat's test suite runs on has none: CONFIG_NET_IPIP, CONFIG_NET_IPGRE_DEMUX
// and CONFIG_NET_FOU unset), while VXLAN is built in wherever container networking is expected.
// Being UDP, it also gets a source port from the inner flow's hash, so the ENA driver's
// receive-side scaling spreads steered flows over A's queues instead of putting every one on
// the queue of a single protocol-4 "flow". Its 50 bytes of overhead fit: a flow to the
// internet carries at most 1500-byte packets (the internet gateway's MTU), the device's MTU
// is 1500 by default, and 1550 bytes cross a VPC whose MTU is 9001 unfragmented. The
// members' security groups must allow UDP 4789 (SteerSpec::port) between them (README).
//
// One VXLAN device per pair of members, the same on both sides: VNI steer_vni(B, A) (a
// symmetric function of the two addresses), remote the other member, no learning, and as MAC
// address 02:68:<own address>. B reaches A with `default via <A> dev <link> onlink` and a
// permanent neighbour entry <A> -> 02:68:<A>: no ARP crosses the tunnel, and A's device
// accepts the frame as addressed to it.
//
// On B (install()):
//   link  hanat-<A hex>   vxlan id <vni> local B remote A dstport 4789 nolearning, up,
//                         rp_filter 0
//   neigh <A> lladdr 02:68:<A> dev hanat-<A hex> nud permanent
//   route default via <A> dev hanat-<A hex> onlink table <table> proto 245
//   rule  fwmark <mark> lookup <table>, priority <rule_priority>, protocol kSteerRouteProto
//   table ip hanat_steer_<A hex>  (steer_batch.h): flows set, mark rule, catch_unknown chain,
//                         and a forward chain that clears the mark once the packet is routed
//                         (VXLAN would route the outer packet by it, back into the tunnel)
//
// No NAT at B: a steered packet leaves through the tunnel device, and hanat's masquerade
// rules match `oifname "<egress>"` only, so the nat hook gives B's conntrack entry for it a
// null binding. Neither a skip mark in the masquerade chain nor notrack is needed, and
// conntrack stays on for these packets, which the catch rule needs: "TCP, not a SYN, and B
// has no entry" is exactly `ct state new,invalid` with the SYN bit clear after conntrack
// has seen the packet (steer_batch.cc). The outer packet is B's own (source B's private
// address, UDP): the masquerade rule, if it matches at all, maps B's address to
// itself. Another masquerade rule the operator installed without an oifname would NAT
// steered packets too: keep such rules to the egress interface.
//
// Host firewalls. B's entries for steered flows are NEW (or INVALID for a FIN/RST of an
// unknown flow) for their whole life, because B never sees a reply. A forward chain that
// drops `ct state invalid`, or accepts only `ct state established,related` plus new flows
// from the private subnets, drops them: let packets out to hanat-* devices pass (e.g.
// `oifname "hanat-*" accept` before the drop). On A, decapsulated packets arrive on the
// tunnel device as established flows; a forward chain filtering by iif must accept
// hanat-*, and an input chain must accept UDP 4789 from the members.
//
// On A (accept_steered(), by the leaving member): the same VXLAN link towards B (one device
// per pair: the kernel allows one device per VNI and port, so the taking and the leaving side
// of a pair share it), with rp_filter 0 on it. Reverse-path filtering cannot pass these
// packets in any mode: the tunnel device has no IPv4 address, and for such a device
// fib_validate_source() (net/ipv4/fib_frontend.c) rejects a source that does not route back
// through the device itself whenever rp_filter is non-zero, loose mode included (counted in
// TcpExtIPReversePathFilter). The effective value is the larger of conf.all and conf.<dev>
// (Documentation/networking/ip-sysctl.rst), so accept_steered() refuses, naming the
// sysctl, when conf.all.rp_filter is not 0 (systemd's 50-default.conf sets default and each
// interface to 2 but leaves conf.all at 0). Forwarding is on already (a NAT); the
// decapsulated packet matches A's conntrack entry and is translated as before.
//
// Removal leaves nothing: remove() deletes the table, the rule and the link (the route and
// the neighbour entry go with their device). A crash leaves them; cleanup_stale_steering() at
// start-up removes every hanat_steer_* table, every rule of protocol kSteerRouteProto and every
// hanat-* VXLAN link (its routes and neighbour entries go with it).
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
  uint32_t mtu = 0;  // 0 = the kernel's choice for VXLAN without a lower device: 1500
  uint16_t port = kSteerVxlanPort;
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

// The leaving member's side: the VXLAN link towards the taking member, with rp_filter 0.
// Refused while net.ipv4.conf.all.rp_filter is not 0 (see above).
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
// `ip hanat_steer_*`, every policy rule of protocol kSteerRouteProto, every VXLAN link named
// hanat-<8 hex digits>. Nothing else is touched.
[[nodiscard]] core::Result<SteerCleanup, Error> cleanup_stale_steering();

}  // namespace hanat::netfilter
