// SPDX-License-Identifier: GPL-2.0-or-later
#pragma once
// DOC: probes/ decides whether a peer NAT is alive *and forwarding*, and whether this host's
// own egress works. Three probe kinds run on the daemon's libuv loop:
//   - ICMP echo from one socket per prober (an unprivileged ping socket when the kernel's
//     net.ipv4.ping_group_range admits our group, else a raw socket with CAP_NET_RAW);
//   - TCP connect to a port, optionally bound to a device / source address;
//   - the hanat agent check: every hanatd answers a TCP connection on its agent port with one
//     line stating its own data-plane health (agent_line.h).
// A Schedule spreads all probes over the interval and never lets two probes of the same
// target overlap. Every probe produces one raw ProbeResult (the engine runs its own rise/fall
// trackers on them); PeerHealth combines the kinds of a peer into one state for status and
// tests; EgressCheck decides whether at least k of n egress targets answered within the fall
// window. Only IPv4: AWS NAT instances masquerade IPv4 (IPv6 egress uses egress-only gateways).

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/base/probe_kind.h"

namespace hanat::probes {

using Clock = std::chrono::steady_clock;
using Time = Clock::time_point;

// The probe kinds (core/base): the probes measure what the engine judges, and the config
// names the same three.
using core::ProbeKind;
using core::ProbePath;
using core::to_string;

// Why a probe failed. `Unreachable` covers "no route" at send time and ICMP destination
// unreachable replies; `AgentDown` is a peer's agent saying "down" (or draining).
enum class Failure : std::uint8_t { None, Timeout, Refused, Unreachable, AgentDown, Error };

const char* to_string(Failure f);

// Facts a hanatd reports about its own data plane on the agent port.
struct AgentFacts {
  bool forwarding = false;  // net.ipv4.ip_forward is 1
  bool masquerade = false;  // our nftables masquerade rule is installed and verified
  bool egress_ok = false;   // the egress self-check passes
  bool draining = false;    // planned handover in progress: do not allocate routes to us
  bool operator==(const AgentFacts&) const = default;
};

struct AgentReply {
  bool up = false;
  std::string instance_id;
  AgentFacts facts;    // meaningful when up
  std::string reason;  // non-empty when down
  bool operator==(const AgentReply&) const = default;
};

// Outcome of one probe as the prober saw it.
struct Outcome {
  bool ok = false;
  Failure failure = Failure::None;
  std::string detail;                // human-readable cause ("connection refused", ...)
  std::chrono::microseconds rtt{0};  // send to answer (or to failure)
  std::optional<AgentReply> agent;   // the parsed line, for agent probes that got one
};

[[nodiscard]] inline Outcome failed(Failure f, std::string detail,
                                    std::chrono::microseconds rtt = {}) {
  Outcome o;
  o.failure = f;
  o.detail = std::move(detail);
  o.rtt = rtt;
  return o;
}
[[nodiscard]] inline Outcome succeeded(std::string detail, std::chrono::microseconds rtt = {}) {
  Outcome o;
  o.ok = true;
  o.detail = std::move(detail);
  o.rtt = rtt;
  return o;
}

// One raw probe result, the unit the daemon forwards to core/engine as ProbeResult.
struct ProbeResult {
  std::string peer;  // PeerSpec::id, or the egress target's address for egress probes
  ProbeKind kind = ProbeKind::Icmp;
  ProbePath path = ProbePath::Private;  // which of the peer's addresses was probed
  Outcome outcome;
  Time planned{};  // when the schedule wanted the probe sent
  Time sent{};     // when it was sent
  Time at{};       // when the outcome was known
};

// A peer NAT to watch. `id` is its instance id: an agent answering with another id is a
// failure (the private IP was reused by another instance).
struct PeerSpec {
  std::string id;
  std::string address;  // numeric IPv4
  std::vector<ProbeKind> kinds{ProbeKind::Icmp, ProbeKind::Agent};
  std::uint16_t tcp_port = 0;    // for ProbeKind::Tcp
  std::uint16_t agent_port = 0;  // for ProbeKind::Agent
  // Numeric IPv4 of the peer's public IP or Elastic IP; empty: not probed. Every kind is
  // probed on it too, as a second path (results carry ProbePath::Public). EC2 translates
  // the public address to the primary private one at the internet gateway, so the peer's
  // agent listening on its private address answers there as well.
  std::string public_address;
};

struct ProbeOptions {
  std::chrono::milliseconds interval{200};
  std::chrono::milliseconds timeout{200};
  int rise = 5;
  int fall = 3;
  std::string source_address;  // numeric IPv4 to send from; empty: kernel's choice
  std::string interface;       // SO_BINDTODEVICE; empty: routing decides
};

// A target of the egress self-check: ICMP echo when tcp_port is 0, else TCP connect.
struct EgressTarget {
  std::string address;
  std::uint16_t tcp_port = 0;
};

struct EgressSpec {
  std::vector<EgressTarget> targets;
  std::string interface;       // the public interface the probes must leave through
  std::string source_address;  // optional
  int k = 1;                   // healthy when at least k targets answered in the fall window
};

}  // namespace hanat::probes
