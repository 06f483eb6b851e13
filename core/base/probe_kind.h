// SPDX-License-Identifier: GPL-2.0-or-later
#pragma once
// The three ways hanat probes a peer. One enum for the whole daemon: the engine judges the
// kinds, probes/ measures them and the config names them, so it lives in core/base where
// all three can include it without probes/ importing the engine.

#include <cstdint>

namespace hanat::core {

enum class ProbeKind : std::uint8_t { Icmp, Tcp, Agent };
inline constexpr int kProbeKinds = 3;

const char* to_string(ProbeKind k);

// The network path a probe of a peer takes. Private: the peer's private address inside the
// VPC. Public: its public IP or Elastic IP, reached through the internet gateway - a second
// path that a security-group rule or NACL on the private side does not cut, so a partition of
// the private path between two healthy NATs is not mistaken for a dead peer (DESIGN rule 4).
enum class ProbePath : std::uint8_t { Private, Public };
inline constexpr int kProbePaths = 2;

const char* to_string(ProbePath p);

}  // namespace hanat::core
