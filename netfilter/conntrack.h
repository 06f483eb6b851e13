// SPDX-License-Identifier: GPL-2.0-or-later
#pragma once
// Purge of flows that were forwarded without NAT (issue #23).
//
// NAT is decided on a connection's first packet only: a flow whose first packet was forwarded
// while hanat's masquerade table was missing (before hanatd installed it on a host whose
// ip_forward was already on, or after `nft flush ruleset`) got a conntrack entry without
// source NAT, and every later packet matches that entry, so the flow leaks out with its
// private source for as long as it keeps the entry alive. Deleting such entries after the
// table is (re)installed makes the next packet of each flow create a fresh, NATed entry.
// (Only a namespace where something else keeps conntrack running — a host firewall, another
// nat table — has such entries: without any user the kernel tracks nothing.)
//
// An entry is purged when it was forwarded through this host (no end of it is a local
// address), its original source lies in one of the configured source CIDRs (any source when
// the list is empty, as the masquerade rule does), and it carries no source NAT: IPS_SRC_NAT
// is clear and the reply goes back to the original source unchanged. The NAT host's own
// connections, inbound connections to it and flows already NATed are left alone.
//
//   should_purge()        pure: the decision on one parsed entry (unit-tested)
//   purge_unnatted()      I/O: ctnetlink dump + delete through libmnl
//
// The connection-keeping handover (DESIGN.md, "Connection survival") reads the same table:
//
//   parse_ct_message()    pure: one ctnetlink message (dump reply or event) -> CtMessage
//   should_carry()        pure: whether a parsed entry is a flow this host translates for
//                         the given sources (source-NATed here, forwarded)
//   dump_flows()          I/O: ctnetlink dump, filtered by should_carry()
//   CtEvents (ct_events.h) the NEW/DESTROY event stream on the loop
//
// Stateful failover (issue #21) reads it too, with the public port, status and TCP state:
//
//   replicated_flow()        pure: a parsed entry -> ReplicatedFlow (flow.h)
//   dump_replicated_flows()  I/O: dump_flows()' selection as ReplicatedFlows
//   install_flows() (ct_install.h) the survivor's side: recreate them here
//
// Like the nftables commit, the purge runs synchronously on the loop (DESIGN.md,
// Architecture): it runs only after an apply or a repair, every socket read is bounded by
// SO_RCVTIMEO, and deletes go out many per datagram.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "netfilter/flow.h"
#include "netfilter/spec.h"

namespace hanat::netfilter {

// One direction of a conntrack entry. Addresses in host byte order.
struct CtTuple {
  uint32_t src = 0;
  uint32_t dst = 0;

  friend bool operator==(const CtTuple&, const CtTuple&) = default;
};

// What the purge decision needs of a conntrack entry.
struct CtEntry {
  CtTuple orig;
  CtTuple reply;
  std::optional<uint32_t> status;  // IPS_* bits (CTA_STATUS); nullopt when not sent

  friend bool operator==(const CtEntry&, const CtEntry&) = default;
};

struct PurgeFilter {
  std::vector<Ipv4Prefix> sources;  // empty = any source
  std::vector<uint32_t> local;      // this host's IPv4 addresses, host byte order
};

// The filter for `spec`'s source CIDRs (already validated by validate(); an unparsable CIDR
// is an error naming it). `local` stays empty: purge_unnatted() fills it.
[[nodiscard]] core::Result<PurgeFilter, Error> purge_filter(const NatSpec& spec);

// Whether `e` is a forwarded flow from a configured source that escaped NAT.
[[nodiscard]] bool should_purge(const CtEntry& e, const PurgeFilter& f);

struct PurgeResult {
  uint64_t seen = 0;    // IPv4 entries dumped
  uint64_t purged = 0;  // entries deleted (an entry that vanished meanwhile is not counted)
};

// Dumps the IPv4 conntrack table of the calling thread's network namespace and deletes every
// entry should_purge() selects, by its original tuple, zone and id (so an entry recreated
// meanwhile under the same tuple is not hit). `filter.local` is completed with the addresses
// of this namespace's interfaces. Each socket read waits at most `timeout`.
[[nodiscard]] core::Result<PurgeResult, Error> purge_unnatted(
    PurgeFilter filter, std::chrono::milliseconds timeout = std::chrono::milliseconds(1000));

// Stateful failover's cleanup (issue #21): deletes every IPv4 entry whose reply goes to
// `address` (host byte order), by its original tuple, zone and id as purge_unnatted() does.
// Called for a secondary private IP when the zone's Elastic IP leaves it (the zone failed
// back to its own NAT): EC2 maps the EIP to one private address only, so from then on no
// answer reaches an entry translated to that address, and the entries a takeover installed
// (or created on it) would otherwise stay: a live connection's packets refresh an ESTABLISHED
// TCP entry to the kernel's 5-day timeout, and once the connection continues through its own
// NAT again nothing here ever sees its FIN. Left, they hold the address's public ports, and
// the next takeover of the zone finds its flows' reply tuples taken (Collided: reset).
[[nodiscard]] core::Result<PurgeResult, Error> purge_answering(
    uint32_t address, std::chrono::milliseconds timeout = std::chrono::milliseconds(1000));

// ---- Reading flows for the connection-keeping handover -------------------------------------

enum class CtKind {
  New,      // an event for a newly confirmed entry (IPCTNL_MSG_CT_NEW with NLM_F_CREATE)
  Update,   // an existing entry: a dump reply, or an event about a change of state
  Destroy,  // IPCTNL_MSG_CT_DELETE: an event for an entry that ended (or was deleted)
};

// One parsed ctnetlink message. For a family other than IPv4 (the event groups carry IPv6
// too) only `kind` and `family` are set.
struct CtMessage {
  CtKind kind = CtKind::Update;
  uint8_t family = 0;          // AF_INET, AF_INET6, ...
  CtEntry entry;               // addresses of both directions, status
  Flow flow;                   // the original tuple with ports (ICMP: the echo id), timeout
  std::optional<uint32_t> id;  // CTA_ID
  // The reply tuple's destination port (ICMP: its echo id), host byte order: for a
  // source-NATed flow the public port this host chose. 0 when the reply tuple has none.
  uint16_t reply_dport = 0;
  std::optional<TcpInfo> tcp;  // CTA_PROTOINFO_TCP when sent (TCP entries)

