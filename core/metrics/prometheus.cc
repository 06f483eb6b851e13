#include "core/metrics/prometheus.h"

#include <charconv>
#include <cmath>
#include <set>

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
    out += "# TYPE " + f.name + (f.type == Type::Counter ? " counter\n" : " gauge\n");
    for (const auto& s : f.samples) {
      out += f.name;
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

}  // namespace hanat::metrics
