// SPDX-License-Identifier: GPL-2.0-or-later
// `hanatctl status` text from fixed replies of the status socket.

#include "core/status/status_text.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace hanat::status {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

struct Parsed {
  json_t* j = nullptr;
  explicit Parsed(const char* text) {
    json_error_t e;
    j = json_loads(text, 0, &e);
    EXPECT_NE(j, nullptr) << e.text << " at line " << e.line;
  }
  ~Parsed() { json_decref(j); }
};

constexpr const char* kRunning = R"({
  "ok": true, "version": "0.1.0", "pid": 42, "uptime_ms": 125000, "group": "lab",
  "config": {"path": "/etc/hanat/hanat.toml", "generation": 2,
             "loaded_at": "2026-11-22T08:00:00Z", "loaded_at_unix_ms": 1795334400000,
             "last_reload": {"attempted": true, "ok": true, "at": "2026-11-22T08:00:00Z"}},
  "metrics": {"textfile": "/var/lib/prometheus/node-exporter/hanat.prom", "interval_ms": 5000,
              "writes": 7, "failures": 0},
  "node": {
    "phase": "running", "state": "active", "state_for_ms": 12345, "drained": false,
    "self": {"instance_id": "i-a", "zone": "zone-a", "eni_id": "eni-a",
             "private_ip": "198.18.0.10", "nat_ok": true, "egress": "up"},
    "members": [
      {"instance_id": "i-a", "zone": "zone-a", "self": true, "health": "active",
       "address": "198.18.0.10", "since_unix_ms": 1795334400000, "for_ms": 12345,
       "last_rtt_us": {}},
      {"instance_id": "i-b", "zone": "zone-b", "self": false, "health": "down",
       "address": "198.18.0.11", "since_unix_ms": 1795334410000, "for_ms": 3200,
       "down_for_ms": 3200, "last_rtt_us": {"icmp": 250}}],
    "tables": [
      {"id": "rtb-a", "zone": "zone-a", "allocated": "eni-a", "writes": 0, "on_allocated": true,
       "routes": [{"destination": "0.0.0.0/0", "current": "eni-a", "in_flight": false}]},
      {"id": "rtb-b", "zone": "zone-b", "allocated": "eni-a", "writes": 2, "on_allocated": true,
       "hold_down_ms": 9000,
       "last_write": {"at": "2026-11-22T08:00:10.500Z", "at_unix_ms": 1795334410500,
                      "ago_ms": 1500, "destination": "0.0.0.0/0", "target": "eni-a",
                      "outcome": "ok"},
       "routes": [{"destination": "0.0.0.0/0", "current": "eni-a", "in_flight": false}]}],
    "counters": {"failovers": 1, "route_writes": 2, "throttles": 1, "drift_repairs": 0,
                 "nat_applies": 1, "ec2_calls_total": 16,
                 "ec2_calls": {"ReplaceRoute RequestLimitExceeded": 1, "ReplaceRoute ok": 1,
                               "DescribeRouteTables ok": 14},
                 "ec2_calls_by_action": {
                   "DescribeRouteTables": {"ok": 14},
                   "ReplaceRoute": {"RequestLimitExceeded": 1, "ok": 1}}}}
})";

TEST(StatusText, HeaderConfigAndReload) {
  Parsed p(kRunning);
  std::string t = format_status(p.j);
  EXPECT_THAT(t, HasSubstr("hanatd 0.1.0 (pid 42), up 2m05s\n"));
  EXPECT_THAT(t, HasSubstr("group:       lab\n"));
  EXPECT_THAT(
      t, HasSubstr(
             "config:      /etc/hanat/hanat.toml (generation 2, loaded 2026-11-22T08:00:00Z)\n"));
  EXPECT_THAT(t, HasSubstr("last reload: ok at 2026-11-22T08:00:00Z\n"));
  EXPECT_THAT(t, HasSubstr("metrics:     /var/lib/prometheus/node-exporter/hanat.prom every 5.0s, "
                           "7 writes\n"));
}

TEST(StatusText, MembersShowHowLongInTheirState) {
  Parsed p(kRunning);
  std::string t = format_status(p.j);
  EXPECT_THAT(t, HasSubstr("state:       active for 12.3s\n"));
  EXPECT_THAT(t,
              HasSubstr("i-a                    zone-a       198.18.0.10      active     for 12.3s "
                        "   (this host)\n"));
  EXPECT_THAT(t,
              HasSubstr("i-b                    zone-b       198.18.0.11      down       for 3.2s "
                        "    icmp=0.25ms\n"));
}

