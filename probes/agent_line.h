// SPDX-License-Identifier: GPL-2.0-or-later
#pragma once
// The agent line: what a hanatd answers on its agent port, one line per connection, then
// it closes. Two shapes, space-separated, ASCII, terminated by "\n":
//   up <instance-id> forwarding=<0|1> masquerade=<0|1> egress=<0|1> draining=<0|1>
//   down <instance-id> <reason...>
// Unknown `key=value` facts on an up line are ignored so a newer agent can add facts
// without breaking older peers; the four known facts are required. The wire format is
// pinned by the golden lines in tests/unit/probes/agent_line_test.cc.

#include <cstddef>
#include <string>
#include <string_view>

#include "core/base/result.h"
#include "probes/types.h"

namespace hanat::probes {

// Longest line accepted or produced, "\n" excluded. A reader stops after this many bytes.
inline constexpr std::size_t kAgentLineMax = 256;

// Formats a reply as one line ending in "\n". Control characters in the reason become
// spaces and an over-long reason is cut, so the output always parses.
[[nodiscard]] std::string format_agent_line(const AgentReply& r);

// Parses one line (with or without its "\n" / "\r\n"). Errors name what is wrong and where.
[[nodiscard]] core::Result<AgentReply, std::string> parse_agent_line(std::string_view line);

// What the daemon knows about its own health; the agent server turns it into a reply.
struct SelfHealth {
  bool forwarding = false;
  bool masquerade = false;
  bool egress_ok = false;
  bool draining = false;
  std::string egress_detail;      // why egress failed, for the down reason
  std::string forwarding_detail;  // why forwarding is off, when not the ip_forward sysctl
};

// The rule: down when forwarding is off, the masquerade rule is missing or egress fails
// (the reason names each); otherwise up with the facts, draining included.
[[nodiscard]] AgentReply reply_for(const SelfHealth& h, std::string instance_id);

}  // namespace hanat::probes
