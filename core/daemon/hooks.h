// SPDX-License-Identifier: GPL-2.0-or-later
#pragma once
// DOC: [hooks] on_transition — a command run on every transition, for the operators who
// drive keepalived's notify_master/notify_backup scripts today. The command runs as a
// child of hanatd with the transition in its environment (HANAT_EVENT, HANAT_STATE, ...:
// conf/hanat.toml lists them), never blocking the loop: uv_spawn starts it, libuv reaps
// it, a timer SIGKILLs it at [hooks] timeout. At most [hooks] max_in_flight run at once;
// a transition beyond that is dropped with a WARNING and counted, rather than queued
// behind hooks that hang. Exit statuses, timeouts and drops are logged and counted
// (hanat_hook_runs_total). The config is read at every transition, so a reload applies to
// the next one. A hook still running when hanatd exits is left to finish (the last
// transitions of a stop are exactly what a notify script wants to see).

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/config/config.h"
#include "core/uv/uv.h"

namespace hanat::daemon {

class HookRunner {
 public:
  // Outcome -> runs: "ok", "failed" (non-zero exit or a signal), "timeout" (killed at the
  // timeout), "dropped" (max_in_flight reached), "spawn_error" (exec failed).
  using Counts = std::map<std::string, std::uint64_t>;

  explicit HookRunner(uv::Loop& loop) : loop_(loop) {}
  ~HookRunner();
  HookRunner(const HookRunner&) = delete;
  HookRunner& operator=(const HookRunner&) = delete;

  // Runs cfg.on_transition (nothing when it is empty) with `vars` (name, value) added to a
  // minimal environment (PATH, and HANAT_* only).
  void fire(const config::HooksConfig& cfg,
            const std::vector<std::pair<std::string, std::string>>& vars);

  [[nodiscard]] const Counts& counts() const { return counts_; }
  [[nodiscard]] size_t in_flight() const { return runs_.size(); }

 private:
  struct Run {
    explicit Run(uv::Loop& loop) : timer(loop) {}
    uv::Process proc;
    uv::Timer timer;
    std::string what;  // "hook \"/path\" (peer i-...: up -> down)" for the log
    bool killed = false;
  };
  void finished(std::uint64_t id, std::int64_t status, int sig);

  uv::Loop& loop_;
  std::map<std::uint64_t, std::unique_ptr<Run>> runs_;
  std::uint64_t next_id_ = 1;
  Counts counts_;
};

}  // namespace hanat::daemon