TEST(StatusText, TablesShowLastWriteAndHoldDown) {
  Parsed p(kRunning);
  std::string t = format_status(p.j);
  EXPECT_THAT(t, HasSubstr("rtb-b"));
  EXPECT_THAT(t, HasSubstr("writes 2 [hold-down 9.0s]\n"));
  EXPECT_THAT(t, HasSubstr("    last write: 0.0.0.0/0 -> eni-a ok at 2026-11-22T08:00:10.500Z "
                           "(1.5s ago)\n"));
  // rtb-a was never written: no last-write line right after it.
  size_t a = t.find("rtb-a");
  size_t b = t.find("rtb-b");
  ASSERT_NE(a, std::string::npos);
  EXPECT_EQ(t.substr(a, b - a).find("last write"), std::string::npos);
}

TEST(StatusText, Ec2CallsByActionAndOutcome) {
  Parsed p(kRunning);
  std::string t = format_status(p.j);
  EXPECT_THAT(t,
              HasSubstr("counters:    failovers 1, route writes 2, throttles 1, drift repairs 0, "
                        "nat applies 1, ec2 calls 16\n"));
  EXPECT_THAT(t, HasSubstr("ec2 calls:   DescribeRouteTables ok=14\n"
                           "             ReplaceRoute RequestLimitExceeded=1 ok=1\n"));
}

TEST(StatusText, FailedReloadAndFailingTextfile) {
  Parsed p(R"({"ok": true, "version": "0.1.0", "pid": 1, "uptime_ms": 500, "group": "g",
    "config": {"path": "/c.toml", "generation": 1, "loaded_at": "X",
               "last_reload": {"attempted": true, "ok": false, "at": "Y",
                               "error": "/c.toml:1:1: a: bad\n/c.toml:2:1: b: worse"}},
    "metrics": {"textfile": "/nope/h.prom", "interval_ms": 60000, "writes": 0,
                "failures": 3, "error": "metrics textfile /nope/h.prom: cannot create"},
    "node": {"phase": "identity", "phase_error": "instance metadata: refused",
             "counters": {"failovers": 0}}})");
  std::string t = format_status(p.j);
  EXPECT_THAT(t, HasSubstr("hanatd 0.1.0 (pid 1), up 500ms\n"));
  EXPECT_THAT(t, HasSubstr("last reload: FAILED at Y, still running generation 1:\n"
                           "  /c.toml:1:1: a: bad\n  /c.toml:2:1: b: worse\n"));
  EXPECT_THAT(t, HasSubstr("every 1m00s, 0 writes, FAILING: metrics textfile /nope/h.prom: "
                           "cannot create\n"));
  EXPECT_THAT(t, HasSubstr("phase:       identity — instance metadata: refused\n"));
  EXPECT_THAT(t, Not(HasSubstr("members:")));
  EXPECT_THAT(t, Not(HasSubstr("ec2 calls:")));
}

TEST(StatusText, AutoScalingLifecycleStateAndHook) {
  // The hook text as node_lifecycle.cc writes it (a raw-string delimiter: it holds `)"`).
  Parsed term(R"j({"ok": true, "version": "0.1.0", "pid": 1, "uptime_ms": 500, "group": "g",
    "node": {"phase": "running", "self": {"instance_id": "i-a", "zone": "z", "eni_id": "eni-a",
             "private_ip": "198.18.0.10", "nat_ok": true, "egress": "up",
             "lifecycle_state": "Terminating:Wait", "lifecycle_drained": true,
             "lifecycle_hook": "completed hanat-term (CONTINUE)"}}})j");
  EXPECT_THAT(format_status(term.j),
              HasSubstr("lifecycle:   Terminating:Wait, routes handed over, hook completed "
                        "hanat-term (CONTINUE)\n"));
  Parsed in_service(R"({"ok": true, "version": "0.1.0", "pid": 1, "uptime_ms": 500,
    "group": "g", "node": {"phase": "running", "self": {"instance_id": "i-a", "zone": "z",
             "eni_id": "eni-a", "private_ip": "198.18.0.10", "nat_ok": true, "egress": "up",
             "lifecycle_state": "InService", "lifecycle_drained": false}}})");
  EXPECT_THAT(format_status(in_service.j), HasSubstr("lifecycle:   InService\n"));
  Parsed none(R"({"ok": true, "version": "0.1.0", "pid": 1, "uptime_ms": 500, "group": "g",
    "node": {"phase": "running", "self": {"instance_id": "i-a", "zone": "z", "eni_id": "eni-a",
             "private_ip": "198.18.0.10", "nat_ok": true, "egress": "up"}}})");
  EXPECT_THAT(format_status(none.j), Not(HasSubstr("lifecycle")))
      << "not in an Auto Scaling group: no line";
}

