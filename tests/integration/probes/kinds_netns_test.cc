// SPDX-License-Identifier: GPL-2.0-or-later
// Failure kinds and both ICMP socket kinds, in namespaces.
#include <algorithm>
#include <thread>

#include "tests/integration/probes/fixture.h"

namespace hanat::probes {
namespace {

class KindsTest : public NetnsTest {
 protected:
  Outcome icmp_once(IcmpProber& p, const char* ip, std::chrono::milliseconds t = 200ms) {
    std::optional<Outcome> got;
    p.probe(addr(ip), t, [&](Outcome o) { got = std::move(o); });
    EXPECT_TRUE(run_until(
        loop_, [&] { return got.has_value(); }, 3s));
    return got.value_or(failed(Failure::Error, "test: no outcome"));
  }
  Outcome tcp_once(const char* ip, std::uint16_t port, std::chrono::milliseconds t = 200ms) {
    TcpProber p(loop_, {});
    std::optional<Outcome> got;
    p.connect(addr(ip, port), t, [&](Outcome o) { got = std::move(o); });
    EXPECT_TRUE(run_until(
        loop_, [&] { return got.has_value(); }, 3s));
    return got.value_or(failed(Failure::Error, "test: no outcome"));
  }
  std::unique_ptr<IcmpProber> open_icmp(IcmpMode m, BindOptions b = {}) {
    auto r = IcmpProber::open(loop_, m, b);
    EXPECT_TRUE(r) << r.error();
    return r ? std::move(r).value() : nullptr;
  }
  // Routes 198.19.50.0/24 through the peer, which has an "unreachable" route for it and
  // forwards: the peer answers with ICMP host unreachable, as a router would.
  void route_via_peer_to_unreachable() {
    ASSERT_EQ(sh("ip -n " + a_->name() + " route add 198.19.50.0/24 via " + kB), 0);
    ASSERT_TRUE(b_->run("sysctl -q -w net.ipv4.ip_forward=1"));
    ASSERT_EQ(sh("ip -n " + b_->name() + " route add unreachable 198.19.50.0/24"), 0);
  }
};

TEST_F(KindsTest, ClosedPortIsRefused) {
  std::uint16_t port = 0;
  uv::Tcp bound(loop_);
  {
    InNetns in_b(b_->name());
    auto la = addr(kB);
    ASSERT_FALSE(bound.bind(reinterpret_cast<sockaddr*>(&la)));
    ASSERT_FALSE(bound.listen(1, [](std::error_code) {}));  // create the socket, get a port
    sockaddr_storage ss{};
    ASSERT_FALSE(bound.sockname(ss));
    port = ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
  }
  EXPECT_TRUE(tcp_once(kB, port).ok);
  bound.reset();  // nothing listens any more: the peer kernel answers RST
  Outcome o = tcp_once(kB, port);
  EXPECT_EQ(o.failure, Failure::Refused) << o.detail;
  EXPECT_LT(o.rtt, 100ms) << "a RST answers at once, no waiting for the deadline";
}

TEST_F(KindsTest, FilteredPortTimesOut) {
  if (sh("nft --version") != 0) GTEST_SKIP() << "nft is not installed";
  start_peer_services();
  ASSERT_TRUE(b_->run("nft add table inet hanat_test"));
  ASSERT_TRUE(b_->run("nft add chain inet hanat_test in '{ type filter hook input priority 0; }'"));
  ASSERT_TRUE(
      b_->run("nft add rule inet hanat_test in tcp dport " + std::to_string(tcp_port_) + " drop"));
  Outcome o = tcp_once(kB, tcp_port_, 120ms);
  EXPECT_EQ(o.failure, Failure::Timeout) << o.detail;
  EXPECT_EQ(o.detail, "no answer to connect");
  EXPECT_GE(o.rtt, 120ms);
  // Our deadline, not the kernel's, ended the connect: its first SYN retransmission comes at
  // 1 s. Not a tighter bound: this test also runs in the parallel ASan pass, where the loop
  // can fire a 120 ms timer tens of ms late.
  EXPECT_LT(o.rtt, 1s);
  // Only that port is filtered: the agent port still answers.
  EXPECT_TRUE(tcp_once(kB, agent_->port()).ok);
}

TEST_F(KindsTest, NoRouteIsUnreachableAtOnce) {
  ASSERT_TRUE(allow_ping_sockets(false));
  auto icmp = open_icmp(IcmpMode::Auto);
  ASSERT_TRUE(icmp);
  Outcome i = icmp_once(*icmp, "198.19.99.1");
  EXPECT_EQ(i.failure, Failure::Unreachable) << i.detail;
  EXPECT_EQ(i.detail, "sendto 198.19.99.1: Network is unreachable");
  Outcome t = tcp_once("198.19.99.1", 443);
  EXPECT_EQ(t.failure, Failure::Unreachable) << t.detail;
}

TEST_F(KindsTest, AbsentOnLinkHostTimesOut) {
  auto icmp = open_icmp(IcmpMode::Auto);
  ASSERT_TRUE(icmp);
  Outcome o = icmp_once(*icmp, "198.18.0.99", 100ms);  // ARP never resolves
  EXPECT_EQ(o.failure, Failure::Timeout) << o.detail;
  EXPECT_EQ(tcp_once("198.18.0.99", 443, 100ms).failure, Failure::Timeout);
}

TEST_F(KindsTest, RouterUnreachableSeenByRawSocketAndTcp) {
  route_via_peer_to_unreachable();
  ASSERT_TRUE(allow_ping_sockets(false));
  auto raw = open_icmp(IcmpMode::Auto);
  ASSERT_TRUE(raw);
  ASSERT_EQ(raw->mode(), IcmpMode::Raw);
  Outcome o = icmp_once(*raw, "198.19.50.1", 500ms);
  EXPECT_EQ(o.failure, Failure::Unreachable) << o.detail;
  EXPECT_EQ(o.detail, "destination unreachable (code 1) from 198.18.0.2");
  Outcome t = tcp_once("198.19.50.2", 443, 500ms);
  EXPECT_EQ(t.failure, Failure::Unreachable) << t.detail;
}

TEST_F(KindsTest, RouterUnreachableIsATimeoutOnPingSocket) {
  // Documented limitation (icmp.h): ping sockets do not read ICMP errors without IP_RECVERR.
  route_via_peer_to_unreachable();
  ASSERT_TRUE(allow_ping_sockets(true));
  auto ping = open_icmp(IcmpMode::Auto);
  ASSERT_TRUE(ping);
  ASSERT_EQ(ping->mode(), IcmpMode::Ping);
  Outcome o = icmp_once(*ping, "198.19.50.3", 100ms);
  EXPECT_EQ(o.failure, Failure::Timeout) << o.detail;
}

class IcmpModes : public KindsTest, public ::testing::WithParamInterface<bool> {};

TEST_P(IcmpModes, AutoPicksSocketKindAndProbes) {
  bool ping_allowed = GetParam();
  ASSERT_TRUE(allow_ping_sockets(ping_allowed));
  auto p = open_icmp(IcmpMode::Auto);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->mode(), ping_allowed ? IcmpMode::Ping : IcmpMode::Raw);

