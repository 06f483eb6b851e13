// SPDX-License-Identifier: GPL-2.0-or-later
// DOC: core/daemon/node_keep.cc wires the connection-keeping handover's taking side
// (DESIGN.md, "Connection survival"): the member channel's server, and the steering of a
// leaving member's flows back to it.
//
//   start-up      cleanup_stale_steering() removes what a previous process left (a crash or
//                 kill -9 leaves tables, rules and VXLAN links that would steer flows to a
//                 member that no longer holds them); Steering opens its netlink socket.
//   engine start  ChannelServer on the agent's address, port effective_channel_port().
//                 Admission looks the peer's address up in the current member list at each
//                 connection, so it follows every membership change and reload. The key is
//                 [handover] psk_file; a key that cannot be read leaves the channel closed
//                 (a peer with a key would refuse us anyway, and one without must not be
//                 admitted to a group that asked for one).
//   flows         the channel's callback installs the sender's steering on its first flows
//                 (mark, table, rule priority from keep::choose_steer_slot()), then applies
//                 each delta; a snapshot replaces the set. Catch-unknown-TCP steers to the
//                 first sender while its handover lasts (the kernel allows one catcher).
//   end           the sender's End frame, the sender going silent (DOWN with every probe
//                 failing: its translations are gone, steering would only blackhole its
//                 flows; a sender that answers "draining" is DOWN for allocation but still
//                 translates) or leaving the group drop the steering at once
//                 (keep::steer_verdict()).
//
// The leaving side (dump, send, wait for the ack, stream events, the drain) is in
// node_keep_send.cc.

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>

#include "core/base/ipv4.h"
#include "core/daemon/keep_plan.h"
#include "core/daemon/node.h"
#include "core/handover/psk.h"
#include "core/log/log.h"

