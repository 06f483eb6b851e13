// SPDX-License-Identifier: GPL-2.0-or-later
// Machine, part 2: folding events into the facts the decisions read (DESIGN "Failover
// semantics"): probe results into peer health, observed route tables, completions of our
// own writes (epoch-guarded), NAT read-backs and config reloads. No decisions here: those
// are the per-state handlers (machine.cc) and the route bookkeeping (machine_routes.cc).

#include "core/engine/machine.h"

#include <algorithm>

namespace hanat::engine {

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
    if (s->ok != egress_ok_ || s->link_ok != link_ok_ || s->egress_confirmed != egress_confirmed_)
      dirty_ = true;
    egress_ok_ = s->ok;
    egress_detail_ = s->detail;
    egress_confirmed_ = s->egress_confirmed;
    link_ok_ = s->link_ok;
  } else if (const auto* pr = std::get_if<PastRecovery>(&ev)) {
    auto [it, fresh] = last_recovery_.try_emplace(pr->peer, pr->at);
    if (!fresh) it->second = std::max(it->second, pr->at);
    dirty_ = true;
  } else if (const auto* c = std::get_if<ConfigChanged>(&ev)) {
    absorb_config(*c);
  } else if (const auto* mc = std::get_if<MembersChanged>(&ev)) {
    absorb_members(*mc);
  } else if (const auto* ad = std::get_if<Adopt>(&ev)) {
    absorb_adopt(*ad);
  } else if (const auto* rr = std::get_if<ReclaimReady>(&ev)) {
    // Late (the hold passed and the writes went) or unknown: nothing to release.
    if (auto it = reclaims_.find(rr->peer); it != reclaims_.end() && !it->second.ready) {
      it->second.ready = true;
      dirty_ = true;
    }
  } else if (!std::holds_alternative<Tick>(ev)) {
    dirty_ = true;  // drain, shutdown, termination: decided by the state handlers
  }
  update_confirmation();
}

void Machine::update_confirmation() {
  const bool ok = cfg_->egress_check && egress_confirmed_ && link_ok_ && nat_ok_;
  if (!ok) {
    confirmed_since_.reset();
  } else if (!confirmed_since_) {
    confirmed_since_ = now_;
  }
}