TEST(StatusText, DataPlaneShowsTheForwardCheck) {
  Parsed up(R"({"ok": true, "version": "0.1.0", "pid": 1, "uptime_ms": 500, "group": "g",
    "node": {"phase": "running", "self": {"instance_id": "i-a", "zone": "z", "eni_id": "eni-a",
             "private_ip": "198.18.0.10", "nat_ok": true, "egress": "unknown",
             "forward": "up", "forward_detail": "40 packets forwarded in the last 200 ms"}}})");
  std::string t = format_status(up.j);
  EXPECT_THAT(t, HasSubstr("data plane:  nat ok, egress unknown, forwarding up\n"));
  EXPECT_THAT(t, Not(HasSubstr("stalled")));
  EXPECT_THAT(t, Not(HasSubstr("own link")));
  Parsed link_down(R"({"ok": true, "version": "0.1.0", "pid": 1, "uptime_ms": 500, "group": "g",
    "node": {"phase": "running", "self": {"instance_id": "i-a", "zone": "z", "eni_id": "eni-a",
             "private_ip": "198.18.0.10", "nat_ok": true, "egress": "up", "forward": "up",
             "own_link": "ens5", "own_link_up": false}}})");
  EXPECT_THAT(format_status(link_down.j),
              HasSubstr("data plane:  nat ok, egress up, forwarding up, own link ens5 DOWN\n"));
  Parsed down(R"({"ok": true, "version": "0.1.0", "pid": 1, "uptime_ms": 500, "group": "g",
    "node": {"phase": "running", "self": {"instance_id": "i-a", "zone": "z", "eni_id": "eni-a",
             "private_ip": "198.18.0.10", "nat_ok": true, "egress": "up", "forward": "down",
             "forward_detail": "120 packets arrived to be forwarded in 600 ms and none left",
             "forward_recheck_in_ms": 59000}}})");
  t = format_status(down.j);
  EXPECT_THAT(t, HasSubstr("data plane:  nat ok, egress up, forwarding down\n"
                           "             forwarding stalled: 120 packets arrived to be forwarded "
                           "in 600 ms and none left; offered back in 59.0s if no traffic "
                           "arrives\n"));
}

TEST(StatusText, UnNattedFlowsPurgedAndPacketsLeaked) {
  Parsed both(R"({"ok": true, "version": "0.1.0", "pid": 1, "uptime_ms": 500, "group": "g",
    "node": {"phase": "running", "counters": {"failovers": 0, "unnatted_flows_purged": 3,
             "unnatted_packets_leaked": 17}}})");
  EXPECT_THAT(format_status(both.j),
              HasSubstr("un-NATed:    3 flows purged, 17 packets left without NAT\n"));
  // With the forward check off there is no leak counter.
  Parsed purged(R"({"ok": true, "version": "0.1.0", "pid": 1, "uptime_ms": 500, "group": "g",
    "node": {"phase": "running", "counters": {"failovers": 0, "unnatted_flows_purged": 0}}})");
  EXPECT_THAT(format_status(purged.j), HasSubstr("un-NATed:    0 flows purged\n"));
  Parsed none(R"({"ok": true, "version": "0.1.0", "pid": 1, "uptime_ms": 500, "group": "g",
    "node": {"phase": "running", "counters": {"failovers": 0}}})");
  EXPECT_THAT(format_status(none.j), Not(HasSubstr("un-NATed")));
}

