// SPDX-License-Identifier: GPL-2.0-or-later
// DOC: core/daemon/node_probes.cc wires the signals that become engine events: peer probes
// (discounted while this host's own link is down or just back), the egress self-check,
// the forward check, the agent server that answers peers' agent probes with this host's
// health, and the IMDS termination notices (spot interruption, Auto Scaling lifecycle).
// feed_self_health() sums up this host's own health for the engine.

#include <arpa/inet.h>
#include <netinet/in.h>

#include <ctime>

#include "core/daemon/lifecycle.h"
#include "core/daemon/node.h"
#include "core/daemon/node_util.h"
#include "core/log/log.h"
#include "probes/agent_line.h"

namespace hanat::daemon {

using node_util::now;
using std::chrono::milliseconds;

void Node::watch_forwarding() {
  if (!nat_) return;
  if (!cfg_->forward.check) {
    forward_->watch_forwarding(std::nullopt);
    return;
  }
  ForwardCheckOptions o;
  o.interval = cfg_->forward.interval;
  o.watch.min_packets = static_cast<std::uint64_t>(cfg_->forward.min_packets);
  o.watch.fall = cfg_->forward.fall;
  o.watch.rise = cfg_->forward.rise;
  o.watch.recheck = cfg_->forward.recheck;
  forward_->watch_forwarding(o);
}

void Node::watch_own_link() {
  // keepalived's interface tracking does the same job: a node whose own link is down goes
  // to FAULT instead of electing itself master.
  auto ifname = probes::interface_with_address(id_.private_ip);
  if (!ifname) {
    log::warning("own link not watched (" + ifname.error() +
                 "): peer probe failures are taken at face value");
    return;
  }
  auto w = probes::LinkWatch::create(loop_, *ifname, [this](bool up, probes::Time) {
    if (up) {
      log::notice("own link " + own_link_->ifname() + " is up again");
    } else {
      log::warning("own link " + own_link_->ifname() +
                   " is down: failed peer probes are not counted against the peers until it "
                   "is back");
    }
    feed_self_health();  // no recovery action while it is down
  });
  if (!w) {
    log::warning(w.error() + ": peer probe failures are taken at face value");
    return;
  }
  own_link_ = std::move(w).value();
}

core::Result<std::unique_ptr<probes::PeerMonitor>, std::string> Node::make_peer_monitor(
    const config::Config& cfg) {
  std::vector<probes::PeerSpec> peers;
  for (const auto& m : discovered_.engine.members) {
    if (m.instance_id == id_.instance_id) continue;
    probes::PeerSpec p;
    p.id = m.instance_id;
    p.address = discovered_.addresses[m.instance_id];
    if (m.public_path) p.public_address = discovered_.public_addresses[m.instance_id];
    p.kinds = cfg.probe.kinds;
    p.tcp_port = cfg.probe.tcp_port;
    p.agent_port = cfg.agent.port;
    peers.push_back(std::move(p));
  }
  if (peers.empty()) return std::unique_ptr<probes::PeerMonitor>();
  probes::ProbeOptions po;
  po.interval = cfg.probe.interval;
  po.timeout = cfg.probe.timeout;
  po.rise = cfg.probe.rise;
  po.fall = cfg.probe.fall;
  if (!own_link_) watch_own_link();
  auto mon = probes::PeerMonitor::create(
      loop_, peers, po,
      {.on_result =
           [this](const probes::ProbeResult& r) {
             note_send_delay(r);
             last_rtt_[r.peer + "/" + probes::to_string(r.kind) +
                       (r.path == probes::ProbePath::Public ? "/public" : "")] = r.outcome.rtt;
             if (r.outcome.ok) {
               probe_rtt_.try_emplace(probes::to_string(r.kind), kProbeRttBuckets)
                   .first->second.observe(std::chrono::duration<double>(r.outcome.rtt).count());
             } else {
               ++probe_failures_[{r.peer, probes::to_string(r.kind),
                                  probes::to_string(r.outcome.failure)}];
             }
             LastProbe& lp = last_probe_[r.peer][probes::to_string(r.kind)];
             lp.ok = r.outcome.ok;
             lp.failure = r.outcome.ok ? "" : probes::to_string(r.outcome.failure);
             lp.detail = r.outcome.detail;
             lp.discounted = false;
             lp.at = r.at;
             // A probe sent while our own link was down fails at its timeout, and for a
             // while after the link returns answers still get lost: neighbour entries
             // (ARP, ours and the peer's) that failed during the outage are resolved
             // again only at the next retransmission, every retrans_time_ms (1 s by
             // default). Measured in the lab's flapping drill with 50 ms probes: agent
             // probes kept failing for several hundred ms after carrier returned. So
             // the grace is one timeout + one interval + 1 s.
             const auto grace =
                 cfg_->probe.timeout + cfg_->probe.interval + std::chrono::seconds(1);
             if (!r.outcome.ok && r.outcome.failure != probes::Failure::AgentDown && own_link_ &&
                 own_link_->impaired(r.at, grace)) {
               ++discounted_failures_;
               lp.discounted = true;
               return;
             }
             engine::ProbeResult e;
             e.peer = r.peer;
             e.kind = r.kind;
             e.ok = r.outcome.ok;
             e.at = r.at;
             e.reports_down = r.outcome.failure == probes::Failure::AgentDown;
             e.path = r.path;
             post(e);
           },
       .on_transition = {}});
  if (!mon) return core::Unexpected("probes: " + mon.error());
  return std::move(mon).value();
}

core::Result<std::unique_ptr<probes::EgressCheck>, std::string> Node::make_egress(
    const config::Config& cfg) {
  if (cfg.egress.targets.empty()) return std::unique_ptr<probes::EgressCheck>();
  probes::EgressSpec es;
  for (const auto& t : cfg.egress.targets) es.targets.push_back({t.address, t.port});
  es.interface = cfg.egress.interface.empty() ? cfg.nat.egress_interface : cfg.egress.interface;
  es.k = cfg.egress.required;
  probes::ProbeOptions eo;
  eo.rise = cfg.probe.rise;
  eo.fall = cfg.probe.fall;
  eo.interval = cfg.egress.interval;
  eo.timeout = cfg.egress.timeout;
  auto eg = probes::EgressCheck::create(
      loop_, es, eo,
      {.on_result = [this](const probes::ProbeResult& r) { note_send_delay(r); },
       .on_change =
           [this](const probes::EgressWindow::Verdict& v) {
             egress_health_ = v.state;
             egress_detail_ = v.detail;
             log::notice(std::string("egress self-check: ") + engine::to_string(v.state) + " (" +
                         v.detail + ")");
             feed_self_health();
           }});
  if (!eg) return core::Unexpected("egress self-check: " + eg.error());
  return std::move(eg).value();
}

std::string Node::agent_address(const config::Config& cfg) const {
  return cfg.agent.listen_address.empty() ? id_.private_ip : cfg.agent.listen_address;
}

core::Result<std::unique_ptr<probes::AgentServer>, std::string> Node::bind_agent(
    const config::Config& cfg) {
  const std::string addr = agent_address(cfg);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(cfg.agent.port);
  if (inet_pton(AF_INET, addr.c_str(), &a.sin_addr) != 1) {
    return core::Unexpected("agent port: listen address " + log::quote(addr) +
                            " is not an IPv4 address (agent.listen_address empty: the "
                            "instance's private IP from instance metadata)");
  }
  auto server = std::make_unique<probes::AgentServer>(loop_, [this] { return agent_reply(); });
  std::string err;
  if (server->listen(a, &err)) return core::Unexpected(err);
  return server;
}

void Node::start_agent() {
  auto server = bind_agent(*cfg_);
  if (!server) {
    // Fatal: whoever holds the port answers our peers' agent checks in our name, and a
    // "down" from it makes every peer take this host's routes (systemd restarts us).
    std::string why = server.error();
    if (why.find("address already in use") != std::string::npos) {
      why +=
          " (another process holds the port: it would answer peers' agent checks for "
          "this host)";
    }
    return fatal(why);
  }
  agent_ = std::move(server).value();
  log::info("agent check: answering on " + agent_address(*cfg_) + ":" +
            std::to_string(agent_->port()));
}

void Node::fatal(const std::string& why) {
  log::error(why);
  phase_ = Phase::Stopped;
  phase_error_ = why;
  if (hooks_.fatal) hooks_.fatal(why);
}

void Node::start_peer_probes() {
  // (Re)built from the current members: at start, and when the membership changes
  // (node_members.cc). No peer left: no monitor, nothing probes a departed member.
  if (auto mon = make_peer_monitor(*cfg_); !mon) {
    log::error(mon.error());
  } else {
    peers_ = std::move(mon).value();
    if (peers_) (void)peers_->start();
  }
}

void Node::start_probes() {
  start_peer_probes();
  if (auto eg = make_egress(*cfg_); !eg) {
    log::error(eg.error());
  } else if (*eg) {
    egress_ = std::move(eg).value();
    (void)egress_->start();
  }
}

std::vector<std::string> Node::reconfigure_probes(const config::Config& next) {
  // Everything is built before anything is swapped, so that a failure leaves the running
  // probes, egress check and agent port exactly as they were (the reload is refused).
  std::vector<std::string> errors;
  const config::Config& cur = *cfg_;
  const bool running = phase_ == Phase::Running;
  const bool peers_changed = cur.probe != next.probe || cur.agent.port != next.agent.port;
  const bool egress_changed =
      cur.egress != next.egress || cur.probe.rise != next.probe.rise ||
      cur.probe.fall != next.probe.fall ||
      (next.egress.interface.empty() && cur.nat.egress_interface != next.nat.egress_interface);
  const bool agent_changed =
      agent_ && (agent_address(cur) != agent_address(next) || cur.agent.port != next.agent.port);
  std::unique_ptr<probes::PeerMonitor> peers;
  std::unique_ptr<probes::EgressCheck> egress;
  if (running && peers_changed) {
    auto m = make_peer_monitor(next);
    if (!m)
      errors.push_back(m.error());
    else
      peers = std::move(m).value();
  }
  if (running && egress_changed) {
    auto e = make_egress(next);
    if (!e)
      errors.push_back(e.error());
    else
      egress = std::move(e).value();
  }
  if (!errors.empty()) return errors;
  if (agent_changed) {
    // The member channel listens on agent.port + 1 by default: an agent moved onto the
    // channel's running port (4790 -> 4791) would find it taken. The channel is closed
    // first and reopened on its new port once the reload is through (reconfigure()); not
    // while it holds a member's flows, whose steering depends on it.
    const bool on_channel = channel_ && next.agent.port != 0 && channel_->port() == next.agent.port;
    if (on_channel && (!channel_->held().empty() || (keeper_ && !keeper_->peers().empty()))) {
      errors.push_back("agent.port: " + std::to_string(next.agent.port) +
                       " is the member channel's port, which holds a member's flows now: "
                       "reload again after the handover");
      return errors;
    }
    if (on_channel) channel_.reset();
    // The old listener is closed first: the new address may overlap it on the same port
    // (0.0.0.0:4790 -> 10.0.1.5:4790), which bind refuses while the old one listens.
    // uv_close closes the descriptor at once, only its callback waits for the loop.
    agent_.reset();
    auto a = bind_agent(next);
    if (!a) {
      errors.push_back("agent.listen_address/agent.port: " + a.error());
      auto old = bind_agent(cur);
      if (!old) {
        fatal("agent port: cannot listen again on the running address after a failed reload: " +
              old.error());
      } else {
        agent_ = std::move(old).value();
      }
      if (on_channel && machine_) start_channel();  // the running config's channel again
      return errors;
    }
    agent_ = std::move(a).value();
    log::notice("agent check: now answering on " + agent_address(next) + ":" +
                std::to_string(agent_->port()));
  }
  if (running && peers_changed) {
    // A fresh monitor: its trackers start Unknown for the new kinds, and the engine gets
    // the same kinds through ConfigChanged, so all-kinds-failed can hold again.
    peers_ = std::move(peers);
    if (peers_) (void)peers_->start();
  }
  if (running && egress_changed) {
    egress_ = std::move(egress);
    egress_health_ = engine::Health::Unknown;
    egress_detail_.clear();
    if (egress_) (void)egress_->start();
    feed_self_health();
  }
  return errors;
}

namespace {
// The instance-action time, "2026-12-03T08:40:00Z" (EC2 User Guide, "Spot Instance
// interruption notices"); nullopt when it does not read as such.
std::optional<std::chrono::system_clock::time_point> spot_time(const std::string& text) {
  std::tm tm{};
  const char* end = strptime(text.c_str(), "%Y-%m-%dT%H:%M:%S", &tm);
  if (end == nullptr || (*end != 'Z' && *end != '\0')) return std::nullopt;
  const time_t t = timegm(&tm);
  if (t == static_cast<time_t>(-1)) return std::nullopt;
  return std::chrono::system_clock::from_time_t(t);
}
}  // namespace

void Node::start_notices() {
  // Spot interruption notices appear in IMDS about two minutes before the instance is
  // stopped (EC2 User Guide, "Spot Instance interruption notices"); every Auto Scaling
  // target lifecycle state but InService takes the instance out of service (what each one
  // asks for: lifecycle.h). Poll every ec2.notice_interval, by default 5 s,
  // the interval AWS recommends for the spot notice: the two-minute warning leaves ample
  // time for a make-before-break handover, and an ASG that must wait for it gives itself
  // the time with a lifecycle hook.
  const milliseconds every = cfg_->ec2.notice_interval;
  (void)notice_timer_.start(every, every, [this] {
    if (notice_sent_) return;
    imds_->spot_instance_action(
        [this](core::Result<std::optional<ec2::SpotAction>, ec2::Ec2Error> r) {
          if (notice_sent_ || !r || !r.value()) return;
          notice_sent_ = true;
          log::notice("spot interruption notice (" + r.value()->action + " at " + r.value()->time +
                      "): handing routes over");
          post(engine::TerminationNotice{engine::TerminationKind::Spot, now()});
          // The connections kept after the handover end before the instance does.
          if (auto at = spot_time(r.value()->time)) keep_deadline(*at);
        });
    imds_->target_lifecycle_state(
        [this](core::Result<std::optional<std::string>, ec2::Ec2Error> r) {
          if (notice_sent_ || !r) return;
          on_lifecycle_state(r.value().value_or(""));
        });
  });
}

void Node::on_lifecycle_state(const std::string& s) {
  const bool changed = s != lifecycle_state_;
  lifecycle_state_ = s;
  switch (lifecycle_response(s)) {
    case LifecycleResponse::Serve:
      if (lifecycle_drained_) {
        // Back from Standby or the warm pool: serve again (only a drain this code started;
        // an operator's `hanatctl drain` stays).
        lifecycle_drained_ = false;
        log::notice("Auto Scaling lifecycle state " + log::quote(s) + ": serving again");
        drain(false);
      }
      return;
    case LifecycleResponse::Leave:
      notice_sent_ = true;
      lifecycle_leave_ = true;
      log::notice("Auto Scaling lifecycle state " + log::quote(s) +
                  ": handing routes over, then exiting");
      post(engine::TerminationNotice{engine::TerminationKind::Asg, now()});
      return;
    case LifecycleResponse::Drain:
      if (lifecycle_drained_ || !machine_) return;
      if (machine_->snapshot().drained) return;  // an operator's drain already holds
      lifecycle_drained_ = true;
      log::notice("Auto Scaling lifecycle state " + log::quote(s) +
                  ": out of service, handing routes over (draining)");
      drain(true);
      return;
    case LifecycleResponse::Unknown:
      if (changed)
        log::warning("Auto Scaling lifecycle state " + log::quote(s) +
                     " is not one this version knows, ignoring");
      return;
  }
}

std::string Node::forward_stall() const {
  if (!nat_ || forward_->forward().state() != engine::Health::Down) return {};
  return "forwarding stalled: " + forward_->forward().detail();
}

void Node::feed_self_health() {
  if (!machine_) return;
  const bool egress_ok = egress_health_ != engine::Health::Down;
  const std::string stall = forward_stall();
  engine::SelfHealth h;
  h.ok = egress_ok && stall.empty();  // the NAT's own state arrives as NatApplied
  h.detail = stall;
  if (!egress_ok) {
    h.detail += (h.detail.empty() ? "" : "; ") + ("egress self-check failed: " + egress_detail_);
  }
  h.at = now();
  // Only a configured egress check that is Up vouches for this host end to end: it clears
  // a self-suspicion (every peer silent at once) for a recovery action.
  h.egress_confirmed = egress_ && egress_health_ == engine::Health::Up;
  h.link_ok = !own_link_ || own_link_->up();
  post(h);
  if (!nat_healthy_ && nat_) {
    engine::NatApplied n;
    n.ok = false;
    n.detail = nat_reason_;
    n.at = now();
    post(n);
  }
}

std::optional<probes::AgentReply> Node::agent_reply() const {
  // The port is bound right after identity (so that a port held by another process is found
  // at once), before the data plane has been applied and verified. Until then this host has
  // nothing to report: "down" would make every peer take its routes at once, although after
  // a restart its table and forwarding are still in place and carrying traffic. Silence is
  // what a stopped hanatd gives too: peers keep the host UP on ICMP meanwhile.
  if (!nat_judged_) return std::nullopt;
  probes::SelfHealth h;
  h.masquerade = nat_healthy_;
  h.forwarding = nat_healthy_ || nat_reason_.find("ip_forward") == std::string::npos;
  if (std::string stall = forward_stall(); !stall.empty()) {
    h.forwarding = false;
    h.forwarding_detail = std::move(stall);
  }
  h.egress_ok = egress_health_ != engine::Health::Down;
  h.egress_detail = egress_detail_;
  if (machine_) {
    auto s = machine_->state();
    h.draining = s == engine::State::Draining || s == engine::State::Drained ||
                 s == engine::State::Leaving || s == engine::State::ExitReady ||
                 s == engine::State::Failing || s == engine::State::Unhealthy;
  }
  return probes::reply_for(h, id_.instance_id);
}

void Node::note_send_delay(const probes::ProbeResult& r) {
  send_delay_.add(std::chrono::duration_cast<std::chrono::microseconds>(r.sent - r.planned));
}

}  // namespace hanat::daemon
