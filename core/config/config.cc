// SPDX-License-Identifier: GPL-2.0-or-later
#include "core/config/config.h"

#include <arpa/inet.h>
#include <net/if.h>
#include <sys/stat.h>

#include <toml++/toml.h>
#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <tuple>

#include "core/config/config_sections.h"

namespace hanat::config {

using detail::Reader;

std::string Error::to_string() const {
  std::ostringstream o;
  o << file << ':' << line << ':' << column << ": ";
  if (!key.empty()) o << key << ": ";
  o << message;
  return o.str();
}

constexpr std::int64_t kMaxDurationTermsMs = 100'000'000'000LL * 3'600'000;

std::optional<milliseconds> parse_duration(std::string_view s) {
  if (s.empty()) return std::nullopt;
  std::int64_t total = 0;
  size_t i = 0;
  while (i < s.size()) {
    size_t start = i;
    std::int64_t v = 0;
    while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) {
      v = v * 10 + (s[i] - '0');
      if (v > 100'000'000'000LL) return std::nullopt;
      ++i;
    }
    if (i == start) return std::nullopt;
    std::int64_t unit = 0;
    if (s.substr(i, 2) == "ms") {
      unit = 1;
      i += 2;
    } else if (i < s.size() && s[i] == 's') {
      unit = 1000;
      ++i;
    } else if (i < s.size() && s[i] == 'm') {
      unit = 60'000;
      ++i;
    } else if (i < s.size() && s[i] == 'h') {
      unit = 3'600'000;
      ++i;
    } else {
      return std::nullopt;
    }
    total += v * unit;
    // One term is at most 1e11 h = 3.6e17 ms; refusing a sum past that keeps the total far
    // from int64 overflow, which a long run of terms reached (found by tests/fuzz/fuzz_config).
    if (total > kMaxDurationTermsMs) return std::nullopt;
  }
  return milliseconds(total);
}

std::string format_duration(milliseconds d) {
  auto ms = d.count();
  if (ms != 0 && ms % 3'600'000 == 0) return std::to_string(ms / 3'600'000) + "h";
  if (ms != 0 && ms % 60'000 == 0) return std::to_string(ms / 60'000) + "m";
  if (ms != 0 && ms % 1000 == 0) return std::to_string(ms / 1000) + "s";
  return std::to_string(ms) + "ms";
}

std::optional<Cidr> parse_cidr(std::string_view s, std::string* why) {
  auto fail = [&](std::string msg) -> std::optional<Cidr> {
    if (why != nullptr) *why = std::move(msg);
    return std::nullopt;
  };
  size_t slash = s.find('/');
  if (slash == std::string_view::npos)
    return fail("\"" + std::string(s) + "\" is not a CIDR (expected a.b.c.d/n)");
  std::string addr(s.substr(0, slash));
  std::string_view len = s.substr(slash + 1);
  in_addr a{};
  if (inet_pton(AF_INET, addr.c_str(), &a) != 1)
    return fail("\"" + std::string(s) + "\" is not a CIDR: \"" + addr +
                "\" is not an IPv4 address");
  if (len.empty() || len.size() > 2 || !std::all_of(len.begin(), len.end(), [](char c) {
        return std::isdigit(static_cast<unsigned char>(c));
      }))
    return fail("\"" + std::string(s) + "\" is not a CIDR: bad prefix length");
  int prefix = std::stoi(std::string(len));
  if (prefix > 32) return fail("\"" + std::string(s) + "\" is not a CIDR: prefix length over 32");
  std::uint32_t host = ntohl(a.s_addr);
  std::uint32_t mask = prefix == 0 ? 0 : ~std::uint32_t{0} << (32 - prefix);
  if ((host & ~mask) != 0) {
    // EC2 rejects route destinations with host bits set (InvalidParameterValue); say
    // what was probably meant instead of letting the API refuse it at failover time.
    in_addr net{htonl(host & mask)};
    char buf[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &net, buf, sizeof(buf));
    return fail("\"" + std::string(s) + "\" has host bits set; did you mean \"" + std::string(buf) +
                "/" + std::to_string(prefix) + "\"?");
  }
  Cidr c;
  c.address = host;
  c.prefix = prefix;
  c.text = addr + "/" + std::to_string(prefix);
  return c;
}

bool is_ec2_id(std::string_view s, std::string_view prefix) {
  if (s.size() <= prefix.size() + 1 || s.substr(0, prefix.size()) != prefix ||
      s[prefix.size()] != '-')
    return false;
  std::string_view hex = s.substr(prefix.size() + 1);
  if (hex.size() != 8 && hex.size() != 17) return false;
  return std::all_of(hex.begin(), hex.end(), [](char c) {
    return std::isdigit(static_cast<unsigned char>(c)) || (c >= 'a' && c <= 'f');
  });
}

std::vector<std::string> missing_interfaces(const Config& c) {
  std::vector<std::string> out;
  auto need = [&](const std::string& name, const char* key) {
    if (name.empty() || if_nametoindex(name.c_str()) != 0) return;
    out.push_back(std::string(key) + ": interface \"" + name + "\" does not exist on this host");
  };
  need(c.nat.egress_interface, "nat.egress_interface");
  if (c.egress.interface != c.nat.egress_interface) need(c.egress.interface, "egress.interface");
  return out;
}

core::Result<std::string, std::string> default_route_interface(std::string_view text) {
  // Iface Destination Gateway Flags RefCnt Use Metric Mask MTU Window IRTT, tab-separated,
  // addresses as hex words in host byte order (net/ipv4/fib_trie.c, fib_route_seq_show).
  std::string best;
  long best_metric = 0;
  std::istringstream in{std::string(text)};
  std::string line;
  std::getline(in, line);  // the header
  while (std::getline(in, line)) {
    std::istringstream f(line);
    std::string iface, dest, gw, flags, refcnt, use, metric, mask;
    if (!(f >> iface >> dest >> gw >> flags >> refcnt >> use >> metric >> mask)) continue;
    char* end = nullptr;
    const unsigned long fl = std::strtoul(flags.c_str(), &end, 16);
    if ((fl & 0x1) == 0) continue;  // RTF_UP
    if (std::strtoul(dest.c_str(), nullptr, 16) != 0 ||
        std::strtoul(mask.c_str(), nullptr, 16) != 0)
      continue;
    const long m = std::strtol(metric.c_str(), nullptr, 10);
    if (best.empty() || m < best_metric) {
      best = iface;
      best_metric = m;
    }
  }
  if (best.empty()) return core::Unexpected(std::string("no IPv4 default route"));
  return best;
}

core::Result<std::string, std::string> apply_host_defaults(Config& c,
                                                           const std::string& proc_net_route) {
  if (!c.nat.egress_interface.empty()) return std::string();
  std::ifstream in(proc_net_route);
  if (!in) {
    return core::Unexpected("nat.egress_interface is not set and " + proc_net_route +
                            " cannot be read: " + std::strerror(errno));
  }
  std::stringstream ss;
  ss << in.rdbuf();
  auto iface = default_route_interface(ss.str());
  if (!iface) {
    return core::Unexpected("nat.egress_interface is not set and this host has " + iface.error() +
                            " (" + proc_net_route +
                            "): set it to the interface facing the internet gateway");
  }
  c.nat.egress_interface = *iface;
  c.nat.egress_interface_from_route = true;
  return "nat.egress_interface: \"" + *iface + "\" (the interface of the default route)";
}

std::optional<std::string> readable_secrets(const Config& c, const std::string& path) {
  if (c.ec2.credentials != CredentialsSource::Static) return std::nullopt;
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0 || (st.st_mode & 077) == 0) return std::nullopt;
  char mode[8];
  std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
  return "ec2.secret_access_key: \"" + path + "\" holds static keys and is readable by other " +
         "users (mode " + mode + "): chmod 600 it, or use credentials = \"instance-role\"";
}

