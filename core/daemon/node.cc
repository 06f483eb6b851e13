#include "core/daemon/node.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <iterator>

#include "core/log/log.h"
#include "probes/agent_line.h"

namespace hanat::daemon {

namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

engine::Time now() {
  return Clock::now();
}

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

std::string tag(const std::vector<ec2::Tag>& tags, std::string_view key) {
  for (const auto& t : tags)
    if (t.key == key) return t.value;
  return "";
}

// EC2 LaunchTime "2026-11-22T05:00:00.000Z" -> seconds since the epoch (0 if unparsable).
std::int64_t launch_seconds(const std::string& s) {
  std::tm tm{};
  if (strptime(s.c_str(), "%Y-%m-%dT%H:%M:%S", &tm) == nullptr) return 0;
  return static_cast<std::int64_t>(timegm(&tm));
}

engine::Target target_of(const ec2::Route& r) {
  // A route whose target is gone (instance terminated, ENI deleted) stays in the table with
  // State=blackhole (EC2 API reference, Route): it carries no traffic.
  if (r.state == "blackhole") return {engine::TargetKind::Blackhole, ""};
  if (!r.network_interface_id.empty()) return {engine::TargetKind::Eni, r.network_interface_id};
  if (!r.instance_id.empty()) return {engine::TargetKind::Instance, r.instance_id};
  if (!r.nat_gateway_id.empty()) return {engine::TargetKind::NatGateway, r.nat_gateway_id};
  return {engine::TargetKind::Other, r.gateway_id};
}

std::string target_text(const engine::Target& t) {
  switch (t.kind) {
    case engine::TargetKind::Missing:
      return "missing";
    case engine::TargetKind::Blackhole:
      return "blackhole";
    default:
      return t.id.empty() ? engine::to_string(t.kind) : t.id;
  }
}

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

json_t* jstr(const std::string& s) {
  return json_string(s.c_str());
}

std::int64_t ms_ago(engine::Time t) {
  return std::chrono::duration_cast<milliseconds>(now() - t).count();
}

std::int64_t unix_ms(std::chrono::system_clock::time_point t) {
  return std::chrono::duration_cast<milliseconds>(t.time_since_epoch()).count();
}

// A steady-clock instant as wall-clock unix milliseconds: now's wall clock minus how long
// ago it was. (The engine keeps monotonic time only; status shows wall-clock times.)
std::int64_t wall_ms(engine::Time t) {
  return unix_ms(std::chrono::system_clock::now()) - ms_ago(t);
}

// "ok", the EC2 error code, or the kind of failure when EC2 sent no code (timeout,
// transport, ...): short, stable values fit for a metric label.
std::string outcome_of(const ec2::Ec2Error* err) {
  if (err == nullptr) return "ok";
  if (err->kind == ec2::ErrorKind::Api && !err->code.empty()) return err->code;
  return std::string(ec2::to_string(err->kind));
}

template <class R>
const ec2::Ec2Error* err_of(const R& r) {
  return r ? nullptr : &r.error();
}

// "2026-11-22T08:51:14.123Z"
std::string iso8601_ms(std::chrono::system_clock::time_point t) {
  std::time_t secs = std::chrono::system_clock::to_time_t(t);
  auto ms = unix_ms(t) % 1000;
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[40];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
  char out[48];
  std::snprintf(out, sizeof(out), "%s.%03dZ", buf, static_cast<int>(ms));
  return out;
}

void set_int(json_t* o, const char* key, std::int64_t v) {
  json_object_set_new(o, key, json_integer(static_cast<json_int_t>(v)));
}

}  // namespace

Node::Node(uv::Loop& loop, std::shared_ptr<const config::Config> cfg, bool handover_on_stop,
           Hooks hooks, bool plan_only)
    : loop_(loop),
      cfg_(std::move(cfg)),
      handover_on_stop_(handover_on_stop),
      hooks_(std::move(hooks)),
      plan_only_(plan_only),
      phase_timer_(loop),
      engine_timer_(loop),
      notice_timer_(loop),
      started_(Clock::now()) {}

Node::~Node() = default;

void Node::start() {
  imds_ = std::make_unique<ec2::ImdsClient>(
      loop_, ec2::ImdsOptions{cfg_->ec2.metadata_endpoint, std::chrono::seconds(21600),
                              milliseconds(1000), cfg_->ec2.allow_imdsv1});
  if (plan_only_) return run_phase();
  nat_ = std::make_unique<netfilter::NatManager>(
      loop_,
      netfilter::ManagerOptions{cfg_->nat.drift_check_interval, milliseconds(1000), "/proc/sys"});
  forward_ = std::make_unique<ForwardCheck>(*nat_);
  nat_->on_health_change([this](const netfilter::Health& h) {
    nat_healthy_ = h.ok;
    nat_reason_ = h.reason;
    if (h.ok) {
      log::notice("data plane: masquerade table and forwarding verified");
    } else {
      log::warning("data plane unhealthy: " + h.reason);
    }
    feed_self_health();
  });
  forward_->on_forward_change([this](const engine::ForwardWatch::Verdict& v) {
    if (v.state == engine::Health::Down) {
      log::warning("forward check: down (" + v.detail + "): handing routes away");
    } else {
      log::notice(std::string("forward check: ") + engine::to_string(v.state) + " (" + v.detail +
                  ")");
    }
    feed_self_health();
  });
  watch_forwarding();
  run_phase();
}

