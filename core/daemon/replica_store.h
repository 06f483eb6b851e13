// SPDX-License-Identifier: GPL-2.0-or-later
#pragma once
// DOC: core/daemon/replica_store — what a member holds of its peers' flows for stateful
// failover (DESIGN.md, "Connection survival"; issue #21, `[failover] stateful`).
//
// Each member streams its translated flows (conntrack NEW/UPDATE/DESTROY, and a full resync
// now and then) to the members that would take its tables if it died. The receiver keeps
// them here, in memory only — nothing reaches its kernel until the sender is DOWN and this
// member takes its tables (core/daemon/takeover.h); then take() hands the live entries of
// that member to the installation. Pure: time is passed in.
//
//   upsert         a flow announced (new, state change, or re-sent by a resync): added or
//                  refreshed, keyed by its original tuple per origin member
//   destroy        the flow ended on the sender: dropped
//   resync begin   the sender starts re-sending everything it translates
//   resync done    ... and finished: what of that member was not announced since the begin
//                  has ended on the sender without a DESTROY reaching us (a lost event, an
//                  ENOBUFS on the sender's event socket) and is dropped
//
// Expiry: each entry expires `ttl` after it was last announced, ttl being the kernel's
// remaining timeout as the sender read it, but at least `min_ttl`. An active flow's kernel
// timeout is reset by every packet, while the kernel sends no event for a mere refresh
// (nf_conntrack_event_cache only reports state and status changes): only the periodic resync
// re-announces a live flow, so the floor must cover the time between two resyncs (and a
// missed one). A timeout of 0 (unknown) counts as `max_ttl`.
//
// Bounded: at most `max_entries` over all members together; an upsert of a new flow beyond
// that is refused and counted (a refreshed one always passes). Memory per entry: the hash
// node holds the key (Flow, 20 bytes padded to 24) and the Entry (ReplicatedFlow, 36 bytes,
// the generation and the expiry: 56 bytes with padding), plus the node's next pointer and a
// bucket pointer at load factor 1: about 96 bytes (kBytesPerEntry; pinned against sizeof by
// tests/unit/daemon/replica_store_test.cc), so 50,000 replicated flows cost about 4.6 MiB.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/handover/flow_table.h"
#include "netfilter/flow.h"

namespace hanat::daemon::replica {

using ms = std::chrono::milliseconds;
using netfilter::Flow;
using netfilter::ReplicatedFlow;

// One decoded replication frame of one sender, applied in this order: begin, upserts,
// destroys, complete.
struct Batch {
  bool resync_begin = false;
  std::vector<ReplicatedFlow> upserts;
  std::vector<Flow> destroys;
  bool resync_complete = false;
};

struct Limits {
  size_t max_entries = 200000;
  // Three resync periods of the sender (30 s each): one lost resync frame does not expire
  // the flows it would have refreshed.
  ms min_ttl{90000};
  // TCP ESTABLISHED's kernel default is 5 days (nf_conntrack_tcp_timeout_established).
  ms max_ttl{432000000};
};

struct OriginCounters {
  uint64_t upserts = 0;    // entries added or refreshed
  uint64_t destroyed = 0;  // DESTROY of a held entry
  uint64_t refused = 0;    // new entries refused: the store was full
  uint64_t expired = 0;
  uint64_t swept = 0;    // dropped at a completed resync: not re-announced
  uint64_t resyncs = 0;  // completed resyncs
};

struct OriginView {
  size_t entries = 0;
  bool resyncing = false;
  bool synced = false;  // at least one resync completed
  OriginCounters counters;
};

class Store {
 public:
  static constexpr size_t kBytesPerEntry = 96;
  // What one entry really takes: the hash node (next pointer, key, value) and one bucket.
  static constexpr size_t entry_bytes();

  explicit Store(Limits limits) : limits_(limits) {}

  void apply(const std::string& member, const Batch& b, ms now);
  // The live entries of `member` (not expired at `now`), ordered by tuple, as last
  // announced. The store keeps them: drop() them once the takeover completed.
  [[nodiscard]] std::vector<ReplicatedFlow> take(const std::string& member, ms now) const;
  // Forgets `member` (its takeover completed, or it left the group); returns how many.
  size_t drop(const std::string& member);
  // Drops expired entries of every member; returns how many.
  size_t expire(ms now);
  // expire() at most once a second, for callers without a timer of their own.
  void maybe_expire(ms now);

  [[nodiscard]] size_t size() const { return total_; }
  [[nodiscard]] size_t size(const std::string& member) const;
  [[nodiscard]] uint64_t refused(const std::string& member) const;
  // How many take() would return, without copying them (status).
  [[nodiscard]] size_t live(const std::string& member, ms now) const;
  [[nodiscard]] std::map<std::string, OriginView> origins() const;
  [[nodiscard]] const Limits& limits() const { return limits_; }
  void set_limits(Limits l) { limits_ = l; }

 private:
  struct Entry {
    ReplicatedFlow flow;
    uint32_t generation = 0;
    ms expires{0};
  };
  struct Origin {
    std::unordered_map<Flow, Entry, handover::FlowKeyHash> entries;
    uint32_t generation = 0;
    bool resyncing = false;
    bool synced = false;
    OriginCounters counters;
  };
  [[nodiscard]] ms ttl(const Flow& f) const;

  Limits limits_;
  std::map<std::string, Origin> origins_;
  size_t total_ = 0;
  ms next_sweep_{0};
};

constexpr size_t Store::entry_bytes() {
  return sizeof(void*) + sizeof(std::pair<const Flow, Entry>) + sizeof(void*);
}

}  // namespace hanat::daemon::replica
