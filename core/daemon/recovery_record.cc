// SPDX-License-Identifier: GPL-2.0-or-later
#include "core/daemon/recovery_record.h"

#include <charconv>

namespace hanat::daemon {

namespace {

bool valid_action(std::string_view a) {
  return a == "reboot" || a == "stop-start" || a == "terminate";
}

}  // namespace

std::string format_recoveries(const std::vector<RecoveryEntry>& entries) {
  std::string out = "# hanatd: the last recovery action per peer (peer, action, unix ms, result)\n";
  for (const auto& e : entries) {
    std::string result = e.result;
    for (char& c : result)
      if (c == '\n' || c == '\t') c = ' ';  // one line per entry, whatever EC2 said
    out += e.peer + '\t' + e.action + '\t' + std::to_string(e.at_unix_ms) + '\t' + result + '\n';
  }
  return out;
}

ParsedRecoveries parse_recoveries(std::string_view text) {
  ParsedRecoveries p;
  std::size_t n = 0;
  while (!text.empty()) {
    ++n;
    std::size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
    if (line.empty() || line.front() == '#') continue;
    std::vector<std::string_view> f;
    for (int i = 0; i < 3; ++i) {
      std::size_t tab = line.find('\t');
      if (tab == std::string_view::npos) break;
      f.push_back(line.substr(0, tab));
      line = line.substr(tab + 1);
    }
    auto bad = [&](const std::string& why) {
      p.errors.push_back("line " + std::to_string(n) + ": " + why);
    };
    if (f.size() != 3) {
      bad("not \"<instance-id> TAB <action> TAB <unix ms> TAB <result>\"");
      continue;
    }
    RecoveryEntry e;
    e.peer = std::string(f[0]);
    e.action = std::string(f[1]);
    e.result = std::string(line);
    if (e.peer.rfind("i-", 0) != 0 || e.peer.size() < 3) {
      bad("\"" + e.peer + "\" is not an instance id");
      continue;
    }
    if (!valid_action(e.action)) {
      bad("action \"" + e.action + "\" is not reboot, stop-start or terminate");
      continue;
    }
    auto [end, ec] = std::from_chars(f[2].data(), f[2].data() + f[2].size(), e.at_unix_ms);
    if (ec != std::errc() || end != f[2].data() + f[2].size() || e.at_unix_ms < 0) {
      bad("time \"" + std::string(f[2]) + "\" is not milliseconds since the epoch");
      continue;
    }
    p.entries.push_back(std::move(e));
  }
  return p;
}

}  // namespace hanat::daemon
