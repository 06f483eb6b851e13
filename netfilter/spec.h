// SPDX-License-Identifier: GPL-2.0-or-later
#pragma once
// DOC: netfilter — hanat's data plane on the NAT host itself.
//
// hanat owns exactly one nftables table (`table ip hanat` by default) holding one base chain
// (`type nat hook postrouting priority srcnat`) with masquerade rules, plus the forwarding and
// conntrack sysctls a NAT needs. It never reads or writes any other table, except the
// per-peer `ip hanat_steer_*` tables of a connection-keeping handover (steer.h).
//
//   spec.h     NatSpec / SysctlSpec (plain values; the daemon maps `[nat]` onto them), Error
//   batch.h    pure: NatSpec -> one atomic nfnetlink batch (libnftnl), and its description
//   compare.h  pure: desired NatSpec vs the table read back from the kernel
//   netlink.h  I/O: commit a batch (libmnl, ACK per message), dump the table back
//   sysctl.h   I/O: /proc/sys writes, read back and verified
//   conntrack.h  pure decision + I/O (ctnetlink): purge flows that were forwarded without NAT
//   steer_batch.h  pure: the steering table of a connection-keeping handover (flow set, mark)
//   steer.h    I/O: the tunnel, rule and route to a leaving peer, its table; start-up cleanup
//   manager.h  on the loop: apply, verify, drift check on a timer, repair, health
//
// Nothing here logs above debug (STYLE C5): every outcome is a value for the shell to log.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <variant>
#include <vector>

#include "core/base/result.h"

namespace hanat::netfilter {

// Source NAT to a fixed address for some sources, ahead of the masquerade rules: the
// sources of a zone whose Elastic IP this host carries on a secondary private IP leave with
// that IP (EC2 maps it 1:1 to the EIP), not with the primary IP masquerade would pick.
struct SnatRule {
  std::vector<std::string> source_cidrs;  // IPv4 "a.b.c.d/len"; at least one
  std::string address;                    // IPv4 "a.b.c.d"
  friend bool operator==(const SnatRule&, const SnatRule&) = default;
};

// The desired masquerade state. One rule per source CIDR (or one rule for all sources when
// the list is empty), all matching the egress interface by name. `snat` rules come first:
// `oifname "<if>" ip saddr <cidr> snat to <address>`, one per CIDR, in order.
struct NatSpec {
  std::string table = "hanat";
  std::string egress_interface;
  std::vector<std::string> source_cidrs;  // IPv4 "a.b.c.d/len"; empty = any source
  bool fully_random = false;  // masquerade fully-random (NF_NAT_RANGE_PROTO_RANDOM_FULLY)
  bool persistent = false;    // masquerade persistent (NF_NAT_RANGE_PERSISTENT)
  // Two counting chains that measure the forward path (see batch.h, kForwardInChain): what
  // arrived to be forwarded and what left. Off by default so that a plain NatSpec is the
  // masquerade table alone; hanatd turns it on from `[forward] check`.
  bool forward_counters = false;
  // The post-NAT leak counter (see batch.h, kLeakChain): forwarded packets that leave the
  // egress interface still carrying a configured source. Off by default for the same reason;
  // hanatd turns it on with the forward counters.
  bool leak_counter = false;
  std::vector<SnatRule> snat;

  friend bool operator==(const NatSpec&, const NatSpec&) = default;
};

// Forwarding and NAT-tuning sysctls. net.ipv4.ip_forward is always set to 1: a NAT that does
// not forward is no NAT. The optional values are left alone when unset.
struct SysctlSpec {
  std::optional<uint64_t> conntrack_max;              // net.netfilter.nf_conntrack_max
  std::optional<uint32_t> tcp_timeout_established_s;  // ..._tcp_timeout_established
  std::optional<uint32_t> tcp_timeout_close_wait_s;   // ..._tcp_timeout_close_wait
  std::optional<uint32_t> udp_timeout_s;              // ..._udp_timeout
  std::optional<uint32_t> udp_timeout_stream_s;       // ..._udp_timeout_stream
  // net.netfilter.nf_conntrack_events: 1 for the connection-keeping handover (ct_events.h:
  // the default 2 gives flows older than the event listener no DESTROY event).
  std::optional<uint32_t> conntrack_events;

  friend bool operator==(const SysctlSpec&, const SysctlSpec&) = default;
};

// An expected failure. `message` names the object that failed (the table, chain, rule,
// interface, CIDR or sysctl) so the shell can log it as is.
struct Error {
  std::error_code code;
  std::string message;
};

using Status = core::Result<std::monostate, Error>;
[[nodiscard]] inline Status ok() {
  return std::monostate{};
}
[[nodiscard]] inline core::Unexpected<Error> fail(std::error_code code, std::string message) {
  return core::Unexpected<Error>(Error{code, std::move(message)});
}
// The code of a failed system call or a netlink error (the kernel's errno), as Error keeps it.
[[nodiscard]] inline std::error_code errno_code(int e) {
  return {e, std::generic_category()};
}

struct Ipv4Prefix {
  uint32_t addr = 0;  // host byte order, host bits zero
  uint8_t len = 0;

  friend bool operator==(const Ipv4Prefix&, const Ipv4Prefix&) = default;
};

// Parses "a.b.c.d/len" (or a bare address, meaning /32). Host bits must be zero: a rule for
// 198.18.0.1/15 is almost certainly a typo, and nft would silently mask it.
[[nodiscard]] core::Result<Ipv4Prefix, std::string> parse_ipv4_prefix(std::string_view text);
[[nodiscard]] std::string to_string(const Ipv4Prefix& p);

// Checks a NatSpec without touching the system: names, lengths, CIDRs. Error messages name
// the field and quote the value, e.g. `nat egress interface "": empty`.
[[nodiscard]] Status validate(const NatSpec& spec);

// `oifname "eth0" ip saddr 198.18.0.0/15 masquerade fully-random` — the rule as nft prints it.
[[nodiscard]] std::string rule_text(const NatSpec& spec, const std::optional<Ipv4Prefix>& src);
// `oifname "eth0" ip saddr 198.18.2.0/24 snat to 198.18.0.20`.
[[nodiscard]] std::string snat_rule_text(const NatSpec& spec, const Ipv4Prefix& src,
                                         const std::string& address);

}  // namespace hanat::netfilter