TEST(StatusText, StatefulTakeover) {
  Parsed st(R"({"ok": true, "version": "0.1.0", "pid": 1, "uptime_ms": 500, "group": "g",
    "node": {"phase": "running", "takeover": {"stateful": true, "replicated_flows": 200,
      "max_flows": 100000, "bytes_per_flow": 96, "batches_ignored": 0,
      "replicas": {"i-a": {"flows": 200, "live": 199, "resyncing": false, "synced": true,
                           "upserts": 400, "destroyed": 3, "refused": 0, "expired": 1,
                           "swept": 0, "resyncs": 2}},
      "running": [{"member": "i-c", "flows": 5000, "installed": 2000, "collided": 1,
                   "failed": 0, "unroutable": 0, "writes_held": 2, "released": false}],
      "last": {"i-d": {"flows": 10, "installed": 8, "collided": 1, "failed": 1,
                       "unroutable": 0, "at_unix_ms": 1, "took_ms": 12,
                       "error": "conntrack: Operation not permitted"}}}}})");
  const std::string out = format_status(st.j);
  EXPECT_THAT(out, HasSubstr("takeover:    stateful, 200 replicated flows held (at most "
                             "100000)\n"));
  EXPECT_THAT(out, HasSubstr("             from i-a: 200 flows (199 live), 2 resyncs, 0 "
                             "refused\n"));
  EXPECT_THAT(out, HasSubstr("             taking i-c: 2000 of 5000 flows installed, 1 collided, "
                             "0 failed, 2 route writes held\n"));
  EXPECT_THAT(out, HasSubstr("             took i-d: 8 flows installed, 1 collided, 1 failed, 0 "
                             "without an address, in 12 ms (conntrack: Operation not "
                             "permitted)\n"));
  // Off and nothing taken: no line.
  Parsed off(R"({"ok": true, "version": "0.1.0", "pid": 1, "uptime_ms": 500, "group": "g",
    "node": {"phase": "running", "takeover": {"stateful": false, "replicated_flows": 0,
      "replicas": {}, "running": [], "last": {}}}})");
  EXPECT_THAT(format_status(off.j), Not(HasSubstr("takeover:")));
}

TEST(StatusText, HandoverChannelAndSteering) {
  Parsed st(R"({"ok": true, "version": "0.1.0", "pid": 1, "uptime_ms": 500, "group": "g",
    "node": {"phase": "running", "handover": {"steering_ready": true,
      "channel": {"port": 7801, "connections": 1, "accepted": 3, "rejected_address": 2,
                  "rejected_hello": 1, "closed_bounds": 0, "flows_received": 250,
                  "held": {"i-a": 200}},
      "steering": [
        {"member": "i-a", "installed": true, "mark": 1751187456, "route_table": 1751187456,
         "rule_priority": 400, "flows": 200, "errors": 0, "catch_unknown_tcp": true},
        {"member": "i-c", "installed": false, "mark": 0, "route_table": 0,
         "rule_priority": 0, "flows": 0, "errors": 1, "catch_unknown_tcp": false}]}}})");
  const std::string out = format_status(st.j);
  EXPECT_THAT(out, HasSubstr("handover:    channel port 7801, 1 connections, 3 accepted, 2 refused "
                             "(not a member), 1 refused (hello), 0 closed at bounds, 250 flows "
                             "received\n"));
  EXPECT_THAT(out, HasSubstr("             steering i-a: 200 flows, mark 0x68610000, table "
                             "1751187456, rule priority 400, catches unknown TCP\n"));
  EXPECT_THAT(out, HasSubstr("             steering i-c: not installed, 1 errors\n"));
  // The leaving side: the peers this host handed tables to.
  Parsed sending(R"({"ok": true, "version": "0.1.0", "pid": 1, "uptime_ms": 500, "group": "g",
    "node": {"phase": "running", "handover": {"steering_ready": true, "steering": [],
      "draining": true, "flows_left": 12,
      "sending": [
        {"member": "i-b", "phase": "streaming", "tables": ["rtb-a"], "flows_left": 12,
         "flows_carried": 15, "flows_acked": 200, "writes_held": 0},
        {"member": "i-c", "phase": "connecting", "tables": ["rtb-c"], "flows_left": 0,
         "writes_held": 1},
        {"member": "i-d", "phase": "ended", "tables": ["rtb-d"], "flows_left": 0,
         "writes_held": 0, "ended": "no flows left",
         "problem": "no acknowledgement from i-d within 500 ms"}]}}})");
  const std::string sent = format_status(sending.j);
  EXPECT_THAT(sent, HasSubstr("handover:    sending to i-b: streaming, 12 flows left\n"));
  EXPECT_THAT(sent, HasSubstr("             sending to i-c: connecting, 0 flows left, 1 route "
                              "writes held\n"));
  EXPECT_THAT(sent, HasSubstr("             sending to i-d: ended, 0 flows left (no flows left); "
                              "no acknowledgement from i-d within 500 ms\n"));
  // Nothing to say: no line.
  Parsed idle(R"({"ok": true, "version": "0.1.0", "pid": 1, "uptime_ms": 500, "group": "g",
    "node": {"phase": "identity", "handover": {"steering_ready": true, "steering": []}}})");
  EXPECT_THAT(format_status(idle.j), Not(HasSubstr("handover:")));
  Parsed broken(R"({"ok": true, "version": "0.1.0", "pid": 1, "uptime_ms": 500, "group": "g",
    "node": {"phase": "running", "handover": {"steering_ready": false, "steering": [],
             "error": "member channel: /etc/hanat/psk: readable by others"}}})");
  EXPECT_THAT(
      format_status(broken.j),
      HasSubstr("handover:    ERROR: member channel: /etc/hanat/psk: readable by others\n"));
}

