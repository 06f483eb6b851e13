// SPDX-License-Identifier: GPL-2.0-or-later
#include "core/daemon/replica_store.h"

#include <algorithm>
#include <tuple>

namespace hanat::daemon::replica {

ms Store::ttl(const Flow& f) const {
  if (f.timeout_s == 0) return limits_.max_ttl;
  const ms kernel{static_cast<int64_t>(f.timeout_s) * 1000};
  return std::clamp(kernel, limits_.min_ttl, std::max(limits_.min_ttl, limits_.max_ttl));
}

void Store::apply(const std::string& member, const Batch& b, ms now) {
  Origin& o = origins_[member];
  if (b.resync_begin) {
    // A second begin without a completion (the sender restarted its resync) simply starts
    // a new generation: only what is announced from now on counts.
    ++o.generation;
    o.resyncing = true;
  }
  for (const ReplicatedFlow& f : b.upserts) {
    auto it = o.entries.find(f.flow);
    if (it != o.entries.end()) {
      it->second.flow = f;
      it->second.generation = o.generation;
      it->second.expires = now + ttl(f.flow);
      ++o.counters.upserts;
      continue;
    }
    if (total_ >= limits_.max_entries) {
      ++o.counters.refused;
      continue;
    }
    o.entries.emplace(f.flow, Entry{f, o.generation, now + ttl(f.flow)});
    ++total_;
    ++o.counters.upserts;
  }
  for (const Flow& f : b.destroys) {
    if (o.entries.erase(f) != 0) {
      --total_;
      ++o.counters.destroyed;
    }
  }
  if (b.resync_complete && o.resyncing) {
    for (auto it = o.entries.begin(); it != o.entries.end();) {
      if (it->second.generation != o.generation) {
        it = o.entries.erase(it);
        --total_;
        ++o.counters.swept;
      } else {
        ++it;
      }
    }
    o.resyncing = false;
    o.synced = true;
    ++o.counters.resyncs;
  }
  maybe_expire(now);
}

std::vector<ReplicatedFlow> Store::take(const std::string& member, ms now) const {
  std::vector<ReplicatedFlow> out;
  auto o = origins_.find(member);
  if (o == origins_.end()) return out;
  out.reserve(o->second.entries.size());
  for (const auto& [k, e] : o->second.entries) {
    if (e.expires > now) out.push_back(e.flow);
  }
  std::sort(out.begin(), out.end(), [](const ReplicatedFlow& a, const ReplicatedFlow& b) {
    return std::tie(a.flow.proto, a.flow.src, a.flow.dst, a.flow.sport, a.flow.dport) <
           std::tie(b.flow.proto, b.flow.src, b.flow.dst, b.flow.sport, b.flow.dport);
  });
  return out;
}

size_t Store::drop(const std::string& member) {
  auto o = origins_.find(member);
  if (o == origins_.end()) return 0;
  const size_t n = o->second.entries.size();
  total_ -= n;
  origins_.erase(o);
  return n;
}

size_t Store::expire(ms now) {
  size_t n = 0;
  for (auto& [member, o] : origins_) {
    for (auto it = o.entries.begin(); it != o.entries.end();) {
      if (it->second.expires <= now) {
        it = o.entries.erase(it);
        --total_;
        ++o.counters.expired;
        ++n;
      } else {
        ++it;
      }
    }
  }
  return n;
}

void Store::maybe_expire(ms now) {
  if (now < next_sweep_) return;
  next_sweep_ = now + ms(1000);
  (void)expire(now);
}

size_t Store::size(const std::string& member) const {
  auto o = origins_.find(member);
  return o == origins_.end() ? 0 : o->second.entries.size();
}

size_t Store::live(const std::string& member, ms now) const {
  auto o = origins_.find(member);
  if (o == origins_.end()) return 0;
  size_t n = 0;
  for (const auto& [k, e] : o->second.entries) n += e.expires > now ? 1 : 0;
  return n;
}

uint64_t Store::refused(const std::string& member) const {
  auto o = origins_.find(member);
  return o == origins_.end() ? 0 : o->second.counters.refused;
}

std::map<std::string, OriginView> Store::origins() const {
  std::map<std::string, OriginView> out;
  for (const auto& [member, o] : origins_)
    out[member] = OriginView{o.entries.size(), o.resyncing, o.synced, o.counters};
  return out;
}

}  // namespace hanat::daemon::replica
