// SPDX-License-Identifier: GPL-2.0-or-later
#pragma once
// DOC: core/daemon/replica_sender — the sending side of stateful failover's continuous
// replication (DESIGN.md, "Connection survival"; issue #21, `[failover] stateful`). Pure: time
// comes in as arguments, no I/O; node_replicate.cc owns the sockets, the conntrack event
// stream and the timers. Unit-tested in tests/unit/daemon/replica_sender_test.cc.
//
//   replica_targets()  the members that would take this member's tables if it died: the
//                      allocation (engine::allocate, DESIGN rule 1) computed without it
//   Stream             one target's stream: a full resync on connect and every
//                      kResyncEvery, conntrack events in between, batched (flush every
//                      kFlushEvery or when a frame is full), coalesced per flow inside a
//                      batch, and bounded (over the bound: dropped, counted, resync forced)
//
// Why a periodic resync: the kernel announces a conntrack entry's NEW, its status and
// protocol state changes (UPDATE) and its DESTROY, but never a timeout refresh (a packet that
// only extends the timeout raises no IPCT_* event). The receiver expires each replica by the
// timeout it was last told; without a refresh it would drop a UDP stream that is still busy
// after nf_conntrack_udp_timeout_stream (120 s) and keep flows whose DESTROY was lost (an
// event-socket overrun). A resync re-announces every live flow with its current timeout, and
// its completion drops what the receiver holds of this member that was not re-announced.
// Every 30 s stays well inside the shortest timeout worth keeping (120 s) and costs one dump
// plus 29 bytes per flow: 1.45 MB per 30 s for 50,000 flows, about 48 KB/s.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "core/handover/codec.h"
#include "netfilter/ct_events.h"
#include "netfilter/flow.h"
#include "netfilter/spec.h"

namespace hanat::daemon::replica {

using Time = std::chrono::steady_clock::time_point;
using std::chrono::milliseconds;

inline constexpr milliseconds kFlushEvery{50};
inline constexpr milliseconds kResyncEvery{30000};

// ---- Targets --------------------------------------------------------------------------------

struct TargetMember {
  std::string id;  // instance id
  std::string zone;
  int64_t launch_time = 0;
  bool healthy = false;  // UP and allocatable in this member's view (ignored for self)
};
struct TargetTable {
  std::string id;
  std::string zone;
  // Its route points at this member now (a table of a member that failed and has not
  // failed back yet): this member translates the table's flows whatever the allocation says.
  bool here = false;
};
// A member that would take some of this member's tables, and which.
struct Target {
  std::string member;
  std::vector<std::string> tables;  // in input order
  friend bool operator==(const Target&, const Target&) = default;
};

// The tables this member holds are the ones the allocation over the healthy members with
// this member (counted healthy: the question is what happens when it dies) gives it, and the
// ones routed here now; their takers are those the allocation over the healthy members
// without it gives them. A table routed here but allocated to a healthy peer (its home NAT,
// back and waiting for failback_delay) thus goes to that peer, which takes it with the
// connections opened here meanwhile, at the failback or if this member dies first. Sorted by
// member id. Empty when no other member is healthy (nobody would take anything: the fallback
// NAT Gateway cannot install flows) or when this member holds no table.
[[nodiscard]] std::vector<Target> replica_targets(const std::string& self,
                                                  const std::vector<TargetMember>& members,
                                                  const std::vector<TargetTable>& tables);

// ---- One target's stream --------------------------------------------------------------------

struct StreamCounters {
  uint64_t events = 0;      // upserts and destroys sent from events
  uint64_t coalesced = 0;   // events merged into one already queued for the same flow
  uint64_t flows_sent = 0;  // upserts sent by resyncs
  uint64_t frames = 0;
  uint64_t bytes = 0;  // wire bytes of the entries (without frame headers and MACs)
  uint64_t drops = 0;  // events dropped over the bound
  uint64_t resyncs = 0;
  uint64_t filtered = 0;  // events about sources that are not this target's
};

class Stream {
 public:
  struct Settings {
    milliseconds flush_every = kFlushEvery;
    milliseconds resync_every = kResyncEvery;
    // Queued (coalesced) events beyond which they are dropped and a resync is forced: a
    // target that does not keep up gets the current set later instead of unbounded memory.
    size_t max_pending = 16384;
    // Bytes waiting in the socket's write queue beyond which nothing more is handed to it
    // (events stay queued under max_pending; resyncs wait).
    size_t max_backlog = 1024 * 1024;
  };