  friend bool operator==(const CtMessage&, const CtMessage&) = default;
};

// What stateful failover replicates of a parsed entry (a dump reply, a NEW or UPDATE event):
// nullopt for a destroy event, a family other than IPv4, a protocol other than TCP, UDP and
// ICMP, or an entry without status or public port.
[[nodiscard]] std::optional<ReplicatedFlow> replicated_flow(const CtMessage& m);

// Parses one netlink message (`len` bytes from `msg`, any alignment) of the ctnetlink
// subsystem. Errors (a message of another subsystem or type, a truncated header or
// attribute, a tuple without addresses, a protocol without its ports, a malformed TCP
// protoinfo) name what is wrong;
// nothing in the input can make it read outside [msg, msg + len).
[[nodiscard]] core::Result<CtMessage, std::string> parse_ct_message(const void* msg, size_t len);

// The flows the handover carries: from one of `sources`, source-NATed by this host.
struct FlowFilter {
  std::vector<Ipv4Prefix> sources;  // empty = any source (as the masquerade rule)
  std::vector<uint32_t> local;      // this host's IPv4 addresses, host byte order
  // Flows translated to one of these (their reply side answers to it) are not carried: a
  // handover leaves out the flows of a zone this host took over, whose Elastic IP leaves
  // with the zone (host byte order).
  std::vector<uint32_t> not_answering;
};

// The filter for CIDR texts (an unparsable one is an error naming it). `local` stays empty:
// dump_flows() and CtEvents fill it.
[[nodiscard]] core::Result<FlowFilter, Error> flow_filter(const std::vector<std::string>& cidrs);

// Whether `m` is a flow the taking NAT must steer back here: an IPv4 TCP, UDP or ICMP flow
// that this host source-NATed (IPS_SRC_NAT; a flow forwarded without NAT needs no steering),
// whose original source lies in the filter's sources, and no end of which is a local address
// (the host's own connections never leave through another NAT), nor translated to an address
// of `not_answering`.
[[nodiscard]] bool should_carry(const CtMessage& m, const FlowFilter& f);

// This namespace's IPv4 interface addresses (host byte order).
[[nodiscard]] std::vector<uint32_t> local_ipv4_addresses();

struct FlowDump {
  std::vector<Flow> flows;  // at most `max` of them
  uint64_t seen = 0;        // IPv4 entries dumped
  uint64_t skipped = 0;     // flows that matched but did not fit `max`
  uint64_t closed = 0;      // of `flows`: TCP flows that tcp_closed() says are over
};

// A TCP flow whose both ends are done: TIME_WAIT (both FINs acknowledged) or CLOSE (reset).
// Its conntrack entry lingers (nf_conntrack_tcp_timeout_time_wait, 120 s) and announces its
// DESTROY only then, but no packet of it needs translating any more, so a drain that waits
// for the flows to end need not wait for it. FIN_WAIT, CLOSE_WAIT and LAST_ACK still carry
// the last segments and ACKs: those flows are not over.
[[nodiscard]] bool tcp_closed(const CtMessage& m);

// Dumps the IPv4 conntrack table of the calling thread's namespace and returns the flows
// should_carry() selects (`filter.local` is completed with this namespace's addresses).
// Synchronous and bounded like the purge: each read waits at most `timeout`.
[[nodiscard]] core::Result<FlowDump, Error> dump_flows(
    FlowFilter filter, size_t max,
    std::chrono::milliseconds timeout = std::chrono::milliseconds(1000));

struct ReplicatedDump {
  std::vector<ReplicatedFlow> flows;  // at most `max` of them
  uint64_t seen = 0;                  // IPv4 entries dumped
  uint64_t skipped = 0;               // flows that matched but did not fit `max`
};

// The same selection as dump_flows() with what stateful failover replicates of each
// (replicated_flow()): the initial state a member sends before its event stream.
[[nodiscard]] core::Result<ReplicatedDump, Error> dump_replicated_flows(
    FlowFilter filter, size_t max,
    std::chrono::milliseconds timeout = std::chrono::milliseconds(1000));

// dump_replicated_flows() in steps, for a caller on the loop: a NAT at 50,000 flows takes a
// few hundred ms to dump (bench/handover/replica_50k.py), which in one piece would hold
// probes and timers that long. Each step() reads for about `budget` and says whether the
// table was read to its end; result() is then complete. The kernel keeps the dump's position
// between steps; entries created or ended meanwhile may or may not be seen, as in any
// ctnetlink dump of a changing table.
class ReplicatedDumper {
 public:
  [[nodiscard]] static core::Result<std::unique_ptr<ReplicatedDumper>, Error> start(
      FlowFilter filter, size_t max,
      std::chrono::milliseconds timeout = std::chrono::milliseconds(1000));
  ~ReplicatedDumper();
  ReplicatedDumper(const ReplicatedDumper&) = delete;
  ReplicatedDumper& operator=(const ReplicatedDumper&) = delete;

  [[nodiscard]] core::Result<bool, Error> step(std::chrono::microseconds budget);
  [[nodiscard]] ReplicatedDump& result();

 private:
  struct Impl;
  explicit ReplicatedDumper(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace hanat::netfilter
