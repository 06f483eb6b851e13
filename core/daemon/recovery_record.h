// SPDX-License-Identifier: GPL-2.0-or-later
#pragma once
// DOC: core/daemon/recovery_record is the text of the state directory's "recovery" file:
// the last recovery action per peer, one line each,
//   <instance-id> TAB <action> TAB <unix ms> TAB <result>
// with '#' comment lines. Pure (no I/O): node_recovery.cc reads and writes the file
// through StateDir.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace hanat::daemon {

struct RecoveryEntry {
  std::string peer;    // i-...
  std::string action;  // reboot | stop-start | terminate
  std::int64_t at_unix_ms = 0;
  std::string result;  // "in progress: <step>", "ok", "failed: <why>"
};

[[nodiscard]] std::string format_recoveries(const std::vector<RecoveryEntry>& entries);

struct ParsedRecoveries {
  std::vector<RecoveryEntry> entries;
  std::vector<std::string> errors;  // "line N: <what is wrong>", one per bad line (skipped)
};
// A line that is not an entry is reported and skipped; the others are kept.
[[nodiscard]] ParsedRecoveries parse_recoveries(std::string_view text);

}  // namespace hanat::daemon
