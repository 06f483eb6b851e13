// SPDX-License-Identifier: GPL-2.0-or-later
// DOC: core/daemon/node.cc is the node's frame: construction, start() (the data-plane
// manager and its health callbacks, the data plane applied from the config alone, then the
// start-up phases of node_startup.cc), the
// event queue that feeds the engine (post, pump) and the timer for its next deadline, and
// the operator's controls: shutdown (handover, then exit), drain and reconfigure.

#include "core/daemon/node.h"

#include "core/daemon/node_util.h"
#include "core/log/log.h"

namespace hanat::daemon {

using node_util::Clock;
using node_util::now;
using std::chrono::milliseconds;

Node::Node(uv::Loop& loop, std::shared_ptr<const config::Config> cfg, bool handover_on_stop,
           Hooks hooks, bool plan_only)
    : loop_(loop),
      cfg_(std::move(cfg)),
      handover_on_stop_(handover_on_stop),
      hooks_(std::move(hooks)),
      plan_only_(plan_only),
      phase_timer_(loop),
      engine_timer_(loop),
      notice_timer_(loop),
      refresh_timer_(loop),
      started_(Clock::now()) {}

Node::~Node() = default;

void Node::start() {
  imds_ = std::make_unique<ec2::ImdsClient>(
      loop_, ec2::ImdsOptions{cfg_->ec2.metadata_endpoint, std::chrono::seconds(21600),
                              milliseconds(1000), cfg_->ec2.allow_imdsv1});
  if (plan_only_) return run_phase();
  nat_ = std::make_unique<netfilter::NatManager>(
      loop_,
      netfilter::ManagerOptions{cfg_->nat.drift_check_interval, milliseconds(1000), "/proc/sys"});
  forward_ = std::make_unique<ForwardCheck>(*nat_);
  nat_->on_health_change([this](const netfilter::Health& h) {
    nat_healthy_ = h.ok;
    nat_judged_ = true;
    nat_reason_ = h.reason;
    if (h.ok) {
      log::notice("data plane: masquerade table and forwarding verified");
    } else {
      log::warning("data plane unhealthy: " + h.reason);
    }
    feed_self_health();
  });
  nat_->on_repair([](const netfilter::Repair& r) {
    // Something outside hanat changed its table or a sysctl (a firewall reload runs `nft
    // flush ruleset` first); flows that started meanwhile are purged next (on_purge).
    log::warning("data plane: repaired " + r.what + " (noticed by " + r.trigger + ")");
  });
  nat_->on_purge([](const netfilter::PurgeOutcome& p) {
    // A flow whose first packet was forwarded while the table was missing was never NATed;
    // its entry is gone now, so its next packet makes a fresh, NATed one.
    if (!p.error.empty()) {
      log::warning("data plane: purge of un-NATed flows failed: " + p.error + ", ignoring");
    } else if (p.purged > 0) {
      log::warning("data plane: " + std::to_string(p.purged) +
                   " conntrack entries forwarded without NAT purged, their flows are NATed from "
                   "the next packet");
    }
  });
  forward_->on_forward_change([this](const engine::ForwardWatch::Verdict& v) {
    if (v.state == engine::Health::Down) {
      log::warning("forward check: down (" + v.detail + "): handing routes away");
    } else {
      log::notice(std::string("forward check: ") + engine::to_string(v.state) + " (" + v.detail +
                  ")");
    }
    feed_self_health();
  });
  watch_forwarding();
  // Data plane first: forwarding and the masquerade table need nothing but the config
  // ([nat] names the egress interface and the private CIDRs), so they go in before the
  // first IMDS or EC2 request. A NAT host that boots while IMDS or the EC2 API is down (or
  // its role has no credentials yet) then forwards and NATs at once for the routes that
  // already point at it; joining the group (identity, the source/destination check,
  // discovery) follows with its own retries, and the engine's ApplyNat re-applies the same
  // spec when it starts.
  apply_nat();
  start_steering();
  run_phase();
}

void Node::post(engine::Event ev) {
  queue_.push_back(std::move(ev));
  pump();
}

void Node::pump() {
  // Events raised while actions execute (a synchronous NAT apply) are queued, so handle()
  // is never re-entered.
  if (pumping_ || !machine_) return;
  pumping_ = true;
  do {
    while (!queue_.empty()) {
      engine::Event ev = std::move(queue_.front());
      queue_.pop_front();
      for (const auto& a : machine_->handle(ev)) execute(a);
    }
    release_stray_eips();  // may apply the NAT, which may queue an event
  } while (!queue_.empty());
  pumping_ = false;
  arm_engine_timer();
}

void Node::arm_engine_timer() {
  auto d = machine_ ? machine_->next_deadline() : std::nullopt;
  if (!d) {
    (void)engine_timer_.stop();
    return;
  }
  auto in = std::chrono::ceil<milliseconds>(*d - now());
  if (in < milliseconds(0)) in = milliseconds(0);
  (void)engine_timer_.start(in, milliseconds(0), [this] { post(engine::Tick{now()}); });
}

void Node::shutdown(bool handover) {
  stopping_ = true;
  if (!handover || !handover_on_stop_ || !machine_ || phase_ != Phase::Running) {
    if (!handover_on_stop_) log::notice("--no-handover: exiting without moving routes");
    phase_ = Phase::Stopped;
    if (hooks_.exit_ready) hooks_.exit_ready();
    return;
  }
  post(engine::Shutdown{now()});
}

void Node::drain(bool on) {
  if (!machine_) {
    drain_pending_ = on;
    return;
  }
  post(engine::Drain{on, now()});
}

std::vector<std::string> Node::reconfigure(std::shared_ptr<const config::Config> cfg) {
  // Probes, egress check and agent port first: they are the only part that can fail, and
  // on failure nothing else has changed.
  if (auto errors = reconfigure_probes(*cfg); !errors.empty()) return errors;
  const bool forward_changed = !cfg_ || cfg_->forward != cfg->forward;
  const bool channel_changed =
      !cfg_ || cfg_->handover != cfg->handover || agent_address(*cfg_) != agent_address(*cfg) ||
      config::effective_channel_port(*cfg_) != config::effective_channel_port(*cfg) || !channel_;
  cfg_ = std::move(cfg);
  if (forward_changed) watch_forwarding();
  if (channel_changed) restart_channel();
  if (!machine_) {
    // Still starting (IMDS or EC2 not answering yet): the data plane already runs from the
    // config alone (start()), so the new [nat] section is applied now, not at join.
    if (nat_ && !plan_only_) apply_nat();
    return {};
  }
  // The engine decides what survives (kinds, thresholds, destinations, timers) and
  // re-applies the NAT table from the new [nat] section.
  auto e = std::make_shared<engine::Config>(engine_config(discovered_));
  discovered_.engine = *e;
  post(engine::ConfigChanged{e, now()});
  // The group's lists or the refresh interval may have changed: re-read the members now.
  start_refresh();
  refresh_members("configuration reloaded");
  return {};
}

}  // namespace hanat::daemon