TEST(StatusText, Replication) {
  Parsed st(R"({"ok": true, "version": "0.1.0", "pid": 1, "uptime_ms": 500, "group": "g",
    "node": {"phase": "running", "replication": {"enabled": true, "drops": 0,
      "targets": [
        {"member": "i-b", "connected": true, "tables": ["rtb-a"], "flows_sent": 5000,
         "events_sent": 1200, "events_per_s": 40, "resyncs": 3, "drops": 0,
         "last_resync_ms_ago": 2500},
        {"member": "i-c", "connected": false, "tables": ["rtb-d"], "flows_sent": 0,
         "events_sent": 0, "events_per_s": 0, "resyncs": 0, "drops": 7,
         "last_error": "connect: connection refused"}],
      "received": {"i-b": {"frames": 10, "upserts": 900, "destroys": 30, "resyncs": 2}}}}})");
  const std::string out = format_status(st.j);
  EXPECT_THAT(out, HasSubstr("replication: to i-b: connected, 5000 flows in resyncs, 1200 events "
                             "(40/s), 3 resyncs, 0 dropped, last resync 2500 ms ago\n"));
  EXPECT_THAT(out, HasSubstr("             to i-c: not connected, 0 flows in resyncs, 0 events "
                             "(0/s), 0 resyncs, 7 dropped; connect: connection refused\n"));
  EXPECT_THAT(out, HasSubstr("             from i-b: 10 frames, 900 upserts, 30 destroys, 2 "
                             "resyncs\n"));
  Parsed alone(R"({"ok": true, "version": "0.1.0", "pid": 1, "uptime_ms": 500, "group": "g",
    "node": {"phase": "running", "replication": {"enabled": true, "targets": [],
             "received": {}}}})");
  EXPECT_THAT(format_status(alone.j),
              HasSubstr("replication: no target (no other member would take this member's "
                        "tables)\n"));
  Parsed off(R"({"ok": true, "version": "0.1.0", "pid": 1, "uptime_ms": 500, "group": "g",
    "node": {"phase": "running", "replication": {"enabled": false, "targets": [],
             "received": {}}}})");
  EXPECT_THAT(format_status(off.j), Not(HasSubstr("replication:")));
}

TEST(StatusText, ProbeSendDelay) {
  Parsed p(R"({"ok": true, "version": "0.1.0", "pid": 1, "uptime_ms": 500, "group": "g",
    "node": {"phase": "running", "self": {"instance_id": "i-a", "zone": "z", "eni_id": "eni-a",
             "private_ip": "198.18.0.10", "nat_ok": true, "egress": "up",
             "probe_send_delay_us": {"samples": 1024, "p50": 410, "p99": 2350, "max": 7000}}}})");
  EXPECT_THAT(
      format_status(p.j),
      HasSubstr("probe sends: late by p50 0.41 ms, p99 2.35 ms, max 7.00 ms (last 1024)\n"));
}

TEST(StatusText, HumanDuration) {
  EXPECT_EQ(human_duration(-5), "0ms");
  EXPECT_EQ(human_duration(850), "850ms");
  EXPECT_EQ(human_duration(12345), "12.3s");
  EXPECT_EQ(human_duration(59999), "59.9s");
  EXPECT_EQ(human_duration(245000), "4m05s");
  EXPECT_EQ(human_duration(7380000), "2h03m");
  EXPECT_EQ(human_duration(273600000), "3d04h");
}

