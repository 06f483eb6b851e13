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
// Like the nftables commit, the purge runs synchronously on the loop (DESIGN.md,
// Architecture): it runs only after an apply or a repair, every socket read is bounded by
// SO_RCVTIMEO, and deletes go out many per datagram.

#include <chrono>
#include <cstdint>
#include <optional>
#include <vector>

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

}  // namespace hanat::netfilter
