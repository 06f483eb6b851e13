// SPDX-License-Identifier: GPL-2.0-or-later
#pragma once
// Forwarding and NAT-tuning sysctls through /proc/sys, written only when they differ and
// always read back. Paths under /proc/sys/net resolve in the network namespace of the task
// that opens them (the kernel's net sysctl root looks up current->nsproxy->net_ns), so a
// process or thread that setns()'d into a namespace reads and writes that namespace's values.

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "netfilter/spec.h"

namespace hanat::netfilter {

struct SysctlEntry {
  std::string name;   // dotted, e.g. "net.ipv4.ip_forward"
  std::string value;  // as written to and read from /proc/sys

  friend bool operator==(const SysctlEntry&, const SysctlEntry&) = default;
};

// The desired sysctls, pure: net.ipv4.ip_forward=1 always, then the optional NAT tuning.
// AWS NAT Gateway drops a TCP connection after 350 s idle; a user who wants the same
// behaviour sets tcp_timeout_established_s = 350 (Linux's default is 5 days).
[[nodiscard]] std::vector<SysctlEntry> sysctl_entries(const SysctlSpec& spec);

class Sysctl {
 public:
  // `root` is /proc/sys in production; tests point it at a directory of their own.
  explicit Sysctl(std::string root = "/proc/sys") : root_(std::move(root)) {}

  [[nodiscard]] core::Result<std::string, Error> read(std::string_view name) const;
  [[nodiscard]] Status write(std::string_view name, std::string_view value) const;

  // Writes each entry that differs and reads it back. Returns how many were changed; the
  // error names the sysctl, e.g. `sysctl net.netfilter.nf_conntrack_max: Permission denied`
  // (it is read-only outside the initial network namespace).
  [[nodiscard]] core::Result<size_t, Error> apply(const std::vector<SysctlEntry>& entries) const;

  // The first entry whose current value differs, as `sysctl net.ipv4.ip_forward is 0, want
  // 1`; nullopt when all match.
  [[nodiscard]] core::Result<std::optional<std::string>, Error> check(
      const std::vector<SysctlEntry>& entries) const;

 private:
  [[nodiscard]] std::string path(std::string_view name) const;
  std::string root_;
};

}  // namespace hanat::netfilter
