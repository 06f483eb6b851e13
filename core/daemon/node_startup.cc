// SPDX-License-Identifier: GPL-2.0-or-later
// DOC: core/daemon/node_startup.cc runs the node's start-up phases, one after the other,
// each retried with a capped backoff when it fails: identity from IMDS, the EC2 client and
// its credentials, the source/destination check turned off, the floating ENI's watch
// started (node_floating.cc), discovery of the group's members and route tables. Then
// start_engine() builds the engine's configuration (engine_config(), also used on reload) and
// starts the engine, the probes and the notices (node_probes.cc). Plan mode stops after discovery.

#include <algorithm>
#include <cctype>
#include <ctime>
#include <fstream>
#include <string>

#include "core/daemon/node.h"
#include "core/daemon/node_util.h"
#include "core/log/log.h"

namespace hanat::daemon {

namespace {

// The engine paces its writes from the EC2 client's own per-API buckets (see
// engine::WriteBudget); the writes it then emits are sent prepaid (node_execute.cc). Holds
// the node's client pointer, not the client, so that it always reads the current one.
class ClientWriteBudget final : public engine::WriteBudget {
 public:
  ClientWriteBudget(uv::Loop& loop, const std::unique_ptr<ec2::Client>& client)
      : loop_(loop), client_(client) {}
  std::optional<engine::Time> take(engine::WriteApi api, engine::Time now) override {
    if (!client_) return std::nullopt;  // no client yet: nothing to pace
    ec2::TokenBucket& b = bucket(api);
    if (b.try_take(loop_.now())) return std::nullopt;
    return now + b.wait_time(loop_.now());
  }
  void drain(engine::WriteApi api, engine::Time /*now*/) override {
    if (client_) bucket(api).drain(loop_.now());
  }
  [[nodiscard]] double tokens(engine::WriteApi api, engine::Time /*now*/) const override {
    return client_ ? bucket(api).tokens(loop_.now()) : 0.0;
  }

