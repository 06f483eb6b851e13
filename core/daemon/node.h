// SPDX-License-Identifier: GPL-2.0-or-later
#pragma once
// DOC: core/daemon/node wires hanatd's modules to the failover engine. Start-up runs in
// phases: identity from IMDS (instance, zone, region, VPC, primary ENI), the EC2 client
// with its credentials, the source/destination check turned off on the forwarding ENI,
// discovery of the group's members and route tables, then the engine runs. From then on
// probe results, EC2 completions, netfilter health, egress verdicts, IMDS termination
// notices and operator commands become engine events, and the engine's actions become
// EC2 calls, NAT applies, log lines and the status the socket serves. The engine decides;
// the node only translates and executes.
//
// One class, Node, in several files, one job each:
//   node.cc          construction, start(), the event queue (post, pump) and the engine's
//                    timer; shutdown, drain, reconfigure
//   node_startup.cc  the start-up phases (identity, EC2 client, source/destination check,
//                    floating ENI, discovery), engine_config(), start_engine()
//   node_floating.cc the floating ENI kept attached here, beside the rest (floating_eni.h)
//   node_probes.cc   probe and notice wiring: peer probes and the own-link watch, egress
//                    self-check, forward check, agent server, IMDS termination notices,
//                    feed_self_health()
//   node_execute.cc  execute(): every engine action (NAT apply, route writes, EIPs,
//                    recovery, notifications); write_route(), count_call()
//   node_lifecycle.cc  the Auto Scaling lifecycle hook released after the handover
//   node_routes.cc   route read-back: describe_routes(), EC2 routes as engine targets,
//                    the source/destination check re-read and repaired with it
//   node_members.cc  live membership: members re-read on an interval and on unknown route
//                    targets, VPC scoping, explicit lists that survive a missing id, adopt
//   node_status.cc   status(), fill_report(), summary() and their formatting helpers
//   node_keep.cc     the connection-keeping handover's taking side: the member channel's
//                    server and the steering of a leaving member's flows (steer_keeper.h)
//   node_keep_send.cc  its leaving side: route writes held for the taker's ack, the flows
//                    streamed, the exit held until they end (keep_sender.h)
//   node_replicate.cc  stateful failover's replication: this member's conntrack streamed to
//                    the members that would take its tables (replica_sender.h), and the
//                    replicas other members stream here (counted; on_replica_batch())
//   node_util.h      the helpers several of these files share (internal)

#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "core/config/config.h"
#include "core/daemon/forward_check.h"
#include "core/daemon/hooks.h"
#include "core/daemon/keep_plan.h"
#include "core/daemon/keep_sender.h"
#include "core/daemon/replica_sender.h"
#include "core/daemon/replica_store.h"
#include "core/daemon/report.h"
#include "core/daemon/steer_keeper.h"
#include "core/daemon/takeover.h"
#include "core/engine/machine.h"
#include "core/handover/channel.h"
#include "core/status/status_server.h"
#include "core/uv/uv.h"
#include "ec2/ec2.h"
#include "netfilter/ct_install.h"
#include "netfilter/manager.h"
#include "netfilter/steer.h"
#include "probes/agent_server.h"
#include "probes/link_watch.h"
#include "probes/monitor.h"
#include "probes/send_delay.h"

namespace hanat::daemon {

// What discovery found: the engine's view of the group plus what the shell needs to probe
// and describe it.
struct Discovered {
  engine::Config engine;                                // members and destinations filled in
  std::map<std::string, std::string> addresses;         // instance id -> private IPv4 to probe
  std::map<std::string, std::string> public_addresses;  // instance id -> public IPv4, if any
  std::map<std::string, std::string> table_zones;       // rtb id -> home zone
  std::vector<engine::ObservedTable> observed;          // the tables as first described
  // zone -> CIDRs of the subnets associated with the zone's route tables (failover.move_eip:
  // the sources a zone's snat rule matches).
  std::map<std::string, std::vector<std::string>> zone_cidrs;
  // rtb id -> CIDRs of its associated subnets (DescribeRouteTables' associations, then
  // DescribeSubnets' CidrBlock): the sources whose flows a planned handover of the table
  // keeps (keep::handover_sources(); a table with none falls back to [nat] source_cidrs).
  std::map<std::string, std::vector<std::string>> table_cidrs;
};

struct Identity {
  std::string instance_id, region, zone, mac, eni_id, subnet_id, vpc_id, private_ip;
};

class Node {
 public:
  struct Hooks {
    std::function<void()> exit_ready;  // the engine finished its handover: exit now
    // Plan mode only: discovery finished (write nothing, start nothing), or failed.
    std::function<void(const Discovered&, const Identity&)> planned;
    std::function<void(const std::string&)> plan_failed;
    // The node cannot run (its agent port is taken): log is done, the daemon exits non-zero.
    std::function<void(const std::string&)> fatal;
  };
  // plan_only: run identity and discovery once, report through hooks.planned or
  // hooks.plan_failed, and never write (no src/dst change, no NAT, no route).
  Node(uv::Loop& loop, std::shared_ptr<const config::Config> cfg, bool handover_on_stop,
       Hooks hooks, bool plan_only = false);
  ~Node();
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;

