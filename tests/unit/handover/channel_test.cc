// SPDX-License-Identifier: GPL-2.0-or-later
// The member channel on a real loop over loopback (handover/channel.h): a sender hands its
// flows to a taker; non-members, foreign groups and wrong pre-shared keys are refused.
// Loopback carries all of 127.0.0.0/8, so the "member" binds 127.0.0.1 and the "stranger"
// 127.0.0.2.
#include "core/handover/channel.h"

#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tests/support/uv_test_util.h"

namespace hanat::handover {
namespace {

using hanat::testing::expect_clean_close;
using hanat::testing::run_until;

sockaddr_in addr(const char* ip, uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  inet_pton(AF_INET, ip, &a.sin_addr);
  return a;
}

Flow flow(uint16_t sport) {
  Flow f;
  f.proto = IPPROTO_TCP;
  f.src = 0xC6120102;
  f.dst = 0xC6130102;
  f.sport = sport;
  f.dport = 443;
  f.timeout_s = 350;
  return f;
}

constexpr uint32_t kMember = 0x7f000001;  // 127.0.0.1

struct Taker {
  explicit Taker(uv::Loop& loop, std::optional<std::string> psk = std::nullopt)
      : server(
            loop, Identity{"lab", "i-taker", std::move(psk)}, FlowTable::Limits{},
            [](uint32_t a) -> std::optional<std::string> {
              if (a == kMember) return std::string("i-sender");
              return std::nullopt;
            },
            [this](const std::string& m, const FlowTable& t, const FlowDelta& d) {
              ++calls;
              member = m;
              held = t.size();
              last = d;
            },
            [this](uint32_t, const std::string& why) { rejects.push_back(why); }) {
    EXPECT_EQ(server.listen(addr("127.0.0.1", 0)), std::error_code{});
  }
  ChannelServer server;
  int calls = 0;
  std::string member;
  size_t held = 0;
  FlowDelta last;
  std::vector<std::string> rejects;
};

struct Sender {
  Sender(uv::Loop& loop, std::string group = "lab", std::optional<std::string> psk = {})
      : client(loop, Identity{std::move(group), "i-sender", std::move(psk)},
               ChannelClient::Callbacks{[this] { ready = true; },
                                        [this](uint32_t h) { acks.push_back(h); },
                                        [this](const std::string& w) { closed = w; }}) {}
  ChannelClient client;
  bool ready = false;
  std::vector<uint32_t> acks;
  std::optional<std::string> closed;
};

TEST(Channel, SenderHandsFlowsToTakerWhoAcksAndFollowsDestroyAndEnd) {
  uv::Loop loop;
  {
    Taker t(loop);
    Sender s(loop);
    ASSERT_EQ(s.client.connect(addr("127.0.0.1", t.server.port()), addr("127.0.0.1", 0)),
              std::error_code{});
    // Queued before the hellos are exchanged, sent after.
    s.client.send_flows({flow(1), flow(2), flow(3)}, true, true);
    ASSERT_TRUE(run_until(loop, [&] { return !s.acks.empty(); }));
    EXPECT_EQ(s.acks, std::vector<uint32_t>{3});
    EXPECT_EQ(t.member, "i-sender");
    EXPECT_EQ(t.held, 3U);
    EXPECT_TRUE(t.last.replaced);
    EXPECT_TRUE(t.last.complete);
    EXPECT_EQ(t.last.added.size(), 3U);
    EXPECT_EQ(t.server.held(), (std::map<std::string, size_t>{{"i-sender", 3}}));

    s.client.send_destroyed({flow(2)});
    s.client.send_flows({flow(4)}, false, false);
    ASSERT_TRUE(run_until(loop, [&] { return t.calls >= 3; }));
    EXPECT_EQ(t.held, 3U);
    const FlowTable* table = t.server.table("i-sender");
    ASSERT_NE(table, nullptr);
    EXPECT_FALSE(table->contains(flow(2)));
    EXPECT_TRUE(table->contains(flow(4)));
    EXPECT_EQ(s.client.counters().flows_sent, 4U);
    EXPECT_EQ(t.server.counters().flows_received, 4U);

    // End: the taker forgets the sender's flows and closes.
    s.client.send_end();
    ASSERT_TRUE(run_until(loop, [&] { return s.closed.has_value(); }));
    EXPECT_EQ(t.held, 0U);
    EXPECT_TRUE(t.server.held().empty());
    EXPECT_TRUE(t.rejects.empty());
  }
  expect_clean_close(loop);
}

TEST(Channel, ReplicaFramesReachTheCallbackBesideAHandoverConnection) {
  uv::Loop loop;
  {
    Taker t(loop);
    std::vector<std::pair<std::string, ReplicaBatch>> got;
    t.server.set_on_replica(
        [&](const std::string& m, const ReplicaBatch& b) { got.emplace_back(m, b); });
    // The replication stream and a handover of the same member, at once.
    Sender repl(loop);
    Sender keep(loop);
    ASSERT_EQ(repl.client.connect(addr("127.0.0.1", t.server.port()), addr("127.0.0.1", 0)),
              std::error_code{});
    netfilter::ReplicatedFlow r;
    r.flow = flow(1);
    r.public_port = 61001;
    r.status = 0x1be;
    r.tcp = netfilter::TcpInfo{3, 7, 7, 0, 0};
    const ReplicaBatch resync{ReplicaBatch::kResyncBegin | ReplicaBatch::kResyncComplete, {r}, {}};
    repl.client.send_replica(resync);
    ASSERT_TRUE(run_until(loop, [&] { return got.size() == 1; }));
    EXPECT_EQ(got[0].first, "i-sender");
    EXPECT_EQ(got[0].second, resync);
    ASSERT_EQ(keep.client.connect(addr("127.0.0.1", t.server.port()), addr("127.0.0.1", 0)),
              std::error_code{});
    keep.client.send_flows({flow(2)}, true, true);
    ASSERT_TRUE(run_until(loop, [&] { return !keep.acks.empty(); }));
    EXPECT_EQ(t.server.connections(), 2U);
    // The handover's End closes the handover only; the replica stream goes on.
    keep.client.send_end();
    ASSERT_TRUE(run_until(loop, [&] { return keep.closed.has_value(); }));
    const ReplicaBatch events{0, {}, {flow(1)}};
    // The client counts the bytes it writes: the frame as encoded (headers included).
    const uint64_t before = repl.client.counters().bytes_sent;
    EXPECT_EQ(before, encode(resync).size());  // the resync (the hello is not counted)
    repl.client.send_replica(events);
    EXPECT_EQ(repl.client.counters().bytes_sent - before, encode(events).size());
    ASSERT_TRUE(run_until(loop, [&] { return got.size() == 2; }));
    EXPECT_EQ(got[1].second, events);
    EXPECT_FALSE(repl.closed.has_value());
    EXPECT_EQ(t.server.counters().replica_frames, 2U);
    EXPECT_EQ(t.server.counters().replica_upserts, 1U);
    EXPECT_EQ(t.server.counters().replica_destroys, 1U);
    // Replicas are not handover flows: nothing is held for steering.
    EXPECT_TRUE(t.server.held().empty());
    // A reconnect of the replication stream replaces the old one.
    Sender again(loop);
    ASSERT_EQ(again.client.connect(addr("127.0.0.1", t.server.port()), addr("127.0.0.1", 0)),
              std::error_code{});
    again.client.send_replica(resync);
    ASSERT_TRUE(run_until(loop, [&] { return repl.closed.has_value(); }));
    EXPECT_EQ(got.size(), 3U);
    EXPECT_TRUE(t.rejects.empty());
  }
  expect_clean_close(loop);
}

TEST(Channel, AHandoverFrameOnAReplicaConnectionIsRefused) {
  uv::Loop loop;
  {
    Taker t(loop);
    Sender s(loop);
    ASSERT_EQ(s.client.connect(addr("127.0.0.1", t.server.port()), addr("127.0.0.1", 0)),
              std::error_code{});
    s.client.send_replica(ReplicaBatch{ReplicaBatch::kResyncBegin, {}, {}});
    s.client.send_flows({flow(1)}, true, true);
    ASSERT_TRUE(run_until(loop, [&] { return s.closed.has_value(); }));
    ASSERT_EQ(t.rejects.size(), 1U);
    EXPECT_THAT(t.rejects[0], ::testing::HasSubstr("handover frame on a replica connection"));
    EXPECT_TRUE(t.server.held().empty());
  }
  expect_clean_close(loop);
}

// Failback: the home member asks over the channel; the server reports the member and its
// tables, holds no flows for it, and closes the request's connection. A keyed request with
// the wrong key never reaches OnReclaim.
TEST(Channel, ReclaimReachesTheServerAsAMembersRequestAndClosesTheConnection) {
  uv::Loop loop;
  {
    Taker t(loop, "s3cret-key");
    std::vector<std::pair<std::string, std::vector<std::string>>> asked;
    t.server.set_on_reclaim([&](const std::string& m, const std::vector<std::string>& tables) {
      asked.emplace_back(m, tables);
    });
    Sender home(loop, "lab", "s3cret-key");
    ASSERT_EQ(home.client.connect(addr("127.0.0.1", t.server.port()), addr("127.0.0.1", 0)),
              std::error_code{});
    home.client.send_reclaim({"rtb-a", "rtb-c"});
    ASSERT_TRUE(run_until(loop, [&] { return home.closed.has_value(); }));
    ASSERT_EQ(asked.size(), 1U);
    EXPECT_EQ(asked[0].first, "i-sender");
    EXPECT_EQ(asked[0].second, (std::vector<std::string>{"rtb-a", "rtb-c"}));
    EXPECT_TRUE(t.server.held().empty());
    EXPECT_EQ(t.calls, 0);

    Sender wrong(loop, "lab", "guessed-key");
    ASSERT_EQ(wrong.client.connect(addr("127.0.0.1", t.server.port()), addr("127.0.0.1", 0)),
              std::error_code{});
    wrong.client.send_reclaim({"rtb-b"});
    ASSERT_TRUE(run_until(loop, [&] { return wrong.closed.has_value(); }));
    EXPECT_EQ(asked.size(), 1U);
    EXPECT_EQ(t.server.counters().rejected_hello, 1U);
  }
  expect_clean_close(loop);
}

TEST(Channel, AReplicaStreamOverItsRateBoundIsClosed) {
  uv::Loop loop;
  {
    FlowTable::Limits small;
    small.max_flows = 10;  // bound: 4 x 10 + one frame of flows per second
    int batches = 0;
    ChannelServer server(
        loop, Identity{"lab", "i-taker", std::nullopt}, small,
        [](uint32_t a) -> std::optional<std::string> {
          if (a == kMember) return std::string("i-sender");
          return std::nullopt;
        },
        [](const std::string&, const FlowTable&, const FlowDelta&) {});
    server.set_on_replica([&](const std::string&, const ReplicaBatch&) { ++batches; });
    ASSERT_EQ(server.listen(addr("127.0.0.1", 0)), std::error_code{});
    Sender s(loop);
    ASSERT_EQ(s.client.connect(addr("127.0.0.1", server.port()), addr("127.0.0.1", 0)),
              std::error_code{});
    ReplicaBatch many;
    for (uint16_t i = 0; i < 2000; ++i) many.destroys.push_back(flow(i));
    s.client.send_replica(many);
    s.client.send_replica(many);  // 4,000 entries within a second: over 40 + 3,851
    ASSERT_TRUE(run_until(loop, [&] { return s.closed.has_value(); }));
    EXPECT_EQ(batches, 1);
    EXPECT_EQ(server.counters().closed_bounds, 1U);
  }
  expect_clean_close(loop);
}

TEST(Channel, ConnectionFromANonMemberAddressIsClosedAtOnce) {
  uv::Loop loop;
  {
    Taker t(loop);
    Sender s(loop);
    ASSERT_EQ(s.client.connect(addr("127.0.0.1", t.server.port()), addr("127.0.0.2", 0)),
              std::error_code{});
    s.client.send_flows({flow(1)}, true, true);
    ASSERT_TRUE(run_until(loop, [&] { return s.closed.has_value(); }));
    EXPECT_FALSE(s.ready);
    EXPECT_TRUE(s.acks.empty());
    EXPECT_EQ(t.server.counters().rejected_address, 1U);
    EXPECT_EQ(t.server.counters().accepted, 0U);
    EXPECT_THAT(t.rejects, ::testing::ElementsAre("not a member's private address"));
    EXPECT_TRUE(t.server.held().empty());
  }
  expect_clean_close(loop);
}

TEST(Channel, HelloOfAnotherGroupIsRefused) {
  uv::Loop loop;
  {
    Taker t(loop);
    Sender s(loop, "other");
    ASSERT_EQ(s.client.connect(addr("127.0.0.1", t.server.port()), addr("127.0.0.1", 0)),
              std::error_code{});
    ASSERT_TRUE(run_until(loop, [&] { return s.closed.has_value(); }));
    EXPECT_EQ(t.server.counters().rejected_hello, 1U);
    ASSERT_EQ(t.rejects.size(), 1U);
    EXPECT_THAT(t.rejects[0], ::testing::HasSubstr("group \"other\""));
  }
  expect_clean_close(loop);
}

TEST(Channel, WithAPskTheRightKeyWorksAndAWrongOneIsRefused) {
  uv::Loop loop;
  {
    Taker t(loop, "s3cret-key");
    Sender good(loop, "lab", "s3cret-key");
    ASSERT_EQ(good.client.connect(addr("127.0.0.1", t.server.port()), addr("127.0.0.1", 0)),
              std::error_code{});
    good.client.send_flows({flow(1), flow(2)}, true, true);
    ASSERT_TRUE(run_until(loop, [&] { return !good.acks.empty(); }));
    EXPECT_EQ(good.acks, std::vector<uint32_t>{2});

    Sender wrong(loop, "lab", "guessed-key");
    ASSERT_EQ(wrong.client.connect(addr("127.0.0.1", t.server.port()), addr("127.0.0.1", 0)),
              std::error_code{});
    wrong.client.send_flows({flow(9)}, true, true);
    ASSERT_TRUE(run_until(loop, [&] { return wrong.closed.has_value(); }));
    EXPECT_TRUE(wrong.acks.empty());
    EXPECT_EQ(t.server.counters().rejected_hello, 1U);
    ASSERT_EQ(t.rejects.size(), 1U);
    EXPECT_THAT(t.rejects[0], ::testing::HasSubstr("MAC mismatch"));
    // The refused frame changed nothing.
    const FlowTable* table = t.server.table("i-sender");
    ASSERT_NE(table, nullptr);
    EXPECT_FALSE(table->contains(flow(9)));

    // A sender without a key is refused by a keyed taker.
    Sender unkeyed(loop);
    ASSERT_EQ(unkeyed.client.connect(addr("127.0.0.1", t.server.port()), addr("127.0.0.1", 0)),
              std::error_code{});
    ASSERT_TRUE(run_until(loop, [&] { return unkeyed.closed.has_value(); }));
    EXPECT_EQ(t.server.counters().rejected_hello, 2U);
  }
  expect_clean_close(loop);
}

TEST(Channel, DroppingAMemberForgetsItsFlowsAndClosesItsConnection) {
  uv::Loop loop;
  {
    Taker t(loop);
    Sender s(loop);
    ASSERT_EQ(s.client.connect(addr("127.0.0.1", t.server.port()), addr("127.0.0.1", 0)),
              std::error_code{});
    s.client.send_flows({flow(1)}, true, true);
    ASSERT_TRUE(run_until(loop, [&] { return !s.acks.empty(); }));
    t.server.drop_member("i-sender");
    EXPECT_TRUE(t.server.held().empty());
    EXPECT_EQ(t.held, 0U);
    EXPECT_TRUE(t.last.replaced);
    ASSERT_TRUE(run_until(loop, [&] { return s.closed.has_value(); }));
  }
  expect_clean_close(loop);
}

TEST(Channel, MemberThatSendsNoHelloIsClosedAfterTheHelloTimeout) {
  uv::Loop loop;
  {
    Taker t(loop);
    // A plain socket from the member's address that connects and stays silent.
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(fd, 0);
    const sockaddr_in to = addr("127.0.0.1", t.server.port());
    ASSERT_EQ(::connect(fd, reinterpret_cast<const sockaddr*>(&to), sizeof to), 0);
    ASSERT_TRUE(run_until(loop, [&] { return t.server.connections() == 1; }));
    ASSERT_TRUE(run_until(
        loop, [&] { return t.server.connections() == 0; },
        ChannelServer::kHelloTimeout + std::chrono::seconds(3)));
    EXPECT_EQ(t.server.counters().rejected_hello, 1U);
    EXPECT_THAT(t.rejects, ::testing::ElementsAre("no hello within 2 s"));
    ::close(fd);
  }
  expect_clean_close(loop);
}

}  // namespace
}  // namespace hanat::handover
