// SPDX-License-Identifier: GPL-2.0-or-later
#pragma once
// CtEvents: the conntrack NEW/DESTROY (and, for stateful failover, UPDATE) event stream on
// the loop, filtered to the flows a connection-keeping handover carries (netfilter/
// conntrack.h, should_carry()).
//
// The kernel announces conntrack entries to the NFNLGRP_CONNTRACK_NEW and _DESTROY multicast
// groups of NETLINK_NETFILTER (nf_conntrack_netlink.c, ctnetlink_conntrack_event). Two
// kernel facts shape this class:
//
//  - Lost events. A listener that falls behind loses messages; the next read fails with
//    ENOBUFS (netlink(7)). A lost NEW or DESTROY cannot be recovered from the stream, so the
//    stream re-dumps the table (dump_flows()) and delivers the complete set as a resync.
//  - Which entries have events at all. net.netfilter.nf_conntrack_events is 2 ("auto") by
//    default since Linux 5.19, so also on Debian 12's 6.1: an entry gets the event extension
//    only if a ctnetlink listener existed when it was created (nf_conntrack_ecache.c,
//    nf_ct_ecache_ext_add). An entry older than the listener sends no DESTROY. With 1 every
//    entry has it. The handover sets 1 (SysctlSpec) for that reason; the resync on overrun and
//    the receiver's per-entry timeout cover whatever still slips through.
//  - Updates. With `updates` the stream also joins NFNLGRP_CONNTRACK_UPDATE: an event for an
//    existing entry is IPCTNL_MSG_CT_NEW without NLM_F_CREATE (ctnetlink_conntrack_event).
//    The kernel sends one when the status or protocol state changes (SEEN_REPLY, ASSURED,
//    a TCP state change such as ESTABLISHED -> FIN_WAIT), never for a mere timeout refresh
//    (a packet that only extends the timeout raises no IPCT_* event), so a replica's
//    timeouts must be refreshed by other means (a periodic resync).
//
// Work per wake-up is bounded (kMaxReadsPerWake datagrams); the poll is level-triggered, so
// what is left is read on the next loop iteration and probes and timers are not starved.
//
// Wake-ups. The kernel sends every event as its own datagram and wakes the listener for
// each, so a NAT opening 200 short TCP flows per second (five or six events each) woke the
// loop about 1,000 times a second; the profile of stateful failover's sender
// (bench/handover/churn_cpu.py --perf) was dominated by that: the context switch, epoll_wait
// and one recvmsg per event, not the parsing. With `batch` > 0 the stream reads the socket
// until it is drained, then stops watching it for `batch`: events queue in the socket's
// receive buffer meanwhile (a ctnetlink event takes about 1 KB of it, so the default 4 MiB
// (8 MiB as the kernel counts, socket(7) SO_RCVBUF) holds thousands) and are read in one
// wake-up. A wake-up that stopped at kMaxReadsPerWake is not drained: watching goes on at
// once, so a busy socket is read as fast as without `batch`.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include "core/uv/uv.h"
#include "netfilter/conntrack.h"

struct mnl_socket;

namespace hanat::netfilter {

struct FlowEvent {
  FlowEvent() = default;
  // A NEW or DESTROY as the handover sees it ({destroyed, flow}).
  FlowEvent(bool is_destroyed, const Flow& f) : destroyed(is_destroyed), flow(f) {}

  bool destroyed = false;  // false: a new flow (or, with `updates`, a changed one)
  Flow flow;
  bool update = false;  // an UPDATE of an existing entry (only with `updates`)
  // What stateful failover replicates of a NEW or UPDATE event (replicated_flow()); nullopt
  // for a destroy or an entry without a public port.
  std::optional<ReplicatedFlow> replicated;

  friend bool operator==(const FlowEvent&, const FlowEvent&) = default;
};

// What one wake-up delivers: the events in kernel order, or — after lost events — the
// complete current set (`resync`), which replaces everything known before.
struct FlowEvents {
  std::vector<FlowEvent> events;
  std::optional<std::vector<Flow>> resync;
  // Events were lost and the stream does not dump (`dump_on_loss` false): the consumer
  // takes the current set by its own means. `events` is empty then.
  bool lost = false;
};

struct CtEventCounters {
  uint64_t delivered = 0;  // events that passed the filter
  uint64_t filtered = 0;   // well-formed events about other flows
  uint64_t malformed = 0;  // messages parse_ct_message() refused
  uint64_t overruns = 0;   // ENOBUFS reads (events lost, table re-dumped)
  uint64_t resync_errors = 0;
};

class CtEvents {
 public:
  static constexpr int kDefaultRcvBuf = 4 * 1024 * 1024;
  static constexpr int kMaxReadsPerWake = 64;

  // Opens the event socket in the calling thread's namespace (joining the groups needs
  // CAP_NET_ADMIN) and starts watching it on `loop`. `filter.local` is completed with the
  // namespace's addresses. `max_flows` bounds a resync dump. `updates`: also deliver UPDATE
  // events (stateful failover's replication; the handover needs only NEW and DESTROY).
  // `batch`: see "Wake-ups" above. `dump_on_loss` false: after lost events deliver `lost`
  // instead of dumping the table here, synchronously (the replication dumps the table itself,
  // in steps, with what it needs of each entry).
  [[nodiscard]] static core::Result<std::unique_ptr<CtEvents>, Error> open(
      uv::Loop& loop, FlowFilter filter, size_t max_flows,
      std::function<void(const FlowEvents&)> on_events, int rcvbuf = kDefaultRcvBuf,
      bool updates = false, std::chrono::milliseconds batch = std::chrono::milliseconds(0),
      bool dump_on_loss = true);

  CtEvents(const CtEvents&) = delete;
  CtEvents& operator=(const CtEvents&) = delete;
  ~CtEvents();

  [[nodiscard]] const CtEventCounters& counters() const { return counters_; }

 private:
  CtEvents(uv::Loop& loop, mnl_socket* sock, FlowFilter filter, size_t max_flows,
           std::function<void(const FlowEvents&)> on_events, bool updates,
           std::chrono::milliseconds batch, bool dump_on_loss);
  std::error_code watch();
  struct ReadResult {
    bool lost = false;     // ENOBUFS: events were lost
    bool drained = false;  // the socket had nothing more to read (EAGAIN)
  };
  // Reads at most kMaxReadsPerWake datagrams.
  ReadResult read_some(FlowEvents& out);

  mnl_socket* sock_;
  FlowFilter filter_;
  size_t max_flows_;
  bool updates_;
  std::chrono::milliseconds batch_;
  bool dump_on_loss_;
  std::function<void(const FlowEvents&)> on_events_;
  std::vector<uint8_t> buf_;
  CtEventCounters counters_;
  // Re-arms the poll after libuv stopped it on an error, or after a `batch` pause.
  uv::Timer rewatch_;
  std::unique_ptr<uv::Poll> poll_;  // destroyed before the socket is closed
};

}  // namespace hanat::netfilter
