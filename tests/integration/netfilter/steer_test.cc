// SPDX-License-Identifier: GPL-2.0-or-later
// Steering of a leaving member's flows (netfilter/steer.h) in namespaces this test creates,
// modelled on AWS: the two NATs sit in different subnets behind a "vpc" router namespace
// whose default route is the private subnet's route table, so B cannot hand a packet to A
// by next hop; only the tunnel gets it there.
//
//   priv 198.18.1.2 -- vpc -- 198.18.2.2 natA wan0 198.19.1.1 -- inet (198.19.0.1 on lo)
//                         \-- 198.18.3.2 natB wan0 198.19.2.1 --/
//
// The vpc links of the NATs have MTU 9001, as an AWS VPC does; the private host's link 1500.
// The VPC is 198.18.0.0/16, the internet 198.19.0.0/16; inet has no route to the VPC: only
// masqueraded traffic is answered.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "netfilter/batch.h"
#include "netfilter/netlink.h"
#include "netfilter/steer.h"
#include "tests/integration/netfilter/netns_util.h"

namespace hanat::netfilter {
namespace {

using testing::capture;
using testing::EnterNetns;
using testing::Netns;

constexpr uint32_t ip(uint32_t a, uint32_t b, uint32_t c, uint32_t d) {
  return a << 24 | b << 16 | c << 8 | d;
}

constexpr uint32_t kPriv = ip(198, 18, 1, 2);
constexpr uint32_t kNatA = ip(198, 18, 2, 2);
constexpr uint32_t kNatB = ip(198, 18, 3, 2);
constexpr uint32_t kInet = ip(198, 19, 0, 1);
constexpr int kIoTimeoutMs = 3000;

sockaddr_in sa(uint32_t host_ip, uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(host_ip);
  return a;
}

std::string peer_ip(int fd) {
  sockaddr_in a{};
  socklen_t len = sizeof a;
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) return "?";
  char buf[INET_ADDRSTRLEN] = {};
  inet_ntop(AF_INET, &a.sin_addr, buf, sizeof buf);
  return buf;
}

uint16_t local_port(int fd) {
  sockaddr_in a{};
  socklen_t len = sizeof a;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) return 0;
  return ntohs(a.sin_port);
}

// A listening TCP socket inside `ns` on kInet, port 0.
int listen_in(const Netns& ns) {
  EnterNetns in(ns);
  if (!in.ok()) return -1;
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  const sockaddr_in a = sa(kInet, 0);
  if (fd < 0 || ::bind(fd, reinterpret_cast<const sockaddr*>(&a), sizeof a) != 0 ||
      ::listen(fd, 16) != 0) {
    if (fd >= 0) ::close(fd);
    return -1;
  }
  return fd;
}

bool wait_for(int fd, short events, int timeout_ms = kIoTimeoutMs) {
  pollfd p{fd, events, 0};
  return ::poll(&p, 1, timeout_ms) == 1;
}

// A connection from `ns` to the listener, and the server's end of it.
struct Conn {
  int client = -1;
  int server = -1;
  ~Conn() {
    if (client >= 0) ::close(client);
    if (server >= 0) ::close(server);
  }
};