void Node::watch_forwarding() {
  if (!nat_) return;
  if (!cfg_->forward.check) {
    forward_->watch_forwarding(std::nullopt);
    return;
  }
  ForwardCheckOptions o;
  o.interval = cfg_->forward.interval;
  o.watch.min_packets = static_cast<std::uint64_t>(cfg_->forward.min_packets);
  o.watch.fall = cfg_->forward.fall;
  o.watch.rise = cfg_->forward.rise;
  o.watch.recheck = cfg_->forward.recheck;
  forward_->watch_forwarding(o);
}

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
      creds_ = std::make_shared<ec2::StaticCredentials>(*c);
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
  if (auto why = ec2::validate(o)) return fail_phase("EC2 client", *why);
  if (o.endpoint.rfind("http://", 0) == 0) {
    log::warning("ec2.endpoint " + log::quote(o.endpoint) +
                 " is plain http: requests are not encrypted (tests only)");
  }
  ec2_ = std::make_unique<ec2::Client>(loop_, o, creds_);
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
  const std::string& eni = cfg_->failover.floating_eni;
  if (eni.empty()) {
    phase_ = Phase::Discovery;
    return run_phase();
  }
  // A floating ENI carries addresses that must follow the active NAT. EC2 refuses to
  // attach an ENI that another instance still holds (it must be detached first, which the
  // previous owner's handover or its termination does), so wait for it, bounded by
  // handover_timeout x 6, then carry on without it and say so.
  if (!floating_since_) floating_since_ = Clock::now();
  auto limit = cfg_->failover.handover_timeout * 6;
  auto next = [this] {
    phase_ = Phase::Discovery;
    phase_attempts_ = 0;
    run_phase();
  };
  ec2::DescribeNetworkInterfacesRequest req;
  req.network_interface_ids = {eni};
  ec2_->describe_network_interfaces(
      req, {ec2::Priority::Read, milliseconds(0)},
      [this, eni, limit, next](ec2::Ec2Result<ec2::DescribeNetworkInterfacesOk> r) {
        count_call("DescribeNetworkInterfaces", err_of(r));
        if (!r) return fail_phase("floating ENI " + eni, r.error().describe());
        if (r->network_interfaces.empty()) return fail_phase("floating ENI " + eni, "not found");
        const auto& ni = r->network_interfaces.front();
        if (ni.attached_instance_id == id_.instance_id) {
          floating_eni_state_ = "attached";
          log::notice("floating ENI " + eni + " is attached to this host");
          return next();
        }
        if (!ni.attached_instance_id.empty()) {
          auto waited = std::chrono::duration_cast<milliseconds>(Clock::now() - *floating_since_);
          if (waited >= limit) {
            floating_eni_state_ = "gave up: still attached to " + ni.attached_instance_id;
            log::error("floating ENI " + eni + " is still attached to " + ni.attached_instance_id +
                       " after " + config::format_duration(waited) + ", continuing without it");
            return next();
          }
          floating_eni_state_ = "waiting for " + ni.attached_instance_id + " to release it";
          log::info("floating ENI " + eni + " is attached to " + ni.attached_instance_id +
                    ", waiting for it to be released");
          return retry_phase(milliseconds(1000));
        }
        ec2::AttachNetworkInterfaceRequest a;
        a.network_interface_id = eni;
        a.instance_id = id_.instance_id;
        a.device_index = 1;
        ec2_->attach_network_interface(
            a, {ec2::Priority::Write, milliseconds(0)},
            [this, eni](ec2::Ec2Result<ec2::AttachNetworkInterfaceOk> w) {
              count_call("AttachNetworkInterface", err_of(w));
              if (!w) return fail_phase("attaching floating ENI " + eni, w.error().describe());
              log::notice("floating ENI " + eni + " attached (" + w->attachment_id + ")");
              // Loop back: the next pass reads it back as attached to this host.
              run_phase();
            });
      });
}

