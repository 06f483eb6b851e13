// SPDX-License-Identifier: GPL-2.0-or-later
// DOC: core/daemon/node_execute.cc carries out the engine's actions: execute() applies the
// NAT (netfilter), writes routes (write_route), moves Elastic IPs, sends recovery actions
// for a peer that stayed down, logs transitions, and exits when the handover is finished.
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

using node_util::err_of;
using node_util::now;
using node_util::target_text;
using std::chrono::milliseconds;

namespace {

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

// "ok", the EC2 error code, or the kind of failure when EC2 sent no code (timeout,
// transport, ...): short, stable values fit for a metric label.
std::string outcome_of(const ec2::Ec2Error* err) {
  if (err == nullptr) return "ok";
  if (err->kind == ec2::ErrorKind::Api && !err->code.empty()) return err->code;
  return std::string(ec2::to_string(err->kind));
}

}  // namespace

void Node::execute(const engine::Action& a) {
  std::visit(
      [this](const auto& x) {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, engine::ApplyNat>) {
          netfilter::NatSpec spec;
          spec.table = cfg_->nat.table;
          spec.egress_interface = cfg_->nat.egress_interface;
          for (const auto& c : cfg_->nat.source_cidrs) spec.source_cidrs.push_back(c.text);
          spec.fully_random = cfg_->nat.fully_random;
          spec.persistent = cfg_->nat.persistent;
          spec.forward_counters = cfg_->forward.check;
          spec.leak_counter = cfg_->forward.check;
          netfilter::SysctlSpec sys;
          if (cfg_->nat.conntrack_max)
            sys.conntrack_max = static_cast<uint64_t>(*cfg_->nat.conntrack_max);
          if (cfg_->nat.tcp_established_timeout)
            sys.tcp_timeout_established_s =
                static_cast<uint32_t>(cfg_->nat.tcp_established_timeout->count() / 1000);
          if (cfg_->nat.udp_timeout)
            sys.udp_timeout_s = static_cast<uint32_t>(cfg_->nat.udp_timeout->count() / 1000);
          auto st = nat_->apply(spec, sys);
          nat_healthy_ = st.has_value();
          nat_judged_ = true;
          nat_reason_ = st ? "" : st.error().message;
          if (!st) log::error("data plane: " + st.error().message);
          engine::NatApplied n{x.op, x.epoch, st.has_value(), nat_reason_, now()};
          queue_.push_back(n);
        } else if constexpr (std::is_same_v<T, engine::DescribeRoutes>) {
          describe_routes(x.op);
        } else if constexpr (std::is_same_v<T, engine::WriteRoute>) {
          write_route(x);
        } else if constexpr (std::is_same_v<T, engine::AssociateAddress>) {
          ec2::AssociateAddressRequest r;
          r.allocation_id = x.allocation_id;
          r.network_interface_id = id_.eni_id;
          r.allow_reassociation = true;
          ec2_->associate_address(
              r, {ec2::Priority::Write, milliseconds(0), kPrepaid},
              [this, op = x.op, epoch = x.epoch](ec2::Ec2Result<ec2::AssociateAddressOk> res) {
                count_call("AssociateAddress", err_of(res));
                post(done_of(op, epoch, res ? nullptr : &res.error()));
              });
        } else if constexpr (std::is_same_v<T, engine::RecoverPeer>) {
          const char* action = x.what == engine::RecoveryAction::Terminate   ? "TerminateInstances"
                               : x.what == engine::RecoveryAction::StopStart ? "StopInstances"
                                                                             : "RebootInstances";
          auto cb = [this, op = x.op, epoch = x.epoch, what = x.what, peer = x.peer,
                     action](ec2::Ec2Result<ec2::InstanceStateChangesOk> res) {
            count_call(action, err_of(res));
            if (res) log::notice("peer " + peer + ": recovery action sent");
            post(done_of(op, epoch, res ? nullptr : &res.error()));
            (void)what;
          };
          log::notice("peer " + x.peer + ": stayed down, recovery action " +
                      std::to_string(static_cast<int>(x.what)));
          if (x.what == engine::RecoveryAction::Terminate) {
            ec2::TerminateInstancesRequest r;
            r.instance_ids = {x.peer};
            ec2_->terminate_instances(r, {ec2::Priority::Write, milliseconds(0)}, cb);
          } else if (x.what == engine::RecoveryAction::StopStart) {
            ec2::StopInstancesRequest r;
            r.instance_ids = {x.peer};
            ec2_->stop_instances(r, {ec2::Priority::Write, milliseconds(0)}, cb);
          } else {
            ec2::RebootInstancesRequest r;
            r.instance_ids = {x.peer};
            ec2_->reboot_instances(r, {ec2::Priority::Write, milliseconds(0)},
                                   [cb](ec2::Ec2Result<ec2::SimpleOk> res) {
                                     if (res) return cb(ec2::InstanceStateChangesOk{});
                                     cb(core::Unexpected(res.error()));
                                   });
          }
        } else if constexpr (std::is_same_v<T, engine::Notify>) {
          log::event(log::Level::Notice, log::message_id::kStateChanged,
                     {{"HANAT_STATE", engine::to_string(x.to)},
                      {"HANAT_REASON", engine::to_string(x.reason)}},
                     std::string("state: ") + engine::to_string(x.from) + " -> " +
                         engine::to_string(x.to) + " (" + engine::to_string(x.reason) +
                         (x.detail.empty() ? "" : ": " + x.detail) + ")");
        } else if constexpr (std::is_same_v<T, engine::PeerChanged>) {
          if (x.to == engine::Health::Down && x.from == engine::Health::Up) ++failovers_;
          health_reason_[x.peer] = x.detail;
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
        } else if constexpr (std::is_same_v<T, engine::ExitReady>) {
          log::event(
              log::Level::Notice, log::message_id::kHandoverFinished,
              {{"HANAT_REASON", engine::to_string(x.reason)}},
              std::string("handover finished (") + engine::to_string(x.reason) + "), exiting");
          // [nat] remove_on_exit: only here, once no route of the group points at this host
          // any more. A restart, --no-handover or an interrupted handover keeps the table:
          // routes may still send traffic through it.
          if (cfg_->nat.remove_on_exit && nat_) {
            if (auto st = nat_->remove(); !st) {
              log::warning("remove_on_exit: cannot delete the nftables table: " +
                           st.error().message);
            } else {
              log::notice("remove_on_exit: nftables table " + log::quote(cfg_->nat.table) +
                          " deleted");
            }
          }
          phase_ = Phase::Stopped;
          if (hooks_.exit_ready) hooks_.exit_ready();
        }
      },
      a);
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
  auto cb = [this, op = w.op, epoch = w.epoch, table = w.table, destination = w.destination,
             written = target_text(w.target), verb = w.verb](ec2::Ec2Result<ec2::SimpleOk> r) {
    std::string action = verb == engine::RouteVerb::Create ? "CreateRoute" : "ReplaceRoute";
    count_call(action, err_of(r));
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
    ec2_->create_route(r, {ec2::Priority::RouteWrite, milliseconds(0), kPrepaid}, cb);
  } else {
    ec2::ReplaceRouteRequest r;
    r.route_table_id = w.table;
    r.destination_cidr = w.destination;
    r.target = target;
    ec2_->replace_route(r, {ec2::Priority::RouteWrite, milliseconds(0), kPrepaid}, cb);
  }
}

void Node::count_call(const std::string& action, const ec2::Ec2Error* err) {
  ++ec2_calls_[{action, outcome_of(err)}];
  if (err != nullptr && ec2::is_throttling_code(err->code)) ++throttles_;
}

}  // namespace hanat::daemon