  void start();
  // SIGTERM: hand this host's routes to a peer first (unless --no-handover), then exit.
  // Stops the node: with `handover`, hands this host's routes to peers first (SIGTERM's
  // planned handover); without, exits at once and leaves routes, the nftables table and
  // forwarding as they are (--no-handover, or a restart).
  void shutdown(bool handover = true);
  void drain(bool on);
  // Applies a new config (reload). Restart-only keys were refused before (restart_keys);
  // what can still fail (the agent port cannot be bound, a probe socket cannot be opened)
  // is returned, one error per line, and then nothing of `cfg` has been applied.
  [[nodiscard]] std::vector<std::string> reconfigure(std::shared_ptr<const config::Config> cfg);
  // `hanatctl adopt rtb-...`: "" when done, else why not (node_members.cc).
  [[nodiscard]] std::string adopt(const std::string& table);
  // node_status.cc
  [[nodiscard]] status::Json status() const;
  // The node's part of the metrics report (phase, state, members, tables, counters).
  void fill_report(Report& r) const;
  [[nodiscard]] std::string summary() const;  // one line for systemd's STATUS=

  // Stateful failover's receiving end (node_takeover.cc): one decoded replication frame of
  // peer `member` (its channel identity), applied in this order: resync begins, upserts
  // (flows announced or re-announced), destroys (flows ended), resync complete. Kept in
  // memory (replica_store.h) until the member dies and this host takes its tables; ignored
  // (counted) while [failover] stateful is off.
  void on_replica_batch(const std::string& member, std::vector<netfilter::ReplicatedFlow> upserts,
                        std::vector<netfilter::Flow> destroys, bool resync_begin,
                        bool resync_complete);

 private:
  enum class Phase { Identity, Client, SourceDestCheck, FloatingEni, Discovery, Running, Stopped };
  // node.cc
  void post(engine::Event ev);
  void pump();
  void arm_engine_timer();

  // node_startup.cc
  void fail_phase(const std::string& what, const std::string& why);
  void retry_phase(std::chrono::milliseconds in);
  void run_phase();
  void phase_identity();
  void check_egress_mac();  // WARNING when the default-route interface is not the primary ENI
  void phase_client();
  void phase_source_dest_check();
  void phase_floating_eni();
  void phase_discovery();
  void start_engine(Discovered d);
  engine::Config engine_config(const Discovered& d) const;

  // node_probes.cc
  void start_probes();
  void start_agent();  // binds the agent port; failure is fatal (hooks.fatal)
  void fatal(const std::string& why);
  std::vector<std::string> reconfigure_probes(const config::Config& next);
  core::Result<std::unique_ptr<probes::PeerMonitor>, std::string> make_peer_monitor(
      const config::Config& cfg);
  core::Result<std::unique_ptr<probes::EgressCheck>, std::string> make_egress(
      const config::Config& cfg);
  core::Result<std::unique_ptr<probes::AgentServer>, std::string> bind_agent(
      const config::Config& cfg);
  // agent.listen_address, or this instance's private IP when it is empty.
  [[nodiscard]] std::string agent_address(const config::Config& cfg) const;
  void start_notices();
  // One reading of the Auto Scaling target lifecycle state ("" when there is none).
  void on_lifecycle_state(const std::string& state);
  // node_lifecycle.cc: CompleteLifecycleAction (CONTINUE) for the group's terminating
  // hooks, then `then` (also at a bound, whatever the API does).
  void complete_lifecycle_hooks(std::function<void()> then);
  void feed_self_health();
  void note_send_delay(const probes::ProbeResult& r);
  void watch_forwarding();  // starts, reconfigures or stops the forward check from cfg_
  // "forwarding stalled: <why>" while the forward check is DOWN, else empty.
  [[nodiscard]] std::string forward_stall() const;
  void watch_own_link();  // starts own_link_ on the interface holding the private IP
  [[nodiscard]] std::optional<probes::AgentReply> agent_reply() const;

