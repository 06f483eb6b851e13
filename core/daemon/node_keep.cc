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
//   end           the sender's End frame, the sender going DOWN (its translations are gone:
//                 steering would only blackhole its flows) or leaving the group drop the
//                 steering at once (keep::steer_verdict()).
//
// The leaving side (dump, send, wait for the ack, stream events, the drain) is not wired
// here yet: a member that hands over still resets its flows, as before.

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>

#include "core/daemon/keep_plan.h"
#include "core/daemon/node.h"
#include "core/handover/psk.h"
#include "core/log/log.h"

namespace hanat::daemon {

using std::chrono::milliseconds;

namespace {

std::optional<uint32_t> ipv4(const std::string& text) {
  in_addr a{};
  if (text.empty() || inet_pton(AF_INET, text.c_str(), &a) != 1) return std::nullopt;
  return ntohl(a.s_addr);
}

std::string ip_text(uint32_t host_order) {
  in_addr a{};
  a.s_addr = htonl(host_order);
  char buf[INET_ADDRSTRLEN] = {};
  inet_ntop(AF_INET, &a, buf, sizeof buf);
  return buf;
}

}  // namespace

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
  steering_ = std::make_unique<netfilter::Steering>(std::move(*s));
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
          if (member != id_.instance_id && ipv4(text) == addr) return member;
        }
        return std::nullopt;
      },
      [this](const std::string& member, const handover::FlowTable& table,
             const handover::FlowDelta& delta) { on_channel_flows(member, table, delta); },
      [](uint32_t addr, const std::string& why) {
        log::debug("handover", "member channel: refused " + ip_text(addr) + ": " + why);
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
  keep_error_.clear();
  log::info("member channel: listening on " + addr + ":" + std::to_string(server->port()));
  channel_ = std::move(server);
}

void Node::on_channel_flows(const std::string& member, const handover::FlowTable& table,
                            const handover::FlowDelta& delta) {
  // The server forgets a member (End, or drop_member) before it reports the empty table.
  if (!channel_ || channel_->table(member) == nullptr) {
    return drop_steering(member, keep::SteerVerdict::Ended);
  }
  auto known = discovered_.addresses.find(member);
  if (known == discovered_.addresses.end() || !steering_) return;
  auto addr = ipv4(known->second);
  if (!addr) return;
  auto& peer = steered_[member];
  if (!steering_->installed(*addr)) {
    auto local = ipv4(id_.private_ip);
    auto slot = keep::choose_steer_slot(*addr, steer_slots_);
    if (!local || !slot) {
      log::warning(
          "steering to " + member + ": " +
          (local ? "every steering slot is taken" : "this host's private address is unknown") +
          ", its connections are reset");
      return;
    }
    netfilter::SteerSpec spec;
    spec.local = *local;
    spec.peer = *addr;
    spec.mark = slot->mark;
    spec.route_table = slot->route_table;
    spec.rule_priority = slot->rule_priority;
    spec.max_flows = static_cast<uint32_t>(std::max(cfg_->handover.max_flows, 1));
    spec.max_timeout_s = static_cast<uint32_t>(std::max<int64_t>(
        1, std::chrono::ceil<std::chrono::seconds>(cfg_->handover.flow_drain).count()));
    if (auto s = steering_->install(spec); !s) {
      ++peer.errors;
      log::warning("steering to " + member + ": " + s.error().message +
                   ", its connections are reset");
      return;
    }
    steer_slots_[*addr] = slot->index;
    peer.address = *addr;
    peer.slot = *slot;
    log::notice("steering: " + member + " (" + ip_text(*addr) + ") hands over its flows, mark " +
                std::to_string(slot->mark) + ", table " + std::to_string(slot->route_table));
    if (!steering_catcher_) {
      if (auto c = steering_->set_catch_unknown_tcp(*addr); !c) {
        log::warning("steering to " + member + ": catch-unknown-TCP: " + c.error().message +
                     ", ignoring");
      } else {
        steering_catcher_ = member;
      }
    }
  }
  if (delta.replaced) {
    // A snapshot: what was steered before and is not in it ended meanwhile.
    std::vector<netfilter::Flow> now = table.snapshot();
    std::vector<netfilter::Flow> gone;
    for (const auto& f : peer.flows)
      if (!table.contains(f)) gone.push_back(f);
    if (!gone.empty()) (void)steering_->remove_flows(*addr, gone);
    auto added = steering_->add_flows(*addr, now);
    if (!added) {
      ++peer.errors;
      log::warning("steering to " + member + ": " + added.error().message + ", ignoring");
    }
    peer.flows.clear();
    peer.flows.insert(now.begin(), now.end());
  } else {
    if (!delta.removed.empty()) {
      if (auto r = steering_->remove_flows(*addr, delta.removed); !r) {
        ++peer.errors;
        log::warning("steering to " + member + ": " + r.error().message + ", ignoring");
      }
      for (const auto& f : delta.removed) peer.flows.erase(f);
    }
    if (!delta.added.empty()) {
      auto added = steering_->add_flows(*addr, delta.added);
      if (!added) {
        ++peer.errors;
        log::warning("steering to " + member + ": " + added.error().message + ", ignoring");
      }
      peer.flows.insert(delta.added.begin(), delta.added.end());
    }
  }
}

void Node::drop_steering(const std::string& member, keep::SteerVerdict why) {
  auto it = steered_.find(member);
  if (it == steered_.end()) return;
  const SteeredPeer peer = it->second;
  steered_.erase(it);
  if (steering_catcher_ == member) {
    steering_catcher_.reset();
    if (steering_) (void)steering_->set_catch_unknown_tcp(std::nullopt);
  }
  if (peer.address != 0) {
    steer_slots_.erase(peer.address);
    if (steering_) {
      if (auto r = steering_->remove(peer.address); !r)
        log::warning("steering to " + member + ": removal: " + r.error().message + ", ignoring");
    }
  }
  log::notice("steering to " + member + " removed (" + keep::to_string(why) + ", " +
              std::to_string(peer.flows.size()) + " flows held)");
}

void Node::review_steering() {
  // Membership and health decide too: a member that left or went DOWN holds no translation.
  std::vector<std::pair<std::string, keep::SteerVerdict>> drop;
  for (const auto& [member, peer] : steered_) {
    keep::PeerView v;
    v.member = discovered_.addresses.count(member) != 0;
    v.down = peer_down_.count(member) != 0;
    v.held = peer.flows.size();
    v.channel_open = true;
    auto verdict = keep::steer_verdict(v);
    if (verdict != keep::SteerVerdict::Keep) drop.emplace_back(member, verdict);
  }
  for (const auto& [member, verdict] : drop) {
    drop_steering(member, verdict);
    // The channel forgets its flows and closes its connection; its callback finds nothing
    // left to drop.
    if (channel_) channel_->drop_member(member);
  }
}

}  // namespace hanat::daemon