  Outcome o = icmp_once(*p, kB);
  EXPECT_TRUE(o.ok) << o.detail;
  EXPECT_GT(o.rtt.count(), 0);
  EXPECT_LT(o.rtt, 100ms);

  // Many targets on one socket at once, matched by sequence: the live one answers, the
  // absent one times out, and neither result is confused with the other.
  const char* targets[] = {kB, "198.18.0.98", kB, kA};
  std::vector<std::optional<Outcome>> got(4);
  for (std::size_t i = 0; i < 4; ++i) {
    p->probe(addr(targets[i]), 150ms, [&got, i](Outcome r) { got[i] = std::move(r); });
  }
  ASSERT_TRUE(run_until(
      loop_,
      [&] {
        return std::all_of(got.begin(), got.end(), [](const auto& g) { return g.has_value(); });
      },
      3s));
  EXPECT_TRUE(got[0]->ok) << got[0]->detail;
  EXPECT_EQ(got[1]->failure, Failure::Timeout) << got[1]->detail;
  EXPECT_TRUE(got[2]->ok) << got[2]->detail;
  EXPECT_TRUE(got[3]->ok) << "own address: " << got[3]->detail;
  EXPECT_EQ(p->in_flight(), 0u);
}

TEST_P(IcmpModes, LateReplyIsDiscarded) {
  ASSERT_TRUE(allow_ping_sockets(GetParam()));
  auto p = open_icmp(IcmpMode::Auto);
  ASSERT_TRUE(p);
  ASSERT_TRUE(icmp_once(*p, kB).ok);  // ARP resolved
  std::optional<Outcome> got;
  p->probe(addr(kB), 1ms, [&](Outcome o) { got = std::move(o); });
  // Stall the loop past the deadline while the reply arrives. libuv runs due timers before
  // polling for I/O, so the deadline fires first and the reply that is already queued is late.
  std::this_thread::sleep_for(5ms);
  ASSERT_TRUE(run_until(
      loop_, [&] { return got.has_value() && p->discarded() == 1; }, 2s));
  EXPECT_EQ(got->failure, Failure::Timeout);
  EXPECT_EQ(p->discarded(), 1u);
}

INSTANTIATE_TEST_SUITE_P(PingAndRaw, IcmpModes, ::testing::Bool(),
                         [](const auto& p) { return p.param ? "PingSocket" : "RawSocket"; });

TEST_F(KindsTest, ForcedPingModeExplainsRefusal) {
  ASSERT_TRUE(allow_ping_sockets(false));
  auto r = IcmpProber::open(loop_, IcmpMode::Ping, {});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(),
            "ICMP ping socket: Permission denied (our group is outside "
            "net.ipv4.ping_group_range)");
}

