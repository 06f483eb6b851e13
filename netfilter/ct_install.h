// SPDX-License-Identifier: GPL-2.0-or-later
#pragma once
// Takeover with state (DESIGN.md, "Connection survival"; issue #21): installing another NAT's
// translated flows into this host's conntrack table through ctnetlink, so that their packets
// continue with the same public port, now on this host's address.
//
//   append_install_message()  pure: one IPCTNL_MSG_CT_NEW request for a replicated flow
//   append_remove_message()   pure: the IPCTNL_MSG_CT_DELETE request that undoes it
//   install_flows()           I/O: collision check (dump), then the requests, many per
//                             datagram, with one ACK read per flow
//   remove_flows()            I/O: deletes installed flows by their original tuple
//   bound_timeouts()          I/O: caps the timeout of this host's ESTABLISHED entries
//
// What the kernel needs to accept such an entry (nf_conntrack_netlink.c,
// ctnetlink_new_conntrack / ctnetlink_create_conntrack; nf_conntrack_proto_tcp.c):
//
//  - Both tuples and CTA_TIMEOUT: without a timeout the create fails with EINVAL.
//  - CTA_NAT_SRC with the public address and port as a one-port range. ctnetlink_setup_nat()
//    hands it to nf_nat_setup_info(), which binds the source NAT and rewrites the reply tuple
//    to the inverse of the translated original (nf_conntrack_alter_reply). The reply tuple
//    sent is therefore the untranslated one (server -> private host): given the translated
//    reply, nf_nat_setup_info() finds the "current" tuple already equal to the requested
//    one, binds nothing and leaves IPS_SRC_NAT clear, and the flow's packets leave with the
//    private source (checked on Linux 6.18 by tests/integration/netfilter/
//    ct_install_netns_test.cc). The missing CTA_NAT_DST becomes a null binding. With a one-port
//    range the kernel keeps that port even if taken (get_unique_tuple returns it when min == max);
//    a real clash of the reply tuple then fails the insert with EEXIST
//    (nf_conntrack_hash_check_insert), as does an existing original tuple with NLM_F_EXCL. Both are
//    reported as collisions.
//  - CTA_STATUS must include IPS_CONFIRMED: the create path sets it before applying the
//    status, and nf_ct_change_status_common() refuses any change of CONFIRMED, EXPECTED or
//    DYING with EBUSY. Of the rest only SEEN_REPLY and ASSURED are sent; the NAT bits are set
//    by the binding itself (and ignored in CTA_STATUS: IPS_UNCHANGEABLE_MASK).
//  - TCP: CTA_PROTOINFO_TCP with the state (ESTABLISHED for a live connection). A created
//    entry has no window data (td_end = td_maxwin = 0 in both directions), so its first
//    segment in each direction takes tcp_in_window()'s mid-stream path ("We are in the middle
//    of a connection, its history is lost for us"), which sizes the window from that one
//    segment, shifted by td_scale. td_scale is set from CTA_PROTOINFO_TCP_WSCALE_* only when
//    both directions' IP_CT_TCP_FLAG_WINDOW_SCALE flags are set (nlattr_to_tcp), so the
//    scales and those flags are carried: without them a scaled window is taken as
//    2^scale times smaller and the next burst is "SEQ is over upper bound" INVALID. The
//    sequence history is lost all the same — a retransmission after the gap may ACK data
//    the new entry never saw ("ACK is over upper bound"), and an INVALID reply is not
//    de-NATed but delivered to this host, whose stack answers with a RST — so the entry is
//    also marked IP_CT_TCP_FLAG_BE_LIBERAL in both directions (only out-of-window RSTs stay
//    INVALID). conntrackd does the same for the entries it commits unless TCPWindowTracking
//    is on (conntrackd.conf(5): "TCP state-entries have window tracking disabled by
//    default"), and so does the kernel for flows whose packets conntrack will not all see
//    (nft_flow_offload.c, flow_offload_ct_tcp).
//
// Synchronous and bounded like the purge (conntrack.h): every read waits at most `timeout`.

#include <chrono>
#include <compare>
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "netfilter/flow.h"
#include "netfilter/spec.h"

