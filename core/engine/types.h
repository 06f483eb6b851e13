// SPDX-License-Identifier: GPL-2.0-or-later
#pragma once
// The engine's vocabulary: its configuration, the events it consumes, the actions it emits
// and the snapshot it exposes. Plain data only; the behaviour lives in machine.h.

#include <array>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "core/base/health.h"
#include "core/base/probe_kind.h"

namespace hanat::engine {

using Time = std::chrono::steady_clock::time_point;  // the type only: the core never calls now()
using Millis = std::chrono::milliseconds;
using OpId = std::uint64_t;
using Epoch = std::uint64_t;

// Shared with probes/ and the config (core/base): one enum and one hysteresis for all.
using core::Health;
using core::HealthChange;
using core::HealthTracker;
using core::kProbeKinds;
using core::kProbePaths;
using core::ProbeKind;
using core::ProbePath;
using core::Thresholds;
using core::to_string;

// One NAT instance of the group, as configured or discovered by tag.
struct Member {
  std::string instance_id;
  std::string eni_id;  // when set, routes point at this ENI instead of the instance
  std::string zone;
  std::int64_t launch_time = 0;  // EC2 LaunchTime in seconds; older ranks first in ties
  // The peer is probed on its public address too (it has one and `probe.paths` names
  // "public"): it is DOWN only when silent on both paths.
  bool public_path = false;
};

// What a route points at, as read from DescribeRouteTables or as written by the engine.
// Every target kind EC2 returns has its own value (EC2 API reference, "Route"), so that a
// route an operator pointed at a transit gateway or a peering connection is recognised as
// such: DESIGN rule 3, such a route is foreign and never written.
enum class TargetKind : std::uint8_t {
  Missing,            // no route for the destination
  Blackhole,          // the route exists but its target is gone (State=blackhole)
  Instance,           // InstanceId
  Eni,                // NetworkInterfaceId
  NatGateway,         // NatGatewayId
  TransitGateway,     // TransitGatewayId (tgw-)
  Peering,            // VpcPeeringConnectionId (pcx-)
  Gateway,            // GatewayId: internet (igw-), virtual private (vgw-), endpoint (vpce-)
  EgressOnlyGateway,  // EgressOnlyInternetGatewayId (eigw-)
  LocalGateway,       // LocalGatewayId (lgw-, Outposts)
  CarrierGateway,     // CarrierGatewayId (cagw-, Wavelength)
  CoreNetwork,        // CoreNetworkArn (Cloud WAN)
  Other,              // a target this version does not know
};

struct Target {
  TargetKind kind = TargetKind::Missing;
  std::string id;
  // Origin=EnableVgwRoutePropagation: put there by a virtual private gateway's route
  // propagation, not by anyone's CreateRoute. Always foreign.
  bool propagated = false;
  friend bool operator==(const Target&, const Target&) = default;
};

enum class RecoveryAction : std::uint8_t { None, Reboot, StopStart, Terminate };

// An Elastic IP that gives a zone a stable egress address: it follows that zone's tables.
struct ZoneEip {
  std::string zone;
  std::string allocation_id;  // eipalloc-...
};

// The engine's own configuration. The daemon maps the TOML file into it; validate() names
// what is wrong before a Config reaches a Machine.
struct Config {
  std::string self;             // this host's instance id; must be one of `members`
  std::vector<Member> members;  // the whole group, self included
  std::vector<ProbeKind> probe_kinds{ProbeKind::Icmp};  // kinds the shell probes peers with
  Thresholds peer_thresholds{.rise = 5, .fall = 3};
  Millis failback_delay{30'000};
  bool preempt = true;  // false: a home member never takes its tables back from a live peer
  // Failback that keeps connections (DESIGN "Connection survival"): before the home member
  // points a table back at itself, the live peer that serves it must hand over the flows it
  // translates for the table's sources, or they are reset. When a failback of a live peer's
  // tables is due, the engine emits Reclaim{peer, tables} and holds those writes until
  // ReclaimReady{peer} (the peer's snapshot is installed) or this long, whichever is first:
  // a failback is delayed by at most this, never blocked. 0: no hold (flows are not kept).
  Millis reclaim_wait{0};
  Millis hold_down_base{10'000};
  Millis hold_down_max{300'000};
  std::string fallback_nat_gateway;  // NAT Gateway id used when no member is healthy; may be empty
  std::vector<std::string> destinations{"0.0.0.0/0"};  // managed destinations of every table
  Millis describe_interval{15'000};  // periodic DescribeRouteTables (4 reads a minute)
  // EC2 reads are eventually consistent: a Describe sent shortly after a write may still show
  // the old target. Observations of a route sent less than this after our last write to it
  // are ignored. (AWS EC2 API reference, "Eventual consistency".)
  Millis observe_settle{2'000};
  Millis handover_deadline{10'000};
  Millis retry_base{200};
  Millis retry_max{10'000};
  Millis nat_retry{5'000};
  // The engine's own write buckets when no WriteBudget is given (tests, benchmarks, plan):
  // one per API, EC2's mutating default (50 burst, 5/s refill per account and region, AWS
  // "Request throttling for the Amazon EC2 API"). The daemon gives the EC2 client's buckets.
  int write_burst = 50;
  double write_refill_per_s = 5.0;
  RecoveryAction recovery = RecoveryAction::None;
  Millis recovery_after{60'000};      // a peer must stay DOWN this long before recovery
  Millis recovery_cooldown{600'000};  // at most one recovery per peer per cool-down
  // Peers that fall silent within this of each other fell silent "at once": if that is every
  // peer, this member suspects its own path first (see machine.h, "Self-suspicion"). The
  // shell gives one detection time: probe interval x fall + probe timeout.
  Millis suspect_window{1'000};
  // The shell runs the egress self-check (probes through this host's egress interface to
  // internet targets). Only that check can clear a self-suspicion for a recovery action.
  bool egress_check = false;
  // Optional EIP move. The member whose write of the zone's anchor table - the first of the
  // zone's tables by id - succeeded associates the zone's EIP with itself: with its primary
  // private IP for its own zone, with a secondary private IP of its own for any other zone.
  std::vector<ZoneEip> eips;
};

// The EC2 APIs the engine writes with. EC2 meters each API in its own bucket, so a
// CreateRoute never waits for ReplaceRoute tokens.
enum class WriteApi : std::uint8_t { CreateRoute, ReplaceRoute, AssociateAddress };
const char* to_string(WriteApi a);

// Where the engine's writes take their tokens. The daemon passes the EC2 client's own per-API
// buckets (one set of buckets per process, not a second copy in the engine that drifts from
// the client's); the engine takes a token before it emits a write, and the client sends that
// write without taking another.
class WriteBudget {
 public:
  virtual ~WriteBudget() = default;
  // Takes one token of `api`. nullopt when taken; otherwise when one will be available.
  [[nodiscard]] virtual std::optional<Time> take(WriteApi api, Time now) = 0;
  // EC2 answered RequestLimitExceeded: its bucket is empty, so this one should be too.
  virtual void drain(WriteApi api, Time now) = 0;
  [[nodiscard]] virtual double tokens(WriteApi api, Time now) const = 0;
};

// Token buckets kept by the engine itself, one per API, of `burst` and `refill_per_s`.
class LocalWriteBudget final : public WriteBudget {
 public:
  LocalWriteBudget(double burst, double refill_per_s, Time start);
  void set_limits(double burst, double refill_per_s);
  [[nodiscard]] std::optional<Time> take(WriteApi api, Time now) override;
  void drain(WriteApi api, Time now) override;
  [[nodiscard]] double tokens(WriteApi api, Time now) const override;

 private:
  double burst_;
  double refill_;
  double tokens_[3];
  Time at_[3];
};

// Empty when valid; otherwise one message per problem, naming the field.
std::vector<std::string> validate(const Config& cfg);

// ---- events -------------------------------------------------------------------------------

// One probe of a peer. `reports_down` is set by the agent check when the peer answered and
// said its own data plane is down: that peer is DOWN at once.
struct ProbeResult {
  std::string peer;
  ProbeKind kind = ProbeKind::Icmp;
  bool ok = false;
  Time at{};
  bool reports_down = false;
  ProbePath path = ProbePath::Private;  // the address the probe was sent to
};

struct ObservedRoute {
  std::string destination;
  Target target;
};
struct ObservedTable {
  std::string id;
  std::string zone;                   // home zone (tag hanat:zone, else the zone of its subnets)
  int priority = 0;                   // higher is written first in a failover
  std::vector<ObservedRoute> routes;  // managed destinations absent here are Missing
};
// The full list of managed route tables from one DescribeRouteTables. `op` is the id of the
// engine's DescribeRoutes (0 when the shell described on its own); `at` is when the request
// was sent, which is what freshness is judged by.
struct RoutesObserved {
  OpId op = 0;
  std::vector<ObservedTable> tables;
  Time at{};
};

enum class Ec2Outcome : std::uint8_t { Ok, Throttled, Retryable, Fatal };
struct Ec2Done {
  OpId op = 0;
  Epoch epoch = 0;
  Ec2Outcome outcome = Ec2Outcome::Ok;
  std::string code;  // EC2 error code for Fatal (and informative otherwise)
  Time at{};
};
struct NatApplied {
  OpId op = 0;
  Epoch epoch = 0;
  bool ok = false;
  std::string detail;
  Time at{};
};
struct SelfHealth {  // egress check, forwarding, masquerade read-back
  bool ok = true;
  std::string detail;
  Time at{};
  // The egress self-check is configured and currently Up: a probe through this host's
  // egress interface reached the internet targets. Distinct from `ok`, which is also true
  // while that check is unknown or not configured.
  bool egress_confirmed = false;
  // This host's own link (the interface of its private address) has carrier. While it is
  // down, failed peer probes are not even reported; recovery waits for it too.
  bool link_ok = true;
};
struct Drain {
  bool on = true;  // false: undrain
  Time at{};
};
enum class TerminationKind : std::uint8_t { Spot, Asg };
struct TerminationNotice {
  TerminationKind kind = TerminationKind::Spot;
  Time at{};
};
struct Shutdown {  // SIGTERM
  Time at{};
};
struct ConfigChanged {
  std::shared_ptr<const Config> cfg;
  Time at{};
};
struct Tick {
  Time now{};
};
// Live membership (DESIGN rule 9): the shell re-read the group and found this list (self
// included). A member that is new starts with unknown health and is allocated nothing until
// it reaches `rise` (and its agent answered); a member that is gone has left the group
// (terminated, stopped, untagged) and the routes it holds are taken at once. Unlike a
// reload, nothing in flight is invalidated: the epoch stays.
struct MembersChanged {
  std::vector<Member> members;
  Time at{};
};
// `hanatctl adopt rtb-...`: the operator hands a table whose routes are foreign back to
// hanat. Its foreign routes are treated as unserved (written like a blackhole) until they
// point at a member or the fallback again; then the table is managed as any other.
struct Adopt {
  std::string table;
  Time at{};
};
// A recovery action this member started before a restart, read back from the state
// directory: the cool-down counts from `at` (already converted to the engine's clock; in the
// past). A later one for the same peer wins.
struct PastRecovery {
  std::string peer;
  Time at{};
};
// The live peer whose tables this member reclaims (Reclaim) has handed over its flows for
// them: its complete snapshot is installed here and steered back to it. The held failback
// writes to that peer's tables go now.
struct ReclaimReady {
  std::string peer;
  Time at{};
};
using Event = std::variant<ProbeResult, RoutesObserved, Ec2Done, NatApplied, SelfHealth, Drain,
                           TerminationNotice, Shutdown, ConfigChanged, Tick, MembersChanged, Adopt,
                           PastRecovery, ReclaimReady>;

// ---- actions ------------------------------------------------------------------------------

enum class State : std::uint8_t {
  Starting,   // NAT not applied yet or no route table observed yet
  Standby,    // healthy, owns no route
  Active,     // healthy, owns (or is claiming) at least one route
  Failing,    // own data plane failed: handing routes away, then Unhealthy
  Unhealthy,  // own data plane failed, routes handed away
  Draining,   // operator drain: handing routes away, then Drained
  Drained,
  Leaving,  // SIGTERM or termination notice: handing routes away, then ExitReady
  ExitReady,
};

enum class Reason : std::uint8_t {
  Started,
  Ready,  // NAT applied and route tables observed
  NatFailed,
  SelfUnhealthy,
  SelfHealthy,
  Claimed,   // now owns at least one route
  Released,  // owns no route any more
  DrainRequested,
  Undrained,
  ShutdownRequested,
  TerminationNotice,
  HandoverComplete,
  HandoverTimeout,
};

struct ApplyNat {  // install and verify the masquerade table; answer with NatApplied
  OpId op = 0;
  Epoch epoch = 0;
};
struct DescribeRoutes {  // answer with RoutesObserved{op}
  OpId op = 0;
};
enum class RouteVerb : std::uint8_t { Replace, Create };
struct WriteRoute {  // ReplaceRoute / CreateRoute; answer with Ec2Done
  OpId op = 0;
  Epoch epoch = 0;
  RouteVerb verb = RouteVerb::Replace;
  std::string table;
  std::string destination;
  Target target;
};
// AssociateAddress(AllowReassociation) onto this host; answer with Ec2Done. `home`: the
// zone is this member's own zone, so the EIP goes on the primary private IP (which the
// masquerade rule already uses); otherwise onto a secondary private IP that the shell assigns
// to this host for the zone and SNATs the zone's sources to.
struct AssociateAddress {
  OpId op = 0;
  Epoch epoch = 0;
  std::string allocation_id;
  std::string zone;
  bool home = true;
};
// This member no longer serves the zone of an EIP it had associated: whoever serves it now
// moves the EIP away (AllowReassociation). The shell drops the zone's SNAT rule and releases
// the secondary private IP it assigned for the zone. No answer.
struct ReleaseEip {
  std::string allocation_id;
  std::string zone;
  bool home = true;
};
struct RecoverPeer {  // RebootInstances / StopInstances+StartInstances / TerminateInstances
  OpId op = 0;
  Epoch epoch = 0;
  std::string peer;
  RecoveryAction what = RecoveryAction::Reboot;
};
struct Notify {  // one line per own transition
  State from = State::Starting;
  State to = State::Starting;
  Reason reason = Reason::Started;
  std::string detail;
};
struct PeerChanged {  // one line per peer health transition
  std::string peer;
  Health from = Health::Unknown;
  Health to = Health::Unknown;
  std::string detail;
};
struct ExitReady {  // the shell may exit now
  Reason reason = Reason::ShutdownRequested;
};
// A managed route became foreign (points at something outside the group and not the
// fallback: never written) or stopped being foreign. One per change, for the log.
struct RouteForeign {
  std::string table;
  std::string destination;
  Target target;
  bool foreign = true;
};
// A peer carries the group tag but its agent never answered and its agent probes reached
// `fall`: it runs no hanatd and is allocated nothing. Once per peer, for the log.
struct PeerWithoutAgent {
  std::string peer;
};
// One path to a peer changed while the peer is probed on both paths. `broken` is true while
// exactly one path is down and the peer is alive: its tables stay with it, and the operator
// has a path (typically a security group on the private side) to fix.
struct PeerPathChanged {
  std::string peer;
  ProbePath path = ProbePath::Private;
  Health to = Health::Unknown;
  bool broken = false;
};
// A claim in flight (a WriteRoute pointing a route at this member) that this member no longer
// wants: the shell cancels the call wherever it is (queued, backing off, on the wire). No
// answer; the route's belief stays what was last observed, and the next Describe tells.
struct AbandonWrite {
  OpId op = 0;
  std::string table;
  std::string destination;
};
// A failback of `tables` from the live peer `peer` is due (Config::reclaim_wait > 0): the
// shell asks that peer to hand over its flows for them, and answers with ReclaimReady once
// they are installed. The writes wait for it at most reclaim_wait. Emitted once per failback,
// again when the set of tables grows. No answer needed: without one the writes go at the bound.
struct Reclaim {
  std::string peer;
  std::vector<std::string> tables;  // in write order (priority, then id)
};
using Action = std::variant<ApplyNat, DescribeRoutes, WriteRoute, AssociateAddress, ReleaseEip,
                            RecoverPeer, Notify, PeerChanged, ExitReady, RouteForeign,
                            PeerWithoutAgent, PeerPathChanged, AbandonWrite, Reclaim>;

// ---- snapshot -----------------------------------------------------------------------------

struct MemberSnapshot {
  std::string instance_id;
  std::string zone;
  bool self = false;
  Health health = Health::Unknown;
  bool reports_down = false;
  std::optional<Time> down_since;
  // When `health` took its current value: the last health transition of a peer (or when
  // it joined the configuration); for self, the state_since of the machine.
  Time since{};
  // The peer's agent (its hanatd) answered `up` at least once. Only such members are
  // allocated tables (DESIGN rule 9). Always true for self.
  bool agent_answered = false;
  // The agent is probed, has never answered and its probes reached `fall`: the instance
  // carries the group tag but runs no hanatd. It is given nothing.
  bool no_agent = false;
  // Per path (index: ProbePath) Up when a probe kind on it reached `rise`, Down when every
  // kind on it reached `fall`, Unknown otherwise or when the path is not probed.
  std::array<Health, kProbePaths> paths{};
  bool public_path = false;  // the public path is probed
  // DOWN and nothing answered since: no probe of any kind on any path succeeded and its
  // agent did not answer, not even "down" or "draining". Only such a peer may be recovered.
  bool silent = false;
  // Its agent is probed, answered before and now fails `fall` on every path while the host
  // still answers other probes (hanatd stopped or restarting): kept UP, never fenced, but
  // allocated no table (a route pointed at it would reach a host that may do no NAT).
  bool agent_silent = false;
  std::optional<Time> last_recovery;  // this member's last recovery action against it
};
struct RouteSnapshot {
  std::string destination;
  Target current;  // as last observed or written
  std::optional<OpId> in_flight;
  int attempts = 0;  // failed attempts since the last success
  std::optional<Time> retry_at;
  std::string last_error;
  bool foreign = false;  // points outside the group and not at the fallback: never written
};
struct TableSnapshot {
  std::string id;
  std::string zone;
  int priority = 0;
  Target allocated;  // Missing when nobody
  std::vector<RouteSnapshot> routes;
  std::optional<Time> hold_until;
  int strikes = 0;
  std::uint64_t writes = 0;
  bool adopted = false;  // `hanatctl adopt`: foreign routes are written until managed again
};
struct EipSnapshot {
  std::string zone;
  std::string allocation_id;
  bool held = false;  // associated with this host by our last successful call
  bool home = true;   // the zone is this member's own (primary private IP)
  std::optional<OpId> in_flight;
  int attempts = 0;        // failed attempts since the last success
  std::string last_error;  // EC2 error code of the last failure
  std::optional<Time> retry_at;
};
struct Snapshot {
  State state = State::Starting;
  Time state_since{};
  Epoch epoch = 0;
  bool egress_ok = true;
  bool nat_ok = false;
  bool drained = false;
  std::vector<MemberSnapshot> members;
  std::vector<TableSnapshot> tables;
  std::vector<EipSnapshot> eips;
  std::size_t pending_ops = 0;
  std::uint64_t stale_completions = 0;
  std::uint64_t writes_total = 0;
  std::uint64_t foreign_routes = 0;  // managed routes currently foreign
  double write_tokens = 0;
  std::optional<Time> handover_deadline;
  // Self-suspicion (machine.h): every peer fell silent at once. `self_confirmed`: this
  // member's own checks vouch for it (recovery may go ahead).
  bool suspect = false;
  bool self_confirmed = false;
  bool link_ok = true;
};

const char* to_string(State s);
const char* to_string(Reason r);
const char* to_string(TargetKind k);

}  // namespace hanat::engine
