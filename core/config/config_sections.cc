// SPDX-License-Identifier: GPL-2.0-or-later
// The [section] tables of hanat's TOML, field by field: names, types, ranges, and the
// per-value checks. Cross-field rules are in config_rules.cc.

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "core/config/config_sections.h"
#include "ec2/pacing.h"  // the EC2 actions rate_limits may name (header only)

namespace hanat::config::detail {
namespace {

// "50/5", "100/0.5": burst (whole tokens, >= 1) and refill per second (> 0).
bool parse_rate_limit(std::string_view s, RateLimit& out) {
  const size_t slash = s.find('/');
  if (slash == std::string_view::npos) return false;
  const std::string b(s.substr(0, slash));
  const std::string f(s.substr(slash + 1));
  char* end = nullptr;
  const double burst = std::strtod(b.c_str(), &end);
  if (b.empty() || *end != '\0' || !(burst >= 1) || burst > 1e6 || burst != std::floor(burst))
    return false;
  const double refill = std::strtod(f.c_str(), &end);
  if (f.empty() || *end != '\0' || !(refill > 0) || refill > 1e6) return false;
  out = RateLimit{burst, refill};
  return true;
}

}  // namespace

void read_sections(Reader& r, const toml::table& root, Config& c) {
  using std::chrono::hours;
  using std::chrono::minutes;
  using std::chrono::seconds;

  static const std::vector<std::string_view> kSections = {
      "group",    "probe",  "agent", "egress",  "forward", "nat",     "ec2",
      "failover", "status", "log",   "metrics", "hooks",   "handover"};
  for (const auto& [k, v] : root) {
    if (std::find(kSections.begin(), kSections.end(), k.str()) == kSections.end()) {
      r.error(k.source(), std::string(k.str()), "unknown section" + suggestion(k.str(), kSections));
    }
  }

  auto nonempty = [](std::string_view s) -> std::string {
    return s.empty() ? "must not be empty" : "";
  };
  auto interface_check = [](std::string_view s) -> std::string {
    return is_interface_name(s) ? ""
                                : "\"" + std::string(s) +
                                      "\" is not a valid interface name (1-15 characters, no "
                                      "'/', ':' or spaces)";
  };

  r.section(
      root, "group",
      {r.str("name", c.group.name,
             [](std::string_view s) -> std::string {
               if (s.empty() || s.size() > 255)
                 return "must be 1-255 characters (it is the value of the hanat:group tag)";
               return "";
             }),
       r.enumeration<Discovery>("discovery", c.group.discovery,
                                {{"tags", Discovery::Tags}, {"explicit", Discovery::Explicit}}),
       r.list<std::string>("members", c.group.members,
                           [](std::string_view s, std::string& out) {
                             out = s;
                             return check_id(s, "i");
                           }),
       r.list<std::string>("route_tables", c.group.route_tables,
                           [](std::string_view s, std::string& out) {
                             out = s;
                             return check_id(s, "rtb");
                           }),
       r.list<Cidr>("destinations", c.group.destinations, convert_cidr),
       r.duration("refresh_interval", c.group.refresh_interval, seconds(1), hours(1))});

  r.section(root, "probe",
            {r.duration("interval", c.probe.interval, milliseconds(10), seconds(60)),
             r.duration("timeout", c.probe.timeout, milliseconds(10), seconds(60)),
             r.integer("rise", c.probe.rise, 1, 100), r.integer("fall", c.probe.fall, 1, 100),
             r.list<ProbeKind>("kinds", c.probe.kinds,
                               [](std::string_view s, ProbeKind& out) -> std::string {
                                 if (s == "icmp")
                                   out = ProbeKind::Icmp;
                                 else if (s == "tcp")
                                   out = ProbeKind::Tcp;
                                 else if (s == "agent")
                                   out = ProbeKind::Agent;
                                 else
                                   return "\"" + std::string(s) +
                                          "\" is not a probe kind (\"icmp\", \"tcp\", \"agent\")" +
                                          suggestion(s, {"icmp", "tcp", "agent"});
                                 return "";
                               }),
             r.integer("tcp_port", c.probe.tcp_port, 1, 65535),
             r.list<ProbePath>("paths", c.probe.paths,
                               [](std::string_view s, ProbePath& out) -> std::string {
                                 if (s == "private")
                                   out = ProbePath::Private;
                                 else if (s == "public")
                                   out = ProbePath::Public;
                                 else
                                   return "\"" + std::string(s) +
                                          "\" is not a probe path (\"private\", \"public\")" +
                                          suggestion(s, {"private", "public"});
                                 return "";
                               })});

  r.section(root, "agent",
            {r.str("listen_address", c.agent.listen_address,
                   [](std::string_view s) -> std::string {
                     return s.empty() || is_ipv4(s)
                                ? ""
                                : "\"" + std::string(s) + "\" is not an IPv4 address";
                   }),
             // 0 picks a free port: only useful in tests, peers must know the port.
             r.integer("port", c.agent.port, 0, 65535)});

  r.section(
      root, "egress",
      {r.list<EgressTarget>(
           "targets", c.egress.targets,
           [](std::string_view s, EgressTarget& out) -> std::string {
             size_t colon = s.find(':');
             std::string_view addr = s.substr(0, colon);
             if (!is_ipv4(addr))
               return "\"" + std::string(s) +
                      "\" is not a target (expected a numeric IPv4 address, with \":port\" for "
                      "a TCP check)";
             out.address = addr;
             if (colon != std::string_view::npos) {
               std::string_view p = s.substr(colon + 1);
               int port = 0;
               for (char ch : p) {
                 if (!std::isdigit(static_cast<unsigned char>(ch)) || port > 65535) {
                   port = -1;
                   break;
                 }
                 port = port * 10 + (ch - '0');
               }
               if (p.empty() || port < 1 || port > 65535)
                 return "\"" + std::string(s) + "\" has a bad port (1-65535)";
               out.port = static_cast<std::uint16_t>(port);
             }
             return "";
           }),
       r.str("interface", c.egress.interface,
             [&](std::string_view s) { return s.empty() ? "" : interface_check(s); }),
       r.integer("required", c.egress.required, 1, 64),
       r.duration("interval", c.egress.interval, milliseconds(100), minutes(10)),
       r.duration("timeout", c.egress.timeout, milliseconds(10), seconds(60))});

  r.section(root, "forward",
            {r.boolean("check", c.forward.check),
             r.duration("interval", c.forward.interval, milliseconds(10), minutes(1)),
             r.integer("min_packets", c.forward.min_packets, 1, 1000000),
             r.integer("fall", c.forward.fall, 1, 100), r.integer("rise", c.forward.rise, 1, 100),
             r.duration("recheck", c.forward.recheck, seconds(1), hours(1))});

  r.section(
      root, "nat",
      {r.str("table", c.nat.table,
             [](std::string_view s) -> std::string {
               bool ok =
                   !s.empty() && s.size() <= 64 && std::isalpha(static_cast<unsigned char>(s[0])) &&
                   std::all_of(s.begin(), s.end(), [](char ch) {
                     return std::isalnum(static_cast<unsigned char>(ch)) || ch == '_' || ch == '-';
                   });
               if (!ok) return "\"" + std::string(s) + "\" is not a valid nftables table name";
               if (is_reserved_table(s))
                 return "\"" + std::string(s) +
                        "\" is a table of iptables-nft (filter, nat, mangle, raw, security): "
                        "hanat replaces its table whole on every repair, choose another name";
               return "";
             }),
       r.str("egress_interface", c.nat.egress_interface, interface_check),
       r.list<Cidr>("source_cidrs", c.nat.source_cidrs, convert_cidr),
       r.boolean("fully_random", c.nat.fully_random), r.boolean("persistent", c.nat.persistent),
       r.boolean("remove_on_exit", c.nat.remove_on_exit),
       r.duration("drift_check_interval", c.nat.drift_check_interval, milliseconds(100), hours(1)),
       r.opt_integer("conntrack_max", c.nat.conntrack_max, 1024, 1LL << 30),
       r.opt_duration("tcp_established_timeout", c.nat.tcp_established_timeout, seconds(1),
                      hours(24 * 5)),
       r.opt_duration("udp_timeout", c.nat.udp_timeout, seconds(1), hours(1))});

  auto url_check = [](std::string_view s) -> std::string {
    if (s.empty()) return "";
    if (s.rfind("https://", 0) == 0 || s.rfind("http://", 0) == 0) return "";
    return "\"" + std::string(s) + "\" is not an http:// or https:// URL";
  };
  r.section(
      root, "ec2",
      {r.str("region", c.ec2.region,
             [](std::string_view s) -> std::string {
               return s.empty() || is_region(s)
                          ? ""
                          : "\"" + std::string(s) + "\" is not an AWS region (e.g. \"eu-west-1\")";
             }),
       r.str("endpoint", c.ec2.endpoint, url_check),
       r.str("autoscaling_endpoint", c.ec2.autoscaling_endpoint, url_check),
       r.str("metadata_endpoint", c.ec2.metadata_endpoint,
             [&](std::string_view s) { return s.empty() ? "must not be empty" : url_check(s); }),
       r.boolean("allow_imdsv1", c.ec2.allow_imdsv1),
       r.enumeration<CredentialsSource>("credentials", c.ec2.credentials,
                                        {{"instance-role", CredentialsSource::InstanceRole},
                                         {"environment", CredentialsSource::Environment},
                                         {"static", CredentialsSource::Static}}),
       r.str("access_key_id", c.ec2.access_key_id, nonempty),
       r.str("secret_access_key", c.ec2.secret_access_key, nonempty),
       r.str("session_token", c.ec2.session_token),
       r.duration("connect_timeout", c.ec2.connect_timeout, milliseconds(50), seconds(60)),
       r.duration("request_timeout", c.ec2.request_timeout, milliseconds(100), minutes(5)),
       r.duration("route_refresh_interval", c.ec2.route_refresh_interval, seconds(1), hours(1)),
       r.duration("notice_interval", c.ec2.notice_interval, seconds(1), minutes(1)),
       Field{"rate_limits", [&r, &c](const Node& n, const std::string& key) {
               const toml::table* t = n.as_table();
               if (t == nullptr) {
                 return r.error(n, key,
                                "expected a table of \"burst/refill\" strings, e.g. "
                                "{ ReplaceRoute = \"100/10\" }");
               }
               c.ec2.rate_limits.clear();
               for (const auto& [k, v] : *t) {
                 const std::string ekey = key + "." + std::string(k.str());
                 if (!ec2::is_rate_limit_key(k.str())) {
                   r.error(k.source(), ekey, "is " + ec2::rate_limit_keys_hint());
                   continue;
                 }
                 const auto* str = v.as_string();
                 RateLimit lim;
                 if (str == nullptr || !parse_rate_limit(str->get(), lim)) {
                   r.error(v, ekey,
                           "expected \"burst/refill\" with burst >= 1 tokens and refill > 0 "
                           "per second, e.g. \"50/5\"");
                   continue;
                 }
                 c.ec2.rate_limits[std::string(k.str())] = lim;
               }
             }}});

  r.section(root, "failover",
            {r.boolean("preempt", c.failover.preempt),
             r.duration("failback_delay", c.failover.failback_delay, milliseconds(0), hours(24)),
             r.duration("hold_down", c.failover.hold_down, milliseconds(100), hours(1)),
             r.duration("hold_down_max", c.failover.hold_down_max, milliseconds(100), hours(24)),
             r.str("fallback_target", c.failover.fallback_target,
                   [](std::string_view s) { return s.empty() ? "" : check_id(s, "nat"); }),
             r.boolean("move_eip", c.failover.move_eip), r.boolean("stateful", c.failover.stateful),
             Field{"eips",
                   [&r, &c](const Node& n, const std::string& key) {
                     const toml::table* t = n.as_table();
                     if (t == nullptr) {
                       return r.error(n, key,
                                      "expected a table of zone = \"eipalloc-...\", e.g. "
                                      "{ \"eu-west-1a\" = \"eipalloc-0123456789abcdef0\" }");
                     }
                     c.failover.eips.clear();
                     for (const auto& [k, v] : *t) {
                       const std::string ekey = key + "." + std::string(k.str());
                       const auto* str = v.as_string();
                       std::string bad = str == nullptr ? "expected an \"eipalloc-...\" string"
                                                        : check_id(str->get(), "eipalloc");
                       if (k.str().empty()) bad = "the zone name is empty";
                       if (!bad.empty()) {
                         r.error(v, ekey, bad);
                         continue;
                       }
                       c.failover.eips[std::string(k.str())] = str->get();
                     }
                   }},
             r.str("floating_eni", c.failover.floating_eni,
                   [](std::string_view s) { return s.empty() ? "" : check_id(s, "eni"); }),
             r.duration("floating_eni_takeover_after", c.failover.floating_eni_takeover_after,
                        milliseconds(0), hours(1)),
             r.enumeration<RecoveryAction>("recovery_action", c.failover.recovery_action,
                                           {{"none", RecoveryAction::None},
                                            {"reboot", RecoveryAction::Reboot},
                                            {"stop-start", RecoveryAction::StopStart},
                                            {"terminate", RecoveryAction::Terminate}}),
             r.duration("recovery_after", c.failover.recovery_after, seconds(1), hours(24)),
             r.duration("recovery_cooldown", c.failover.recovery_cooldown, seconds(1), hours(24)),
             r.duration("handover_timeout", c.failover.handover_timeout, milliseconds(100),
                        minutes(10))});

  std::string mode_error;
  r.section(
      root, "status",
      {r.str("socket", c.status.socket,
             [](std::string_view s) -> std::string {
               if (s.empty() || s[0] != '/') return "must be an absolute path";
               // sockaddr_un.sun_path is 108 bytes including the NUL.
               if (s.size() > 107) return "is longer than 107 bytes (unix socket limit)";
               return "";
             }),
       Field{"mode",
             [&](const Node& n, const std::string& key) {
               std::int64_t v = -1;
               if (const auto* i = n.as_integer()) {
                 v = i->get();
               } else if (const auto* s = n.as_string()) {
                 const std::string& t = s->get();
                 if (!t.empty() && t.size() <= 4 && std::all_of(t.begin(), t.end(), [](char ch) {
                       return ch >= '0' && ch <= '7';
                     }))
                   v = std::stoll(t, nullptr, 8);
               }
               if (v < 0 || v > 0777)
                 return r.error(n, key, "expected an octal mode such as \"0660\"");
               c.status.mode = static_cast<std::uint32_t>(v);
             }},
       r.str("group", c.status.group), r.integer("max_clients", c.status.max_clients, 1, 10000),
       r.integer("max_request_bytes", c.status.max_request_bytes, 64, 16 * 1024 * 1024),
       r.duration("idle_timeout", c.status.idle_timeout, milliseconds(100), hours(1)),
       r.str("state_directory", c.status.state_directory, [](std::string_view s) -> std::string {
         if (s.empty() || s[0] != '/') return "must be an absolute path";
         return "";
       })});

  static const std::vector<std::string_view> kComponents = {"engine",    "ec2",    "probes",
                                                            "netfilter", "status", "daemon"};
  r.section(root, "log",
            {r.enumeration<LogLevel>("level", c.log.level,
                                     {{"debug", LogLevel::Debug},
                                      {"info", LogLevel::Info},
                                      {"notice", LogLevel::Notice},
                                      {"warning", LogLevel::Warning},
                                      {"error", LogLevel::Error}}),
             r.list<std::string>(
                 "debug", c.log.debug, [](std::string_view s, std::string& out) -> std::string {
                   out = s;
                   if (std::find(kComponents.begin(), kComponents.end(), s) != kComponents.end())
                     return "";
                   return "\"" + std::string(s) +
                          "\" is not a component (engine, ec2, probes, "
                          "netfilter, status, daemon)" +
                          suggestion(s, kComponents);
                 })});

  r.section(root, "metrics",
            {r.str("textfile", c.metrics.textfile,
                   [](std::string_view s) -> std::string {
                     return s.empty() || s[0] == '/' ? "" : "must be an absolute path";
                   }),
             r.duration("interval", c.metrics.interval, seconds(1), hours(1))});

  // The command is checked here, so that --check-config and a reload refuse a hook that
  // cannot run rather than hanatd finding out at the first failover. An absolute path:
  // hanatd's environment under systemd has no useful PATH, and execvp's search would
  // make the command depend on it.
  r.section(root, "hooks",
            {r.list<std::string>(
                 "on_transition", c.hooks.on_transition,
                 [](std::string_view s, std::string& out) -> std::string {
                   out = s;
                   return s.empty() ? "must not be empty" : "";
                 },
                 false),
             r.duration("timeout", c.hooks.timeout, milliseconds(100), minutes(10)),
             r.integer("max_in_flight", c.hooks.max_in_flight, 1, 64)});

  // flow_drain is bounded by what any leave can wait for: the spot notice gives 2 minutes,
  // an Auto Scaling lifecycle hook at most 2 hours (its heartbeat timeout maximum, 7200 s).
  r.section(root, "handover",
            {r.duration("flow_drain", c.handover.flow_drain, milliseconds(0), hours(2)),
             r.integer("max_flows", c.handover.max_flows, 1, 4000000),
             r.str("psk_file", c.handover.psk_file,
                   [](std::string_view s) -> std::string {
                     return s.empty() || s[0] == '/' ? "" : "must be an absolute path";
                   }),
             // 0 picks a free port: only useful in tests, peers must know the port.
             r.integer("channel_port", c.handover.channel_port, 0, 65535)});
}

}  // namespace hanat::config::detail