namespace hanat::netfilter {

// The TCP flags an installed entry carries over from the replicated one (window scaling,
// SACK), and the one it always gets (be liberal). Sent with this mask, so the others keep
// the kernel's defaults.
inline constexpr uint8_t kTcpFlagsCarried = 0x01 | 0x02;  // WINDOW_SCALE | SACK_PERM
inline constexpr uint8_t kTcpFlagLiberal = 0x08;          // IP_CT_TCP_FLAG_BE_LIBERAL

// The longest timeout an installed entry gets, in seconds. The replicated timeout of an
// ESTABLISHED TCP flow is the kernel's 5 days (nf_conntrack_tcp_timeout_established =
// 432000 s), so a connection that died during the outage (its host gone, its client given
// up) would keep the installed entry, and its public port, for 5 days on the survivor. A
// live connection loses nothing by a shorter one: every packet it sends refreshes its entry
// to its state's full timeout (nf_ct_refresh_acct at the end of nf_conntrack_tcp_packet(),
// nf_conntrack_udp_packet()). 350 s is AWS NAT Gateway's documented idle timeout, after which
// it drops a silent connection too, so an application that keeps connections open through a
// NAT on AWS already sends something more often than that (keepalives).
inline constexpr uint32_t kInstallTimeoutMaxS = 350;

// Why `f` cannot be installed (a protocol other than TCP, UDP or ICMP, no public port, no
// TCP state for TCP), or nullopt.
[[nodiscard]] std::optional<std::string> install_problem(const ReplicatedFlow& f);

// Appends to `out` the request creating `f` on this host translated to
// `public_addr`:`f.public_port` (addresses host byte order): IPCTNL_MSG_CT_NEW, flags
// NLM_F_REQUEST | NLM_F_CREATE | NLM_F_EXCL | NLM_F_ACK, sequence `seq`; attributes
// CTA_TUPLE_ORIG, CTA_TUPLE_REPLY (untranslated), CTA_NAT_SRC, CTA_STATUS, CTA_TIMEOUT (the
// replicated one within [1, kInstallTimeoutMaxS] s) and, for TCP, CTA_PROTOINFO. `f` must pass
// install_problem().
void append_install_message(std::vector<uint8_t>& out, const ReplicatedFlow& f,
                            uint32_t public_addr, uint32_t seq);

// Appends the IPCTNL_MSG_CT_DELETE request (NLM_F_ACK) naming `f` by its original tuple.
void append_remove_message(std::vector<uint8_t>& out, const ReplicatedFlow& f, uint32_t seq);

enum class InstallOutcome : uint8_t {
  Installed,
  Collided,  // EEXIST, or the public port is in use by one of this host's own entries
  Failed,    // any other error (`error`), or install_problem()
};

struct FlowInstall {
  InstallOutcome outcome = InstallOutcome::Failed;
  int error = 0;  // errno for Failed (EINVAL for install_problem()), EEXIST for a kernel clash

  friend bool operator==(const FlowInstall&, const FlowInstall&) = default;
};

struct InstallReport {
  std::vector<FlowInstall> flows;  // one per input flow, in order
  uint64_t installed = 0;
  uint64_t collided = 0;
  uint64_t failed = 0;
};

// Installs `flows` into the conntrack table of the calling thread's network namespace,
// translated to `public_addr` (host byte order). A flow whose reply tuple is already used by
// an entry of this table that answers to `public_addr` (a flow this host translates itself,
// or one of its own sockets, with the same protocol, public port and far end) is skipped as
// Collided without a request: that tuple belongs to a live flow of this host. An error is returned
// only when the socket, the dump or a datagram fails as a whole; per-flow errors are in the report.
[[nodiscard]] core::Result<InstallReport, Error> install_flows(
    const std::vector<ReplicatedFlow>& flows, uint32_t public_addr,
    std::chrono::milliseconds timeout = std::chrono::milliseconds(1000));

// The reply tuples (protocol, public port, far end's address and port) of this table's
// entries that answer to `public_addr`: what install_flows() skips as Collided. The far end
// belongs to the key because the kernel allows one public port for several destinations
// (nf_nat_used_tuple compares the whole reply tuple): a NAT that serves a zone under
// connection churn has thousands of its own entries on the zone's address (TIME_WAIT lasts
// 120 s), and a replicated flow that only shares a port number with one of them, towards
// another far end, installs and works. A real clash of the whole tuple the kernel refuses
// with EEXIST, also reported as Collided. A stateful takeover installs many flows in chunks
// across loop turns (core/daemon/takeover.h) and reads these once, not once per chunk: the
// dump walks the whole table. Tuples it installs itself are not added.
struct UsedTuple {
  uint8_t proto = 0;
  uint16_t public_port = 0;
  uint32_t remote_addr = 0;  // host byte order
  uint16_t remote_port = 0;  // 0 for ICMP

  friend auto operator<=>(const UsedTuple&, const UsedTuple&) = default;
};
using PortSet = std::set<UsedTuple>;
// The key of a replicated flow as install_flows() compares it with PortSet.
[[nodiscard]] UsedTuple used_tuple(const ReplicatedFlow& f);
[[nodiscard]] core::Result<PortSet, Error> own_ports(
    uint32_t public_addr, std::chrono::milliseconds timeout = std::chrono::milliseconds(1000));

// install_flows() with the collision check done beforehand (`used`, from own_ports()).
[[nodiscard]] core::Result<InstallReport, Error> install_flows(
    const std::vector<ReplicatedFlow>& flows, uint32_t public_addr, const PortSet& used,
    std::chrono::milliseconds timeout = std::chrono::milliseconds(1000));

// Deletes the entries with the original tuples of `flows` (whoever created them); returns
// how many the kernel deleted (a tuple without entry is not counted).
[[nodiscard]] core::Result<uint64_t, Error> remove_flows(
    const std::vector<ReplicatedFlow>& flows,
    std::chrono::milliseconds timeout = std::chrono::milliseconds(1000));

// Gives every ESTABLISHED TCP entry this host source-NATed whose timeout is above `max_s`
// seconds a timeout of `max_s`; returns how many. For a NAT whose connections went on
// elsewhere while its own data plane was down (a peer took its tables with their state):
// its entries of them stay ESTABLISHED with up to the kernel's 5 days, as it never saw their
// end. A connection that still runs here, or comes back with the failback, refreshes its
// entry to the full timeout with its next packet; one that ended elsewhere goes within
// `max_s` (kInstallTimeoutMaxS: why that bound hurts no live connection).
[[nodiscard]] core::Result<uint64_t, Error> bound_timeouts(
    uint32_t max_s, std::chrono::milliseconds timeout = std::chrono::milliseconds(1000));

}  // namespace hanat::netfilter
