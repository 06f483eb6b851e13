// SPDX-License-Identifier: GPL-2.0-or-later
#include "core/daemon/report.h"

namespace hanat::daemon {

namespace {

using metrics::Family;
using metrics::Sample;
using metrics::Type;

double seconds(std::int64_t ms) {
  return static_cast<double>(ms) / 1000.0;
}

Family gauge(std::string name, std::string help) {
  return Family{std::move(name), std::move(help), Type::Gauge, {}};
}

Family counter(std::string name, std::string help) {
  return Family{std::move(name), std::move(help), Type::Counter, {}};
}

// One sample per entry of `values` (label value -> number), labelled `label`.
template <class Map>
Family by_label(Family f, const std::string& label, const Map& values) {
  for (const auto& [k, v] : values)
    f.samples.push_back(Sample{{{label, k}}, static_cast<double>(v)});
  return f;
}

Family single(Family f, double v) {
  f.samples.push_back(Sample{{}, v});
  return f;
}

// A state set (one sample per possible value, 1 for the current one), the usual
// Prometheus shape for an enum: alerts match on value without knowing every name.
Family state_set(std::string name, std::string help, const std::string& label,
                 const std::vector<std::string>& all, const std::string& current) {
  Family f = gauge(std::move(name), std::move(help));
  for (const auto& s : all) f.samples.push_back(Sample{{{label, s}}, s == current ? 1.0 : 0.0});
  return f;
}

}  // namespace

std::vector<Family> metric_families(const Report& r) {
  std::vector<Family> out;
  {
    Family f = gauge("hanat_build_info", "hanatd version and group (always 1).");
    f.samples.push_back(Sample{{{"version", r.version}, {"group", r.group}}, 1});
    out.push_back(std::move(f));
  }
  out.push_back(single(gauge("hanat_start_time_seconds", "When hanatd started (unix time)."),
                       seconds(r.started_unix_ms)));
  out.push_back(single(gauge("hanat_config_generation",
                             "Configuration generation: 1 at start, +1 per successful reload."),
                       static_cast<double>(r.generation)));
  out.push_back(single(
      gauge("hanat_config_loaded_timestamp_seconds", "When the running configuration was loaded."),
      seconds(r.config_loaded_unix_ms)));
  out.push_back(single(gauge("hanat_config_last_reload_success",
                             "1 if the last SIGHUP reload succeeded (or none was attempted), 0 "
                             "if it failed and the previous generation still runs."),
                       r.reload_ok ? 1 : 0));
  {
    Family f = gauge("hanat_config_last_reload_timestamp_seconds",
                     "When the last reload was attempted (absent before the first).");
    if (r.reload_attempted) f.samples.push_back(Sample{{}, seconds(r.reload_unix_ms)});
    out.push_back(std::move(f));
  }
  out.push_back(state_set("hanat_node_phase",
                          "Start-up phase of the node (1 for the current one); running once "
                          "discovery is done.",
                          "phase", r.phases, r.phase));
  out.push_back(state_set("hanat_state", "This host's failover state (1 for the current one).",
                          "state", r.states, r.state));
  {
    Family f = gauge("hanat_state_since_timestamp_seconds",
                     "When this host entered its current failover state.");
    if (!r.state.empty()) f.samples.push_back(Sample{{}, seconds(r.state_since_unix_ms)});
    out.push_back(std::move(f));
  }
  out.push_back(
      single(gauge("hanat_drained", "1 while an operator drain is in effect."), r.drained ? 1 : 0));
  out.push_back(single(
      gauge("hanat_nat_ok", "1 when the masquerade table and forwarding are applied and verified."),
      r.nat_ok ? 1 : 0));
  out.push_back(single(
      gauge("hanat_egress_ok", "1 unless the egress self-check failed (unknown counts as ok)."),
      r.egress == "down" ? 0 : 1));
  out.push_back(single(gauge("hanat_forwarding_ok",
                             "1 unless the forward-path check saw packets arrive to be forwarded "
                             "and none leave (unknown and off count as ok)."),
                       r.forward == "down" ? 0 : 1));
  {
    Family f = counter("hanat_forward_packets_total",
                       "Packets seen by the forward-path check: arrived to be forwarded (in) and "
                       "forwarded (out), since hanatd started.");
    if (r.forward != "off") {
      f.samples.push_back(Sample{{{"direction", "in"}}, static_cast<double>(r.forward_in_packets)});
      f.samples.push_back(
          Sample{{{"direction", "out"}}, static_cast<double>(r.forward_out_packets)});
    }
    out.push_back(std::move(f));
  }

  {
    Family f = gauge("hanat_probe_send_delay_seconds",
                     "How late probe sends left against their schedule over the last 1,024 "
                     "sends (stat: p50, p99, max); late sends mean the loop or the host was "
                     "busy when a probe was due.");
    for (const auto& [stat, us] : r.probe_send_delay_us)
      f.samples.push_back(Sample{{{"stat", stat}}, static_cast<double>(us) / 1e6});
    out.push_back(std::move(f));
  }

  Family up = gauge("hanat_member_up",
                    "1 when the member is healthy in this host's view (self: serving), else 0.");
  Family since = gauge("hanat_member_state_since_timestamp_seconds",
                       "When the member's health took its current value in this host's view.");
  Family rtt = gauge("hanat_probe_rtt_seconds", "Round-trip time of the last probe of a peer.");
  Family path_up = gauge("hanat_peer_path_up",
                         "Peers probed on their private and public address: 1 when the path "
                         "answers, else 0. One path at 0 while hanat_member_up is 1 is a broken "
                         "path (typically a security group): the peer keeps its tables.");
  for (const auto& m : r.members) {
    std::vector<std::pair<std::string, std::string>> l{
        {"instance_id", m.instance_id}, {"zone", m.zone}, {"self", m.self ? "true" : "false"}};
    up.samples.push_back(Sample{l, m.health == "up" ? 1.0 : 0.0});
    since.samples.push_back(Sample{l, seconds(m.since_unix_ms)});
    for (const auto& [path, health] : m.paths) {
      path_up.samples.push_back(
          Sample{{{"instance_id", m.instance_id}, {"path", path}}, health == "up" ? 1.0 : 0.0});
    }
    for (const auto& [key, us] : m.rtt_us) {
      // "icmp" (private path) or "icmp/public": the public path gets a path label.
      std::vector<std::pair<std::string, std::string>> rl{{"instance_id", m.instance_id},
                                                          {"kind", key}};
      if (auto slash = key.find('/'); slash != std::string::npos) {
        rl[1].second = key.substr(0, slash);
        rl.emplace_back("path", key.substr(slash + 1));
      }
      rtt.samples.push_back(Sample{rl, static_cast<double>(us) / 1e6});
    }
  }
  out.push_back(std::move(up));
  out.push_back(std::move(since));
  out.push_back(std::move(rtt));
  out.push_back(std::move(path_up));

  Family on_alloc = gauge("hanat_route_table_on_allocated_target",
                          "1 when the table's managed routes point at the allocated target.");
  Family writes =
      counter("hanat_route_table_writes_total", "Route writes this host made to the table.");
  Family hold = gauge("hanat_route_table_hold_down_seconds",
                      "Remaining hold-down of the table (0: none): this host backs off after "
                      "another member rewrote a route it had taken over.");
  Family last = gauge("hanat_route_table_last_write_timestamp_seconds",
                      "When this host's last write to the table completed; outcome is ok or "
                      "the EC2 error code.");
  Family foreign = gauge("hanat_route_table_foreign_routes",
                         "Managed routes of the table that point outside the group and not at "
                         "the fallback (a transit gateway, a peering, another NAT Gateway...): "
                         "hanat never writes them until they point at a member again or the "
                         "table is adopted.");
  for (const auto& t : r.tables) {
    std::vector<std::pair<std::string, std::string>> l{{"route_table", t.id}, {"zone", t.zone}};
    on_alloc.samples.push_back(Sample{l, t.on_allocated ? 1.0 : 0.0});
    foreign.samples.push_back(Sample{l, static_cast<double>(t.foreign_routes)});
    writes.samples.push_back(Sample{l, static_cast<double>(t.writes)});
    hold.samples.push_back(Sample{l, seconds(t.hold_down_ms)});
    if (t.last_write_unix_ms) {
      auto lw = l;
      lw.emplace_back("outcome", t.last_write_outcome);
      last.samples.push_back(Sample{lw, seconds(*t.last_write_unix_ms)});
    }
  }
  out.push_back(std::move(on_alloc));
  out.push_back(std::move(writes));
  out.push_back(std::move(hold));
  out.push_back(std::move(last));
  out.push_back(std::move(foreign));

  out.push_back(single(counter("hanat_failovers_total",
                               "Peers this host saw go from up to down (each moves their tables)."),
                       static_cast<double>(r.failovers)));
  out.push_back(single(counter("hanat_route_writes_total",
                               "Route writes (ReplaceRoute, "
                               "CreateRoute) this host sent."),
                       static_cast<double>(r.route_writes)));
  {
    out.push_back(
        by_label(counter("hanat_eip_moves_total",
                         "Elastic IP moves (AssociateAddress onto this host, failover.move_eip) "
                         "by result: ok, or the EC2 error code / failure kind."),
                 "result", r.eip_moves));
  }
  {
    out.push_back(
        by_label(gauge("hanat_handover_flows_held",
                       "Flows a sending member handed over in a connection-keeping handover "
                       "and this host holds, by member."),
                 "member", r.handover_flows_held));
    out.push_back(by_label(gauge("hanat_handover_flows_steered",
                                 "Flows in this host's steering set for a sending member (packets "
                                 "that match go back to it through the tunnel), by member."),
                           "member", r.handover_flows_steered));
    out.push_back(
        by_label(counter("hanat_handover_channel_rejects_total",
                         "Member channel connections refused or closed, by reason: address "
                         "(not a member's private address), hello (group, member, version "
                         "or key), bounds (frame, rate or buffer)."),
                 "reason", r.handover_channel_rejects));
  }
  {
    out.push_back(
        by_label(counter("hanat_replication_events_sent_total",
                         "Conntrack events (upserts and destroys, coalesced per 50 ms batch) "
                         "this host replicated to a member that would take its tables "
                         "(stateful failover), by target member."),
                 "target", r.replication_events_sent));
    out.push_back(
        by_label(counter("hanat_replication_bytes_sent_total",
                         "Member channel bytes (frames with their headers and MACs, without "
                         "TCP/IP) this host wrote replicating its flows (stateful failover), "
                         "by target member."),
                 "target", r.replication_bytes_sent));
    Family drops = counter("hanat_replication_drops_total",
                           "Replication events dropped because a target's queue was over its "
                           "bound (a resync follows).");
    drops.samples.push_back(Sample{{}, static_cast<double>(r.replication_drops)});
    out.push_back(std::move(drops));
    Family resyncs = counter("hanat_replication_resyncs_total",
                             "Full resyncs of this host's flows sent to replication targets "
                             "(on connect, every 30 s, after lost events or drops).");
    resyncs.samples.push_back(Sample{{}, static_cast<double>(r.replication_resyncs)});
    out.push_back(std::move(resyncs));
    out.push_back(by_label(gauge("hanat_replica_flows",
                                 "Flows a member replicates to this host for stateful failover and "
                                 "this host holds in memory, by origin member."),
                           "member", r.replica_flows));
    out.push_back(single(counter("hanat_replica_refused_total",
                                 "Replicated flows refused because the store was full "
                                 "(stateful failover; [failover] stateful)."),
                         static_cast<double>(r.replica_refused)));
    out.push_back(
        by_label(counter("hanat_takeover_flows_total",
                         "Flows of a dead member installed into this host's conntrack table "
                         "when it took the member's tables, by outcome: installed, collided "
                         "(the public port is this host's), failed, unroutable (no address "
                         "here for the flow's zone)."),
                 "outcome", r.takeover_flows));
  }
  {
    Family f = counter("hanat_ec2_calls_total",
                       "Completed EC2 API calls by action and outcome (ok or the EC2 error "
                       "code; transport failures by kind), after the client's retries.");
    for (const auto& [k, v] : r.ec2_calls)
      f.samples.push_back(
          Sample{{{"action", k.first}, {"outcome", k.second}}, static_cast<double>(v)});
    out.push_back(std::move(f));
  }
  {
    Family f{"hanat_failover_duration_seconds",
             "Time from detecting a peer DOWN (fall threshold reached) to EC2 acknowledging "
             "this host's first route write that took over (one observation per peer that "
             "went down and whose route this host took).",
             Type::Histogram,
             {}};
    metrics::append(f, {}, r.failover_seconds);
    out.push_back(std::move(f));
  }
  {
    Family f{"hanat_ec2_request_duration_seconds",
             "EC2 API latency per HTTP attempt by action (request handed to the network until "
             "the reply or the failure; pacing and retry waits not included).",
             Type::Histogram,
             {}};
    for (const auto& [action, h] : r.ec2_latency) metrics::append(f, {{"action", action}}, h);
    out.push_back(std::move(f));
  }
  {
    Family f{"hanat_probe_rtt_histogram_seconds",
             "Round-trip time of answered peer probes by kind.",
             Type::Histogram,
             {}};
    for (const auto& [kind, h] : r.probe_rtt) metrics::append(f, {{"kind", kind}}, h);
    out.push_back(std::move(f));
  }
  {
    Family f = counter("hanat_probe_failures_total",
                       "Failed peer probes by peer, kind and failure (timeout, refused, "
                       "unreachable, agent-down, error).");
    for (const auto& [k, v] : r.probe_failures) {
      const auto& [peer, kind, failure] = k;
      f.samples.push_back(Sample{{{"instance_id", peer}, {"kind", kind}, {"failure", failure}},
                                 static_cast<double>(v)});
    }
    out.push_back(std::move(f));
  }
  {
    Family f = counter("hanat_hook_runs_total",
                       "[hooks] on_transition runs by outcome: ok, failed (non-zero exit or a "
                       "signal), timeout (killed at hooks.timeout), dropped (hooks.max_in_flight "
                       "reached), spawn_error (could not be executed).");
    for (const char* o : {"ok", "failed", "timeout", "dropped", "spawn_error"}) {
      auto it = r.hook_runs.find(o);
      f.samples.push_back(
          Sample{{{"outcome", o}}, static_cast<double>(it == r.hook_runs.end() ? 0 : it->second)});
    }
    out.push_back(std::move(f));
  }
  out.push_back(single(counter("hanat_ec2_throttles_total",
                               "EC2 calls that failed throttled (RequestLimitExceeded and the "
                               "like) after the client's retries."),
                       static_cast<double>(r.throttles)));
  out.push_back(single(counter("hanat_drift_repairs_total",
                               "Repairs of the NAT table, sysctls or source/destination check "
                               "after something changed them."),
                       static_cast<double>(r.drift_repairs)));
  out.push_back(single(counter("hanat_source_dest_check_repairs_total",
                               "Times the source/destination check of the forwarding ENI was "
                               "found enabled at a route read-back and turned off again."),
                       static_cast<double>(r.source_dest_check_repairs)));
  {
    // Families always present (HELP and TYPE even without a floating ENI); samples only
    // where one is configured, labelled with it.
    Family a = gauge("hanat_floating_eni_attached",
                     "1 when failover.floating_eni is attached to this host, else 0. A standby "
                     "member waits with 0; the group's maximum is 1 while some member holds it.");
    Family f = counter("hanat_floating_eni_failures_total",
                       "Failed steps of keeping the floating ENI (read, attach, force-detach "
                       "errors, a wrong Availability Zone); the status names the last one.");
    Family d = counter("hanat_floating_eni_force_detaches_total",
                       "Force-detaches of the floating ENI from a holder that was stopped or "
                       "DOWN (silent) for failover.floating_eni_takeover_after.");
    if (!r.floating_eni.empty()) {
      a.samples.push_back(Sample{{{"eni", r.floating_eni}}, r.floating_eni_attached ? 1.0 : 0.0});
      f.samples.push_back(
          Sample{{{"eni", r.floating_eni}}, static_cast<double>(r.floating_eni_failures)});
      d.samples.push_back(
          Sample{{{"eni", r.floating_eni}}, static_cast<double>(r.floating_eni_force_detaches)});
    }
    out.push_back(std::move(a));
    out.push_back(std::move(f));
    out.push_back(std::move(d));
  }
  out.push_back(
      single(counter("hanat_nat_applies_total", "NAT table applies (commit and read-back)."),
             static_cast<double>(r.nat_applies)));
  out.push_back(single(counter("hanat_unnatted_flows_purged_total",
                               "Conntrack entries of flows forwarded without NAT (the table was "
                               "missing) deleted after an apply or repair, so they get NATed."),
                       static_cast<double>(r.unnatted_flows_purged)));
  out.push_back(single(counter("hanat_unnatted_packets_leaked_total",
                               "Forwarded packets that left the egress interface with a "
                               "configured source after NAT (the forward check's leak counter)."),
                       static_cast<double>(r.unnatted_packets_leaked)));
  return out;
}

}  // namespace hanat::daemon