 private:
  [[nodiscard]] ec2::TokenBucket& bucket(engine::WriteApi api) const {
    return client_->bucket(engine::to_string(api), ec2::Bucket::Mutating);
  }
  uv::Loop& loop_;
  const std::unique_ptr<ec2::Client>& client_;
};

}  // namespace

using node_util::Clock;
using node_util::err_of;
using node_util::now;
using node_util::tag;
using node_util::target_of;
using std::chrono::milliseconds;

namespace {

engine::RecoveryAction to_engine(config::RecoveryAction a) {
  switch (a) {
    case config::RecoveryAction::None:
      return engine::RecoveryAction::None;
    case config::RecoveryAction::Reboot:
      return engine::RecoveryAction::Reboot;
    case config::RecoveryAction::StopStart:
      return engine::RecoveryAction::StopStart;
    case config::RecoveryAction::Terminate:
      return engine::RecoveryAction::Terminate;
  }
  return engine::RecoveryAction::None;
}

}  // namespace

void Node::run_phase() {
  switch (phase_) {
    case Phase::Identity:
      return phase_identity();
    case Phase::Client:
      return phase_client();
    case Phase::SourceDestCheck:
      return phase_source_dest_check();
    case Phase::FloatingEni:
      return phase_floating_eni();
    case Phase::Discovery:
      return phase_discovery();
    case Phase::Running:
    case Phase::Stopped:
      return;
  }
}

void Node::fail_phase(const std::string& what, const std::string& why) {
  phase_error_ = what + ": " + why;
  if (plan_only_) {
    phase_ = Phase::Stopped;
    if (hooks_.plan_failed) hooks_.plan_failed(phase_error_);
    return;
  }
  // Start-up problems are usually transient (IMDS or the EC2 API not reachable yet, an
  // instance still pending): retry with a capped backoff rather than exit and flap.
  auto delay = milliseconds(std::min<std::int64_t>(30000, 500LL << std::min(phase_attempts_, 6)));
  ++phase_attempts_;
  log::warning(phase_error_ + ", retrying in " + config::format_duration(delay));
  retry_phase(delay);
}

void Node::retry_phase(milliseconds in) {
  (void)phase_timer_.start(in, milliseconds(0), [this] { run_phase(); });
}

void Node::phase_identity() {
  // Five small IMDS reads, one after the other; each failure restarts the phase.
  imds_->instance_id([this](core::Result<std::string, ec2::Ec2Error> r) {
    if (!r) return fail_phase("instance metadata (instance-id)", r.error().describe());
    id_.instance_id = r.value();
    imds_->availability_zone([this](core::Result<std::string, ec2::Ec2Error> z) {
      if (!z) return fail_phase("instance metadata (availability-zone)", z.error().describe());
      id_.zone = z.value();
      imds_->region([this](core::Result<std::string, ec2::Ec2Error> rg) {
        if (!rg) return fail_phase("instance metadata (region)", rg.error().describe());
        id_.region = cfg_->ec2.region.empty() ? rg.value() : cfg_->ec2.region;
        imds_->mac([this](core::Result<std::string, ec2::Ec2Error> m) {
          if (!m) return fail_phase("instance metadata (mac)", m.error().describe());
          id_.mac = m.value();
          imds_->interface(id_.mac, [this](core::Result<ec2::ImdsInterface, ec2::Ec2Error> i) {
            if (!i) return fail_phase("instance metadata (interface)", i.error().describe());
            id_.eni_id = i->interface_id;
            id_.subnet_id = i->subnet_id;
            id_.vpc_id = i->vpc_id;
            id_.private_ip = i->private_ips.empty() ? "" : i->private_ips.front();
            log::notice("identity: instance " + id_.instance_id + " in " + id_.zone + " (" +
                        id_.region + "), ENI " + id_.eni_id + ", " + id_.private_ip);
            check_egress_mac();
            // The agent port is bound as soon as the private IP is known (its default
            // address), before anything is written: a port someone else holds stops the
            // daemon here.
            if (!plan_only_ && !agent_) {
              start_agent();
              if (!agent_) return;
            }
            phase_ = Phase::Client;
            phase_attempts_ = 0;
            run_phase();
          });
        });
      });
    });
  });
}

void Node::phase_client() {
  const auto& e = cfg_->ec2;
  switch (e.credentials) {
    case config::CredentialsSource::Static: {
      ec2::Credentials c;
      c.access_key_id = e.access_key_id;
      c.secret_access_key = e.secret_access_key;
      c.session_token = e.session_token;
      creds_ = std::make_shared<ec2::StaticCredentials>(c);
    } break;
    case config::CredentialsSource::Environment: {
      auto c = ec2::credentials_from_env();
      if (!c) {
        return fail_phase("credentials",
                          "credentials = \"environment\" but AWS_ACCESS_KEY_ID / "
                          "AWS_SECRET_ACCESS_KEY are not set");
      }
      // Re-read before AWS_CREDENTIAL_EXPIRATION instead of kept as read at start.
      creds_ = std::make_shared<ec2::EnvCredentials>();
      break;
    }
    case config::CredentialsSource::InstanceRole: {
      auto role = std::make_shared<ec2::RoleCredentials>(loop_, *imds_);
      role_ = role.get();
      role->start([](const ec2::Ec2Error* err) {
        if (err != nullptr) log::warning("instance role credentials: " + err->describe());
      });
      creds_ = role;
      break;
    }
  }
  ec2::ClientOptions o;
  o.region = id_.region;
  o.endpoint = e.endpoint;
  o.connect_timeout = e.connect_timeout;
  o.attempt_timeout = e.request_timeout;
  for (const auto& [key, lim] : e.rate_limits) {
    if (auto why = o.buckets.set(key, {lim.burst, lim.refill_per_s})) {
      return fail_phase("EC2 client", "ec2.rate_limits: " + *why);
    }
  }
  if (auto why = ec2::validate(o)) return fail_phase("EC2 client", *why);
  if (o.endpoint.rfind("http://", 0) == 0) {
    log::warning("ec2.endpoint " + log::quote(o.endpoint) +
                 " is plain http: requests are not encrypted (tests only)");
  }
  ec2_ = std::make_unique<ec2::Client>(loop_, o, creds_);
  ec2_->set_attempt_observer(
      [this](const std::string& action, std::chrono::steady_clock::duration took) {
        ec2_latency_.try_emplace(action, kEc2LatencyBuckets)
            .first->second.observe(std::chrono::duration<double>(took).count());
      });
  // Plan mode writes nothing, not even the source/destination check.
  phase_ = plan_only_ ? Phase::Discovery : Phase::SourceDestCheck;
  run_phase();
}

void Node::phase_source_dest_check() {
  // A NAT forwards packets that are neither from nor to itself; EC2 drops those unless the
  // source/destination check is off on the interface that forwards them (EC2 User Guide,
  // "NAT instances": "Disable source/destination checks").
  ec2::DescribeNetworkInterfacesRequest req;
  req.network_interface_ids = {id_.eni_id};
  ec2_->describe_network_interfaces(
      req, {ec2::Priority::Read, milliseconds(0)},
      [this](ec2::Ec2Result<ec2::DescribeNetworkInterfacesOk> r) {
        count_call("DescribeNetworkInterfaces", err_of(r));
        if (!r) return fail_phase("source/destination check", r.error().describe());
        bool on = r->network_interfaces.empty() ||
                  r->network_interfaces.front().source_dest_check.value_or(true);
        if (!r->network_interfaces.empty())
          known_private_ips_ = r->network_interfaces.front().private_ips;
        if (!on) {
          phase_ = Phase::FloatingEni;
          phase_attempts_ = 0;
          return run_phase();
        }
        ec2::ModifyNetworkInterfaceAttributeRequest m;
        m.network_interface_id = id_.eni_id;
        m.source_dest_check = false;
        ec2_->modify_network_interface_attribute(
            m, {ec2::Priority::Write, milliseconds(0)}, [this](ec2::Ec2Result<ec2::SimpleOk> w) {
              count_call("ModifyNetworkInterfaceAttribute", err_of(w));
              if (!w)
                return fail_phase("disabling the source/destination check", w.error().describe());
              log::notice("source/destination check disabled on " + id_.eni_id);
              // Loop back to verify it reads back off.
              run_phase();
            });
      });
}

void Node::phase_floating_eni() {
  // The floating ENI is watched from here on beside everything else (node_floating.cc):
  // one that cannot be attached now — held by a live peer, in another zone, refused by
  // EC2 — must not keep this member from probing, failing over and serving routes.
  start_floating_eni();
  phase_ = Phase::Discovery;
  phase_attempts_ = 0;
  run_phase();
}

void Node::phase_discovery() {
  describe_members([this](core::Result<MemberList, std::string> ri) {
    if (!ri) return fail_phase("discovering members", ri.error());
    note_missing_members(ri->missing);
    auto d = std::make_shared<Discovered>();
    d->engine.members = ri->members;
    d->addresses = ri->addresses;
    d->public_addresses = ri->public_addresses;
    if (d->addresses.count(id_.instance_id) == 0) {
      return fail_phase("discovering members",
                        "this instance (" + id_.instance_id +
                            ") is not a running member of group " + log::quote(cfg_->group.name) +
                            " in " + id_.vpc_id + " (tag hanat:group or group.members)");
    }
    ec2_->describe_route_tables(
        route_tables_request(), {ec2::Priority::Read, milliseconds(0)},
        [this, d](ec2::Ec2Result<ec2::DescribeRouteTablesOk> rt) {
          count_call("DescribeRouteTables", err_of(rt));
          if (!rt) return fail_phase("discovering route tables", rt.error().describe());
          std::vector<ec2::RouteTable> tables;
          for (const ec2::RouteTable* t : scoped_tables(rt->route_tables)) tables.push_back(*t);
          std::vector<std::string> need_subnets;
          for (const auto& t : tables) {
            std::string zone = tag(t.tags, "hanat:zone");
            // The subnets' zones give an untagged table its home zone; their CIDRs are the
            // sources of a zone's snat rule (node_eips.cc) and of the flows a planned
            // handover of the table keeps (table_cidrs, keep::handover_sources()).
            for (const auto& a : t.associations)
              if (!a.subnet_id.empty()) need_subnets.push_back(a.subnet_id);
            d->table_zones[t.route_table_id] = zone;
            engine::ObservedTable ot;
            ot.id = t.route_table_id;
            for (const auto& r : t.routes) {
              for (const auto& c : cfg_->group.destinations) {
                if (c.text == r.destination_cidr)
                  ot.routes.push_back({r.destination_cidr, target_of(r)});
              }
            }
            d->observed.push_back(std::move(ot));
          }
          auto finish = [this, d, tables](const std::map<std::string, std::string>& subnet_zone,
                                          const std::map<std::string, std::string>& subnet_cidr) {
            for (const auto& t : tables) {
              std::string& zone = d->table_zones[t.route_table_id];
              if (zone.empty()) {
                for (const auto& a : t.associations) {
                  auto it = subnet_zone.find(a.subnet_id);
                  if (it != subnet_zone.end()) {
                    zone = it->second;
                    break;
                  }
                }
              }
              if (zone.empty())
                log::warning(
                    "route table " + t.route_table_id +
                    " has no hanat:zone tag and no associated subnet: it has no home zone");
            }
            for (auto& ot : d->observed) ot.zone = d->table_zones[ot.id];
            for (const auto& t : tables) {
              const std::string& zone = d->table_zones[t.route_table_id];
              for (const auto& a : t.associations) {
                auto c = subnet_cidr.find(a.subnet_id);
                if (c == subnet_cidr.end()) continue;
                auto& tc = d->table_cidrs[t.route_table_id];
                if (std::find(tc.begin(), tc.end(), c->second) == tc.end()) tc.push_back(c->second);
                if (zone.empty()) continue;
                auto& cidrs = d->zone_cidrs[zone];
                if (std::find(cidrs.begin(), cidrs.end(), c->second) == cidrs.end())
                  cidrs.push_back(c->second);
              }
            }
            if (plan_only_) {
              phase_ = Phase::Stopped;
              d->engine = engine_config(*d);
              if (hooks_.planned) hooks_.planned(*d, id_);
              return;
            }
            if (cfg_->failover.move_eip) {
              return discover_eips(d, [this, d] { start_engine(std::move(*d)); });
            }
            start_engine(std::move(*d));
          };
          if (need_subnets.empty()) return finish({}, {});
          ec2::DescribeSubnetsRequest sr;
          sr.subnet_ids = need_subnets;
          ec2_->describe_subnets(sr, {ec2::Priority::Read, milliseconds(0)},
                                 [this, finish](ec2::Ec2Result<ec2::DescribeSubnetsOk> rs) {
                                   count_call("DescribeSubnets", err_of(rs));
                                   if (!rs)
                                     return fail_phase("discovering subnets",
                                                       rs.error().describe());
                                   std::map<std::string, std::string> zones, cidrs;
                                   for (const auto& s : rs->subnets) {
                                     zones[s.subnet_id] = s.availability_zone;
                                     cidrs[s.subnet_id] = s.cidr_block;
                                   }
                                   finish(zones, cidrs);
                                 });
        });
  });
}

engine::Config Node::engine_config(const Discovered& d) const {
  engine::Config e;
  e.self = id_.instance_id;
  e.members = d.engine.members;
  e.probe_kinds = cfg_->probe.kinds;
  e.peer_thresholds = {.rise = cfg_->probe.rise, .fall = cfg_->probe.fall};
  e.failback_delay = cfg_->failover.failback_delay;
  e.preempt = cfg_->failover.preempt;
  // Failback keeps connections (node_keep_send.cc, ask_reclaim()): the home member's writes
  // wait for the serving member's flows, at most as long as a leaving member waits for its
  // taker's ack. flow_drain 0 keeps nothing, so nothing is waited for.
  if (cfg_->handover.flow_drain.count() > 0 && config::effective_channel_port(*cfg_) != 0)
    e.reclaim_wait = keep::kAckWait;
  e.hold_down_base = cfg_->failover.hold_down;
  e.hold_down_max = cfg_->failover.hold_down_max;
  e.fallback_nat_gateway = cfg_->failover.fallback_target;
  e.destinations.clear();
  for (const auto& c : cfg_->group.destinations) e.destinations.push_back(c.text);
  e.describe_interval = cfg_->ec2.route_refresh_interval;
  e.handover_deadline = cfg_->failover.handover_timeout;
  e.recovery = to_engine(cfg_->failover.recovery_action);
  e.recovery_after = cfg_->failover.recovery_after;
  e.recovery_cooldown = cfg_->failover.recovery_cooldown;
  // Peers that fall silent within one detection time of each other fell silent at once
  // (probes of all peers go out in the same interval; each needs `fall` misses).
  e.suspect_window = std::chrono::duration_cast<engine::Millis>(
      cfg_->probe.interval * cfg_->probe.fall + cfg_->probe.timeout);
  e.egress_check = !cfg_->egress.targets.empty();
  if (cfg_->failover.move_eip) e.eips = engine_eips();
  return e;
}

void Node::start_engine(Discovered d) {
  discovered_ = std::move(d);
  discovered_.engine = engine_config(discovered_);
  auto problems = engine::validate(discovered_.engine);
  if (!problems.empty()) {
    std::string all;
    for (const auto& p : problems) all += (all.empty() ? "" : "; ") + p;
    return fail_phase("engine configuration", all);
  }
  log::notice("group " + log::quote(cfg_->group.name) + ": " +
              std::to_string(discovered_.engine.members.size()) + " members, " +
              std::to_string(discovered_.table_zones.size()) + " route tables");
  phase_ = Phase::Running;
  phase_error_.clear();
  machine_ = std::make_unique<engine::Machine>(
      std::make_shared<const engine::Config>(discovered_.engine), now());
  machine_->use_write_budget(std::make_shared<ClientWriteBudget>(loop_, ec2_));
  start_probes();
  start_channel();
  start_replication();
  start_notices();
  start_refresh();
  load_recoveries();    // the cool-down of recovery actions before a restart
  reserve_addresses();  // [failover] stateful: the other zones' addresses (node_eips.cc)
  feed_self_health();
  // A drain asked for before the engine ran goes first: a host started drained never
  // claims a route, not even for one tick.
  if (drain_pending_) post(engine::Drain{*drain_pending_, now()});
  drain_pending_.reset();
  post(engine::Tick{now()});
  if (stopping_) post(engine::Shutdown{now()});
}

void Node::check_egress_mac() {
  // Cross-check of the default nat.egress_interface (the default route's) against instance
  // metadata: the primary ENI's MAC is the one whose source/destination check hanat turns
  // off and that the VPC routes the private subnets to. Another interface carrying the
  // default route (a second ENI's DHCP client won the metric) masquerades on the wrong
  // one. A file that names the interface is the operator's choice: not second-guessed.
  if (!cfg_->nat.egress_interface_from_route || id_.mac.empty()) return;
  std::ifstream in("/sys/class/net/" + cfg_->nat.egress_interface + "/address");
  std::string mac;
  if (!(in >> mac)) return;
  auto lower = [](std::string s) {
    for (auto& ch : s) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    return s;
  };
  if (lower(mac) == lower(id_.mac)) return;
  warn_once("egress-mac", "nat.egress_interface " + log::quote(cfg_->nat.egress_interface) +
                              " (the default route's) has MAC " + mac + ", not the primary ENI's " +
                              id_.mac + " (instance metadata): set nat.egress_interface");
}

}  // namespace hanat::daemon
