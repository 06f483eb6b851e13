// SPDX-License-Identifier: GPL-2.0-or-later
#include "core/daemon/plan.h"

#include <algorithm>

#include "core/engine/allocation.h"

namespace hanat::daemon {

namespace {

std::string text_of(const engine::Target& t) {
  switch (t.kind) {
    case engine::TargetKind::Missing:
      return "(no route)";
    case engine::TargetKind::Blackhole:
      return "blackhole";
    default:
      return t.id;
  }
}

std::string pad(std::string s, size_t n) {
  if (s.size() < n) s.append(n - s.size(), ' ');
  return s;
}

}  // namespace

Plan make_plan(const PlanInput& in) {
  Plan p;
  std::vector<engine::AllocMember> am;
  for (const auto& m : in.members) am.push_back({m.instance_id, m.zone, m.launch_time});
  std::vector<engine::AllocTable> at;
  for (const auto& t : in.tables) at.push_back({t.id, t.zone});
  std::vector<int> alloc = engine::allocate(am, at, !in.fallback.empty());

  auto target_of_member = [&](int idx) -> engine::Target {
    const auto& m = in.members[static_cast<size_t>(idx)];
    if (!m.eni_id.empty()) return {engine::TargetKind::Eni, m.eni_id};
    return {engine::TargetKind::Instance, m.instance_id};
  };
  const engine::Member* self = nullptr;
  for (const auto& m : in.members)
    if (m.instance_id == in.self) self = &m;

  std::string out;
  out += "members (" + std::to_string(in.members.size()) + "):\n";
  for (const auto& m : in.members) {
    out += "  " + pad(m.instance_id, 22) + pad(m.zone, 14) + pad(m.eni_id, 24) +
           (m.instance_id == in.self ? "(this host)" : "") + "\n";
  }
  out += "route tables (" + std::to_string(in.tables.size()) + "):\n";
  out += "  " + pad("TABLE", 24) + pad("ZONE", 14) + pad("DESTINATION", 16) + pad("CURRENT", 24) +
         "ALLOCATED\n";
  for (size_t i = 0; i < in.tables.size(); ++i) {
    const auto& t = in.tables[i];
    engine::Target want;
    if (alloc[i] >= 0) {
      want = target_of_member(alloc[i]);
    } else if (alloc[i] == engine::kAllocFallback) {
      want = {engine::TargetKind::NatGateway, in.fallback};
    }
    p.allocated.push_back(want.id);
    for (const auto& dest : in.destinations) {
      engine::Target cur;
      for (const auto& r : t.routes)
        if (r.destination == dest) cur = r.target;
      out += "  " + pad(t.id, 24) + pad(t.zone.empty() ? "-" : t.zone, 14) + pad(dest, 16) +
             pad(text_of(cur), 24) + (want.id.empty() ? "nobody" : want.id) + "\n";
      bool mine = self != nullptr && alloc[i] >= 0 &&
                  in.members[static_cast<size_t>(alloc[i])].instance_id == in.self;
      bool same = cur.kind == want.kind && cur.id == want.id;
      // An instance target and its primary ENI are the same NAT: no write needed.
      if (cur.kind == engine::TargetKind::Instance && self != nullptr &&
          cur.id == self->instance_id)
        same = same || mine;
      // DESIGN rule 3: a route pointing anywhere but at a member, the fallback, a blackhole
      // or nowhere is an operator's; the daemon would never write it.
      bool writable = cur.kind == engine::TargetKind::Missing ||
                      cur.kind == engine::TargetKind::Blackhole ||
                      (cur.kind == engine::TargetKind::NatGateway && !cur.propagated &&
                       cur.id == in.fallback && !in.fallback.empty());
      if ((cur.kind == engine::TargetKind::Instance || cur.kind == engine::TargetKind::Eni) &&
          !cur.propagated) {
        writable = std::any_of(in.members.begin(), in.members.end(), [&](const auto& m) {
          return m.instance_id == cur.id || (!m.eni_id.empty() && m.eni_id == cur.id);
        });
      }
      if (mine && !same && !writable) {
        out += "    (foreign: points at " + text_of(cur) + ", never written)\n";
      }
      if (mine && !same && writable) p.writes.push_back({t.id, dest, cur, want});
    }
  }
  if (p.writes.empty()) {
    out += "writes this host would make now: none\n";
  } else {
    out += "writes this host would make now (" + std::to_string(p.writes.size()) + "):\n";
    for (const auto& w : p.writes) {
      out += std::string("  ") +
             (w.from.kind == engine::TargetKind::Missing ? "CreateRoute " : "ReplaceRoute ") +
             w.table + " " + w.destination + ": " + text_of(w.from) + " -> " + text_of(w.to) + "\n";
    }
  }
  p.text = std::move(out);
  return p;
}

}  // namespace hanat::daemon
