// SPDX-License-Identifier: GPL-2.0-or-later
#pragma once
// DOC: core/daemon is hanatd's shell: it owns the loop's long-lived handles (signals,
// status socket), holds the current config and its generation, turns SIGHUP into a
// validated reload and SIGTERM/SIGINT into a clean exit, and tells systemd about each
// (sd_notify READY/RELOADING/STOPPING). Later modules (engine, EC2, probes, netfilter)
// plug in here.

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <system_error>

#include "core/config/config.h"
#include "core/daemon/node.h"
#include "core/daemon/report.h"
#include "core/daemon/state_dir.h"
#include "core/metrics/textfile.h"
#include "core/status/status_server.h"
#include "core/uv/uv.h"

namespace hanat::daemon {

// Wall-clock time for status output; monotonic time (the loop's) for durations.
using WallTime = std::chrono::system_clock::time_point;

struct ReloadResult {
  bool attempted = false;
  bool ok = true;
  WallTime at{};
  std::string error;  // every config error, one per line
};

class Daemon {
 public:
  Daemon(uv::Loop& loop, std::string config_path, config::Config initial,
         bool handover_on_stop = true);
  ~Daemon();
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;

  // Opens the status socket and installs signal handlers; `why` explains a failure.
  [[nodiscard]] std::error_code start(std::string* why);
  // Re-reads the config file (what SIGHUP and `hanatctl reload` do). All or nothing: a
  // file with errors, a change of a key that needs a restart, or a part that cannot be
  // applied (agent port) keeps the running config whole; the result says why.
  const ReloadResult& reload();
  // SIGTERM/SIGINT: the node hands its routes over (unless --no-handover), then the daemon
  // closes every handle so the loop run returns.
  void request_stop(const char* reason);
  // Closes every handle now.
  void stop(const char* reason);

  [[nodiscard]] std::uint64_t generation() const { return generation_; }
  // hanatd's exit status: 0, or 1 after a fatal error of the running node.
  [[nodiscard]] int exit_code() const { return exit_code_; }
  [[nodiscard]] const config::Config& config() const { return *config_; }
  [[nodiscard]] const ReloadResult& last_reload() const { return last_reload_; }
  [[nodiscard]] status::Json status_json() const;
  // Everything the metrics show, and the Prometheus text built from it (what
  // `hanatctl metrics` prints and the [metrics] textfile holds).
  [[nodiscard]] Report report() const;
  [[nodiscard]] core::Result<std::string, std::string> metrics_text() const;

 private:
  uv::Loop& loop_;
  std::string config_path_;
  std::shared_ptr<const config::Config> config_;
  std::uint64_t generation_ = 1;
  WallTime loaded_at_;
  ReloadResult last_reload_;
  std::chrono::milliseconds started_;
  WallTime started_wall_;
  std::unique_ptr<status::StatusServer> status_;
  std::unique_ptr<uv::Signal> sighup_, sigterm_, sigint_;
  std::unique_ptr<uv::Timer> watchdog_;
  std::unique_ptr<uv::Timer> exit_timer_;
  std::unique_ptr<uv::Timer> status_timer_;  // systemd STATUS= line
  std::string last_summary_;
  std::unique_ptr<Node> node_;
  std::unique_ptr<metrics::MetricsTextfile> textfile_;
  // Starts, moves, re-times or stops the [metrics] textfile writer to match config_.
  void apply_metrics_config();
  bool handover_on_stop_ = true;
  bool stopping_ = false;
  // Set by `hanatctl prepare-restart`: a SIGTERM until then (loop time) is a restart, not
  // a stop (see stop_kind.h).
  std::chrono::milliseconds restart_prepared_until_{-1};
  // Why the coming stop is a restart ("" when it is a stop).
  std::string restart_reason() const;
  int exit_code_ = 0;
  // The drain mark in [status] state_directory: `hanatctl drain` writes it, `undrain`
  // removes it, and a daemon started while it exists starts drained.
  std::unique_ptr<StateDir> state_;
  bool drained_by_mark_ = false;  // started drained because the mark existed
  std::string drain_mark_error_;  // why the mark could not be read or written ("" if fine)
  // Writes (on) or removes (off) the drain mark; logs and keeps a failure for status.
  void persist_drain(bool on);
};

// sd_notify with the given state; a no-op outside systemd (no NOTIFY_SOCKET).
void notify(const std::string& state);
std::string iso8601(WallTime t);
std::int64_t unix_ms(WallTime t);

}  // namespace hanat::daemon
