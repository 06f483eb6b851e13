#include "core/log/log.h"

#include <systemd/sd-daemon.h>

#include <algorithm>
#include <cstdio>

namespace hanat::log {

namespace {

Level g_level = Level::Info;
std::vector<std::string> g_debug;

const char* prefix(Level l) {
  switch (l) {
    case Level::Debug:
      return SD_DEBUG;
    case Level::Info:
      return SD_INFO;
    case Level::Notice:
      return SD_NOTICE;
    case Level::Warning:
      return SD_WARNING;
    case Level::Error:
      return SD_ERR;
  }
  return SD_INFO;
}

}  // namespace

void configure(Level level, const std::vector<std::string>& debug_components) {
  g_level = level;
  g_debug = debug_components;
}

bool enabled(Level level) {
  return static_cast<int>(level) >= static_cast<int>(g_level);
}

bool debug_enabled(std::string_view component) {
  return g_level == Level::Debug ||
         std::find(g_debug.begin(), g_debug.end(), component) != g_debug.end();
}

void write(Level level, std::string_view message) {
  if (!enabled(level)) return;
  std::string line = prefix(level);
  line += message;
  line += '\n';
  // One fwrite per line keeps lines whole when stderr is a pipe shared with others.
  std::fwrite(line.data(), 1, line.size(), stderr);
  std::fflush(stderr);
}

void debug(std::string_view component, std::string_view m) {
  if (!debug_enabled(component)) return;
  std::string line = prefix(Level::Debug);
  line += component;
  line += ": ";
  line += m;
  line += '\n';
  std::fwrite(line.data(), 1, line.size(), stderr);
  std::fflush(stderr);
}

std::string quote(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (u < 0x20 || u == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\x%02x", u);
      out += buf;
    } else {
      out += c;
    }
  }
  out += '"';
  return out;
}

}  // namespace hanat::log
