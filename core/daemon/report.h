// SPDX-License-Identifier: GPL-2.0-or-later
#pragma once
// A plain snapshot of what the daemon knows, for the Prometheus metrics: the daemon and its
// node fill it in (Daemon::report), and metric_families() turns it into metric families
// without touching the loop, the engine or a clock — so the mapping is unit-tested on a
// hand-built Report. Times are wall-clock (unix milliseconds) because Prometheus
// timestamps and node_exporter's consumers are wall-clock; durations are milliseconds.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "core/metrics/histogram.h"
#include "core/metrics/prometheus.h"

namespace hanat::daemon {

// Histogram bounds in seconds. Failover: detection to the route write acknowledged, at
// the defaults about 0.6 s of detection plus one EC2 round trip; the fast profile aims at
// 350 ms, a throttled or retried write takes seconds. EC2: one HTTP attempt, tens of ms
// in region, up to the attempt timeout. Probe RTT: tens of µs on a lab veth, sub-ms within
// a zone, a few ms across zones, up to the probe timeout.
inline const std::vector<double> kFailoverBuckets{0.1, 0.2, 0.35, 0.5, 0.75, 1,
                                                  1.5, 2.5, 5,    10,  30,   60};
inline const std::vector<double> kEc2LatencyBuckets{0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                                    0.5,   1,    2.5,   5,    10};
inline const std::vector<double> kProbeRttBuckets{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                                  0.01,   0.025,   0.05,   0.1,   0.25};

struct Report {
  // The daemon.
  std::string version;
  std::string group;
  std::int64_t started_unix_ms = 0;
  std::uint64_t generation = 1;
  std::int64_t config_loaded_unix_ms = 0;
  bool reload_attempted = false;
  bool reload_ok = true;
  std::int64_t reload_unix_ms = 0;  // valid when reload_attempted

  // The node.
  std::string phase;                // "identity" ... "running", "stopped"
  std::vector<std::string> phases;  // every phase name, for a complete state set
  std::string state;                // engine state; empty before the engine runs
  std::vector<std::string> states;  // every engine state name
  std::int64_t state_since_unix_ms = 0;
  bool drained = false;
  bool nat_ok = false;
  std::string egress;   // "up", "down", "unknown"
  std::string forward;  // the forward-path check: "up", "down", "unknown", "off"
  std::uint64_t forward_in_packets = 0;
  std::uint64_t forward_out_packets = 0;
  std::string instance_id;
  std::string zone;
  // How late the last probe sends left against their schedule, by statistic ("p50", "p99",
  // "max"); empty before the first send.
  std::map<std::string, std::int64_t> probe_send_delay_us;

  struct Member {
    std::string instance_id;
    std::string zone;
    bool self = false;
    std::string health;  // "up", "down", "unknown"
    std::int64_t since_unix_ms = 0;
    std::map<std::string, std::int64_t> rtt_us;  // probe kind -> last RTT
    // Peers probed on two paths: path ("private", "public") -> "up", "down", "unknown".
    std::map<std::string, std::string> paths;
  };
  std::vector<Member> members;

  struct Table {
    std::string id;
    std::string zone;
    std::string allocated;      // target text ("eni-..", "nat-..", "missing")
    bool on_allocated = false;  // every managed route points at the allocated target
    std::uint64_t writes = 0;
    std::int64_t hold_down_ms = 0;  // remaining; 0 when none
    std::optional<std::int64_t> last_write_unix_ms;
    std::string last_write_outcome;    // "ok" or the EC2 error code
    std::uint64_t foreign_routes = 0;  // managed routes pointing outside the group
  };
  std::vector<Table> tables;

  // Counters since the daemon started.
  std::uint64_t failovers = 0;
  std::uint64_t route_writes = 0;
  std::uint64_t throttles = 0;
  // AssociateAddress calls of the Elastic IP move by result ("ok" or the EC2 error code).
  std::map<std::string, std::uint64_t> eip_moves;
  std::uint64_t drift_repairs = 0;              // NAT table, sysctls and source/destination check
  std::uint64_t source_dest_check_repairs = 0;  // the check found on and turned off again
  std::uint64_t nat_applies = 0;
  std::uint64_t unnatted_flows_purged = 0;    // conntrack entries forwarded without NAT, deleted
  std::uint64_t unnatted_packets_leaked = 0;  // packets that left un-NATed (forward check)
  std::map<std::pair<std::string, std::string>, std::uint64_t> ec2_calls;  // (action, outcome)
  // failover.floating_eni ("" when none): attached here, failed EC2 steps (read, attach,
  // detach; a wrong zone counts once per look), force-detaches from a dead holder.
  std::string floating_eni;
  bool floating_eni_attached = false;
  std::uint64_t floating_eni_failures = 0;
  std::uint64_t floating_eni_force_detaches = 0;

  // [hooks] runs by outcome (ok, failed, timeout, dropped, spawn_error).
  std::map<std::string, std::uint64_t> hook_runs;

  // The connection-keeping handover's taking side: flows held per sending member (the
  // channel's table), flows in each member's steering set, and the channel's refusals by
  // reason (address: not a member; hello: group, member, version or key; bounds).
  std::map<std::string, std::uint64_t> handover_flows_held;
  std::map<std::string, std::uint64_t> handover_flows_steered;
  std::map<std::string, std::uint64_t> handover_channel_rejects;

  // Stateful failover's replication, sending side: events sent per target member (since
  // the daemon started, also of former targets), events dropped over a target's bound, and
  // full resyncs sent.
  std::map<std::string, std::uint64_t> replication_events_sent;
  std::map<std::string, std::uint64_t> replication_bytes_sent;
  std::uint64_t replication_drops = 0;
  std::uint64_t replication_resyncs = 0;
  // Stateful failover's taking side (replica_store.h, takeover.h): flows held per origin
  // member, new ones refused because the store was full, and the flows of dead members
  // installed here by outcome (installed, collided, failed, unroutable).
  std::map<std::string, std::uint64_t> replica_flows;
  std::uint64_t replica_refused = 0;
  std::map<std::string, std::uint64_t> takeover_flows;

  // Histograms since the daemon started.
  metrics::Histogram failover_seconds{kFailoverBuckets};
  std::map<std::string, metrics::Histogram> ec2_latency;  // action -> per-attempt latency
  std::map<std::string, metrics::Histogram> probe_rtt;    // probe kind -> RTT of answered probes
  // (peer instance id, probe kind, failure: timeout, refused, unreachable, agent-down, error)
  std::map<std::tuple<std::string, std::string, std::string>, std::uint64_t> probe_failures;
};

// The metric families for `r`, named hanat_*, counters ending in _total, times in seconds.
// Always a valid input for metrics::format() (label values are escaped there).
[[nodiscard]] std::vector<metrics::Family> metric_families(const Report& r);

}  // namespace hanat::daemon
