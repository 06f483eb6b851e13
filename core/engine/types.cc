// SPDX-License-Identifier: GPL-2.0-or-later
#include "core/engine/types.h"

#include <algorithm>
#include <set>

namespace hanat::engine {

std::vector<std::string> validate(const Config& cfg) {
  std::vector<std::string> errors;
  auto bad = [&](std::string msg) { errors.push_back(std::move(msg)); };
  std::set<std::string> ids;
  bool self_found = false;
  for (std::size_t i = 0; i < cfg.members.size(); ++i) {
    const Member& m = cfg.members[i];
    std::string where = "members[" + std::to_string(i) + "]";
    if (m.instance_id.empty()) bad(where + ".instance_id is empty");
    if (m.zone.empty()) bad(where + ".zone is empty");
    if (!ids.insert(m.instance_id).second) {
      bad(where + ".instance_id \"" + m.instance_id + "\" is listed twice");
    }
    if (!m.eni_id.empty() && !ids.insert(m.eni_id).second) {
      bad(where + ".eni_id \"" + m.eni_id + "\" is listed twice");
    }
    self_found = self_found || m.instance_id == cfg.self;
  }
  if (cfg.self.empty()) {
    bad("self is empty");
  } else if (!self_found) {
    bad("self \"" + cfg.self + "\" is not one of members");
  }
  if (cfg.probe_kinds.empty()) bad("probe_kinds is empty");
  if (cfg.peer_thresholds.rise < 1) bad("peer_thresholds.rise must be at least 1");
  if (cfg.peer_thresholds.fall < 1) bad("peer_thresholds.fall must be at least 1");
  auto positive = [&](Millis v, const char* name) {
    if (v <= Millis{0}) bad(std::string(name) + " must be positive");
  };
  if (cfg.failback_delay < Millis{0}) bad("failback_delay must not be negative");
  if (cfg.reclaim_wait < Millis{0}) bad("reclaim_wait must not be negative");
  positive(cfg.hold_down_base, "hold_down_base");
  positive(cfg.hold_down_max, "hold_down_max");
  if (cfg.hold_down_max < cfg.hold_down_base) bad("hold_down_max is below hold_down_base");
  positive(cfg.describe_interval, "describe_interval");
  if (cfg.observe_settle < Millis{0}) bad("observe_settle must not be negative");
  positive(cfg.handover_deadline, "handover_deadline");
  positive(cfg.retry_base, "retry_base");
  positive(cfg.retry_max, "retry_max");
  if (cfg.retry_max < cfg.retry_base) bad("retry_max is below retry_base");
  positive(cfg.nat_retry, "nat_retry");
  positive(cfg.recovery_after, "recovery_after");
  if (cfg.recovery_cooldown < Millis{0}) bad("recovery_cooldown must not be negative");
  positive(cfg.suspect_window, "suspect_window");
  if (cfg.destinations.empty()) bad("destinations is empty");
  std::set<std::string> dests;
  for (const auto& d : cfg.destinations) {
    if (d.empty()) bad("destinations has an empty entry");
    if (!dests.insert(d).second) bad("destination \"" + d + "\" is listed twice");
  }
  if (cfg.write_burst < 1) bad("write_burst must be at least 1");
  if (!(cfg.write_refill_per_s > 0)) bad("write_refill_per_s must be positive");
  if (!cfg.fallback_nat_gateway.empty() && cfg.fallback_nat_gateway.rfind("nat-", 0) != 0) {
    bad("fallback_nat_gateway \"" + cfg.fallback_nat_gateway +
        "\" is not a NAT Gateway id (nat-...)");
  }
  std::set<std::string> eip_zones;
  for (std::size_t i = 0; i < cfg.eips.size(); ++i) {
    std::string where = "eips[" + std::to_string(i) + "]";
    if (cfg.eips[i].zone.empty()) bad(where + ".zone is empty");
    if (cfg.eips[i].allocation_id.empty()) bad(where + ".allocation_id is empty");
    if (!eip_zones.insert(cfg.eips[i].zone).second) {
      bad(where + ".zone \"" + cfg.eips[i].zone + "\" has a second EIP");
    }
  }
  return errors;
}

const char* to_string(State s) {
  switch (s) {
    case State::Starting:
      return "starting";
    case State::Standby:
      return "standby";
    case State::Active:
      return "active";
    case State::Failing:
      return "failing";
    case State::Unhealthy:
      return "unhealthy";
    case State::Draining:
      return "draining";
    case State::Drained:
      return "drained";
    case State::Leaving:
      return "leaving";
    case State::ExitReady:
      return "exit-ready";
  }
  return "?";
}

const char* to_string(Reason r) {
  switch (r) {
    case Reason::Started:
      return "started";
    case Reason::Ready:
      return "NAT applied and route tables read";
    case Reason::NatFailed:
      return "NAT could not be applied";
    case Reason::SelfUnhealthy:
      return "own data plane failed";
    case Reason::SelfHealthy:
      return "own data plane healthy";
    case Reason::Claimed:
      return "claimed routes";
    case Reason::Released:
      return "owns no route";
    case Reason::DrainRequested:
      return "drain requested";
    case Reason::Undrained:
      return "undrained";
    case Reason::ShutdownRequested:
      return "shutdown requested";
    case Reason::TerminationNotice:
      return "termination notice";
    case Reason::HandoverComplete:
      return "handover complete";
    case Reason::HandoverTimeout:
      return "handover deadline passed";
  }
  return "?";
}

const char* to_string(TargetKind k) {
  switch (k) {
    case TargetKind::Missing:
      return "missing";
    case TargetKind::Blackhole:
      return "blackhole";
    case TargetKind::Instance:
      return "instance";
    case TargetKind::Eni:
      return "eni";
    case TargetKind::NatGateway:
      return "nat-gateway";
    case TargetKind::TransitGateway:
      return "transit-gateway";
    case TargetKind::Peering:
      return "peering";
    case TargetKind::Gateway:
      return "gateway";
    case TargetKind::EgressOnlyGateway:
      return "egress-only-gateway";
    case TargetKind::LocalGateway:
      return "local-gateway";
    case TargetKind::CarrierGateway:
      return "carrier-gateway";
    case TargetKind::CoreNetwork:
      return "core-network";
    case TargetKind::Other:
      return "other";
  }
  return "?";
}

const char* to_string(WriteApi a) {
  switch (a) {
    case WriteApi::CreateRoute:
      return "CreateRoute";
    case WriteApi::ReplaceRoute:
      return "ReplaceRoute";
    case WriteApi::AssociateAddress:
      return "AssociateAddress";
  }
  return "?";
}

LocalWriteBudget::LocalWriteBudget(double burst, double refill_per_s, Time start)
    : burst_(burst),
      refill_(refill_per_s),
      tokens_{burst, burst, burst},
      at_{start, start, start} {}

void LocalWriteBudget::set_limits(double burst, double refill_per_s) {
  burst_ = burst;
  refill_ = refill_per_s;
  for (double& t : tokens_) t = std::min(t, burst_);
}

double LocalWriteBudget::tokens(WriteApi api, Time now) const {
  const auto i = static_cast<std::size_t>(api);
  const double elapsed = now > at_[i] ? std::chrono::duration<double>(now - at_[i]).count() : 0.0;
  return std::min(burst_, tokens_[i] + elapsed * refill_);
}

std::optional<Time> LocalWriteBudget::take(WriteApi api, Time now) {
  const auto i = static_cast<std::size_t>(api);
  tokens_[i] = tokens(api, now);
  if (now > at_[i]) at_[i] = now;
  if (tokens_[i] < 1.0) {
    auto wait = std::chrono::duration<double>((1.0 - tokens_[i]) / refill_);
    return now + std::chrono::ceil<std::chrono::nanoseconds>(wait);
  }
  tokens_[i] -= 1.0;
  return std::nullopt;
}

void LocalWriteBudget::drain(WriteApi api, Time now) {
  const auto i = static_cast<std::size_t>(api);
  tokens_[i] = 0;
  if (now > at_[i]) at_[i] = now;
}

}  // namespace hanat::engine
