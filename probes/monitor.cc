// SPDX-License-Identifier: GPL-2.0-or-later
#include "probes/monitor.h"

#include <algorithm>
#include <map>
#include <set>

namespace hanat::probes {

using Err = core::Unexpected<std::string>;

core::Result<std::unique_ptr<PeerMonitor>, std::string> PeerMonitor::create(
    uv::Loop& loop, std::vector<PeerSpec> peers, const ProbeOptions& opts, MonitorCallbacks cb,
    IcmpMode icmp_mode) {
  if (std::string e = check_options(opts); !e.empty()) return Err("probes: " + e);
  auto bind = make_bind_options(opts.source_address, opts.interface);
  if (!bind) return Err("probes: " + bind.error());

  std::unique_ptr<PeerMonitor> m(new PeerMonitor());
  m->cb_ = std::move(cb);
  std::vector<Target> targets;
  std::set<std::string> ids;
  bool need_icmp = false;
  for (std::size_t p = 0; p < peers.size(); ++p) {
    const PeerSpec& s = peers[p];
    std::string where = "peer '" + s.id + "'";
    if (s.id.empty()) return Err("peer #" + std::to_string(p + 1) + ": empty id");
    if (!ids.insert(s.id).second) return Err(where + ": listed twice");
    auto addr = parse_ipv4(s.address, where + " address");
    if (!addr) return Err(addr.error());
    if (s.kinds.empty()) return Err(where + ": no probe kinds");
    std::vector<std::pair<ProbePath, sockaddr_in>> paths{{ProbePath::Private, *addr}};
    if (!s.public_address.empty()) {
      auto pub = parse_ipv4(s.public_address, where + " public address");
      if (!pub) return Err(pub.error());
      paths.emplace_back(ProbePath::Public, *pub);
    }
    std::set<ProbeKind> seen;
    for (ProbeKind k : s.kinds) {
      if (!seen.insert(k).second) return Err(where + ": probe kind '" + to_string(k) + "' twice");
    }
    std::map<ProbeKind, std::size_t> first_of_kind;  // this peer's private-path target per kind
    for (const auto& [path, paddr] : paths) {
      for (ProbeKind k : s.kinds) {
        Target t{.name = s.id, .kind = k, .addr = paddr, .expect_id = {}, .same_phase_as = {}};
        // A kind's probes on both paths go out together: the peer is DOWN only once every
        // path reached `fall`, so a public probe a slot behind the private one would delay
        // that moment by the slot (measured with bench/failover link_cut: ~40 ms at defaults).
        if (auto it = first_of_kind.find(k); it != first_of_kind.end()) {
          t.same_phase_as = it->second;
        } else {
          first_of_kind.emplace(k, targets.size());
        }
        if (k == ProbeKind::Tcp) {
          if (s.tcp_port == 0) return Err(where + ": tcp probe without a tcp port");
          t.addr.sin_port = htons(s.tcp_port);
        } else if (k == ProbeKind::Agent) {
          if (s.agent_port == 0) return Err(where + ": agent probe without an agent port");
          t.addr.sin_port = htons(s.agent_port);
          t.expect_id = s.id;
        } else {
          need_icmp = true;
        }
        targets.push_back(std::move(t));
        m->peer_of_.push_back(p);
        m->path_of_.push_back(path);
      }
    }
    m->health_.emplace_back(s.id, s.kinds, core::Thresholds{.rise = opts.rise, .fall = opts.fall});
  }
  // Interleave kinds of one peer across the interval: targets are ordered peer by peer, and
  // the schedule spreads consecutive phases, so a peer's ICMP and agent probes are 1/n apart
  // (n phases: one per peer and kind, whatever the number of paths).
  if (need_icmp) {
    auto icmp = IcmpProber::open(loop, icmp_mode, *bind);
    if (!icmp) return Err("probes: " + icmp.error());
    m->icmp_ = std::move(icmp).value();
  }
  m->tcp_ = std::make_unique<TcpProber>(loop, *bind);
  PeerMonitor* self = m.get();
  m->runner_ = std::make_unique<Runner>(
      loop, std::move(targets), opts.interval, opts.timeout, m->icmp_.get(), m->tcp_.get(),
      [self](std::size_t t, const ProbeResult& r) { self->on_result(t, r); });
  return m;
}

const PeerHealth* PeerMonitor::peer(std::string_view id) const {
  for (const auto& h : health_) {
    if (h.id() == id) return &h;
  }
  return nullptr;
}

void PeerMonitor::on_result(std::size_t target, const ProbeResult& raw) {
  ProbeResult r = raw;
  r.path = path_of_[target];
  if (r.path != ProbePath::Private) {
    if (cb_.on_result) cb_.on_result(r);
    return;
  }
  PeerHealth& h = health_[peer_of_[target]];
  PeerHealth::Update u = h.record(r.kind, r.outcome, r.at);
  // Raw result first, then the transition it caused, so a consumer sees cause before effect.
  if (cb_.on_result) cb_.on_result(r);
  if (u.peer && cb_.on_transition) cb_.on_transition(*u.peer);
}

// ---- EgressCheck

core::Result<std::unique_ptr<EgressCheck>, std::string> EgressCheck::create(
    uv::Loop& loop, EgressSpec spec, const ProbeOptions& opts, EgressCallbacks cb,
    IcmpMode icmp_mode) {
  ProbeOptions timing = opts;
  timing.interface.clear();
  timing.source_address.clear();
  if (std::string e = check_options(timing); !e.empty()) return Err("egress check: " + e);
  if (spec.targets.empty()) return Err("egress check: no targets");
  if (spec.k < 1 || static_cast<std::size_t>(spec.k) > spec.targets.size()) {
    return Err("egress check: k = " + std::to_string(spec.k) + " must be between 1 and the " +
               std::to_string(spec.targets.size()) + " targets");
  }
  auto bind = make_bind_options(spec.source_address, spec.interface);
  if (!bind) return Err("egress check: " + bind.error());

  std::unique_ptr<EgressCheck> c(new EgressCheck(loop));
  c->cb_ = std::move(cb);
  c->k_ = spec.k;
  c->window_ = opts.interval * opts.fall;
  c->timeout_ = opts.timeout;
  std::vector<Target> targets;
  bool need_icmp = false;
  for (std::size_t i = 0; i < spec.targets.size(); ++i) {
    const EgressTarget& et = spec.targets[i];
    auto addr = parse_ipv4(et.address, "egress target #" + std::to_string(i + 1), et.tcp_port);
    if (!addr) return Err("egress check: " + addr.error());
    Target t{.name = et.address,
             .kind = ProbeKind::Icmp,
             .addr = *addr,
             .expect_id = {},
             .same_phase_as = {}};
    if (et.tcp_port != 0) {
      t.kind = ProbeKind::Tcp;
      t.name += ":" + std::to_string(et.tcp_port);
    } else {
      need_icmp = true;
    }
    targets.push_back(std::move(t));
  }
  if (need_icmp) {
    auto icmp = IcmpProber::open(loop, icmp_mode, *bind);
    if (!icmp) return Err("egress check: " + icmp.error());
    c->icmp_ = std::move(icmp).value();
  }
  c->tcp_ = std::make_unique<TcpProber>(loop, *bind);
  EgressCheck* self = c.get();
  c->runner_ = std::make_unique<Runner>(
      loop, std::move(targets), opts.interval, opts.timeout, c->icmp_.get(), c->tcp_.get(),
      [self](std::size_t t, const ProbeResult& r) { self->on_result(t, r); });
  return c;
}

EgressCheck::~EgressCheck() = default;

std::error_code EgressCheck::start() {
  window_state_ =
      // The first window opens one timeout late: the last first probe may legitimately take
      // that long to answer (e.g. ARP on a fresh interface), and must not count as lost.
      std::make_unique<EgressWindow>(runner_->targets().size(), k_, window_,
                                     Clock::now() + timeout_);
  last_ = core::Health::Unknown;
  if (auto e = runner_->start(); e) return e;
  evaluate();
  return {};
}

void EgressCheck::stop() {
  runner_->stop();
  (void)timer_.stop();
}

EgressWindow::Verdict EgressCheck::verdict() const {
  if (!window_state_) return {};
  return window_state_->evaluate(Clock::now());
}

void EgressCheck::on_result(std::size_t target, const ProbeResult& r) {
  window_state_->record(target, r.outcome.ok, r.at);
  if (cb_.on_result) cb_.on_result(r);
  evaluate();
}

void EgressCheck::evaluate() {
  Time now = Clock::now();
  EgressWindow::Verdict v = window_state_->evaluate(now);
  // Re-evaluate when a success ages out even if no probe completes (all targets silent).
  if (auto next = window_state_->next_change(now)) {
    auto ms = std::chrono::ceil<std::chrono::milliseconds>(*next - now);
    uv_update_time(loop_.raw());
    (void)timer_.start(ms, std::chrono::milliseconds(0), [this] { evaluate(); });
  }
  if (v.state == last_) return;
  last_ = v.state;
  if (cb_.on_change) cb_.on_change(v);
}

}  // namespace hanat::probes