  // node_execute.cc
  void execute(const engine::Action& a);
  // Applies forwarding and the masquerade table from cfg_ alone (no IMDS, no EC2): at
  // start, on reload before the engine runs, and for the engine's ApplyNat.
  void apply_nat();
  void write_route(const engine::WriteRoute& w);
  // Counts a completed EC2 call by action and outcome ("ok" or the error code).
  void count_call(const std::string& action, const ec2::Ec2Error* err);

  // node_recovery.cc: the engine's RecoverPeer carried out, persisted and reported.
  void recover_peer(const engine::RecoverPeer& r);
  void stop_start_poll(const std::string& peer);
  void stop_start_start(const std::string& peer);
  void finish_recovery(const std::string& peer, const ec2::Ec2Error* err,
                       const std::string& result);
  void note_recovery_step(const std::string& peer, const std::string& step);
  // Reads the state directory's record at engine start: PastRecovery per peer, status.
  void load_recoveries();
  void save_recoveries();

  // node_routes.cc
  void describe_routes(engine::OpId op);
  // Reads the forwarding ENI's source/destination check; turns it off when found on (drift).
  void verify_source_dest_check();

  // node_members.cc
  struct MemberList {
    std::vector<engine::Member> members;
    std::map<std::string, std::string> addresses;         // instance id -> private IPv4
    std::map<std::string, std::string> public_addresses;  // instance id -> public IPv4
    std::vector<std::string> missing;                     // listed in group.members, not found
  };
  void describe_members(std::function<void(core::Result<MemberList, std::string>)> done);
  void note_missing_members(const std::vector<std::string>& missing);
  [[nodiscard]] ec2::DescribeRouteTablesRequest route_tables_request() const;
  // The described tables in this host's VPC; records explicit tables that were not found.
  std::vector<const ec2::RouteTable*> scoped_tables(const std::vector<ec2::RouteTable>& got);
  void start_refresh();
  void refresh_members(const std::string& why);
  void apply_members(MemberList l);
  // Peers being stop-started stay members while EC2 lists them stopping or stopped
  // (node_recovery.cc).
  void keep_recovering(MemberList& l) const;
  void check_unknown_targets(const engine::Target& t, const std::string& table);
  void warn_once(const std::string& key, const std::string& message);
  void start_peer_probes();  // node_probes.cc

