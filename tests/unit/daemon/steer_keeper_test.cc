// SPDX-License-Identifier: GPL-2.0-or-later
#include "core/daemon/steer_keeper.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>

#include <set>

namespace hanat::daemon {
namespace {

using netfilter::Flow;
using std::chrono::milliseconds;
using ::testing::ElementsAre;
using ::testing::IsEmpty;

constexpr uint32_t kSelf = 0xC6120001;   // 198.18.0.1
constexpr uint32_t kPeerA = 0xC6120102;  // 198.18.1.2
constexpr uint32_t kPeerC = 0xC6120203;  // 198.18.2.3

Flow tcp(uint16_t sport) {
  return {IPPROTO_TCP, 0xC6130005, 0xC6138001, sport, 443, 100};
}

// Records what the keeper asks of the kernel; `fail_install` makes install() fail.
struct Fake final : SteerBackend {
  struct State {
    std::map<uint32_t, netfilter::SteerSpec> specs;
    std::map<uint32_t, std::vector<Flow>> sets;
    std::optional<uint32_t> catching;
    std::vector<std::string> calls;
    bool fail_install = false;
  };
  explicit Fake(State& s) : s_(s) {}
  bool installed(uint32_t peer) const override { return s_.specs.contains(peer); }
  netfilter::Status install(const netfilter::SteerSpec& spec) override {
    s_.calls.push_back("install");
    if (s_.fail_install)
      return netfilter::fail(std::make_error_code(std::errc::operation_not_permitted),
                             "steering to peer: no CAP_NET_ADMIN");
    s_.specs[spec.peer] = spec;
    s_.sets[spec.peer].clear();
    return netfilter::ok();
  }
  core::Result<size_t, netfilter::Error> add_flows(uint32_t peer,
                                                   std::span<const Flow> flows) override {
    s_.calls.push_back("add " + std::to_string(flows.size()));
    auto& set = s_.sets[peer];
    for (const auto& f : flows)
      if (std::find(set.begin(), set.end(), f) == set.end()) set.push_back(f);
    return flows.size();
  }
  netfilter::Status remove_flows(uint32_t peer, std::span<const Flow> flows) override {
    s_.calls.push_back("remove " + std::to_string(flows.size()));
    auto& set = s_.sets[peer];
    for (const auto& f : flows) std::erase(set, f);
    return netfilter::ok();
  }
  netfilter::Status set_catch_unknown_tcp(std::optional<uint32_t> peer) override {
    s_.calls.push_back(peer ? "catch" : "catch off");
    s_.catching = peer;
    return netfilter::ok();
  }
  netfilter::Status remove(uint32_t peer) override {
    s_.calls.push_back("remove peer");
    s_.specs.erase(peer);
    s_.sets.erase(peer);
    return netfilter::ok();
  }
  State& s_;
};

class SteerKeeperTest : public ::testing::Test {
 protected:
  SteerKeeperTest() : keeper_(std::make_unique<Fake>(k_)) {
    settings_.local = kSelf;
    settings_.max_flows = 1000;
    settings_.max_timeout_s = 300;
  }
  // The channel's table after `flows` were announced (added) by `member`.
  void announce(const std::string& member, uint32_t addr, std::vector<Flow> flows,
                bool replace = false) {
    auto& t = tables_.try_emplace(member, handover::FlowTable::Limits{}).first->second;
    handover::FlowDelta d;
    if (replace) {
      d.replaced = true;
      t.replace(flows, now_);
    } else {
      for (const auto& f : flows)
        if (t.add(f, now_) == handover::FlowTable::Added::New) d.added.push_back(f);
    }
    keeper_.on_flows(member, addr, settings_, t, d);
  }
  void destroyed(const std::string& member, uint32_t addr, std::vector<Flow> flows) {
    auto& t = tables_.at(member);
    handover::FlowDelta d;
    for (const auto& f : flows)
      if (t.remove(f)) d.removed.push_back(f);
    keeper_.on_flows(member, addr, settings_, t, d);
  }