TEST_F(KindsTest, InterfaceAndSourceBinding) {
  for (bool ping : {true, false}) {
    ASSERT_TRUE(allow_ping_sockets(ping));
    auto via_veth =
        open_icmp(IcmpMode::Auto, {.interface = pa_, .has_source = false, .source = {}});
    ASSERT_TRUE(via_veth);
    EXPECT_TRUE(icmp_once(*via_veth, kB).ok) << to_string(via_veth->mode());
    // Bound to loopback, the peer is not reachable: the probe must not sneak out via pa.
    auto via_lo = open_icmp(IcmpMode::Auto, {.interface = "lo", .has_source = false, .source = {}});
    ASSERT_TRUE(via_lo);
    EXPECT_FALSE(icmp_once(*via_lo, kB, 100ms).ok) << to_string(via_lo->mode());
    auto from_a =
        open_icmp(IcmpMode::Auto, {.interface = {}, .has_source = true, .source = addr(kA)});
    ASSERT_TRUE(from_a);
    EXPECT_TRUE(icmp_once(*from_a, kB).ok);
  }
  auto bad = IcmpProber::open(loop_, IcmpMode::Auto,
                              {.interface = {}, .has_source = true, .source = addr("198.18.0.77")});
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().find("source 198.18.0.77"), std::string::npos) << bad.error();
  EXPECT_NE(bad.error().find("Cannot assign requested address"), std::string::npos) << bad.error();

  TcpProber bound_tcp(loop_, {.interface = "lo", .has_source = false, .source = {}});
  start_peer_services();
  std::optional<Outcome> got;
  bound_tcp.connect(addr(kB, tcp_port_), 100ms, [&](Outcome o) { got = std::move(o); });
  ASSERT_TRUE(run_until(
      loop_, [&] { return got.has_value(); }, 2s));
  EXPECT_FALSE(got->ok) << "TCP bound to lo must not reach the peer";
}

}  // namespace
}  // namespace hanat::probes
