// SPDX-License-Identifier: GPL-2.0-or-later
// Seeded random event sequences against one Machine in a group of 2-4 members, checking
// invariants after every step (FRR's seeded-PRNG approach). The group lives: members join
// and leave (DESIGN rule 9), operators point routes at foreign targets and adopt tables
// (rule 3); no write may ever target a foreign route.
//
// The judge keeps its own model of what the machine must know, built only from the events it
// fed: each peer's health (rise/fall runs per probe kind, the agent's "down", as
// peer_health.h's comment states the rules), each table's hold-down (strike count, length,
// lifting when its writer goes down), and the failed and stale write completions it sent.
// The machine's PeerChanged actions, health, hold-downs and strikes in its snapshot are
// asserted against that model, and the invariants are judged with the model, so a bug in the
// machine's health or hold-down tracking cannot pass its own judgement.
//
// Each test run starts from a fresh random seed, printed (sequence i uses seed + i); a
// failure prints its sequence's seed. HANAT_RANDOM_SEED=<seed> replays that one sequence
// (with HANAT_RANDOM_RUNS=<n>, n sequences from it); HANAT_RANDOM_RUNS=<n> alone runs n.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <iostream>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <sstream>

#include "tests/unit/engine/harness.h"

namespace hanat::engine::testing {
namespace {

// One peer's health as the judge derives it from the probe results it sent. Written from
// the rules, not from PeerHealth: per configured kind, the runs of consecutive successes and
// failures (a result of the other kind resets a run); a kind is Up after `rise` successes,
// Down after `fall` failures; an agent saying "down" makes every kind Down at once (runs
// restart). The peer is Down if its agent says so or every configured kind is Down, Up if any
// kind is Up, else as before (Unknown at first).
class PeerModel {
 public:
  // Returns true when the peer's health changed.
  bool record(const ProbeResult& r, const std::vector<ProbeKind>& kinds, Thresholds t) {
    if (std::find(kinds.begin(), kinds.end(), r.kind) == kinds.end()) return false;
    if (r.kind == ProbeKind::Agent && !r.ok && r.reports_down) {
      says_down_ = true;
      for (auto& [k, run] : runs_) run = Run{};
      for (ProbeKind k : kinds) runs_[k].state = Health::Down;
    } else {
      if (r.kind == ProbeKind::Agent && r.ok) says_down_ = false;
      Run& run = runs_[r.kind];
      if (r.ok) {
        run.failed = 0;
        if (++run.ok >= t.rise) run.state = Health::Up;
      } else {
        run.ok = 0;
        if (++run.failed >= t.fall) run.state = Health::Down;
      }
    }
    Health next = health_;
    if (says_down_) {
      next = Health::Down;
    } else {
      bool all_down = true;
      bool any_up = false;
      for (ProbeKind k : kinds) {
        all_down = all_down && runs_[k].state == Health::Down;
        any_up = any_up || runs_[k].state == Health::Up;
      }
      if (all_down) {
        next = Health::Down;
      } else if (any_up) {
        next = Health::Up;
      }
    }
    const bool changed = next != health_;
    health_ = next;
    return changed;
  }
  [[nodiscard]] Health health() const { return health_; }
  [[nodiscard]] bool says_down() const { return says_down_; }
  // Silence (machine.h "Recovery"): every configured kind failed `fall` times since the peer
  // last answered anything.
  void hear(const ProbeResult& r, const std::vector<ProbeKind>& kinds, Thresholds t) {
    if (r.ok || r.reports_down) {
      fails_heard_.clear();
      silent_since_.reset();
      return;
    }
    int& n = fails_heard_[r.kind];
    n = std::min(n + 1, t.fall);
    if (silent_since_) return;
    for (ProbeKind k : kinds) {
      if (fails_heard_[k] < t.fall) return;
    }
    silent_since_ = r.at;
  }
  [[nodiscard]] std::optional<Time> silent_since() const {
    return health_ == Health::Down ? silent_since_ : std::nullopt;
  }
  [[nodiscard]] bool heard_silent() const { return silent_since_.has_value(); }
  // Judged afresh (machine.h, self-suspicion's end and own recovery): back to Unknown,
  // nothing counted.
  void forget() {
    runs_.clear();
    fails_heard_.clear();
    silent_since_.reset();
    says_down_ = false;
    health_ = Health::Unknown;
  }

