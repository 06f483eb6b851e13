// SPDX-License-Identifier: GPL-2.0-or-later
#pragma once
// The failover state machine: DESIGN "Failover semantics" in one class.
//
// Contract with the shell (curl-multi style): feed every event to handle(), execute the
// returned actions, re-arm one timer at next_deadline() and send Tick{now} when it fires.
// The start-up actions (ApplyNat, DescribeRoutes) come out of the first handle() call, so
// the shell starts with handle(Tick{start}).
//
// Shape (STYLE C1): handle() first records facts (peer health, observed routes, completions,
// self-health), then asks the handler of the current state for a Transition, applies it in
// enter() - the one place state changes - and finally reconciles routes: for each table, in
// priority order, the state's policy says which target it wants (claim for self, hand over
// to a peer, rescue to the fallback) and the write pipeline emits what is missing, paced by
// a token bucket, never duplicating an in-flight write, retrying with exponential backoff.

#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "core/engine/peer_health.h"
#include "core/engine/types.h"

namespace hanat::engine {

class Machine {
 public:
  Machine(std::shared_ptr<const Config> cfg, Time start);
  // Writes take their tokens from `budget` from now on instead of the engine's own buckets
  // (Config::write_burst/write_refill_per_s); the daemon passes the EC2 client's.
  void use_write_budget(std::shared_ptr<WriteBudget> budget);

  [[nodiscard]] std::vector<Action> handle(const Event& ev);
  [[nodiscard]] std::optional<Time> next_deadline() const { return next_deadline_; }
  [[nodiscard]] Snapshot snapshot() const;
  [[nodiscard]] State state() const { return state_; }

 private:
  struct MemberState {
    Member m;
    PeerHealth health;    // unused for self
    Time health_since{};  // when health last changed (or the member appeared)
    std::optional<Time> down_since;
    std::optional<Time> last_recovery;
    bool agent_answered = false;  // its hanatd answered `up` at least once
    bool no_agent_reported = false;
  };
  struct RouteState {
    std::string destination;
    Target belief;  // last observed or written
    std::optional<OpId> op;
    int attempts = 0;
    Time retry_at{};
    std::optional<Time> last_write_done;
    std::string last_error;
    bool unsure = false;  // a write's outcome was lost (stale completion): wait for a Describe
    bool foreign_reported = false;  // the last RouteForeign emitted for it said foreign
  };
  struct TableState {
    std::string id;
    std::string zone;
    int priority = 0;
    std::vector<RouteState> routes;
    int alloc = -2;  // member index, or kAllocFallback / kAllocNobody
    Time hold_until{};
    int strikes = 0;
    std::optional<Time> last_strike;
    std::string held_by;  // member whose rewrite caused the hold-down
    std::uint64_t writes = 0;
    bool adopted = false;  // `hanatctl adopt`: its foreign routes count as unserved
  };
  enum class OpKind : std::uint8_t { Write, Nat, Recover, Eip };
  struct EipState {
    ZoneEip eip;
    bool held = false;
    std::optional<OpId> op;
    int attempts = 0;
    Time retry_at{};
    std::string last_error;
  };
  struct PendingOp {
    OpKind kind = OpKind::Write;
    Epoch epoch = 0;
    std::string table;
    std::size_t route = 0;
    Target target;
    WriteApi api = WriteApi::ReplaceRoute;
  };
  struct Transition {
    State next;
    Reason reason;
    std::string detail;
  };
  // Where a route currently points, from this member's point of view.
  enum class Holder : std::uint8_t {
    Self,
    LiveMember,
    DeadMember,
    UnknownMember,
    Gone,  // an instance or ENI of a member that has left the group
    Fallback,
    Orphan,   // blackhole or missing: nobody serves it
    Foreign,  // anything else: an operator's route, never written (DESIGN rule 3)
  };

  // facts
  void absorb(const Event& ev, std::vector<Action>& out);
  void absorb_probe(const ProbeResult& r, std::vector<Action>& out);
  void absorb_routes(const RoutesObserved& o);
  void relayout(const RoutesObserved& o, std::vector<const ObservedTable*>& src);
  void absorb_ec2(const Ec2Done& d);
  void absorb_nat(const NatApplied& n);
  void absorb_config(const ConfigChanged& c);
  void absorb_members(const MembersChanged& c);
  void absorb_adopt(const Adopt& a);
  void index_config();

