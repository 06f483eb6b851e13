// SPDX-License-Identifier: GPL-2.0-or-later
// DOC: core/daemon/node_execute.cc carries out the engine's actions: execute() applies the
// NAT (netfilter), writes routes (write_route), moves Elastic IPs, hands recovery actions
// for a silent peer to node_recovery.cc, logs transitions, and exits when the handover is finished.
// Each EC2 call made here goes back to the engine as Ec2Done. count_call(), which counts
// every completed EC2 call by action and outcome (start-up and read-back use it too), lives
// here with the outcome labels it shares with write_route().

#include <algorithm>
#include <string>
#include <type_traits>
#include <variant>

#include "core/daemon/node.h"
#include "core/daemon/node_util.h"
#include "core/log/log.h"

namespace hanat::daemon {

namespace {
// The engine took these writes' tokens from the client's buckets before emitting them
// (ClientWriteBudget in node_startup.cc): the client must not take a second one.
constexpr bool kPrepaid = true;
}  // namespace

using node_util::done_of;
using node_util::err_of;
using node_util::now;
using node_util::outcome_of;
using node_util::target_text;
using std::chrono::milliseconds;

namespace {}  // namespace

void Node::apply_nat() {
  // Everything here comes from the config file: the egress interface, the private CIDRs,
  // the sysctls. Nothing waits for IMDS or EC2, so start() can run it before any network
  // call (node.cc) and the engine's ApplyNat repeats it (idempotent: one transaction that
  // replaces the table).
  netfilter::NatSpec spec;
  spec.table = cfg_->nat.table;
  spec.egress_interface = cfg_->nat.egress_interface;
  for (const auto& c : cfg_->nat.source_cidrs) spec.source_cidrs.push_back(c.text);
  spec.fully_random = cfg_->nat.fully_random;
  spec.persistent = cfg_->nat.persistent;
  spec.forward_counters = cfg_->forward.check;
  spec.leak_counter = cfg_->forward.check;
  // Zones whose Elastic IP sits on a secondary private IP of this host (node_eips.cc).
  spec.snat = snat_rules();
  netfilter::SysctlSpec sys;
  if (cfg_->nat.conntrack_max) sys.conntrack_max = static_cast<uint64_t>(*cfg_->nat.conntrack_max);
  if (cfg_->nat.tcp_established_timeout)
    sys.tcp_timeout_established_s =
        static_cast<uint32_t>(cfg_->nat.tcp_established_timeout->count() / 1000);
  if (cfg_->nat.udp_timeout)
    sys.udp_timeout_s = static_cast<uint32_t>(cfg_->nat.udp_timeout->count() / 1000);
  // Every flow must announce its end to the handover's event stream, also one older than
  // the listener (netfilter/ct_events.h). Events cost nothing while nobody listens
  // (ctnetlink checks for listeners before building one).
  sys.conntrack_events = 1;
  auto st = nat_->apply(spec, sys);
  nat_healthy_ = st.has_value();
  nat_judged_ = true;
  nat_reason_ = st ? "" : st.error().message;
  if (!st) log::error("data plane: " + st.error().message);
}

void Node::execute(const engine::Action& a) {
  std::visit(
      [this](const auto& x) {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, engine::ApplyNat>) {
          apply_nat();
          engine::NatApplied n{x.op, x.epoch, nat_healthy_, nat_reason_, now()};
          queue_.push_back(n);
        } else if constexpr (std::is_same_v<T, engine::DescribeRoutes>) {
          describe_routes(x.op);
        } else if constexpr (std::is_same_v<T, engine::WriteRoute>) {
          if (!reclaim_waiting_.empty()) reclaim_unanswered(x);  // node_keep_send.cc
          write_route(x);
        } else if constexpr (std::is_same_v<T, engine::AssociateAddress>) {
          associate_eip(x);  // node_eips.cc
        } else if constexpr (std::is_same_v<T, engine::ReleaseEip>) {
          release_eip(x);
        } else if constexpr (std::is_same_v<T, engine::RecoverPeer>) {
          recover_peer(x);  // node_recovery.cc
        } else if constexpr (std::is_same_v<T, engine::Notify>) {
          // Going back to the warm pool on scale-in runs the group's terminating hooks
          // (Warmed:Pending:Wait): released once drained, as on termination.
          if (x.to == engine::State::Drained && lifecycle_drained_ &&
              lifecycle_state_.rfind("Warmed:", 0) == 0)
            complete_lifecycle_hooks([] {});
          fire_hook({{"HANAT_EVENT", "state"},
                     {"HANAT_STATE", engine::to_string(x.to)},
                     {"HANAT_PREVIOUS", engine::to_string(x.from)},
                     {"HANAT_REASON", std::string(engine::to_string(x.reason)) +
                                          (x.detail.empty() ? "" : ": " + x.detail)}});
          auto serving = [](engine::State st) {
            return st == engine::State::Standby || st == engine::State::Active;
          };
          if (serving(x.to) && !serving(x.from)) serving_since_ = node_util::now();
          log::event(log::Level::Notice, log::message_id::kStateChanged,
                     {{"HANAT_STATE", engine::to_string(x.to)},
                      {"HANAT_REASON", engine::to_string(x.reason)}},
                     std::string("state: ") + engine::to_string(x.from) + " -> " +
                         engine::to_string(x.to) + " (" + engine::to_string(x.reason) +
                         (x.detail.empty() ? "" : ": " + x.detail) + ")");
        } else if constexpr (std::is_same_v<T, engine::PeerChanged>) {
          fire_hook({{"HANAT_EVENT", "peer"},
                     {"HANAT_PEER", x.peer},
                     {"HANAT_STATE", engine::to_string(x.to)},
                     {"HANAT_PREVIOUS", engine::to_string(x.from)},
                     {"HANAT_REASON", x.detail}});
          if (x.to == engine::Health::Down && x.from == engine::Health::Up) {
            ++failovers_;
            failover_open_[x.peer] = std::chrono::steady_clock::now();
          } else if (x.to == engine::Health::Up) {
            // Back before this host took anything over (its tables went to another member,
            // or it had none): no failover of this host's to time.
            failover_open_.erase(x.peer);
          }
          health_reason_[x.peer] = x.detail;
          if (x.to == engine::Health::Down) {
            peer_down_.insert(x.peer);
          } else {
            peer_down_.erase(x.peer);
          }
          review_steering();
          log::event(log::Level::Notice, log::message_id::kPeerChanged,
                     {{"HANAT_PEER", x.peer}, {"HANAT_PEER_HEALTH", engine::to_string(x.to)}},
                     "peer " + x.peer + ": " + engine::to_string(x.from) + " -> " +
                         engine::to_string(x.to) + (x.detail.empty() ? "" : " (" + x.detail + ")"));
        } else if constexpr (std::is_same_v<T, engine::RouteForeign>) {
          log_foreign(x);
        } else if constexpr (std::is_same_v<T, engine::PeerWithoutAgent>) {
          log::warning("peer " + x.peer +
                       " carries the group tag but its agent never answered "
                       "(port " +
                       std::to_string(cfg_->agent.port) +
                       "): not running hanatd, it is allocated no route table");
        } else if constexpr (std::is_same_v<T, engine::PeerPathChanged>) {
          log_path_change(x);
        } else if constexpr (std::is_same_v<T, engine::AbandonWrite>) {
          takeover_cancel(x.op);  // held for a stateful takeover: never sent
          std::erase_if(failback_held_, [&](const auto& w) { return w.op == x.op; });
          for (auto& [holder, wait] : failback_waits_)
            std::erase_if(wait.writes, [&](const auto& w) { return w.op == x.op; });
          abandon_early_eips();
          // Cancelled wherever it is; on the wire, its connection is reset and what the
          // kernel had not delivered yet is discarded (ec2/http_client.cc).
          if (auto it = claims_in_flight_.find(x.op); it != claims_in_flight_.end()) {
            ec2_->cancel(it->second);
            claims_in_flight_.erase(it);
            log::notice("route " + x.table + " " + x.destination +
                        ": claim abandoned, this host's own data plane failed");
          }
        } else if constexpr (std::is_same_v<T, engine::Reclaim>) {
          ask_reclaim(x);  // node_keep_send.cc
        } else if constexpr (std::is_same_v<T, engine::ExitReady>) {
          if (keep_draining()) {
            // The routes are handed over; the flows they carried still pass through here
            // (the taker steers them back): exit once they ended (node_keep_send.cc).
            exit_held_ = x;
            log::notice(std::string("handover finished (") + engine::to_string(x.reason) + "), " +
                        std::to_string(keep_flows_left()) +
                        " connections still kept here: exiting when they end (at most "
                        "[handover] flow_drain " +
                        config::format_duration(cfg_->handover.flow_drain) + ")");
            return keep_kick();
          }
          finish_exit(x);
        }
      },
      a);
}

