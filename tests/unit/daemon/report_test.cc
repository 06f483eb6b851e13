// SPDX-License-Identifier: GPL-2.0-or-later
// The metric families hanatd exports (hanatctl metrics, the node_exporter text file), built
// from a hand-made Report; and the engine's "since" times that status and metrics show.

#include "core/daemon/report.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "core/engine/machine.h"
#include "core/metrics/prometheus.h"

namespace hanat::daemon {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

Report sample_report() {
  Report r;
  r.version = "1.2.3";
  r.group = "lab";
  r.started_unix_ms = 1700000000000;
  r.generation = 3;
  r.config_loaded_unix_ms = 1700000100000;
  r.reload_attempted = true;
  r.reload_ok = false;
  r.reload_unix_ms = 1700000200500;
  r.phase = "running";
  r.phases = {"identity", "discovery", "running", "stopped"};
  r.state = "active";
  r.states = {"starting", "standby", "active", "draining"};
  r.state_since_unix_ms = 1700000050000;
  r.nat_ok = true;
  r.egress = "unknown";
  r.members = {
      {"i-a", "zone-a", true, "up", 1700000050000, {}, {}},
      {"i-b", "zone-b", false, "down", 1700000300250, {{"icmp", 250}, {"agent", 1500}}, {}},
  };
  Report::Table ta;
  ta.id = "rtb-a";
  ta.zone = "zone-a";
  ta.allocated = "eni-a";
  ta.on_allocated = true;
  ta.writes = 4;
  ta.last_write_unix_ms = 1700000300500;
  ta.last_write_outcome = "ok";
  Report::Table tb;
  tb.id = "rtb-b";
  tb.zone = "zone-b";
  tb.allocated = "eni-a";
  tb.on_allocated = false;
  tb.hold_down_ms = 2500;
  tb.last_write_unix_ms = 1700000301000;
  tb.last_write_outcome = "RequestLimitExceeded";
  r.tables = {ta, tb};
  r.failovers = 1;
  r.route_writes = 4;
  r.throttles = 1;
  r.drift_repairs = 2;
  r.source_dest_check_repairs = 1;
  r.nat_applies = 5;
  r.unnatted_flows_purged = 7;
  r.unnatted_packets_leaked = 5;
  r.eip_moves = {{"ok", 2}, {"InvalidAllocationID.NotFound", 1}};
  r.handover_flows_held = {{"i-a", 200}};
  r.handover_flows_steered = {{"i-a", 199}};
  r.handover_channel_rejects = {{"address", 3}, {"hello", 1}, {"bounds", 0}};
  r.replication_events_sent = {{"i-b", 4200}};
  r.replication_bytes_sent = {{"i-b", 131072}};
  r.replication_drops = 17;
  r.replication_resyncs = 9;
  r.ec2_calls = {{{"ReplaceRoute", "ok"}, 3},
                 {{"ReplaceRoute", "RequestLimitExceeded"}, 1},
                 {{"DescribeRouteTables", "ok"}, 12}};
  return r;
}

std::string render(const Report& r) {
  auto doc = metrics::format(metric_families(r));
  EXPECT_TRUE(doc) << doc.error();
  if (!doc) return "";
  auto checked = metrics::check_exposition(*doc);
  EXPECT_TRUE(checked) << checked.error() << "\n" << *doc;
  return *doc;
}

TEST(MetricFamilies, CountersByActionAndOutcome) {
  std::string doc = render(sample_report());
  EXPECT_THAT(doc, HasSubstr("# TYPE hanat_ec2_calls_total counter\n"));
  EXPECT_THAT(doc, HasSubstr("hanat_ec2_calls_total{action=\"ReplaceRoute\",outcome=\"ok\"} 3\n"));
  EXPECT_THAT(doc, HasSubstr("hanat_ec2_calls_total{action=\"ReplaceRoute\",outcome="
                             "\"RequestLimitExceeded\"} 1\n"));
  EXPECT_THAT(
      doc, HasSubstr("hanat_ec2_calls_total{action=\"DescribeRouteTables\",outcome=\"ok\"} 12\n"));
  EXPECT_THAT(doc, HasSubstr("\nhanat_failovers_total 1\n"));
  EXPECT_THAT(doc, HasSubstr("\nhanat_route_writes_total 4\n"));
  EXPECT_THAT(doc, HasSubstr("\nhanat_ec2_throttles_total 1\n"));
  EXPECT_THAT(doc, HasSubstr("\nhanat_drift_repairs_total 2\n"));
  EXPECT_THAT(doc, HasSubstr("\nhanat_source_dest_check_repairs_total 1\n"));
  EXPECT_THAT(doc, HasSubstr("# TYPE hanat_handover_flows_held gauge\n"));
  EXPECT_THAT(doc, HasSubstr("hanat_handover_flows_held{member=\"i-a\"} 200\n"));
  EXPECT_THAT(doc, HasSubstr("hanat_handover_flows_steered{member=\"i-a\"} 199\n"));
  EXPECT_THAT(doc, HasSubstr("# TYPE hanat_handover_channel_rejects_total counter\n"));
  EXPECT_THAT(doc, HasSubstr("hanat_handover_channel_rejects_total{reason=\"address\"} 3\n"));
  EXPECT_THAT(doc, HasSubstr("hanat_handover_channel_rejects_total{reason=\"hello\"} 1\n"));
  EXPECT_THAT(doc, HasSubstr("# TYPE hanat_replication_events_sent_total counter\n"));
  EXPECT_THAT(doc, HasSubstr("hanat_replication_events_sent_total{target=\"i-b\"} 4200\n"));
  EXPECT_THAT(doc, HasSubstr("# TYPE hanat_replication_bytes_sent_total counter\n"));
  EXPECT_THAT(doc, HasSubstr("hanat_replication_bytes_sent_total{target=\"i-b\"} 131072\n"));
  EXPECT_THAT(doc, HasSubstr("\nhanat_replication_drops_total 17\n"));
  EXPECT_THAT(doc, HasSubstr("\nhanat_replication_resyncs_total 9\n"));
  EXPECT_THAT(doc, HasSubstr("# TYPE hanat_eip_moves_total counter\n"));
  EXPECT_THAT(doc, HasSubstr("hanat_eip_moves_total{result=\"ok\"} 2\n"));
  EXPECT_THAT(doc, HasSubstr("hanat_eip_moves_total{result=\"InvalidAllocationID.NotFound\"} 1\n"));
  EXPECT_THAT(doc, HasSubstr("\nhanat_nat_applies_total 5\n"));
  EXPECT_THAT(doc, HasSubstr("\nhanat_unnatted_flows_purged_total 7\n"));
  EXPECT_THAT(doc, HasSubstr("\nhanat_unnatted_packets_leaked_total 5\n"));
}

TEST(MetricFamilies, ConfigAndReload) {
  std::string doc = render(sample_report());
  EXPECT_THAT(doc, HasSubstr("hanat_build_info{version=\"1.2.3\",group=\"lab\"} 1\n"));
  EXPECT_THAT(doc, HasSubstr("\nhanat_config_generation 3\n"));
  EXPECT_THAT(doc, HasSubstr("\nhanat_config_last_reload_success 0\n"));
  EXPECT_THAT(doc, HasSubstr("\nhanat_config_last_reload_timestamp_seconds 1700000200.5\n"));
  EXPECT_THAT(doc, HasSubstr("\nhanat_config_loaded_timestamp_seconds 1700000100\n"));
  EXPECT_THAT(doc, HasSubstr("\nhanat_start_time_seconds 1700000000\n"));

  Report never = sample_report();
  never.reload_attempted = false;
  never.reload_ok = true;
  std::string d2 = render(never);
  EXPECT_THAT(d2, HasSubstr("\nhanat_config_last_reload_success 1\n"));
  EXPECT_THAT(d2, Not(HasSubstr("\nhanat_config_last_reload_timestamp_seconds ")));
}

TEST(MetricFamilies, StatesAreStateSets) {
  std::string doc = render(sample_report());
  EXPECT_THAT(doc, HasSubstr("hanat_state{state=\"active\"} 1\n"));
  EXPECT_THAT(doc, HasSubstr("hanat_state{state=\"standby\"} 0\n"));
  EXPECT_THAT(doc, HasSubstr("hanat_node_phase{phase=\"running\"} 1\n"));
  EXPECT_THAT(doc, HasSubstr("hanat_node_phase{phase=\"identity\"} 0\n"));
  EXPECT_THAT(doc, HasSubstr("\nhanat_state_since_timestamp_seconds 1700000050\n"));
  EXPECT_THAT(doc, HasSubstr("\nhanat_drained 0\n"));
  EXPECT_THAT(doc, HasSubstr("\nhanat_nat_ok 1\n"));
  EXPECT_THAT(doc, HasSubstr("\nhanat_egress_ok 1\n"));
}

TEST(MetricFamilies, ForwardCheck) {
  Report r = sample_report();
  r.forward = "down";
  r.forward_in_packets = 1210;
  r.forward_out_packets = 7;
  std::string doc = render(r);
  EXPECT_THAT(doc, HasSubstr("\nhanat_forwarding_ok 0\n"));
  EXPECT_THAT(doc, HasSubstr("\nhanat_forward_packets_total{direction=\"in\"} 1210\n"));
  EXPECT_THAT(doc, HasSubstr("\nhanat_forward_packets_total{direction=\"out\"} 7\n"));
  r.forward = "off";
  doc = render(r);
  EXPECT_THAT(doc, HasSubstr("\nhanat_forwarding_ok 1\n"));
  EXPECT_THAT(doc, Not(HasSubstr("hanat_forward_packets_total{")));
}

TEST(MetricFamilies, StatefulTakeover) {
  Report r = sample_report();
  std::string doc = render(r);
  // Families are printed without samples too (the dashboard's names exist from start).
  EXPECT_THAT(doc, HasSubstr("# TYPE hanat_replica_flows gauge\n"));
  EXPECT_THAT(doc, HasSubstr("\nhanat_replica_refused_total 0\n"));
  EXPECT_THAT(doc, HasSubstr("# TYPE hanat_takeover_flows_total counter\n"));
  r.replica_flows = {{"i-b", 200}};
  r.replica_refused = 3;
  r.takeover_flows = {{"installed", 198}, {"collided", 2}};
  doc = render(r);
  EXPECT_THAT(doc, HasSubstr("\nhanat_replica_flows{member=\"i-b\"} 200\n"));
  EXPECT_THAT(doc, HasSubstr("\nhanat_replica_refused_total 3\n"));
  EXPECT_THAT(doc, HasSubstr("\nhanat_takeover_flows_total{outcome=\"installed\"} 198\n"));
  EXPECT_THAT(doc, HasSubstr("\nhanat_takeover_flows_total{outcome=\"collided\"} 2\n"));
}

TEST(MetricFamilies, MembersAndProbes) {
  std::string doc = render(sample_report());
  EXPECT_THAT(doc,
              HasSubstr("hanat_member_up{instance_id=\"i-a\",zone=\"zone-a\",self=\"true\"} 1\n"));
  EXPECT_THAT(doc,
              HasSubstr("hanat_member_up{instance_id=\"i-b\",zone=\"zone-b\",self=\"false\"} 0\n"));
  EXPECT_THAT(doc, HasSubstr("hanat_member_state_since_timestamp_seconds{instance_id=\"i-b\",zone="
                             "\"zone-b\",self=\"false\"} 1700000300.25\n"));
  EXPECT_THAT(doc,
              HasSubstr("hanat_probe_rtt_seconds{instance_id=\"i-b\",kind=\"icmp\"} 0.00025\n"));
  EXPECT_THAT(doc,
              HasSubstr("hanat_probe_rtt_seconds{instance_id=\"i-b\",kind=\"agent\"} 0.0015\n"));
}

TEST(MetricFamilies, PeerPaths) {
  Report r = sample_report();
  EXPECT_THAT(render(r), Not(HasSubstr("hanat_peer_path_up{")))
      << "no sample for peers probed on one path";
  r.members[1].paths = {{"private", "down"}, {"public", "up"}};
  r.members[1].rtt_us["agent/public"] = 2000;
  std::string doc = render(r);
  EXPECT_THAT(doc, HasSubstr("\nhanat_peer_path_up{instance_id=\"i-b\",path=\"private\"} 0\n"));
  EXPECT_THAT(doc, HasSubstr("\nhanat_peer_path_up{instance_id=\"i-b\",path=\"public\"} 1\n"));
  EXPECT_THAT(doc, HasSubstr("hanat_probe_rtt_seconds{instance_id=\"i-b\",kind=\"agent\",path="
                             "\"public\"} 0.002\n"));
}

TEST(MetricFamilies, ProbeSendDelay) {
  Report r = sample_report();
  EXPECT_THAT(render(r), Not(HasSubstr("hanat_probe_send_delay_seconds{")))
      << "no figure before the first probe send";
  r.probe_send_delay_us = {{"p50", 450}, {"p99", 2500}, {"max", 12000}};
  std::string doc = render(r);
  EXPECT_THAT(doc, HasSubstr("\nhanat_probe_send_delay_seconds{stat=\"p50\"} 0.00045\n"));
  EXPECT_THAT(doc, HasSubstr("\nhanat_probe_send_delay_seconds{stat=\"p99\"} 0.0025\n"));
  EXPECT_THAT(doc, HasSubstr("\nhanat_probe_send_delay_seconds{stat=\"max\"} 0.012\n"));
}

TEST(MetricFamilies, RouteTables) {
  std::string doc = render(sample_report());
  EXPECT_THAT(doc, HasSubstr("hanat_route_table_on_allocated_target{route_table=\"rtb-a\",zone="
                             "\"zone-a\"} 1\n"));
  EXPECT_THAT(doc, HasSubstr("hanat_route_table_on_allocated_target{route_table=\"rtb-b\",zone="
                             "\"zone-b\"} 0\n"));
  EXPECT_THAT(
      doc, HasSubstr("hanat_route_table_writes_total{route_table=\"rtb-a\",zone=\"zone-a\"} 4\n"));
  EXPECT_THAT(doc, HasSubstr("hanat_route_table_hold_down_seconds{route_table=\"rtb-b\",zone="
                             "\"zone-b\"} 2.5\n"));
  EXPECT_THAT(doc, HasSubstr("hanat_route_table_hold_down_seconds{route_table=\"rtb-a\",zone="
                             "\"zone-a\"} 0\n"));
  EXPECT_THAT(doc, HasSubstr("hanat_route_table_last_write_timestamp_seconds{route_table=\"rtb-b\","
                             "zone=\"zone-b\",outcome=\"RequestLimitExceeded\"} 1700000301\n"));
}

TEST(MetricFamilies, BeforeTheEngineRunsTheDocumentIsStillValid) {
  Report r;
  r.version = "1.2.3";
  r.group = "lab";
  r.phase = "identity";
  r.phases = {"identity", "running"};
  r.states = {"starting", "active"};
  std::string doc = render(r);
  EXPECT_THAT(doc, HasSubstr("hanat_node_phase{phase=\"identity\"} 1\n"));
  EXPECT_THAT(doc, HasSubstr("hanat_state{state=\"starting\"} 0\n"));
  EXPECT_THAT(doc, Not(HasSubstr("\nhanat_state_since_timestamp_seconds ")));
  EXPECT_THAT(doc, Not(HasSubstr("\nhanat_member_up{")));
}

TEST(MetricFamilies, HostileLabelValuesStayValid) {
  Report r = sample_report();
  r.group = "we\"ird\\group\nname";
  r.ec2_calls = {{{"ReplaceRoute", "Code \"with\" quotes"}, 1}};
  std::string doc = render(r);
  EXPECT_THAT(doc, HasSubstr("group=\"we\\\"ird\\\\group\\nname\""));
}

// The engine's side of "since": a peer's health time is its last transition (or when it
// joined), self's is the machine's state_since.
TEST(EngineSince, PeerSinceFollowsHealthTransitions) {
  using namespace std::chrono_literals;
  const engine::Time t0 = engine::Time{} + 1000h;
  engine::Config c;
  c.self = "i-a";
  c.members = {{"i-a", "", "a", 100}, {"i-b", "", "b", 200}};
  c.probe_kinds = {engine::ProbeKind::Icmp};
  c.peer_thresholds = {.rise = 2, .fall = 2};
  engine::Machine m(std::make_shared<const engine::Config>(c), t0);
  auto peer = [&] {
    for (const auto& ms : m.snapshot().members)
      if (ms.instance_id == "i-b") return ms;
    return engine::MemberSnapshot{};
  };
  auto self = [&] {
    for (const auto& ms : m.snapshot().members)
      if (ms.self) return ms;
    return engine::MemberSnapshot{};
  };
  EXPECT_EQ(peer().since, t0);  // unknown since it joined
  EXPECT_EQ(self().since, m.snapshot().state_since);

  auto probe = [&](bool ok, engine::Time at) {
    (void)m.handle(engine::ProbeResult{"i-b", engine::ProbeKind::Icmp, ok, at, false});
  };
  probe(true, t0 + 1s);
  EXPECT_EQ(peer().since, t0);  // rise not reached
  probe(true, t0 + 2s);
  EXPECT_EQ(peer().health, engine::Health::Up);
  EXPECT_EQ(peer().since, t0 + 2s);
  probe(true, t0 + 3s);
  EXPECT_EQ(peer().since, t0 + 2s);  // still up: unchanged
  probe(false, t0 + 4s);
  probe(false, t0 + 5s);
  EXPECT_EQ(peer().health, engine::Health::Down);
  EXPECT_EQ(peer().since, t0 + 5s);
  ASSERT_TRUE(peer().down_since.has_value());
  EXPECT_EQ(*peer().down_since, t0 + 5s);
}

TEST(MetricFamilies, ForeignRoutesPerTable) {
  Report r = sample_report();
  r.tables[1].foreign_routes = 1;
  std::string doc = render(r);
  EXPECT_THAT(doc, HasSubstr("hanat_route_table_foreign_routes{route_table=\"rtb-b\",zone="
                             "\"zone-b\"} 1\n"));
  EXPECT_THAT(doc, HasSubstr("hanat_route_table_foreign_routes{route_table=\"rtb-a\",zone="
                             "\"zone-a\"} 0\n"));
}

}  // namespace
}  // namespace hanat::daemon

