// SPDX-License-Identifier: GPL-2.0-or-later
#include "core/daemon/takeover.h"

#include <algorithm>
#include <map>

namespace hanat::daemon::takeover {

Verdict judge(const ClaimView& v) {
  if (!v.stateful || v.previous.empty()) return Verdict::Off;
  if (!v.previous_down || !v.previous_silent) return Verdict::NotDead;
  if (v.previous_steered) return Verdict::Steered;
  if (v.replicated == 0) return Verdict::NoReplica;
  return Verdict::Stateful;
}

const char* to_string(Verdict v) {
  switch (v) {
    case Verdict::Stateful:
      return "stateful";
    case Verdict::Off:
      return "off";
    case Verdict::NotDead:
      return "not dead";
    case Verdict::Steered:
      return "steered";
    case Verdict::NoReplica:
      return "no replicated flows";
  }
  return "?";
}

Split split_by_address(const std::vector<ReplicatedFlow>& flows,
                       const std::vector<AddressRoute>& routes) {
  std::map<uint32_t, std::vector<ReplicatedFlow>> by;
  Split out;
  for (const ReplicatedFlow& f : flows) {
    const AddressRoute* best = nullptr;
    for (const AddressRoute& r : routes) {
      const uint32_t mask = r.prefix == 0 ? 0 : ~uint32_t{0} << (32 - std::min<int>(r.prefix, 32));
      if ((f.flow.src & mask) != (r.net & mask)) continue;
      if (best == nullptr || r.prefix > best->prefix) best = &r;
    }
    if (best == nullptr) {
      ++out.unroutable;
    } else {
      by[best->address].push_back(f);
    }
  }
  for (auto& [addr, v] : by) out.groups.push_back(Group{addr, std::move(v)});
  return out;
}

Install::Install(std::string member, Split split, Time now, Settings s)
    : member_(std::move(member)), split_(std::move(split)), settings_(s), started_(now) {
  counters_.unroutable = split_.unroutable;
  counters_.flows = split_.unroutable;
  for (const auto& g : split_.groups) counters_.flows += g.flows.size();
  if (split_.groups.empty()) {
    finished_ = true;
    finished_at_ = now;
  }
}

Install::Release Install::release(std::string why) {
  Release r;
  r.writes = std::move(held_);
  held_.clear();
  r.why = std::move(why);
  released_ = true;
  return r;
}

Install::Release Install::hold(engine::WriteRoute w, Time now) {
  if (released_ || finished_) {
    Release r;
    r.writes.push_back(std::move(w));
    released_ = true;
    return r;
  }
  if (!first_hold_) first_hold_ = now;
  held_.push_back(std::move(w));
  return tick(now);
}

bool Install::cancel(engine::OpId op) {
  auto it = std::find_if(held_.begin(), held_.end(),
                         [op](const engine::WriteRoute& w) { return w.op == op; });
  if (it == held_.end()) return false;
  held_.erase(it);
  return true;
}

std::optional<Install::Chunk> Install::next_chunk() {
  if (finished_ || group_ >= split_.groups.size()) return std::nullopt;
  const Group& g = split_.groups[group_];
  Chunk c;
  c.address = g.address;
  c.first_of_address = offset_ == 0;
  const size_t n = std::min(std::max<size_t>(settings_.chunk, 1), g.flows.size() - offset_);
  c.flows.assign(g.flows.begin() + static_cast<std::ptrdiff_t>(offset_),
                 g.flows.begin() + static_cast<std::ptrdiff_t>(offset_ + n));
  in_chunk_ = n;
  offset_ += n;
  if (offset_ >= g.flows.size()) {
    ++group_;
    offset_ = 0;
  }
  return c;
}

Install::Release Install::chunk_done(uint64_t installed, uint64_t collided, uint64_t failed,
                                     Time now) {
  counters_.installed += installed;
  counters_.collided += collided;
  counters_.failed += failed;
  in_chunk_ = 0;
  if (group_ >= split_.groups.size()) {
    finished_ = true;
    finished_at_ = now;
    if (!released_) return release("");
  }
  return tick(now);
}

Install::Release Install::chunk_failed(const std::string& why, Time now) {
  // This chunk and everything not yet tried.
  uint64_t left = in_chunk_;
  for (size_t g = group_; g < split_.groups.size(); ++g)
    left += split_.groups[g].flows.size() - (g == group_ ? offset_ : 0);
  counters_.failed += left;
  in_chunk_ = 0;
  group_ = split_.groups.size();
  offset_ = 0;
  finished_ = true;
  finished_at_ = now;
  error_ = why;
  if (released_) return {};
  return release("installing the flows failed: " + why);
}

Install::Release Install::tick(Time now) {
  if (released_ || !first_hold_) return {};
  if (finished_) return release("");
  if (now - *first_hold_ >= settings_.hold) {
    return release("the installation took longer than " + std::to_string(settings_.hold.count()) +
                   " ms");
  }
  return {};
}

std::optional<Time> Install::deadline() const {
  if (released_ || !first_hold_) return std::nullopt;
  return *first_hold_ + settings_.hold;
}

std::string ServedTables::observe(const std::vector<engine::ObservedTable>& tables,
                                  const std::set<std::string>& self) {
  std::string moved;
  for (const auto& t : tables) {
    zones_[t.id] = t.zone;
    bool here = false;
    for (const auto& r : t.routes) here = here || (!r.target.id.empty() && self.count(r.target.id));
    // A table never seen routing here is not taken from this host: a claim in flight when
    // the read-back was sent, or another zone's.
    if (here) {
      served_.insert(t.id);
    } else if (served_.erase(t.id) != 0 && moved.empty()) {
      moved = t.id;
    }
  }
  return moved;
}

bool ServedTables::claimed_own(const std::string& table, const std::string& own_zone) const {
  auto z = zones_.find(table);
  return z != zones_.end() && !own_zone.empty() && z->second == own_zone;
}

}  // namespace hanat::daemon::takeover