void Node::finish_exit(const engine::ExitReady& x) {
  log::event(log::Level::Notice, log::message_id::kHandoverFinished,
             {{"HANAT_REASON", engine::to_string(x.reason)}},
             std::string("handover finished (") + engine::to_string(x.reason) + "), exiting");
  // [nat] remove_on_exit: only here, once no route of the group points at this host
  // any more. A restart, --no-handover or an interrupted handover keeps the table:
  // routes may still send traffic through it.
  if (cfg_->nat.remove_on_exit && nat_) {
    if (auto st = nat_->remove(); !st) {
      log::warning("remove_on_exit: cannot delete the nftables table: " + st.error().message);
    } else {
      log::notice("remove_on_exit: nftables table " + log::quote(cfg_->nat.table) + " deleted");
    }
  }
  auto exit_now = [this] {
    phase_ = Phase::Stopped;
    if (hooks_.exit_ready) hooks_.exit_ready();
  };
  // Leaving because Auto Scaling terminates this instance: a lifecycle hook may hold
  // it in Terminating:Wait; release it now that the routes are handed over.
  if (lifecycle_leave_) return complete_lifecycle_hooks(exit_now);
  exit_now();
}

void Node::log_path_change(const engine::PeerPathChanged& c) {
  const std::string path = core::to_string(c.path);
  if (c.broken) {
    // One path down, the other up: the peer is alive and keeps its tables. Typically a
    // security group or NACL change that drops ICMP and the agent port on one side.
    const bool priv_down = c.path == engine::ProbePath::Private ? c.to == engine::Health::Down
                                                                : c.to == engine::Health::Up;
    log::warning(
        "peer " + c.peer + ": " +
        (priv_down ? "private path down, public path up" : "public path down, private path up") +
        " (check the security groups and NACLs between the NATs for ICMP and agent "
        "port " +
        std::to_string(cfg_->agent.port) + "): the peer keeps its route tables");
  } else {
    log::notice("peer " + c.peer + ": " + path + " path " + engine::to_string(c.to));
  }
}

