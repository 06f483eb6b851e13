// SPDX-License-Identifier: GPL-2.0-or-later
// DOC: core/daemon/node_keep_send.cc wires the connection-keeping handover's leaving side
// (DESIGN.md, "Connection survival"; keep_sender.h has the sequence).
//
//   which writes  the engine's WriteRoute while this member is Draining (operator drain) or
//                 Leaving (a stop that is not a restart, a spot notice, an Auto Scaling
//                 termination), whose target is another member's instance: the table goes to
//                 that peer. Every other write — a claim, a write to the fallback NAT
//                 gateway, everything while Failing (the data plane that would keep the flows
//                 is broken) or in an unplanned failover — goes to EC2 at once, as before.
//   the port      accept_steered() towards the peer (the VXLAN link its steered packets
//                 arrive on); a ChannelClient from this member's private address to the
//                 peer's channel port (the taker admits members by that address); at the
//                 snapshot, CtEvents for the sources of the tables handed over, then
//                 dump_flows() (events first: a flow that starts between the two is in both,
//                 which is harmless; none falls between them).
//   failback      the same sequence for the home member that reclaims its tables from this
//                 one (node_keep.cc passes its Reclaim request here, keep_reclaim()): the
//                 Sender sends the flows of those tables and streams them until they end, but
//                 holds no write (the home member writes) and this member neither drains nor
//                 exits. ask_reclaim() is the home member's side: the engine's Reclaim action
//                 becomes a Reclaim frame on the peer's channel; the peer's complete snapshot,
//                 installed here, answers it (ReclaimReady, node_keep.cc).
//   the exit      the engine's ExitReady (its routes are handed over) waits while a Sender
//                 still drains: the process stays and keeps translating the flows B steers
//                 back, status shows the flows left, and it exits once every Sender has ended
//                 (keep::drain_verdict: no flows, flow_drain, the spot notice's time, or a
//                 second SIGTERM). An Auto Scaling lifecycle hook is completed then too.

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <ctime>

#include "core/base/ipv4.h"
#include "core/daemon/node.h"
#include "core/daemon/node_util.h"
#include "core/handover/psk.h"
#include "core/log/log.h"
#include "netfilter/conntrack.h"
#include "netfilter/ct_events.h"

namespace hanat::daemon {

using node_util::now;
using node_util::sockaddr_of;
using std::chrono::milliseconds;

namespace {

// The kernel and the channel for one Sender.
class NodePort final : public keep::SenderPort {
 public:
  struct Env {
    uv::Loop& loop;
    uv::DeferredDelete& graveyard;
    handover::Identity self;
    uint32_t local = 0;
    uint32_t peer = 0;
    uint16_t port = 0;
    size_t max_flows = 0;
    // The sources of the given tables (keep::handover_sources, logged by the node).
    std::function<std::vector<std::string>(const std::vector<std::string>&)> sources;
    handover::ChannelClient::Callbacks callbacks;
    std::function<void(const netfilter::FlowEvents&)> on_events;
    // The addresses whose flows stay out of the handover (netfilter::FlowFilter).
    std::function<std::vector<uint32_t>()> not_answering;
  };
  explicit NodePort(Env env) : env_(std::move(env)) {}
  ~NodePort() override { close(); }

  std::string open() override {
    if (auto st = netfilter::accept_steered({env_.local, env_.peer}); !st)
      return "accept_steered: " + st.error().message;
    accepting_ = true;
    return connect();
  }

  core::Result<size_t, std::string> count_open() override {
    if (!filter_) return core::Unexpected(std::string("no snapshot yet"));
    auto dump = netfilter::dump_flows(*filter_, env_.max_flows);
    if (!dump) return core::Unexpected(dump.error().message);
    return static_cast<size_t>(dump->flows.size() - dump->closed);
  }

  std::string reconnect() override {
    if (client_) env_.graveyard.add(std::move(client_));
    return connect();
  }

