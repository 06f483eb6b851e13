// SPDX-License-Identifier: GPL-2.0-or-later
#pragma once
// Socket helpers shared by the probers: numeric IPv4 parsing, source/device binding, and the
// mapping of errno values to probe failure kinds.

#include <netinet/in.h>

#include <string>
#include <string_view>
#include <system_error>

#include "core/base/result.h"
#include "probes/types.h"

namespace hanat::probes {

// Parses a numeric IPv4 address (no name lookup, ever). `what` names the field in errors:
// "peer 'i-0a' address: '10.0.0.300' is not a numeric IPv4 address".
[[nodiscard]] core::Result<sockaddr_in, std::string> parse_ipv4(std::string_view text,
                                                                std::string_view what,
                                                                std::uint16_t port = 0);
[[nodiscard]] std::string to_string(const sockaddr_in& a);

// Where probes leave from. An empty interface / unset source leaves the choice to routing.
struct BindOptions {
  std::string interface;  // SO_BINDTODEVICE: the probe leaves through this device or fails
  bool has_source = false;
  sockaddr_in source{};
};

// Builds BindOptions from the user's strings; errors name the field.
[[nodiscard]] core::Result<BindOptions, std::string> make_bind_options(
    const std::string& source_address, const std::string& interface);

// Applies SO_BINDTODEVICE and bind(source) to a fresh socket. For ICMP ping sockets the
// bound port is the echo identifier, so `port` is 0 (the kernel picks a free one).
[[nodiscard]] std::error_code apply_bind(int fd, const BindOptions& b);

// ECONNREFUSED -> Refused; ETIMEDOUT -> Timeout; ENETUNREACH, EHOSTUNREACH, EHOSTDOWN,
// ENETDOWN, EACCES/EPERM from a prohibit route -> Unreachable; anything else -> Error.
[[nodiscard]] Failure classify_errno(int err);

// Checks ProbeOptions; returns a message naming the bad field, or empty when valid.
[[nodiscard]] std::string check_options(const ProbeOptions& o);

}  // namespace hanat::probes
