#include "core/config/config.h"

#include <arpa/inet.h>

#include <toml++/toml.h>
#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <functional>
#include <sstream>
#include <tuple>

namespace hanat::config {

namespace {

using Node = toml::node;

struct Field {
  std::string_view name;
  std::function<void(const Node&, const std::string& key)> read;
};

size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t sub = prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, sub});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

std::string suggestion(std::string_view unknown, const std::vector<std::string_view>& known) {
  std::string_view best;
  size_t best_d = SIZE_MAX;
  for (std::string_view k : known) {
    size_t d = edit_distance(unknown, k);
    if (d < best_d) {
      best_d = d;
      best = k;
    }
  }
  size_t limit = std::max<size_t>(2, unknown.size() / 3);
  if (best_d <= limit) return "; did you mean \"" + std::string(best) + "\"?";
  return "";
}

bool is_interface_name(std::string_view s) {
  // Linux IFNAMSIZ is 16 including the terminating NUL; '/' and whitespace are refused
  // by the kernel's dev_valid_name().
  if (s.empty() || s.size() > 15 || s == "." || s == "..") return false;
  return std::none_of(s.begin(), s.end(), [](char c) {
    return c == '/' || c == ':' || std::isspace(static_cast<unsigned char>(c));
  });
}

bool is_ipv4(std::string_view s) {
  in_addr a{};
  std::string z(s);
  return inet_pton(AF_INET, z.c_str(), &a) == 1;
}

bool is_region(std::string_view s) {
  // e.g. us-east-1, eu-central-2, us-gov-west-1, ap-southeast-4
  size_t parts = 0;
  std::string_view rest = s;
  while (!rest.empty()) {
    size_t dash = rest.find('-');
    std::string_view p = rest.substr(0, dash);
    if (p.empty()) return false;
    for (char c : p) {
      if (!std::islower(static_cast<unsigned char>(c)) &&
          !std::isdigit(static_cast<unsigned char>(c)))
        return false;
    }
    ++parts;
    if (dash == std::string_view::npos) {
      return parts >= 3 && std::all_of(p.begin(), p.end(), [](char c) {
               return std::isdigit(static_cast<unsigned char>(c));
             });
    }
    rest = rest.substr(dash + 1);
  }
  return false;
}

class Reader {
 public:
  explicit Reader(std::string file) : file_(std::move(file)) {}

  void error(const toml::source_region& where, std::string key, std::string message) {
    errors_.push_back(Error{file_, static_cast<int>(where.begin.line),
                            static_cast<int>(where.begin.column), std::move(key),
                            std::move(message)});
  }
  void error(const Node& n, std::string key, std::string message) {
    error(n.source(), std::move(key), std::move(message));
  }

  // Reads one [section]: rejects unknown keys, runs each known field's reader.
  void section(const toml::table& root, std::string_view name, const std::vector<Field>& fields) {
    const Node* n = root.get(name);
    if (n == nullptr) return;
    const toml::table* t = n->as_table();
    if (t == nullptr) {
      error(*n, std::string(name), "expected a table ([" + std::string(name) + "])");
      return;
    }
    std::vector<std::string_view> known;
    for (const Field& f : fields) known.push_back(f.name);
    for (const auto& [k, v] : *t) {
      std::string key = std::string(name) + "." + std::string(k.str());
      // Named copy: clang before 16 cannot capture a structured binding in a lambda.
      const std::string_view k_str = k.str();
      auto it = std::find_if(fields.begin(), fields.end(),
                             [&](const Field& f) { return f.name == k_str; });
      if (it == fields.end()) {
        error(k.source(), key, "unknown key" + suggestion(k.str(), known));
        continue;
      }
      it->read(v, key);
    }
  }

  // --- typed field readers

  Field str(std::string_view name, std::string& out,
            std::function<std::string(std::string_view)> check = {}) {
    return {name, [this, &out, check](const Node& n, const std::string& key) {
              const auto* s = n.as_string();
              if (s == nullptr) return error(n, key, "expected a string");
              if (check) {
                std::string why = check(s->get());
                if (!why.empty()) return error(n, key, why);
              }
              out = s->get();
            }};
  }

  Field boolean(std::string_view name, bool& out) {
    return {name, [this, &out](const Node& n, const std::string& key) {
              const auto* b = n.as_boolean();
              if (b == nullptr) return error(n, key, "expected true or false");
              out = b->get();
            }};
  }

  template <class Int>
  Field integer(std::string_view name, Int& out, std::int64_t min, std::int64_t max) {
    return {name, [this, &out, min, max](const Node& n, const std::string& key) {
              std::int64_t v = 0;
              if (!int_value(n, key, min, max, v)) return;
              out = static_cast<Int>(v);
            }};
  }

