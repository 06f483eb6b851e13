// SPDX-License-Identifier: GPL-2.0-or-later
#pragma once
// DOC: core/daemon/steer_keeper — the taking member's bookkeeping of the connection-keeping
// handover (DESIGN.md, "Connection survival"): which sending members are steered, with which
// slot (keep::choose_steer_slot()), which flows sit in each kernel set, who catches unknown
// TCP. The member channel's callback feeds it; the node drops a member's steering at the
// end of its handover, when it goes DOWN or leaves (keep::steer_verdict()).
//
// The kernel side sits behind SteerBackend (netfilter::Steering in hanatd, a recording fake
// in tests/unit/daemon/steer_keeper_test.cc), so the decisions are tested without a
// namespace.

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <unordered_set>
#include <utility>
#include <vector>

#include "core/daemon/keep_plan.h"
#include "core/handover/channel.h"
#include "netfilter/steer.h"

namespace hanat::daemon {

class SteerBackend {
 public:
  virtual ~SteerBackend() = default;
  [[nodiscard]] virtual bool installed(uint32_t peer) const = 0;
  [[nodiscard]] virtual netfilter::Status install(const netfilter::SteerSpec& spec) = 0;
  [[nodiscard]] virtual core::Result<size_t, netfilter::Error> add_flows(
      uint32_t peer, std::span<const netfilter::Flow> flows) = 0;
  [[nodiscard]] virtual netfilter::Status remove_flows(uint32_t peer,
                                                       std::span<const netfilter::Flow> flows) = 0;
  [[nodiscard]] virtual netfilter::Status set_catch_unknown_tcp(std::optional<uint32_t> peer) = 0;
  [[nodiscard]] virtual netfilter::Status remove(uint32_t peer) = 0;
};

// netfilter::Steering as a backend.
[[nodiscard]] std::unique_ptr<SteerBackend> kernel_steering(netfilter::Steering s);

class SteerKeeper {
 public:
  struct Settings {
    uint32_t local = 0;  // this member's private address (the tunnel's outer source)
    uint32_t max_flows = 100000;
    uint32_t max_timeout_s = 300;  // [handover] flow_drain
  };
  struct Peer {
    uint32_t address = 0;  // private IPv4, host order; 0 until installed
    keep::SteerSlot slot;
    std::unordered_set<netfilter::Flow, handover::FlowKeyHash> flows;  // in the kernel's set
    uint64_t errors = 0;
  };

  explicit SteerKeeper(std::unique_ptr<SteerBackend> backend) : backend_(std::move(backend)) {}

  // A sending member's flows changed (the channel's OnFlows). `table` is what the channel
  // holds for it after `delta`. Installs its steering on first use.
  void on_flows(const std::string& member, uint32_t address, const Settings& settings,
                const handover::FlowTable& table, const handover::FlowDelta& delta);
  // Removes a member's steering (absent: nothing to do). Returns whether there was one.
  bool drop(const std::string& member, keep::SteerVerdict why);
  // Drops every member whose view (from `view`) says so; returns who and why.
  std::vector<std::pair<std::string, keep::SteerVerdict>> review(
      const std::function<keep::PeerView(const std::string& member, const Peer&)>& view);

  [[nodiscard]] const std::map<std::string, Peer>& peers() const { return peers_; }
  [[nodiscard]] const std::optional<std::string>& catcher() const { return catcher_; }

 private:
  bool install(const std::string& member, uint32_t address, const Settings& settings, Peer& peer);

  std::unique_ptr<SteerBackend> backend_;
  std::map<std::string, Peer> peers_;
  std::map<uint32_t, uint32_t> slots_;  // peer address -> slot index
  std::optional<std::string> catcher_;  // the member catch-unknown-TCP steers to
};

}  // namespace hanat::daemon
