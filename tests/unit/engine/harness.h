// SPDX-License-Identifier: GPL-2.0-or-later
#pragma once
// Test harness for the failover Machine (STYLE C6): a fake clock, advance() that delivers a
// Tick at every next_deadline() it crosses, and helpers that play the shell's part.
// Sim (below) runs several Machines against one shared set of route tables, applying their
// writes, so partition and flapping scenarios are seen from both sides.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <map>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "core/engine/machine.h"

namespace hanat::engine::testing {

using namespace std::chrono_literals;

inline const Time kStart = Time{} + std::chrono::hours(1000);

inline Target inst(std::string id) {
  return Target{TargetKind::Instance, std::move(id)};
}
inline Target natgw(std::string id) {
  return Target{TargetKind::NatGateway, std::move(id)};
}
inline Target blackhole() {
  return Target{TargetKind::Blackhole, "eni-gone"};
}

// Group of two by default: i-a in zone a (self), i-b in zone b. Times are short so that
// scenarios stay readable; every test states the values it depends on.
inline Config base_config(std::string self = "i-a") {
  Config c;
  c.self = std::move(self);
  c.members = {{"i-a", "", "a", 100}, {"i-b", "", "b", 200}};
  c.probe_kinds = {ProbeKind::Icmp};
  c.peer_thresholds = {.rise = 5, .fall = 3};
  c.failback_delay = 30s;
  c.hold_down_base = 10s;
  c.hold_down_max = 160s;
  c.describe_interval = 15s;
  c.observe_settle = 2s;
  c.handover_deadline = 10s;
  c.retry_base = 200ms;
  c.retry_max = 10s;
  return c;
}

struct TableSpec {
  std::string id;
  std::string zone;
  Target target;
  int priority = 0;
};

template <class T>
std::vector<T> only(const std::vector<Action>& actions) {
  std::vector<T> out;
  for (const auto& a : actions) {
    if (const auto* x = std::get_if<T>(&a)) out.push_back(*x);
  }
  return out;
}

inline std::vector<std::string> write_tables(const std::vector<Action>& actions) {
  std::vector<std::string> out;
  for (const auto& w : only<WriteRoute>(actions)) out.push_back(w.table);
  return out;
}

class Harness {
 public:
  explicit Harness(Config cfg, Time start = kStart)
      : cfg_(std::make_shared<const Config>(std::move(cfg))), m_(cfg_, start), now_(start) {}

  Machine& m() { return m_; }
  Time now() const { return now_; }
  State state() const { return m_.state(); }
  Snapshot snap() const { return m_.snapshot(); }
  const Config& cfg() const { return *cfg_; }

  // Delivers one event now; its actions are collected (see take()).
  std::vector<Action> send(const Event& ev) {
    auto out = m_.handle(ev);
    record(out);
    return out;
  }

  // Moves the fake clock forward, delivering Tick at every deadline crossed on the way.
  void advance(std::chrono::nanoseconds d) {
    Time until = now_ + d;
    for (int guard = 0; guard < 100000; ++guard) {
      auto dl = m_.next_deadline();
      if (!dl || *dl > until) break;
      now_ = std::max(now_, *dl);
      send(Tick{now_});
    }
    now_ = until;
  }

  // Everything emitted since the last take().
  std::vector<Action> take() {
    auto out = std::move(log_);
    log_.clear();
    return out;
  }

  // Probes: n results for `peer`, one per `every`, the clock advancing before each.
  std::vector<Action> probes(const std::string& peer, bool ok, int n, Millis every = 200ms,
                             ProbeKind kind = ProbeKind::Icmp) {
    std::vector<Action> out;
    for (int i = 0; i < n; ++i) {
      advance(every);
      auto a = send(ProbeResult{peer, kind, ok, now_});
      out.insert(out.end(), a.begin(), a.end());
    }
    return out;
  }

  // A Describe sent now (by the shell on its own) shows these tables.
  std::vector<Action> observe(const std::vector<TableSpec>& tables) {
    return send(observation(tables, now_));
  }
  static RoutesObserved observation(const std::vector<TableSpec>& tables, Time sent) {
    RoutesObserved o;
    o.at = sent;
    for (const auto& t : tables) {
      ObservedTable ot{t.id, t.zone, t.priority, {}};
      if (t.target.kind != TargetKind::Missing) ot.routes.push_back({"0.0.0.0/0", t.target});
      o.tables.push_back(ot);
    }
    return o;
  }

