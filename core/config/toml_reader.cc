// SPDX-License-Identifier: GPL-2.0-or-later
#include "core/config/toml_reader.h"

#include <arpa/inet.h>

#include <cctype>

namespace hanat::config::detail {
namespace {

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

}  // namespace

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

}  // namespace hanat::config::detail