  // Elastic IP per zone (failover.move_eip), node_eips.cc.
  struct ZoneEipShell {
    std::string zone, allocation_id, public_ip;
    std::string eni_id, private_ip;  // where EC2 last said (or we made) it associated
    std::string secondary_ip;        // assigned by hanat to this host for a zone not its own
    // [failover] stateful: a secondary private IP assigned ahead of time for this zone, not
    // yet in use (no snat rule): where a takeover installs the zone's flows, and what
    // associate_eip() promotes to secondary_ip instead of assigning one then.
    std::string reserved_ip;
    // release_eip() of a zone on secondary_ip: when its grace ends (release_grace_timer_).
    std::optional<engine::Time> leaving_until;
  };
  void discover_eips(std::shared_ptr<Discovered> d, std::function<void()> next);
  [[nodiscard]] std::vector<engine::ZoneEip> engine_eips() const;
  [[nodiscard]] std::vector<netfilter::SnatRule> snat_rules() const;
  void associate_eip(const engine::AssociateAddress& a);
  void release_eip(const engine::ReleaseEip& r);
  // The second half of release_eip() for a zone on a secondary IP, once its grace is over:
  // snat rule gone, entries on the address deleted, the address reserved or unassigned.
  void finish_releases();
  void finish_release(const std::string& zone);
  // [failover] stateful: a secondary private IP for every other zone with an Elastic IP,
  // assigned at engine start (reserved_ip).
  void reserve_addresses();
  // A stateful takeover moves the zone's Elastic IP onto `ip` (this host's address for the
  // zone) at once, beside the installation, instead of after the route write; the engine's
  // AssociateAddress for the zone that follows the route write is then answered with this
  // call's outcome, without a second call (node_eips.cc).
  void early_associate(const std::string& zone, const std::string& ip);
  // [failover] stateful: a claim of a table of this host's own zone (a failback) moves the
  // zone's Elastic IP back to the primary private IP first; the write is held until EC2
  // answered that (at most takeover::kHoldBound). True when `w` is held (node_eips.cc).
  bool early_home_eip(const engine::WriteRoute& w);
  // The EIP part of early_home_eip(): associates it back and holds `w` for the answer; false
  // when the EIP is here already (send `w`).
  bool hold_for_home_eip(const engine::WriteRoute& w);
  void release_failback_writes(const std::string& why);
  // A zone's EIP on a secondary IP of this host that the engine does not hold and whose
  // tables are not this host's: released as if the engine had said so (ReleaseEip).
  void release_stray_eips();
  // [failover] stateful: this host's ESTABLISHED entries get at most kInstallTimeoutMaxS
  // (their connections may go on, and end, on a peer); `why` says what moved them, for the
  // log. Called by note_tables_served() and note_claimed().
  void bound_stale_entries(const std::string& why);
  // A route read-back: a table that routed through this host and now routes elsewhere (a
  // peer took it, an operator pointed it at a gateway) bounds this host's entries.
  void note_tables_served(const engine::RoutesObserved& o);
  // This host's claim of `table` was acknowledged: one of its own zone came back here (a
  // failback, or the first claim after start-up), so it had been elsewhere: bounds them too.
  void note_claimed(const std::string& table);
  // Deletes this host's conntrack entries translated to `ip`, a secondary private IP the
  // zone's Elastic IP is not (any longer) on; `why` goes to the log.
  void purge_address(const std::string& ip, const std::string& why);
  // Counts an AssociateAddress of `zone`'s EIP onto `ip` of this ENI (the call and the
  // move's outcome) and, when it succeeded, records where the EIP is now.
  void record_association(const std::string& zone, const std::string& ip, const ec2::Ec2Error* err);
  struct EarlyEip {
    engine::Time at{};  // when it was sent: an answer older than kEarlyEipValid is not used
    bool done = false;
    std::string error;  // EC2's code or why, when done and failed
    std::vector<std::pair<engine::OpId, engine::Epoch>> waiting;  // the engine's, in flight
    ec2::Client::CallId call = 0;                                 // for cancel()
  };
  // The engine abandoned this host's claims (its own data plane failed): the early
  // associations still in flight go with them (node_eips.cc).
  void abandon_early_eips();
  std::map<std::string, EarlyEip> early_eips_;  // zone ->
  [[nodiscard]] json_t* eips_json() const;
  std::map<std::string, ZoneEipShell> eips_;                    // zone ->
  std::map<std::string, std::vector<std::string>> zone_cidrs_;  // zone -> source CIDRs
  std::vector<std::string> known_private_ips_;      // this ENI's private IPs as last known
  std::vector<std::string> eip_problems_;           // discovery errors, for status
  std::map<std::string, std::uint64_t> eip_moves_;  // result -> AssociateAddress calls

  uv::Loop& loop_;
  std::shared_ptr<const config::Config> cfg_;
  bool handover_on_stop_;
  Hooks hooks_;
  bool plan_only_ = false;
  Phase phase_ = Phase::Identity;
  std::string phase_error_;
  // node_floating.cc: the floating ENI, watched beside everything else (floating_eni.h).
  std::string floating_eni_state_;  // for status: attached / waiting for ... / error: ...
  bool floating_error_ = false;     // floating_eni_state_ is an error
  bool floating_attached_ = false;
  int floating_attempts_ = 0;  // failures since the last success (backoff)
  std::uint64_t floating_failures_ = 0;
  std::uint64_t floating_force_detaches_ = 0;
  std::unique_ptr<uv::Timer> floating_timer_;
  void start_floating_eni();
  void floating_check();
  void floating_next(std::chrono::milliseconds in);
  void floating_state(const std::string& state, bool error);
  void floating_failed(const std::string& what, const ec2::Ec2Error& e);
  void floating_decide(const ec2::NetworkInterface& ni, std::optional<std::string> holder_state);
  void floating_describe_holder(const ec2::NetworkInterface& ni);
  void floating_detach(const ec2::NetworkInterface& ni, const std::string& why);
  void floating_attach(const ec2::NetworkInterface& ni);
  int phase_attempts_ = 0;
  Identity id_;