  // Completes every write in flight with `outcome`, in the order they were emitted.
  std::vector<Action> complete_writes(Ec2Outcome outcome = Ec2Outcome::Ok, std::string code = "") {
    std::vector<Action> out;
    auto writes = std::move(in_flight_);
    in_flight_.clear();
    for (const auto& w : writes) {
      auto a = send(Ec2Done{w.op, w.epoch, outcome, code, now_});
      out.insert(out.end(), a.begin(), a.end());
    }
    return out;
  }
  const std::vector<WriteRoute>& in_flight() const { return in_flight_; }
  void forget_in_flight() { in_flight_.clear(); }

  // Start-up: NAT applied, tables observed, every peer brought Up (or Down) by probes.
  void start(const std::vector<TableSpec>& tables, bool peers_up = true) {
    send(Tick{now_});
    EXPECT_TRUE(nat_op_.has_value()) << "no ApplyNat at start";
    if (nat_op_) send(NatApplied{nat_op_->op, nat_op_->epoch, true, "", now_});
    observe(tables);
    int n = peers_up ? cfg_->peer_thresholds.rise : cfg_->peer_thresholds.fall;
    for (int i = 0; i < n; ++i) {
      advance(200ms);
      for (const auto& m : cfg_->members) {
        if (m.instance_id != cfg_->self)
          send(ProbeResult{m.instance_id, ProbeKind::Icmp, peers_up, now_});
      }
    }
  }

  void reload(Config c) {
    cfg_ = std::make_shared<const Config>(std::move(c));
    send(ConfigChanged{cfg_, now_});
  }

 private:
  void record(const std::vector<Action>& out) {
    for (const auto& a : out) {
      if (const auto* w = std::get_if<WriteRoute>(&a)) in_flight_.push_back(*w);
      if (const auto* n = std::get_if<ApplyNat>(&a)) nat_op_ = *n;
      log_.push_back(a);
    }
  }

  std::shared_ptr<const Config> cfg_;
  Machine m_;
  Time now_;
  std::vector<Action> log_;
  std::vector<WriteRoute> in_flight_;
  std::optional<ApplyNat> nat_op_;
};

// Several Machines sharing one set of route tables. Each step of `dt`: every member probes
// every other (reachable(from, to, now) decides the result), writes complete after one step
// and land in the shared tables, Describes are answered at once, deadlines are ticked.
class Sim {
 public:
  using Reach = std::function<bool(const std::string& from, const std::string& to, Time now)>;

  Sim(const std::vector<Config>& cfgs, std::vector<TableSpec> tables, Time start = kStart)
      : now_(start), tables_(std::move(tables)) {
    for (const auto& c : cfgs) {
      nodes_.push_back(std::make_unique<Node>(c, start));
    }
    for (auto& n : nodes_) {
      deliver(*n, Tick{now_});
    }
  }

  struct WriteLog {
    Time at;
    std::string by;
    std::string table;
    Target target;
  };

  Machine& machine(const std::string& id) { return node(id).m; }
  const std::vector<WriteLog>& writes() const { return writes_; }
  int recoveries(const std::string& by) const {
    auto it = recoveries_.find(by);
    return it == recoveries_.end() ? 0 : it->second;
  }
  Time now() const { return now_; }
  Target target(const std::string& table) const {
    for (const auto& t : tables_) {
      if (t.id == table) return t.target;
    }
    return {};
  }

  // Runs for `d` in steps of `dt`.
  void run(std::chrono::nanoseconds d, std::chrono::nanoseconds dt, const Reach& reach) {
    Time until = now_ + d;
    while (now_ < until) {
      now_ += dt;
      for (auto& n : nodes_) {
        if (!n->dead) step(*n, reach);
      }
    }
  }

  // The member's host stops: its machine runs no more.
  void kill(const std::string& id) { node(id).dead = true; }

  // Delivers an event to one member (drain, shutdown, self-health...).
  void send(const std::string& id, const Event& ev) { deliver(node(id), ev); }

