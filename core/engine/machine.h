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
//
// Recovery (DESIGN rules 8 and 10; maybe_recover()): a peer is rebooted, stop-started or
// terminated only when
//  - it is *silent*: DOWN because every probe kind on every probed path reached `fall`, and
//    nothing answered since - an agent that answers "down" or "draining", or a host that
//    still answers ICMP or TCP while its hanatd is stopped, is alive and never fenced;
//  - it stayed silent for `recovery_after`, and this member has not recovered it within
//    `recovery_cooldown` (PastRecovery carries the cool-down across restarts);
//  - this member serves (Standby/Active: NAT verified, egress not failed) and its own link
//    is up, and it is not a self-suspect (below) unless its own checks clear it;
//  - the peer ranks after this member by (launch time, id) and no healthy member ranks
//    before this one, so two members never fence each other.
//
// Self-suspicion: when every peer (one or more) fell silent within `suspect_window` of each
// other, the likelier cause is this member's own path (its NIC, its security group, its
// subnet), not all of its peers dying together. While that holds:
//  - no recovery action, unless the egress self-check is configured and has passed without
//    a break since before the first of those peers fell silent (with the link up and the
//    NAT verified): traffic through this host's egress still reaches the internet, so the
//    host works and the silence is on the peers' side. Without an egress check nothing can
//    clear the suspicion: a member whose only peer fell silent never fences it.
//  - routes held by those peers are taken over only while this member's own checks pass
//    now: the egress check Up where one is configured (where none is, the NAT read-back and
//    the link are all there is, as before), and the link up. Blackhole, missing and
//    departed routes are taken as always: nobody serves them.
// When one of two or more peers that fell silent at once answers again, the suspicion is
// taken as confirmed: every one of those peers is judged afresh (Unknown, its runs and its
// silence cleared), so none of them loses its tables or is fenced on what this member saw
// through its own broken path while they climb back to `rise`.
// The egress check proves the public side only: a member whose private leg alone fails
// without losing carrier (the link watch sees nothing) and whose egress still works looks,
// to itself, exactly like a member whose peers all died; with one peer that cannot be told
// apart from inside the host.
//
// Own recovery: a member whose own data plane failed (Failing, Unhealthy) while every peer
// was silent at once, and works again, forgets the peers it judged DOWN from their silence
// alone: they go back to Unknown and are judged afresh from new probes (rise to UP, or fall
// to DOWN again and their routes are taken then, `fall` probes later). And when its own data
// plane fails, it abandons every claim it has in flight (AbandonWrite: the shell cancels
// the call, and ec2/http_client.cc makes sure a cancelled request is never delivered).
// Seen in the lab (e2e.two_per_zone, 2026-12-03): a NAT whose frames are all dropped with
// its carrier up (a hung host, a stalled ENI) sees every peer fall silent well before its
// egress check (a 3 s window) fails, and claims their tables; those claims, still within
// their timeout, reached EC2 when its network returned. With a longer cut, its egress check
// passed again before its peers had answered `rise` probes: still DOWN in its view, their
// tables were claimed anew. Either way their owners, alive all along, took them back at
// once (two writes and a reset of the zone's connections per table). The silence it saw
// was its own: it proves nothing about them. Peers whose agent reported their own data
// plane down were heard, and stay DOWN; and when some peer answered while this member was
// failing, its probes worked, so the silence of the others was real and stands.
//
// An agent-silent peer (its agent answered before and now fails on every path, the host
// still answering other probes: hanatd stopped, crashed or restarting) stays UP: its routes
// are not taken (DESIGN rule 10, the nftables table outlives the process) and it is never
// fenced, but it is allocated no table until its agent answers again (rule 9).

#include <map>
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
    // The last probe of any kind that got an answer (an agent saying down or draining
    // included): a peer heard since it went DOWN is not silent.
    std::optional<Time> last_heard;
    // Failed probes per (path, kind) since anything last answered; silent_since is set when
    // every probed kind on every probed path has `fall` of them.
    std::array<std::array<int, kProbeKinds>, kProbePaths> fails_since_heard{};
    std::optional<Time> silent_since;
    // Failed agent probes per path since its agent last answered anything.
    std::array<int, kProbePaths> agent_fails{};
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
  // Failback hold (Config::reclaim_wait): may the failback of `table` from live peer `m` go
  // now? Records the table for the peer's Reclaim; settle_reclaims() emits it and forgets
  // the holds no table needs any more.
  [[nodiscard]] bool reclaim_may_go(int m, const std::string& table);
  void settle_reclaims(std::vector<Action>& out);
  void hand_over_or_rescue(TableState& t, std::vector<Action>& out);
  void want(TableState& t, std::size_t r, const Target& target, std::vector<Action>& out);
  void maybe_recover(std::vector<Action>& out);
  // Recovery and suspicion helpers (see the header comment).
  [[nodiscard]] bool silent(const MemberState& m) const;
  [[nodiscard]] bool every_kind_failed(const MemberState& m) const;
  [[nodiscard]] bool agent_silent(const MemberState& m) const;
  // When every peer (>= 1) is silent and they fell silent within suspect_window: the first
  // of those times. nullopt: no self-suspicion.
  [[nodiscard]] std::optional<Time> suspicion() const;
  // Own checks pass now (takeover while suspect).
  [[nodiscard]] bool checks_pass() const;
  // Own checks have vouched for this member without a break since `since` (recovery while
  // suspect): the egress check is configured and Up, the link up, the NAT verified.
  [[nodiscard]] bool confirmed_since(Time since) const {
    return cfg_->egress_check && confirmed_since_ && *confirmed_since_ <= since;
  }
  void update_confirmation();
  // Own recovery (above): peers DOWN from silence alone go back to Unknown.
  void rejudge_silent_peers(std::vector<Action>& out);
  // Own data plane failed: every claim in flight is cancelled (AbandonWrite).
  void abandon_claims(std::vector<Action>& out);
  // Every peer (>= 1) silent now.
  [[nodiscard]] bool every_peer_silent() const;
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
  bool egress_confirmed_ = false;
  bool link_ok_ = true;
  // Every peer was silent at once while this member was Failing or Unhealthy (own recovery).
  bool isolated_while_failing_ = false;
  std::optional<Time> confirmed_since_;  // egress confirmed, link up and NAT ok since
  // Recovery actions by peer id. Kept apart from members_: a stop-started peer may leave
  // the member list and join again, and its cool-down must survive that.
  std::unordered_map<std::string, Time> last_recovery_;
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

  // Failbacks from live peers held for their flows, by peer instance id (ordered: the
  // Reclaim actions come out in a stable order).
  struct ReclaimHold {
    Time until{};
    std::vector<std::string> tables;
    bool announced = false;  // Reclaim emitted for the current `tables`
    bool ready = false;      // ReclaimReady arrived
    bool seen = false;       // a table wanted it in this reconcile
  };
  std::map<std::string, ReclaimHold> reclaims_;

  bool dirty_ = true;  // facts changed since the last reconcile
  std::optional<Time> next_deadline_;
};

}  // namespace hanat::engine