  // per-state handlers: compute, never apply
  std::optional<Transition> decide(const Event& ev) const;
  std::optional<Transition> on_starting(const Event& ev) const;
  std::optional<Transition> on_serving(const Event& ev) const;  // Standby and Active
  std::optional<Transition> on_handing_over(const Event& ev) const;
  std::optional<Transition> on_unhealthy(const Event& ev) const;
  std::optional<Transition> on_drained(const Event& ev) const;
  std::optional<Transition> after_reconcile() const;
  // the one place transitions are applied
  void enter(const Transition& t, std::vector<Action>& out);

  // routes
  void reconcile(std::vector<Action>& out);
  void claim(TableState& t, std::vector<Action>& out);
  void hand_over_or_rescue(TableState& t, std::vector<Action>& out);
  void want(TableState& t, std::size_t r, const Target& target, std::vector<Action>& out);
  void maybe_recover(std::vector<Action>& out);
  void move_eips(std::vector<Action>& out);
  [[nodiscard]] bool claiming(const RouteState& r) const;
  void strike(TableState& t, const std::string& writer);
  void recompute_allocation();
  void report_foreign(std::vector<Action>& out);

  // helpers
  [[nodiscard]] bool healthy_self() const { return egress_ok_ && nat_ok_ && observed_; }
  [[nodiscard]] bool owns_any() const;
  [[nodiscard]] bool handover_pending() const;
  [[nodiscard]] Holder holder(const Target& t) const;
  [[nodiscard]] int member_of(const Target& t) const;
  [[nodiscard]] Target target_of(int member) const;
  [[nodiscard]] Target alloc_target(const TableState& t) const;
  [[nodiscard]] bool same_target(const Target& a, const Target& b) const;
  [[nodiscard]] bool agent_probed() const;
  // A foreign route of an adopted table is written as if it were unserved.
  [[nodiscard]] bool unserved(const TableState& t, Holder h) const {
    return h == Holder::Orphan || h == Holder::Gone || (h == Holder::Foreign && t.adopted);
  }
  [[nodiscard]] bool serving() const { return state_ == State::Standby || state_ == State::Active; }
  [[nodiscard]] Millis backoff(int attempts) const;
  void consider(Time t);
  bool take_token(WriteApi api);  // false (and a deadline at the refill) when none is left
  OpId next_op() { return ++last_op_; }

  std::shared_ptr<const Config> cfg_;
  Epoch epoch_ = 1;
  State state_ = State::Starting;
  Time now_;
  Time state_since_;
  std::optional<Time> eligible_since_;
  std::optional<Time> handover_deadline_;

  std::vector<MemberState> members_;
  int self_ = -1;
  std::unordered_map<std::string, int> member_by_target_;  // instance id and ENI id -> index
  // Instance and ENI ids of members that left the group (DESIGN rule 9).
  // Routes still pointing at them are served by nobody and are taken at once. Bounded:
  // the oldest entries are forgotten first (by then EC2 shows such routes as blackholes).
  std::unordered_set<std::string> departed_;
  std::vector<std::string> departed_order_;
  std::vector<TableState> tables_;
  std::vector<EipState> eips_;
  std::unordered_map<std::string, std::size_t> table_by_id_;
  std::vector<std::size_t> order_;  // tables_ by priority desc, id asc
  bool alloc_dirty_ = true;

  bool egress_ok_ = true;
  std::string egress_detail_;
  bool nat_ok_ = false;
  bool nat_failed_ = false;
  bool nat_wanted_ = true;  // an ApplyNat is due (start, failure, reload)
  std::optional<OpId> nat_op_;
  Time nat_retry_at_{};
  bool observed_ = false;

  std::unordered_map<OpId, PendingOp> pending_;
  std::unordered_map<OpId, Time> describes_;  // DescribeRoutes op -> sent at
  Time next_describe_at_{};
  OpId last_op_ = 0;
  std::uint64_t stale_completions_ = 0;
  std::uint64_t writes_total_ = 0;
  std::shared_ptr<WriteBudget> budget_;
  LocalWriteBudget* local_budget_ = nullptr;  // budget_ when it is the engine's own

  bool dirty_ = true;  // facts changed since the last reconcile
  std::optional<Time> next_deadline_;
};

}  // namespace hanat::engine
