// SPDX-License-Identifier: GPL-2.0-or-later
#include "netfilter/spec.h"

#include <arpa/inet.h>
#include <net/if.h>

#include <cerrno>
#include <charconv>

namespace hanat::netfilter {

core::Result<Ipv4Prefix, std::string> parse_ipv4_prefix(std::string_view text) {
  const std::string quoted = "\"" + std::string(text) + "\"";
  const size_t slash = text.find('/');
  const std::string addr_text(text.substr(0, slash));
  in_addr a{};
  if (addr_text.empty() || inet_pton(AF_INET, addr_text.c_str(), &a) != 1) {
    return core::Unexpected(quoted + ": not an IPv4 address");
  }
  unsigned len = 32;
  if (slash != std::string_view::npos) {
    const std::string_view len_text = text.substr(slash + 1);
    const auto* end = len_text.data() + len_text.size();
    auto [p, ec] = std::from_chars(len_text.data(), end, len);
    if (len_text.empty() || ec != std::errc() || p != end || len > 32) {
      return core::Unexpected(quoted + ": prefix length must be 0..32");
    }
  }
  Ipv4Prefix out;
  out.addr = ntohl(a.s_addr);
  out.len = static_cast<uint8_t>(len);
  const uint32_t mask = len == 0 ? 0U : ~0U << (32U - len);
  if ((out.addr & ~mask) != 0) {
    Ipv4Prefix fixed{out.addr & mask, out.len};
    return core::Unexpected(quoted + ": host bits set (did you mean " + to_string(fixed) + "?)");
  }
  return out;
}

std::string to_string(const Ipv4Prefix& p) {
  in_addr a{};
  a.s_addr = htonl(p.addr);
  char buf[INET_ADDRSTRLEN] = {};
  inet_ntop(AF_INET, &a, buf, sizeof buf);
  return std::string(buf) + "/" + std::to_string(p.len);
}

namespace {

bool valid_table_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '-';
}

}  // namespace

Status validate(const NatSpec& spec) {
  const auto einval = std::make_error_code(std::errc::invalid_argument);
  // Table names follow nft's identifier rules (letter first) so `nft list table ip <name>`
  // works on them; the kernel's own limit is NFT_NAME_MAXLEN (256 with the NUL).
  if (spec.table.empty()) return fail(einval, "nat table name \"\": empty");
  if (spec.table.size() > 255) {
    return fail(einval, "nat table name \"" + spec.table + "\": longer than 255 characters");
  }
  const char first = spec.table.front();
  if (!((first >= 'a' && first <= 'z') || (first >= 'A' && first <= 'Z'))) {
    return fail(einval, "nat table name \"" + spec.table + "\": must start with a letter");
  }
  for (char c : spec.table) {
    if (!valid_table_char(c)) {
      return fail(einval,
                  "nat table name \"" + spec.table + "\": only letters, digits, '_' and '-'");
    }
  }
  // Interface names: the kernel's dev_valid_name() — 1..15 bytes (IFNAMSIZ with the NUL),
  // not "." or "..", no '/', ':' or whitespace. oifname compares all IFNAMSIZ bytes, so a
  // longer name could never match anything.
  const std::string& ifn = spec.egress_interface;
  const std::string q = "nat egress interface \"" + ifn + "\": ";
  if (ifn.empty()) return fail(einval, q + "empty");
  if (ifn.size() >= IFNAMSIZ) {
    return fail(einval, q + "longer than " + std::to_string(IFNAMSIZ - 1) + " characters");
  }
  if (ifn == "." || ifn == "..") return fail(einval, q + "not a valid interface name");
  for (char c : ifn) {
    if (c == '/' || c == ':' || c == '*' || c == '\0' || static_cast<unsigned char>(c) <= ' ') {
      return fail(einval, q + "contains '" + std::string(1, c) + "' (not allowed)");
    }
  }
  for (const auto& cidr : spec.source_cidrs) {
    auto p = parse_ipv4_prefix(cidr);
    if (!p) return fail(einval, "nat source CIDR " + p.error());
  }
  for (const auto& r : spec.snat) {
    in_addr a{};
    if (inet_pton(AF_INET, r.address.c_str(), &a) != 1) {
      return fail(einval, "nat snat address \"" + r.address + "\": not an IPv4 address");
    }
    if (r.source_cidrs.empty()) {
      return fail(einval, "nat snat to " + r.address + ": no source CIDR");
    }
    for (const auto& cidr : r.source_cidrs) {
      auto p = parse_ipv4_prefix(cidr);
      if (!p) return fail(einval, "nat snat source CIDR " + p.error());
    }
  }
  return ok();
}

std::string rule_text(const NatSpec& spec, const std::optional<Ipv4Prefix>& src) {
  std::string s = "oifname \"" + spec.egress_interface + "\"";
  if (src && src->len > 0) s += " ip saddr " + to_string(*src);
  s += " masquerade";
  if (spec.fully_random && spec.persistent) {
    s += " fully-random,persistent";
  } else if (spec.fully_random) {
    s += " fully-random";
  } else if (spec.persistent) {
    s += " persistent";
  }
  return s;
}

std::string snat_rule_text(const NatSpec& spec, const Ipv4Prefix& src, const std::string& address) {
  std::string s = "oifname \"" + spec.egress_interface + "\"";
  if (src.len > 0) s += " ip saddr " + to_string(src);
  return s + " snat to " + address;
}

}  // namespace hanat::netfilter
