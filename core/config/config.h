// SPDX-License-Identifier: GPL-2.0-or-later
#pragma once
// DOC: core/config reads hanat's TOML configuration into a plain Config struct. Parsing
// validates every field completely and collects every error, each naming file, line,
// column and key; unknown keys get a "did you mean" suggestion. A Config that parse()
// returns is valid: the daemon swaps it in whole or not at all (a bad reload keeps the
// old config running). Defaults follow DESIGN.md "Defaults and targets".

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/base/probe_kind.h"
#include "core/base/result.h"

namespace hanat::config {

using std::chrono::milliseconds;

enum class Discovery : std::uint8_t { Tags, Explicit };
using core::ProbeKind;  // core/base: config, probes and engine name the same three
using core::ProbePath;
enum class CredentialsSource : std::uint8_t { InstanceRole, Environment, Static };
enum class RecoveryAction : std::uint8_t { None, Reboot, StopStart, Terminate };
enum class LogLevel : std::uint8_t { Debug, Info, Notice, Warning, Error };

struct Cidr {
  std::uint32_t address = 0;  // host byte order
  int prefix = 0;
  std::string text;  // as written, normalised ("10.0.0.0/16")
  friend bool operator==(const Cidr&, const Cidr&) = default;
};

// An "address:port" or bare address target of the egress self-check.
struct EgressTarget {
  std::string address;     // numeric IPv4
  std::uint16_t port = 0;  // 0: ICMP echo, else TCP connect
  friend bool operator==(const EgressTarget&, const EgressTarget&) = default;
};

struct GroupConfig {
  std::string name;
  Discovery discovery = Discovery::Tags;
  std::vector<std::string> members;       // instance ids (explicit discovery)
  std::vector<std::string> route_tables;  // rtb ids (explicit discovery)
  std::vector<Cidr> destinations;         // managed destination CIDRs per table
  // Members are re-read this often (DESIGN rule 9: instances join and leave while hanatd
  // runs), and at once when a managed route points at an instance or ENI not yet known.
  milliseconds refresh_interval{30000};
  friend bool operator==(const GroupConfig&, const GroupConfig&) = default;
};

struct ProbeConfig {
  milliseconds interval{200};
  milliseconds timeout{200};
  int rise = 5;
  int fall = 3;
  std::vector<ProbeKind> kinds{ProbeKind::Icmp, ProbeKind::Agent};
  std::uint16_t tcp_port = 22;  // for the "tcp" kind
  // Paths a peer is probed on. "public" applies to peers that have a public IP or an
  // Elastic IP (DescribeInstances): such a peer is DOWN only when silent on both paths.
  std::vector<ProbePath> paths{ProbePath::Private, ProbePath::Public};
  friend bool operator==(const ProbeConfig&, const ProbeConfig&) = default;
};

struct AgentConfig {
  // Empty: this instance's private IPv4 address, read from instance metadata. Peers probe
  // that address only, and a wildcard listener would also answer on the public side.
  std::string listen_address;
  std::uint16_t port = 4790;
  friend bool operator==(const AgentConfig&, const AgentConfig&) = default;
};

struct EgressConfig {
  std::vector<EgressTarget> targets;  // empty: the egress self-check is off
  std::string interface;              // empty: nat.egress_interface
  int required = 1;                   // k of n targets that must answer
  milliseconds interval{1000};
  milliseconds timeout{1000};
  friend bool operator==(const EgressConfig&, const EgressConfig&) = default;
};

// The forward-path check (core/engine/forward_watch.h).
struct ForwardConfig {
  bool check = true;
  milliseconds interval{200};
  int min_packets = 10;
  int fall = 3;
  int rise = 3;
  milliseconds recheck{60000};
  friend bool operator==(const ForwardConfig&, const ForwardConfig&) = default;
};

struct NatConfig {
  std::string table = "hanat";
  // Empty: the interface of this host's IPv4 default route (apply_host_defaults).
  std::string egress_interface;
  bool egress_interface_from_route = false;  // apply_host_defaults chose it
  std::vector<Cidr> source_cidrs;  // empty: masquerade everything leaving egress_interface
  bool fully_random = false;
  bool persistent = false;
  bool remove_on_exit = false;  // default: rules stay so traffic survives a restart
  milliseconds drift_check_interval{5000};
  std::optional<std::int64_t> conntrack_max;
  std::optional<milliseconds> tcp_established_timeout;
  std::optional<milliseconds> udp_timeout;
  friend bool operator==(const NatConfig&, const NatConfig&) = default;
};

// One EC2 API token bucket ([ec2] rate_limits): size and refill per second.
struct RateLimit {
  double burst = 0;
  double refill_per_s = 0;
  friend bool operator==(const RateLimit&, const RateLimit&) = default;
};

struct Ec2Config {
  std::string region;    // empty: from instance metadata
  std::string endpoint;  // empty: https://ec2.<region>.amazonaws.com
  // Auto Scaling API (CompleteLifecycleAction); empty: https://autoscaling.<region>.amazonaws.com
  std::string autoscaling_endpoint;
  std::string metadata_endpoint = "http://169.254.169.254";
  bool allow_imdsv1 = false;
  CredentialsSource credentials = CredentialsSource::InstanceRole;
  std::string access_key_id;      // static only
  std::string secret_access_key;  // static only
  std::string session_token;      // static only, optional
  milliseconds connect_timeout{1000};
  milliseconds request_timeout{3000};
  milliseconds route_refresh_interval{15000};
  // How often instance metadata is asked for a spot interruption notice and the Auto
  // Scaling target lifecycle state.
  milliseconds notice_interval{5000};
  // EC2 action ("ReplaceRoute") or category ("mutating", "non_mutating",
  // "unfiltered_describe") -> its bucket; the rest keep EC2's documented defaults.
  std::map<std::string, RateLimit> rate_limits;
  friend bool operator==(const Ec2Config&, const Ec2Config&) = default;
};

struct FailoverConfig {
  bool preempt = true;
  milliseconds failback_delay{30000};
  milliseconds hold_down{10000};
  milliseconds hold_down_max{300000};
  std::string fallback_target;  // nat-… (empty: none)
  bool move_eip = false;
  // Stateful failover (DESIGN.md "Connection survival"): replicate this member's conntrack
  // entries to the members that would take its tables, and install a dead member's entries
  // before taking its tables. Needs move_eip: the flows continue only with the same public
  // address.
  bool stateful = false;
  // Availability zone -> Elastic IP allocation (eipalloc-…) that zone's traffic leaves with.
  // Empty with move_eip: the allocations tagged hanat:group = group.name, each naming its
  // zone in a hanat:zone tag.
  std::map<std::string, std::string> eips;
  std::string floating_eni;  // eni-… (empty: none)
  // How long the floating ENI's holder, a member, must be DOWN (silent on every probe)
  // before it is force-detached from it (a stopped instance is detached at once).
  milliseconds floating_eni_takeover_after{10000};
  RecoveryAction recovery_action = RecoveryAction::None;
  milliseconds recovery_after{60000};
  milliseconds recovery_cooldown{600000};
  milliseconds handover_timeout{10000};
  friend bool operator==(const FailoverConfig&, const FailoverConfig&) = default;
};

struct StatusConfig {
  std::string socket = "/run/hanat/hanatd.sock";
  std::uint32_t mode = 0660;
  std::string group;  // empty: the daemon's own group
  int max_clients = 64;
  std::size_t max_request_bytes = 64 * 1024;
  milliseconds idle_timeout{10000};
  // Files kept across restarts (the drain mark): core/daemon/state_dir.h.
  std::string state_directory = "/var/lib/hanat";
  friend bool operator==(const StatusConfig&, const StatusConfig&) = default;
};

struct LogConfig {
  LogLevel level = LogLevel::Info;
  std::vector<std::string> debug;  // components with debug output on
  friend bool operator==(const LogConfig&, const LogConfig&) = default;
};

struct MetricsConfig {
  std::string textfile;  // empty: off
  milliseconds interval{5000};
  friend bool operator==(const MetricsConfig&, const MetricsConfig&) = default;
};

// [hooks]: commands run on transitions, for keepalived notify_* users (core/daemon/hooks.h).
struct HooksConfig {
  // argv of the command run on every transition: an absolute path to an executable, then
  // its arguments; empty: no hook. The transition is in the environment (HANAT_*).
  std::vector<std::string> on_transition;
  milliseconds timeout{10000};  // then SIGKILL
  int max_in_flight = 4;        // further transitions are dropped (counted, WARNING)
  friend bool operator==(const HooksConfig&, const HooksConfig&) = default;
};

// [handover]: the connection-keeping handover's flow transfer (DESIGN.md, "Connection
// survival"; core/handover/channel.h).
struct HandoverConfig {
  // How long a leaving member keeps translating (and announcing) the flows it handed over.
  // 0: it keeps none, and a planned handover resets the connections as before.
  milliseconds flow_drain{300000};
  // Flows one taker holds per sending member; more are refused (and reset, as without the
  // channel).
  int max_flows = 100000;
  // A file holding the group's pre-shared key (HMAC-SHA256 over every frame); empty: none.
  std::string psk_file;
  // The member channel's TCP port, on the agent's listen address; 0: agent.port + 1 (and a
  // free port when agent.port is 0 too, in tests). See effective_channel_port().
  std::uint16_t channel_port = 0;
  friend bool operator==(const HandoverConfig&, const HandoverConfig&) = default;
};

struct Config {
  GroupConfig group;
  ProbeConfig probe;
  AgentConfig agent;
  EgressConfig egress;
  ForwardConfig forward;
  NatConfig nat;
  Ec2Config ec2;
  FailoverConfig failover;
  StatusConfig status;
  LogConfig log;
  MetricsConfig metrics;
  HooksConfig hooks;
  HandoverConfig handover;
  friend bool operator==(const Config&, const Config&) = default;
};

// The port the member channel listens on: handover.channel_port, or agent.port + 1 when it
// is 0 (0 when agent.port is 0: a free port, in tests).
[[nodiscard]] inline std::uint16_t effective_channel_port(const Config& c) {
  if (c.handover.channel_port != 0) return c.handover.channel_port;
  if (c.agent.port == 0 || c.agent.port == 65535) return 0;
  return static_cast<std::uint16_t>(c.agent.port + 1);
}

struct Error {
  std::string file;
  int line = 0;
  int column = 0;
  std::string key;  // dotted, e.g. "probe.interval"; empty for syntax errors
  std::string message;
  // "file:line:column: key: message"
  [[nodiscard]] std::string to_string() const;
};

using Errors = std::vector<Error>;

// Parses and validates TOML text; `file` names it in errors.
core::Result<Config, Errors> parse(std::string_view text, const std::string& file);
// Reads and parses a file; an unreadable file is one error naming it.
core::Result<Config, Errors> load(const std::string& path);

// The keys whose change between `running` and `next` a reload cannot apply (they need a
// restart), dotted ("status.socket"), in file order. A reload that changes any of them is
// refused whole: nothing of the new file is applied (DESIGN "Reload": all or nothing).
std::vector<std::string> restart_keys(const Config& running, const Config& next);

// Checks of a valid config against this host, one message each ("key: why"):
// interfaces it names that do not exist here (nat.egress_interface, egress.interface) —
// an error for a daemon that would run with it, a warning for --check-config, whose file
// may be meant for another machine.
std::vector<std::string> missing_interfaces(const Config& c);

// The interface of the IPv4 default route in the text of /proc/net/route (the kernel's
// FIB dump: hex destination and mask, RTF_UP in Flags), the one with the lowest metric
// when there are several; or why there is none.
[[nodiscard]] core::Result<std::string, std::string> default_route_interface(
    std::string_view proc_net_route);

// Fills in what the file leaves to the host: an empty nat.egress_interface becomes the
// default route's interface, read from `proc_net_route` (/proc/net/route is that of the
// reader's network namespace). On an EC2 NAT instance that is the primary ENI, the one the
// VPC's internet gateway route reaches (ens5, eth0 ... depending on the AMI). Returns a
// line saying what was chosen ("" when the file named everything), or why nothing could be.
[[nodiscard]] core::Result<std::string, std::string> apply_host_defaults(
    Config& c, const std::string& proc_net_route = "/proc/net/route");
// Static EC2 keys in a file that users other than its owner can read: a warning.
std::optional<std::string> readable_secrets(const Config& c, const std::string& path);

// nftables table names that other tools own: iptables-nft keeps its tables under these
// names in the ip family, and hanat replaces its own table whole on every repair.
bool is_reserved_table(std::string_view name);

// Helpers shared with other modules' input validation.
std::optional<milliseconds> parse_duration(std::string_view s);
std::optional<Cidr> parse_cidr(std::string_view s, std::string* why = nullptr);
// True for "<prefix>-" followed by 8 or 17 lowercase hex digits, EC2's id shapes.
bool is_ec2_id(std::string_view s, std::string_view prefix);
std::string format_duration(milliseconds d);

using core::to_string;
const char* to_string(LogLevel l);
const char* to_string(Discovery d);
const char* to_string(CredentialsSource c);
const char* to_string(RecoveryAction a);

}  // namespace hanat::config
