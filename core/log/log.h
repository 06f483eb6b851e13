#pragma once
// DOC: core/log writes one line per message to stderr with an sd-daemon priority prefix
// ("<5>" for notice...), which journald turns into the entry's priority. Only the shell
// logs above debug (STYLE.md C5); debug output is per component and can be switched at
// run time (config reload), as FRR's "debug" commands are.

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
// Written when the level is debug or the component's debug output is on.
void debug(std::string_view component, std::string_view m);

// Quotes a user-controlled string for a log line ("eth0" -> "\"eth0\""), escaping
// control characters so a hostile value cannot forge log lines.
std::string quote(std::string_view s);

}  // namespace hanat::log