void Machine::absorb_probe(const ProbeResult& r, std::vector<Action>& out) {
  auto it = member_by_target_.find(r.peer);
  if (it == member_by_target_.end() || it->second == self_) return;
  MemberState& m = members_[static_cast<std::size_t>(it->second)];
  if (r.ok || r.reports_down) {
    // Anything that answers - ICMP, TCP, an agent saying up, down or draining - is alive.
    if (!m.last_heard || *m.last_heard < r.at) m.last_heard = r.at;
    if (m.silent_since && suspicion()) {
      // Every peer fell silent at once and one of them answers again: the silence was most
      // likely this member's own path (machine.h "Self-suspicion"), and it ends peer by
      // peer as probes get through again. Nothing seen through that path is evidence, so
      // every silent peer, this one included, is judged afresh from now (Unknown, its runs
      // cleared): otherwise the first answer would lift the suspicion, and every peer still
      // climbing back to `rise` would have its tables taken, and those whose next probe has
      // not come back yet would be fenced. Only with two or more peers: a lone peer always
      // falls silent "at once", which tells nothing about this member's path (and its
      // answer is the ordinary start of its rise). Reported in instance-id order.
      std::vector<MemberState*> afresh;
      for (std::size_t i = 0; i < members_.size(); ++i) {
        if (static_cast<int>(i) != self_ && members_[i].silent_since) {
          afresh.push_back(&members_[i]);
        }
      }
      std::sort(afresh.begin(), afresh.end(), [](const MemberState* x, const MemberState* y) {
        return x->m.instance_id < y->m.instance_id;
      });
      if (afresh.size() < 2) afresh.clear();
      for (MemberState* other : afresh) {
        for (auto& path : other->fails_since_heard) path.fill(0);
        other->silent_since.reset();
        const Health was = other->health.state();
        other->health.forget("judged afresh: every peer fell silent at once and " +
                             m.m.instance_id +
                             " answers again, so this member's own path was broken");
        if (was == Health::Unknown) continue;
        out.push_back(PeerChanged{other->m.instance_id, was, Health::Unknown, other->health.why()});
        other->health_since = now_;
        other->down_since.reset();
        alloc_dirty_ = true;
      }
    }
    for (auto& path : m.fails_since_heard) path.fill(0);
    if (m.silent_since) dirty_ = true;  // recovery and suspicion read it
    m.silent_since.reset();
  } else if (static_cast<std::size_t>(r.path) < kProbePaths &&
             static_cast<std::size_t>(r.kind) < kProbeKinds) {
    int& n =
        m.fails_since_heard[static_cast<std::size_t>(r.path)][static_cast<std::size_t>(r.kind)];
    n = std::min(n + 1, cfg_->peer_thresholds.fall);
    if (!m.silent_since && every_kind_failed(m)) {
      m.silent_since = r.at;
      dirty_ = true;
    }
  }
  bool agent_silent_before = agent_silent(m);
  if (r.kind == ProbeKind::Agent && static_cast<std::size_t>(r.path) < kProbePaths) {
    if (r.ok || r.reports_down) {
      m.agent_fails.fill(0);
    } else {
      int& n = m.agent_fails[static_cast<std::size_t>(r.path)];
      n = std::min(n + 1, cfg_->peer_thresholds.fall);
    }
  }
  if (r.kind == ProbeKind::Agent && r.ok && !m.agent_answered) {
    // Its hanatd runs: from now on it may be allocated tables (DESIGN rule 9).
    m.agent_answered = true;
    alloc_dirty_ = true;
    dirty_ = true;
  }
  Health before = m.health.state();
  Health path_before = m.health.path_state(r.path);
  HealthChange change = m.health.record(r);
  if (m.health.probed(ProbePath::Public) && m.health.path_state(r.path) != path_before &&
      m.health.path_state(r.path) != Health::Unknown) {
    out.push_back(PeerPathChanged{m.m.instance_id, r.path, m.health.path_state(r.path),
                                  m.health.path_broken()});
  }
  if (r.kind == ProbeKind::Agent && !m.agent_answered && !m.no_agent_reported &&
      m.health.tracker(ProbeKind::Agent).state() == Health::Down) {
    m.no_agent_reported = true;
    out.push_back(PeerWithoutAgent{m.m.instance_id});
  }
  if (agent_silent(m) != agent_silent_before) {
    alloc_dirty_ = true;  // an agent-silent peer is allocated nothing (DESIGN rule 9)
    dirty_ = true;
  }
  if (change != HealthChange::Changed) return;
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

void Machine::rejudge_silent_peers(std::vector<Action>& out) {
  for (std::size_t i = 0; i < members_.size(); ++i) {
    MemberState& m = members_[i];
    // A peer whose agent answered that its own data plane is down was heard: that verdict
    // stands. Only what silence decided is forgotten.
    if (static_cast<int>(i) == self_ || m.health.state() != Health::Down ||
        m.health.reports_down()) {
      continue;
    }
    m.health.forget("judged afresh: it fell silent while this member's own data plane was down");
    for (auto& path : m.fails_since_heard) path.fill(0);
    m.agent_fails.fill(0);
    m.silent_since.reset();
    m.down_since.reset();
    m.health_since = now_;
    out.push_back(PeerChanged{m.m.instance_id, Health::Down, Health::Unknown, m.health.why()});
    alloc_dirty_ = true;
    dirty_ = true;
  }
}

bool Machine::every_peer_silent() const {
  bool any = false;
  for (std::size_t i = 0; i < members_.size(); ++i) {
    if (static_cast<int>(i) == self_) continue;
    if (!silent(members_[i])) return false;
    any = true;
  }
  return any;
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
      // alive. Missing or blackhole routes were not written by a rival, so they do not count;
      // nor does a foreign target: the operator took the route, and it is never written back.
      if (!struck && serving() && holder(r.belief) == Holder::Self &&
          holder(seen) != Holder::Self && holder(seen) != Holder::Foreign &&
          seen.kind != TargetKind::Missing && seen.kind != TargetKind::Blackhole) {
        int writer = member_of(seen);
        strike(t, writer >= 0 ? members_[static_cast<std::size_t>(writer)].m.instance_id : "");
        struck = true;
      }
      r.belief = std::move(seen);
    }
    // An adopted table is managed as any other once none of its routes is foreign.
    if (t.adopted && std::none_of(t.routes.begin(), t.routes.end(), [&](const RouteState& r) {
          return holder(r.belief) == Holder::Foreign;
        })) {
      t.adopted = false;
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
        e.last_error.clear();
      } else {
        if (d.outcome == Ec2Outcome::Throttled) budget_->drain(p.api, now_);
        e.last_error = d.code.empty() ? "retryable error" : d.code;
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
      budget_->drain(p.api, now_);
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
        // Someone created the route since our last Describe. Its target is unknown and may
        // be foreign (DESIGN rule 3): read it before writing anything.
        r->unsure = true;
        r->retry_at = now_ + cfg_->describe_interval;
        next_describe_at_ = now_;
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
  dirty_ = true;
}

void Machine::absorb_members(const MembersChanged& c) {
  auto next = std::make_shared<Config>(*cfg_);
  next->members = c.members;
  // The shell always lists this host; a list without it (or otherwise invalid) is not
  // a membership the engine can act on, and the current one stays.
  if (!validate(*next).empty()) return;
  cfg_ = std::move(next);
  index_config();
  dirty_ = true;
}

void Machine::absorb_adopt(const Adopt& a) {
  auto it = table_by_id_.find(a.table);
  if (it == table_by_id_.end()) return;
  TableState& t = tables_[it->second];
  t.adopted = std::any_of(t.routes.begin(), t.routes.end(),
                          [&](const RouteState& r) { return holder(r.belief) == Holder::Foreign; });
  dirty_ = true;
}

void Machine::index_config() {
  // Members that are no longer listed have left the group: remember their ids so that the
  // routes they still hold count as served by nobody, not as foreign.
  for (const MemberState& old : members_) {
    bool stays = std::any_of(cfg_->members.begin(), cfg_->members.end(),
                             [&](const Member& m) { return m.instance_id == old.m.instance_id; });
    if (stays) continue;
    for (const std::string* id : {&old.m.instance_id, &old.m.eni_id}) {
      if (id->empty()) continue;
      if (departed_.insert(*id).second) departed_order_.push_back(*id);
    }
    for (auto& t : tables_) {
      if (t.held_by == old.m.instance_id) {
        t.hold_until = {};  // it is gone, not partitioned: its tables are taken at once
        t.held_by.clear();
      }
    }
  }
  for (const Member& m : cfg_->members) {
    departed_.erase(m.instance_id);
    if (!m.eni_id.empty()) departed_.erase(m.eni_id);
  }
  std::erase_if(departed_order_, [&](const std::string& id) { return !departed_.contains(id); });
  constexpr std::size_t kDepartedKept = 256;
  while (departed_order_.size() > kDepartedKept) {
    departed_.erase(departed_order_.front());
    departed_order_.erase(departed_order_.begin());
  }
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
    ms.health.configure(cfg_->peer_thresholds, cfg_->probe_kinds, m.public_path);
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
  if (local_budget_ != nullptr) {
    local_budget_->set_limits(static_cast<double>(cfg_->write_burst), cfg_->write_refill_per_s);
  }
  alloc_dirty_ = true;
}

}  // namespace hanat::engine