  Field opt_integer(std::string_view name, std::optional<std::int64_t>& out, std::int64_t min,
                    std::int64_t max) {
    return {name, [this, &out, min, max](const Node& n, const std::string& key) {
              std::int64_t v = 0;
              if (int_value(n, key, min, max, v)) out = v;
            }};
  }

  Field duration(std::string_view name, milliseconds& out, milliseconds min, milliseconds max) {
    return {name, [this, &out, min, max](const Node& n, const std::string& key) {
              if (auto d = duration_value(n, key, min, max)) out = *d;
            }};
  }

  Field opt_duration(std::string_view name, std::optional<milliseconds>& out, milliseconds min,
                     milliseconds max) {
    return {name, [this, &out, min, max](const Node& n, const std::string& key) {
              if (auto d = duration_value(n, key, min, max)) out = *d;
            }};
  }

  // A list of strings, each turned into T by `convert`, which returns an error text or "".
  template <class T>
  Field list(std::string_view name, std::vector<T>& out,
             std::function<std::string(std::string_view, T&)> convert, bool unique = true) {
    return {name, [this, &out, convert, unique](const Node& n, const std::string& key) {
              const auto* arr = n.as_array();
              if (arr == nullptr) return error(n, key, "expected a list of strings");
              std::vector<T> result;
              std::vector<std::string> seen;
              for (size_t i = 0; i < arr->size(); ++i) {
                const Node& e = *arr->get(i);
                std::string ekey = key + "[" + std::to_string(i) + "]";
                const auto* s = e.as_string();
                if (s == nullptr) {
                  error(e, ekey, "expected a string");
                  continue;
                }
                if (unique && std::find(seen.begin(), seen.end(), s->get()) != seen.end()) {
                  error(e, ekey, "\"" + s->get() + "\" is listed twice");
                  continue;
                }
                seen.push_back(s->get());
                T value{};
                std::string why = convert(s->get(), value);
                if (!why.empty()) {
                  error(e, ekey, why);
                  continue;
                }
                result.push_back(std::move(value));
              }
              // Keep the valid elements even when some are bad (the parse fails anyway),
              // so cross-field rules do not add a misleading "is required" error.
              out = std::move(result);
            }};
  }

  template <class E>
  Field enumeration(std::string_view name, E& out,
                    std::vector<std::pair<std::string_view, E>> values) {
    return {name, [this, &out, values](const Node& n, const std::string& key) {
              const auto* s = n.as_string();
              std::string allowed;
              std::vector<std::string_view> names;
              for (const auto& [k, v] : values) {
                allowed +=
                    (allowed.empty() ? "" : ", ") + std::string("\"") + std::string(k) + "\"";
                names.push_back(k);
              }
              if (s == nullptr) return error(n, key, "expected one of " + allowed);
              for (const auto& [k, v] : values) {
                if (k == s->get()) {
                  out = v;
                  return;
                }
              }
              error(n, key,
                    "\"" + s->get() + "\" is not one of " + allowed + suggestion(s->get(), names));
            }};
  }

  Errors take_errors() { return std::move(errors_); }
  [[nodiscard]] bool ok() const { return errors_.empty(); }
  [[nodiscard]] const std::string& file() const { return file_; }

 private:
  bool int_value(const Node& n, const std::string& key, std::int64_t min, std::int64_t max,
                 std::int64_t& v) {
    const auto* i = n.as_integer();
    if (i == nullptr) {
      error(n, key, "expected an integer");
      return false;
    }
    v = i->get();
    if (v < min || v > max) {
      error(n, key,
            std::to_string(v) + " is out of range [" + std::to_string(min) + ", " +
                std::to_string(max) + "]");
      return false;
    }
    return true;
  }

  std::optional<milliseconds> duration_value(const Node& n, const std::string& key,
                                             milliseconds min, milliseconds max) {
    const auto* s = n.as_string();
    if (s == nullptr) {
      error(n, key,
            n.is_integer() ? "expected a duration string such as \"200ms\" or \"5s\" (a bare "
                             "number has no unit)"
                           : "expected a duration string such as \"200ms\" or \"5s\"");
      return std::nullopt;
    }
    auto d = parse_duration(s->get());
    if (!d) {
      error(
          n, key,
          "\"" + s->get() + "\" is not a duration (use ms, s, m or h, e.g. \"200ms\", \"1m30s\")");
      return std::nullopt;
    }
    if (*d < min || *d > max) {
      error(n, key,
            "\"" + s->get() + "\" is out of range [" + format_duration(min) + ", " +
                format_duration(max) + "]");
      return std::nullopt;
    }
    return d;
  }

  std::string file_;
  Errors errors_;
};