 private:
  std::map<ProbeKind, int> fails_heard_;
  std::optional<Time> silent_since_;
  struct Run {
    int ok = 0;
    int failed = 0;
    Health state = Health::Unknown;
  };
  std::map<ProbeKind, Run> runs_;
  bool says_down_ = false;
  Health health_ = Health::Unknown;
};

// One table's hold-down as the judge derives it. A strike is the machine's to decide (it
// depends on what it believes it wrote), so the judge recognises one and checks that it was
// possible: a Describe in which the table shows a route to someone else while this member
// was serving. Its length, the strike count, forgetting strikes after a quiet period and
// lifting the hold-down when its writer goes down are the judge's own.
struct HoldModel {
  int strikes = 0;
  std::optional<Time> last_strike;
  Time until{};                   // Time{} once lifted
  std::set<std::string> writers;  // who may have made the rival write ("" for no member)
  bool maybe_lifted = false;      // a candidate writer went down after it expired
};

// A health change: the machine's PeerChanged, or one the model derived.
struct Change {
  std::string peer;
  Health from = Health::Unknown;
  Health to = Health::Unknown;
  bool operator==(const Change&) const = default;
};

class RandomRun {
 public:
  explicit RandomRun(std::uint64_t seed) : rng_(seed) {
    int n = pick(2, 4);
    const char* zones[] = {"a", "b", "c"};
    for (int i = 0; i < n; ++i) {
      Member m{"i-" + std::to_string(i), coin(0.3) ? "eni-" + std::to_string(i) : "",
               zones[pick(0, 2)], pick(0, 3)};
      cfg_.members.push_back(m);
    }
    cfg_.self = cfg_.members[static_cast<std::size_t>(pick(0, n - 1))].instance_id;
    cfg_.probe_kinds =
        coin(0.5) ? std::vector{ProbeKind::Icmp} : std::vector{ProbeKind::Icmp, ProbeKind::Agent};
    cfg_.peer_thresholds = {.rise = pick(1, 5), .fall = pick(1, 4)};
    cfg_.failback_delay = Millis{pick(0, 40'000)};
    cfg_.reclaim_wait = coin(0.5) ? Millis{pick(1, 1'000)} : Millis{0};
    cfg_.preempt = coin(0.7);
    cfg_.hold_down_base = Millis{pick(2'000, 20'000)};
    cfg_.hold_down_max = cfg_.hold_down_base * pick(1, 16);
    cfg_.fallback_nat_gateway = coin(0.5) ? "nat-0fb" : "";
    cfg_.destinations = coin(0.8) ? std::vector<std::string>{"0.0.0.0/0"}
                                  : std::vector<std::string>{"0.0.0.0/0", "198.18.0.0/15"};
    cfg_.describe_interval = Millis{pick(1'000, 20'000)};
    cfg_.observe_settle = Millis{pick(0, 3'000)};
    cfg_.handover_deadline = Millis{pick(1'000, 20'000)};
    cfg_.write_burst = 10'000;  // pacing is tested on its own; here it would mask takeovers
    cfg_.recovery = coin(0.3) ? RecoveryAction::Reboot : RecoveryAction::None;
    if (coin(0.3)) cfg_.eips = {{"a", "eipalloc-a"}, {"b", "eipalloc-b"}};
    int tables = pick(1, 6);
    for (int i = 0; i < tables; ++i) {
      std::string id = "rtb-" + std::to_string(i);
      tables_.push_back({id, zones[pick(0, 2)], Target{}, pick(0, 3)});
      for (const auto& d : cfg_.destinations) world_[{id, d}] = random_target();
    }
    for (const auto& m : cfg_.members) alive_[m.instance_id] = coin(0.8);
    h_ = std::make_unique<Harness>(cfg_);
  }

  // Runs `steps` random events; returns false at the first broken invariant.
  bool run(int steps) {
    for (step_ = 0; step_ < steps; ++step_) {
      std::vector<Action> out = one_event();
      if (failed_ || !check(out)) return false;
    }
    return true;
  }

 private:
  int pick(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng_); }
  bool coin(double p) { return std::bernoulli_distribution(p)(rng_); }

  Target member_target(const Member& m) const {
    return m.eni_id.empty() ? inst(m.instance_id) : Target{TargetKind::Eni, m.eni_id};
  }
  const Member& member(const std::string& id) const {
    for (const auto& m : cfg_.members) {
      if (m.instance_id == id) return m;
    }
    return cfg_.members.front();
  }
  Target random_target() {
    switch (pick(0, 7)) {
      case 0:
        return blackhole();
      case 1:
        return Target{};
      case 2:
        return inst("i-stranger");
      case 3:
        return natgw("nat-0fb");
      case 4:  // what an operator points a table at on purpose: foreign
        switch (pick(0, 4)) {
          case 0:
            return Target{TargetKind::TransitGateway, "tgw-1"};
          case 1:
            return Target{TargetKind::Peering, "pcx-1"};
          case 2:
            return natgw("nat-incident");
          case 3:
            return Target{TargetKind::Gateway, "vgw-1", true};
          default:
            return Target{TargetKind::Eni, "eni-appliance"};
        }
      case 5:  // still pointing at a member that left the group
        if (!departed_.empty()) {
          auto it = departed_.begin();
          std::advance(it, pick(0, static_cast<int>(departed_.size()) - 1));
          return it->second;
        }
        return blackhole();
      default:
        return member_target(cfg_.members[static_cast<std::size_t>(
            pick(0, static_cast<int>(cfg_.members.size()) - 1))]);
    }
  }
  std::string random_peer() {
    for (;;) {
      const auto& m = cfg_.members[static_cast<std::size_t>(
          pick(0, static_cast<int>(cfg_.members.size()) - 1))];
      if (m.instance_id != cfg_.self) return m.instance_id;
    }
  }

  RoutesObserved describe() {
    RoutesObserved o;
    o.at = h_->now();
    for (const auto& t : tables_) {
      ObservedTable ot{t.id, t.zone, t.priority, {}};
      for (const auto& d : cfg_.destinations) {
        const Target& tg = world_.at({t.id, d});
        if (tg.kind != TargetKind::Missing) ot.routes.push_back({d, tg});
      }
      o.tables.push_back(ot);
    }
    // Describe lists tables in any order, and a table can vanish (untagged, deleted).
    if (coin(0.1)) std::shuffle(o.tables.begin(), o.tables.end(), rng_);
    if (coin(0.05) && !o.tables.empty()) o.tables.pop_back();
    return o;
  }

  std::vector<Action> send(const Event& ev) {
    note(std::visit(
        [](const auto& e) -> std::string {
          using T = std::decay_t<decltype(e)>;
          if constexpr (std::is_same_v<T, ProbeResult>) {
            return "probe " + e.peer + " " + to_string(e.kind) + (e.ok ? " ok" : " fail") +
                   (e.reports_down ? " says-down" : "");
          } else if constexpr (std::is_same_v<T, RoutesObserved>) {
            return "observed";
          } else if constexpr (std::is_same_v<T, Ec2Done>) {
            return "ec2done op " + std::to_string(e.op) + " outcome " +
                   std::to_string(static_cast<int>(e.outcome)) + " " + e.code;
          } else if constexpr (std::is_same_v<T, Tick>) {
            return "tick";
          } else if constexpr (std::is_same_v<T, MembersChanged>) {
            std::string ids;
            for (const auto& m : e.members) ids += " " + m.instance_id;
            return "members" + ids;
          } else if constexpr (std::is_same_v<T, Adopt>) {
            return "adopt " + e.table;
          } else {
            if constexpr (std::is_same_v<T, SelfHealth>) return e.ok ? "egress ok" : "egress fail";
            if constexpr (std::is_same_v<T, Drain>) return e.on ? "drain" : "undrain";
            if constexpr (std::is_same_v<T, NatApplied>) return e.ok ? "nat ok" : "nat fail";
            return "event " + std::to_string(static_cast<int>(Event(e).index()));
          }
        },
        ev));
    if (const auto* p = std::get_if<ProbeResult>(&ev)) {
      PeerModel& pm = peers_[p->peer];
      if ((p->ok || p->reports_down) && pm.heard_silent() && suspected()) {
        // Two or more peers fell silent at once and one answers: every silent peer, this
        // one included, is judged afresh (reported in instance-id order).
        std::set<std::string> ids;
        for (const auto& m : cfg_.members) {
          if (m.instance_id != cfg_.self && peers_[m.instance_id].heard_silent())
            ids.insert(m.instance_id);
        }
        if (ids.size() < 2) ids.clear();  // a lone peer's silence tells nothing
        for (const auto& id : ids) {
          PeerModel& other = peers_[id];
          const Health was = other.health();
          other.forget();
          if (was != Health::Unknown) changes_.push_back({id, was, Health::Unknown});
        }
      }
      pm.hear(*p, cfg_.probe_kinds, cfg_.peer_thresholds);
      const Health before = pm.health();
      if (pm.record(*p, cfg_.probe_kinds, cfg_.peer_thresholds)) {
        changes_.push_back({p->peer, before, pm.health()});
        if (pm.health() == Health::Down) downs_.push_back(h_->now());
      }
    } else if (const auto* o = std::get_if<RoutesObserved>(&ev)) {
      describe_ = *o;
      listed_.clear();
      for (const auto& t : o->tables) listed_.insert(t.id);
    }
    return h_->send(ev);
  }
  // The judge's reading of self-suspicion: every peer silent (DOWN and unheard), and they
  // fell silent within suspect_window of each other.
  bool suspected() {
    std::optional<Time> first;
    std::optional<Time> last;
    for (const auto& m : cfg_.members) {
      if (m.instance_id == cfg_.self) continue;
      auto at = peers_[m.instance_id].silent_since();
      if (!at) return false;
      if (!first || *at < *first) first = at;
      if (!last || *at > *last) last = at;
    }
    return first && *last - *first <= cfg_.suspect_window;
  }
  void note(std::string what) {
    trace_.push_back(std::to_string(step_) + ": " + what);
    if (trace_.size() > 25) trace_.erase(trace_.begin());
  }

  std::vector<Action> one_event() {
    Time now = h_->now();
    serving_before_ = h_->state() == State::Standby || h_->state() == State::Active;
    int r = pick(0, 999);
    if (r < 300) {  // a probe
      std::string peer = random_peer();
      if (coin(0.05)) alive_[peer] = !alive_[peer];
      bool ok = alive_[peer] ? coin(0.95) : coin(0.05);
      ProbeKind kind = cfg_.probe_kinds[static_cast<std::size_t>(
          pick(0, static_cast<int>(cfg_.probe_kinds.size()) - 1))];
      bool says_down = kind == ProbeKind::Agent && !ok && coin(0.2);
      return send(ProbeResult{peer, kind, ok, now, says_down});
    }
    if (r < 400) {
      // The world changes under us: a live peer claims a table for itself (members only ever
      // write themselves), or a route turns into something no member wrote (blackhole,
      // deleted, a stranger, the NAT Gateway).
      const auto& t =
          tables_[static_cast<std::size_t>(pick(0, static_cast<int>(tables_.size()) - 1))];
      const std::string& dest = cfg_.destinations[static_cast<std::size_t>(
          pick(0, static_cast<int>(cfg_.destinations.size()) - 1))];
      if (coin(0.6)) {
        std::string peer = random_peer();
        if (alive_[peer]) world_[{t.id, dest}] = member_target(member(peer));
      } else {
        Target x = random_target();
        // Members only ever write themselves (above); a stranger instance is an operator's
        // choice as much as the appliance ENI, but the latter is enough of them.
        bool member_write = false;
        for (const auto& m : cfg_.members) member_write = member_write || member_target(m) == x;
        if (!member_write && x != inst("i-stranger")) world_[{t.id, dest}] = x;
      }
      return {};
    }
    if (r < 420) return change_members();
    if (r < 430) {  // the operator adopts a table
      const auto& t =
          tables_[static_cast<std::size_t>(pick(0, static_cast<int>(tables_.size()) - 1))];
      adopted_by_judge_.insert(t.id);
      return send(Adopt{t.id, now});
    }
    if (r < 440 && cfg_.reclaim_wait > Millis{0}) {
      // The shell reports a peer's snapshot installed (failback); any peer, asked or not.
      std::string peer = random_peer();
      if (auto a = asks_.find(peer); a != asks_.end()) a->second.ready = true;
      return send(ReclaimReady{peer, now});
    }
    if (r < 550) return send(describe());
    if (r < 750) {  // complete something in flight
      if (!eips_.empty() && coin(0.2)) {
        AssociateAddress e = eips_.front();
        eips_.erase(eips_.begin());
        Ec2Outcome outcome = coin(0.8) ? Ec2Outcome::Ok : Ec2Outcome::Throttled;
        return send(Ec2Done{e.op, e.epoch, outcome, "", now});
      }
      if (in_flight_.empty() && nat_.empty()) return {};
      if (!nat_.empty() && (in_flight_.empty() || coin(0.3))) {
        ApplyNat n = nat_.front();
        nat_.erase(nat_.begin());
        return send(NatApplied{n.op, n.epoch, coin(0.9), "", now});
      }
      auto it = in_flight_.begin();
      std::advance(it, pick(0, static_cast<int>(in_flight_.size()) - 1));
      WriteRoute w = it->second;
      in_flight_.erase(it);
      int o = pick(0, 9);
      Ec2Outcome outcome = o < 7    ? Ec2Outcome::Ok
                           : o == 7 ? Ec2Outcome::Throttled
                           : o == 8 ? Ec2Outcome::Retryable
                                    : Ec2Outcome::Fatal;
      const char* codes[] = {"InvalidRoute.NotFound", "RouteAlreadyExists",
                             "UnauthorizedOperation"};
      std::string code = outcome == Ec2Outcome::Fatal ? codes[pick(0, 2)] : "";
      if (outcome == Ec2Outcome::Ok) world_[{w.table, w.destination}] = w.target;
      // What this completion allows the machine (the damping allowance): requested before a
      // reload, or for a table the last Describe left out, it is stale (the route is re-read,
      // then may be written again); otherwise a failure may be retried.
      const bool stale = issued_gen_[w.op] != reloads_ || listed_.count(w.table) == 0;
      issued_gen_.erase(w.op);
      if (stale) {
        stales_.push_back(now);
      } else if (outcome != Ec2Outcome::Ok) {
        failures_[route_key(w.table, w.destination)].push_back(now);
      }
      return send(Ec2Done{w.op, w.epoch, outcome, code, now});
    }
    if (r < 900) {  // time passes: Ticks at every deadline crossed, each checked
      Time until = now + Millis{pick(0, 3'000)};
      note("advance");
      std::vector<Action> all;
      for (int guard = 0; guard < 10'000; ++guard) {
        auto dl = h_->m().next_deadline();
        if (!dl || *dl > until) break;
        h_->advance(*dl - h_->now());
        // advance() delivered the Tick; take() below gathers its actions.
        auto out = h_->take();
        if (!check(out)) return {};
      }
      h_->advance(until - h_->now());
      return h_->take();
    }
    if (r < 930) return send(SelfHealth{coin(0.6), "egress", now});
    if (r < 950) return send(Drain{coin(0.6), now});
    if (r < 953) return send(Shutdown{now});
    if (r < 956) return send(TerminationNotice{TerminationKind::Spot, now});
    if (r < 975) {  // reload with other thresholds and timers, same group and tables
      Config c = cfg_;
      c.peer_thresholds = {.rise = pick(1, 5), .fall = pick(1, 4)};
      c.preempt = coin(0.7);
      c.failback_delay = Millis{pick(0, 40'000)};
      if (coin(0.2)) c.reclaim_wait = coin(0.5) ? Millis{pick(1, 1'000)} : Millis{0};
      note("reload rise " + std::to_string(c.peer_thresholds.rise) + " fall " +
           std::to_string(c.peer_thresholds.fall));
      h_->reload(c);
      cfg_ = c;
      ++reloads_;
      return h_->take();
    }
    return send(Tick{now});
  }

  // A member joins (a new instance, possibly one that left before) or leaves (terminated,
  // stopped, untagged): the shell re-read the group and feeds the list.
  std::vector<Action> change_members() {
    std::vector<Member> others;
    for (const auto& m : cfg_.members) {
      if (m.instance_id != cfg_.self) others.push_back(m);
    }
    const char* zones[] = {"a", "b", "c"};
    if (others.size() > 1 && coin(0.5)) {
      const Member gone =
          others[static_cast<std::size_t>(pick(0, static_cast<int>(others.size()) - 1))];
      std::erase_if(cfg_.members,
                    [&](const Member& m) { return m.instance_id == gone.instance_id; });
      departed_[gone.instance_id] = inst(gone.instance_id);
      if (!gone.eni_id.empty()) departed_[gone.eni_id] = Target{TargetKind::Eni, gone.eni_id};
      peers_.erase(gone.instance_id);
      alive_.erase(gone.instance_id);
      departures_.push_back(gone.instance_id);
      downs_.push_back(h_->now());  // like a peer going down: it lifts its hold-downs
    } else if (cfg_.members.size() < 5) {
      std::string id = "i-n" + std::to_string(++joined_);
      Member m{id, coin(0.5) ? "eni-n" + std::to_string(joined_) : "", zones[pick(0, 2)],
               pick(0, 3)};
      cfg_.members.push_back(m);
      departed_.erase(m.instance_id);
      if (!m.eni_id.empty()) departed_.erase(m.eni_id);
      alive_[id] = coin(0.8);
    } else {
      return {};
    }
    return send(MembersChanged{cfg_.members, h_->now()});
  }

  // The judge's own reading of DESIGN rule 3: a route hanat may write points at a member
  // (present), at a member that left, at the fallback, is a blackhole or is missing.
  bool foreign(const Target& t) const {
    if (t.kind == TargetKind::Missing) return false;
    if (t.propagated) return true;
    switch (t.kind) {
      case TargetKind::Blackhole:
        return false;
      case TargetKind::NatGateway:
        return cfg_.fallback_nat_gateway.empty() || t.id != cfg_.fallback_nat_gateway;
      case TargetKind::Instance:
      case TargetKind::Eni:
        for (const auto& m : cfg_.members) {
          if (t.kind == TargetKind::Instance ? m.instance_id == t.id : m.eni_id == t.id)
            return false;
        }
        return departed_.count(t.id) == 0;
      default:
        return true;
    }
  }

  bool fail(const std::string& what) {
    ADD_FAILURE() << "step " << step_ << ": " << what << "\n" << dump();
    failed_ = true;
    return false;
  }

  bool check(const std::vector<Action>& out) {
    h_->take();  // the harness log is not used here
    Snapshot s = h_->snap();
    const bool serving = s.state == State::Standby || s.state == State::Active;
    Target me = member_target(member(cfg_.self));
    std::set<std::string> table_ids;
    for (const auto& t : tables_) table_ids.insert(t.id);
    // A peer's health as the judge's model has it (never the machine's word).
    auto health = [&](const Target& t) {
      for (const auto& m : cfg_.members) {
        if (m.instance_id != cfg_.self && member_target(m) == t)
          return peers_[m.instance_id].health();
      }
      return Health::Unknown;
    };
    // The machine reports exactly the health changes the probes fed make, and shows the
    // health the model has.
    std::vector<Change> reported;
    bool own_recovery = false;
    for (const auto& a : out) {
      if (const auto* nt = std::get_if<Notify>(&a)) {
        own_recovery =
            own_recovery || ((nt->from == State::Failing || nt->from == State::Unhealthy) &&
                             (nt->to == State::Standby || nt->to == State::Active));
      }
      if (const auto* p = std::get_if<PeerChanged>(&a)) {
        reported.push_back({p->peer, p->from, p->to});
        // Own recovery forgets peers DOWN from silence alone (machine.h): only then, only
        // those. Whether every peer was silent meanwhile is the unit tests' part.
        if (own_recovery && p->from == Health::Down && p->to == Health::Unknown) {
          PeerModel& pm = peers_[p->peer];
          if (pm.health() != Health::Down || pm.says_down()) {
            return fail("PeerChanged " + p->peer + " down->unknown: not down from silence");
          }
          pm.forget();
          changes_.push_back({p->peer, Health::Down, Health::Unknown});
        }
      }
    }
    if (reported != changes_) {
      return fail("PeerChanged " + str(reported) + " where the probes fed make " + str(changes_));
    }
    if (s.members.size() != cfg_.members.size()) {
      return fail("snapshot lists " + std::to_string(s.members.size()) + " members, the group " +
                  std::to_string(cfg_.members.size()));
    }
    // Foreign routes: the snapshot says what the judge says; an adopted table is one the
    // operator adopted.
    for (const auto& t : s.tables) {
      if (t.adopted && adopted_by_judge_.count(t.id) == 0)
        return fail("table " + t.id + " adopted without an Adopt");
      for (const auto& r : t.routes) {
        if (r.foreign != foreign(r.current)) {
          return fail("table " + t.id + " route " + r.destination +
                      (r.foreign ? " shown foreign" : " not shown foreign") + " where the judge " +
                      (foreign(r.current) ? "has it foreign" : "does not"));
        }
      }
    }
    for (const auto& ms : s.members) {
      if (!is_member(ms.instance_id)) return fail("snapshot lists departed " + ms.instance_id);
      if (!ms.self && ms.health != peers_[ms.instance_id].health()) {
        return fail("snapshot shows " + ms.instance_id + " " + to_string(ms.health) +
                    ", the probes fed make it " + to_string(peers_[ms.instance_id].health()));
      }
    }

    for (const auto& a : out) {
      if (const auto* w = std::get_if<WriteRoute>(&a)) {
        if (exited_) return fail("write after exit-ready");
        // Every action refers to a known table, destination and member (or the fallback).
        if (!table_ids.count(w->table)) return fail("write to unknown table " + w->table);
        if (std::find(cfg_.destinations.begin(), cfg_.destinations.end(), w->destination) ==
            cfg_.destinations.end()) {
          return fail("write to unmanaged destination " + w->destination);
        }
        bool to_member = false;
        for (const auto& m : cfg_.members) to_member = to_member || member_target(m) == w->target;
        bool to_fallback =
            !cfg_.fallback_nat_gateway.empty() && w->target == natgw(cfg_.fallback_nat_gateway);
        if (!to_member && !to_fallback) return fail("write to a target that is no member");
        // DESIGN rule 3: never a write over a foreign route, unless the operator adopted the
        // table (and the machine still has it adopted).
        for (const auto& t : s.tables) {
          if (t.id != w->table) continue;
          for (const auto& r : t.routes) {
            if (r.destination == w->destination && foreign(r.current) &&
                !(t.adopted && adopted_by_judge_.count(t.id) != 0)) {
              return fail("write over the foreign route of " + w->table);
            }
          }
        }
        // Claim, don't push: serving members write only themselves; handing-over ones only
        // a healthy peer or the fallback.
        if (serving && !(w->target == me)) return fail("serving member pushed " + w->table);
        if (!serving) {
          if (w->target == me) return fail("non-serving member claimed " + w->table);
          if (to_member && health(w->target) != Health::Up) {
            return fail("handed " + w->table + " to a peer that is not up");
          }
        }
        // A failback from a live peer waits for that peer's flows: asked (Reclaim) for this
        // table, and either its ReclaimReady came since or reclaim_wait has passed.
        if (serving && w->target == me && cfg_.reclaim_wait > Millis{0}) {
          for (const auto& t : s.tables) {
            if (t.id != w->table) continue;
            for (const auto& r : t.routes) {
              if (r.destination != w->destination) continue;
              std::string from;
              for (const auto& m : cfg_.members)
                if (m.instance_id != cfg_.self && member_target(m) == r.current)
                  from = m.instance_id;
              if (from.empty() || health(r.current) != Health::Up) continue;
              auto ask = asks_.find(from);
              if (ask == asks_.end() ||
                  std::find(ask->second.tables.begin(), ask->second.tables.end(), w->table) ==
                      ask->second.tables.end())
                return fail("failback of " + w->table + " from " + from + " without a Reclaim");
              if (!ask->second.ready && h_->now() < ask->second.until)
                return fail("failback of " + w->table + " from " + from +
                            " before its ReclaimReady or reclaim_wait");
            }
          }
        }
        // In-flight writes are never duplicated.
        auto key = std::pair{w->table, w->destination};
        for (const auto& [op, f] : in_flight_) {
          if (std::pair{f.table, f.destination} == key) {
            return fail("second write in flight for " + w->table);
          }
        }
        in_flight_[w->op] = *w;
        issued_gen_[w->op] = reloads_;
        // A hold-down (the judge's, as of the previous step) is respected: no write taking
        // the route from a member before it ends, unless a peer went down in this very step
        // (which voids the rewriter's claim).
        if (auto held = held_until_.find(w->table); held != held_until_.end() &&
                                                    h_->now() < held->second && !peer_went_down() &&
                                                    holder_was_member(w->table, w->destination)) {
          return fail("table " + w->table + " written during its hold-down");
        }
        // Damping bound, counted per managed route (table, destination): within one hold-down
        // window, at most two writes that took the route from a member, plus one per peer
        // that went down (which lifts a hold-down), one per failed completion (a retry) and
        // one per stale completion (the route is re-read, then written again).
        if (holder_was_member(w->table, w->destination)) {
          auto& log = member_takes_[route_key(w->table, w->destination)];
          log.push_back(h_->now());
          int recent = 0;
          for (Time t : log) recent += h_->now() - t < cfg_.hold_down_base ? 1 : 0;
          int allowance = 2 + count_recent(downs_) + count_recent(stales_) +
                          count_recent(failures_[route_key(w->table, w->destination)]);
          if (recent > allowance) {
            return fail("table " + w->table + " written " + std::to_string(recent) +
                        " times from members within one hold-down window");
          }
        }
      } else if (const auto* rc = std::get_if<Reclaim>(&a)) {
        // Failback hold (Config::reclaim_wait): asked only by a serving member, of a live
        // peer, for tables the judge knows; the bound starts now.
        if (!serving) return fail("reclaim while not serving");
        if (cfg_.reclaim_wait <= Millis{0}) return fail("reclaim with reclaim_wait 0");
        if (rc->peer == cfg_.self || !is_member(rc->peer)) return fail("reclaim from " + rc->peer);
        if (health(member_target(member(rc->peer))) != Health::Up)
          return fail("reclaim from " + rc->peer + ", which is not up");
        if (rc->tables.empty()) return fail("reclaim of no table from " + rc->peer);
        for (const auto& t : rc->tables)
          if (!table_ids.count(t)) return fail("reclaim of unknown table " + t);
        asks_[rc->peer] = Ask{rc->tables, h_->now() + cfg_.reclaim_wait, false};
      } else if (const auto* ab = std::get_if<AbandonWrite>(&a)) {
        // Only a claim in flight, only by a member that no longer serves; the shell cancels
        // it, so it never completes.
        auto f = in_flight_.find(ab->op);
        if (f == in_flight_.end()) return fail("abandoned a write not in flight");
        if (serving) return fail("serving member abandoned its claim on " + ab->table);
        if (!(f->second.target == me)) return fail("abandoned a handover of " + ab->table);
        // It never reached EC2: the next claim of the route is a retry, like one after a
        // failed completion, and the damping bound allows for it the same way.
        failures_[route_key(f->second.table, f->second.destination)].push_back(h_->now());
        in_flight_.erase(f);
      } else if (const auto* nt = std::get_if<Notify>(&a)) {
        note(std::string("  -> ") + to_string(nt->from) + " to " + to_string(nt->to) + ": " +
             to_string(nt->reason));
      } else if (const auto* e = std::get_if<AssociateAddress>(&a)) {
        if (!serving) return fail("EIP associated while not serving");
        bool known = false;
        for (const auto& z : cfg_.eips) known = known || z.allocation_id == e->allocation_id;
        if (!known) return fail("unknown EIP " + e->allocation_id);
        for (const auto& f : eips_) {
          if (f.allocation_id == e->allocation_id) return fail("second association in flight");
        }
        eips_.push_back(*e);
      } else if (const auto* n = std::get_if<ApplyNat>(&a)) {
        nat_.push_back(*n);
      } else if (const auto* rp = std::get_if<RecoverPeer>(&a)) {
        if (rp->peer == cfg_.self || !is_member(rp->peer))
          return fail("RecoverPeer for " + rp->peer);
        if (health(member_target(member(rp->peer))) != Health::Down) {
          return fail("recovery of a peer that is not down");
        }
      } else if (std::holds_alternative<ExitReady>(a)) {
        if (exited_) return fail("exit-ready twice");
        exited_ = true;
      }
    }
    if (!check_holds(s, me)) return false;
    held_until_.clear();
    for (const auto& [id, hm] : holds_) {
      if (h_->now() < hm.until) held_until_[id] = hm.until;
    }
    changes_.clear();
    departures_.clear();
    describe_.reset();
    // Take over from the dead at once: a route allocated to this serving member and held by
    // a member it sees DOWN has a write in flight, unless held down, backing off, or out of
    // write tokens after a throttling reply. Checked after every step, so the step in which
    // the peer went down emitted it.
    if (serving && s.write_tokens >= 1.0) {
      for (const auto& t : s.tables) {
        if (!(t.allocated == me) || held_until_.count(t.id) != 0) continue;
        for (const auto& r : t.routes) {
          if (r.in_flight || r.retry_at) continue;
          if (health(r.current) == Health::Down && member_of_target(r.current)) {
            return fail("table " + t.id + " allocated here, held by a dead peer, not written");
          }
        }
      }
    }
    return true;
  }

  // Hold-downs: a strike (a new hold-down) must have been possible, and its length, the
  // strike count and its lifting must be the model's.
  bool check_holds(const Snapshot& s, const Target& me) {
    const Time now = h_->now();
    std::set<std::string> present;
    for (const auto& t : s.tables) present.insert(t.id);
    // A table a Describe left out is forgotten by the machine, and relearnt from scratch.
    std::erase_if(holds_, [&](const auto& kv) { return present.count(kv.first) == 0; });
    std::erase_if(seen_, [&](const auto& kv) { return present.count(kv.first) == 0; });
    // A writer seen going down voids the hold-down its write caused (expired or not). With
    // several candidate writers the snapshot decides which one it was, below.
    std::map<std::string, std::string> maybe_lifted;  // table -> the peer that went down
    std::vector<Change> lifting = changes_;
    for (const auto& id : departures_) lifting.push_back({id, Health::Unknown, Health::Down});
    for (const auto& c : lifting) {
      if (c.to != Health::Down) continue;
      for (auto& [id, hm] : holds_) {
        if (hm.writers.count(c.peer) == 0) continue;
        if (hm.writers.size() == 1) {
          hm.until = Time{};
          hm.writers.clear();
        } else {
          maybe_lifted[id] = c.peer;
        }
      }
    }
    const auto quiet = 2 * (cfg_.hold_down_max + cfg_.describe_interval);
    for (const auto& t : s.tables) {
      HoldModel& hm = holds_[t.id];
      auto& [prev_until, prev_strikes] = seen_[t.id];
      const bool struck = t.strikes != prev_strikes || (t.hold_until && t.hold_until != prev_until);
      prev_until = t.hold_until;
      prev_strikes = t.strikes;
      if (struck) {
        // Possible only on a Describe showing the table routed to someone else (not
        // missing, not a blackhole), seen by a serving member.
        std::set<std::string> writers;
        bool rival = false;
        if (describe_) {
          for (const auto& ot : describe_->tables) {
            if (ot.id != t.id) continue;
            for (const auto& r : ot.routes) {
              if (r.target == me || r.target.kind == TargetKind::Blackhole ||
                  r.target.kind == TargetKind::Missing) {
                continue;
              }
              rival = true;
              std::string writer;  // "" for no member (the NAT Gateway, a stranger)
              for (const auto& m : cfg_.members) {
                if (m.instance_id != cfg_.self && member_target(m) == r.target) {
                  writer = m.instance_id;
                }
              }
              writers.insert(writer);
            }
          }
        }
        if (!serving_before_ || !rival) {
          return fail("table " + t.id +
                      " struck (hold-down) without a rival's write in a Describe");
        }
        if (!t.hold_until) return fail("table " + t.id + " struck without a hold-down");
        // Strikes are forgotten after a quiet period; a lifted hold-down counts as long past.
        const bool lifted_maybe = maybe_lifted.count(t.id) != 0 || hm.maybe_lifted;
        const int counted = hm.last_strike && now - hm.until > quiet ? 1 : hm.strikes + 1;
        const bool ok = t.strikes == counted || (lifted_maybe && t.strikes == 1);
        if (!ok) {
          return fail("table " + t.id + " at strike " + std::to_string(t.strikes) +
                      ", the judge counts " + std::to_string(counted));
        }
        Millis hold = cfg_.hold_down_base;
        for (int i = 1; i < t.strikes; ++i) hold = std::min(hold * 2, cfg_.hold_down_max);
        hold = std::min(hold, cfg_.hold_down_max);
        if (*t.hold_until != now + hold) {
          return fail("table " + t.id + " held down for " +
                      std::to_string((*t.hold_until - now) / 1ms) + " ms at strike " +
                      std::to_string(t.strikes) + ", expected " + std::to_string(hold.count()));
        }
        hm = HoldModel{t.strikes, now, now + hold, writers, false};
        continue;
      }
      const bool model_held = now < hm.until;
      // The snapshot judges by the time of the last event; the clock may have moved on since
      // (advance() crossed no deadline), so a hold-down it shows may already be over.
      const bool snap_held = t.hold_until && now < *t.hold_until;
      if (auto ml = maybe_lifted.find(t.id); ml != maybe_lifted.end()) {
        if (model_held && !snap_held) {  // it was that writer's
          hm.until = Time{};
          hm.writers.clear();
          continue;
        }
        if (model_held) {
          hm.writers.erase(ml->second);  // not that one
        } else {
          hm.maybe_lifted = true;  // expired: the snapshot cannot tell
        }
      }
      if (model_held != snap_held) {
        return fail("table " + t.id + (snap_held ? " held down" : " not held down") +
                    " where the judge has it " + (model_held ? "held down" : "free"));
      }
      if (model_held && *t.hold_until != hm.until) {
        return fail("table " + t.id + " hold-down ends at another time than the judge's");
      }
      if (t.strikes != hm.strikes) {
        return fail("table " + t.id + " strikes " + std::to_string(t.strikes) + ", the judge's " +
                    std::to_string(hm.strikes));
      }
    }
    return true;
  }

  // The machine's view, printed with a failure.
  std::string dump() const {
    Snapshot s = h_->snap();
    std::ostringstream os;
    for (const auto& t : trace_) os << "  " << t << "\n";
    os << "self " << cfg_.self << " state " << to_string(s.state) << " epoch " << s.epoch << "\n";
    for (const auto& m : s.members) {
      os << "  member " << m.instance_id << " zone " << m.zone << " " << to_string(m.health)
         << (m.self ? " (self)" : "") << "\n";
    }
    for (const auto& t : s.tables) {
      os << "  table " << t.id << " zone " << t.zone << " prio " << t.priority << " allocated ";
      PrintTo(t.allocated, &os);
      os << " strikes " << t.strikes << (t.hold_until ? " held" : "") << "\n";
      for (const auto& r : t.routes) {
        os << "    " << r.destination << " current ";
        PrintTo(r.current, &os);
        os << (r.in_flight ? " in-flight" : "") << (r.retry_at ? " retry-later" : "")
           << " attempts " << r.attempts << " " << r.last_error << "\n";
      }
    }
    return os.str();
  }

  bool is_member(const std::string& id) const {
    for (const auto& m : cfg_.members) {
      if (m.instance_id == id) return true;
    }
    return false;
  }
  bool member_of_target(const Target& t) const {
    for (const auto& m : cfg_.members) {
      if (member_target(m) == t && m.instance_id != cfg_.self) return true;
    }
    return false;
  }
  bool holder_was_member(const std::string& table, const std::string& dest) {
    Snapshot s = h_->snap();
    for (const auto& t : s.tables) {
      if (t.id != table) continue;
      for (const auto& r : t.routes) {
        if (r.destination == dest) return member_of_target(r.current);
      }
    }
    return false;
  }
  bool peer_went_down() const {
    for (const auto& c : changes_) {
      if (c.to == Health::Down) return true;
    }
    return !departures_.empty();
  }
  static std::string str(const std::vector<Change>& v) {
    std::string out = "[";
    for (const auto& c : v) {
      out +=
          (out.size() > 1 ? ", " : "") + c.peer + " " + to_string(c.from) + "->" + to_string(c.to);
    }
    return out + "]";
  }
  static std::string route_key(const std::string& table, const std::string& dest) {
    return table + " " + dest;
  }
  int count_recent(const std::vector<Time>& v) const {
    int n = 0;
    for (Time t : v) n += h_->now() - t < cfg_.hold_down_base ? 1 : 0;
    return n;
  }

  std::mt19937_64 rng_;
  Config cfg_;
  std::vector<TableSpec> tables_;
  std::map<std::pair<std::string, std::string>, Target> world_;
  std::map<std::string, bool> alive_;
  std::unique_ptr<Harness> h_;
  std::map<OpId, WriteRoute> in_flight_;
  std::vector<ApplyNat> nat_;
  std::vector<AssociateAddress> eips_;
  std::map<std::string, std::vector<Time>> member_takes_;
  std::map<std::string, std::vector<Time>> failures_;  // failed write completions sent
  std::vector<Time> downs_;                            // the model's peers going down
  std::vector<Time> stales_;  // a stale completion leaves a route to be re-read and rewritten
  std::map<std::string, Time> held_until_;  // the model's hold-downs at the end of the last step
  // The judge's models and what it fed in the current step.
  std::map<std::string, PeerModel> peers_;
  std::vector<Change> changes_;             // health changes the probes of this step make
  std::optional<RoutesObserved> describe_;  // the Describe of this step
  std::set<std::string> listed_;            // tables in the last Describe
  std::map<std::string, HoldModel> holds_;
  // The snapshot's hold-down end and strikes per table at the last step (to see a strike).
  std::map<std::string, std::pair<std::optional<Time>, int>> seen_;
  std::map<OpId, int> issued_gen_;          // reloads before each write in flight was requested
  std::map<std::string, Target> departed_;  // instance/ENI ids of members that left
  std::vector<std::string> departures_;     // members that left in this step
  std::set<std::string> adopted_by_judge_;  // tables the judge sent Adopt for
  int joined_ = 0;
  int reloads_ = 0;
  bool serving_before_ = false;
  // The last Reclaim per peer: its tables, its bound, whether ReclaimReady came since.
  struct Ask {
    std::vector<std::string> tables;
    Time until{};
    bool ready = false;
  };
  std::map<std::string, Ask> asks_;
  std::vector<std::string> trace_;
  bool exited_ = false;
  bool failed_ = false;
  int step_ = 0;
};

TEST(RandomEvents, InvariantsHoldAfterEveryStep) {
  std::uint64_t first = std::random_device{}();
  int runs = 2000;
  if (const char* env = std::getenv("HANAT_RANDOM_SEED")) {
    first = std::strtoull(env, nullptr, 10);
    runs = 1;
  }
  if (const char* env = std::getenv("HANAT_RANDOM_RUNS")) runs = std::atoi(env);
  std::cout << "random_test: " << runs << " sequences, seeds " << first << " to "
            << first + static_cast<std::uint64_t>(runs) - 1
            << " (HANAT_RANDOM_SEED=<seed> replays one)" << std::endl;
  RecordProperty("first_seed", std::to_string(first));
  for (std::uint64_t seed = first; seed < first + static_cast<std::uint64_t>(runs); ++seed) {
    RandomRun run{seed};
    if (!run.run(200)) {
      ADD_FAILURE() << "invariant broken with seed " << seed
                    << " (replay: HANAT_RANDOM_SEED=" << seed << " engine_test"
                    << " --gtest_filter=RandomEvents.*)";
      return;
    }
  }
}

}  // namespace
}  // namespace hanat::engine::testing
