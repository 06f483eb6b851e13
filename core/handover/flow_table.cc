// SPDX-License-Identifier: GPL-2.0-or-later
#include "core/handover/flow_table.h"

#include <algorithm>
#include <tuple>

namespace hanat::handover {

size_t FlowKeyHash::operator()(const Flow& f) const noexcept {
  uint64_t h = (static_cast<uint64_t>(f.src) << 32) | f.dst;
  h ^= (static_cast<uint64_t>(f.sport) << 24) ^ (static_cast<uint64_t>(f.dport) << 8) ^ f.proto;
  // splitmix64 finaliser: the 5-tuple's bits spread over the whole word.
  h ^= h >> 30;
  h *= 0xbf58476d1ce4e5b9ULL;
  h ^= h >> 27;
  h *= 0x94d049bb133111ebULL;
  h ^= h >> 31;
  return static_cast<size_t>(h);
}

FlowTable::ms FlowTable::ttl(const Flow& f) const {
  if (f.timeout_s == 0) return limits_.max_ttl;
  const ms kernel{static_cast<int64_t>(f.timeout_s) * 1000};
  return std::clamp(kernel, limits_.min_ttl, std::max(limits_.min_ttl, limits_.max_ttl));
}

FlowTable::Added FlowTable::add(const Flow& f, ms now) {
  auto it = entries_.find(f);
  if (it != entries_.end()) {
    it->second.flow.timeout_s = f.timeout_s;
    it->second.expires = now + ttl(f);
    ++counters_.refreshed;
    return Added::Refreshed;
  }
  if (entries_.size() >= limits_.max_flows) {
    ++counters_.refused;
    return Added::Full;
  }
  entries_.emplace(f, Entry{f, now + ttl(f)});
  ++counters_.added;
  return Added::New;
}

bool FlowTable::remove(const Flow& f) {
  if (entries_.erase(f) == 0) return false;
  ++counters_.destroyed;
  return true;
}

size_t FlowTable::replace(const std::vector<Flow>& flows, ms now) {
  entries_.clear();
  size_t refused = 0;
  for (const Flow& f : flows) {
    if (add(f, now) == Added::Full) ++refused;
  }
  return refused;
}

size_t FlowTable::expire(ms now, std::vector<Flow>* removed) {
  size_t n = 0;
  for (auto it = entries_.begin(); it != entries_.end();) {
    if (it->second.expires <= now) {
      if (removed != nullptr) removed->push_back(it->second.flow);
      it = entries_.erase(it);
      ++n;
    } else {
      ++it;
    }
  }
  counters_.expired += n;
  return n;
}

std::optional<FlowTable::ms> FlowTable::next_expiry() const {
  std::optional<ms> out;
  for (const auto& [k, e] : entries_) {
    if (!out || e.expires < *out) out = e.expires;
  }
  return out;
}

std::vector<Flow> FlowTable::snapshot() const {
  std::vector<Flow> out;
  out.reserve(entries_.size());
  for (const auto& [k, e] : entries_) out.push_back(e.flow);
  std::sort(out.begin(), out.end(), [](const Flow& a, const Flow& b) {
    return std::tie(a.proto, a.src, a.dst, a.sport, a.dport) <
           std::tie(b.proto, b.src, b.dst, b.sport, b.dport);
  });
  return out;
}

}  // namespace hanat::handover
