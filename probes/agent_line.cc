// SPDX-License-Identifier: GPL-2.0-or-later
#include "probes/agent_line.h"

#include <array>
#include <utility>

namespace hanat::probes {
namespace {

bool valid_id_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '_' || c == '.' || c == ':';
}

core::Unexpected<std::string> fail(std::string msg) {
  return core::Unexpected<std::string>("agent line: " + std::move(msg));
}

std::string quoted(std::string_view s) {
  std::string out = "'";
  for (char c : s.substr(0, 40)) out += (c >= 0x20 && c < 0x7f) ? c : '?';
  if (s.size() > 40) out += "...";
  out += "'";
  return out;
}

struct FactSlot {
  std::string_view key;
  bool AgentFacts::*field;
};
constexpr std::array<FactSlot, 4> kFacts{{{"forwarding", &AgentFacts::forwarding},
                                          {"masquerade", &AgentFacts::masquerade},
                                          {"egress", &AgentFacts::egress_ok},
                                          {"draining", &AgentFacts::draining}}};

// EC2 instance ids are at most 19 characters ("i-" and 17 hex digits). Longer ids are cut
// by the formatter, so that an up line's facts and a down line's reason always fit in
// kAgentLineMax (an id of ~200 characters pushed them out and the line no longer parsed),
// and refused by the parser, so that every accepted line formats back to itself (both
// found by tests/fuzz/fuzz_agent_line).
constexpr std::size_t kIdMax = 64;

}  // namespace

std::string format_agent_line(const AgentReply& r) {
  std::string id;
  for (char c : std::string_view(r.instance_id).substr(0, kIdMax)) id += valid_id_char(c) ? c : '_';
  if (id.empty()) id = "unknown";
  std::string line = (r.up ? "up " : "down ") + id;
  if (r.up) {
    for (const auto& f : kFacts) {
      line += ' ';
      line += f.key;
      line += (r.facts.*f.field) ? "=1" : "=0";
    }
  } else {
    std::string reason;
    for (char c : r.reason) reason += (c >= 0x20 && c < 0x7f) ? c : ' ';
    // Cut to what fits before deciding whether it is blank: a reason whose only printable
    // characters lay past the cut gave a line the parser refuses (found by
    // tests/fuzz/fuzz_agent_line). "down " and an id of at most kIdMax leave room.
    const std::size_t room = kAgentLineMax - line.size() - 1;
    if (reason.size() > room) reason.resize(room);
    if (reason.find_first_not_of(' ') == std::string::npos) reason = "unspecified";
    line += ' ';
    line += reason;
  }
  if (line.size() > kAgentLineMax) line.resize(kAgentLineMax);
  line += '\n';
  return line;
}

core::Result<AgentReply, std::string> parse_agent_line(std::string_view line) {
  if (!line.empty() && line.back() == '\n') line.remove_suffix(1);
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  if (line.size() > kAgentLineMax) {
    return fail("longer than " + std::to_string(kAgentLineMax) + " bytes");
  }
  for (std::size_t i = 0; i < line.size(); ++i) {
    auto c = static_cast<unsigned char>(line[i]);
    if (c < 0x20 || c >= 0x7f) {
      return fail("control or non-ASCII byte " + std::to_string(c) + " at offset " +
                  std::to_string(i));
    }
  }
  if (line.empty()) return fail("empty");

  auto next_token = [&line]() {
    auto sp = line.find(' ');
    std::string_view tok = line.substr(0, sp);
    line = sp == std::string_view::npos ? std::string_view{} : line.substr(sp + 1);
    return tok;
  };

  AgentReply r;
  std::string_view verb = next_token();
  if (verb == "up") {
    r.up = true;
  } else if (verb == "down") {
    r.up = false;
  } else {
    return fail("expected 'up' or 'down' first, got " + quoted(verb));
  }
  std::string_view id = next_token();
  if (id.empty()) return fail("missing instance id after '" + std::string(verb) + "'");
  if (id.size() > kIdMax) {
    return fail("instance id longer than " + std::to_string(kIdMax) + " characters");
  }
  for (char c : id) {
    if (!valid_id_char(c)) return fail("invalid character in instance id " + quoted(id));
  }
  r.instance_id = std::string(id);

  if (!r.up) {
    if (line.find_first_not_of(' ') == std::string_view::npos) {
      return fail("'down' without a reason");
    }
    r.reason = std::string(line);
    return r;
  }

  std::array<bool, kFacts.size()> seen{};
  while (!line.empty()) {
    std::string_view tok = next_token();
    if (tok.empty()) continue;  // tolerate double spaces
    auto eq = tok.find('=');
    if (eq == std::string_view::npos) return fail("fact " + quoted(tok) + " is not key=value");
    std::string_view key = tok.substr(0, eq);
    std::string_view value = tok.substr(eq + 1);
    for (std::size_t i = 0; i < kFacts.size(); ++i) {
      if (kFacts[i].key != key) continue;
      if (value != "0" && value != "1") {
        return fail("fact '" + std::string(key) + "' has value " + quoted(value) +
                    ", expected 0 or 1");
      }
      if (seen[i]) return fail("fact '" + std::string(key) + "' given twice");
      seen[i] = true;
      r.facts.*kFacts[i].field = value == "1";
    }
    // Unknown keys: ignored on purpose (forward compatibility).
  }
  for (std::size_t i = 0; i < kFacts.size(); ++i) {
    if (!seen[i]) return fail("'up' line lacks fact '" + std::string(kFacts[i].key) + "'");
  }
  return r;
}

AgentReply reply_for(const SelfHealth& h, std::string instance_id) {
  AgentReply r;
  r.instance_id = std::move(instance_id);
  std::string reason;
  auto add = [&reason](std::string_view s) {
    if (!reason.empty()) reason += "; ";
    reason += s;
  };
  if (!h.forwarding) {
    add(h.forwarding_detail.empty() ? std::string("ip forwarding is off") : h.forwarding_detail);
  }
  if (!h.masquerade) add("masquerade rule missing");
  if (!h.egress_ok) {
    add(h.egress_detail.empty() ? std::string("egress check failed")
                                : "egress check failed: " + h.egress_detail);
  }
  r.up = reason.empty();
  r.reason = std::move(reason);
  r.facts = AgentFacts{.forwarding = h.forwarding,
                       .masquerade = h.masquerade,
                       .egress_ok = h.egress_ok,
                       .draining = h.draining};
  return r;
}

}  // namespace hanat::probes