  std::unique_ptr<ec2::ImdsClient> imds_;
  std::shared_ptr<ec2::CredentialSource> creds_;
  ec2::RoleCredentials* role_ = nullptr;  // owned by creds_ when the role is used
  std::unique_ptr<ec2::Client> ec2_;
  std::unique_ptr<ec2::Client> asg_;  // Auto Scaling, built when a lifecycle hook is released
  std::string lifecycle_hook_state_;  // for status: what became of the hooks
  std::unique_ptr<netfilter::NatManager> nat_;
  std::unique_ptr<ForwardCheck> forward_;  // fed by nat_, so declared after it
  std::unique_ptr<probes::PeerMonitor> peers_;
  std::unique_ptr<probes::EgressCheck> egress_;
  // This host's own interface toward the peers (the one holding the private IP): probe
  // failures while it is down, or just back, are not evidence against a peer.
  std::unique_ptr<probes::LinkWatch> own_link_;
  std::uint64_t discounted_failures_ = 0;
  probes::SendDelay send_delay_;  // peer and egress probes: sent - planned
  std::unique_ptr<probes::AgentServer> agent_;
  std::unique_ptr<engine::Machine> machine_;
  Discovered discovered_;

  uv::Timer phase_timer_;
  uv::Timer engine_timer_;
  uv::Timer notice_timer_;
  uv::Timer refresh_timer_;
  bool refreshing_ = false;
  bool refresh_again_ = false;
  std::set<std::string> unknown_checked_;  // route targets that already caused a re-read
  std::vector<std::string> missing_members_, missing_tables_;  // explicit ids not found
  std::set<std::string> warned_;                               // keys of WARNINGs given once
  // Routes seen pointing at an unknown instance or ENI while the members are being re-read:
  // likely a new member's claim, so the "foreign" WARNING waits for the re-read.
  std::vector<engine::RouteForeign> foreign_pending_;
  void log_foreign(const engine::RouteForeign& f);
  void log_path_change(const engine::PeerPathChanged& c);
  std::deque<engine::Event> queue_;
  bool pumping_ = false;
  bool stopping_ = false;
  bool notice_sent_ = false;
  std::string lifecycle_state_;     // the last target lifecycle state read ("" none)
  bool lifecycle_drained_ = false;  // drained because of it (undrained at InService)
  bool lifecycle_leave_ = false;    // leaving because of it (a lifecycle hook may wait)
  bool nat_healthy_ = false;
  bool nat_judged_ = false;  // the data plane was applied (or failed to) at least once
  std::string nat_reason_;
  engine::Health egress_health_ = engine::Health::Unknown;
  std::string egress_detail_;
  std::map<std::string, std::chrono::microseconds> last_rtt_;  // "peer/kind" -> rtt
  // The last result of each probe kind of each peer, for `hanatctl peers`.
  struct LastProbe {
    bool ok = false;
    std::string failure;  // probes::Failure as text ("timeout", "refused", ...); "" when ok
    std::string detail;
    bool discounted = false;  // failed while this host's own link was impaired: not counted
    std::chrono::steady_clock::time_point at;
  };
  std::map<std::string, std::map<std::string, LastProbe>> last_probe_;  // peer -> kind -> last
  // peer -> why its health last changed (the engine's PeerChanged detail), for `peers`.
  std::map<std::string, std::string> health_reason_;
  // A drain asked for before the engine runs (a drain mark found at start): posted to the
  // engine when it starts.
  std::optional<bool> drain_pending_;
  // (action, outcome) -> completed calls; outcome "ok", the EC2 code or the failure kind.
  std::map<std::pair<std::string, std::string>, std::uint64_t> ec2_calls_;
  struct LastWrite {
    std::chrono::system_clock::time_point at;  // when the completion arrived
    std::string destination, target, outcome;
  };
  // Claims (writes pointing a route at this host) on their way to EC2, by engine op, for
  // AbandonWrite.
  std::map<engine::OpId, ec2::Client::CallId> claims_in_flight_;
  std::map<std::string, LastWrite> last_write_;  // route table id -> its last completed write
  // [hooks] on_transition: fire_hook() adds the host's identity to `vars`.
  HookRunner hook_runner_{loop_};
  void fire_hook(std::vector<std::pair<std::string, std::string>> vars);
  // Histograms and the probe failure counter for the metrics report (report.h).
  metrics::Histogram failover_seconds_{kFailoverBuckets};
  // Peers seen going DOWN whose takeover write has not been acknowledged yet -> when.
  std::map<std::string, std::chrono::steady_clock::time_point> failover_open_;
  std::map<std::string, metrics::Histogram> ec2_latency_;
  std::map<std::string, metrics::Histogram> probe_rtt_;
  std::map<std::tuple<std::string, std::string, std::string>, std::uint64_t> probe_failures_;
  std::uint64_t failovers_ = 0;
  std::uint64_t route_writes_ = 0;
  std::uint64_t throttles_ = 0;
  std::uint64_t sdc_repairs_ = 0;  // source/destination check found on and turned off
  bool sdc_in_flight_ = false;     // a read or repair of the check is under way
  std::chrono::steady_clock::time_point started_;
  // Recovery actions (node_recovery.cc). One record per peer, the last action against it;
  // kept in [status] state_directory so that a restarted hanatd keeps the cool-down.
  struct RecoveryRecord {
    std::string action;  // reboot | stop-start | terminate
    std::chrono::system_clock::time_point at;
    std::string result;  // "in progress: <step>", "ok", or "failed: <EC2 code or why>"
  };
  std::map<std::string, RecoveryRecord> recoveries_;
  struct StopStart {
    engine::OpId op = 0;
    engine::Epoch epoch = 0;
    std::chrono::steady_clock::time_point deadline;
    int start_attempts = 0;
    std::unique_ptr<uv::Timer> timer;
  };
  // node_keep.cc: the connection-keeping handover's taking side (keep_plan.h).
  void start_steering();  // start-up: stale steering removed, netlink opened
  void start_channel();   // engine start: the member channel's server
  // Reload changed [handover] or the agent's address: a new server with the new port, key
  // and bounds, unless a handover is being received (then at the next reload after it).
  void restart_channel();
  void on_channel_flows(const std::string& member, const handover::FlowTable& table,
                        const handover::FlowDelta& delta);
  // Drops the steering of members that went DOWN or left (after health or membership news).
  void review_steering();
  [[nodiscard]] json_t* keep_json() const;  // node_status.cc
  std::unique_ptr<SteerKeeper> keeper_;
  std::unique_ptr<handover::ChannelServer> channel_;
  std::set<std::string> peer_down_;  // members DOWN in this member's view
  uv::Timer steer_timer_{loop_};     // review_steering() while a sender's flows are steered
  std::string keep_error_;           // why the taking side is off, for status
  // node_keep_send.cc: the connection-keeping handover's leaving side (keep_sender.h).
  // true: `w` hands a table to a peer in a planned handover and a Sender holds it.
  bool keep_write(const engine::WriteRoute& w);
  void send_route(const engine::WriteRoute& w);  // the EC2 call of write_route()
  void release_writes(const std::string& peer, keep::Sender::Release r);
  void keep_service();  // closed channels, ack bounds, drain verdicts; re-arms keep_timer_
  void keep_kick();     // keep_service() on the next loop turn
  [[nodiscard]] bool keep_draining() const;  // a Sender has not ended yet
  [[nodiscard]] size_t keep_flows_left() const;
  void finish_exit(const engine::ExitReady& x);  // remove_on_exit, lifecycle hooks, exit
  // Spot notice: the instance goes at `at` (IMDS instance-action time); bounds the drain.
  void keep_deadline(std::chrono::system_clock::time_point at);
  [[nodiscard]] json_t* sending_json() const;  // node_status.cc
  // The live Sender towards `peer`, made (channel client, steering port) when there is none
  // or the last one ended; nullptr when connections cannot be kept with it (no address, no
  // channel port, an unreadable key).
  keep::Sender* keep_sender(const std::string& peer);
  // Failback, the serving side: `peer` asked for the flows of `tables` before it reclaims them.
  void keep_reclaim(const std::string& peer, const std::vector<std::string>& tables);
  // Failback, the home side: the engine's Reclaim, sent to the peer over its channel.
  void ask_reclaim(const engine::Reclaim& r);
  // A claim of a table whose peer's flows have not arrived: the engine's bound passed. Logs it.
  void reclaim_unanswered(const engine::WriteRoute& w);