void Node::log_foreign(const engine::RouteForeign& f) {
  const bool unknown_instance =
      f.target.kind == engine::TargetKind::Instance || f.target.kind == engine::TargetKind::Eni;
  if (f.foreign && unknown_instance && refreshing_) {
    foreign_pending_.push_back(f);
    return;
  }
  auto pending = std::find_if(foreign_pending_.begin(), foreign_pending_.end(), [&](const auto& p) {
    return p.table == f.table && p.destination == f.destination;
  });
  if (pending != foreign_pending_.end()) {
    // Never reported as foreign: the re-read found a new member behind it.
    foreign_pending_.erase(pending);
    return;
  }
  if (f.foreign) {
    log::warning("route " + f.table + " " + f.destination + " points at " + target_text(f.target) +
                 " (" + engine::to_string(f.target.kind) +
                 (f.target.propagated ? ", propagated" : "") +
                 "): foreign, hanat will not write it until it points at a member or the "
                 "fallback again, or `hanatctl adopt " +
                 f.table + "`");
  } else {
    log::notice("route " + f.table + " " + f.destination + " points at " + target_text(f.target) +
                ": managed by hanat again");
  }
}

void Node::write_route(const engine::WriteRoute& w) {
  // A planned handover to a peer: held until the peer holds this host's flows (at most
  // keep::kAckWait), then sent by send_route() (node_keep_send.cc).
  if (keep_write(w)) return;
  // A claim of a dead member's route under [failover] stateful: held until its replicated
  // flows are installed here (at most takeover::kHoldBound), node_takeover.cc.
  if (takeover_write(w)) return;
  if (early_home_eip(w)) return;
  send_route(w);
}

