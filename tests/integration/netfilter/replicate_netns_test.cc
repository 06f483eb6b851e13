// SPDX-License-Identifier: GPL-2.0-or-later
// Stateful failover's replication stream from a real conntrack table (issue #21): traffic is
// forwarded and masqueraded through a NAT namespace made here; the sending pieces the daemon
// composes (core/daemon/node_replicate.cc) — CtEvents with UPDATE events, the replicated
// dump, a replica::Stream, a ChannelClient — stream it over loopback to a ChannelServer,
// whose OnReplica callback keeps what a receiver would hold. Checked: the receiver holds each
// flow with the public port the far end saw, follows TCP's state, and drops flows that end.
//
//   priv (198.18.3.2) -- lan0 [router] wan0 (198.19.3.1) -- (198.19.3.2) out
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <map>
#include <set>
#include <tuple>

#include <gtest/gtest.h>

#include "core/daemon/replica_sender.h"
#include "core/handover/channel.h"
#include "netfilter/conntrack.h"
#include "netfilter/ct_events.h"
#include "tests/integration/netfilter/nat_router.h"
#include "tests/integration/netfilter/netns_util.h"
#include "tests/support/uv_test_util.h"

namespace hanat::daemon {
namespace {

using hanat::testing::EnterNetns;
using hanat::testing::ip;
using hanat::testing::port_of;
using hanat::testing::send_seen;
using hanat::testing::sin;
using netfilter::Flow;
using netfilter::ReplicatedFlow;
using std::chrono::milliseconds;

using Key = std::tuple<uint8_t, uint32_t, uint32_t, uint16_t, uint16_t>;
Key key(const Flow& f) {
  return {f.proto, f.src, f.dst, f.sport, f.dport};
}

// What a receiver holds of one sender: upserts replace, destroys remove, a completed resync
// drops what it did not announce (codec.h, ReplicaBatch).
struct Receiver {
  std::map<Key, ReplicatedFlow> held;
  std::set<Key> announced;
  int resyncs = 0;
  void apply(const handover::ReplicaBatch& b) {
    if ((b.flags & handover::ReplicaBatch::kResyncBegin) != 0) announced.clear();
    for (const auto& u : b.upserts) {
      held[key(u.flow)] = u;
      announced.insert(key(u.flow));
    }
    for (const auto& d : b.destroys) held.erase(key(d));
    if ((b.flags & handover::ReplicaBatch::kResyncComplete) != 0) {
      std::erase_if(held, [&](const auto& kv) { return announced.count(kv.first) == 0; });
      ++resyncs;
    }
  }
  const ReplicatedFlow* find(const Flow& f) const {
    auto it = held.find(key(f));
    return it == held.end() ? nullptr : &it->second;
  }
};

// A socket of `type` in `ns` bound to `addr`:0 (it stays there after the thread leaves).
int socket_in(const testing::Netns& ns, int type, const char* addr) {
  EnterNetns in(ns);
  if (!in.ok()) return -1;
  const int fd = ::socket(AF_INET, type | SOCK_CLOEXEC, 0);
  const sockaddr_in a = sin(addr, 0);
  if (fd < 0 || ::bind(fd, reinterpret_cast<const sockaddr*>(&a), sizeof a) != 0) return -1;
  return fd;
}

// Sends from `fd` to 198.19.3.2:`port` until a datagram arrives at `rx` (ARP on fresh veths
// may eat the first); the source port it arrived with (the public port), or 0.
uint16_t udp_public_port(int fd, int rx, uint16_t port) {
  sockaddr_in from{};
  if (send_seen(fd, sin("198.19.3.2", port), rx, &from).empty()) return 0;
  return ntohs(from.sin_port);
}

Flow flow(uint8_t proto, uint16_t sport, uint16_t dport) {
  Flow f;
  f.proto = proto;
  f.src = ip("198.18.3.2");
  f.dst = ip("198.19.3.2");
  f.sport = sport;
  f.dport = dport;
  return f;
}

class ReplicateNetns : public ::testing::Test {
 protected:
  void SetUp() override {
    if (auto why = testing::netns_skip_reason(); !why.empty()) GTEST_SKIP() << why;
    testing::remove_stale_netns();
    topo_.build(3);
  }
  void TearDown() override { topo_.tear_down(); }
  testing::NatRouter topo_;
};

TEST_F(ReplicateNetns, TheReceiverHoldsEachFlowWithItsPublicPortFollowsTcpAndDropsEndedFlows) {
  ASSERT_EQ(topo_.router->ip("link set lo up"), 0);
  // Every entry gets the event extension, also those older than the listener.
  ASSERT_TRUE(testing::write_proc("/proc/sys/net/netfilter/nf_conntrack_events", "1"));
  const int rx = socket_in(*topo_.out, SOCK_DGRAM, "198.19.3.2");
  ASSERT_GE(rx, 0);
  const uint16_t udp_port = port_of(rx);
  // A flow older than the stream: only the resync on connect can announce it.
  const int early = socket_in(*topo_.priv, SOCK_DGRAM, "198.18.3.2");
  ASSERT_GE(early, 0);
  const uint16_t early_public = udp_public_port(early, rx, udp_port);
  ASSERT_NE(early_public, 0);
  const Flow early_flow = flow(IPPROTO_UDP, port_of(early), udp_port);

  auto filter = netfilter::flow_filter({"198.18.3.0/24"});
  ASSERT_TRUE(filter) << filter.error().message;
  uv::Loop loop;
  {
    Receiver recv;
    handover::ChannelServer server(
        loop, handover::Identity{"lab", "i-taker", std::nullopt}, handover::FlowTable::Limits{},
        [](uint32_t a) -> std::optional<std::string> {
          if (a == 0x7f000001) return std::string("i-sender");
          return std::nullopt;
        },
        [](const std::string&, const handover::FlowTable&, const handover::FlowDelta&) {});
    std::string sender_seen;
    server.set_on_replica([&](const std::string& m, const handover::ReplicaBatch& b) {
      sender_seen = m;
      recv.apply(b);
    });
    ASSERT_EQ(server.listen(sin("127.0.0.1", 0)), std::error_code{});

    // The sending side, wired as node_replicate.cc wires it.
    replica::Stream stream;
    stream.set_sources({netfilter::Ipv4Prefix{ip("198.18.3.0"), 24}});
    bool ready = false;
    handover::ChannelClient client(
        loop, handover::Identity{"lab", "i-sender", std::nullopt},
        handover::ChannelClient::Callbacks{
            [&] { ready = true; }, nullptr,
            [](const std::string& why) { ADD_FAILURE() << "channel closed: " << why; }});
    auto events = netfilter::CtEvents::open(
        loop, *filter, 1000,
        [&](const netfilter::FlowEvents& e) {
          if (e.resync) stream.force_resync();
          for (const auto& ev : e.events) (void)stream.add(ev, replica::Time::clock::now());
        },
        netfilter::CtEvents::kDefaultRcvBuf, true);
    ASSERT_TRUE(events) << events.error().message;
    uv::Timer service(loop);
    ASSERT_EQ(service.start(milliseconds(10), milliseconds(10),
                            [&] {
                              if (!ready) return;
                              const auto t = replica::Time::clock::now();
                              if (stream.resync_due(t, client.backlog())) {
                                auto dump = netfilter::dump_replicated_flows(*filter, 1000);
                                ASSERT_TRUE(dump) << dump.error().message;
                                for (const auto& b : stream.resync(dump->flows, t))
                                  client.send_replica(b);
                              }
                              for (const auto& b : stream.flush(t, client.backlog()))
                                client.send_replica(b);
                            }),
              std::error_code{});
    ASSERT_EQ(client.connect(sin("127.0.0.1", server.port()), sin("127.0.0.1", 0)),
              std::error_code{});
    ASSERT_TRUE(ready || testing::run_until(loop, [&] { return ready; }));
    stream.connected(replica::Time::clock::now());

    // The resync on connect carries the flow older than the stream, with its public port.
    ASSERT_TRUE(testing::run_until(loop, [&] { return recv.resyncs >= 1; }));
    EXPECT_EQ(sender_seen, "i-sender");
    const ReplicatedFlow* got = recv.find(early_flow);
    ASSERT_NE(got, nullptr);
    EXPECT_EQ(got->public_port, early_public);
    EXPECT_NE(got->status & 0x10, 0U);  // IPS_SRC_NAT
    EXPECT_GT(got->flow.timeout_s, 0U);

    // A TCP connection: NEW, then UPDATE to ESTABLISHED, with the port the far end saw.
    const int lst = socket_in(*topo_.out, SOCK_STREAM, "198.19.3.2");
    ASSERT_GE(lst, 0);
    ASSERT_EQ(::listen(lst, 4), 0);
    const int cli = socket_in(*topo_.priv, SOCK_STREAM, "198.18.3.2");
    ASSERT_GE(cli, 0);
    const sockaddr_in to = sin("198.19.3.2", port_of(lst));
    ASSERT_EQ(::connect(cli, reinterpret_cast<const sockaddr*>(&to), sizeof to), 0);
    sockaddr_in peer{};
    socklen_t plen = sizeof peer;
    const int acc = ::accept(lst, reinterpret_cast<sockaddr*>(&peer), &plen);
    ASSERT_GE(acc, 0);
    ASSERT_EQ(::write(cli, "hello", 5), 5);
    char buf[8];
    ASSERT_EQ(::read(acc, buf, sizeof buf), 5);
    const Flow tcp_flow = flow(IPPROTO_TCP, port_of(cli), port_of(lst));
    ASSERT_TRUE(testing::run_until(loop, [&] {
      const ReplicatedFlow* f = recv.find(tcp_flow);
      return f != nullptr && f->tcp && f->tcp->state == 3;  // TCP_CONNTRACK_ESTABLISHED
    })) << "the receiver never held the TCP flow as ESTABLISHED";
    EXPECT_EQ(recv.find(tcp_flow)->public_port, ntohs(peer.sin_port));

    // Both ends close: the state changes are events too (FIN_WAIT ... TIME_WAIT).
    ::close(cli);
    ::close(acc);
    ASSERT_TRUE(testing::run_until(loop, [&] {
      const ReplicatedFlow* f = recv.find(tcp_flow);
      return f != nullptr && f->tcp && f->tcp->state == 7;  // TCP_CONNTRACK_TIME_WAIT
    })) << "the receiver never saw the TCP flow in TIME_WAIT";
    // NEW and ESTABLISHED may share a batch (coalesced); the close came after both.
    EXPECT_GE(stream.counters().events, 2U);

    // The entries end (flushed): DESTROY events remove them from the receiver.
    ASSERT_TRUE(testing::flush_conntrack());
    ASSERT_TRUE(testing::run_until(
        loop, [&] { return recv.find(tcp_flow) == nullptr && recv.find(early_flow) == nullptr; }))
        << "the receiver still holds " << recv.held.size() << " flows";
    EXPECT_EQ(stream.counters().drops, 0U);
    EXPECT_GE(server.counters().replica_frames, 3U);
    EXPECT_EQ((*events)->counters().malformed, 0U);
    events->reset();
    ::close(lst);
  }
  testing::expect_clean_close(loop);
  for (int fd : {early, rx}) ::close(fd);
}

}  // namespace
}  // namespace hanat::daemon
