// SPDX-License-Identifier: GPL-2.0-or-later
// fuzz_agent_line: the one-line agent check reply (probes/agent_line.h), both directions.
// Invariants: a parsed line, formatted again, parses to the same reply, and formatting is
// stable from then on; any reply built from the input formats into a line of at most
// kAgentLineMax bytes plus "\n" that parses, with the same up/down state and facts.
#include "probes/agent_line.h"
#include "tests/fuzz/fuzz_check.h"

namespace hanat::fuzz {
namespace {

void parse_direction(std::string_view line) {
  auto r = probes::parse_agent_line(line);
  if (!r) {
    FUZZ_CHECK(r.error().rfind("agent line: ", 0) == 0, "error not prefixed: " + r.error());
    return;
  }
  const std::string text = probes::format_agent_line(*r);
  auto again = probes::parse_agent_line(text);
  FUZZ_CHECK(again.has_value(), "formatted '" + text + "' refused: " + again.error());
  FUZZ_CHECK(*again == *r, "'" + text + "' parses to a different reply than the input line");
  FUZZ_CHECK(probes::format_agent_line(*again) == text, "formatting is not stable");
}

void format_direction(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return;
  // Byte 0: up and the four facts; then the instance id up to the first NUL, then the reason.
  probes::AgentReply r;
  r.up = (data[0] & 1) != 0;
  r.facts.forwarding = (data[0] & 2) != 0;
  r.facts.masquerade = (data[0] & 4) != 0;
  r.facts.egress_ok = (data[0] & 8) != 0;
  r.facts.draining = (data[0] & 16) != 0;
  std::string_view rest = as_view(data + 1, size - 1);
  const std::size_t nul = rest.find('\0');
  r.instance_id = std::string(rest.substr(0, nul));
  if (nul != std::string_view::npos) r.reason = std::string(rest.substr(nul + 1));
  const std::string text = probes::format_agent_line(r);
  FUZZ_CHECK(!text.empty() && text.back() == '\n', "formatted line lacks its newline");
  FUZZ_CHECK(text.size() <= probes::kAgentLineMax + 1, "formatted line too long");
  auto parsed = probes::parse_agent_line(text);
  FUZZ_CHECK(parsed.has_value(), "formatted '" + text + "' refused: " + parsed.error());
  FUZZ_CHECK(parsed->up == r.up, "up/down changed by formatting");
  if (r.up) FUZZ_CHECK(parsed->facts == r.facts, "facts changed by formatting");
}

}  // namespace

int agent_line(const std::uint8_t* data, std::size_t size) {
  parse_direction(as_view(data, size));
  format_direction(data, size);
  return 0;
}

}  // namespace hanat::fuzz

HANAT_FUZZ_ENTRY(agent_line)
