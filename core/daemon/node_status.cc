// SPDX-License-Identifier: GPL-2.0-or-later
// DOC: core/daemon/node_status.cc is the node's status document: status() for the status
// socket (phase, identity, data-plane health, counters, members, tables), fill_report()
// for the metrics report, summary() for systemd's STATUS= line, and the small formatting
// helpers they share (wall-clock times, target names).

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <iterator>

#include "core/daemon/daemon.h"
#include "core/daemon/node.h"
#include "core/daemon/node_util.h"

namespace hanat::daemon {

using node_util::now;
using std::chrono::milliseconds;

namespace node_util {

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

}  // namespace node_util

using node_util::target_text;

namespace {

json_t* jstr(const std::string& s) {
  return json_string(s.c_str());
}

std::int64_t ms_ago(engine::Time t) {
  return std::chrono::duration_cast<milliseconds>(now() - t).count();
}

// A steady-clock instant as wall-clock unix milliseconds: now's wall clock minus how long
// ago it was. (The engine keeps monotonic time only; status shows wall-clock times.)
std::int64_t wall_ms(engine::Time t) {
  return unix_ms(std::chrono::system_clock::now()) - ms_ago(t);
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
    json_object_set_new(self, "floating_eni_attached", json_boolean(floating_attached_));
    json_object_set_new(self, "floating_eni_error", json_boolean(floating_error_));
    set_int(self, "floating_eni_failures", static_cast<std::int64_t>(floating_failures_));
    set_int(self, "floating_eni_force_detaches",
            static_cast<std::int64_t>(floating_force_detaches_));
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
  if (!lifecycle_state_.empty()) {
    json_object_set_new(self, "lifecycle_state", jstr(lifecycle_state_));
    json_object_set_new(self, "lifecycle_drained", json_boolean(lifecycle_drained_));
    if (!lifecycle_hook_state_.empty())
      json_object_set_new(self, "lifecycle_hook", jstr(lifecycle_hook_state_));
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
  set_int(counters, "source_dest_check_repairs", static_cast<std::int64_t>(sdc_repairs_));
  if (machine_) {
    set_int(counters, "foreign_routes",
            static_cast<std::int64_t>(machine_->snapshot().foreign_routes));
  }
  if (nat_) {
    const auto& nc = nat_->counters();
    set_int(counters, "nat_applies", static_cast<std::int64_t>(nc.applies));
    set_int(counters, "drift_repairs",
            static_cast<std::int64_t>(nc.table_repairs + nc.sysctl_repairs + sdc_repairs_));
    set_int(counters, "unnatted_flows_purged", static_cast<std::int64_t>(nc.purged));
    if (nat_->forward_watching()) {
      set_int(counters, "unnatted_packets_leaked",
              static_cast<std::int64_t>(forward_->forward().leaked_total()));
    }
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
  // Ids listed in group.members / group.route_tables that EC2 does not show (terminated,
  // deleted, in another VPC): the rest of the group is managed without them.
  if (!missing_members_.empty() || !missing_tables_.empty()) {
    json_t* missing = json_object();
    json_t* mm = json_array();
    for (const auto& id : missing_members_) json_array_append_new(mm, jstr(id));
    json_object_set_new(missing, "members", mm);
    json_t* mt = json_array();
    for (const auto& id : missing_tables_) json_array_append_new(mt, jstr(id));
    json_object_set_new(missing, "route_tables", mt);
    json_object_set_new(root, "missing", missing);
  }

  json_object_set_new(root, "handover", keep_json());
  json_object_set_new(root, "replication", replication_json());
  json_object_set_new(root, "takeover", takeover_json());
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
    json_object_set_new(jm, "agent_answered", json_boolean(m.agent_answered));
    if (!m.self) {
      // silent: nothing answered since it went DOWN (only such a peer may be recovered);
      // agent_silent: its host answers, its hanatd does not (kept UP, given no table).
      json_object_set_new(jm, "silent", json_boolean(m.silent));
      json_object_set_new(jm, "agent_silent", json_boolean(m.agent_silent));
      if (m.agent_silent) json_object_set_new(jm, "note", jstr("hanatd not answering"));
    }
    if (m.no_agent) json_object_set_new(jm, "note", jstr("not running hanatd"));
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
    if (m.public_path) {
      if (auto pit = discovered_.public_addresses.find(m.instance_id);
          pit != discovered_.public_addresses.end())
        json_object_set_new(jm, "public_address", jstr(pit->second));
      json_t* paths = json_object();
      for (int p = 0; p < engine::kProbePaths; ++p) {
        json_object_set_new(paths, core::to_string(static_cast<engine::ProbePath>(p)),
                            json_string(engine::to_string(m.paths[static_cast<std::size_t>(p)])));
      }
      json_object_set_new(jm, "paths", paths);
      if (!m.self && m.health == engine::Health::Up) {
        const auto priv = m.paths[static_cast<std::size_t>(engine::ProbePath::Private)];
        const auto pub = m.paths[static_cast<std::size_t>(engine::ProbePath::Public)];
        // A peer alive on one path only keeps its tables; the operator has a path to fix.
        if (priv == engine::Health::Down && pub != engine::Health::Down)
          json_object_set_new(jm, "warning", jstr("private path down, public path up"));
        else if (pub == engine::Health::Down && priv != engine::Health::Down)
          json_object_set_new(jm, "warning", jstr("public path down, private path up"));
      }
    }
    if (auto hr = health_reason_.find(m.instance_id); hr != health_reason_.end() && !m.self) {
      // Why the peer is in its current health: for DOWN, the probes that failed (or the
      // agent's own report) when it fell.
      json_object_set_new(jm, "reason", jstr(hr->second));
    }
    if (auto lp = last_probe_.find(m.instance_id); lp != last_probe_.end() && !m.self) {
      json_t* jp = json_object();
      for (const auto& [kind, p] : lp->second) {
        json_t* k = json_object();
        json_object_set_new(k, "ok", json_boolean(p.ok));
        if (!p.failure.empty()) json_object_set_new(k, "failure", jstr(p.failure));
        if (!p.detail.empty()) json_object_set_new(k, "detail", jstr(p.detail));
        if (p.discounted) json_object_set_new(k, "discounted", json_true());
        set_int(k, "at_unix_ms", wall_ms(p.at));
        set_int(k, "ago_ms", ms_ago(p.at));
        json_object_set_new(jp, kind.c_str(), k);
      }
      json_object_set_new(jm, "probes", jp);
    }
    json_array_append_new(members, jm);
  }
  json_object_set_new(root, "members", members);
  // Recovery (DESIGN rule 8): the last action per peer, as kept in the state directory,
  // and whether this member currently suspects itself (every peer silent at once).
  json_t* rec = json_object();
  json_object_set_new(rec, "action", jstr(config::to_string(cfg_->failover.recovery_action)));
  json_object_set_new(rec, "suspect", json_boolean(s.suspect));
  json_object_set_new(rec, "self_confirmed", json_boolean(s.self_confirmed));
  json_t* last = nullptr;
  std::chrono::system_clock::time_point last_at{};
  json_t* peers = json_object();
  for (const auto& [peer, r] : recoveries_) {
    json_t* jr = json_object();
    json_object_set_new(jr, "target", jstr(peer));
    json_object_set_new(jr, "action", jstr(r.action));
    set_int(jr, "at_unix_ms",
            std::chrono::duration_cast<std::chrono::milliseconds>(r.at.time_since_epoch()).count());
    json_object_set_new(jr, "result", jstr(r.result));
    set_int(jr, "ago_ms",
            std::max<std::int64_t>(0, std::chrono::duration_cast<std::chrono::milliseconds>(
                                          std::chrono::system_clock::now() - r.at)
                                          .count()));
    json_object_set_new(jr, "in_progress", json_boolean(stop_starting_.count(peer) != 0));
    if (!last || r.at > last_at) {
      last = jr;
      last_at = r.at;
    }
    json_object_set_new(peers, peer.c_str(), jr);
  }
  if (last) json_object_set(rec, "last", last);
  json_object_set_new(rec, "peers", peers);
  json_object_set_new(root, "recovery", rec);
  json_t* tables = json_array();
  for (const auto& t : s.tables) {
    json_t* jt = json_object();
    json_object_set_new(jt, "id", jstr(t.id));
    json_object_set_new(jt, "zone", jstr(t.zone));
    json_object_set_new(jt, "allocated", jstr(target_text(t.allocated)));
    // The member behind the allocated target (routes may point at a member's ENI).
    for (const auto& m : discovered_.engine.members) {
      if (!t.allocated.id.empty() &&
          (t.allocated.id == m.instance_id || t.allocated.id == m.eni_id)) {
        json_object_set_new(jt, "allocated_member", jstr(m.instance_id));
      }
    }
    json_object_set_new(jt, "on_allocated", json_boolean(on_allocated(t)));
    set_int(jt, "writes", static_cast<std::int64_t>(t.writes));
    if (t.adopted) json_object_set_new(jt, "adopted", json_true());
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
      json_object_set_new(jr, "foreign", json_boolean(r.foreign));
      // Served by this host: what `hanatctl drain --wait` waits to see move away.
      const bool here =
          !r.current.id.empty() &&
          (r.current.id == id_.instance_id || r.current.id == id_.eni_id ||
           (!cfg_->failover.floating_eni.empty() && r.current.id == cfg_->failover.floating_eni));
      json_object_set_new(jr, "here", json_boolean(here));
      if (r.foreign) {
        json_object_set_new(jr, "status", jstr("foreign (" + target_text(r.current) + ")"));
      }
      if (!r.last_error.empty()) json_object_set_new(jr, "last_error", jstr(r.last_error));
      json_array_append_new(routes, jr);
    }
    json_object_set_new(jt, "routes", routes);
    json_array_append_new(tables, jt);
  }
  json_object_set_new(root, "tables", tables);
  if (cfg_->failover.move_eip) json_object_set_new(root, "eips", eips_json());
  return status::Json(root);
}

json_t* Node::keep_json() const {
  // The connection-keeping handover's taking side: the channel and each member's steering.
  json_t* o = json_object();
  if (!keep_error_.empty()) json_object_set_new(o, "error", jstr(keep_error_));
  json_object_set_new(o, "steering_ready", json_boolean(keeper_ != nullptr));
  if (channel_) {
    json_t* ch = json_object();
    const auto& c = channel_->counters();
    set_int(ch, "port", channel_->port());
    set_int(ch, "connections", static_cast<std::int64_t>(channel_->connections()));
    set_int(ch, "accepted", static_cast<std::int64_t>(c.accepted));
    set_int(ch, "rejected_address", static_cast<std::int64_t>(c.rejected_address));
    set_int(ch, "rejected_hello", static_cast<std::int64_t>(c.rejected_hello));
    set_int(ch, "closed_bounds", static_cast<std::int64_t>(c.closed_bounds));
    set_int(ch, "flows_received", static_cast<std::int64_t>(c.flows_received));
    json_t* held = json_object();
    for (const auto& [m, n] : channel_->held())
      set_int(held, m.c_str(), static_cast<std::int64_t>(n));
    json_object_set_new(ch, "held", held);
    json_object_set_new(o, "channel", ch);
  }
  json_t* steered = json_array();
  if (keeper_) {
    for (const auto& [m, p] : keeper_->peers()) {
      json_t* j = json_object();
      json_object_set_new(j, "member", jstr(m));
      json_object_set_new(j, "installed", json_boolean(p.address != 0));
      set_int(j, "mark", p.slot.mark);
      set_int(j, "route_table", p.slot.route_table);
      set_int(j, "rule_priority", p.slot.rule_priority);
      set_int(j, "flows", static_cast<std::int64_t>(p.flows.size()));
      set_int(j, "errors", static_cast<std::int64_t>(p.errors));
      json_object_set_new(j, "catch_unknown_tcp", json_boolean(keeper_->catcher() == m));
      json_array_append_new(steered, j);
    }
  }
  json_object_set_new(o, "steering", steered);
  json_object_set_new(o, "sending", sending_json());
  // The flows this member still translates for the peers it handed its tables to: the exit
  // (and `hanatctl drain --wait`) waits for them.
  set_int(o, "flows_left", static_cast<std::int64_t>(keep_flows_left()));
  json_object_set_new(o, "draining", json_boolean(keep_draining()));
  return o;
}

json_t* Node::sending_json() const {
  // The leaving side: one entry per peer this member handed tables to (node_keep_send.cc).
  json_t* arr = json_array();
  const auto t = std::chrono::steady_clock::now();
  for (const auto& [peer, s] : senders_) {
    json_t* j = json_object();
    json_object_set_new(j, "member", jstr(peer));
    json_object_set_new(j, "phase", json_string(keep::to_string(s->phase())));
    json_t* tables = json_array();
    for (const auto& tb : s->tables()) json_array_append_new(tables, jstr(tb));
    json_object_set_new(j, "tables", tables);
    set_int(j, "flows_left", static_cast<std::int64_t>(s->flows_left()));
    // Also the TCP flows already closed whose conntrack entries linger (TIME_WAIT).
    set_int(j, "flows_carried", static_cast<std::int64_t>(s->flows_carried()));
    set_int(j, "flows_acked", static_cast<std::int64_t>(s->acked_flows()));
    set_int(j, "writes_held", static_cast<std::int64_t>(s->held()));
    if (auto h = s->handed_at())
      set_int(j, "handed_for_ms",
              std::chrono::duration_cast<std::chrono::milliseconds>(t - *h).count());
    if (s->phase() == keep::Sender::Phase::Ended)
      json_object_set_new(j, "ended", json_string(keep::to_string(s->verdict())));
    if (!s->problem().empty()) json_object_set_new(j, "problem", jstr(s->problem()));
    json_array_append_new(arr, j);
  }
  return arr;
}

void Node::fill_report(Report& r) const {
  r.handover_flows_held.clear();
  r.handover_flows_steered.clear();
  r.handover_channel_rejects.clear();
  if (channel_) {
    for (const auto& [m, n] : channel_->held()) r.handover_flows_held[m] = n;
    const auto& c = channel_->counters();
    r.handover_channel_rejects = {
        {"address", c.rejected_address}, {"hello", c.rejected_hello}, {"bounds", c.closed_bounds}};
  }
  if (keeper_)
    for (const auto& [m, p] : keeper_->peers()) r.handover_flows_steered[m] = p.flows.size();
  r.replication_events_sent = repl_retired_.events;
  r.replication_bytes_sent = repl_retired_.bytes;
  r.replication_drops = repl_retired_.drops;
  r.replication_resyncs = repl_retired_.resyncs;
  for (const auto& [m, l] : repl_links_) {
    const auto& c = l->stream.counters();
    r.replication_events_sent[m] += c.events;
    r.replication_bytes_sent[m] += l->wire_bytes;
    r.replication_drops += c.drops;
    r.replication_resyncs += c.resyncs;
  }
  r.replica_flows.clear();
  for (const auto& [m, v] : replicas_.origins()) r.replica_flows[m] = v.entries;
  r.replica_refused = replica_refused_;
  r.takeover_flows = takeover_flows_;
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
    r.unnatted_packets_leaked = forward_->forward().leaked_total();
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
  r.eip_moves = eip_moves_;
  r.source_dest_check_repairs = sdc_repairs_;
  r.floating_eni = cfg_->failover.floating_eni;
  r.floating_eni_attached = floating_attached_;
  r.floating_eni_failures = floating_failures_;
  r.floating_eni_force_detaches = floating_force_detaches_;
  if (nat_) {
    const auto& nc = nat_->counters();
    r.nat_applies = nc.applies;
    r.drift_repairs = nc.table_repairs + nc.sysctl_repairs + sdc_repairs_;
    r.unnatted_flows_purged = nc.purged;
  }
  r.ec2_calls = ec2_calls_;
  r.failover_seconds = failover_seconds_;
  r.ec2_latency = ec2_latency_;
  r.probe_rtt = probe_rtt_;
  r.probe_failures = probe_failures_;
  r.hook_runs = hook_runner_.counts();
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
    if (m.public_path) {
      for (int p = 0; p < engine::kProbePaths; ++p) {
        rm.paths[core::to_string(static_cast<engine::ProbePath>(p))] =
            engine::to_string(m.paths[static_cast<std::size_t>(p)]);
      }
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
    for (const auto& route : t.routes) rt.foreign_routes += route.foreign ? 1 : 0;
    if (t.hold_until && *t.hold_until > now()) rt.hold_down_ms = -ms_ago(*t.hold_until);
    if (auto lw = last_write_.find(t.id); lw != last_write_.end()) {
      rt.last_write_unix_ms = unix_ms(lw->second.at);
      rt.last_write_outcome = lw->second.outcome;
    }
    r.tables.push_back(std::move(rt));
  }
}

}  // namespace hanat::daemon