TEST(StatusText, EventsOneLinePerDecisionOldestFirst) {
  Parsed p(R"js({"ok":true,"events":[
    {"at":"2026-12-02T20:50:01Z","level":"notice","message":"peer i-2: up -> down (icmp)"},
    {"at":"2026-12-02T20:50:02Z","level":"warning","message":"route rtb-1: failed"}]})js");
  EXPECT_EQ(format_events(p.j),
            "2026-12-02T20:50:01Z notice  peer i-2: up -> down (icmp)\n"
            "2026-12-02T20:50:02Z warning route rtb-1: failed\n");
  Parsed none(R"js({"ok":true,"events":[]})js");
  EXPECT_EQ(format_events(none.j), "no events yet\n");
}

TEST(StatusText, ForeignRoutesBystandersAndMissingIds) {
  Parsed p(R"json({"ok": true, "version": "0.1.0", "pid": 42, "uptime_ms": 1000,
    "node": {"phase": "running", "state": "standby",
      "missing": {"members": ["i-0dead"], "route_tables": ["rtb-0gone", "rtb-0gone2"]},
      "members": [
        {"instance_id": "i-app", "zone": "zone-b", "self": false, "health": "up",
         "agent_answered": false, "note": "not running hanatd", "address": "198.18.2.10"}],
      "tables": [
        {"id": "rtb-b", "zone": "zone-b", "allocated": "eni-a", "writes": 0, "adopted": true,
         "routes": [{"destination": "0.0.0.0/0", "current": "tgw-0123", "in_flight": false,
                     "foreign": true, "status": "foreign (tgw-0123)"}]}]}})json");
  std::string t = format_status(p.j);
  EXPECT_THAT(t, HasSubstr(" [not running hanatd]"));
  EXPECT_THAT(t, HasSubstr("[foreign (tgw-0123)] [adopted]\n"));
  EXPECT_THAT(t, HasSubstr("missing members: i-0dead (not managed)\n"));
  EXPECT_THAT(t, HasSubstr("missing route_tables: rtb-0gone, rtb-0gone2 (not managed)\n"));
}

TEST(StatusText, BrokenPathIsAWarningOnTheMember) {
  Parsed p(R"json({"ok": true, "version": "0.1.0", "pid": 42, "uptime_ms": 1000,
    "node": {"phase": "running", "state": "active",
      "members": [
        {"instance_id": "i-b", "zone": "zone-b", "self": false, "health": "up",
         "agent_answered": true, "address": "198.18.2.10", "public_address": "198.19.0.12",
         "paths": {"private": "down", "public": "up"},
         "warning": "private path down, public path up"}]}})json");
  EXPECT_THAT(format_status(p.j), HasSubstr(" [WARNING: private path down, public path up]"));
}

// A node two seconds after its peer fell: what `peers`, `routes` and `drain --wait` read.
constexpr const char* kAfterCut = R"json({"ok": true, "version": "0.1.0", "pid": 7,
  "node": {"phase": "running", "state": "active", "drained": false,
    "members": [
      {"instance_id": "i-b", "zone": "zone-b", "self": true, "health": "active",
       "since_unix_ms": 1796256000000, "for_ms": 65000},
      {"instance_id": "i-a", "zone": "zone-a", "self": false, "health": "down",
       "address": "198.18.0.10", "since_unix_ms": 1796256063000, "for_ms": 2000,
       "reason": "3 icmp probes failed, fall=3",
       "probes": {"agent": {"ok": false, "failure": "timeout", "detail": "no answer within 100ms",
                            "at_unix_ms": 1796256064900, "ago_ms": 100},
                  "icmp": {"ok": false, "failure": "timeout", "at_unix_ms": 1796256064950,
                           "ago_ms": 50, "discounted": true}}},
      {"instance_id": "i-c", "zone": "zone-c", "self": false, "health": "up",
       "since_unix_ms": 1796256000000, "for_ms": 65000, "reason": "5 icmp probes succeeded, rise=5",
       "probes": {"icmp": {"ok": true, "at_unix_ms": 1796256064980, "ago_ms": 20}}}],
    "tables": [
      {"id": "rtb-a", "zone": "zone-a", "allocated": "eni-b", "allocated_member": "i-b",
       "writes": 1,
       "last_write": {"at": "2026-12-03T00:01:03.500Z", "ago_ms": 1500,
                      "destination": "0.0.0.0/0", "target": "eni-b", "outcome": "ok"},
       "routes": [{"destination": "0.0.0.0/0", "current": "eni-b", "here": true,
                   "foreign": false, "in_flight": false}]},
      {"id": "rtb-c", "zone": "zone-c", "allocated": "eni-c", "allocated_member": "i-c",
       "writes": 0,
       "routes": [{"destination": "0.0.0.0/0", "current": "tgw-01", "here": false,
                   "foreign": true, "in_flight": false}]}]}})json";