 public:
  // A second SIGTERM: ends the flows' drain now (End, tunnel removed). true when the node
  // exits on its own right after (exit_ready); false: the caller stops it.
  bool end_keep_drain();

 private:
  // node_takeover.cc: stateful failover's taking side (takeover.h).
  // true: `w` claims a route of a dead member whose flows are installed first; held.
  bool takeover_write(const engine::WriteRoute& w);
  void release_claims(const std::string& member, takeover::Install::Release r);
  void takeover_cancel(engine::OpId op);  // the engine's AbandonWrite of a held claim
  void takeover_kick();
  void takeover_service();  // one chunk, the bounds, finished takeovers; re-arms the timer
  void finish_takeover(const takeover::Install& job, engine::Time t);
  // The member a route target names ("" none); also one that left but whose flows are held.
  [[nodiscard]] std::string member_of(const engine::Target& t) const;
  // The member the route `w` writes points at now, in the engine's view ("" none).
  [[nodiscard]] std::string holder_of(const engine::Snapshot& snap,
                                      const engine::WriteRoute& w) const;
  // A failback (a claim of a table of this host's own zone) from a live holder: the flows it
  // translated for the zone meanwhile, replicated here (replica_targets() counts a table
  // routed to the holder as its), are installed first, translated to the address this
  // host's masquerade gives the zone, so that the connections opened during the outage go
  // on here with their public port. Held as a takeover::Install under "failback of
  // <holder>"; the EIP (hold_for_home_eip()) and then the route follow. True when held.
  bool failback_write(const engine::WriteRoute& w);
  // Starts the installation for `holder` with what its replica holds now.
  void failback_proceed(const std::string& holder);
  // A resync of `member`'s replication stream completed, or the wait for one ended.
  void failback_sync_check();
  // The address this host's masquerade translates its own zone's sources to: the source of
  // a route lookup towards the first egress self-check target (the egress interface's
  // address), else the primary private IP.
  [[nodiscard]] uint32_t masquerade_source() const;
  static bool is_failback(const std::string& key);
  // The local address zone `zone`'s traffic leaves with here, if it has an Elastic IP.
  [[nodiscard]] std::optional<uint32_t> zone_address(const std::string& zone) const;
  [[nodiscard]] json_t* takeover_json() const;
  replica::Store replicas_{replica::Limits{}};
  std::uint64_t purged_on_release_ = 0;   // purge_address(): entries deleted
  std::uint64_t stale_bounded_ = 0;       // bound_stale_entries(): timeouts bounded
  takeover::ServedTables served_tables_;  // note_tables_served(), note_claimed()
  std::uint64_t replica_ignored_ = 0;     // batches received while stateful is off
  std::uint64_t replica_refused_ = 0;     // flows refused, the store full (a dropped member's too)
  std::map<std::string, std::unique_ptr<takeover::Install>> takeovers_;  // dead member ->
  std::map<std::string, netfilter::PortSet> takeover_used_;  // own_ports() of the chunk's address
  struct TakeoverResult {
    takeover::Counters counters;
    std::chrono::system_clock::time_point at;
    std::chrono::milliseconds took{0};
    std::string error;
  };
  std::map<std::string, TakeoverResult> last_takeover_;  // member -> its last takeover
  std::map<std::string, std::uint64_t> takeover_flows_;  // outcome -> flows, for metrics
  // Members whose replica is held but who left the group -> since when (forget_departed()).
  std::map<std::string, engine::Time> departed_since_;
  void forget_departed(engine::Time t);
  uv::Timer takeover_timer_{loop_};
  uv::Timer release_grace_timer_{loop_};  // finish_releases() at the next leaving_until
  // A failback's route writes waiting for its early association (early_home_eip()).
  std::vector<engine::WriteRoute> failback_held_;
  uv::Timer failback_timer_{loop_};
  // Failbacks waiting for a resync of the holder's stream (failback_write()): holder ->
  struct FailbackWait {
    engine::Time since{};  // a resync completed at or after this counts
    engine::Time until{};  // then the installation starts with what is held
    std::vector<engine::WriteRoute> writes;
  };
  std::map<std::string, FailbackWait> failback_waits_;
  uv::Timer failback_wait_timer_{loop_};
  std::map<std::string, engine::Time> replica_synced_at_;  // member -> its last completed resync
  // When this host last became healthy (Standby or Active from any other state): its peers
  // count it a replication target from about `rise` probes later, and resync to it then.
  engine::Time serving_since_{};

