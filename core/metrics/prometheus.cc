// SPDX-License-Identifier: GPL-2.0-or-later
#include "core/metrics/prometheus.h"

#include <charconv>
#include <cmath>
#include <map>
#include <set>
#include <string>

namespace hanat::metrics {

namespace {

bool name_char(char c, bool first, bool colon_ok) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_') return true;
  if (colon_ok && c == ':') return true;
  return !first && c >= '0' && c <= '9';
}

bool valid_name(std::string_view name, bool colon_ok) {
  if (name.empty()) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    if (!name_char(name[i], i == 0, colon_ok)) return false;
  }
  return true;
}

}  // namespace

bool valid_metric_name(std::string_view name) {
  return valid_name(name, true);
}
bool valid_label_name(std::string_view name) {
  return valid_name(name, false);
}

std::string escape_label_value(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    switch (c) {
      case '\\':
        out += "\\\\";
        break;
      case '"':
        out += "\\\"";
        break;
      case '\n':
        out += "\\n";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string escape_help(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    switch (c) {
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string format_value(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[64];
  // Integers up to 2^53 print exactly without a fraction or exponent, as counters should.
  if (std::fabs(v) < 9007199254740992.0 && v == std::trunc(v)) {
    auto r = std::to_chars(buf, buf + sizeof buf, static_cast<long long>(v));
    return std::string(buf, r.ptr);
  }
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

core::Result<std::string, std::string> format(const std::vector<Family>& families) {
  std::string out;
  std::set<std::string_view> seen;
  for (const auto& f : families) {
    if (!valid_metric_name(f.name)) {
      return core::Unexpected("metric \"" + escape_label_value(f.name) +
                              "\": invalid name (want [a-zA-Z_:][a-zA-Z0-9_:]*)");
    }
    if (!seen.insert(f.name).second) {
      return core::Unexpected("metric \"" + f.name + "\": family appears twice");
    }
    out += "# HELP " + f.name;
    if (!f.help.empty()) out += " " + escape_help(f.help);
    out += "\n";
    out += "# TYPE " + f.name +
           (f.type == Type::Counter     ? " counter\n"
            : f.type == Type::Histogram ? " histogram\n"
                                        : " gauge\n");
    for (const auto& s : f.samples) {
      const bool hist_suffix = s.suffix == "_bucket" || s.suffix == "_sum" || s.suffix == "_count";
      if (!s.suffix.empty() && (f.type != Type::Histogram || !hist_suffix)) {
        return core::Unexpected("metric \"" + f.name + "\": sample suffix \"" +
                                escape_label_value(s.suffix) + "\" outside a histogram");
      }
      out += f.name + s.suffix;
      if (!s.labels.empty()) {
        out += '{';
        std::set<std::string_view> names;
        for (size_t i = 0; i < s.labels.size(); ++i) {
          const auto& [k, v] = s.labels[i];
          if (!valid_label_name(k) || k.rfind("__", 0) == 0) {
            return core::Unexpected("metric \"" + f.name + "\": invalid label name \"" +
                                    escape_label_value(k) + "\"");
          }
          if (!names.insert(k).second) {
            return core::Unexpected("metric \"" + f.name + "\": label \"" + k + "\" twice");
          }
          if (i > 0) out += ',';
          out += k + "=\"" + escape_label_value(v) + "\"";
        }
        out += '}';
      }
      out += ' ' + format_value(s.value) + '\n';
    }
  }
  return out;
}

namespace {

bool valid_value(std::string_view v) {
  if (v == "NaN" || v == "+Inf" || v == "-Inf") return true;
  if (v.empty()) return false;
  double d = 0;
  std::string_view num = v[0] == '+' ? v.substr(1) : v;
  auto [ptr, ec] = std::from_chars(num.data(), num.data() + num.size(), d);
  return ec == std::errc{} && ptr == num.data() + num.size();
}

bool valid_timestamp(std::string_view v) {
  if (v.empty()) return false;
  size_t i = v[0] == '-' ? 1 : 0;
  if (i == v.size()) return false;
  for (; i < v.size(); ++i)
    if (v[i] < '0' || v[i] > '9') return false;
  return true;
}

// Parses `{a="x",b="y"}` at the start of `s`; returns its length or an error.
core::Result<size_t, std::string> parse_labels(std::string_view s) {
  size_t i = 1;  // after '{'
  std::set<std::string_view> names;
  while (i < s.size() && s[i] != '}') {
    size_t start = i;
    while (i < s.size() && s[i] != '=') ++i;
    std::string_view name = s.substr(start, i - start);
    if (!valid_label_name(name)) {
      return core::Unexpected("invalid label name \"" + std::string(name) + "\"");
    }
    if (!names.insert(name).second) {
      return core::Unexpected("label \"" + std::string(name) + "\" twice");
    }
    if (i + 1 >= s.size() || s[i + 1] != '"') {
      return core::Unexpected("label \"" + std::string(name) + "\": value not quoted");
    }
    i += 2;
    for (;; ++i) {
      if (i >= s.size()) return core::Unexpected("unterminated label value");
      if (s[i] == '"') break;
      if (s[i] == '\\') {
        ++i;
        if (i >= s.size() || (s[i] != '\\' && s[i] != '"' && s[i] != 'n')) {
          return core::Unexpected("label \"" + std::string(name) + "\": bad escape");
        }
      }
    }
    ++i;  // the closing quote
    if (i < s.size() && s[i] == ',') ++i;
  }
  if (i >= s.size()) return core::Unexpected("unterminated label set");
  return i + 1;
}

}  // namespace

core::Result<size_t, std::string> check_exposition(std::string_view text) {
  if (!text.empty() && text.back() != '\n') {
    return core::Unexpected("the document does not end with a line feed");
  }
  std::map<std::string, std::string, std::less<>> types;  // family -> type
  std::set<std::string, std::less<>> closed;              // families whose samples ended
  std::string current;                                    // family of the previous sample
  size_t samples = 0;
  size_t lineno = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    std::string_view line = text.substr(pos, nl - pos);
    pos = nl + 1;
    ++lineno;
    auto bad = [&](const std::string& what) {
      return core::Unexpected("line " + std::to_string(lineno) + ": " + what);
    };
    if (line.empty()) continue;
    if (line[0] == '#') {
      bool help = line.rfind("# HELP ", 0) == 0;
      bool type = line.rfind("# TYPE ", 0) == 0;
      if (!help && !type) continue;  // a plain comment
      std::string_view rest = line.substr(7);
      size_t sp = rest.find(' ');
      std::string_view name = rest.substr(0, sp);
      if (!valid_metric_name(name)) return bad("invalid metric name \"" + std::string(name) + "\"");
      if (type) {
        std::string_view t = sp == std::string_view::npos ? "" : rest.substr(sp + 1);
        if (t != "counter" && t != "gauge" && t != "histogram" && t != "summary" && t != "untyped")
          return bad("unknown type \"" + std::string(t) + "\"");
        if (types.count(name) != 0) return bad("second TYPE line for " + std::string(name));
        if (closed.count(name) != 0 || current == name)
          return bad("TYPE line for " + std::string(name) + " after its samples");
        types.emplace(std::string(name), std::string(t));
      }
      continue;
    }
    size_t i = 0;
    while (i < line.size() && line[i] != '{' && line[i] != ' ') ++i;
    std::string_view name = line.substr(0, i);
    if (!valid_metric_name(name)) return bad("invalid metric name \"" + std::string(name) + "\"");
    if (i < line.size() && line[i] == '{') {
      auto n = parse_labels(line.substr(i));
      if (!n) return bad(std::string(name) + ": " + n.error());
      i += *n;
    }
    if (i >= line.size() || line[i] != ' ') return bad(std::string(name) + ": no value");
    std::string_view rest = line.substr(i + 1);
    size_t sp = rest.find(' ');
    std::string_view value = rest.substr(0, sp);
    if (!valid_value(value))
      return bad(std::string(name) + ": bad value \"" + std::string(value) + "\"");
    if (sp != std::string_view::npos && !valid_timestamp(rest.substr(sp + 1)))
      return bad(std::string(name) + ": bad timestamp");
    // A histogram's samples are <family>_bucket, _sum and _count.
    std::string_view family = name;
    for (std::string_view sfx : {"_bucket", "_sum", "_count"}) {
      if (name.size() > sfx.size() && name.substr(name.size() - sfx.size()) == sfx) {
        auto t = types.find(name.substr(0, name.size() - sfx.size()));
        if (t != types.end() && t->second == "histogram") {
          family = name.substr(0, name.size() - sfx.size());
          if (sfx == "_bucket" && line.find("le=\"") == std::string_view::npos)
            return bad(std::string(name) + ": histogram bucket without an le label");
        }
      }
    }
    if (family != current) {
      if (closed.count(family) != 0) return bad(std::string(family) + ": samples not together");
      if (!current.empty()) closed.insert(current);
      current = std::string(family);
    }
    ++samples;
  }
  return samples;
}

}  // namespace hanat::metrics