std::unique_ptr<Conn> connect_from(const Netns& ns, int listener) {
  auto c = std::make_unique<Conn>();
  {
    EnterNetns in(ns);
    if (!in.ok()) return nullptr;
    c->client = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  }
  if (c->client < 0) return nullptr;
  const sockaddr_in to = sa(kInet, local_port(listener));
  // Blocking connect: the kernel retries the SYN (fresh veths may still resolve ARP) and
  // gives up after its own bound; the listener's poll below bounds the wait for accept.
  timeval tv{kIoTimeoutMs / 1000, 0};
  (void)::setsockopt(c->client, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  if (::connect(c->client, reinterpret_cast<const sockaddr*>(&to), sizeof to) != 0) {
    ADD_FAILURE() << "connect from " << ns.name() << ": " << std::strerror(errno);
    return nullptr;
  }
  if (!wait_for(listener, POLLIN)) {
    ADD_FAILURE() << "connected from " << ns.name() << " but nothing to accept";
    return nullptr;
  }
  c->server = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
  if (c->server < 0) return nullptr;
  return c;
}

// Reads exactly n bytes within the timeout, or fewer on error/EOF/timeout. *err gets errno.
std::string read_n(int fd, size_t n, int* err = nullptr) {
  std::string got;
  std::array<char, 16384> buf{};
  while (got.size() < n) {
    if (!wait_for(fd, POLLIN)) break;
    const ssize_t r = ::recv(fd, buf.data(), std::min(buf.size(), n - got.size()), MSG_DONTWAIT);
    if (r < 0 && errno == EAGAIN) continue;
    if (r <= 0) {
      if (err != nullptr) *err = r < 0 ? errno : 0;
      break;
    }
    got.append(buf.data(), static_cast<size_t>(r));
  }
  return got;
}

bool send_all(int fd, const std::string& data) {
  size_t at = 0;
  while (at < data.size()) {
    if (!wait_for(fd, POLLOUT)) return false;
    const ssize_t w = ::send(fd, data.data() + at, data.size() - at, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (w < 0 && errno == EAGAIN) continue;
    if (w <= 0) return false;
    at += static_cast<size_t>(w);
  }
  return true;
}

// The private host sends `msg`, the internet host answers with its reverse: what the private
// host got back ("" when the connection is broken).
std::string round_trip(const Conn& c, const std::string& msg) {
  if (!send_all(c.client, msg)) return "send failed";
  const std::string at_server = read_n(c.server, msg.size());
  if (at_server != msg) return "server got " + std::to_string(at_server.size()) + " bytes";
  const std::string back(msg.rbegin(), msg.rend());
  if (!send_all(c.server, back)) return "server send failed";
  const std::string got = read_n(c.client, back.size());
  return got == back ? msg : "client got " + std::to_string(got.size()) + " bytes";
}

// What a namespace holds that steering could leave behind. The kernel's fallback device tunl0
// appears in every namespace once the ipip module is loaded (net.core.fb_tunnels_only_for_
// init_net=0, the default): it is the module's, not ours, and is left out.
std::string residue(const Netns& ns) {
  return capture(
      ns.exec("sh -c \"ip -o link show | cut -d' ' -f2; ip -4 neigh show nud permanent; "
              "ip -4 rule show; ip -4 route show table all; "
              "nft list tables\" 2>&1"));
}

class SteerNetns : public ::testing::Test {
 protected:
  void SetUp() override {
    if (auto why = testing::netns_skip_reason(); !why.empty()) GTEST_SKIP() << why;
    testing::remove_stale_netns();
    for (const char* role : {"priv", "vpc", "natA", "natB", "inet"}) {
      ns_.push_back(std::make_unique<Netns>(role));
      ASSERT_TRUE(ns_.back()->ok()) << "could not create namespace " << ns_.back()->name();
    }
  }

  Netns& priv() { return *ns_[0]; }
  Netns& vpc() { return *ns_[1]; }
  Netns& nat_a() { return *ns_[2]; }
  Netns& nat_b() { return *ns_[3]; }
  Netns& inet() { return *ns_[4]; }

  void link(Netns& a, const std::string& ia, const std::string& addr_a, Netns& b,
            const std::string& ib, const std::string& addr_b, int mtu) {
    ASSERT_EQ(a.ip("link add " + ia + " mtu " + std::to_string(mtu) + " type veth peer name " + ib +
                   " mtu " + std::to_string(mtu) + " netns " + b.name()),
              0);
    ASSERT_EQ(a.ip("addr add " + addr_a + " dev " + ia), 0);
    ASSERT_EQ(b.ip("addr add " + addr_b + " dev " + ib), 0);
    ASSERT_EQ(a.ip("link set " + ia + " up"), 0);
    ASSERT_EQ(b.ip("link set " + ib + " up"), 0);
  }

  void forward(Netns& ns) {
    ASSERT_EQ(testing::sh(ns.exec("sh -c 'echo 1 > /proc/sys/net/ipv4/ip_forward'")), 0);
  }

  void masquerade(Netns& ns) {
    EnterNetns in(ns);
    ASSERT_TRUE(in.ok());
    NatSpec spec;
    spec.egress_interface = "wan0";
    spec.source_cidrs = {"198.18.1.0/24"};
    auto nl = Netlink::open();
    ASSERT_TRUE(nl) << nl.error().message;
    auto b = build_batch(spec, nl->next_seq());
    ASSERT_TRUE(b) << b.error().message;
    auto c = nl->commit(*b);
    ASSERT_TRUE(c) << c.error().message;
  }

  void build() {
    ASSERT_NO_FATAL_FAILURE(
        link(priv(), "eth0", "198.18.1.2/24", vpc(), "p0", "198.18.1.1/24", 1500));
    ASSERT_NO_FATAL_FAILURE(
        link(nat_a(), "lan0", "198.18.2.2/24", vpc(), "a0", "198.18.2.1/24", 9001));
    ASSERT_NO_FATAL_FAILURE(
        link(nat_b(), "lan0", "198.18.3.2/24", vpc(), "b0", "198.18.3.1/24", 9001));
    ASSERT_NO_FATAL_FAILURE(
        link(nat_a(), "wan0", "198.19.1.1/24", inet(), "e1", "198.19.1.2/24", 1500));
    ASSERT_NO_FATAL_FAILURE(
        link(nat_b(), "wan0", "198.19.2.1/24", inet(), "e2", "198.19.2.2/24", 1500));
    ASSERT_EQ(inet().ip("addr add 198.19.0.1/32 dev lo"), 0);
    for (Netns* n : {&priv(), &vpc(), &nat_a(), &nat_b(), &inet()}) {
      ASSERT_EQ(n->ip("link set lo up"), 0);
    }
    ASSERT_EQ(priv().ip("route add default via 198.18.1.1"), 0);
    // The private subnet's route table: default to natA's ENI.
    ASSERT_EQ(vpc().ip("route add default via 198.18.2.2"), 0);
    ASSERT_EQ(nat_a().ip("route add 198.18.0.0/16 via 198.18.2.1"), 0);
    ASSERT_EQ(nat_b().ip("route add 198.18.0.0/16 via 198.18.3.1"), 0);
    ASSERT_EQ(nat_a().ip("route add default via 198.19.1.2"), 0);
    ASSERT_EQ(nat_b().ip("route add default via 198.19.2.2"), 0);
    for (Netns* n : {&vpc(), &nat_a(), &nat_b()}) ASSERT_NO_FATAL_FAILURE(forward(*n));
    ASSERT_NO_FATAL_FAILURE(masquerade(nat_a()));
    ASSERT_NO_FATAL_FAILURE(masquerade(nat_b()));
  }

  SteerSpec spec() const {
    SteerSpec s;
    s.local = kNatB;
    s.peer = kNatA;
    s.mark = 0x48000001;
    s.route_table = 4801;
    s.rule_priority = 4801;
    s.max_flows = 1024;
    s.max_timeout_s = 300;
    return s;
  }

  std::vector<std::unique_ptr<Netns>> ns_;
};

Flow flow_of(const Conn& c) {
  sockaddr_in local{};
  socklen_t len = sizeof local;
  (void)::getsockname(c.client, reinterpret_cast<sockaddr*>(&local), &len);
  sockaddr_in remote{};
  len = sizeof remote;
  (void)::getpeername(c.client, reinterpret_cast<sockaddr*>(&remote), &len);
  return Flow{IPPROTO_TCP,           ntohl(local.sin_addr.s_addr), ntohl(remote.sin_addr.s_addr),
              ntohs(local.sin_port), ntohs(remote.sin_port),       0};
}

TEST_F(SteerNetns, EstablishedFlowsStayWithTheLeavingNatAndNewOnesTakeTheNewOne) {
  ASSERT_NO_FATAL_FAILURE(build());
  const std::string before_a = residue(nat_a());
  const std::string before_b = residue(nat_b());

  const int listener = listen_in(inet());
  ASSERT_GE(listener, 0);
  // Three connections through natA: one steered by its 5-tuple, one left to catch-unknown,
  // one control that nothing steers.
  auto steered = connect_from(priv(), listener);
  auto caught = connect_from(priv(), listener);
  auto control = connect_from(priv(), listener);
  ASSERT_TRUE(steered && caught && control) << "no connection through natA";
  for (const Conn* c : {steered.get(), caught.get(), control.get()}) {
    EXPECT_EQ(peer_ip(c->server), "198.19.1.1") << "natA's address";
    ASSERT_EQ(round_trip(*c, "before the move"), "before the move");
  }

  // The leaving side accepts, the taking side steers, then the route moves.
  {
    EnterNetns in(nat_a());
    ASSERT_TRUE(in.ok());
    auto a = accept_steered({kNatA, kNatB, 0});
    ASSERT_TRUE(a) << a.error().message;
  }
  EnterNetns in_b(nat_b());
  ASSERT_TRUE(in_b.ok());
  auto steering = Steering::open();
  ASSERT_TRUE(steering) << steering.error().message;
  auto inst = steering->install(spec());
  ASSERT_TRUE(inst) << inst.error().message;
  const std::vector<Flow> flows = {flow_of(*steered)};
  auto added = steering->add_flows(kNatA, flows);
  ASSERT_TRUE(added) << added.error().message;
  EXPECT_EQ(*added, 1U);
  ASSERT_EQ(vpc().ip("route replace default via 198.18.3.2"), 0);

  // The steered flow keeps its connection, its data in both directions, and a 64 KiB burst
  // of full-size segments (1520-byte outer packets over the 9001-byte VPC links).
  EXPECT_EQ(round_trip(*steered, "after the move"), "after the move");
  const std::string bulk(64 * 1024, 'x');
  EXPECT_TRUE(round_trip(*steered, bulk) == bulk) << "64 KiB did not make the round trip";

  // Control: an unknown flow while catch-unknown is off is masqueraded by natB and reset by
  // the internet host, as every established connection was before steering.
  ASSERT_TRUE(send_all(control->client, "lost"));
  int err = 0;
  EXPECT_EQ(read_n(control->client, 1, &err), "");
  EXPECT_EQ(err, ECONNRESET) << "the control connection was not reset: the test proves nothing";

  // With catch-unknown on, a mid-stream packet of a flow natB never heard of goes to natA.
  auto on = steering->set_catch_unknown_tcp(kNatA);
  ASSERT_TRUE(on) << on.error().message;
  EXPECT_EQ(round_trip(*caught, "caught mid-stream"), "caught mid-stream");

  // A new connection leaves with natB's address.
  auto fresh = connect_from(priv(), listener);
  ASSERT_TRUE(fresh) << "no new connection through natB";
  EXPECT_EQ(peer_ip(fresh->server), "198.19.2.1");
  EXPECT_EQ(round_trip(*fresh, "new flow"), "new flow");

  // Flows leave the set again (twice: a flow already gone is no error).
  const std::string list_set = "nft list set ip hanat_steer_c6120202 flows";
  EXPECT_THAT(
      capture(nat_b().exec(list_set)),
      ::testing::HasSubstr("198.18.1.2 . 198.19.0.1 . tcp . " + std::to_string(flows[0].sport) +
                           " . " + std::to_string(flows[0].dport) + " timeout 5m expires"));
  auto off = steering->set_catch_unknown_tcp(std::nullopt);
  ASSERT_TRUE(off) << off.error().message;
  auto gone = steering->remove_flows(kNatA, flows);
  ASSERT_TRUE(gone) << gone.error().message;
  gone = steering->remove_flows(kNatA, flows);
  ASSERT_TRUE(gone) << gone.error().message;
  EXPECT_THAT(capture(nat_b().exec(list_set)), ::testing::Not(::testing::HasSubstr("198.18.1.2")));

  // Removal leaves nothing on either side.
  auto rm = steering->remove(kNatA);
  ASSERT_TRUE(rm) << rm.error().message;
  {
    EnterNetns in(nat_a());
    ASSERT_TRUE(in.ok());
    auto s = stop_accepting(kNatB);
    ASSERT_TRUE(s) << s.error().message;
  }
  EXPECT_EQ(residue(nat_b()), before_b);
  EXPECT_EQ(residue(nat_a()), before_a);
  ::close(listener);
}

TEST_F(SteerNetns, InstallIsIdempotentAndStartUpCleanupRemovesACrashedProcessLeftovers) {
  ASSERT_NO_FATAL_FAILURE(build());
  const std::string before = residue(nat_b());
  {
    EnterNetns in(nat_b());
    ASSERT_TRUE(in.ok());
    auto steering = Steering::open();
    ASSERT_TRUE(steering) << steering.error().message;
    auto first = steering->install(spec());
    ASSERT_TRUE(first) << first.error().message;
    auto again = steering->install(spec());
    ASSERT_TRUE(again) << again.error().message;
    ASSERT_TRUE(steering->set_catch_unknown_tcp(kNatA));
    // The process "crashes": the steering object goes away without remove().
  }
  const std::string left = residue(nat_b());
  EXPECT_THAT(left, ::testing::HasSubstr("hanat-c6120202"));
  EXPECT_THAT(left, ::testing::HasSubstr("fwmark 0x48000001 lookup 4801 proto 245"));
  EXPECT_THAT(left, ::testing::HasSubstr(
                        "default via 198.18.2.2 dev hanat-c6120202 table 4801 proto 245 onlink"));
  EXPECT_THAT(left, ::testing::HasSubstr("table ip hanat_steer_c6120202"));
  EXPECT_THAT(left, ::testing::HasSubstr(
                        "198.18.2.2 dev hanat-c6120202 lladdr 02:68:c6:12:02:02 PERMANENT"));
  EXPECT_THAT(left, ::testing::HasSubstr("table ip hanat\n")) << "masquerade table";
  {
    EnterNetns in(nat_b());
    ASSERT_TRUE(in.ok());
    auto done = cleanup_stale_steering();
    ASSERT_TRUE(done) << done.error().message;
    EXPECT_EQ(done->tables, 1U);
    EXPECT_EQ(done->rules, 1U);
    EXPECT_EQ(done->links, 1U);
    auto again = cleanup_stale_steering();
    ASSERT_TRUE(again) << again.error().message;
    EXPECT_EQ(again->tables + again->rules + again->links, 0U);
  }
  EXPECT_EQ(residue(nat_b()), before) << "the masquerade table and the lab's routes stay";
}

TEST_F(SteerNetns, LeavingSideRefusesWhileAReversePathFilterWouldDropTheTunnel) {
  ASSERT_NO_FATAL_FAILURE(build());
  ASSERT_EQ(testing::sh(nat_a().exec("sh -c 'echo 2 > /proc/sys/net/ipv4/conf/all/rp_filter'")), 0);
  EnterNetns in(nat_a());
  ASSERT_TRUE(in.ok());
  auto a = accept_steered({kNatA, kNatB, 0});
  ASSERT_FALSE(a);
  EXPECT_EQ(a.error().message,
            "accepting steered flows from 198.18.3.2: net.ipv4.conf.all.rp_filter is 2, which "
            "drops every packet arriving on the tunnel (it has no IPv4 address); set it to 0 "
            "and filter per interface (conf.<if>.rp_filter)");
  EXPECT_THAT(capture(nat_a().exec("ip -o link show type vxlan")),
              ::testing::Not(::testing::HasSubstr("hanat-")));
}

TEST_F(SteerNetns, FullSetIsReportedNamingThePeerAndTheBound) {
  ASSERT_NO_FATAL_FAILURE(build());
  EnterNetns in(nat_b());
  ASSERT_TRUE(in.ok());
  auto steering = Steering::open();
  ASSERT_TRUE(steering) << steering.error().message;
  SteerSpec s = spec();
  s.max_flows = 2;
  auto inst = steering->install(s);
  ASSERT_TRUE(inst) << inst.error().message;
  std::vector<Flow> flows = {{IPPROTO_TCP, kPriv, kInet, 1000, 80, 0},
                             {IPPROTO_UDP, kPriv, kInet, 1001, 53, 0}};
  auto first = steering->add_flows(kNatA, flows);
  ASSERT_TRUE(first) << first.error().message;
  const std::vector<Flow> third = {{IPPROTO_TCP, kPriv, kInet, 1002, 80, 0}};
  auto full = steering->add_flows(kNatA, third);
  ASSERT_FALSE(full);
  EXPECT_EQ(full.error().message, "steering to peer 198.18.2.2: flow set full (max_flows 2)");
  auto none = steering->add_flows(ip(198, 18, 9, 9), third);
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().message, "steering to peer 198.18.9.9: not installed");
  ASSERT_TRUE(steering->remove(kNatA));
}

}  // namespace
}  // namespace hanat::netfilter