bool is_reserved_table(std::string_view name) {
  // iptables-nft (the default iptables on Debian 11+, RHEL 8+, Amazon Linux 2023) creates
  // "table ip filter", "nat", "mangle", "raw" and "security"; firewalld and Docker write
  // rules into them through it. The comparison is exact: nft table names are
  // case-sensitive, so "NAT" is a different table.
  static constexpr std::string_view kReserved[] = {"filter", "nat", "mangle", "raw", "security"};
  return std::find(std::begin(kReserved), std::end(kReserved), name) != std::end(kReserved);
}

std::vector<std::string> restart_keys(const Config& running, const Config& next) {
  std::vector<std::string> keys;
  auto check = [&](bool changed, const char* key) {
    if (changed) keys.emplace_back(key);
  };
  const auto& a = running;
  const auto& b = next;
  // Group membership and the managed tables come from discovery, which runs once at start:
  // a new name, discovery mode, member or table list would leave the old member list in
  // place while matching other tables (destinations apply: they are engine config).
  check(a.group.name != b.group.name, "group.name");
  check(a.group.discovery != b.group.discovery, "group.discovery");
  check(a.group.members != b.group.members, "group.members");
  check(a.group.route_tables != b.group.route_tables, "group.route_tables");
  check(a.nat.drift_check_interval != b.nat.drift_check_interval, "nat.drift_check_interval");
  // The EC2 client, its credentials and the metadata client are built once at start;
  // requests in flight belong to them (route_refresh_interval is engine config and applies).
  check(a.ec2.region != b.ec2.region, "ec2.region");
  check(a.ec2.endpoint != b.ec2.endpoint, "ec2.endpoint");
  check(a.ec2.metadata_endpoint != b.ec2.metadata_endpoint, "ec2.metadata_endpoint");
  check(a.ec2.allow_imdsv1 != b.ec2.allow_imdsv1, "ec2.allow_imdsv1");
  check(a.ec2.credentials != b.ec2.credentials, "ec2.credentials");
  check(a.ec2.access_key_id != b.ec2.access_key_id, "ec2.access_key_id");
  check(a.ec2.secret_access_key != b.ec2.secret_access_key, "ec2.secret_access_key");
  check(a.ec2.session_token != b.ec2.session_token, "ec2.session_token");
  check(a.ec2.connect_timeout != b.ec2.connect_timeout, "ec2.connect_timeout");
  check(a.ec2.request_timeout != b.ec2.request_timeout, "ec2.request_timeout");
  // The notice poll's timer is started once, with the metadata client.
  check(a.ec2.notice_interval != b.ec2.notice_interval, "ec2.notice_interval");
  // The floating ENI is watched from start-up on; another ENI would leave the first attached.
  // The zones' Elastic IPs are looked up once, at start (node_eips.cc).
  check(a.failover.move_eip != b.failover.move_eip, "failover.move_eip");
  check(a.failover.eips != b.failover.eips, "failover.eips");
  // Replication streams and replicas are set up with the member channel at start.
  check(a.failover.stateful != b.failover.stateful, "failover.stateful");
  check(a.failover.floating_eni != b.failover.floating_eni, "failover.floating_eni");
  // The socket is bound once; its path, mode and group are the running daemon's identity.
  check(a.status.socket != b.status.socket, "status.socket");
  check(a.status.mode != b.status.mode, "status.mode");
  check(a.status.group != b.status.group, "status.group");
  // The drain mark was read from the old directory at start; a new one would not hold it.
  check(a.status.state_directory != b.status.state_directory, "status.state_directory");
  return keys;
}

