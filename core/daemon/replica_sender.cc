// SPDX-License-Identifier: GPL-2.0-or-later
#include "core/daemon/replica_sender.h"

#include <algorithm>
#include <set>

#include "core/engine/allocation.h"

namespace hanat::daemon::replica {

std::vector<Target> replica_targets(const std::string& self,
                                    const std::vector<TargetMember>& members,
                                    const std::vector<TargetTable>& tables) {
  std::vector<engine::AllocMember> with, without;
  std::vector<const TargetMember*> without_src;
  bool self_known = false;
  for (const auto& m : members) {
    const bool me = m.id == self;
    if (!me && !m.healthy) continue;
    with.push_back({m.id, m.zone, m.launch_time});
    if (me) {
      self_known = true;
    } else {
      without.push_back({m.id, m.zone, m.launch_time});
      without_src.push_back(&m);
    }
  }
  if (!self_known || without.empty() || tables.empty()) return {};
  std::vector<engine::AllocTable> at;
  at.reserve(tables.size());
  for (const auto& t : tables) at.push_back({t.id, t.zone});
  // No fallback in either run: a table that only the fallback would take has no taker that
  // could install flows, and with a healthy peer the fallback takes nothing anyway.
  const auto a_with = engine::allocate(with, at, false);
  const auto a_without = engine::allocate(without, at, false);
  std::map<std::string, std::vector<std::string>> by_member;
  for (size_t i = 0; i < tables.size(); ++i) {
    const bool held =
        tables[i].here || (a_with[i] >= 0 && with[static_cast<size_t>(a_with[i])].id == self);
    if (!held) continue;
    if (a_without[i] < 0) continue;
    by_member[without_src[static_cast<size_t>(a_without[i])]->id].push_back(tables[i].id);
  }
  std::vector<Target> out;
  for (auto& [member, t] : by_member) out.push_back(Target{member, std::move(t)});
  return out;
}

std::vector<std::string> union_sources(const std::vector<std::vector<std::string>>& per_target) {
  std::set<std::string> all;
  for (const auto& s : per_target) {
    if (s.empty()) return {};
    all.insert(s.begin(), s.end());
  }
  return {all.begin(), all.end()};
}

namespace {

bool in_prefix(uint32_t addr, const netfilter::Ipv4Prefix& p) {
  const uint32_t mask = p.len == 0 ? 0 : ~uint32_t{0} << (32 - p.len);
  return (addr & mask) == p.addr;
}

size_t entry_bytes(bool destroy) {
  return destroy ? handover::kFlowBytes : handover::kUpsertBytes;
}

}  // namespace

bool Stream::wanted(const netfilter::Flow& f) const {
  return sources_.empty() || std::any_of(sources_.begin(), sources_.end(),
                                         [&](const auto& p) { return in_prefix(f.src, p); });
}

bool Stream::frame_full() const {
  return pending_bytes_ + handover::kUpsertBytes > handover::kMaxReplicaBytes;
}

void Stream::connected(Time /*now*/) {
  up_ = true;
  resync_at_.reset();
  pending_.clear();
  pending_bytes_ = 0;
  first_pending_.reset();
}

void Stream::disconnected() {
  up_ = false;
  pending_.clear();
  pending_bytes_ = 0;
  first_pending_.reset();
}

bool Stream::add(const netfilter::FlowEvent& e, Time now) {
  // While down nothing is queued: the connection's first resync carries the current set.
  if (!up_) return false;
  if (!e.destroyed && !e.replicated) return false;  // no public port: nothing to recreate
  if (!wanted(e.flow)) {
    ++counters_.filtered;
    return false;
  }
  const Key k = key(e.flow);
  auto it = pending_.find(k);
  if (it == pending_.end() && pending_.size() >= settings_.max_pending) {
    // The target does not keep up (or the host churns flows faster than a frame every
    // flush): drop what is queued and send the current set instead, once the socket drains.
    counters_.drops += pending_.size() + 1;
    pending_.clear();
    pending_bytes_ = 0;
    first_pending_.reset();
    resync_at_.reset();
    return false;
  }
  Entry entry;
  entry.destroy = e.destroyed;
  if (e.destroyed) {
    entry.flow.flow = e.flow;
  } else {
    entry.flow = *e.replicated;
  }
  if (it != pending_.end()) {
    ++counters_.coalesced;
    pending_bytes_ -= entry_bytes(it->second.destroy);
    it->second = entry;
  } else {
    pending_.emplace(k, entry);
  }
  pending_bytes_ += entry_bytes(entry.destroy);
  if (!first_pending_) first_pending_ = now;
  return frame_full();
}

bool Stream::resync_due(Time now, size_t backlog) const {
  if (!up_ || backlog > settings_.max_backlog) return false;
  return !resync_at_ || now >= *resync_at_;
}

void Stream::drop_pending() {
  pending_.clear();
  pending_bytes_ = 0;
  first_pending_.reset();
}

std::vector<handover::ReplicaBatch> Stream::resync(
    const std::vector<netfilter::ReplicatedFlow>& flows, Time now, bool drop_queued) {
  // Events queued before the dump are superseded by it.
  if (drop_queued) drop_pending();
  constexpr size_t per_frame = handover::kMaxReplicaBytes / handover::kUpsertBytes;
  std::vector<handover::ReplicaBatch> out(1);
  out.back().flags = handover::ReplicaBatch::kResyncBegin;
  for (const auto& f : flows) {
    if (!wanted(f.flow)) continue;
    if (out.back().upserts.size() == per_frame) out.emplace_back();
    out.back().upserts.push_back(f);
    ++counters_.flows_sent;
    counters_.bytes += handover::kUpsertBytes;
  }
  out.back().flags |= handover::ReplicaBatch::kResyncComplete;
  counters_.frames += out.size();
  ++counters_.resyncs;
  last_resync_ = now;
  resync_at_ = now + settings_.resync_every;
  return out;
}

std::vector<handover::ReplicaBatch> Stream::flush(Time now, size_t backlog) {
  if (pending_.empty() || !first_pending_ || backlog > settings_.max_backlog) return {};
  if (!frame_full() && now < *first_pending_ + settings_.flush_every) return {};
  std::vector<handover::ReplicaBatch> out(1);
  for (const auto& [k, e] : pending_) {
    if (out.back().entry_bytes() + entry_bytes(e.destroy) > handover::kMaxReplicaBytes)
      out.emplace_back();
    if (e.destroy) {
      out.back().destroys.push_back(e.flow.flow);
    } else {
      out.back().upserts.push_back(e.flow);
    }
  }
  counters_.events += pending_.size();
  counters_.bytes += pending_bytes_;
  counters_.frames += out.size();
  count_events(pending_.size(), now);
  pending_.clear();
  pending_bytes_ = 0;
  first_pending_.reset();
  return out;
}

std::optional<Time> Stream::next_deadline() const {
  if (!up_) return std::nullopt;
  std::optional<Time> next = resync_at_ ? *resync_at_ : Time{};
  if (first_pending_) next = std::min(*next, *first_pending_ + settings_.flush_every);
  return next;
}

void Stream::count_events(uint64_t n, Time now) {
  if (now - window_ >= std::chrono::seconds(1)) {
    last_window_events_ = now - window_ < std::chrono::seconds(2) ? window_events_ : 0;
    window_ = now;
    window_events_ = 0;
  }
  window_events_ += n;
}

uint64_t Stream::events_per_second(Time now) const {
  if (now - window_ >= std::chrono::seconds(2)) return 0;
  if (now - window_ >= std::chrono::seconds(1)) return window_events_;
  return last_window_events_;
}

}  // namespace hanat::daemon::replica