void Node::send_route(const engine::WriteRoute& w) {
  ec2::RouteTarget target;
  switch (w.target.kind) {
    case engine::TargetKind::Instance:
      target.kind = ec2::RouteTarget::Kind::Instance;
      break;
    case engine::TargetKind::NatGateway:
      target.kind = ec2::RouteTarget::Kind::NatGateway;
      break;
    default:
      target.kind = ec2::RouteTarget::Kind::NetworkInterface;
      break;
  }
  target.id = w.target.id;
  ++route_writes_;
  log::event(log::Level::Notice, log::message_id::kRouteWrite,
             {{"HANAT_ROUTE_TABLE", w.table},
              {"HANAT_DESTINATION", w.destination},
              {"HANAT_TARGET", target_text(w.target)}},
             "route " + w.table + " " + w.destination + " -> " + target_text(w.target) +
                 (w.verb == engine::RouteVerb::Create ? " (create)" : ""));
  const bool claim = w.target.id == id_.instance_id || w.target.id == id_.eni_id;
  auto cb = [this, op = w.op, epoch = w.epoch, table = w.table, destination = w.destination,
             written = target_text(w.target), verb = w.verb,
             claim](ec2::Ec2Result<ec2::SimpleOk> r) {
    claims_in_flight_.erase(op);
    std::string action = verb == engine::RouteVerb::Create ? "CreateRoute" : "ReplaceRoute";
    count_call(action, err_of(r));
    if (r) {
      // This host's routes changed: it took the route (claim) or handed it away.
      fire_hook({{"HANAT_EVENT", "route"},
                 {"HANAT_STATE", claim ? "acquired" : "released"},
                 {"HANAT_ROUTE_TABLE", table},
                 {"HANAT_DESTINATION", destination},
                 {"HANAT_TARGET", written}});
    }
    if (r && claim) {
      // The first acknowledged claim after a peer went DOWN ends that peer's failover as
      // the private hosts see it: their route points at a live NAT again.
      const auto at = std::chrono::steady_clock::now();
      for (const auto& [peer, since] : failover_open_)
        failover_seconds_.observe(std::chrono::duration<double>(at - since).count());
      failover_open_.clear();
      note_claimed(table);
    }
    // A superseded write was never sent: it is not the table's last write.
    if (r || r.error().kind != ec2::ErrorKind::Superseded) {
      last_write_[table] =
          LastWrite{std::chrono::system_clock::now(), destination, written, outcome_of(err_of(r))};
    }
    if (!r) {
      log::event(log::Level::Warning, log::message_id::kRouteWriteFailed,
                 {{"HANAT_ROUTE_TABLE", table}, {"HANAT_EC2_ACTION", action}},
                 "route " + table + ": " + action + " failed: " + r.error().describe());
    }
    post(done_of(op, epoch, r ? nullptr : &r.error()));
  };
  if (w.verb == engine::RouteVerb::Create) {
    ec2::CreateRouteRequest r;
    r.route_table_id = w.table;
    r.destination_cidr = w.destination;
    r.target = target;
    const auto id =
        ec2_->create_route(r, {ec2::Priority::RouteWrite, milliseconds(0), kPrepaid}, cb);
    if (claim) claims_in_flight_[w.op] = id;
  } else {
    ec2::ReplaceRouteRequest r;
    r.route_table_id = w.table;
    r.destination_cidr = w.destination;
    r.target = target;
    const auto id =
        ec2_->replace_route(r, {ec2::Priority::RouteWrite, milliseconds(0), kPrepaid}, cb);
    if (claim) claims_in_flight_[w.op] = id;
  }
}

void Node::count_call(const std::string& action, const ec2::Ec2Error* err) {
  ++ec2_calls_[{action, outcome_of(err)}];
  if (err != nullptr && ec2::is_throttling_code(err->code)) ++throttles_;
}

void Node::fire_hook(std::vector<std::pair<std::string, std::string>> vars) {
  if (cfg_->hooks.on_transition.empty()) return;
  vars.emplace_back("HANAT_GROUP", cfg_->group.name);
  vars.emplace_back("HANAT_INSTANCE_ID", id_.instance_id);
  vars.emplace_back("HANAT_ZONE", id_.zone);
  hook_runner_.fire(cfg_->hooks, vars);
}

namespace node_util {

engine::Ec2Done done_of(engine::OpId op, engine::Epoch epoch, const ec2::Ec2Error* err) {
  engine::Ec2Done d;
  d.op = op;
  d.epoch = epoch;
  d.at = now();
  if (err == nullptr) return d;
  d.code = err->code.empty() ? err->describe() : err->code;
  if (ec2::is_throttling_code(err->code)) {
    d.outcome = engine::Ec2Outcome::Throttled;
  } else if (ec2::is_retryable(*err)) {
    d.outcome = engine::Ec2Outcome::Retryable;
  } else {
    d.outcome = engine::Ec2Outcome::Fatal;
  }
  return d;
}

std::string outcome_of(const ec2::Ec2Error* err) {
  if (err == nullptr) return "ok";
  if (err->kind == ec2::ErrorKind::Api && !err->code.empty()) return err->code;
  return std::string(ec2::to_string(err->kind));
}

}  // namespace node_util

}  // namespace hanat::daemon
