// SPDX-License-Identifier: GPL-2.0-or-later
#include "core/log/log.h"

#include <sys/stat.h>
#include <sys/uio.h>
#include <systemd/sd-daemon.h>
#include <systemd/sd-journal.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>

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

namespace {

int syslog_priority(Level l) {
  switch (l) {
    case Level::Debug:
      return 7;
    case Level::Info:
      return 6;
    case Level::Notice:
      return 5;
    case Level::Warning:
      return 4;
    case Level::Error:
      return 3;
  }
  return 6;
}

// journald's field-name rules (systemd.journal-fields(7)): A-Z, 0-9 and '_', not starting
// with '_' (those are trusted fields the journal sets itself) or a digit, at most 64 bytes.
bool valid_field_name(std::string_view n) {
  if (n.empty() || n.size() > 64 || n[0] == '_' || (n[0] >= '0' && n[0] <= '9')) return false;
  return std::all_of(n.begin(), n.end(), [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
  });
}

}  // namespace

std::vector<std::string> journal_entry(Level level, std::string_view id,
                                       const std::vector<Field>& fields, std::string_view message) {
  std::vector<std::string> out;
  out.push_back("MESSAGE=" + std::string(message));
  out.push_back("PRIORITY=" + std::to_string(syslog_priority(level)));
  out.emplace_back("SYSLOG_IDENTIFIER=hanatd");
  if (!id.empty()) out.push_back("MESSAGE_ID=" + std::string(id));
  for (const Field& f : fields) {
    if (!valid_field_name(f.name)) continue;
    out.push_back(f.name + "=" + f.value);
  }
  return out;
}

bool stderr_is_journal() {
  // sd_journal_sendv's entries carry fields a stream line cannot; but only when stderr is
  // really the journal: a daemon run from a terminal, by a test or with output redirected
  // keeps writing lines. JOURNAL_STREAM is "<st_dev>:<st_ino>" of the stream systemd
  // connected (systemd.exec(5)); inherited by children, so it must match our stderr.
  const char* js = std::getenv("JOURNAL_STREAM");
  if (js == nullptr) return false;
  struct stat st {};
  if (::fstat(2, &st) != 0) return false;
  unsigned long long dev = 0, ino = 0;
  if (std::sscanf(js, "%llu:%llu", &dev, &ino) != 2) return false;
  return dev == static_cast<unsigned long long>(st.st_dev) &&
         ino == static_cast<unsigned long long>(st.st_ino);
}

namespace {
std::deque<EventRecord>& events() {
  static std::deque<EventRecord> e;
  return e;
}
}  // namespace

const std::deque<EventRecord>& recent_events() {
  return events();
}

void clear_events() {
  events().clear();
}

void event(Level level, std::string_view id, const std::vector<Field>& fields,
           std::string_view message) {
  auto& ev = events();
  if (ev.size() == kEventHistory) ev.pop_front();
  ev.push_back(EventRecord{std::chrono::system_clock::now(), level, std::string(id), fields,
                           std::string(message)});
  if (!enabled(level)) return;
  if (stderr_is_journal()) {
    std::vector<std::string> entry = journal_entry(level, id, fields, message);
    std::vector<iovec> iov;
    iov.reserve(entry.size());
    for (std::string& e : entry) iov.push_back(iovec{e.data(), e.size()});
    if (sd_journal_sendv(iov.data(), static_cast<int>(iov.size())) == 0) return;
  }
  write(level, message);
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