  uv::DeferredDelete keep_graveyard_{loop_};  // before senders_: their ports park here
  std::map<std::string, std::unique_ptr<keep::Sender>> senders_;  // taking peer ->
  std::map<std::string, std::string> sender_closed_;              // peer -> why its channel closed
  std::map<std::string, std::vector<std::string>> reclaim_asks_;  // peer -> tables, to serve
  // Failback requests on their way (peer -> client), and peers whose snapshot the engine waits
  // for (ReclaimReady), for the log.
  std::map<std::string, std::unique_ptr<handover::ChannelClient>> reclaim_clients_;
  std::map<std::string, std::vector<std::string>> reclaim_waiting_;  // peer -> tables asked
  std::set<std::string> reclaim_ready_;  // peers whose snapshot is installed, to post
  uv::Timer keep_timer_{loop_};
  std::optional<std::chrono::steady_clock::time_point> keep_deadline_;
  std::optional<engine::ExitReady> exit_held_;      // the engine's exit, held for the drain
  std::map<std::string, StopStart> stop_starting_;  // peer -> run in progress
  std::map<std::string, engine::Member> recovering_members_;  // as last listed, by peer

  // node_replicate.cc: stateful failover's replication (`[failover] stateful`).
 public:
  // Per sending member: what its replication stream brought (status, metrics).
  struct ReplicaReceived {
    uint64_t frames = 0;
    uint64_t upserts = 0;
    uint64_t destroys = 0;
    uint64_t resyncs = 0;  // completed resyncs
    std::chrono::steady_clock::time_point last{};
  };
  // One decoded Replica frame from `member` (the channel's OnReplica). Counts it; the
  // replica store (the taking side) is connected here.
  void on_replica_batch(const std::string& member, const handover::ReplicaBatch& b);

