// SPDX-License-Identifier: GPL-2.0-or-later
#include "netfilter/sysctl.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace hanat::netfilter {

namespace {

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ' || s.back() == '\t')) s.pop_back();
  return s;
}

Error sys_error(std::string_view name, const char* op, int e) {
  return Error{errno_code(e), "sysctl " + std::string(name) + ": " + op + std::strerror(e)};
}

}  // namespace

std::vector<SysctlEntry> sysctl_entries(const SysctlSpec& spec) {
  std::vector<SysctlEntry> out;
  out.push_back({"net.ipv4.ip_forward", "1"});
  auto add = [&out](const char* name, const auto& v) {
    if (v) out.push_back({name, std::to_string(*v)});
  };
  add("net.netfilter.nf_conntrack_max", spec.conntrack_max);
  add("net.netfilter.nf_conntrack_tcp_timeout_established", spec.tcp_timeout_established_s);
  add("net.netfilter.nf_conntrack_tcp_timeout_close_wait", spec.tcp_timeout_close_wait_s);
  add("net.netfilter.nf_conntrack_udp_timeout", spec.udp_timeout_s);
  add("net.netfilter.nf_conntrack_udp_timeout_stream", spec.udp_timeout_stream_s);
  add("net.netfilter.nf_conntrack_events", spec.conntrack_events);
  return out;
}

std::string Sysctl::path(std::string_view name) const {
  std::string p = root_ + "/";
  for (char c : name) p += c == '.' ? '/' : c;
  return p;
}

core::Result<std::string, Error> Sysctl::read(std::string_view name) const {
  const int fd = ::open(path(name).c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return core::Unexpected(sys_error(name, "", errno));
  std::string out;
  char buf[256];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      const int e = errno;
      ::close(fd);
      return core::Unexpected(sys_error(name, "read: ", e));
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return trim(std::move(out));
}

Status Sysctl::write(std::string_view name, std::string_view value) const {
  const int fd = ::open(path(name).c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC);
  if (fd < 0) return core::Unexpected(sys_error(name, "", errno));
  const std::string data = std::string(value) + "\n";
  ssize_t n;
  do {
    n = ::write(fd, data.data(), data.size());
  } while (n < 0 && errno == EINTR);
  const int e = errno;
  ::close(fd);
  if (n < 0) return core::Unexpected(sys_error(name, "write: ", e));
  if (static_cast<size_t>(n) != data.size()) {
    return fail(std::make_error_code(std::errc::io_error),
                "sysctl " + std::string(name) + ": short write");
  }
  return ok();
}

core::Result<size_t, Error> Sysctl::apply(const std::vector<SysctlEntry>& entries) const {
  size_t changed = 0;
  for (const auto& e : entries) {
    auto cur = read(e.name);
    if (!cur) return core::Unexpected(cur.error());
    if (*cur == e.value) continue;
    if (auto w = write(e.name, e.value); !w) return core::Unexpected(w.error());
    // The kernel may clamp or refuse a value silently (proc_dointvec_minmax); only the
    // read-back proves it took.
    auto now = read(e.name);
    if (!now) return core::Unexpected(now.error());
    if (*now != e.value) {
      return fail(std::make_error_code(std::errc::invalid_argument),
                  "sysctl " + e.name + ": wrote " + e.value + ", reads back " + *now);
    }
    ++changed;
  }
  return changed;
}

core::Result<std::optional<std::string>, Error> Sysctl::check(
    const std::vector<SysctlEntry>& entries) const {
  for (const auto& e : entries) {
    auto cur = read(e.name);
    if (!cur) return core::Unexpected(cur.error());
    if (*cur != e.value) {
      return std::optional<std::string>("sysctl " + e.name + " is " + *cur + ", want " + e.value);
    }
  }
  return std::optional<std::string>();
}

}  // namespace hanat::netfilter
