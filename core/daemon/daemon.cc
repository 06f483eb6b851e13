// SPDX-License-Identifier: GPL-2.0-or-later
#include "core/daemon/daemon.h"

#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdlib>
#include <ctime>

#include "core/daemon/stop_kind.h"
#include "core/log/log.h"

namespace hanat::daemon {

void notify(const std::string& state) {
  (void)sd_notify(0, state.c_str());
}

std::int64_t unix_ms(WallTime t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

std::string iso8601(WallTime t) {
  std::time_t secs = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

namespace {

// The drain mark's file name in [status] state_directory.
constexpr const char* kDrainMark = "drained";

std::string monotonic_usec() {
  // systemd's notify-reload protocol pairs RELOADING=1 with the monotonic time at which
  // the reload began; older managers ignore the field.
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return std::to_string(static_cast<long long>(ts.tv_sec) * 1000000LL + ts.tv_nsec / 1000);
}

}  // namespace

Daemon::Daemon(uv::Loop& loop, std::string config_path, config::Config initial,
               bool handover_on_stop)
    : loop_(loop),
      config_path_(std::move(config_path)),
      config_(std::make_shared<const config::Config>(std::move(initial))),
      loaded_at_(std::chrono::system_clock::now()),
      started_(loop.now()),
      started_wall_(loaded_at_),
      handover_on_stop_(handover_on_stop) {
  log::configure(config_->log.level, config_->log.debug);
}

Daemon::~Daemon() = default;

std::error_code Daemon::start(std::string* why) {
  const auto& sc = config_->status;
  status_ = std::make_unique<status::StatusServer>(
      loop_, status::ServerOptions{sc.socket, sc.mode, sc.group, sc.max_clients,
                                   sc.max_request_bytes, sc.idle_timeout, 1024 * 1024});
  status_->on("status", [this](const json_t*) { return status_json(); });
  status_->on("metrics", [this](const json_t*) {
    auto text = metrics_text();
    if (!text) return status::Json(json_pack("{s:b, s:s}", "ok", 0, "error", text.error().c_str()));
    return status::Json(json_pack("{s:s}", "text", text->c_str()));
  });
  status_->on("reload", [this](const json_t*) {
    // Synchronous: the reply carries the outcome and the generation now running, so
    // `hanatctl reload` knows whether this file is in effect.
    log::notice("reload requested over the status socket");
    const ReloadResult& r = reload();
    json_t* o = json_pack("{s:b, s:b, s:I}", "ok", 1, "applied", r.ok ? 1 : 0, "generation",
                          static_cast<json_int_t>(generation_));
    if (!r.ok) json_object_set_new(o, "error", json_string(r.error.c_str()));
    return status::Json(o);
  });
  status_->on("drain", [this](const json_t*) {
    log::notice("drain requested over the status socket");
    node_->drain(true);
    persist_drain(true);
    json_t* o = json_pack("{s:s}", "result", "draining");
    if (!drain_mark_error_.empty()) {
      json_object_set_new(o, "warning",
                          json_string(("not kept across a restart: " + drain_mark_error_).c_str()));
    }
    return status::Json(o);
  });
  status_->on("undrain", [this](const json_t*) {
    log::notice("undrain requested over the status socket");
    node_->drain(false);
    persist_drain(false);
    drained_by_mark_ = false;
    json_t* o = json_pack("{s:s}", "result", "undrained");
    if (!drain_mark_error_.empty()) {
      json_object_set_new(o, "warning", json_string(drain_mark_error_.c_str()));
    }
    return status::Json(o);
  });
  status_->on("events", [](const json_t* req) {
    // The last decisions, oldest first; {"limit": N} keeps the newest N.
    json_int_t limit = static_cast<json_int_t>(log::kEventHistory);
    if (const json_t* l = json_object_get(req, "limit"); l != nullptr) {
      if (!json_is_integer(l) || json_integer_value(l) < 1) {
        return status::Json(
            json_pack("{s:b, s:s}", "ok", 0, "error", "limit: expected a positive integer"));
      }
      limit = json_integer_value(l);
    }
    const auto& all = log::recent_events();
    const std::size_t skip = all.size() > static_cast<std::size_t>(limit)
                                 ? all.size() - static_cast<std::size_t>(limit)
                                 : 0;
    json_t* arr = json_array();
    for (std::size_t i = skip; i < all.size(); ++i) {
      const log::EventRecord& e = all[i];
      json_t* fields = json_object();
      for (const auto& f : e.fields)
        json_object_set_new(fields, f.name.c_str(), json_string(f.value.c_str()));
      json_array_append_new(
          arr,
          json_pack("{s:s, s:I, s:s, s:s, s:s, s:o}", "at", iso8601(e.at).c_str(), "unix_ms",
                    static_cast<json_int_t>(unix_ms(e.at)), "level", config::to_string(e.level),
                    "message_id", e.id.c_str(), "message", e.message.c_str(), "fields", fields));
    }
    return status::Json(json_pack("{s:o}", "events", arr));
  });
  status_->on("prepare-restart", [this](const json_t* req) {
    // The next SIGTERM within this many seconds is a restart: exit without handing the
    // routes over. 60 s covers a package upgrade's unpack-to-postinst time; 0 cancels.
    json_int_t within = 60;
    if (const json_t* w = json_object_get(req, "within_s"); w != nullptr) {
      if (!json_is_integer(w) || json_integer_value(w) < 0 || json_integer_value(w) > 3600) {
        return status::Json(json_pack("{s:b, s:s}", "ok", 0, "error",
                                      "within_s: expected an integer from 0 to 3600"));
      }
      within = json_integer_value(w);
    }
    if (within == 0) {
      restart_prepared_until_ = std::chrono::milliseconds(-1);
      log::notice("prepare-restart cancelled over the status socket");
      return status::Json(json_pack("{s:s}", "result", "cancelled"));
    }
    restart_prepared_until_ = loop_.now() + std::chrono::seconds(within);
    log::notice("restart prepared over the status socket: a stop within " + std::to_string(within) +
                " s keeps this host's routes");
    return status::Json(json_pack("{s:s, s:I}", "result", "restart prepared", "within_s",
                                  static_cast<json_int_t>(within)));
  });
  status_->on("adopt", [this](const json_t* req) {
    const json_t* t = json_object_get(req, "table");
    if (!json_is_string(t)) {
      return status::Json(
          json_pack("{s:b, s:s}", "ok", 0, "error", "adopt needs \"table\": \"rtb-...\""));
    }
    std::string refused = node_->adopt(json_string_value(t));
    if (!refused.empty())
      return status::Json(json_pack("{s:b, s:s}", "ok", 0, "error", refused.c_str()));
    return status::Json(json_pack("{s:s}", "result", "adopted"));
  });
  if (std::error_code ec = status_->start(why)) return ec;

  sighup_ = std::make_unique<uv::Signal>(loop_);
  sigterm_ = std::make_unique<uv::Signal>(loop_);
  sigint_ = std::make_unique<uv::Signal>(loop_);
  std::error_code ec = sighup_->start(SIGHUP, [this](int) { reload(); });
  if (!ec) ec = sigterm_->start(SIGTERM, [this](int) { request_stop("SIGTERM"); });
  if (!ec) ec = sigint_->start(SIGINT, [this](int) { request_stop("SIGINT"); });
  if (ec) {
    *why = "cannot install signal handlers: " + ec.message();
    return ec;
  }
  // systemd's watchdog (WatchdogSec=): ping at half the interval from a loop timer, so a
  // wedged loop stops the pings and systemd restarts the daemon.
  uint64_t watchdog_usec = 0;
  if (sd_watchdog_enabled(0, &watchdog_usec) > 0 && watchdog_usec > 0) {
    auto period = std::chrono::milliseconds(std::max<uint64_t>(1, watchdog_usec / 2000));
    watchdog_ = std::make_unique<uv::Timer>(loop_);
    if (std::error_code wec = watchdog_->start(period, period, [] { notify("WATCHDOG=1"); })) {
      *why = "cannot start the watchdog timer: " + wec.message();
      return wec;
    }
    log::info("systemd watchdog enabled, pinging every " + config::format_duration(period));
  }
  exit_timer_ = std::make_unique<uv::Timer>(loop_);
  Node::Hooks hooks;
  hooks.exit_ready = [this] {
    // Called from inside the node's own event handling: stop on the next loop turn, not
    // under its feet.
    (void)exit_timer_->start(std::chrono::milliseconds(0), std::chrono::milliseconds(0),
                             [this] { stop("handover done"); });
  };
  hooks.fatal = [this](const std::string& reason) {
    exit_code_ = 1;
    log::error("hanatd: cannot run: " + reason + "; exiting");
    notify("STATUS=failed: " + reason);
    (void)exit_timer_->start(std::chrono::milliseconds(0), std::chrono::milliseconds(0),
                             [this] { stop("fatal error"); });
  };
  node_ = std::make_unique<Node>(loop_, config_, handover_on_stop_, std::move(hooks));
  // A drain outlives the process (DESIGN rule 10 keeps routes across a restart; an operator
  // who drained a host for maintenance must not see it take routes back because hanatd
  // restarted meanwhile). The node hands the drain to the engine once it runs.
  state_ = std::make_unique<StateDir>(config_->status.state_directory);
  if (auto mark = state_->read(kDrainMark); !mark) {
    drain_mark_error_ = mark.error();
    log::warning("drain mark: " + mark.error() + ", starting undrained");
  } else if (mark.value()) {
    drained_by_mark_ = true;
    log::notice("drain mark " + log::quote(state_->file(kDrainMark)) +
                " exists: starting drained (hanatctl undrain removes it)");
    node_->drain(true);
  }
  node_->start();
  apply_metrics_config();
  // `systemctl status hanat` shows one line about what the daemon is doing; refresh it
  // when it changes.
  status_timer_ = std::make_unique<uv::Timer>(loop_);
  (void)status_timer_->start(std::chrono::milliseconds(1000), std::chrono::milliseconds(1000),
                             [this] {
                               std::string s = node_ ? node_->summary() : "";
                               if (s == last_summary_) return;
                               last_summary_ = s;
                               notify("STATUS=" + s);
                             });
  log::notice("hanatd " HANAT_VERSION " started: config " + log::quote(config_path_) +
              ", status socket " + log::quote(sc.socket));
  notify("READY=1\nSTATUS=running, config generation 1\nMAINPID=" + std::to_string(getpid()));
  return {};
}

const ReloadResult& Daemon::reload() {
  notify("RELOADING=1\nMONOTONIC_USEC=" + monotonic_usec());
  last_reload_.attempted = true;
  last_reload_.at = std::chrono::system_clock::now();
  auto refuse = [this](const std::vector<std::string>& errors) -> const ReloadResult& {
    last_reload_.ok = false;
    last_reload_.error.clear();
    for (const auto& e : errors) last_reload_.error += (last_reload_.error.empty() ? "" : "\n") + e;
    log::error("config " + log::quote(config_path_) + ": reload failed, keeping generation " +
               std::to_string(generation_) + ":");
    for (const auto& e : errors) log::error("  " + e);
    notify("READY=1\nSTATUS=running, config generation " + std::to_string(generation_) +
           " (last reload failed)");
    return last_reload_;
  };
  auto loaded = config::load(config_path_);
  if (!loaded) {
    std::vector<std::string> errors;
    for (const auto& e : loaded.error()) errors.push_back(e.to_string());
    return refuse(errors);
  }
  // All or nothing: a key that only a restart can apply refuses the whole file, rather
  // than run a mix of the old and the new (which "reloaded" would hide).
  std::vector<std::string> errors;
  // What the file leaves to the host is looked up again: the default route may have moved.
  if (auto host = config::apply_host_defaults(loaded.value()); !host) {
    errors.push_back(config_path_ + ": " + host.error());
  } else if (!host->empty()) {
    log::info(config_path_ + ": " + *host);
  }
  for (const auto& key : config::restart_keys(*config_, loaded.value()))
    errors.push_back(config_path_ + ": " + key + ": needs a restart");
  // An interface that does not exist would fail every NAT apply after the reload and hand
  // this host's routes away: refused, like a syntax error.
  for (const auto& m : config::missing_interfaces(loaded.value()))
    errors.push_back(config_path_ + ": " + m);
  if (!errors.empty()) return refuse(errors);
  if (auto w = config::readable_secrets(loaded.value(), config_path_)) log::warning(*w);
  auto next = std::make_shared<const config::Config>(std::move(loaded).value());
  if (node_) {
    for (auto& e : node_->reconfigure(next)) errors.push_back(std::move(e));
    if (!errors.empty()) return refuse(errors);
  }
  status_->set_limits(next->status.max_clients, next->status.max_request_bytes,
                      next->status.idle_timeout);
  log::configure(next->log.level, next->log.debug);
  config_ = std::move(next);
  ++generation_;
  apply_metrics_config();
  loaded_at_ = last_reload_.at;
  last_reload_.ok = true;
  last_reload_.error.clear();
  log::notice("config " + log::quote(config_path_) + ": reloaded, generation " +
              std::to_string(generation_));
  notify("READY=1\nSTATUS=running, config generation " + std::to_string(generation_));
  return last_reload_;
}

void Daemon::request_stop(const char* reason) {
  if (stopping_) {
    // A second signal while handing over, or while the handed-over flows drain: stop now.
    // The drain ends first (End to the taker, the steering tunnel removed), so the taker
    // stops steering at once instead of when this host's probes fail.
    if (node_ && node_->end_keep_drain()) return;
    return stop(reason);
  }
  stopping_ = true;
  const std::string restart = restart_reason();
  if (restart.empty()) {
    log::notice(std::string("hanatd stopping (") + reason + ")");
  } else {
    log::notice(std::string("hanatd restarting (") + reason + ", " + restart +
                "): exiting without moving routes; the nftables table and forwarding stay in "
                "place");
  }
  notify("STOPPING=1");
  if (node_) return node_->shutdown(restart.empty());
  stop(reason);
}

std::string Daemon::restart_reason() const {
  if (restart_prepared_until_.count() >= 0 && loop_.now() <= restart_prepared_until_) {
    return "prepared by hanatctl prepare-restart";
  }
  // INVOCATION_ID is set by systemd (v232+) in every service it starts: without it there is
  // no unit whose job could be asked about, and no bus round trip is spent.
  if (std::getenv("INVOCATION_ID") == nullptr) return "";
  std::string why;
  std::string job = systemd_unit_job_type(&why);
  if (job_type_is_restart(job)) return "systemd job " + job;
  if (!why.empty()) {
    log::info("cannot read systemd's job for this unit (" + why + "): treating it as a stop");
  }
  return "";
}

void Daemon::persist_drain(bool on) {
  if (!state_) return;
  std::string err;
  if (on) {
    err = state_->write(kDrainMark, "drained at " + iso8601(std::chrono::system_clock::now()) +
                                        " by hanatctl drain; hanatctl undrain removes this file\n");
  } else {
    err = state_->remove(kDrainMark);
  }
  drain_mark_error_ = err;
  if (!err.empty()) {
    log::warning("drain mark: " + err + (on ? ": the drain ends if hanatd restarts" : ""));
  }
}

void Daemon::stop(const char* reason) {
  log::info(std::string("hanatd: closing (") + reason + ")");
  // Closing every handle lets uv_run return: the loop has nothing left to wait for.
  sighup_.reset();
  sigterm_.reset();
  sigint_.reset();
  watchdog_.reset();
  status_timer_.reset();
  if (textfile_) {
    // A clean exit removes the file: node_exporter would otherwise go on exporting the last
    // values as current (after a crash, node_textfile_mtime_seconds shows the staleness).
    textfile_->stop();
    if (auto e = textfile_->remove_file(); !e.empty()) log::warning(e + ", ignoring");
    textfile_.reset();
  }
  node_.reset();
  exit_timer_.reset();
  status_.reset();
}

status::Json Daemon::status_json() const {
  using std::chrono::duration_cast;
  auto uptime_ms = (loop_.now() - started_).count();
  json_t* cfg =
      json_pack("{s:s, s:I, s:s}", "path", config_path_.c_str(), "generation",
                static_cast<json_int_t>(generation_), "loaded_at", iso8601(loaded_at_).c_str());
  json_t* reload = json_object();
  json_object_set_new(reload, "attempted", json_boolean(last_reload_.attempted));
  json_object_set_new(reload, "ok", json_boolean(last_reload_.ok));
  if (last_reload_.attempted) {
    json_object_set_new(reload, "at", json_string(iso8601(last_reload_.at).c_str()));
  }
  if (!last_reload_.ok)
    json_object_set_new(reload, "error", json_string(last_reload_.error.c_str()));
  json_object_set_new(cfg, "last_reload", reload);
  json_t* root = json_pack(
      "{s:b, s:s, s:I, s:s, s:I, s:s, s:o}", "ok", 1, "version", HANAT_VERSION, "pid",
      static_cast<json_int_t>(getpid()), "started_at", iso8601(started_wall_).c_str(), "uptime_ms",
      static_cast<json_int_t>(uptime_ms), "group", config_->group.name.c_str(), "config", cfg);
  json_object_set_new(cfg, "loaded_at_unix_ms",
                      json_integer(static_cast<json_int_t>(unix_ms(loaded_at_))));
  if (last_reload_.attempted) {
    json_object_set_new(reload, "at_unix_ms",
                        json_integer(static_cast<json_int_t>(unix_ms(last_reload_.at))));
  }
  if (textfile_) {
    json_t* m = json_object();
    json_object_set_new(m, "textfile", json_string(textfile_->path().c_str()));
    json_object_set_new(m, "interval_ms",
                        json_integer(static_cast<json_int_t>(textfile_->interval().count())));
    json_object_set_new(m, "writes", json_integer(static_cast<json_int_t>(textfile_->writes())));
    json_object_set_new(m, "failures",
                        json_integer(static_cast<json_int_t>(textfile_->failures())));
    if (!textfile_->last_error().empty())
      json_object_set_new(m, "error", json_string(textfile_->last_error().c_str()));
    json_object_set_new(root, "metrics", m);
  }
  if (state_) {
    json_t* d = json_object();
    json_object_set_new(d, "path", json_string(state_->file(kDrainMark).c_str()));
    json_object_set_new(d, "started_drained", json_boolean(drained_by_mark_));
    if (!drain_mark_error_.empty())
      json_object_set_new(d, "error", json_string(drain_mark_error_.c_str()));
    json_object_set_new(root, "drain_mark", d);
  }
  if (node_) json_object_set_new(root, "node", node_->status().release());
  return status::Json(root);
}

Report Daemon::report() const {
  Report r;
  r.version = HANAT_VERSION;
  r.group = config_->group.name;
  r.started_unix_ms = unix_ms(started_wall_);
  r.generation = generation_;
  r.config_loaded_unix_ms = unix_ms(loaded_at_);
  r.reload_attempted = last_reload_.attempted;
  r.reload_ok = last_reload_.ok;
  r.reload_unix_ms = unix_ms(last_reload_.at);
  if (node_) node_->fill_report(r);
  return r;
}

core::Result<std::string, std::string> Daemon::metrics_text() const {
  return metrics::format(metric_families(report()));
}

void Daemon::apply_metrics_config() {
  const auto& mc = config_->metrics;
  if (textfile_ && textfile_->path() == mc.textfile && textfile_->interval() == mc.interval) return;
  if (textfile_) {
    textfile_->stop();
    // The old path is no longer ours to keep fresh: remove it rather than leave stale values.
    if (auto e = textfile_->remove_file(); !e.empty()) log::warning(e + ", ignoring");
    log::notice("metrics textfile " + log::quote(textfile_->path()) + ": stopped");
    textfile_.reset();
  }
  if (mc.textfile.empty()) return;
  textfile_ = std::make_unique<metrics::MetricsTextfile>(
      loop_, mc.textfile, mc.interval, [this] { return metric_families(report()); });
  textfile_->on_error_change([path = mc.textfile, interval = mc.interval](const std::string& e) {
    // Once per change of error, not every interval.
    if (e.empty()) {
      log::notice("metrics textfile " + log::quote(path) + ": written again");
    } else {
      log::warning(e + ", retrying every " + config::format_duration(interval));
    }
  });
  log::notice("metrics textfile " + log::quote(mc.textfile) + ": writing every " +
              config::format_duration(mc.interval));
  if (std::error_code ec = textfile_->start()) {
    log::error("metrics textfile " + log::quote(mc.textfile) +
               ": cannot start its timer: " + ec.message());
  }
}

}  // namespace hanat::daemon
