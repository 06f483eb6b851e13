// SPDX-License-Identifier: GPL-2.0-or-later
#include "core/daemon/hooks.h"

#include <csignal>

#include "core/config/config.h"
#include "core/log/log.h"

namespace hanat::daemon {

HookRunner::~HookRunner() = default;  // Process handles close; children are not killed

void HookRunner::fire(const config::HooksConfig& cfg,
                      const std::vector<std::pair<std::string, std::string>>& vars) {
  if (cfg.on_transition.empty()) return;
  std::string event;
  for (const auto& [k, v] : vars)
    if (k == "HANAT_EVENT") event = v;
  const std::string what =
      "hook " + log::quote(cfg.on_transition.front()) + (event.empty() ? "" : " (" + event + ")");
  if (runs_.size() >= static_cast<size_t>(cfg.max_in_flight)) {
    ++counts_["dropped"];
    log::warning(what + ": " + std::to_string(runs_.size()) +
                 " hooks still running (hooks.max_in_flight), not run");
    return;
  }
  // A fixed PATH rather than hanatd's: under systemd it is the manager's default anyway,
  // and the hook must not depend on how hanatd was started.
  std::vector<std::string> env{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"};
  for (const auto& [k, v] : vars) env.push_back(k + "=" + v);
  const std::uint64_t id = next_id_++;
  // uv_spawn returns once the child has exec'd (libuv waits on a close-on-exec pipe to
  // report exec errors): a fork and an exec of a small daemon, well under a millisecond,
  // and never the hook's own run time.
  auto run = std::make_unique<Run>(loop_);
  run->what = what;
  auto ec = run->proc.spawn(loop_, cfg.on_transition, env,
                            [this, id](std::int64_t st, int sig) { finished(id, st, sig); });
  if (ec) {
    // Checked when the config was read; the file can still go away or lose its x bit.
    ++counts_["spawn_error"];
    log::warning(what + ": cannot run: " + ec.message());
    return;  // run's destructor closes the handle uv_spawn initialised
  }
  // The timeout counts from the spawn, not from the start of this loop iteration.
  loop_.update_time();
  (void)run->timer.start(cfg.timeout, std::chrono::milliseconds(0), [this, id, t = cfg.timeout] {
    auto it = runs_.find(id);
    if (it == runs_.end()) return;
    it->second->killed = true;
    log::warning(it->second->what + ": still running after " + config::format_duration(t) +
                 " (hooks.timeout), killed");
    (void)it->second->proc.kill(SIGKILL);
  });
  runs_.emplace(id, std::move(run));
}

void HookRunner::finished(std::uint64_t id, std::int64_t status, int sig) {
  auto it = runs_.find(id);
  if (it == runs_.end()) return;
  std::unique_ptr<Run> run = std::move(it->second);
  runs_.erase(it);
  if (run->killed) {
    ++counts_["timeout"];
  } else if (status == 0 && sig == 0) {
    ++counts_["ok"];
    log::info(run->what + ": exited 0");
  } else {
    ++counts_["failed"];
    log::warning(run->what + (sig != 0 ? ": killed by signal " + std::to_string(sig)
                                       : ": exited with status " + std::to_string(status)));
  }
  // `run` (its Process, whose callback this is, and its timer) is destroyed here; the
  // wrappers allow that from inside their own callback.
}

}  // namespace hanat::daemon