TEST(PeersText, DownPeerShowsSinceReasonAndEachProbeKind) {
  Parsed p(kAfterCut);
  EXPECT_EQ(format_peers(p.j),
            "i-b (this host) in zone-b: active since 2026-12-03T00:00:00.000Z (1m05s ago)\n"
            "\n"
            "i-a in zone-a, 198.18.0.10\n"
            "  state:   DOWN since 2026-12-03T00:01:03.000Z (2.0s ago)\n"
            "  down:    3 icmp probes failed, fall=3\n"
            "  agent:   FAILED timeout (no answer within 100ms), 100ms ago\n"
            "  icmp:    FAILED timeout [not counted: own link down], 50ms ago\n"
            "\n"
            "i-c in zone-c\n"
            "  state:   UP since 2026-12-03T00:00:00.000Z (1m05s ago)\n"
            "  reason:  5 icmp probes succeeded, rise=5\n"
            "  icmp:    ok, 20ms ago\n");
}

TEST(PeersText, StartingDaemonAndLonelyHost) {
  Parsed starting(R"({"ok": true, "node": {"phase": "identity"}})");
  EXPECT_EQ(format_peers(starting.j), "no peers (the daemon is still starting)\n");
  Parsed alone(R"({"ok": true, "node": {"members": [
    {"instance_id": "i-b", "zone": "z", "self": true, "health": "drained"}], "drained": true}})");
  EXPECT_EQ(format_peers(alone.j),
            "i-b (this host) in z: drained (drained)\nno peers in the group\n");
}

TEST(RoutesText, CurrentAllocatedForeignAndLastWrite) {
  Parsed p(kAfterCut);
  std::string t = format_routes(p.j);
  EXPECT_THAT(t, HasSubstr("rtb-a                    zone-a       0.0.0.0/0          current "
                           "eni-b (this host), allocated eni-b (i-b)\n"
                           "    last write: 0.0.0.0/0 -> eni-b ok at 2026-12-03T00:01:03.500Z "
                           "(1.5s ago)\n"));
  EXPECT_THAT(t, HasSubstr("current tgw-01, allocated eni-c (i-c), FOREIGN (never written; "
                           "hanatctl adopt rtb-c)\n"
                           "    last write: none since hanatd started\n"));
  Parsed starting(R"({"ok": true, "node": {"phase": "discovery"}})");
  EXPECT_EQ(format_routes(starting.j), "no route tables (the daemon is still starting)\n");
}

TEST(RoutesText, EachZonesElasticIpAndWhereItIs) {
  Parsed p(R"({"ok": true, "node": {"tables": [{"id": "rtb-a", "zone": "zone-a",
    "allocated": "eni-b", "routes": [{"destination": "0.0.0.0/0", "current": "eni-b",
    "here": true}]}], "eips": {"zones": [
    {"zone": "zone-a", "allocation_id": "eipalloc-0a", "public_ip": "198.19.1.10",
     "here": true, "home": false, "private_ip": "198.18.0.77", "network_interface_id": "eni-b"},
    {"zone": "zone-b", "allocation_id": "eipalloc-0b", "public_ip": "198.19.1.11",
     "here": true, "home": true, "private_ip": "198.18.0.20", "network_interface_id": "eni-b"},
    {"zone": "zone-c", "allocation_id": "eipalloc-0c", "public_ip": "198.19.1.12",
     "here": false, "network_interface_id": "eni-c", "private_ip": "198.18.0.30",
     "reserved_ip": "198.18.0.78", "last_error": "InvalidAllocationID.NotFound"}],
    "problems": ["failover.eips.zone-d = \"eipalloc-0d\": no such Elastic IP"]}}})");
  std::string t = format_routes(p.j);
  EXPECT_THAT(t, HasSubstr("elastic IPs:\n"
                           "zone-a       eipalloc-0a                198.19.1.10     on this host, "
                           "198.18.0.77 (secondary)\n"
                           "zone-b       eipalloc-0b                198.19.1.11     on this host, "
                           "198.18.0.20 (primary)\n"
                           "zone-c       eipalloc-0c                198.19.1.12     on eni-c "
                           "198.18.0.30, 198.18.0.78 reserved here, last error: "
                           "InvalidAllocationID.NotFound\n"
                           "ERROR: failover.eips.zone-d = \"eipalloc-0d\": no such Elastic IP\n"));
  EXPECT_THAT(format_status(p.j), HasSubstr("elastic IPs:\n  zone-a "));
  EXPECT_THAT(format_routes(Parsed(kAfterCut).j), Not(HasSubstr("elastic IPs")))
      << "nothing about EIPs when move_eip is off";
}

