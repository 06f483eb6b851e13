// SPDX-License-Identifier: GPL-2.0-or-later
#pragma once
// DOC: core/log writes one line per message to stderr with an sd-daemon priority prefix
// ("<5>" for notice...), which journald turns into the entry's priority. Only the shell
// logs above debug (STYLE.md C5); debug output is per component and can be switched at
// run time (config reload), as FRR's "debug" commands are.

#include <chrono>
#include <cstddef>
#include <deque>
#include <string>
#include <string_view>
#include <vector>

#include "core/config/config.h"

namespace hanat::log {

using Level = config::LogLevel;

void configure(Level level, const std::vector<std::string>& debug_components);
[[nodiscard]] bool enabled(Level level);
[[nodiscard]] bool debug_enabled(std::string_view component);

void write(Level level, std::string_view message);
inline void error(std::string_view m) {
  write(Level::Error, m);
}
inline void warning(std::string_view m) {
  write(Level::Warning, m);
}
inline void notice(std::string_view m) {
  write(Level::Notice, m);
}
inline void info(std::string_view m) {
  write(Level::Info, m);
}
// One journal field beside the message, e.g. {"HANAT_PEER", "i-0abc"}. Names follow
// journald's rules: upper case letters, digits and underscores, not starting with "_".
struct Field {
  std::string name;
  std::string value;
};

// Catalogue ids of the decisions hanatd logs (journalctl MESSAGE_ID=...), stable across
// versions so that alerting and `journalctl MESSAGE_ID=` filters keep working.
namespace message_id {
inline constexpr std::string_view kPeerChanged = "2adffd3009724728b3e2fbffd11db1ae";
inline constexpr std::string_view kRouteWrite = "d037baf3d89b4d8da25f46babf74b205";
inline constexpr std::string_view kRouteWriteFailed = "25287c6bb61f436ebb5d822e82b91316";
inline constexpr std::string_view kStateChanged = "276bee8dc85749749f2554d964c6e278";
inline constexpr std::string_view kHandoverFinished = "0f113f9f33bc4723a62df80bd91469ad";
inline constexpr std::string_view kRecovery = "3ad4ea2979c24b9581bbbb82d021d8c3";
}  // namespace message_id

// A decision: the same line as write() on stderr, or, when stderr is journald's stream
// (systemd sets JOURNAL_STREAM to its device:inode), one journal entry sent directly with
// MESSAGE_ID and the fields, so `journalctl MESSAGE_ID=... HANAT_PEER=...` finds it. A
// failed send falls back to the stderr line: a message is never lost to a field.
void event(Level level, std::string_view id, const std::vector<Field>& fields,
           std::string_view message);

// The last decisions event() saw (whatever the log level), oldest first, for
// `hanatctl events`: what the operator asks "why did it move?" without the journal.
struct EventRecord {
  std::chrono::system_clock::time_point at;
  Level level = Level::Notice;
  std::string id;
  std::vector<Field> fields;
  std::string message;
};
inline constexpr std::size_t kEventHistory = 256;
[[nodiscard]] const std::deque<EventRecord>& recent_events();
void clear_events();  // tests

// The journal entry event() sends (MESSAGE=, PRIORITY=, SYSLOG_IDENTIFIER=, MESSAGE_ID=,
// then the fields; a field with an invalid name is dropped). Exposed for tests.
[[nodiscard]] std::vector<std::string> journal_entry(Level level, std::string_view id,
                                                     const std::vector<Field>& fields,
                                                     std::string_view message);
// Whether stderr is the journal stream JOURNAL_STREAM names (its "device:inode").
[[nodiscard]] bool stderr_is_journal();

// Written when the level is debug or the component's debug output is on.
void debug(std::string_view component, std::string_view m);

// Quotes a user-controlled string for a log line ("eth0" -> "\"eth0\""), escaping
// control characters so a hostile value cannot forge log lines.
std::string quote(std::string_view s);

}  // namespace hanat::log
