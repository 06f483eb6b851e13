#include "core/engine/machine.h"

#include <algorithm>
#include <cmath>
#include <type_traits>

#include "core/engine/allocation.h"

namespace hanat::engine {
namespace {

Time time_of(const Event& ev) {
  return std::visit(
      [](const auto& e) -> Time {
        if constexpr (std::is_same_v<std::decay_t<decltype(e)>, Tick>) {
          return e.now;
        } else {
          return e.at;
        }
      },
      ev);
}

std::optional<Reason> exit_request(const Event& ev) {
  if (std::holds_alternative<Shutdown>(ev)) return Reason::ShutdownRequested;
  if (std::holds_alternative<TerminationNotice>(ev)) return Reason::TerminationNotice;
  return std::nullopt;
}

std::optional<bool> drain_request(const Event& ev) {
  if (const auto* d = std::get_if<Drain>(&ev)) return d->on;
  return std::nullopt;
}

bool handing_over(State s) {
  return s == State::Failing || s == State::Draining || s == State::Leaving;
}

}  // namespace

Machine::Machine(std::shared_ptr<const Config> cfg, Time start)
    : cfg_(std::move(cfg)), now_(start), state_since_(start) {
  index_config();
  tokens_ = static_cast<double>(cfg_->write_burst);
  tokens_at_ = start;
  next_describe_at_ = start;
}

// ---- handle -------------------------------------------------------------------------------

std::vector<Action> Machine::handle(const Event& ev) {
  std::vector<Action> out;
  now_ = std::max(now_, time_of(ev));
  absorb(ev, out);
  if (auto t = decide(ev)) enter(*t, out);
  bool due = next_deadline_ && now_ >= *next_deadline_;
  if (dirty_ || due) {
    reconcile(out);
    if (auto t = after_reconcile()) {
      enter(*t, out);
      reconcile(out);
    }
    dirty_ = false;
  }
  return out;
}

// ---- facts --------------------------------------------------------------------------------

void Machine::absorb(const Event& ev, std::vector<Action>& out) {
  if (const auto* p = std::get_if<ProbeResult>(&ev)) {
    absorb_probe(*p, out);
  } else if (const auto* o = std::get_if<RoutesObserved>(&ev)) {
    absorb_routes(*o);
  } else if (const auto* d = std::get_if<Ec2Done>(&ev)) {
    absorb_ec2(*d);
  } else if (const auto* n = std::get_if<NatApplied>(&ev)) {
    absorb_nat(*n);
  } else if (const auto* s = std::get_if<SelfHealth>(&ev)) {
    if (s->ok != egress_ok_) dirty_ = true;
    egress_ok_ = s->ok;
    egress_detail_ = s->detail;
  } else if (const auto* c = std::get_if<ConfigChanged>(&ev)) {
    absorb_config(*c);
  } else if (!std::holds_alternative<Tick>(ev)) {
    dirty_ = true;  // drain, shutdown, termination: decided by the state handlers
  }
}

void Machine::absorb_probe(const ProbeResult& r, std::vector<Action>& out) {
  auto it = member_by_target_.find(r.peer);
  if (it == member_by_target_.end() || it->second == self_) return;
  MemberState& m = members_[static_cast<std::size_t>(it->second)];
  Health before = m.health.state();
  if (m.health.record(r) != HealthChange::Changed) return;
  Health after = m.health.state();
  out.push_back(PeerChanged{m.m.instance_id, before, after, m.health.why()});
  m.health_since = now_;
  if (after == Health::Down) {
    m.down_since = now_;
    // A hold-down assumes the member that rewrote our route is alive. Once it is seen going
    // down, that evidence is void: its tables are taken at once.
    for (auto& t : tables_) {
      if (t.held_by == m.m.instance_id) {
        t.hold_until = {};
        t.held_by.clear();
      }
    }
  } else {
    m.down_since.reset();
  }
  alloc_dirty_ = true;
  dirty_ = true;
}

void Machine::absorb_routes(const RoutesObserved& o) {
  Time sent = o.at;
  if (auto d = describes_.find(o.op); o.op != 0 && d != describes_.end()) {
    sent = d->second;
    describes_.erase(d);
  }
  observed_ = true;
  // src[i] is the observation of tables_[i]. In steady state the Describe lists the same
  // tables in the same order and nothing is rebuilt.
  std::vector<const ObservedTable*> src;
  src.reserve(o.tables.size());
  bool same = o.tables.size() == tables_.size();
  for (std::size_t i = 0; same && i < tables_.size(); ++i) same = o.tables[i].id == tables_[i].id;
  if (same) {
    for (const ObservedTable& ot : o.tables) src.push_back(&ot);
  } else {
    relayout(o, src);
  }
  bool reorder = !same;
  for (std::size_t i = 0; i < tables_.size(); ++i) {
    TableState& t = tables_[i];
    const ObservedTable& ot = *src[i];
    if (t.zone != ot.zone) {
      t.zone = ot.zone;
      alloc_dirty_ = true;
    }
    if (t.priority != ot.priority) {
      t.priority = ot.priority;
      reorder = true;
    }
    bool struck = false;
    for (RouteState& r : t.routes) {
      Target seen;  // Missing unless listed
      for (const ObservedRoute& orr : ot.routes) {
        if (orr.destination == r.destination) seen = orr.target;
      }
      bool fresh =
          !r.op && !(r.last_write_done && *r.last_write_done + cfg_->observe_settle > sent);
      if (!fresh || seen == r.belief) {
        if (fresh && r.unsure) {
          r.unsure = false;
          r.retry_at = {};
        }
        continue;
      }
      if (r.unsure) {
        r.unsure = false;
        r.retry_at = {};
      }
      // Damping: a route this member holds, rewritten by someone else, means the writer is
      // alive. Missing or blackhole routes were not written by a rival, so they do not count.
      if (!struck && serving() && holder(r.belief) == Holder::Self &&
          holder(seen) != Holder::Self && seen.kind != TargetKind::Missing &&
          seen.kind != TargetKind::Blackhole) {
        int writer = member_of(seen);
        strike(t, writer >= 0 ? members_[static_cast<std::size_t>(writer)].m.instance_id : "");
        struck = true;
      }
      r.belief = std::move(seen);
    }
  }
  if (reorder) {
    order_.resize(tables_.size());
    for (std::size_t i = 0; i < tables_.size(); ++i) order_[i] = i;
    std::sort(order_.begin(), order_.end(), [&](std::size_t a, std::size_t b) {
      if (tables_[a].priority != tables_[b].priority) {
        return tables_[a].priority > tables_[b].priority;
      }
      return tables_[a].id < tables_[b].id;
    });
  }
  dirty_ = true;
}

void Machine::relayout(const RoutesObserved& o, std::vector<const ObservedTable*>& src) {
  std::vector<TableState> next;
  next.reserve(o.tables.size());
  std::unordered_map<std::string_view, bool> seen_ids;
  for (const ObservedTable& ot : o.tables) {
    if (!seen_ids.emplace(ot.id, true).second) continue;  // listed twice: the first one counts
    TableState t;
    if (auto old = table_by_id_.find(ot.id); old != table_by_id_.end()) {
      t = std::move(tables_[old->second]);
    } else {
      t.id = ot.id;
      t.zone = ot.zone;
      t.priority = ot.priority;
      for (const std::string& dest : cfg_->destinations) {
        RouteState r;
        r.destination = dest;
        t.routes.push_back(std::move(r));
      }
      // A table that vanished from an earlier Describe may still have a write in flight:
      // re-attach it, so that it is not written twice.
      for (const auto& [op, p] : pending_) {
        if (p.kind == OpKind::Write && p.table == t.id && p.route < t.routes.size()) {
          t.routes[p.route].op = op;
        }
      }
    }
    next.push_back(std::move(t));
    src.push_back(&ot);
  }
  tables_ = std::move(next);
  table_by_id_.clear();
  for (std::size_t i = 0; i < tables_.size(); ++i) table_by_id_[tables_[i].id] = i;
  alloc_dirty_ = true;
}

void Machine::absorb_ec2(const Ec2Done& d) {
  auto it = pending_.find(d.op);
  if (it == pending_.end()) {
    ++stale_completions_;
    return;
  }
  PendingOp p = std::move(it->second);
  pending_.erase(it);
  dirty_ = true;
  if (p.kind == OpKind::Eip) {
    for (auto& e : eips_) {
      if (e.op != d.op) continue;
      e.op.reset();
      if (p.epoch != epoch_ || d.epoch != p.epoch) {
        ++stale_completions_;
      } else if (d.outcome == Ec2Outcome::Ok) {
        e.held = true;
        e.attempts = 0;
      } else {
        ++e.attempts;
        e.retry_at =
            now_ + (d.outcome == Ec2Outcome::Fatal ? cfg_->retry_max : backoff(e.attempts));
      }
    }
    return;
  }
  if (p.kind != OpKind::Write) return;
  RouteState* r = nullptr;
  if (auto t = table_by_id_.find(p.table); t != table_by_id_.end()) {
    auto& routes = tables_[t->second].routes;
    if (p.route < routes.size() && routes[p.route].op == d.op) r = &routes[p.route];
  }
  if (r != nullptr) r->op.reset();
  if (p.epoch != epoch_ || d.epoch != p.epoch || r == nullptr) {
    // Requested under an older configuration (or for a table that is gone): its outcome is
    // not trusted. The route waits for a fresh Describe instead of being written twice.
    ++stale_completions_;
    if (r != nullptr) {
      r->unsure = true;
      r->retry_at = now_ + cfg_->describe_interval;
    }
    next_describe_at_ = now_;
    return;
  }
  switch (d.outcome) {
    case Ec2Outcome::Ok:
      r->belief = p.target;
      r->attempts = 0;
      r->last_write_done = now_;
      r->last_error.clear();
      // Re-read soon after a write so that a concurrent writer is noticed within seconds,
      // not a whole describe interval later. Not at once: EC2 reads are eventually
      // consistent, and a Describe sent within observe_settle of the write is not believed.
      next_describe_at_ = std::min(next_describe_at_, now_ + cfg_->observe_settle);
      return;
    case Ec2Outcome::Throttled:
      // The account's mutating bucket is empty: stop spending ours too, so retries of a large
      // failover trickle at the refill rate instead of storming (AWS "Request throttling").
      tokens_ = 0;
      tokens_at_ = now_;
      [[fallthrough]];
    case Ec2Outcome::Retryable:
      ++r->attempts;
      r->retry_at = now_ + backoff(r->attempts);
      r->last_error = d.code.empty() ? "retryable error" : d.code;
      return;
    case Ec2Outcome::Fatal:
      ++r->attempts;
      r->last_error = d.code;
      // ReplaceRoute on a destination that has no route fails with InvalidRoute.NotFound and
      // CreateRoute on an existing one with RouteAlreadyExists: switch verb and retry.
      if (d.code == "InvalidRoute.NotFound") {
        r->belief = Target{};
        r->retry_at = now_ + backoff(r->attempts);
      } else if (d.code == "RouteAlreadyExists") {
        r->belief = Target{TargetKind::Other, ""};
        r->retry_at = now_ + backoff(r->attempts);
      } else {
        r->retry_at = now_ + cfg_->retry_max;
      }
      return;
  }
}

void Machine::absorb_nat(const NatApplied& n) {
  auto it = pending_.find(n.op);
  if (it == pending_.end() || it->second.kind != OpKind::Nat) {
    ++stale_completions_;
    return;
  }
  Epoch epoch = it->second.epoch;
  pending_.erase(it);
  if (nat_op_ == n.op) nat_op_.reset();
  if (epoch != epoch_ || n.epoch != epoch) {
    ++stale_completions_;  // a newer ApplyNat is due (nat_wanted_ was set by the reload)
    return;
  }
  nat_ok_ = n.ok;
  nat_failed_ = !n.ok;
  if (!n.ok) {
    nat_wanted_ = true;
    nat_retry_at_ = now_ + cfg_->nat_retry;
  }
  dirty_ = true;
}

void Machine::absorb_config(const ConfigChanged& c) {
  if (!c.cfg) return;
  cfg_ = c.cfg;
  ++epoch_;
  index_config();
  // Re-apply NAT and re-read the routes under the new configuration. Writes in flight keep
  // their marker until their (now stale) completion arrives, so nothing is written twice.
  nat_wanted_ = true;
  nat_op_.reset();  // one in flight completes as stale
  nat_retry_at_ = now_;
  next_describe_at_ = now_;
  refill_tokens();
  dirty_ = true;
}

void Machine::index_config() {
  std::vector<MemberState> next;
  next.reserve(cfg_->members.size());
  for (const Member& m : cfg_->members) {
    MemberState ms;
    auto old = std::find_if(members_.begin(), members_.end(),
                            [&](const MemberState& o) { return o.m.instance_id == m.instance_id; });
    if (old != members_.end()) {
      ms = std::move(*old);
    } else {
      ms.health_since = now_;
    }
    ms.m = m;
    Health before = ms.health.state();
    ms.health.configure(cfg_->peer_thresholds, cfg_->probe_kinds);
    if (ms.health.state() != before) ms.health_since = now_;
    next.push_back(std::move(ms));
  }
  members_ = std::move(next);
  member_by_target_.clear();
  self_ = -1;
  for (std::size_t i = 0; i < members_.size(); ++i) {
    int idx = static_cast<int>(i);
    member_by_target_[members_[i].m.instance_id] = idx;
    if (!members_[i].m.eni_id.empty()) member_by_target_[members_[i].m.eni_id] = idx;
    if (members_[i].m.instance_id == cfg_->self) self_ = idx;
  }
  for (auto& t : tables_) {
    std::vector<RouteState> routes;
    for (const std::string& dest : cfg_->destinations) {
      auto old = std::find_if(t.routes.begin(), t.routes.end(),
                              [&](const RouteState& r) { return r.destination == dest; });
      if (old != t.routes.end()) {
        routes.push_back(std::move(*old));
      } else {
        RouteState r;
        r.destination = dest;
        r.unsure = true;  // unknown until the next Describe
        r.retry_at = now_ + cfg_->describe_interval;
        routes.push_back(std::move(r));
      }
    }
    t.routes = std::move(routes);
  }
  // Pending ops refer to routes by index; re-point them after destinations changed.
  for (auto& [op, p] : pending_) {
    if (p.kind != OpKind::Write) continue;
    auto t = table_by_id_.find(p.table);
    if (t == table_by_id_.end()) continue;
    const auto& routes = tables_[t->second].routes;
    p.route = routes.size();
    for (std::size_t i = 0; i < routes.size(); ++i) {
      if (routes[i].op == op) p.route = i;
    }
  }
  std::vector<EipState> eips;
  for (const ZoneEip& z : cfg_->eips) {
    EipState e;
    auto old = std::find_if(eips_.begin(), eips_.end(), [&](const EipState& o) {
      return o.eip.allocation_id == z.allocation_id && o.eip.zone == z.zone;
    });
    if (old != eips_.end()) e = std::move(*old);
    e.eip = z;
    eips.push_back(std::move(e));
  }
  eips_ = std::move(eips);
  tokens_ = std::min(tokens_, static_cast<double>(cfg_->write_burst));
  alloc_dirty_ = true;
}

// ---- per-state handlers -------------------------------------------------------------------

std::optional<Machine::Transition> Machine::decide(const Event& ev) const {
  switch (state_) {
    case State::Starting:
      return on_starting(ev);
    case State::Standby:
    case State::Active:
      return on_serving(ev);
    case State::Failing:
    case State::Draining:
    case State::Leaving:
      return on_handing_over(ev);
    case State::Unhealthy:
      return on_unhealthy(ev);
    case State::Drained:
      return on_drained(ev);
    case State::ExitReady:
      return std::nullopt;
  }
  return std::nullopt;
}

std::optional<Machine::Transition> Machine::on_starting(const Event& ev) const {
  if (auto r = exit_request(ev)) return Transition{State::Leaving, *r, ""};
  if (drain_request(ev) == true) return Transition{State::Draining, Reason::DrainRequested, ""};
  if (nat_failed_) return Transition{State::Unhealthy, Reason::NatFailed, ""};
  if (!egress_ok_) return Transition{State::Unhealthy, Reason::SelfUnhealthy, egress_detail_};
  if (healthy_self()) return Transition{State::Standby, Reason::Ready, ""};
  return std::nullopt;
}

std::optional<Machine::Transition> Machine::on_serving(const Event& ev) const {
  if (auto r = exit_request(ev)) return Transition{State::Leaving, *r, ""};
  if (drain_request(ev) == true) return Transition{State::Draining, Reason::DrainRequested, ""};
  if (!nat_ok_) return Transition{State::Failing, Reason::NatFailed, ""};
  if (!egress_ok_) return Transition{State::Failing, Reason::SelfUnhealthy, egress_detail_};
  return std::nullopt;
}

std::optional<Machine::Transition> Machine::on_handing_over(const Event& ev) const {
  if (auto r = exit_request(ev); r && state_ != State::Leaving) {
    return Transition{State::Leaving, *r, ""};
  }
  auto drain = drain_request(ev);
  if (drain == true && state_ == State::Failing) {
    return Transition{State::Draining, Reason::DrainRequested, ""};
  }
  if (drain == false && state_ == State::Draining) {
    // Routes already handed over come back through failback, after failback_delay.
    if (healthy_self()) return Transition{State::Standby, Reason::Undrained, ""};
    return Transition{State::Failing, Reason::Undrained, ""};
  }
  return std::nullopt;
}

std::optional<Machine::Transition> Machine::on_unhealthy(const Event& ev) const {
  if (auto r = exit_request(ev)) return Transition{State::Leaving, *r, ""};
  if (drain_request(ev) == true) return Transition{State::Draining, Reason::DrainRequested, ""};
  if (healthy_self()) return Transition{State::Standby, Reason::SelfHealthy, ""};
  return std::nullopt;
}

std::optional<Machine::Transition> Machine::on_drained(const Event& ev) const {
  if (auto r = exit_request(ev)) return Transition{State::Leaving, *r, ""};
  if (drain_request(ev) == false) {
    return Transition{healthy_self() ? State::Standby : State::Unhealthy, Reason::Undrained, ""};
  }
  return std::nullopt;
}

std::optional<Machine::Transition> Machine::after_reconcile() const {
  switch (state_) {
    case State::Standby:
      if (owns_any()) return Transition{State::Active, Reason::Claimed, ""};
      return std::nullopt;
    case State::Active:
      if (!owns_any()) return Transition{State::Standby, Reason::Released, ""};
      return std::nullopt;
    case State::Failing:
    case State::Draining:
    case State::Leaving: {
      State done = state_ == State::Failing    ? State::Unhealthy
                   : state_ == State::Draining ? State::Drained
                                               : State::ExitReady;
      if (!handover_pending()) return Transition{done, Reason::HandoverComplete, ""};
      if (handover_deadline_ && now_ >= *handover_deadline_) {
        return Transition{done, Reason::HandoverTimeout, ""};
      }
      return std::nullopt;
    }
    default:
      return std::nullopt;
  }
}

void Machine::enter(const Transition& t, std::vector<Action>& out) {
  if (t.next == state_) return;
  out.push_back(Notify{state_, t.next, t.reason, t.detail});
  bool was_serving = serving();
  bool was_handing_over = handing_over(state_);
  state_ = t.next;
  state_since_ = now_;
  if (serving() && !was_serving) eligible_since_ = now_;
  if (!serving()) eligible_since_.reset();
  if (handing_over(state_) && !was_handing_over) {
    handover_deadline_ = now_ + cfg_->handover_deadline;
  }
  if (!handing_over(state_)) handover_deadline_.reset();
  if (state_ == State::ExitReady) out.push_back(ExitReady{t.reason});
  alloc_dirty_ = true;  // self joins or leaves the healthy set
  dirty_ = true;
}

// ---- routes -------------------------------------------------------------------------------

void Machine::reconcile(std::vector<Action>& out) {
  refill_tokens();
  next_deadline_.reset();
  if (alloc_dirty_) {
    recompute_allocation();
    alloc_dirty_ = false;
  }
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
      pending_[op] = PendingOp{OpKind::Nat, epoch_, "", 0, {}};
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
  for (std::size_t i = 0; i < t.routes.size(); ++i) {
    bool go = false;
    bool wait_failback = false;
    switch (holder(t.routes[i].belief)) {
      case Holder::Self:
      case Holder::UnknownMember:  // neither dead nor alive yet: not ours to take
        continue;
      case Holder::Orphan:  // blackhole, missing, not a member: someone must serve it
        go = true;
        break;
      case Holder::DeadMember:
        go = !held;
        break;
      case Holder::LiveMember:  // failback: only the home member, only with preempt
        wait_failback = cfg_->preempt && home;
        break;
      case Holder::Fallback:  // leave the NAT Gateway once this member has proven stable
        wait_failback = true;
        break;
    }
    if (wait_failback) {
      if (now_ < failback_at) {
        consider(failback_at);
      } else {
        go = !held;
      }
    }
    if (go) {
      want(t, i, me, out);
    } else if (held) {
      consider(t.hold_until);
    }
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
    } else if (h == Holder::Orphan && t.alloc == kAllocFallback) {
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
  if (!take_token()) return;
  OpId op = next_op();
  RouteVerb verb = r.belief.kind == TargetKind::Missing ? RouteVerb::Create : RouteVerb::Replace;
  out.push_back(WriteRoute{op, epoch_, verb, t.id, r.destination, target});
  pending_[op] = PendingOp{OpKind::Write, epoch_, t.id, ri, target};
  r.op = op;
  ++t.writes;
  ++writes_total_;
}

bool Machine::claiming(const RouteState& r) const {
  if (holder(r.belief) == Holder::Self) return true;
  if (!r.op) return false;
  auto p = pending_.find(*r.op);
  return p != pending_.end() && holder(p->second.target) == Holder::Self;
}

void Machine::move_eips(std::vector<Action>& out) {
  for (EipState& e : eips_) {
    // The anchor is the zone's first table by id; every member picks the same one, so one
    // EIP never has two members claiming it unless they fight over the anchor route itself,
    // which damping bounds.
    const TableState* anchor = nullptr;
    for (const auto& t : tables_) {
      if (t.zone == e.eip.zone && (anchor == nullptr || t.id < anchor->id)) anchor = &t;
    }
    if (anchor == nullptr || anchor->routes.empty() || !claiming(anchor->routes.front())) {
      e.held = false;  // whoever serves the zone now moves it (AllowReassociation)
      continue;
    }
    if (e.held || e.op || !serving()) continue;
    if (now_ < e.retry_at) {
      consider(e.retry_at);
      continue;
    }
    if (!take_token()) continue;
    OpId op = next_op();
    out.push_back(AssociateAddress{op, epoch_, e.eip.allocation_id, e.eip.zone});
    pending_[op] = PendingOp{OpKind::Eip, epoch_, e.eip.allocation_id, 0, {}};
    e.op = op;
  }
}

void Machine::maybe_recover(std::vector<Action>& out) {
  if (cfg_->recovery == RecoveryAction::None || self_ < 0) return;
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
  for (std::size_t i = 0; i < members_.size(); ++i) {
    int idx = static_cast<int>(i);
    MemberState& m = members_[i];
    if (idx == self_ || m.health.state() != Health::Down || !m.down_since) continue;
    if (rank(idx) < rank(self_)) continue;
    Time due = *m.down_since + cfg_->recovery_after;
    if (m.last_recovery) due = std::max(due, *m.last_recovery + cfg_->recovery_cooldown);
    if (now_ < due) {
      consider(due);
      continue;
    }
    OpId op = next_op();
    out.push_back(RecoverPeer{op, epoch_, m.m.instance_id, cfg_->recovery});
    pending_[op] = PendingOp{OpKind::Recover, epoch_, "", 0, {}};
    m.last_recovery = now_;
    consider(now_ + cfg_->recovery_cooldown);
  }
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
    bool up = idx == self_ ? serving() : members_[i].health.state() == Health::Up;
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

// ---- helpers ------------------------------------------------------------------------------

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
  switch (t.kind) {
    case TargetKind::Missing:
    case TargetKind::Blackhole:
    case TargetKind::Other:
      return Holder::Orphan;
    case TargetKind::NatGateway:
      return !t.id.empty() && t.id == cfg_->fallback_nat_gateway ? Holder::Fallback
                                                                 : Holder::Orphan;
    case TargetKind::Instance:
    case TargetKind::Eni:
      break;
  }
  int m = member_of(t);
  if (m < 0) return Holder::Orphan;
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

bool Machine::take_token() {
  if (tokens_ < 1.0) {
    auto wait = std::chrono::duration<double>((1.0 - tokens_) / cfg_->write_refill_per_s);
    consider(now_ + std::chrono::ceil<std::chrono::nanoseconds>(wait));
    return false;
  }
  tokens_ -= 1.0;
  return true;
}

void Machine::refill_tokens() {
  double burst = static_cast<double>(cfg_->write_burst);
  double elapsed = std::chrono::duration<double>(now_ - tokens_at_).count();
  tokens_ = std::min(burst, tokens_ + elapsed * cfg_->write_refill_per_s);
  tokens_at_ = now_;
}

// ---- snapshot -----------------------------------------------------------------------------

Snapshot Machine::snapshot() const {
  Snapshot s;
  s.state = state_;
  s.state_since = state_since_;
  s.epoch = epoch_;
  s.egress_ok = egress_ok_;
  s.nat_ok = nat_ok_;
  s.drained = state_ == State::Draining || state_ == State::Drained;
  for (std::size_t i = 0; i < members_.size(); ++i) {
    const MemberState& m = members_[i];
    bool self = static_cast<int>(i) == self_;
    s.members.push_back(MemberSnapshot{
        m.m.instance_id, m.m.zone, self,
        self ? (serving() ? Health::Up : Health::Down) : m.health.state(), m.health.reports_down(),
        m.down_since, self ? state_since_ : m.health_since});
  }
  for (std::size_t i : order_) {
    const TableState& t = tables_[i];
    TableSnapshot ts;
    ts.id = t.id;
    ts.zone = t.zone;
    ts.priority = t.priority;
    ts.allocated = alloc_target(t);
    for (const auto& r : t.routes) {
      RouteSnapshot rs;
      rs.destination = r.destination;
      rs.current = r.belief;
      rs.in_flight = r.op;
      rs.attempts = r.attempts;
      if (r.retry_at > now_) rs.retry_at = r.retry_at;
      rs.last_error = r.last_error;
      ts.routes.push_back(std::move(rs));
    }
    if (t.hold_until > now_) ts.hold_until = t.hold_until;
    ts.strikes = t.strikes;
    ts.writes = t.writes;
    s.tables.push_back(std::move(ts));
  }
  for (const auto& e : eips_) {
    s.eips.push_back(EipSnapshot{e.eip.zone, e.eip.allocation_id, e.held, e.op});
  }
  s.pending_ops = pending_.size();
  s.stale_completions = stale_completions_;
  s.writes_total = writes_total_;
  s.write_tokens = tokens_;
  s.handover_deadline = handover_deadline_;
  return s;
}

}  // namespace hanat::engine
