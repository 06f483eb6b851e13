// SPDX-License-Identifier: GPL-2.0-or-later
#pragma once
// IPv4 addresses as the daemon's parts pass them around (host byte order, uint32_t) and as
// logs, status and configuration write them (dotted quad). The standard library only, like
// the rest of core_base: the engine may include it.

#include <charconv>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace hanat::core {

// "198.18.0.1" for 0xC6120001.
inline std::string ipv4_text(uint32_t host_order) {
  std::string out;
  for (int shift = 24; shift >= 0; shift -= 8) {
    if (!out.empty()) out += '.';
    out += std::to_string((host_order >> shift) & 0xffu);
  }
  return out;
}

// The dotted quad inet_pton(AF_INET) accepts: four decimal parts of 1-3 digits, each at
// most 255, no leading zeros (glibc reads none as octal: it refuses them), nothing else.
inline std::optional<uint32_t> parse_ipv4(std::string_view text) {
  uint32_t out = 0;
  for (int part = 0; part < 4; ++part) {
    if (part > 0) {
      if (text.empty() || text.front() != '.') return std::nullopt;
      text.remove_prefix(1);
    }
    std::size_t digits = 0;
    while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') ++digits;
    if (digits == 0 || digits > 3 || (digits > 1 && text.front() == '0')) return std::nullopt;
    unsigned value = 0;
    std::from_chars(text.data(), text.data() + digits, value);
    if (value > 255) return std::nullopt;
    out = (out << 8) | value;
    text.remove_prefix(digits);
  }
  if (!text.empty()) return std::nullopt;
  return out;
}

}  // namespace hanat::core
