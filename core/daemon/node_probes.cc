// DOC: core/daemon/node_probes.cc wires the signals that become engine events: peer probes
// (discounted while this host's own link is down or just back), the egress self-check,
// the forward check, the agent server that answers peers' agent probes with this host's
// health, and the IMDS termination notices (spot interruption, Auto Scaling lifecycle).
// feed_self_health() sums up this host's own health for the engine.

#include <arpa/inet.h>
#include <netinet/in.h>

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
  });
  if (!w) {
    log::warning(w.error() + ": peer probe failures are taken at face value");
    return;
  }
  own_link_ = std::move(w).value();
}

void Node::start_peer_probes() {
  std::vector<probes::PeerSpec> peers;
  for (const auto& m : discovered_.engine.members) {
    if (m.instance_id == id_.instance_id) continue;
    probes::PeerSpec p;
    p.id = m.instance_id;
    p.address = discovered_.addresses[m.instance_id];
    p.kinds = cfg_->probe.kinds;
    p.tcp_port = cfg_->probe.tcp_port;
    p.agent_port = cfg_->agent.port;
    peers.push_back(std::move(p));
  }
  probes::ProbeOptions po;
  po.interval = cfg_->probe.interval;
  po.timeout = cfg_->probe.timeout;
  po.rise = cfg_->probe.rise;
  po.fall = cfg_->probe.fall;
  if (!peers.empty() && !own_link_) watch_own_link();
  if (!peers.empty()) {
    auto mon = probes::PeerMonitor::create(
        loop_, peers, po,
        {.on_result =
             [this](const probes::ProbeResult& r) {
               note_send_delay(r);
               last_rtt_[r.peer + "/" + probes::to_string(r.kind)] = r.outcome.rtt;
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
                 return;
               }
               engine::ProbeResult e;
               e.peer = r.peer;
               e.kind = r.kind;
               e.ok = r.outcome.ok;
               e.at = r.at;
               e.reports_down = r.outcome.failure == probes::Failure::AgentDown;
               post(e);
             },
         .on_transition = {}});
    if (!mon) {
      log::error("probes: " + mon.error());
    } else {
      peers_ = std::move(mon).value();
      (void)peers_->start();
    }
  }
}

void Node::start_probes() {
  start_peer_probes();
  probes::ProbeOptions po;
  po.interval = cfg_->probe.interval;
  po.timeout = cfg_->probe.timeout;
  po.rise = cfg_->probe.rise;
  po.fall = cfg_->probe.fall;
  if (!cfg_->egress.targets.empty()) {
    probes::EgressSpec es;
    for (const auto& t : cfg_->egress.targets) es.targets.push_back({t.address, t.port});
    es.interface =
        cfg_->egress.interface.empty() ? cfg_->nat.egress_interface : cfg_->egress.interface;
    es.k = cfg_->egress.required;
    probes::ProbeOptions eo = po;
    eo.interval = cfg_->egress.interval;
    eo.timeout = cfg_->egress.timeout;
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
    if (!eg) {
      log::error("egress self-check: " + eg.error());
    } else {
      egress_ = std::move(eg).value();
      (void)egress_->start();
    }
  }
  agent_ = std::make_unique<probes::AgentServer>(loop_, [this] { return agent_reply(); });
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(cfg_->agent.port);
  inet_pton(AF_INET, cfg_->agent.listen_address.c_str(), &a.sin_addr);
  std::string err;
  if (agent_->listen(a, &err)) log::error("agent check: " + err);
}

void Node::start_notices() {
  // Spot interruption notices appear in IMDS about two minutes before the instance is
  // stopped (EC2 User Guide, "Spot Instance interruption notices"); an Auto Scaling
  // lifecycle state of Terminated means the instance is leaving the group. Poll every 5 s,
  // the interval AWS recommends for the spot notice: the two-minute warning leaves ample
  // time for a make-before-break handover, and an ASG that must wait for it gives itself
  // the time with a lifecycle hook.
  (void)notice_timer_.start(milliseconds(5000), milliseconds(5000), [this] {
    if (notice_sent_) return;
    imds_->spot_instance_action(
        [this](core::Result<std::optional<ec2::SpotAction>, ec2::Ec2Error> r) {
          if (notice_sent_ || !r || !r.value()) return;
          notice_sent_ = true;
          log::notice("spot interruption notice (" + r.value()->action + " at " + r.value()->time +
                      "): handing routes over");
          post(engine::TerminationNotice{engine::TerminationKind::Spot, now()});
        });
    imds_->target_lifecycle_state(
        [this](core::Result<std::optional<std::string>, ec2::Ec2Error> r) {
          if (notice_sent_ || !r || !r.value()) return;
          const std::string& s = *r.value();
          if (s.find("Terminated") == std::string::npos) return;
          notice_sent_ = true;
          log::notice("Auto Scaling lifecycle state " + log::quote(s) + ": handing routes over");
          post(engine::TerminationNotice{engine::TerminationKind::Asg, now()});
        });
  });
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
  post(h);
  if (!nat_healthy_ && nat_) {
    engine::NatApplied n;
    n.ok = false;
    n.detail = nat_reason_;
    n.at = now();
    post(n);
  }
}

probes::AgentReply Node::agent_reply() const {
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