TEST(DrainWait, FinishedOnlyWhenDrainedAndNoRouteHere) {
  Parsed active(kAfterCut);
  EXPECT_EQ(tables_here(active.j), std::vector<std::string>{"rtb-a"});
  EXPECT_FALSE(drain_finished(active.j));
  // Drained by the handover deadline with a route still here (no peer took it): not done.
  Parsed stuck(R"({"ok": true, "node": {"state": "drained", "drained": true, "tables": [
    {"id": "rtb-a", "routes": [{"destination": "0.0.0.0/0", "here": true}]},
    {"id": "rtb-b", "routes": [{"destination": "0.0.0.0/0", "here": false}]}]}})");
  EXPECT_EQ(tables_here(stuck.j), std::vector<std::string>{"rtb-a"});
  EXPECT_FALSE(drain_finished(stuck.j));
  // Routes gone but the handover not finished yet (a write in flight): not done.
  Parsed draining(R"({"ok": true, "node": {"state": "draining", "tables": []}})");
  EXPECT_FALSE(drain_finished(draining.j));
  Parsed done(R"({"ok": true, "node": {"state": "drained", "drained": true, "tables": [
    {"id": "rtb-a", "routes": [{"destination": "0.0.0.0/0", "here": false}]}]}})");
  EXPECT_TRUE(drain_finished(done.j));
  EXPECT_TRUE(tables_here(done.j).empty());
  // Routes gone, but connections kept through the handover still pass through here.
  Parsed keeping(R"({"ok": true, "node": {"state": "drained", "drained": true, "tables": [],
    "handover": {"draining": true, "flows_left": 3}}})");
  EXPECT_FALSE(drain_finished(keeping.j));
  Parsed kept(R"({"ok": true, "node": {"state": "drained", "drained": true, "tables": [],
    "handover": {"draining": false, "flows_left": 0}}})");
  EXPECT_TRUE(drain_finished(kept.j));
  // A daemon still starting (no engine yet) has not drained anything.
  Parsed starting(R"({"ok": true, "node": {"phase": "identity"}})");
  EXPECT_FALSE(drain_finished(starting.j));
  Parsed no_node(R"({"ok": true})");
  EXPECT_FALSE(drain_finished(no_node.j));
}

TEST(StatusText, DrainMarkStartedDrainedOrFailing) {
  Parsed started(R"({"ok": true, "drain_mark": {"path": "/var/lib/hanat/drained",
    "started_drained": true}})");
  EXPECT_THAT(format_status(started.j),
              HasSubstr("drain mark:  /var/lib/hanat/drained: started drained (hanatctl undrain "
                        "removes it)\n"));
  Parsed failing(R"({"ok": true, "drain_mark": {"path": "/x/drained", "started_drained": false,
    "error": "cannot create directory /x: Permission denied"}})");
  std::string t = format_status(failing.j);
  EXPECT_THAT(t, HasSubstr("drain mark:  FAILING: cannot create directory /x: Permission denied"));
  EXPECT_THAT(t, Not(HasSubstr("started drained")));
  Parsed quiet(R"({"ok": true, "drain_mark": {"path": "/x/drained", "started_drained": false}})");
  EXPECT_THAT(format_status(quiet.j), Not(HasSubstr("drain mark")));
}

TEST(StatusText, Iso8601Milliseconds) {
  EXPECT_EQ(iso8601_ms(0), "1970-01-01T00:00:00.000Z");
  EXPECT_EQ(iso8601_ms(1796256063123), "2026-12-03T00:01:03.123Z");
}

}  // namespace
}  // namespace hanat::status