core::Result<Config, Errors> parse(std::string_view text, const std::string& file) {
  toml::table root;
  try {
    root = toml::parse(text, file);
  } catch (const toml::parse_error& e) {
    Error err{file, static_cast<int>(e.source().begin.line),
              static_cast<int>(e.source().begin.column), "", std::string(e.description())};
    return core::Unexpected(Errors{err});
  }

  Config c;
  Reader r(file);
  detail::read_sections(r, root, c);
  detail::check_rules(r, root, c);

  if (!r.ok()) {
    Errors errors = r.take_errors();
    std::stable_sort(errors.begin(), errors.end(), [](const Error& a, const Error& b) {
      return std::tie(a.line, a.column) < std::tie(b.line, b.column);
    });
    return core::Unexpected(std::move(errors));
  }
  return c;
}

core::Result<Config, Errors> load(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return core::Unexpected(Errors{
        Error{path, 0, 0, "", "cannot read the file: " + std::string(std::strerror(errno))}});
  }
  std::stringstream ss;
  ss << in.rdbuf();
  return parse(ss.str(), path);
}

const char* to_string(LogLevel l) {
  switch (l) {
    case LogLevel::Debug:
      return "debug";
    case LogLevel::Info:
      return "info";
    case LogLevel::Notice:
      return "notice";
    case LogLevel::Warning:
      return "warning";
    case LogLevel::Error:
      return "error";
  }
  return "?";
}

const char* to_string(Discovery d) {
  return d == Discovery::Tags ? "tags" : "explicit";
}

const char* to_string(CredentialsSource c) {
  switch (c) {
    case CredentialsSource::InstanceRole:
      return "instance-role";
    case CredentialsSource::Environment:
      return "environment";
    case CredentialsSource::Static:
      return "static";
  }
  return "?";
}

const char* to_string(RecoveryAction a) {
  switch (a) {
    case RecoveryAction::None:
      return "none";
    case RecoveryAction::Reboot:
      return "reboot";
    case RecoveryAction::StopStart:
      return "stop-start";
    case RecoveryAction::Terminate:
      return "terminate";
  }
  return "?";
}

}  // namespace hanat::config