 private:
  struct ReplicaLink {
    replica::Stream stream;
    std::unique_ptr<handover::ChannelClient> client;
    std::vector<std::string> tables;   // the tables it would take
    std::vector<std::string> sources;  // their sources (empty: every source)
    std::optional<replica::Time> reconnect_at;
    std::chrono::milliseconds backoff{0};
    uint64_t connects = 0;
    uint64_t wire_bytes = 0;  // channel bytes written to it, over all its connections
    std::string last_error;
  };
  void start_replication();  // engine start, with stateful = true
  void replicate_review();   // targets from the allocation, links and the event stream
  void replicate_service();  // resyncs, flushes, reconnects; re-arms repl_timer_
  void replicate_kick();     // replicate_service() on the next loop turn
  void replicate_arm(replica::Time at, replica::Time t);  // service at `at` unless sooner
  void replicate_connect(const std::string& member, ReplicaLink& l);
  void replicate_events(const netfilter::FlowEvents& ev);
  void replicate_dump_step();                      // reads the resync's dump on for a while
  [[nodiscard]] json_t* replication_json() const;  // node_replicate.cc
  uv::DeferredDelete repl_graveyard_{loop_};       // before repl_links_: clients park here
  std::map<std::string, std::unique_ptr<ReplicaLink>> repl_links_;  // target member ->
  std::unique_ptr<netfilter::CtEvents> repl_events_;
  std::optional<std::vector<std::string>> repl_filter_;  // the event stream's sources
  uv::Timer repl_timer_{loop_};
  std::optional<replica::Time> repl_timer_at_;  // when repl_timer_ fires, while armed
  uv::Timer repl_review_timer_{loop_};
  std::string repl_error_;  // why replication is off or degraded, for status
  uint64_t repl_dump_errors_ = 0;
  // The resync's dump being read in steps, the flows of one that ended (for the links whose
  // resync is due), and when a failed one may be retried.
  std::unique_ptr<netfilter::ReplicatedDumper> repl_dumper_;
  std::optional<std::vector<netfilter::ReplicatedFlow>> repl_dump_ready_;
  std::optional<replica::Time> repl_dump_retry_at_;
  uv::Timer repl_dump_timer_{loop_};
  // A resync's conntrack dump, which holds the loop while each step runs: how long, how many
  // entries it read and how many flows it kept. The one being read, and the last one done
  // (status: replication.last_dump).
  struct DumpStats {
    std::chrono::steady_clock::time_point started{};
    std::chrono::microseconds busy{0};          // the steps' time in all
    std::chrono::microseconds longest_step{0};  // the longest the loop waited for it
    std::chrono::microseconds wall{0};          // from the request to the last entry
    uint64_t seen = 0;
    uint64_t flows = 0;
  };
  DumpStats repl_dump_now_;
  std::optional<DumpStats> repl_last_dump_;
  std::map<std::string, ReplicaReceived> repl_received_;
  // Counts of links that were removed, so that the metrics' counters never go back.
  struct {
    std::map<std::string, uint64_t> events;
    std::map<std::string, uint64_t> bytes;
    uint64_t drops = 0;
    uint64_t resyncs = 0;
  } repl_retired_;
};

}  // namespace hanat::daemon
