// SPDX-License-Identifier: GPL-2.0-or-later
#pragma once
// FlowTable: the flows one sending member handed over, as the taking member holds them
// while the handover lasts. Pure: time is passed in.
//
// Bounded: at most `max_flows` entries (`[handover] max_flows`); a flow beyond is refused and
// counted (the flows already held keep their steering; a refused one is reset, as today).
// Each entry expires `ttl` after it was last announced, where ttl is the kernel's remaining
// timeout as the sender read it, but at least `min_ttl`: the sender announces new and
// destroyed flows as they happen and re-sends its whole set periodically (a resync), which
// refreshes the flows still alive; the floor covers the time between two resyncs, since an
// active flow's kernel timeout is reset by every packet and a dump shows only a moment.
// A timeout of 0 (unknown) counts as `max_ttl`.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <unordered_map>
#include <vector>

#include "netfilter/flow.h"

namespace hanat::handover {

using netfilter::Flow;

struct FlowKeyHash {
  size_t operator()(const Flow& f) const noexcept;
};

struct FlowTableCounters {
  uint64_t added = 0;
  uint64_t refreshed = 0;  // announced again (duplicate or resync)
  uint64_t refused = 0;    // the table was full
  uint64_t destroyed = 0;
  uint64_t expired = 0;
};

class FlowTable {
 public:
  using ms = std::chrono::milliseconds;
  struct Limits {
    size_t max_flows = 100000;
    ms min_ttl{60000};
    ms max_ttl{300000};
  };
  enum class Added { New, Refreshed, Full };

  explicit FlowTable(Limits limits) : limits_(limits) {}

  Added add(const Flow& f, ms now);
  // Whether `f` was held.
  bool remove(const Flow& f);
  // Replaces everything with `flows` (a resync); returns how many were refused.
  size_t replace(const std::vector<Flow>& flows, ms now);
  void clear() { entries_.clear(); }
  // Drops expired entries; returns how many (and appends them to `removed` if given).
  // One pass over the table: the server calls it once a second.
  size_t expire(ms now, std::vector<Flow>* removed = nullptr);

  [[nodiscard]] size_t size() const { return entries_.size(); }
  [[nodiscard]] bool contains(const Flow& f) const { return entries_.count(f) != 0; }
  [[nodiscard]] std::optional<ms> next_expiry() const;
  // The flows held, ordered by tuple (stable for logs, status and tests).
  [[nodiscard]] std::vector<Flow> snapshot() const;
  [[nodiscard]] const FlowTableCounters& counters() const { return counters_; }
  [[nodiscard]] const Limits& limits() const { return limits_; }

 private:
  struct Entry {
    Flow flow;
    ms expires;
  };
  ms ttl(const Flow& f) const;

  Limits limits_;
  std::unordered_map<Flow, Entry, FlowKeyHash> entries_;
  FlowTableCounters counters_;
};

}  // namespace hanat::handover