 private:
  struct Node {
    Node(const Config& c, Time start) : cfg(std::make_shared<const Config>(c)), m(cfg, start) {}
    std::shared_ptr<const Config> cfg;
    Machine m;
    std::vector<WriteRoute> writes;  // issued, completing on the next step
    std::vector<ApplyNat> nats;
    std::vector<DescribeRoutes> describes;
    std::vector<RecoverPeer> recovers;
    bool dead = false;
  };

  Node& node(const std::string& id) {
    for (auto& n : nodes_) {
      if (n->cfg->self == id) return *n;
    }
    ADD_FAILURE() << "no member " << id;
    return *nodes_.front();
  }

  void deliver(Node& n, const Event& ev) {
    for (const auto& a : n.m.handle(ev)) {
      if (const auto* w = std::get_if<WriteRoute>(&a)) {
        n.writes.push_back(*w);
        writes_.push_back({now_, n.cfg->self, w->table, w->target});
      }
      if (const auto* x = std::get_if<ApplyNat>(&a)) n.nats.push_back(*x);
      if (const auto* r = std::get_if<RecoverPeer>(&a)) {
        n.recovers.push_back(*r);
        ++recoveries_[n.cfg->self];
      }
      if (const auto* d = std::get_if<DescribeRoutes>(&a)) n.describes.push_back(*d);
    }
  }

  void step(Node& n, const Reach& reach) {
    // Complete last step's calls.
    auto writes = std::move(n.writes);
    n.writes.clear();
    for (const auto& w : writes) {
      for (auto& t : tables_) {
        if (t.id == w.table) t.target = w.target;
      }
      deliver(n, Ec2Done{w.op, w.epoch, Ec2Outcome::Ok, "", now_});
    }
    auto recovers = std::move(n.recovers);
    n.recovers.clear();
    for (const auto& r : recovers) deliver(n, Ec2Done{r.op, r.epoch, Ec2Outcome::Ok, "", now_});
    auto nats = std::move(n.nats);
    n.nats.clear();
    for (const auto& x : nats) deliver(n, NatApplied{x.op, x.epoch, true, "", now_});
    auto describes = std::move(n.describes);
    n.describes.clear();
    for (const auto& d : describes) {
      RoutesObserved o{d.op, {}, now_};
      for (const auto& t : tables_) {
        ObservedTable ot{t.id, t.zone, t.priority, {}};
        if (t.target.kind != TargetKind::Missing) ot.routes.push_back({"0.0.0.0/0", t.target});
        o.tables.push_back(ot);
      }
      deliver(n, o);
    }
    for (const auto& peer : nodes_) {
      if (peer.get() == &n) continue;
      bool ok = !peer->dead && reach(n.cfg->self, peer->cfg->self, now_);
      deliver(n, ProbeResult{peer->cfg->self, ProbeKind::Icmp, ok, now_});
    }
    if (auto dl = n.m.next_deadline(); dl && *dl <= now_) deliver(n, Tick{now_});
  }

  Time now_;
  std::vector<std::unique_ptr<Node>> nodes_;
  std::vector<TableSpec> tables_;
  std::vector<WriteLog> writes_;
  std::map<std::string, int> recoveries_;
};

}  // namespace hanat::engine::testing

namespace hanat::engine {
inline void PrintTo(const Target& t, std::ostream* os) {
  *os << to_string(t.kind) << (t.id.empty() ? "" : ":") << t.id;
}
namespace testing {
inline void PrintTo(const Sim::WriteLog& w, std::ostream* os) {
  *os << "{" << w.by << " wrote " << w.table << " -> ";
  PrintTo(w.target, os);
  *os << " at +" << std::chrono::duration_cast<Millis>(w.at - kStart).count() << "ms}";
}
}  // namespace testing
inline void PrintTo(const WriteRoute& w, std::ostream* os) {
  *os << "WriteRoute{op " << w.op << ", epoch " << w.epoch << ", "
      << (w.verb == RouteVerb::Create ? "create " : "replace ") << w.table << " " << w.destination
      << " -> ";
  PrintTo(w.target, os);
  *os << "}";
}
}  // namespace hanat::engine
