// SPDX-License-Identifier: GPL-2.0-or-later
// The taking member's half of the connection-keeping handover end to end in one namespace
// (issue #20): a sender's ChannelClient hands flows over the member channel to the
// ChannelServer, whose callback feeds hanatd's SteerKeeper with the kernel backend, as
// core/daemon/node_keep.cc wires it. What the kernel holds is read with nft and ip.
// The members' private addresses (198.18.0.1 taker, 198.18.0.2 sender) sit on the two ends
// of a veth pair between two namespaces the test creates; nothing leaves them.

#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>

#include "core/daemon/steer_keeper.h"
#include "core/handover/channel.h"
#include "netns_util.h"
#include "tests/support/uv_test_util.h"

namespace hanat::daemon {
namespace {

using hanat::testing::capture;
using hanat::testing::EnterNetns;
using hanat::testing::Netns;
using hanat::testing::run_until;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr uint32_t kTaker = 0xC6120001;   // 198.18.0.1
constexpr uint32_t kSender = 0xC6120002;  // 198.18.0.2

sockaddr_in addr(uint32_t host_order, uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(host_order);
  return a;
}

netfilter::Flow tcp(uint16_t sport) {
  return {IPPROTO_TCP, 0xC6120105 /* 198.18.1.5 */, 0xC6130001 /* 198.19.0.1 */, sport, 443, 120};
}

TEST(KeepNetns, SenderFlowsAreSteeredUntilTheSenderEndsItsHandover) {
  if (auto why = testing::netns_skip_reason(); !why.empty()) GTEST_SKIP() << why;
  testing::remove_stale_netns();
  // The sender's address must not be local to the taker: the tunnel's route goes via it.
  Netns ns("keep-b");
  Netns sender("keep-a");
  ASSERT_TRUE(ns.ok());
  ASSERT_TRUE(sender.ok());
  ASSERT_EQ(ns.ip("link set lo up"), 0);
  ASSERT_EQ(ns.ip("link add v0 type veth peer name v1 netns " + sender.name()), 0);
  ASSERT_EQ(ns.ip("addr add 198.18.0.1/24 dev v0"), 0);
  ASSERT_EQ(sender.ip("addr add 198.18.0.2/24 dev v1"), 0);
  ASSERT_EQ(ns.ip("link set v0 up"), 0);
  ASSERT_EQ(sender.ip("link set v1 up"), 0);
  const std::string list_set = ns.exec("nft list set ip hanat_steer_c6120002 flows 2>&1");

  EnterNetns in(ns);
  ASSERT_TRUE(in.ok());
  uv::Loop loop;
  {
    auto steering = netfilter::Steering::open();
    ASSERT_TRUE(steering) << steering.error().message;
    SteerKeeper keeper(kernel_steering(std::move(*steering)));
    SteerKeeper::Settings settings{kTaker, 1000, 300};
    std::unique_ptr<handover::ChannelServer> server;
    server = std::make_unique<handover::ChannelServer>(
        loop, handover::Identity{"lab", "i-taker", std::nullopt}, handover::FlowTable::Limits{},
        [](uint32_t a) -> std::optional<std::string> {
          if (a == kSender) return std::string("i-sender");
          return std::nullopt;
        },
        [&](const std::string& m, const handover::FlowTable& t, const handover::FlowDelta& d) {
          if (server->table(m) == nullptr) {
            (void)keeper.drop(m, keep::SteerVerdict::Ended);
            return;
          }
          keeper.on_flows(m, kSender, settings, t, d);
        });
    ASSERT_EQ(server->listen(addr(kTaker, 0)), std::error_code{});

    std::vector<uint32_t> acks;
    std::optional<std::string> closed;
    handover::ChannelClient client(
        loop, handover::Identity{"lab", "i-sender", std::nullopt},
        {[] {}, [&](uint32_t h) { acks.push_back(h); }, [&](const std::string& w) { closed = w; }});
    {
      // The client's socket is made in the sender's namespace and stays there.
      EnterNetns as_sender(sender);
      ASSERT_TRUE(as_sender.ok());
      ASSERT_EQ(client.connect(addr(kTaker, server->port()), addr(kSender, 0)), std::error_code{});
    }
    client.send_flows({tcp(1000), tcp(1001)}, true, true);
    ASSERT_TRUE(run_until(loop, [&] { return !acks.empty(); }));
    EXPECT_EQ(acks, std::vector<uint32_t>{2});

    // Installed in slot 0, both flows in the kernel's set, catching unknown TCP.
    ASSERT_EQ(keeper.peers().count("i-sender"), 1u);
    EXPECT_EQ(keeper.catcher(), "i-sender");
    std::string set = capture(list_set);
    EXPECT_THAT(set, HasSubstr("198.18.1.5 . 198.19.0.1 . tcp . 1000 . 443"));
    EXPECT_THAT(set, HasSubstr("198.18.1.5 . 198.19.0.1 . tcp . 1001 . 443"));
    EXPECT_THAT(capture(ns.exec("ip -4 rule show")),
                HasSubstr("400:\tfrom all fwmark 0x68610000 lookup 1751187456 proto 245"));

    EXPECT_THAT(capture(ns.exec("ip -o link show")), HasSubstr("hanat-c6120002"));

    // A destroyed flow leaves the set; a new one joins it.
    client.send_destroyed({tcp(1000)});
    client.send_flows({tcp(1002)}, false, false);
    ASSERT_TRUE(run_until(loop, [&] {
      const auto& p = keeper.peers().at("i-sender");
      return p.flows.size() == 2 && p.flows.contains(tcp(1002));
    }));
    set = capture(list_set);
    EXPECT_THAT(set, Not(HasSubstr(". 1000 . 443")));
    EXPECT_THAT(set, HasSubstr("198.18.1.5 . 198.19.0.1 . tcp . 1002 . 443"));

    // The sender ends its handover: every trace of the steering goes.
    client.send_end();
    ASSERT_TRUE(run_until(loop, [&] { return keeper.peers().empty(); }));
    EXPECT_FALSE(keeper.catcher());
    EXPECT_THAT(capture(ns.exec("nft list tables")), Not(HasSubstr("hanat_steer")));
    EXPECT_THAT(capture(ns.exec("ip -4 rule show")), Not(HasSubstr("fwmark")));
    EXPECT_THAT(capture(ns.exec("ip -o link show")), Not(HasSubstr("hanat-c6120002")));
    ASSERT_TRUE(run_until(loop, [&] { return closed.has_value(); }));
  }
  hanat::testing::expect_clean_close(loop);
}

}  // namespace
}  // namespace hanat::daemon
