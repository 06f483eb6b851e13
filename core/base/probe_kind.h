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

}  // namespace hanat::core
