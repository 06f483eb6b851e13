// SPDX-License-Identifier: GPL-2.0-or-later
// Stateful takeover against a real kernel: a dead member's flows, as the replica store holds
// them (core/daemon/replica_store.h), installed the way hanatd does it (core/daemon/
// takeover.h: split by address, chunks, own ports read once) into a router's conntrack
// table, and a live flow among them continues with the dead NAT's public port on the
// router's address.
//
//   client (198.18.7.2) -- lan0 [router B] wan0 (198.19.7.1) -- (198.19.7.2) server
#include <arpa/inet.h>
#include <linux/netfilter/nf_conntrack_common.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <string>

#include <gtest/gtest.h>

#include "core/daemon/replica_store.h"
#include "core/daemon/takeover.h"
#include "netfilter/conntrack.h"
#include "netfilter/ct_install.h"
#include "tests/integration/netfilter/nat_router.h"
#include "tests/integration/netfilter/netns_util.h"

namespace hanat::netfilter {
namespace {

using testing::EnterNetns;
using testing::ip;
using testing::Netns;
using testing::port_of;
using testing::send_seen;
using testing::sin;

int udp_in(const Netns& ns, const char* addr) {
  EnterNetns in(ns);
  if (!in.ok()) return -1;
  const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  const sockaddr_in a = sin(addr, 0);
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

size_t entries_from(uint32_t src) {
  auto filter = flow_filter({});
  auto dump = dump_flows(*filter, 10000);
  size_t n = 0;
  if (!dump) return 0;
  for (const auto& f : dump->flows) n += f.src == src ? 1 : 0;
  return n;
}

class TakeoverNetns : public ::testing::Test {
 protected:
  void SetUp() override {
    if (auto why = testing::netns_skip_reason(); !why.empty()) GTEST_SKIP() << why;
    testing::remove_stale_netns();
    topo_.build(7);
  }
  void TearDown() override { topo_.tear_down(); }
  testing::NatRouter topo_;
};

ReplicatedFlow udp(uint16_t sport, uint16_t dport, uint16_t public_port) {
  ReplicatedFlow r;
  r.flow = {IPPROTO_UDP, ip("198.18.7.2"), ip("198.19.7.2"), sport, dport, 120};
  r.public_port = public_port;
  r.status = IPS_CONFIRMED | IPS_SEEN_REPLY | IPS_ASSURED | IPS_SRC_NAT | IPS_SRC_NAT_DONE;
  return r;
}

TEST_F(TakeoverNetns, StoredFlowsInstalledInChunksAndALiveOneContinues) {
  ASSERT_FALSE(HasFatalFailure());
  const int server = udp_in(*topo_.out, "198.19.7.2");
  const int client = udp_in(*topo_.priv, "198.18.7.2");
  ASSERT_GE(server, 0);
  ASSERT_GE(client, 0);
  const uint16_t cport = port_of(client), sport = port_of(server);

  // What the dead member replicated: 300 flows, where flow i and i + 150 share a public port
  // towards different destination ports (masquerade reuses a port across destinations:
  // nf_nat_used_tuple compares the whole reply tuple), in different chunks; and the
  // client's live flow. Then a destroy and an expired-looking resync do their part.
  daemon::replica::Store store{daemon::replica::Limits{}};
  daemon::replica::Batch b;
  b.resync_begin = true;
  for (uint16_t i = 0; i < 300; ++i)
    b.upserts.push_back(udp(static_cast<uint16_t>(20000 + i), static_cast<uint16_t>(1000 + i),
                            static_cast<uint16_t>(30000 + i % 150)));
  const uint16_t public_port = cport == 40000 ? 40001 : 40000;
  b.upserts.push_back(udp(cport, sport, public_port));
  b.upserts.push_back(udp(9, 9, 9));
  b.destroys.push_back(udp(9, 9, 9).flow);
  b.resync_complete = true;
  store.apply("i-dead", b, std::chrono::milliseconds(1000));
  ASSERT_EQ(store.size("i-dead"), 301U);

  const uint32_t here = ip("198.19.7.1");
  auto split = daemon::takeover::split_by_address(
      store.take("i-dead", std::chrono::milliseconds(2000)), {{ip("198.18.7.0"), 24, here}});
  const auto t0 = std::chrono::steady_clock::now();
  daemon::takeover::Install job{"i-dead", std::move(split), t0, {100, std::chrono::seconds(5)}};
  engine::WriteRoute claim;
  claim.op = 1;
  claim.table = "rtb-a";
  EXPECT_TRUE(job.hold(claim, t0).writes.empty());
  PortSet used;
  int chunks = 0;
  std::vector<engine::WriteRoute> released;
  while (auto c = job.next_chunk()) {
    ++chunks;
    if (c->first_of_address) {
      auto p = own_ports(c->address);
      ASSERT_TRUE(p) << p.error().message;
      used = *p;
    }
    auto r = install_flows(c->flows, c->address, used);
    ASSERT_TRUE(r) << r.error().message;
    auto rel = job.chunk_done(r->installed, r->collided, r->failed, t0);
    released.insert(released.end(), rel.writes.begin(), rel.writes.end());
  }
  EXPECT_EQ(chunks, 4);
  EXPECT_EQ(job.counters().installed, 301U);
  EXPECT_EQ(job.counters().collided, 0U);
  EXPECT_EQ(job.counters().failed, 0U);
  ASSERT_EQ(released.size(), 1U);  // the claim went once the last chunk was in
  EXPECT_EQ(released[0].table, "rtb-a");
  EXPECT_EQ(entries_from(ip("198.18.7.2")), 301U);

  // The live flow continues: the server sees the router's address with the dead NAT's
  // public port, and its answer reaches the client.
  EXPECT_EQ(send_seen(client, sin("198.19.7.2", sport), server),
            "198.19.7.1:" + std::to_string(public_port));
  EXPECT_EQ(send_seen(server, sin("198.19.7.1", public_port), client),
            "198.19.7.2:" + std::to_string(sport));
  EXPECT_EQ(entries_from(ip("198.18.7.2")), 301U);  // no second entry for the client
  ::close(server);
  ::close(client);
}

// What one loop turn of a takeover costs: chunks of takeover::kChunk flows installed into a
// table that fills up as they go (the figure behind kChunk's ~20 ms per turn). Bounded
// loosely (200 ms per chunk) so that a loaded machine does not fail it; the times are printed.
TEST_F(TakeoverNetns, ChunksOfKChunkFlowsStayWithinALoopTurn) {
  ASSERT_FALSE(HasFatalFailure());
  constexpr size_t kFlows = 10 * daemon::takeover::kChunk;
  std::vector<ReplicatedFlow> flows;
  for (size_t i = 0; i < kFlows; ++i)
    flows.push_back(udp(static_cast<uint16_t>(10000 + i), 53, static_cast<uint16_t>(30000 + i)));
  const uint32_t here = ip("198.19.7.1");
  auto split = daemon::takeover::split_by_address(flows, {{ip("198.18.7.0"), 24, here}});
  daemon::takeover::Install job{"i-dead", std::move(split), std::chrono::steady_clock::now(), {}};
  auto used = own_ports(here);
  ASSERT_TRUE(used) << used.error().message;
  std::chrono::microseconds worst{0}, total{0};
  while (auto c = job.next_chunk()) {
    const auto began = std::chrono::steady_clock::now();
    auto r = install_flows(c->flows, c->address, *used);
    const auto took = std::chrono::duration_cast<std::chrono::microseconds>(
        std::chrono::steady_clock::now() - began);
    ASSERT_TRUE(r) << r.error().message;
    (void)job.chunk_done(r->installed, r->collided, r->failed, std::chrono::steady_clock::now());
    worst = std::max(worst, took);
    total += took;
  }
  std::printf("%zu flows in chunks of %zu: %lld us in all, the slowest chunk %lld us\n", kFlows,
              daemon::takeover::kChunk, static_cast<long long>(total.count()),
              static_cast<long long>(worst.count()));
  EXPECT_EQ(job.counters().installed, kFlows);
  EXPECT_LT(worst, std::chrono::milliseconds(200));
}

}  // namespace
}  // namespace hanat::netfilter