std::string check_id(std::string_view s, std::string_view prefix) {
  if (is_ec2_id(s, prefix)) return "";
  return "\"" + std::string(s) + "\" is not a valid id (expected " + std::string(prefix) +
         "- followed by 8 or 17 lowercase hex digits)";
}

std::string convert_cidr(std::string_view s, Cidr& out) {
  std::string why;
  auto c = parse_cidr(s, &why);
  if (!c) return why;
  out = *c;
  return "";
}

}  // namespace

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
  using std::chrono::hours;
  using std::chrono::minutes;
  using std::chrono::seconds;

  static const std::vector<std::string_view> kSections = {"group",   "probe", "agent",  "egress",
                                                          "forward", "nat",   "ec2",    "failover",
                                                          "status",  "log",   "metrics"};
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
       r.list<Cidr>("destinations", c.group.destinations, convert_cidr)});

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
             r.integer("tcp_port", c.probe.tcp_port, 1, 65535)});

  r.section(root, "agent",
            {r.str("listen_address", c.agent.listen_address,
                   [](std::string_view s) -> std::string {
                     return is_ipv4(s) ? "" : "\"" + std::string(s) + "\" is not an IPv4 address";
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
               return ok ? "" : "\"" + std::string(s) + "\" is not a valid nftables table name";
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
       r.duration("route_refresh_interval", c.ec2.route_refresh_interval, seconds(1), hours(1))});

  r.section(root, "failover",
            {r.boolean("preempt", c.failover.preempt),
             r.duration("failback_delay", c.failover.failback_delay, milliseconds(0), hours(24)),
             r.duration("hold_down", c.failover.hold_down, milliseconds(100), hours(1)),
             r.duration("hold_down_max", c.failover.hold_down_max, milliseconds(100), hours(24)),
             r.str("fallback_target", c.failover.fallback_target,
                   [](std::string_view s) { return s.empty() ? "" : check_id(s, "nat"); }),
             r.boolean("move_eip", c.failover.move_eip),
             r.str("floating_eni", c.failover.floating_eni,
                   [](std::string_view s) { return s.empty() ? "" : check_id(s, "eni"); }),
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
       r.duration("idle_timeout", c.status.idle_timeout, milliseconds(100), hours(1))});

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

  // Cross-field rules, reported at the section (or the file start when it is absent).
  auto where = [&](std::string_view section) -> toml::source_region {
    if (const Node* n = root.get(section)) return n->source();
    toml::source_region s;
    s.begin = {1, 1};
    return s;
  };
  if (c.group.name.empty())
    r.error(where("group"), "group.name", "is required (the hanat:group tag value)");
  if (c.group.discovery == Discovery::Explicit && c.group.route_tables.empty())
    r.error(where("group"), "group.route_tables",
            "is required when discovery = \"explicit\" (list the rtb- ids to manage)");
  if (c.group.discovery == Discovery::Tags &&
      (!c.group.members.empty() || !c.group.route_tables.empty()))
    r.error(where("group"), "group.discovery",
            "members/route_tables are listed but discovery = \"tags\"; set discovery = "
            "\"explicit\" to use them");
  if (c.group.destinations.empty()) c.group.destinations.push_back(*parse_cidr("0.0.0.0/0"));
  if (c.probe.timeout > c.probe.interval)
    r.error(where("probe"), "probe.timeout",
            format_duration(c.probe.timeout) + " is longer than probe.interval (" +
                format_duration(c.probe.interval) + "): probes of one target would overlap");
  if (c.probe.kinds.empty())
    r.error(where("probe"), "probe.kinds", "must name at least one probe kind");
  if (static_cast<size_t>(c.egress.required) > std::max<size_t>(1, c.egress.targets.size()) &&
      !c.egress.targets.empty())
    r.error(where("egress"), "egress.required",
            std::to_string(c.egress.required) + " is more than the " +
                std::to_string(c.egress.targets.size()) + " targets listed");
  if (c.egress.timeout > c.egress.interval)
    r.error(where("egress"), "egress.timeout", "is longer than egress.interval");
  if (c.ec2.credentials == CredentialsSource::Static &&
      (c.ec2.access_key_id.empty() || c.ec2.secret_access_key.empty()))
    r.error(where("ec2"), "ec2.credentials",
            "\"static\" needs access_key_id and secret_access_key");
  if (c.ec2.credentials != CredentialsSource::Static &&
      (!c.ec2.access_key_id.empty() || !c.ec2.secret_access_key.empty()))
    r.error(where("ec2"), "ec2.access_key_id",
            "keys are set but credentials is not \"static\"; they would be ignored");
  if (c.failover.hold_down_max < c.failover.hold_down)
    r.error(where("failover"), "failover.hold_down_max", "is shorter than failover.hold_down");

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
