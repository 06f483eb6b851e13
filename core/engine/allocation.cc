// SPDX-License-Identifier: GPL-2.0-or-later
#include "core/engine/allocation.h"

#include <algorithm>
#include <numeric>

namespace hanat::engine {

std::vector<int> allocate(std::span<const AllocMember> healthy, std::span<const AllocTable> tables,
                          bool have_fallback) {
  std::vector<int> out(tables.size(), have_fallback ? kAllocFallback : kAllocNobody);
  if (healthy.empty()) return out;

  std::vector<int> members(healthy.size());
  std::iota(members.begin(), members.end(), 0);
  std::sort(members.begin(), members.end(), [&](int a, int b) {
    return healthy[static_cast<std::size_t>(a)].id < healthy[static_cast<std::size_t>(b)].id;
  });
  std::vector<std::size_t> order(tables.size());
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::sort(order.begin(), order.end(),
            [&](std::size_t a, std::size_t b) { return tables[a].id < tables[b].id; });

  std::vector<int> load(healthy.size(), 0);
  std::vector<std::size_t> leftover;
  // Step 1: home zone, round-robin per zone in id order. `seen` counts tables of the zone
  // allocated so far; a small linear scan is fine for a handful of zones.
  std::vector<std::pair<std::string_view, std::size_t>> seen;
  for (std::size_t t : order) {
    std::string_view zone = tables[t].zone;
    std::size_t in_zone = 0;
    for (int m : members) in_zone += healthy[static_cast<std::size_t>(m)].zone == zone ? 1 : 0;
    if (in_zone == 0) {
      leftover.push_back(t);
      continue;
    }
    auto it =
        std::find_if(seen.begin(), seen.end(), [&](const auto& s) { return s.first == zone; });
    if (it == seen.end()) it = seen.insert(seen.end(), {zone, 0});
    std::size_t pick = it->second++ % in_zone;
    for (int m : members) {
      if (healthy[static_cast<std::size_t>(m)].zone != zone) continue;
      if (pick-- == 0) {
        out[t] = m;
        ++load[static_cast<std::size_t>(m)];
        break;
      }
    }
  }
  // Step 2: tables of zones without a healthy member go to the least-loaded member.
  for (std::size_t t : leftover) {
    int best = members.front();
    for (int m : members) {
      auto mi = static_cast<std::size_t>(m);
      auto bi = static_cast<std::size_t>(best);
      if (load[mi] != load[bi]) {
        if (load[mi] < load[bi]) best = m;
      } else if (healthy[mi].launch_time != healthy[bi].launch_time) {
        if (healthy[mi].launch_time < healthy[bi].launch_time) best = m;
      }  // equal load and age: `members` is in id order, the first one seen stays
    }
    out[t] = best;
    ++load[static_cast<std::size_t>(best)];
  }
  return out;
}

}  // namespace hanat::engine