  core::Result<std::vector<netfilter::Flow>, std::string> snapshot(
      const std::vector<std::string>& tables) override {
    auto filter = netfilter::flow_filter(env_.sources(tables));
    if (!filter) return core::Unexpected(filter.error().message);
    if (env_.not_answering) filter->not_answering = env_.not_answering();
    // A new stream for the new filter: the old one is parked (this may run inside its
    // callback's caller chain).
    if (events_) env_.graveyard.add(std::move(events_));
    auto ev = netfilter::CtEvents::open(env_.loop, *filter, env_.max_flows, env_.on_events);
    if (!ev) return core::Unexpected("conntrack events: " + ev.error().message);
    events_ = std::move(*ev);
    filter_ = *filter;
    auto dump = netfilter::dump_flows(*filter, env_.max_flows);
    if (!dump) return core::Unexpected(dump.error().message);
    if (dump->skipped > 0)
      log::warning("handover: " + std::to_string(dump->skipped) +
                   " flows beyond [handover] max_flows are not sent: they are reset");
    return std::move(dump->flows);
  }

  void send_flows(const std::vector<netfilter::Flow>& flows, bool replace, bool complete) override {
    if (client_) client_->send_flows(flows, replace, complete);
  }
  void send_destroyed(const std::vector<netfilter::Flow>& flows) override {
    if (client_) client_->send_destroyed(flows);
  }
  void send_end() override {
    if (client_) client_->send_end();
  }
  void close() override {
    // Parked, not destroyed: close() may run inside the client's or the stream's callback.
    if (events_) env_.graveyard.add(std::move(events_));
    if (client_) env_.graveyard.add(std::move(client_));
    if (accepting_) {
      accepting_ = false;
      if (auto st = netfilter::stop_accepting(env_.peer); !st)
        log::warning("handover: removing the steering tunnel: " + st.error().message +
                     ", ignoring");
    }
  }

 private:
  std::string connect() {
    client_ = std::make_unique<handover::ChannelClient>(env_.loop, env_.self, env_.callbacks);
    if (auto ec = client_->connect(sockaddr_of(env_.peer, env_.port), sockaddr_of(env_.local, 0)))
      return "member channel: connect: " + ec.message();
    return "";
  }

