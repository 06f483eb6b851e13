// SPDX-License-Identifier: GPL-2.0-or-later
#include "core/daemon/keep_plan.h"

#include <algorithm>

namespace hanat::daemon::keep {

Sources handover_sources(const std::vector<std::string>& tables,
                         const std::map<std::string, std::vector<std::string>>& table_cidrs,
                         const std::vector<std::string>& nat_source_cidrs) {
  Sources s;
  for (const auto& t : tables) {
    auto it = table_cidrs.find(t);
    if (it == table_cidrs.end() || it->second.empty()) {
      s.fallback = true;
      break;
    }
    s.cidrs.insert(s.cidrs.end(), it->second.begin(), it->second.end());
  }
  if (s.fallback || tables.empty()) {
    s.fallback = true;
    s.cidrs = nat_source_cidrs;
  }
  std::sort(s.cidrs.begin(), s.cidrs.end());
  s.cidrs.erase(std::unique(s.cidrs.begin(), s.cidrs.end()), s.cidrs.end());
  return s;
}

SteerSlot steer_slot(uint32_t index) {
  return {index, kSteerMarkBase + index, kSteerTableBase + index, kSteerRulePriorityBase + index};
}

std::optional<SteerSlot> choose_steer_slot(uint32_t peer,
                                           const std::map<uint32_t, uint32_t>& held) {
  if (auto it = held.find(peer); it != held.end()) return steer_slot(it->second);
  std::set<uint32_t> used;
  for (const auto& [p, i] : held) used.insert(i);
  for (uint32_t i = 0; i < kMaxSteerSlots; ++i)
    if (!used.contains(i)) return steer_slot(i);
  return std::nullopt;
}

SteerVerdict steer_verdict(const PeerView& p) {
  if (!p.member) return SteerVerdict::Left;
  if (p.down) return SteerVerdict::Down;
  if (p.ended) return SteerVerdict::Ended;
  if (p.held == 0 && !p.channel_open) return SteerVerdict::Drained;
  return SteerVerdict::Keep;
}

const char* to_string(SteerVerdict v) {
  switch (v) {
    case SteerVerdict::Keep:
      return "keep";
    case SteerVerdict::Ended:
      return "handover ended";
    case SteerVerdict::Down:
      return "peer down";
    case SteerVerdict::Left:
      return "peer left the group";
    case SteerVerdict::Drained:
      return "no flows left";
  }
  return "?";
}

DrainVerdict drain_verdict(const DrainView& d) {
  if (d.forced) return DrainVerdict::Forced;
  if (d.flows_left == 0) return DrainVerdict::NoFlows;
  if (d.deadline && d.elapsed >= *d.deadline && *d.deadline < d.flow_drain)
    return DrainVerdict::Deadline;
  if (d.elapsed >= d.flow_drain) return DrainVerdict::FlowDrain;
  return DrainVerdict::Wait;
}

const char* to_string(DrainVerdict v) {
  switch (v) {
    case DrainVerdict::Wait:
      return "waiting";
    case DrainVerdict::NoFlows:
      return "no flows left";
    case DrainVerdict::FlowDrain:
      return "flow_drain reached";
    case DrainVerdict::Deadline:
      return "termination deadline reached";
    case DrainVerdict::Forced:
      return "stop forced";
  }
  return "?";
}

std::chrono::milliseconds stop_timeout(std::chrono::milliseconds handover_timeout,
                                       std::chrono::milliseconds flow_drain) {
  return handover_timeout + flow_drain + kStopMargin;
}

}  // namespace hanat::daemon::keep