  explicit Stream(Settings s) : settings_(s) {}
  Stream() : Stream(Settings{}) {}

  // The sources this target would serve (empty: every source).
  void set_sources(std::vector<netfilter::Ipv4Prefix> sources) { sources_ = std::move(sources); }
  // The channel is up: a resync is due at once; events are queued from now on.
  void connected(Time now);
  // The channel closed: what was queued is dropped (the next connection resyncs).
  void disconnected();
  [[nodiscard]] bool up() const { return up_; }
  // Events were lost (the event socket overran): a resync is due at once.
  void force_resync() { resync_at_.reset(); }

  // Queues one conntrack event (coalesced with a queued one of the same flow: the last
  // wins). Ignored while down. True when a frame is full: flush() now.
  bool add(const netfilter::FlowEvent& e, Time now);

  // Whether a resync should go out now (`backlog`: bytes in the socket's write queue).
  [[nodiscard]] bool resync_due(Time now, size_t backlog) const;
  // The frames of a resync of `flows` (the current set, this target's sources are picked
  // here): the first carries kResyncBegin, the last kResyncComplete. Queued events are
  // older than the dump and dropped.
  // `drop_queued` false: events queued since the dump began (drop_pending() then) are kept
  // and go out after the resync.
  [[nodiscard]] std::vector<handover::ReplicaBatch> resync(
      const std::vector<netfilter::ReplicatedFlow>& flows, Time now, bool drop_queued = true);
  // Drops the queued events (a dump that supersedes them begins).
  void drop_pending();
  // The queued events as frames when due (kFlushEvery after the first was queued, or a frame
  // is full) and the socket keeps up; empty otherwise.
  [[nodiscard]] std::vector<handover::ReplicaBatch> flush(Time now, size_t backlog);

  // When flush() or a resync is next due; nullopt while down.
  [[nodiscard]] std::optional<Time> next_deadline() const;
  [[nodiscard]] size_t pending() const { return pending_.size(); }
  [[nodiscard]] const StreamCounters& counters() const { return counters_; }
  [[nodiscard]] std::optional<Time> last_resync() const { return last_resync_; }
  // Events sent in the last complete second (for status).
  [[nodiscard]] uint64_t events_per_second(Time now) const;

 private:
  using Key = std::tuple<uint8_t, uint32_t, uint32_t, uint16_t, uint16_t>;
  static Key key(const netfilter::Flow& f) { return {f.proto, f.src, f.dst, f.sport, f.dport}; }
  struct Entry {
    bool destroy = false;
    netfilter::ReplicatedFlow flow;  // destroys: only flow.flow
  };
  [[nodiscard]] bool wanted(const netfilter::Flow& f) const;
  [[nodiscard]] bool frame_full() const;
  void count_events(uint64_t n, Time now);

  Settings settings_;
  std::vector<netfilter::Ipv4Prefix> sources_;
  bool up_ = false;
  std::optional<Time> resync_at_;  // nullopt while up: due at once
  std::optional<Time> last_resync_;
  std::map<Key, Entry> pending_;
  size_t pending_bytes_ = 0;
  std::optional<Time> first_pending_;
  StreamCounters counters_;
  // Events sent per one-second window: the current one and the last complete one.
  Time window_{};
  uint64_t window_events_ = 0;
  uint64_t last_window_events_ = 0;
};

// The union of the targets' sources for the event stream's filter: empty (every source) when
// any target takes every source.
[[nodiscard]] std::vector<std::string> union_sources(
    const std::vector<std::vector<std::string>>& per_target);

}  // namespace hanat::daemon::replica