void Node::phase_discovery() {
  const auto& g = cfg_->group;
  ec2::DescribeInstancesRequest ir;
  if (g.discovery == config::Discovery::Explicit) {
    ir.instance_ids = g.members;
    if (std::find(ir.instance_ids.begin(), ir.instance_ids.end(), id_.instance_id) ==
        ir.instance_ids.end())
      ir.instance_ids.push_back(id_.instance_id);
  } else {
    ir.filters.push_back({"tag:hanat:group", {g.name}});
    ir.filters.push_back({"instance-state-name", {"pending", "running"}});
  }
  ec2_->describe_instances(
      ir, {ec2::Priority::Read, milliseconds(0)},
      [this](ec2::Ec2Result<ec2::DescribeInstancesOk> ri) {
        count_call("DescribeInstances", err_of(ri));
        if (!ri) return fail_phase("discovering members", ri.error().describe());
        auto d = std::make_shared<Discovered>();
        for (const auto& inst : ri->instances) {
          engine::Member m;
          m.instance_id = inst.instance_id;
          m.zone = inst.availability_zone;
          m.launch_time = launch_seconds(inst.launch_time);
          std::string addr = inst.private_ip;
          for (const auto& ni : inst.network_interfaces) {
            if (ni.device_index == 0) {
              m.eni_id = ni.network_interface_id;
              if (!ni.private_ip.empty()) addr = ni.private_ip;
            }
          }
          if (inst.instance_id == id_.instance_id && !id_.eni_id.empty()) m.eni_id = id_.eni_id;
          d->addresses[m.instance_id] = addr;
          d->engine.members.push_back(std::move(m));
        }
        if (d->addresses.count(id_.instance_id) == 0) {
          return fail_phase("discovering members", "this instance (" + id_.instance_id +
                                                       ") is not a member of group " +
                                                       log::quote(cfg_->group.name) +
                                                       " (tag hanat:group or group.members)");
        }
        ec2::DescribeRouteTablesRequest rr;
        if (cfg_->group.discovery == config::Discovery::Explicit) {
          rr.route_table_ids = cfg_->group.route_tables;
        } else {
          rr.filters.push_back({"tag:hanat:group", {cfg_->group.name}});
        }
        ec2_->describe_route_tables(
            rr, {ec2::Priority::Read, milliseconds(0)},
            [this, d](ec2::Ec2Result<ec2::DescribeRouteTablesOk> rt) {
              count_call("DescribeRouteTables", err_of(rt));
              if (!rt) return fail_phase("discovering route tables", rt.error().describe());
              std::vector<std::string> need_subnets;
              for (const auto& t : rt->route_tables) {
                std::string zone = tag(t.tags, "hanat:zone");
                if (zone.empty()) {
                  for (const auto& a : t.associations)
                    if (!a.subnet_id.empty()) need_subnets.push_back(a.subnet_id);
                }
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
              auto finish = [this, d, tables = rt->route_tables](
                                const std::map<std::string, std::string>& subnet_zone) {
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
                if (plan_only_) {
                  phase_ = Phase::Stopped;
                  d->engine = engine_config(*d);
                  if (hooks_.planned) hooks_.planned(*d, id_);
                  return;
                }
                start_engine(std::move(*d));
              };
              if (need_subnets.empty()) return finish({});
              ec2::DescribeSubnetsRequest sr;
              sr.subnet_ids = need_subnets;
              ec2_->describe_subnets(sr, {ec2::Priority::Read, milliseconds(0)},
                                     [this, finish](ec2::Ec2Result<ec2::DescribeSubnetsOk> rs) {
                                       count_call("DescribeSubnets", err_of(rs));
                                       if (!rs)
                                         return fail_phase("discovering subnets",
                                                           rs.error().describe());
                                       std::map<std::string, std::string> zones;
                                       for (const auto& s : rs->subnets)
                                         zones[s.subnet_id] = s.availability_zone;
                                       finish(zones);
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
  start_probes();
  start_notices();
  post(engine::Tick{now()});
  if (stopping_) post(engine::Shutdown{now()});
}

void Node::watch_own_link() {
  // keepalived's interface tracking does the same job: a node whose own link is down goes
  // to FAULT instead of electing itself master.
  auto ifname = probes::interface_with_address(id_.private_ip);
  if (!ifname) {
    log::warning("own link not watched (" + ifname.error() +
                 "): peer probe failures are taken at face value");
    return;
  }
  auto w = probes::LinkWatch::create(loop_, *ifname, [this](bool up, probes::Time) {
    if (up) {
      log::notice("own link " + own_link_->ifname() + " is up again");
    } else {
      log::warning("own link " + own_link_->ifname() +
                   " is down: failed peer probes are not counted against the peers until it "
                   "is back");
    }
  });
  if (!w) {
    log::warning(w.error() + ": peer probe failures are taken at face value");
    return;
  }
  own_link_ = std::move(w).value();
}

void Node::start_probes() {
  std::vector<probes::PeerSpec> peers;
  for (const auto& m : discovered_.engine.members) {
    if (m.instance_id == id_.instance_id) continue;
    probes::PeerSpec p;
    p.id = m.instance_id;
    p.address = discovered_.addresses[m.instance_id];
    p.kinds = cfg_->probe.kinds;
    p.tcp_port = cfg_->probe.tcp_port;
    p.agent_port = cfg_->agent.port;
    peers.push_back(std::move(p));
  }
  probes::ProbeOptions po;
  po.interval = cfg_->probe.interval;
  po.timeout = cfg_->probe.timeout;
  po.rise = cfg_->probe.rise;
  po.fall = cfg_->probe.fall;
  if (!peers.empty() && !own_link_) watch_own_link();
  if (!peers.empty()) {
    auto mon = probes::PeerMonitor::create(
        loop_, peers, po,
        {.on_result =
             [this](const probes::ProbeResult& r) {
               note_send_delay(r);
               last_rtt_[r.peer + "/" + probes::to_string(r.kind)] = r.outcome.rtt;
               // A probe sent while our own link was down fails at its timeout, and for a
               // while after the link returns answers still get lost: neighbour entries
               // (ARP, ours and the peer's) that failed during the outage are resolved
               // again only at the next retransmission, every retrans_time_ms (1 s by
               // default). Measured in the lab's flapping drill with 50 ms probes: agent
               // probes kept failing for several hundred ms after carrier returned. So
               // the grace is one timeout + one interval + 1 s.
               const auto grace =
                   cfg_->probe.timeout + cfg_->probe.interval + std::chrono::seconds(1);
               if (!r.outcome.ok && r.outcome.failure != probes::Failure::AgentDown && own_link_ &&
                   own_link_->impaired(r.at, grace)) {
                 ++discounted_failures_;
                 return;
               }
               engine::ProbeResult e;
               e.peer = r.peer;
               e.kind = r.kind;
               e.ok = r.outcome.ok;
               e.at = r.at;
               e.reports_down = r.outcome.failure == probes::Failure::AgentDown;
               post(e);
             },
         .on_transition = {}});
    if (!mon) {
      log::error("probes: " + mon.error());
    } else {
      peers_ = std::move(mon).value();
      (void)peers_->start();
    }
  }
  if (!cfg_->egress.targets.empty()) {
    probes::EgressSpec es;
    for (const auto& t : cfg_->egress.targets) es.targets.push_back({t.address, t.port});
    es.interface =
        cfg_->egress.interface.empty() ? cfg_->nat.egress_interface : cfg_->egress.interface;
    es.k = cfg_->egress.required;
    probes::ProbeOptions eo = po;
    eo.interval = cfg_->egress.interval;
    eo.timeout = cfg_->egress.timeout;
    auto eg = probes::EgressCheck::create(
        loop_, es, eo,
        {.on_result = [this](const probes::ProbeResult& r) { note_send_delay(r); },
         .on_change =
             [this](const probes::EgressWindow::Verdict& v) {
               egress_health_ = v.state;
               egress_detail_ = v.detail;
               log::notice(std::string("egress self-check: ") + engine::to_string(v.state) + " (" +
                           v.detail + ")");
               feed_self_health();
             }});
    if (!eg) {
      log::error("egress self-check: " + eg.error());
    } else {
      egress_ = std::move(eg).value();
      (void)egress_->start();
    }
  }
  agent_ = std::make_unique<probes::AgentServer>(loop_, [this] { return agent_reply(); });
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(cfg_->agent.port);
  inet_pton(AF_INET, cfg_->agent.listen_address.c_str(), &a.sin_addr);
  std::string err;
  if (agent_->listen(a, &err)) log::error("agent check: " + err);
}

void Node::start_notices() {
  // Spot interruption notices appear in IMDS about two minutes before the instance is
  // stopped (EC2 User Guide, "Spot Instance interruption notices"); an Auto Scaling
  // lifecycle state of Terminated means the instance is leaving the group. Poll every 5 s,
  // the interval AWS recommends for the spot notice: the two-minute warning leaves ample
  // time for a make-before-break handover, and an ASG that must wait for it gives itself
  // the time with a lifecycle hook.
  (void)notice_timer_.start(milliseconds(5000), milliseconds(5000), [this] {
    if (notice_sent_) return;
    imds_->spot_instance_action(
        [this](core::Result<std::optional<ec2::SpotAction>, ec2::Ec2Error> r) {
          if (notice_sent_ || !r || !r.value()) return;
          notice_sent_ = true;
          log::notice("spot interruption notice (" + r.value()->action + " at " + r.value()->time +
                      "): handing routes over");
          post(engine::TerminationNotice{engine::TerminationKind::Spot, now()});
        });
    imds_->target_lifecycle_state(
        [this](core::Result<std::optional<std::string>, ec2::Ec2Error> r) {
          if (notice_sent_ || !r || !r.value()) return;
          const std::string& s = *r.value();
          if (s.find("Terminated") == std::string::npos) return;
          notice_sent_ = true;
          log::notice("Auto Scaling lifecycle state " + log::quote(s) + ": handing routes over");
          post(engine::TerminationNotice{engine::TerminationKind::Asg, now()});
        });
  });
}

std::string Node::forward_stall() const {
  if (!nat_ || forward_->forward().state() != engine::Health::Down) return {};
  return "forwarding stalled: " + forward_->forward().detail();
}

void Node::feed_self_health() {
  if (!machine_) return;
  const bool egress_ok = egress_health_ != engine::Health::Down;
  const std::string stall = forward_stall();
  engine::SelfHealth h;
  h.ok = egress_ok && stall.empty();  // the NAT's own state arrives as NatApplied
  h.detail = stall;
  if (!egress_ok) {
    h.detail += (h.detail.empty() ? "" : "; ") + ("egress self-check failed: " + egress_detail_);
  }
  h.at = now();
  post(h);
  if (!nat_healthy_ && nat_) {
    engine::NatApplied n;
    n.ok = false;
    n.detail = nat_reason_;
    n.at = now();
    post(n);
  }
}

probes::AgentReply Node::agent_reply() const {
  probes::SelfHealth h;
  h.masquerade = nat_healthy_;
  h.forwarding = nat_healthy_ || nat_reason_.find("ip_forward") == std::string::npos;
  if (std::string stall = forward_stall(); !stall.empty()) {
    h.forwarding = false;
    h.forwarding_detail = std::move(stall);
  }
  h.egress_ok = egress_health_ != engine::Health::Down;
  h.egress_detail = egress_detail_;
  if (machine_) {
    auto s = machine_->state();
    h.draining = s == engine::State::Draining || s == engine::State::Drained ||
                 s == engine::State::Leaving || s == engine::State::ExitReady ||
                 s == engine::State::Failing || s == engine::State::Unhealthy;
  }
  return probes::reply_for(h, id_.instance_id);
}

void Node::post(engine::Event ev) {
  queue_.push_back(std::move(ev));
  pump();
}

void Node::pump() {
  // Events raised while actions execute (a synchronous NAT apply) are queued, so handle()
  // is never re-entered.
  if (pumping_ || !machine_) return;
  pumping_ = true;
  while (!queue_.empty()) {
    engine::Event ev = std::move(queue_.front());
    queue_.pop_front();
    for (const auto& a : machine_->handle(ev)) execute(a);
  }
  pumping_ = false;
  arm_engine_timer();
}

void Node::arm_engine_timer() {
  auto d = machine_ ? machine_->next_deadline() : std::nullopt;
  if (!d) {
    (void)engine_timer_.stop();
    return;
  }
  auto in = std::chrono::ceil<milliseconds>(*d - now());
  if (in < milliseconds(0)) in = milliseconds(0);
  (void)engine_timer_.start(in, milliseconds(0), [this] { post(engine::Tick{now()}); });
}

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
              r, {ec2::Priority::Write, milliseconds(0)},
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
          log::notice(std::string("state: ") + engine::to_string(x.from) + " -> " +
                      engine::to_string(x.to) + " (" + engine::to_string(x.reason) +
                      (x.detail.empty() ? "" : ": " + x.detail) + ")");
        } else if constexpr (std::is_same_v<T, engine::PeerChanged>) {
          if (x.to == engine::Health::Down && x.from == engine::Health::Up) ++failovers_;
          log::notice("peer " + x.peer + ": " + engine::to_string(x.from) + " -> " +
                      engine::to_string(x.to) + (x.detail.empty() ? "" : " (" + x.detail + ")"));
        } else if constexpr (std::is_same_v<T, engine::ExitReady>) {
          log::notice(std::string("handover finished (") + engine::to_string(x.reason) +
                      "), exiting");
          phase_ = Phase::Stopped;
          if (hooks_.exit_ready) hooks_.exit_ready();
        }
      },
      a);
}

void Node::describe_routes(engine::OpId op) {
  ec2::DescribeRouteTablesRequest rr;
  if (cfg_->group.discovery == config::Discovery::Explicit) {
    rr.route_table_ids = cfg_->group.route_tables;
  } else {
    rr.filters.push_back({"tag:hanat:group", {cfg_->group.name}});
  }
  auto sent = now();
  ec2_->describe_route_tables(
      rr, {ec2::Priority::Read, milliseconds(0)},
      [this, op, sent](ec2::Ec2Result<ec2::DescribeRouteTablesOk> r) {
        count_call("DescribeRouteTables", err_of(r));
        if (!r) {
          log::warning("describing route tables: " + r.error().describe() + ", retrying later");
          // No observation: the engine asks again at its next describe interval.
          return;
        }
        engine::RoutesObserved o;
        o.op = op;
        o.at = sent;
        for (const auto& t : r->route_tables) {
          engine::ObservedTable ot;
          ot.id = t.route_table_id;
          std::string zone = tag(t.tags, "hanat:zone");
          if (zone.empty()) zone = discovered_.table_zones[t.route_table_id];
          ot.zone = zone;
          for (const auto& rt : t.routes) {
            if (std::find(discovered_.engine.destinations.begin(),
                          discovered_.engine.destinations.end(),
                          rt.destination_cidr) == discovered_.engine.destinations.end())
              continue;
            ot.routes.push_back({rt.destination_cidr, target_of(rt)});
          }
          o.tables.push_back(std::move(ot));
        }
        post(std::move(o));
      });
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
  log::notice("route " + w.table + " " + w.destination + " -> " + target_text(w.target) +
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
      log::warning("route " + table + ": " + action + " failed: " + r.error().describe());
    }
    post(done_of(op, epoch, r ? nullptr : &r.error()));
  };
  if (w.verb == engine::RouteVerb::Create) {
    ec2::CreateRouteRequest r;
    r.route_table_id = w.table;
    r.destination_cidr = w.destination;
    r.target = target;
    ec2_->create_route(r, {ec2::Priority::RouteWrite, milliseconds(0)}, cb);
  } else {
    ec2::ReplaceRouteRequest r;
    r.route_table_id = w.table;
    r.destination_cidr = w.destination;
    r.target = target;
    ec2_->replace_route(r, {ec2::Priority::RouteWrite, milliseconds(0)}, cb);
  }
}

void Node::shutdown() {
  stopping_ = true;
  if (!handover_on_stop_ || !machine_ || phase_ != Phase::Running) {
    if (!handover_on_stop_) log::notice("--no-handover: exiting without moving routes");
    phase_ = Phase::Stopped;
    if (hooks_.exit_ready) hooks_.exit_ready();
    return;
  }
  post(engine::Shutdown{now()});
}

void Node::drain(bool on) {
  if (!machine_) return;
  post(engine::Drain{on, now()});
}

void Node::reconfigure(std::shared_ptr<const config::Config> cfg) {
  const bool forward_changed = !cfg_ || cfg_->forward != cfg->forward;
  cfg_ = std::move(cfg);
  if (forward_changed) watch_forwarding();
  if (!machine_) return;
  auto e = std::make_shared<engine::Config>(engine_config(discovered_));
  discovered_.engine = *e;
  post(engine::ConfigChanged{e, now()});
}

std::string Node::summary() const {
  if (!machine_) {
    return std::string("starting") + (phase_error_.empty() ? "" : ": " + phase_error_);
  }
  auto s = machine_->snapshot();
  int owned = 0;
  for (const auto& t : s.tables)
    for (const auto& r : t.routes)
      if (r.current.id == id_.eni_id || r.current.id == id_.instance_id) ++owned;
  return std::string(engine::to_string(s.state)) + ", " + std::to_string(owned) + " of " +
         std::to_string(s.tables.size()) + " route tables";
}

namespace {

constexpr const char* kPhases[] = {"identity",     "ec2-client", "source-dest-check",
                                   "floating-eni", "discovery",  "running",
                                   "stopped"};

constexpr engine::State kStates[] = {
    engine::State::Starting, engine::State::Standby,   engine::State::Active,
    engine::State::Failing,  engine::State::Unhealthy, engine::State::Draining,
    engine::State::Drained,  engine::State::Leaving,   engine::State::ExitReady};

// Whether every managed route of `t` points at its allocated target (nothing to do).
bool on_allocated(const engine::TableSnapshot& t) {
  if (t.routes.empty()) return false;
  return std::all_of(t.routes.begin(), t.routes.end(), [&](const engine::RouteSnapshot& r) {
    return r.current.kind == t.allocated.kind && r.current.id == t.allocated.id;
  });
}

}  // namespace

void Node::count_call(const std::string& action, const ec2::Ec2Error* err) {
  ++ec2_calls_[{action, outcome_of(err)}];
  if (err != nullptr && ec2::is_throttling_code(err->code)) ++throttles_;
}

status::Json Node::status() const {
  json_t* root = json_object();
  json_object_set_new(root, "phase", json_string(kPhases[static_cast<int>(phase_)]));
  if (!phase_error_.empty()) json_object_set_new(root, "phase_error", jstr(phase_error_));
  json_t* self = json_object();
  json_object_set_new(self, "instance_id", jstr(id_.instance_id));
  json_object_set_new(self, "zone", jstr(id_.zone));
  json_object_set_new(self, "region", jstr(id_.region));
  json_object_set_new(self, "vpc_id", jstr(id_.vpc_id));
  json_object_set_new(self, "eni_id", jstr(id_.eni_id));
  json_object_set_new(self, "private_ip", jstr(id_.private_ip));
  if (!cfg_->failover.floating_eni.empty()) {
    json_object_set_new(self, "floating_eni", jstr(cfg_->failover.floating_eni));
    json_object_set_new(self, "floating_eni_state", jstr(floating_eni_state_));
  }
  if (own_link_) {
    json_object_set_new(self, "own_link", jstr(own_link_->ifname()));
    json_object_set_new(self, "own_link_up", json_boolean(own_link_->up()));
    set_int(self, "own_link_downs", static_cast<std::int64_t>(own_link_->downs()));
    set_int(self, "discounted_probe_failures", static_cast<std::int64_t>(discounted_failures_));
  }
  if (auto sd = send_delay_.summary(); sd.samples > 0) {
    json_t* j = json_object();
    set_int(j, "samples", static_cast<std::int64_t>(sd.samples));
    set_int(j, "p50", sd.p50.count());
    set_int(j, "p99", sd.p99.count());
    set_int(j, "max", sd.max.count());
    json_object_set_new(self, "probe_send_delay_us", j);
  }
  json_object_set_new(self, "nat_ok", json_boolean(nat_healthy_));
  if (!nat_reason_.empty()) json_object_set_new(self, "nat_error", jstr(nat_reason_));
  json_object_set_new(self, "egress", json_string(engine::to_string(egress_health_)));
  if (!egress_detail_.empty()) json_object_set_new(self, "egress_detail", jstr(egress_detail_));
  if (nat_ && nat_->forward_watching()) {
    const auto& fw = forward_->forward();
    json_object_set_new(self, "forward", json_string(engine::to_string(fw.state())));
    if (!fw.detail().empty()) json_object_set_new(self, "forward_detail", jstr(fw.detail()));
    set_int(self, "forward_in_packets", static_cast<std::int64_t>(fw.in_total()));
    set_int(self, "forward_out_packets", static_cast<std::int64_t>(fw.out_total()));
    if (fw.recheck_at()) {
      set_int(self, "forward_recheck_in_ms",
              std::max<std::int64_t>(
                  0, std::chrono::duration_cast<milliseconds>(*fw.recheck_at() - now()).count()));
    }
    if (!nat_->forward_read_error().empty()) {
      json_object_set_new(self, "forward_error", jstr(nat_->forward_read_error()));
    }
  } else {
    json_object_set_new(self, "forward", json_string("off"));
  }
  json_object_set_new(root, "self", self);

  json_t* counters = json_object();
  set_int(counters, "failovers", static_cast<std::int64_t>(failovers_));
  set_int(counters, "route_writes", static_cast<std::int64_t>(route_writes_));
  set_int(counters, "throttles", static_cast<std::int64_t>(throttles_));
  if (nat_) {
    const auto& nc = nat_->counters();
    set_int(counters, "nat_applies", static_cast<std::int64_t>(nc.applies));
    set_int(counters, "drift_repairs",
            static_cast<std::int64_t>(nc.table_repairs + nc.sysctl_repairs));
  }
  // "Action outcome" -> count (flat, as before), and the same grouped by action.
  json_t* calls = json_object();
  json_t* by_action = json_object();
  std::uint64_t total = 0;
  for (const auto& [k, v] : ec2_calls_) {
    set_int(calls, (k.first + " " + k.second).c_str(), static_cast<std::int64_t>(v));
    json_t* a = json_object_get(by_action, k.first.c_str());
    if (a == nullptr) {
      a = json_object();
      json_object_set_new(by_action, k.first.c_str(), a);
    }
    set_int(a, k.second.c_str(), static_cast<std::int64_t>(v));
    total += v;
  }
  json_object_set_new(counters, "ec2_calls", calls);
  json_object_set_new(counters, "ec2_calls_by_action", by_action);
  set_int(counters, "ec2_calls_total", static_cast<std::int64_t>(total));
  json_object_set_new(root, "counters", counters);

  if (!machine_) return status::Json(root);
  auto s = machine_->snapshot();
  json_object_set_new(root, "state", json_string(engine::to_string(s.state)));
  set_int(root, "state_since_unix_ms", wall_ms(s.state_since));
  set_int(root, "state_for_ms", ms_ago(s.state_since));
  json_object_set_new(root, "drained", json_boolean(s.drained));
  json_t* members = json_array();
  for (const auto& m : s.members) {
    json_t* jm = json_object();
    json_object_set_new(jm, "instance_id", jstr(m.instance_id));
    json_object_set_new(jm, "zone", jstr(m.zone));
    json_object_set_new(jm, "self", json_boolean(m.self));
    json_object_set_new(
        jm, "health",
        json_string(m.self ? engine::to_string(s.state) : engine::to_string(m.health)));
    auto ait = discovered_.addresses.find(m.instance_id);
    if (ait != discovered_.addresses.end()) json_object_set_new(jm, "address", jstr(ait->second));
    if (m.down_since) set_int(jm, "down_for_ms", ms_ago(*m.down_since));
    // Since when the member is in its current health (self: its current state), as wall
    // time for tools and as a duration for people.
    set_int(jm, "since_unix_ms", wall_ms(m.since));
    set_int(jm, "for_ms", ms_ago(m.since));
    json_t* rtt = json_object();
    for (const auto& [k, v] : last_rtt_) {
      if (k.rfind(m.instance_id + "/", 0) == 0)
        json_object_set_new(rtt, k.substr(m.instance_id.size() + 1).c_str(),
                            json_integer(static_cast<json_int_t>(v.count())));
    }
    json_object_set_new(jm, "last_rtt_us", rtt);
    json_array_append_new(members, jm);
  }
  json_object_set_new(root, "members", members);
  json_t* tables = json_array();
  for (const auto& t : s.tables) {
    json_t* jt = json_object();
    json_object_set_new(jt, "id", jstr(t.id));
    json_object_set_new(jt, "zone", jstr(t.zone));
    json_object_set_new(jt, "allocated", jstr(target_text(t.allocated)));
    json_object_set_new(jt, "on_allocated", json_boolean(on_allocated(t)));
    set_int(jt, "writes", static_cast<std::int64_t>(t.writes));
    if (t.hold_until && *t.hold_until > now()) set_int(jt, "hold_down_ms", -ms_ago(*t.hold_until));
    if (auto lw = last_write_.find(t.id); lw != last_write_.end()) {
      json_t* jw = json_object();
      set_int(jw, "at_unix_ms", unix_ms(lw->second.at));
      json_object_set_new(jw, "at", jstr(iso8601_ms(lw->second.at)));
      set_int(
          jw, "ago_ms",
          std::chrono::duration_cast<milliseconds>(std::chrono::system_clock::now() - lw->second.at)
              .count());
      json_object_set_new(jw, "destination", jstr(lw->second.destination));
      json_object_set_new(jw, "target", jstr(lw->second.target));
      json_object_set_new(jw, "outcome", jstr(lw->second.outcome));
      json_object_set_new(jt, "last_write", jw);
    }
    json_t* routes = json_array();
    for (const auto& r : t.routes) {
      json_t* jr = json_object();
      json_object_set_new(jr, "destination", jstr(r.destination));
      json_object_set_new(jr, "current", jstr(target_text(r.current)));
      json_object_set_new(jr, "in_flight", json_boolean(r.in_flight.has_value()));
      if (!r.last_error.empty()) json_object_set_new(jr, "last_error", jstr(r.last_error));
      json_array_append_new(routes, jr);
    }
    json_object_set_new(jt, "routes", routes);
    json_array_append_new(tables, jt);
  }
  json_object_set_new(root, "tables", tables);
  return status::Json(root);
}

void Node::note_send_delay(const probes::ProbeResult& r) {
  send_delay_.add(std::chrono::duration_cast<std::chrono::microseconds>(r.sent - r.planned));
}

void Node::fill_report(Report& r) const {
  r.phase = kPhases[static_cast<int>(phase_)];
  r.phases.assign(std::begin(kPhases), std::end(kPhases));
  r.states.clear();
  for (auto st : kStates) r.states.emplace_back(engine::to_string(st));
  r.instance_id = id_.instance_id;
  r.zone = id_.zone;
  r.nat_ok = nat_healthy_;
  r.egress = engine::to_string(egress_health_);
  if (nat_ && nat_->forward_watching()) {
    r.forward = engine::to_string(forward_->forward().state());
    r.forward_in_packets = forward_->forward().in_total();
    r.forward_out_packets = forward_->forward().out_total();
  } else {
    r.forward = "off";
  }
  if (auto sd = send_delay_.summary(); sd.samples > 0) {
    r.probe_send_delay_us = {
        {"p50", sd.p50.count()}, {"p99", sd.p99.count()}, {"max", sd.max.count()}};
  }
  r.failovers = failovers_;
  r.route_writes = route_writes_;
  r.throttles = throttles_;
  if (nat_) {
    const auto& nc = nat_->counters();
    r.nat_applies = nc.applies;
    r.drift_repairs = nc.table_repairs + nc.sysctl_repairs;
  }
  r.ec2_calls = ec2_calls_;
  if (!machine_) return;
  auto s = machine_->snapshot();
  r.state = engine::to_string(s.state);
  r.state_since_unix_ms = wall_ms(s.state_since);
  r.drained = s.drained;
  for (const auto& m : s.members) {
    Report::Member rm;
    rm.instance_id = m.instance_id;
    rm.zone = m.zone;
    rm.self = m.self;
    rm.health = engine::to_string(m.health);
    rm.since_unix_ms = wall_ms(m.since);
    for (const auto& [k, v] : last_rtt_) {
      if (k.rfind(m.instance_id + "/", 0) == 0)
        rm.rtt_us[k.substr(m.instance_id.size() + 1)] = v.count();
    }
    r.members.push_back(std::move(rm));
  }
  for (const auto& t : s.tables) {
    Report::Table rt;
    rt.id = t.id;
    rt.zone = t.zone;
    rt.allocated = target_text(t.allocated);
    rt.on_allocated = on_allocated(t);
    rt.writes = t.writes;
    if (t.hold_until && *t.hold_until > now()) rt.hold_down_ms = -ms_ago(*t.hold_until);
    if (auto lw = last_write_.find(t.id); lw != last_write_.end()) {
      rt.last_write_unix_ms = unix_ms(lw->second.at);
      rt.last_write_outcome = lw->second.outcome;
    }
    r.tables.push_back(std::move(rt));
  }
}

}  // namespace hanat::daemon
