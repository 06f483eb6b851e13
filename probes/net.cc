// SPDX-License-Identifier: GPL-2.0-or-later
#include "probes/net.h"

#include <arpa/inet.h>
#include <net/if.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

namespace hanat::probes {

core::Result<sockaddr_in, std::string> parse_ipv4(std::string_view text, std::string_view what,
                                                  std::uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  std::string s(text);
  if (s.empty() || s.size() > 15 || inet_pton(AF_INET, s.c_str(), &a.sin_addr) != 1) {
    return core::Unexpected<std::string>(std::string(what) + ": '" + s.substr(0, 64) +
                                         "' is not a numeric IPv4 address");
  }
  return a;
}

std::string to_string(const sockaddr_in& a) {
  char buf[INET_ADDRSTRLEN] = {};
  inet_ntop(AF_INET, &a.sin_addr, buf, sizeof(buf));
  return buf;
}

core::Result<BindOptions, std::string> make_bind_options(const std::string& source_address,
                                                         const std::string& interface) {
  BindOptions b;
  if (!interface.empty()) {
    if (interface.size() >= IFNAMSIZ || interface.find('/') != std::string::npos ||
        interface.find(' ') != std::string::npos) {
      return core::Unexpected<std::string>("interface: '" + interface.substr(0, 64) +
                                           "' is not a valid interface name");
    }
    b.interface = interface;
  }
  if (!source_address.empty()) {
    auto a = parse_ipv4(source_address, "source address");
    if (!a) return core::Unexpected<std::string>(a.error());
    b.has_source = true;
    b.source = *a;
  }
  return b;
}

std::error_code apply_bind(int fd, const BindOptions& b) {
  if (!b.interface.empty()) {
    if (setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, b.interface.c_str(),
                   static_cast<socklen_t>(b.interface.size())) != 0) {
      return {errno, std::system_category()};
    }
  }
  if (b.has_source) {
    sockaddr_in src = b.source;
    src.sin_port = 0;
    if (bind(fd, reinterpret_cast<const sockaddr*>(&src), sizeof(src)) != 0) {
      return {errno, std::system_category()};
    }
  }
  return {};
}

Failure classify_errno(int err) {
  switch (err) {
    case 0:
      return Failure::None;
    case ECONNREFUSED:
      return Failure::Refused;
    case ETIMEDOUT:
      return Failure::Timeout;
    case ENETUNREACH:
    case EHOSTUNREACH:
    case EHOSTDOWN:
    case ENETDOWN:
    case EACCES:  // a "prohibit" route
    case EPERM:
      return Failure::Unreachable;
    default:
      return Failure::Error;
  }
}

std::string check_options(const ProbeOptions& o) {
  using std::chrono::milliseconds;
  if (o.interval < milliseconds(10) || o.interval > milliseconds(60000)) {
    return "probe interval " + std::to_string(o.interval.count()) + " ms is outside 10..60000 ms";
  }
  if (o.timeout < milliseconds(1) || o.timeout > milliseconds(60000)) {
    return "probe timeout " + std::to_string(o.timeout.count()) + " ms is outside 1..60000 ms";
  }
  if (o.rise < 1 || o.rise > 100) return "rise " + std::to_string(o.rise) + " is outside 1..100";
  if (o.fall < 1 || o.fall > 100) return "fall " + std::to_string(o.fall) + " is outside 1..100";
  auto b = make_bind_options(o.source_address, o.interface);
  if (!b) return b.error();
  return {};
}

}  // namespace hanat::probes