namespace hanat::daemon {
namespace {

TEST(MetricFamilies, HistogramsAndProbeFailures) {
  Report r = sample_report();
  r.failover_seconds.observe(0.62);
  r.ec2_latency.try_emplace("ReplaceRoute", kEc2LatencyBuckets).first->second.observe(0.03);
  r.ec2_latency.try_emplace("DescribeRouteTables", kEc2LatencyBuckets).first->second.observe(7);
  r.probe_rtt.try_emplace("icmp", kProbeRttBuckets).first->second.observe(0.0004);
  r.probe_failures[{"i-b", "agent", "timeout"}] = 3;
  std::string doc = render(r);
  EXPECT_THAT(doc, HasSubstr("# TYPE hanat_failover_duration_seconds histogram\n"));
  EXPECT_THAT(doc, HasSubstr("\nhanat_failover_duration_seconds_bucket{le=\"0.5\"} 0\n"
                             "hanat_failover_duration_seconds_bucket{le=\"0.75\"} 1\n"));
  EXPECT_THAT(doc, HasSubstr("\nhanat_failover_duration_seconds_bucket{le=\"+Inf\"} 1\n"
                             "hanat_failover_duration_seconds_sum 0.62\n"
                             "hanat_failover_duration_seconds_count 1\n"));
  EXPECT_THAT(doc, HasSubstr("hanat_ec2_request_duration_seconds_bucket{action=\"ReplaceRoute\","
                             "le=\"0.025\"} 0\n"
                             "hanat_ec2_request_duration_seconds_bucket{action=\"ReplaceRoute\","
                             "le=\"0.05\"} 1\n"));
  EXPECT_THAT(doc, HasSubstr("hanat_ec2_request_duration_seconds_bucket{action="
                             "\"DescribeRouteTables\",le=\"5\"} 0\n"));
  EXPECT_THAT(doc, HasSubstr("hanat_probe_rtt_histogram_seconds_count{kind=\"icmp\"} 1\n"));
  EXPECT_THAT(doc, HasSubstr("hanat_probe_failures_total{instance_id=\"i-b\",kind=\"agent\","
                             "failure=\"timeout\"} 3\n"));
}

TEST(MetricFamilies, NoFailoverYetIsAZeroHistogram) {
  std::string doc = render(Report{});
  EXPECT_THAT(doc, HasSubstr("\nhanat_failover_duration_seconds_count 0\n"));
  EXPECT_THAT(doc, HasSubstr("# TYPE hanat_ec2_request_duration_seconds histogram\n"));
}

}  // namespace
}  // namespace hanat::daemon