  Fake::State k_;
  SteerKeeper keeper_;
  SteerKeeper::Settings settings_;
  std::map<std::string, handover::FlowTable> tables_;
  milliseconds now_{0};
};

TEST_F(SteerKeeperTest, FirstFlowsInstallTheSendersSteeringInSlotZeroAndCatchUnknownTcp) {
  announce("i-a", kPeerA, {tcp(1000), tcp(1001)});
  ASSERT_TRUE(k_.specs.contains(kPeerA));
  const auto& spec = k_.specs.at(kPeerA);
  EXPECT_EQ(spec.local, kSelf);
  EXPECT_EQ(spec.mark, keep::kSteerMarkBase);
  EXPECT_EQ(spec.route_table, keep::kSteerTableBase);
  EXPECT_EQ(spec.rule_priority, keep::kSteerRulePriorityBase);
  EXPECT_EQ(spec.max_flows, 1000u);
  EXPECT_EQ(spec.max_timeout_s, 300u);
  EXPECT_THAT(k_.sets.at(kPeerA), ElementsAre(tcp(1000), tcp(1001)));
  EXPECT_EQ(k_.catching, kPeerA);
  EXPECT_EQ(keeper_.catcher(), "i-a");
  EXPECT_EQ(keeper_.peers().at("i-a").flows.size(), 2u);
}

TEST_F(SteerKeeperTest, NothingIsInstalledForAnEmptySnapshot) {
  announce("i-a", kPeerA, {}, /*replace=*/true);
  EXPECT_THAT(k_.calls, IsEmpty());
  EXPECT_THAT(keeper_.peers(), IsEmpty());
}

TEST_F(SteerKeeperTest, DeltasAddAndRemoveAndASnapshotReplaces) {
  announce("i-a", kPeerA, {tcp(1000), tcp(1001)});
  destroyed("i-a", kPeerA, {tcp(1000)});
  EXPECT_THAT(k_.sets.at(kPeerA), ElementsAre(tcp(1001)));
  announce("i-a", kPeerA, {tcp(1002)});
  EXPECT_THAT(k_.sets.at(kPeerA), ElementsAre(tcp(1001), tcp(1002)));
  // A resync without 1001: it ended meanwhile and leaves the kernel's set.
  announce("i-a", kPeerA, {tcp(1002), tcp(1003)}, /*replace=*/true);
  EXPECT_THAT(k_.sets.at(kPeerA), ElementsAre(tcp(1002), tcp(1003)));
  EXPECT_EQ(keeper_.peers().at("i-a").flows.size(), 2u);
  EXPECT_EQ(std::count(k_.calls.begin(), k_.calls.end(), "install"), 1);
}

TEST_F(SteerKeeperTest, TwoSendersGetTwoSlotsAndOnlyTheFirstCatches) {
  announce("i-a", kPeerA, {tcp(1000)});
  announce("i-c", kPeerC, {tcp(2000)});
  EXPECT_EQ(k_.specs.at(kPeerC).mark, keep::kSteerMarkBase + 1);
  EXPECT_EQ(k_.specs.at(kPeerC).route_table, keep::kSteerTableBase + 1);
  EXPECT_EQ(k_.specs.at(kPeerC).rule_priority, keep::kSteerRulePriorityBase + 1);
  EXPECT_EQ(k_.catching, kPeerA);
  // The first one ends: its slot is free again, and catching stops.
  EXPECT_TRUE(keeper_.drop("i-a", keep::SteerVerdict::Ended));
  EXPECT_FALSE(k_.specs.contains(kPeerA));
  EXPECT_EQ(k_.catching, std::nullopt);
  EXPECT_FALSE(keeper_.catcher());
  tables_.erase("i-a");
  announce("i-a", kPeerA, {tcp(1000)});
  EXPECT_EQ(k_.specs.at(kPeerA).mark, keep::kSteerMarkBase);
}

TEST_F(SteerKeeperTest, ReviewDropsADownOrDepartedSenderAndKeepsTheOthers) {
  announce("i-a", kPeerA, {tcp(1000)});
  announce("i-c", kPeerC, {tcp(2000)});
  std::set<std::string> down{"i-a"};
  auto dropped = keeper_.review([&](const std::string& m, const SteerKeeper::Peer& p) {
    return keep::PeerView{.member = true, .down = down.contains(m), .held = p.flows.size()};
  });
  EXPECT_THAT(dropped, ElementsAre(std::pair<std::string, keep::SteerVerdict>{
                           "i-a", keep::SteerVerdict::Down}));
  EXPECT_FALSE(k_.specs.contains(kPeerA));
  EXPECT_TRUE(k_.specs.contains(kPeerC));
  dropped = keeper_.review([&](const std::string&, const SteerKeeper::Peer& p) {
    return keep::PeerView{.member = false, .held = p.flows.size()};
  });
  EXPECT_THAT(dropped, ElementsAre(std::pair<std::string, keep::SteerVerdict>{
                           "i-c", keep::SteerVerdict::Left}));
  EXPECT_THAT(k_.specs, IsEmpty());
  EXPECT_THAT(keeper_.peers(), IsEmpty());
}

TEST_F(SteerKeeperTest, AFailedInstallAddsNoFlowsIsCountedAndIsRetriedWithTheNextFlows) {
  k_.fail_install = true;
  announce("i-a", kPeerA, {tcp(1000)});
  EXPECT_THAT(k_.specs, IsEmpty());
  EXPECT_EQ(std::count(k_.calls.begin(), k_.calls.end(), "add 1"), 0);
  EXPECT_EQ(keeper_.peers().at("i-a").errors, 1u);
  EXPECT_EQ(keeper_.peers().at("i-a").address, 0u);
  k_.fail_install = false;
  announce("i-a", kPeerA, {tcp(1001)});
  ASSERT_TRUE(k_.specs.contains(kPeerA));
  // The whole table goes in, the flow announced while install failed included.
  EXPECT_THAT(k_.sets.at(kPeerA), ElementsAre(tcp(1000), tcp(1001)));
}

TEST_F(SteerKeeperTest, UnknownOwnAddressInstallsNothing) {
  settings_.local = 0;
  announce("i-a", kPeerA, {tcp(1000)});
  EXPECT_THAT(k_.specs, IsEmpty());
  EXPECT_EQ(keeper_.peers().at("i-a").errors, 1u);
}

TEST_F(SteerKeeperTest, DroppingAnUnknownMemberDoesNothing) {
  EXPECT_FALSE(keeper_.drop("i-x", keep::SteerVerdict::Down));
  EXPECT_THAT(k_.calls, IsEmpty());
}

}  // namespace
}  // namespace hanat::daemon
