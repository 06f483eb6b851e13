// SPDX-License-Identifier: GPL-2.0-or-later
#include "core/daemon/steer_keeper.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include "core/base/ipv4.h"
#include "core/log/log.h"

namespace hanat::daemon {

namespace {

class KernelSteering final : public SteerBackend {
 public:
  explicit KernelSteering(netfilter::Steering s) : s_(std::move(s)) {}
  bool installed(uint32_t peer) const override { return s_.installed(peer); }
  netfilter::Status install(const netfilter::SteerSpec& spec) override { return s_.install(spec); }
  core::Result<size_t, netfilter::Error> add_flows(
      uint32_t peer, std::span<const netfilter::Flow> flows) override {
    return s_.add_flows(peer, flows);
  }
  netfilter::Status remove_flows(uint32_t peer, std::span<const netfilter::Flow> flows) override {
    return s_.remove_flows(peer, flows);
  }
  netfilter::Status set_catch_unknown_tcp(std::optional<uint32_t> peer) override {
    return s_.set_catch_unknown_tcp(peer);
  }
  netfilter::Status remove(uint32_t peer) override { return s_.remove(peer); }

 private:
  netfilter::Steering s_;
};

}  // namespace

std::unique_ptr<SteerBackend> kernel_steering(netfilter::Steering s) {
  return std::make_unique<KernelSteering>(std::move(s));
}

bool SteerKeeper::install(const std::string& member, uint32_t address, const Settings& settings,
                          Peer& peer) {
  auto slot = keep::choose_steer_slot(address, slots_);
  if (settings.local == 0 || !slot) {
    ++peer.errors;
    log::warning(
        "steering to " + member + ": " +
        (slot ? "this host's private address is unknown" : "every steering slot is taken") +
        ", its connections are reset");
    return false;
  }
  netfilter::SteerSpec spec;
  spec.local = settings.local;
  spec.peer = address;
  spec.mark = slot->mark;
  spec.route_table = slot->route_table;
  spec.rule_priority = slot->rule_priority;
  spec.max_flows = settings.max_flows;
  spec.max_timeout_s = settings.max_timeout_s;
  if (auto s = backend_->install(spec); !s) {
    ++peer.errors;
    log::warning("steering to " + member + ": " + s.error().message +
                 ", its connections are reset");
    return false;
  }
  slots_[address] = slot->index;
  peer.address = address;
  peer.slot = *slot;
  log::notice("steering: " + member + " (" + core::ipv4_text(address) +
              ") hands over its flows, mark " + std::to_string(slot->mark) + ", table " +
              std::to_string(slot->route_table));
  // The kernel table allows one catcher: the first sender of a handover; a second one at the
  // same time gets its dumped and announced flows steered, not the ones its dump missed.
  if (!catcher_) {
    if (auto c = backend_->set_catch_unknown_tcp(address); !c) {
      log::warning("steering to " + member + ": catch-unknown-TCP: " + c.error().message +
                   ", ignoring");
    } else {
      catcher_ = member;
    }
  }
  return true;
}

void SteerKeeper::on_flows(const std::string& member, uint32_t address, const Settings& settings,
                           const handover::FlowTable& table, const handover::FlowDelta& delta) {
  auto existing = peers_.find(member);
  if (existing != peers_.end() && existing->second.address != 0 &&
      existing->second.address != address) {
    // The member's private address changed under its steering: start over.
    drop(member, keep::SteerVerdict::Left);
  }
  existing = peers_.find(member);
  const bool ready =
      existing != peers_.end() && existing->second.address != 0 && backend_->installed(address);
  if (!ready && table.size() == 0) return;  // nothing to steer (yet)
  Peer& peer = peers_[member];
  if (!ready) {
    if (!install(member, address, settings, peer)) return;
    peer.flows.clear();
  }
  // A fresh set takes the whole table: flows announced before the install (which failed, or
  // whose delta found no steering) are in it too.
  auto note = [&](const netfilter::Error& e) {
    ++peer.errors;
    log::warning("steering to " + member + ": " + e.message + ", ignoring");
  };
  if (delta.replaced || !ready) {
    // A snapshot (or a resync): what was steered before and is not in it ended meanwhile.
    std::vector<netfilter::Flow> gone;
    for (const auto& f : peer.flows)
      if (!table.contains(f)) gone.push_back(f);
    if (!gone.empty())
      if (auto r = backend_->remove_flows(address, gone); !r) note(r.error());
    std::vector<netfilter::Flow> all = table.snapshot();
    if (auto a = backend_->add_flows(address, all); !a) note(a.error());
    peer.flows.clear();
    peer.flows.insert(all.begin(), all.end());
    return;
  }
  if (!delta.removed.empty()) {
    if (auto r = backend_->remove_flows(address, delta.removed); !r) note(r.error());
    for (const auto& f : delta.removed) peer.flows.erase(f);
  }
  if (!delta.added.empty()) {
    if (auto a = backend_->add_flows(address, delta.added); !a) note(a.error());
    peer.flows.insert(delta.added.begin(), delta.added.end());
  }
}

bool SteerKeeper::drop(const std::string& member, keep::SteerVerdict why) {
  auto it = peers_.find(member);
  if (it == peers_.end()) return false;
  const uint32_t address = it->second.address;
  const size_t held = it->second.flows.size();
  peers_.erase(it);
  if (catcher_ == member) {
    catcher_.reset();
    if (auto c = backend_->set_catch_unknown_tcp(std::nullopt); !c)
      log::warning("steering to " + member + ": catch-unknown-TCP off: " + c.error().message +
                   ", ignoring");
  }
  if (address == 0) return true;  // never installed
  slots_.erase(address);
  if (auto r = backend_->remove(address); !r)
    log::warning("steering to " + member + ": removal: " + r.error().message + ", ignoring");
  log::notice("steering to " + member + " removed (" + keep::to_string(why) + ", " +
              std::to_string(held) + " flows held)");
  return true;
}

std::vector<std::pair<std::string, keep::SteerVerdict>> SteerKeeper::review(
    const std::function<keep::PeerView(const std::string&, const Peer&)>& view) {
  std::vector<std::pair<std::string, keep::SteerVerdict>> out;
  for (const auto& [member, peer] : peers_) {
    auto v = keep::steer_verdict(view(member, peer));
    if (v != keep::SteerVerdict::Keep) out.emplace_back(member, v);
  }
  for (const auto& [member, v] : out) drop(member, v);
  return out;
}

}  // namespace hanat::daemon