namespace hanat::daemon {

using std::chrono::milliseconds;

namespace {}  // namespace

void Node::start_steering() {
  auto c = netfilter::cleanup_stale_steering();
  if (!c) {
    log::warning("steering: start-up cleanup failed: " + c.error().message + ", ignoring");
  } else if (c->tables + c->rules + c->links > 0) {
    log::notice("steering: removed what a previous process left (" + std::to_string(c->tables) +
                " tables, " + std::to_string(c->rules) + " rules, " + std::to_string(c->links) +
                " tunnel links)");
  }
  auto s = netfilter::Steering::open();
  if (!s) {
    keep_error_ = "steering: " + s.error().message;
    log::warning(keep_error_ + ": connections of a member handing over to this one are reset");
    return;
  }
  keeper_ = std::make_unique<SteerKeeper>(kernel_steering(std::move(*s)));
}

void Node::start_channel() {
  if (channel_ || plan_only_) return;
  handover::Identity self{cfg_->group.name, id_.instance_id, std::nullopt};
  if (!cfg_->handover.psk_file.empty()) {
    auto k = handover::load_psk(cfg_->handover.psk_file);
    if (!k) {
      keep_error_ = "member channel: " + k.error();
      log::warning(keep_error_ + ": channel closed, connections are not kept");
      return;
    }
    self.psk = std::move(*k);
  }
  const milliseconds drain = cfg_->handover.flow_drain;
  handover::FlowTable::Limits limits;
  limits.max_flows = static_cast<size_t>(std::max(cfg_->handover.max_flows, 1));
  limits.max_ttl = drain;
  limits.min_ttl = std::min(limits.min_ttl, drain);
  auto server = std::make_unique<handover::ChannelServer>(
      loop_, self, limits,
      [this](uint32_t addr) -> std::optional<std::string> {
        for (const auto& [member, text] : discovered_.addresses) {
          if (member != id_.instance_id && core::parse_ipv4(text) == addr) return member;
        }
        return std::nullopt;
      },
      [this](const std::string& member, const handover::FlowTable& table,
             const handover::FlowDelta& delta) { on_channel_flows(member, table, delta); },
      [](uint32_t addr, const std::string& why) {
        log::debug("handover", "member channel: refused " + core::ipv4_text(addr) + ": " + why);
      });
  // Failback: the home member of tables this member serves asks for their flows before it
  // reclaims them (channel.h). Served on the next loop turn, outside the server's callback.
  server->set_on_reclaim([this](const std::string& member, const std::vector<std::string>& tables) {
    auto& want = reclaim_asks_[member];
    for (const auto& t : tables)
      if (std::find(want.begin(), want.end(), t) == want.end()) want.push_back(t);
    keep_kick();
  });
  const std::string addr = agent_address(*cfg_);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(config::effective_channel_port(*cfg_));
  if (inet_pton(AF_INET, addr.c_str(), &a.sin_addr) != 1) {
    keep_error_ = "member channel: listen address " + log::quote(addr) + " is not an IPv4 address";
    log::warning(keep_error_ + ", connections are not kept");
    return;
  }
  std::string why;
  if (auto ec = server->listen(a, &why)) {
    keep_error_ = "member channel: " + (why.empty() ? ec.message() : why);
    log::warning(keep_error_ + ", connections are not kept");
    return;
  }
  // Stateful failover: other members' replication streams (node_replicate.cc).
  server->set_on_replica([this](const std::string& member, const handover::ReplicaBatch& b) {
    on_replica_batch(member, b);
  });
  keep_error_.clear();
  log::info("member channel: listening on " + addr + ":" + std::to_string(server->port()));
  channel_ = std::move(server);
}

void Node::restart_channel() {
  if (!channel_) {
    // Not listening: before the engine runs (start_engine() starts it with the new config),
    // or it failed (a key that could not be read, a port in use): try again.
    if (machine_) start_channel();
    return;
  }
  if (!channel_->held().empty() || (keeper_ && !keeper_->peers().empty())) {
    log::warning(
        "member channel: [handover] changed while a member's flows are held; the "
        "running channel keeps its settings, reload again after the handover");
    return;
  }
  channel_.reset();
  start_channel();
}

void Node::on_channel_flows(const std::string& member, const handover::FlowTable& table,
                            const handover::FlowDelta& delta) {
  if (!keeper_) return;
  // The server forgets a member (End, or drop_member) before it reports the empty table.
  if (!channel_ || channel_->table(member) == nullptr) {
    (void)keeper_->drop(member, keep::SteerVerdict::Ended);
    return;
  }
  auto known = discovered_.addresses.find(member);
  if (known == discovered_.addresses.end()) return;
  auto addr = core::parse_ipv4(known->second);
  if (!addr) return;
  SteerKeeper::Settings st;
  st.local = core::parse_ipv4(id_.private_ip).value_or(0);
  st.max_flows = static_cast<uint32_t>(std::max(cfg_->handover.max_flows, 1));
  st.max_timeout_s = static_cast<uint32_t>(std::max<int64_t>(
      1, std::chrono::ceil<std::chrono::seconds>(cfg_->handover.flow_drain).count()));
  keeper_->on_flows(member, *addr, st, table, delta);
  // Failback: the peer's complete snapshot is installed and steered back to it, so the
  // engine's held reclaim of its tables may write now (ReclaimReady; ignored when nothing
  // is held for it). Posted on the next loop turn: the engine's actions must not run
  // inside the channel's callback (a steering review would close this very session).
  if (delta.complete) {
    if (reclaim_waiting_.erase(member) != 0)
      log::notice("failback from " + member + ": " + std::to_string(table.size()) +
                  " connections held and steered back to it, writing the routes");
    reclaim_ready_.insert(member);
    keep_kick();
  }
  // The periodic review (review_steering) starts with the first steering; not reviewed
  // here: a drop would close the channel's session inside its own callback.
  if (!steer_timer_.active()) {
    const auto every = std::max(cfg_->probe.interval, milliseconds(50));
    (void)steer_timer_.start(every, every, [this] { review_steering(); });
  }
}

void Node::review_steering() {
  if (!keeper_) return;
  // A sender that drains or stops answers its agent probes with "draining"/"down": the
  // engine counts it DOWN (it gets no table), yet it still translates the flows it handed
  // over. Only a silent one — every probe of every kind failing (MemberSnapshot::silent) —
  // has lost them; its silence starts without a health change, so while anything is
  // steered the review repeats every probe interval.
  std::set<std::string> silent;
  if (machine_ && !keeper_->peers().empty()) {
    for (const auto& m : machine_->snapshot().members)
      if (m.silent) silent.insert(m.instance_id);
  }
  auto dropped =
      keeper_->review([this, &silent](const std::string& member, const SteerKeeper::Peer& p) {
        keep::PeerView v;
        v.member = discovered_.addresses.count(member) != 0;
        v.down = peer_down_.count(member) != 0 && silent.count(member) != 0;
        v.held = p.flows.size();
        return v;
      });
  if (keeper_->peers().empty()) {
    (void)steer_timer_.stop();
  } else if (!steer_timer_.active()) {
    const auto every = std::max(cfg_->probe.interval, milliseconds(50));
    (void)steer_timer_.start(every, every, [this] { review_steering(); });
  }
  // The channel forgets their flows and closes their connections; its callback then finds
  // nothing left to drop.
  if (channel_)
    for (const auto& [member, why] : dropped) channel_->drop_member(member);
}

}  // namespace hanat::daemon
