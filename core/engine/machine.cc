// SPDX-License-Identifier: GPL-2.0-or-later
// Machine, part 1: handle() and the per-state handlers, which only compute a Transition,
// and enter(), the one place that applies it; snapshot(). What handle() folds in first is in
// machine_facts.cc; the route writes that reconcile() makes are in machine_routes.cc.

#include "core/engine/machine.h"

#include <algorithm>
#include <type_traits>

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
  auto local = std::make_shared<LocalWriteBudget>(static_cast<double>(cfg_->write_burst),
                                                  cfg_->write_refill_per_s, start);
  local_budget_ = local.get();
  budget_ = std::move(local);
  index_config();
  next_describe_at_ = start;
}

void Machine::use_write_budget(std::shared_ptr<WriteBudget> budget) {
  if (!budget) return;
  budget_ = std::move(budget);
  local_budget_ = nullptr;
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
  // Own recovery (machine.h): remember whether every peer was silent at once while this
  // member's own data plane was down.
  if ((state_ == State::Failing || state_ == State::Unhealthy) && every_peer_silent()) {
    isolated_while_failing_ = true;
  }
  return out;
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
  const State from = state_;
  state_ = t.next;
  state_since_ = now_;
  if (serving() && !was_serving) eligible_since_ = now_;
  if (serving() && (from == State::Unhealthy || from == State::Failing) &&
      isolated_while_failing_) {
    rejudge_silent_peers(out);  // machine.h, "Own recovery"
  }
  if (serving() || was_serving) isolated_while_failing_ = false;
  if (was_serving && (state_ == State::Failing || state_ == State::Unhealthy)) {
    abandon_claims(out);
  }
  if (!serving()) eligible_since_.reset();
  if (handing_over(state_) && !was_handing_over) {
    handover_deadline_ = now_ + cfg_->handover_deadline;
  }
  if (!handing_over(state_)) handover_deadline_.reset();
  if (state_ == State::ExitReady) out.push_back(ExitReady{t.reason});
  alloc_dirty_ = true;  // self joins or leaves the healthy set
  dirty_ = true;
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
    s.members.push_back(
        MemberSnapshot{m.m.instance_id,
                       m.m.zone,
                       self,
                       self ? (serving() ? Health::Up : Health::Down) : m.health.state(),
                       m.health.reports_down(),
                       m.down_since,
                       self ? state_since_ : m.health_since,
                       self || m.agent_answered,
                       !self && agent_probed() && !m.agent_answered &&
                           m.health.tracker(ProbeKind::Agent).state() == Health::Down,
                       {self ? Health::Unknown : m.health.path_state(ProbePath::Private),
                        self ? Health::Unknown : m.health.path_state(ProbePath::Public)},
                       !self && m.health.probed(ProbePath::Public),
                       false,
                       false,
                       std::nullopt});
    MemberSnapshot& ms = s.members.back();
    ms.silent = !self && silent(m);
    ms.agent_silent = !self && agent_silent(m);
    if (auto r = last_recovery_.find(m.m.instance_id); r != last_recovery_.end()) {
      ms.last_recovery = r->second;
    }
  }
  auto first = suspicion();
  s.suspect = first.has_value();
  s.self_confirmed = first ? confirmed_since(*first) : checks_pass();
  s.link_ok = link_ok_;
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
      rs.foreign = holder(r.belief) == Holder::Foreign;
      if (rs.foreign) ++s.foreign_routes;
      ts.routes.push_back(std::move(rs));
    }
    if (t.hold_until > now_) ts.hold_until = t.hold_until;
    ts.strikes = t.strikes;
    ts.writes = t.writes;
    ts.adopted = t.adopted;
    s.tables.push_back(std::move(ts));
  }
  for (const auto& e : eips_) {
    EipSnapshot es;
    es.zone = e.eip.zone;
    es.allocation_id = e.eip.allocation_id;
    es.held = e.held;
    es.home = self_ >= 0 && members_[static_cast<std::size_t>(self_)].m.zone == e.eip.zone;
    es.in_flight = e.op;
    es.attempts = e.attempts;
    es.last_error = e.last_error;
    if (e.attempts > 0 && e.retry_at > now_) es.retry_at = e.retry_at;
    s.eips.push_back(std::move(es));
  }
  s.pending_ops = pending_.size();
  s.stale_completions = stale_completions_;
  s.writes_total = writes_total_;
  s.write_tokens = budget_->tokens(WriteApi::ReplaceRoute, now_);
  s.handover_deadline = handover_deadline_;
  return s;
}

}  // namespace hanat::engine