  Env env_;
  std::optional<netfilter::FlowFilter> filter_;  // the last snapshot's
  bool accepting_ = false;
  std::unique_ptr<handover::ChannelClient> client_;
  std::unique_ptr<netfilter::CtEvents> events_;
};

}  // namespace

bool Node::keep_write(const engine::WriteRoute& w) {
  if (!machine_) return false;
  // flow_drain 0: this member keeps no flow after its handover, so it sends none.
  if (cfg_->handover.flow_drain.count() == 0) return false;
  if (w.target.id == id_.instance_id || w.target.id == id_.eni_id) return false;
  // The peer the table goes to: routes point at a member's instance, or at its ENI when
  // the group routes to ENIs.
  std::string peer;
  for (const auto& m : discovered_.engine.members) {
    if ((w.target.kind == engine::TargetKind::Instance && w.target.id == m.instance_id) ||
        (w.target.kind == engine::TargetKind::Eni && !m.eni_id.empty() && w.target.id == m.eni_id))
      peer = m.instance_id;
  }
  if (peer.empty() || peer == id_.instance_id) return false;
  const auto state = machine_->snapshot().state;
  if (state != engine::State::Draining && state != engine::State::Leaving) return false;
  auto found = senders_.find(peer);
  const bool fresh =
      found == senders_.end() || found->second->phase() == keep::Sender::Phase::Ended;
  keep::Sender* sender = keep_sender(peer);
  if (sender == nullptr) return false;
  if (fresh)
    log::notice("handover to " + peer +
                ": keeping connections, route writes wait for its ack (at "
                "most " +
                std::to_string(keep::kAckWait.count()) + " ms)");
  auto r = sender->hold(w, now());
  if (r.writes.empty()) {
    keep_kick();
    return true;
  }
  release_writes(peer, std::move(r));
  return true;
}

keep::Sender* Node::keep_sender(const std::string& peer) {
  auto addr = discovered_.addresses.find(peer);
  if (addr == discovered_.addresses.end()) return nullptr;
  auto found = senders_.find(peer);
  keep::Sender* sender = nullptr;
  if (found != senders_.end() && found->second->phase() != keep::Sender::Phase::Ended)
    sender = found->second.get();
  if (sender == nullptr) {
    auto local = core::parse_ipv4(id_.private_ip);
    auto remote = core::parse_ipv4(addr->second);
    if (!local || !remote) return nullptr;
    handover::Identity self{cfg_->group.name, id_.instance_id, std::nullopt};
    if (!cfg_->handover.psk_file.empty()) {
      auto k = handover::load_psk(cfg_->handover.psk_file);
      if (!k) {
        log::warning("handover to " + peer + ": " + k.error() +
                     ": routes move without keeping connections");
        return nullptr;
      }
      self.psk = std::move(*k);
    }
    NodePort::Env env{loop_,
                      keep_graveyard_,
                      std::move(self),
                      *local,
                      *remote,
                      config::effective_channel_port(*cfg_),
                      static_cast<size_t>(std::max(cfg_->handover.max_flows, 1)),
                      nullptr,
                      {},
                      nullptr,
                      nullptr};
    if (env.port == 0) return nullptr;  // no port to reach the peer on (agent.port 0: tests)
    env.sources = [this, peer](const std::vector<std::string>& tables) {
      std::vector<std::string> nat;
      for (const auto& c : cfg_->nat.source_cidrs) nat.push_back(c.text);
      auto s = keep::handover_sources(tables, discovered_.table_cidrs, nat);
      std::string list;
      for (const auto& c : s.cidrs) list += (list.empty() ? "" : ", ") + c;
      log::info("handover to " + peer + ": sending the flows of " +
                (list.empty() ? std::string("every source") : list) +
                (s.fallback ? " ([nat] source_cidrs: a table's subnets are unknown)" : ""));
      return s.cidrs;
    };
    // A zone this host took over (stateful failover) fails back with its Elastic IP: the
    // flows translated to the secondary IP the EIP leaves cannot be kept here (nothing
    // answers to it once the EIP is gone, and release_eip() deletes them), and steering them
    // back here would take them from the taker, whose own entries (its connections from
    // before the failover) continue them with the same public port.
    env.not_answering = [this] {
      std::vector<uint32_t> out;
      for (const auto& [zone, e] : eips_) {
        if (zone == id_.zone || e.secondary_ip.empty()) continue;
        if (auto a = core::parse_ipv4(e.secondary_ip)) out.push_back(*a);
      }
      return out;
    };
    env.callbacks.on_ready = [this, peer] {
      auto it = senders_.find(peer);
      if (it == senders_.end()) return;
      release_writes(peer, it->second->on_ready(now()));
      keep_kick();
    };
    env.callbacks.on_ack = [this, peer](uint32_t held) {
      auto it = senders_.find(peer);
      if (it == senders_.end()) return;
      auto r = it->second->on_ack(now());
      if (!r.writes.empty()) {
        log::notice("handover to " + peer + ": " + std::to_string(held) +
                    " flows held there, writing the routes");
      } else {
        log::notice("handover to " + peer + ": " + std::to_string(held) + " flows held there");
      }
      release_writes(peer, std::move(r));
      keep_kick();
    };
    env.callbacks.on_closed = [this, peer](const std::string& why) {
      // Handled on the next loop turn: this may run inside a send of the Sender itself.
      sender_closed_[peer] = why;
      keep_kick();
    };
    env.on_events = [this, peer](const netfilter::FlowEvents& ev) {
      auto it = senders_.find(peer);
      if (it == senders_.end()) return;
      it->second->on_events(ev);
      if (it->second->flows_left() == 0) keep_kick();
    };
    keep::Sender::Settings st;
    st.flow_drain = cfg_->handover.flow_drain;
    auto made =
        std::make_unique<keep::Sender>(peer, std::make_unique<NodePort>(std::move(env)), st);
    if (keep_deadline_) made->set_deadline(*keep_deadline_);
    sender = made.get();
    // The previous Sender of this peer has ended: its port is closed (what it owned is
    // parked already), so it goes now.
    if (found != senders_.end()) {
      found->second = std::move(made);
    } else {
      senders_.emplace(peer, std::move(made));
    }
    sender_closed_.erase(peer);
  }
  return sender;
}

void Node::release_writes(const std::string& peer, keep::Sender::Release r) {
  if (r.writes.empty()) return;
  if (!r.why.empty())
    log::warning("handover to " + peer + ": " + r.why +
                 ": writing the routes anyway, connections not yet held there are reset");
  for (const auto& w : r.writes) send_route(w);
}

void Node::keep_kick() {
  (void)keep_timer_.start(milliseconds(0), milliseconds(0), [this] { keep_service(); });
}

void Node::keep_reclaim(const std::string& peer, const std::vector<std::string>& tables) {
  std::string list;
  for (const auto& t : tables) list += (list.empty() ? "" : ", ") + t;
  // flow_drain 0: this member keeps no flow after a handover; the peer writes at its bound.
  if (cfg_->handover.flow_drain.count() == 0) {
    log::info("failback: " + peer + " asks for the connections of " + list +
              ", [handover] flow_drain is 0: none are kept");
    return;
  }
  if (!machine_ || machine_->snapshot().state == engine::State::ExitReady) return;
  auto found = senders_.find(peer);
  const bool fresh =
      found == senders_.end() || found->second->phase() == keep::Sender::Phase::Ended;
  keep::Sender* sender = keep_sender(peer);
  if (sender == nullptr) {
    log::warning("failback: " + peer + " asks for the connections of " + list +
                 ", but the member channel to it cannot be opened: they are reset");
    return;
  }
  if (fresh)
    log::notice("failback: " + peer + " reclaims " + list +
                ", handing over their connections (this member keeps translating them)");
  release_writes(peer, sender->reclaim(tables, now()));
  if (sender->phase() == keep::Sender::Phase::Ended)
    log::warning("failback to " + peer + ": " + sender->problem() + ": connections are reset");
}

void Node::ask_reclaim(const engine::Reclaim& r) {
  const std::string& peer = r.peer;
  auto addr = discovered_.addresses.find(peer);
  auto local = core::parse_ipv4(id_.private_ip);
  auto remote = addr == discovered_.addresses.end() ? std::nullopt : core::parse_ipv4(addr->second);
  const uint16_t port = config::effective_channel_port(*cfg_);
  std::string list;
  for (const auto& t : r.tables) list += (list.empty() ? "" : ", ") + t;
  auto give_up = [&](const std::string& why) {
    log::warning("failback from " + peer + ": " + why + ": writing " + list + " at most " +
                 std::to_string(keep::kAckWait.count()) +
                 " ms from now, its connections are reset");
  };
  if (!local || !remote || port == 0) return give_up("no address or channel port for it");
  // Without its own steering or channel this member could not take the flows: asking would
  // only make the peer carry flows that are reset anyway.
  if (!keeper_ || !channel_)
    return give_up(keep_error_.empty() ? std::string("the member channel is not open")
                                       : keep_error_);
  handover::Identity self{cfg_->group.name, id_.instance_id, std::nullopt};
  if (!cfg_->handover.psk_file.empty()) {
    auto k = handover::load_psk(cfg_->handover.psk_file);
    if (!k) return give_up(k.error());
    self.psk = std::move(*k);
  }
  handover::ChannelClient::Callbacks cb;
  // The peer closes the request's connection once it has read it (or refuses it): the
  // client goes then (parked: this runs inside the client's own callback).
  // Which client this is: a newer request to the same peer may have replaced it already.
  auto which = std::make_shared<const handover::ChannelClient*>(nullptr);
  cb.on_closed = [this, peer, which](const std::string& why) {
    auto it = reclaim_clients_.find(peer);
    if (it == reclaim_clients_.end() || it->second.get() != *which) return;
    // Not told apart: a refusal (another psk, not a member there) closes it the same way,
    // and the engine's bound covers both; the serving member's log says which.
    log::debug("handover", "failback from " + peer + ": request connection closed: " + why);
    keep_graveyard_.add(std::move(it->second));
    reclaim_clients_.erase(it);
  };
  auto client = std::make_unique<handover::ChannelClient>(loop_, std::move(self), std::move(cb));
  *which = client.get();
  if (auto ec = client->connect(sockaddr_of(*remote, port), sockaddr_of(*local, 0)))
    return give_up("member channel: connect: " + ec.message());
  std::vector<std::string> tables = r.tables;
  if (tables.size() > handover::kMaxReclaimTables) tables.resize(handover::kMaxReclaimTables);
  client->send_reclaim(tables);
  if (auto old = reclaim_clients_.find(peer); old != reclaim_clients_.end())
    keep_graveyard_.add(std::move(old->second));
  reclaim_clients_[peer] = std::move(client);
  reclaim_waiting_[peer] = r.tables;
  log::notice("failback from " + peer + ": asking it for the connections of " + list +
              "; the route writes wait for them (at most " +
              std::to_string(keep::kAckWait.count()) + " ms)");
}

void Node::reclaim_unanswered(const engine::WriteRoute& w) {
  if (w.target.id != id_.instance_id && w.target.id != id_.eni_id) return;
  for (auto it = reclaim_waiting_.begin(); it != reclaim_waiting_.end();) {
    if (std::find(it->second.begin(), it->second.end(), w.table) == it->second.end()) {
      ++it;
      continue;
    }
    // The engine's hold (at most reclaim_wait) is over without the peer's snapshot.
    log::warning("failback from " + it->first +
                 ": its connections have not arrived, writing the routes anyway: they are "
                 "reset");
    it = reclaim_waiting_.erase(it);
  }
}

void Node::keep_service() {
  const auto t = now();
  auto asks = std::move(reclaim_asks_);
  reclaim_asks_.clear();
  for (const auto& [peer, tables] : asks) keep_reclaim(peer, tables);
  auto ready = std::move(reclaim_ready_);
  reclaim_ready_.clear();
  for (const auto& peer : ready) post(engine::ReclaimReady{peer, t});
  auto closed = std::move(sender_closed_);
  sender_closed_.clear();
  for (const auto& [peer, why] : closed) {
    auto it = senders_.find(peer);
    if (it == senders_.end()) continue;
    if (it->second->phase() != keep::Sender::Phase::Ended) {
      const std::string line = "handover to " + peer + ": member channel closed: " + why +
                               ", connecting again while the drain lasts";
      if (it->second->reconnects() == 0) {
        log::warning(line);
      } else {
        log::debug("handover", line);
      }
    }
    release_writes(peer, it->second->on_closed(why, t));
  }
  std::optional<keep::Time> next;
  for (auto& [peer, s] : senders_) {
    release_writes(peer, s->tick(t));
    if (s->phase() == keep::Sender::Phase::Ended) continue;
    const auto v = s->review(t);
    if (v != keep::DrainVerdict::Wait) {
      log::notice("handover to " + peer + ": drain over (" + keep::to_string(v) + "), " +
                  std::to_string(s->flows_left()) + " flows left; steering ended");
      continue;
    }
    if (auto d = s->next_deadline(); d && (!next || *d < *next)) next = d;
  }
  if (exit_held_ && !keep_draining()) {
    auto x = *exit_held_;
    exit_held_.reset();
    return finish_exit(x);
  }
  if (next) {
    auto in = std::chrono::ceil<milliseconds>(*next - t);
    (void)keep_timer_.start(std::max(in, milliseconds(1)), milliseconds(0),
                            [this] { keep_service(); });
  } else if (keep_draining()) {
    // Writes still held with no bound yet, or a drain counting from a release to come.
    (void)keep_timer_.start(milliseconds(100), milliseconds(0), [this] { keep_service(); });
  }
}

bool Node::keep_draining() const {
  return std::any_of(senders_.begin(), senders_.end(), [](const auto& kv) {
    return kv.second->phase() != keep::Sender::Phase::Ended;
  });
}

size_t Node::keep_flows_left() const {
  size_t n = 0;
  for (const auto& [peer, s] : senders_)
    if (s->phase() != keep::Sender::Phase::Ended) n += s->flows_left();
  return n;
}

bool Node::end_keep_drain() {
  if (!keep_draining()) return false;
  const auto t = now();
  for (auto& [peer, s] : senders_) {
    release_writes(peer, s->force(t));
    if (s->phase() != keep::Sender::Phase::Ended) {
      log::notice("handover to " + peer + ": drain ended by a second stop signal, " +
                  std::to_string(s->flows_left()) + " flows left are reset");
      (void)s->review(t);
    }
  }
  if (!exit_held_) return false;
  auto x = *exit_held_;
  exit_held_.reset();
  finish_exit(x);
  return true;
}

void Node::keep_deadline(std::chrono::system_clock::time_point at) {
  // The instance goes at `at` (EC2 may be a little late, and the notice's time has whole
  // seconds). Ending the drain before would only reset the kept connections earlier: until
  // the instance is really gone they still work, and once it is the taker finds this host
  // silent and drops the steering (keep::steer_verdict, Down). So the bound lies just past
  // the termination: it ends the drain only of an instance that EC2 did not stop after all.
  constexpr auto kAfterTermination = std::chrono::seconds(5);
  const auto left = at + kAfterTermination - std::chrono::system_clock::now();
  keep_deadline_ = std::chrono::steady_clock::now() +
                   std::chrono::duration_cast<std::chrono::steady_clock::duration>(left);
  for (auto& [peer, s] : senders_) s->set_deadline(*keep_deadline_);
  keep_kick();
}

}  // namespace hanat::daemon
