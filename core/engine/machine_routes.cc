// SPDX-License-Identifier: GPL-2.0-or-later
// Machine, part 3: the route bookkeeping: which writes to make (claim, hand over, rescue,
// failback), their damping and write economy (want(), strike(), the token bucket), EIP moves
// and recovery, and the allocation they follow. The per-state handlers are in machine.cc.

#include "core/engine/machine.h"

#include <algorithm>

#include "core/engine/allocation.h"

namespace hanat::engine {

// ---- routes -------------------------------------------------------------------------------

void Machine::reconcile(std::vector<Action>& out) {
  next_deadline_.reset();
  if (alloc_dirty_) {
    recompute_allocation();
    alloc_dirty_ = false;
  }
  report_foreign(out);
  for (auto& [peer, hold] : reclaims_) hold.seen = false;
  switch (state_) {
    case State::Standby:
    case State::Active:
      for (std::size_t i : order_) claim(tables_[i], out);
      maybe_recover(out);
      break;
    case State::Failing:
    case State::Unhealthy:
    case State::Draining:
    case State::Drained:
    case State::Leaving:
      for (std::size_t i : order_) hand_over_or_rescue(tables_[i], out);
      break;
    case State::Starting:
    case State::ExitReady:
      break;
  }
  settle_reclaims(out);
  if (state_ == State::ExitReady) return;
  move_eips(out);
  if (now_ >= next_describe_at_) {
    OpId op = next_op();
    out.push_back(DescribeRoutes{op});
    std::erase_if(describes_, [&](const auto& d) { return d.second + cfg_->hold_down_max < now_; });
    describes_[op] = now_;
    next_describe_at_ = now_ + cfg_->describe_interval;
  }
  consider(next_describe_at_);
  if (nat_wanted_ && !nat_op_) {
    if (now_ >= nat_retry_at_) {
      OpId op = next_op();
      out.push_back(ApplyNat{op, epoch_});
      pending_[op] = PendingOp{OpKind::Nat, epoch_, "", 0, {}, WriteApi::ReplaceRoute};
      nat_op_ = op;
      nat_wanted_ = false;
    } else {
      consider(nat_retry_at_);
    }
  }
  if (handover_deadline_) consider(*handover_deadline_);
}

void Machine::claim(TableState& t, std::vector<Action>& out) {
  if (t.alloc != self_ || self_ < 0 || !eligible_since_) return;
  const Target me = target_of(self_);
  const bool held = now_ < t.hold_until;
  const Time failback_at = *eligible_since_ + cfg_->failback_delay;
  const bool home = t.zone == members_[static_cast<std::size_t>(self_)].m.zone;
  const bool suspect = suspicion().has_value();
  for (std::size_t i = 0; i < t.routes.size(); ++i) {
    bool go = false;
    bool wait_failback = false;
    switch (holder(t.routes[i].belief)) {
      case Holder::Self:
      case Holder::UnknownMember:  // neither dead nor alive yet: not ours to take
        continue;
      case Holder::Orphan:  // blackhole or missing: someone must serve it
      case Holder::Gone:    // its member left the group: gone, not partitioned
        go = true;
        break;
      case Holder::Foreign:  // an operator's choice: never written unless adopted
        go = t.adopted;
        break;
      case Holder::DeadMember:
        // A self-suspect (every peer silent at once) takes a peer's routes only while its
        // own checks pass: the egress check Up (where configured) and the link up.
        go = !held && (!suspect || checks_pass());
        break;
      case Holder::LiveMember: {  // failback: only the home member, only with preempt
        // Never from a peer whose hanatd is away while its host answers: its nftables table
        // still NATs the traffic (DESIGN rule 10).
        int m = member_of(t.routes[i].belief);
        if (m >= 0 && agent_silent(members_[static_cast<std::size_t>(m)])) continue;
        wait_failback = cfg_->preempt && home;
        break;
      }
      case Holder::Fallback:  // leave the NAT Gateway once this member has proven stable
        wait_failback = true;
        break;
    }
    if (wait_failback) {
      if (now_ < failback_at) {
        consider(failback_at);
      } else {
        go = !held;
        // A live peer serves the table: its established flows are kept only if it hands
        // them over before the route moves (reclaim_may_go()). The fallback NAT Gateway
        // has nothing to hand over.
        const int m = member_of(t.routes[i].belief);
        if (go && m >= 0 && !reclaim_may_go(m, t.id)) continue;
      }
    }
    if (go) {
      want(t, i, me, out);
    } else if (held) {
      consider(t.hold_until);
    }
  }
}

bool Machine::reclaim_may_go(int m, const std::string& table) {
  if (cfg_->reclaim_wait <= Millis{0}) return true;
  const std::string& peer = members_[static_cast<std::size_t>(m)].m.instance_id;
  auto [it, fresh] = reclaims_.try_emplace(peer);
  ReclaimHold& h = it->second;
  if (fresh) h.until = now_ + cfg_->reclaim_wait;
  h.seen = true;
  if (std::find(h.tables.begin(), h.tables.end(), table) == h.tables.end()) {
    // A table that joins after the peer was asked (or after the hold ended): the peer is
    // asked again for the whole set, and the bound starts again for it.
    h.tables.push_back(table);
    if (h.announced) {
      h.announced = false;
      h.ready = false;
      h.until = now_ + cfg_->reclaim_wait;
    }
  }
  if (h.ready || now_ >= h.until) return true;
  consider(h.until);
  return false;
}

void Machine::settle_reclaims(std::vector<Action>& out) {
  for (auto it = reclaims_.begin(); it != reclaims_.end();) {
    ReclaimHold& h = it->second;
    // No table wants a failback from this peer any more (written, reallocated, or this
    // member stopped serving): the hold is over.
    if (!h.seen) {
      it = reclaims_.erase(it);
      continue;
    }
    if (!h.announced && !h.ready && now_ < h.until) {
      out.push_back(Reclaim{it->first, h.tables});
      h.announced = true;
    }
    ++it;
  }
}

void Machine::hand_over_or_rescue(TableState& t, std::vector<Action>& out) {
  const Target dest = alloc_target(t);
  for (std::size_t i = 0; i < t.routes.size(); ++i) {
    Holder h = holder(t.routes[i].belief);
    if (h == Holder::Self) {
      // Planned handover (claim-don't-push exception): the best healthy peer by the same
      // allocation rules, else the fallback; with neither, the route stays with us.
      if (dest.kind != TargetKind::Missing) want(t, i, dest, out);
    } else if (unserved(t, h) && t.alloc == kAllocFallback) {
      // Nobody healthy and the route serves nothing: the fallback is better than a blackhole.
      // Routes held by members this one thinks dead are left alone, since an unhealthy
      // member's view of its peers is not trusted.
      want(t, i, dest, out);
    }
  }
}

void Machine::want(TableState& t, std::size_t ri, const Target& target, std::vector<Action>& out) {
  RouteState& r = t.routes[ri];
  if (same_target(r.belief, target)) return;  // write economy: already there
  if (r.op) return;                           // in flight: never duplicated
  if (now_ < r.retry_at) {
    consider(r.retry_at);
    return;
  }
  RouteVerb verb = r.belief.kind == TargetKind::Missing ? RouteVerb::Create : RouteVerb::Replace;
  const WriteApi api = verb == RouteVerb::Create ? WriteApi::CreateRoute : WriteApi::ReplaceRoute;
  if (!take_token(api)) return;
  OpId op = next_op();
  out.push_back(WriteRoute{op, epoch_, verb, t.id, r.destination, target});
  pending_[op] = PendingOp{OpKind::Write, epoch_, t.id, ri, target, api};
  r.op = op;
  ++t.writes;
  ++writes_total_;
}

void Machine::abandon_claims(std::vector<Action>& out) {
  // This member's own data plane just failed: a route it was taking would now point at a
  // host that cannot NAT (DESIGN rule 6), and when the failure is a stall of its network
  // (frames dropped, carrier up), the request is still in the kernel's send queue: it would
  // reach EC2 whenever the path returns, taking the table from a peer that was alive all
  // along. Cancelled, it never does (ec2/http_client.cc: closing an abandoned connection
  // discards what was not sent). A claim that did reach EC2 shows in the next Describe, and
  // the handover that follows gives the route away like any other.
  for (auto& t : tables_) {
    for (auto& r : t.routes) {
      if (!r.op) continue;
      auto p = pending_.find(*r.op);
      if (p == pending_.end() || p->second.kind != OpKind::Write ||
          holder(p->second.target) != Holder::Self) {
        continue;
      }
      out.push_back(AbandonWrite{*r.op, t.id, r.destination});
      pending_.erase(p);
      r.op.reset();
    }
  }
}

bool Machine::claiming(const RouteState& r) const {
  if (holder(r.belief) == Holder::Self) return true;
  if (!r.op) return false;
  auto p = pending_.find(*r.op);
  return p != pending_.end() && holder(p->second.target) == Holder::Self;
}

void Machine::move_eips(std::vector<Action>& out) {
  const std::string* own_zone =
      self_ >= 0 ? &members_[static_cast<std::size_t>(self_)].m.zone : nullptr;
  for (EipState& e : eips_) {
    const bool home = own_zone != nullptr && *own_zone == e.eip.zone;
    // The anchor is the zone's first table by id; every member picks the same one, so one
    // EIP never has two members claiming it unless they fight over the anchor route itself,
    // which damping bounds.
    const TableState* anchor = nullptr;
    for (const auto& t : tables_) {
      if (t.zone == e.eip.zone && (anchor == nullptr || t.id < anchor->id)) anchor = &t;
    }
    if (anchor == nullptr || anchor->routes.empty() || !claiming(anchor->routes.front())) {
      // Whoever serves the zone now moves it (AllowReassociation); this host lets go of the
      // private IP and the SNAT rule it kept for the zone.
      if (e.held) out.push_back(ReleaseEip{e.eip.allocation_id, e.eip.zone, home});
      e.held = false;
      continue;
    }
    // Only after the route write succeeded: until then the zone's traffic still leaves
    // through the previous member, and an EIP moved ahead of the route would strand the
    // flows that member is still translating with it. A write in flight (or one that
    // failed) leaves the belief on the old target.
    const RouteState& r = anchor->routes.front();
    if (r.op || holder(r.belief) != Holder::Self) continue;
    if (e.held || e.op || !serving()) continue;
    if (now_ < e.retry_at) {
      consider(e.retry_at);
      continue;
    }
    if (!take_token(WriteApi::AssociateAddress)) continue;
    OpId op = next_op();
    out.push_back(AssociateAddress{op, epoch_, e.eip.allocation_id, e.eip.zone, home});
    pending_[op] =
        PendingOp{OpKind::Eip, epoch_, e.eip.allocation_id, 0, {}, WriteApi::AssociateAddress};
    e.op = op;
  }
}

void Machine::maybe_recover(std::vector<Action>& out) {
  if (cfg_->recovery == RecoveryAction::None || self_ < 0) return;
  // This member's own data plane and link must be healthy (DESIGN rules 6 and 8): a member
  // that cannot reach anything sees every peer fail. serving() already means the NAT is
  // verified and the egress check has not failed.
  if (!serving() || !healthy_self() || !link_ok_) return;
  // Two members must never fence each other, whatever their (possibly partitioned) views.
  // Members are ranked by (launch time, id); a member recovers only peers ranked after it,
  // and only while no healthy peer ranks before it. Of any pair, only one can ever act on
  // the other. The cost: the oldest member is never recovered by a peer (EC2 auto-recovery
  // or its ASG does that).
  auto rank = [&](int i) {
    const Member& m = members_[static_cast<std::size_t>(i)].m;
    return std::pair{m.launch_time, std::string_view{m.instance_id}};
  };
  for (std::size_t i = 0; i < members_.size(); ++i) {
    int idx = static_cast<int>(i);
    if (idx != self_ && members_[i].health.state() == Health::Up && rank(idx) < rank(self_)) {
      return;
    }
  }
  // Self-suspicion: every peer fell silent at once. Only an egress check that passed from
  // before the first of them fell silent until now clears it.
  if (auto first = suspicion(); first && !confirmed_since(*first)) return;
  for (std::size_t i = 0; i < members_.size(); ++i) {
    int idx = static_cast<int>(i);
    MemberState& m = members_[i];
    // Never a peer that answers anything: its agent saying down or draining, or its host
    // answering ICMP or TCP while its hanatd is stopped (DESIGN rules 8 and 10).
    if (idx == self_ || !silent(m)) continue;
    if (rank(idx) < rank(self_)) continue;
    Time due = *m.silent_since + cfg_->recovery_after;
    auto last = last_recovery_.find(m.m.instance_id);
    if (last != last_recovery_.end()) due = std::max(due, last->second + cfg_->recovery_cooldown);
    if (now_ < due) {
      consider(due);
      continue;
    }
    OpId op = next_op();
    out.push_back(RecoverPeer{op, epoch_, m.m.instance_id, cfg_->recovery});
    pending_[op] = PendingOp{OpKind::Recover, epoch_, "", 0, {}, WriteApi::ReplaceRoute};
    last_recovery_[m.m.instance_id] = now_;
    consider(now_ + cfg_->recovery_cooldown);
  }
}

bool Machine::every_kind_failed(const MemberState& m) const {
  bool any = false;
  for (int p = 0; p < kProbePaths; ++p) {
    if (!m.health.probed(static_cast<ProbePath>(p))) continue;
    for (ProbeKind k : cfg_->probe_kinds) {
      any = true;
      if (m.fails_since_heard[static_cast<std::size_t>(p)][static_cast<std::size_t>(k)] <
          cfg_->peer_thresholds.fall) {
        return false;
      }
    }
  }
  return any;
}

bool Machine::silent(const MemberState& m) const {
  return m.silent_since.has_value() && m.health.state() == Health::Down;
}

bool Machine::agent_silent(const MemberState& m) const {
  if (!agent_probed() || !m.agent_answered || m.health.reports_down()) return false;
  bool any = false;
  for (int p = 0; p < kProbePaths; ++p) {
    auto path = static_cast<ProbePath>(p);
    if (!m.health.probed(path)) continue;
    any = true;
    if (m.agent_fails[static_cast<std::size_t>(p)] < cfg_->peer_thresholds.fall) return false;
  }
  return any;
}

std::optional<Time> Machine::suspicion() const {
  std::optional<Time> first;
  std::optional<Time> last;
  for (std::size_t i = 0; i < members_.size(); ++i) {
    if (static_cast<int>(i) == self_) continue;
    const MemberState& m = members_[i];
    if (!silent(m)) return std::nullopt;  // one peer heard: our own path works
    if (!first || *m.silent_since < *first) first = m.silent_since;
    if (!last || *m.silent_since > *last) last = m.silent_since;
  }
  if (!first || *last - *first > cfg_->suspect_window) return std::nullopt;
  return first;
}

bool Machine::checks_pass() const {
  if (!link_ok_ || !healthy_self()) return false;
  return !cfg_->egress_check || egress_confirmed_;
}

void Machine::strike(TableState& t, const std::string& writer) {
  // Strikes are forgotten after a quiet period. It must outlast one rival hold-down plus the
  // Describes that reveal both sides' writes, or a partition would reset to the short
  // hold-down every cycle instead of settling on hold_down_max.
  const auto quiet = 2 * (cfg_->hold_down_max + cfg_->describe_interval);
  if (t.last_strike && now_ - t.hold_until > quiet) t.strikes = 0;
  ++t.strikes;
  t.last_strike = now_;
  Millis hold = cfg_->hold_down_base;
  for (int i = 1; i < t.strikes && hold < cfg_->hold_down_max; ++i) hold *= 2;
  hold = std::min(hold, cfg_->hold_down_max);
  t.hold_until = now_ + hold;
  t.held_by = writer;
}

void Machine::recompute_allocation() {
  std::vector<AllocMember> healthy;
  std::vector<int> index;
  for (std::size_t i = 0; i < members_.size(); ++i) {
    int idx = static_cast<int>(i);
    // A peer is allocated tables only once its hanatd has answered (DESIGN rule 9): an
    // instance that carries the group tag but runs no hanatd answers ICMP, yet would never
    // claim what it is given. Without agent probes there is no way to tell; every Up peer
    // counts, as before.
    // Nor one whose agent answered before but is silent now (hanatd stopped or restarting,
    // the host still answering): a route given to it would reach a host that may do no NAT.
    bool up = idx == self_ ? serving()
                           : members_[i].health.state() == Health::Up &&
                                 (members_[i].agent_answered || !agent_probed()) &&
                                 !agent_silent(members_[i]);
    if (!up) continue;
    healthy.push_back({members_[i].m.instance_id, members_[i].m.zone, members_[i].m.launch_time});
    index.push_back(idx);
  }
  std::vector<AllocTable> tables;
  tables.reserve(tables_.size());
  for (const auto& t : tables_) tables.push_back({t.id, t.zone});
  std::vector<int> a = allocate(healthy, tables, !cfg_->fallback_nat_gateway.empty());
  for (std::size_t i = 0; i < tables_.size(); ++i) {
    tables_[i].alloc = a[i] >= 0 ? index[static_cast<std::size_t>(a[i])] : a[i];
  }
}

void Machine::report_foreign(std::vector<Action>& out) {
  for (std::size_t i : order_) {
    TableState& t = tables_[i];
    for (RouteState& r : t.routes) {
      bool foreign = holder(r.belief) == Holder::Foreign;
      if (foreign == r.foreign_reported) continue;
      r.foreign_reported = foreign;
      out.push_back(RouteForeign{t.id, r.destination, r.belief, foreign});
    }
  }
}

// ---- helpers ------------------------------------------------------------------------------

bool Machine::agent_probed() const {
  return std::find(cfg_->probe_kinds.begin(), cfg_->probe_kinds.end(), ProbeKind::Agent) !=
         cfg_->probe_kinds.end();
}

bool Machine::owns_any() const {
  for (const auto& t : tables_) {
    for (const auto& r : t.routes) {
      if (claiming(r)) return true;
    }
  }
  return false;
}

bool Machine::handover_pending() const {
  for (const auto& t : tables_) {
    bool has_dest = alloc_target(t).kind != TargetKind::Missing;
    for (const auto& r : t.routes) {
      if (r.op) return true;
      if (has_dest && holder(r.belief) == Holder::Self) return true;
    }
  }
  return false;
}

Machine::Holder Machine::holder(const Target& t) const {
  // DESIGN rule 3: hanat writes a route only when it points at a member, at the fallback, is
  // a blackhole or is missing. Everything else was put there by an operator on purpose.
  if (t.kind == TargetKind::Missing) return Holder::Orphan;
  if (t.propagated) return Holder::Foreign;
  switch (t.kind) {
    case TargetKind::Missing:
    case TargetKind::Blackhole:
      return Holder::Orphan;
    case TargetKind::NatGateway:
      return !t.id.empty() && t.id == cfg_->fallback_nat_gateway ? Holder::Fallback
                                                                 : Holder::Foreign;
    case TargetKind::Instance:
    case TargetKind::Eni:
      break;
    default:
      return Holder::Foreign;
  }
  int m = member_of(t);
  if (m < 0) return departed_.contains(t.id) ? Holder::Gone : Holder::Foreign;
  if (m == self_) return Holder::Self;
  switch (members_[static_cast<std::size_t>(m)].health.state()) {
    case Health::Up:
      return Holder::LiveMember;
    case Health::Down:
      return Holder::DeadMember;
    case Health::Unknown:
      return Holder::UnknownMember;
  }
  return Holder::UnknownMember;
}

int Machine::member_of(const Target& t) const {
  if (t.kind != TargetKind::Instance && t.kind != TargetKind::Eni) return -1;
  auto it = member_by_target_.find(t.id);
  if (it == member_by_target_.end()) return -1;
  const Member& m = members_[static_cast<std::size_t>(it->second)].m;
  if (t.kind == TargetKind::Instance ? m.instance_id != t.id : m.eni_id != t.id) return -1;
  return it->second;
}

Target Machine::target_of(int member) const {
  const Member& m = members_[static_cast<std::size_t>(member)].m;
  if (!m.eni_id.empty()) return Target{TargetKind::Eni, m.eni_id};
  return Target{TargetKind::Instance, m.instance_id};
}

Target Machine::alloc_target(const TableState& t) const {
  if (t.alloc >= 0) return target_of(t.alloc);
  if (t.alloc == kAllocFallback) return Target{TargetKind::NatGateway, cfg_->fallback_nat_gateway};
  return Target{};
}

bool Machine::same_target(const Target& a, const Target& b) const {
  if (a == b) return true;
  int m = member_of(a);
  return m >= 0 && m == member_of(b);
}

Millis Machine::backoff(int attempts) const {
  Millis d = cfg_->retry_base;
  for (int i = 1; i < attempts && d < cfg_->retry_max; ++i) d *= 2;
  return std::min(d, cfg_->retry_max);
}

void Machine::consider(Time t) {
  if (!next_deadline_ || t < *next_deadline_) next_deadline_ = t;
}

bool Machine::take_token(WriteApi api) {
  if (auto at = budget_->take(api, now_)) {
    consider(*at);
    return false;
  }
  return true;
}

}  // namespace hanat::engine
