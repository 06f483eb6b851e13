// SPDX-License-Identifier: GPL-2.0-or-later
// Takeover with state against a real kernel (netfilter/ct_install.h): flows another NAT
// translated are installed into a router's conntrack table and their packets continue with
// the same public port on the router's address; a port the router uses itself is refused.
//
//   client (198.18.5.2) -- lan0 [router B] wan0 (198.19.5.1) -- (198.19.5.2) server
//
// B masquerades 198.18.5.0/24 out of wan0 (hanat's own table), so nf_nat is active there
// as on a NAT instance.
#include <arpa/inet.h>
#include <linux/netfilter/nf_conntrack_common.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <fstream>
#include <string>

#include <gtest/gtest.h>

#include "netfilter/batch.h"
#include "netfilter/conntrack.h"
#include "netfilter/ct_install.h"
#include "netfilter/netlink.h"
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
using testing::text;
using testing::write_proc;

// A socket of `type` bound to `addr`:0 inside `ns` (it stays there); -1 on failure.
int socket_in(const Netns& ns, int type, int proto, const char* addr) {
  EnterNetns in(ns);
  if (!in.ok()) return -1;
  const int fd = ::socket(AF_INET, type | SOCK_CLOEXEC, proto);
  if (fd < 0) return -1;
  if (type == SOCK_RAW) return fd;
  const sockaddr_in a = sin(addr, 0);
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// The replicated entries B's table holds for `src` (IPv4 flows source-NATed by B).
std::vector<Flow> flows_from(uint32_t src) {
  auto filter = flow_filter({});
  auto dump = dump_flows(*filter, 1000);
  std::vector<Flow> out;
  if (!dump) return out;
  for (const auto& f : dump->flows) {
    if (f.src == src) out.push_back(f);
  }
  return out;
}

// What B's table reports for `src`, as replication reads it (dump_replicated_flows()).
std::vector<ReplicatedFlow> replicated_from(uint32_t src) {
  auto filter = flow_filter({});
  auto dump = dump_replicated_flows(*filter, 1000);
  std::vector<ReplicatedFlow> out;
  if (!dump) return out;
  for (const auto& f : dump->flows) {
    if (f.flow.src == src) out.push_back(f);
  }
  return out;
}

class CtInstallNetns : public ::testing::Test {
 protected:
  void SetUp() override {
    if (auto why = testing::netns_skip_reason(); !why.empty()) GTEST_SKIP() << why;
    testing::remove_stale_netns();
    topo_.build(5);
  }
  void TearDown() override { topo_.tear_down(); }

  static ReplicatedFlow replica(uint8_t proto, const char* src, uint16_t sport, uint16_t dport,
                                uint16_t public_port) {
    ReplicatedFlow r;
    r.flow.proto = proto;
    r.flow.src = ip(src);
    r.flow.dst = ip("198.19.5.2");
    r.flow.sport = sport;
    r.flow.dport = dport;
    r.flow.timeout_s = 60;
    r.public_port = public_port;
    r.status = IPS_CONFIRMED | IPS_SEEN_REPLY | IPS_ASSURED | IPS_SRC_NAT | IPS_SRC_NAT_DONE;
    return r;
  }

  testing::NatRouter topo_;
};

TEST_F(CtInstallNetns, InstalledUdpFlowContinuesWithTheSamePublicPortOnThisAddress) {
  const int server = socket_in(*topo_.out, SOCK_DGRAM, 0, "198.19.5.2");
  const int client = socket_in(*topo_.priv, SOCK_DGRAM, 0, "198.18.5.2");
  ASSERT_GE(server, 0);
  ASSERT_GE(client, 0);
  const uint16_t cport = port_of(client), sport = port_of(server);
  // A port masquerade would not choose: it keeps the client's port when that is free.
  const uint16_t public_port = cport == 40000 ? 40001 : 40000;
  const ReplicatedFlow f = replica(IPPROTO_UDP, "198.18.5.2", cport, sport, public_port);

  auto report = install_flows({f}, ip("198.19.5.1"));
  ASSERT_TRUE(report) << report.error().message;
  ASSERT_EQ(report->flows.size(), 1U);
  EXPECT_EQ(report->flows[0].outcome, InstallOutcome::Installed) << report->flows[0].error;
  EXPECT_EQ(report->installed, 1U);

  // The server sees B's address with the public port the other NAT had chosen...
  sockaddr_in seen{};
  ASSERT_EQ(send_seen(client, sin("198.19.5.2", sport), server, &seen),
            "198.19.5.1:" + std::to_string(public_port));
  // ...and its answer to that address reaches the client, from the server.
  EXPECT_EQ(send_seen(server, seen, client), "198.19.5.2:" + std::to_string(sport));
  // The packets used the installed entry: no second one appeared for the client.
  const auto entries = flows_from(ip("198.18.5.2"));
  ASSERT_EQ(entries.size(), 1U);
  EXPECT_EQ(entries[0], f.flow);
  // Read back as replication reads a table, the entry is the replicated flow again: the
  // kernel's binding put the public port into the reply tuple, and the status bits are
  // those of a translated, answered flow.
  const auto back = replicated_from(ip("198.18.5.2"));
  ASSERT_EQ(back.size(), 1U);
  EXPECT_EQ(back[0].public_port, public_port);
  EXPECT_EQ(back[0].status & (IPS_SRC_NAT | IPS_SEEN_REPLY | IPS_ASSURED | IPS_CONFIRMED),
            IPS_SRC_NAT | IPS_SEEN_REPLY | IPS_ASSURED | IPS_CONFIRMED);
  EXPECT_GT(back[0].flow.timeout_s, 0U);

  // The same original tuple again, on another port: the kernel's EEXIST (NLM_F_EXCL).
  ReplicatedFlow again = f;
  again.public_port = static_cast<uint16_t>(public_port + 100);
  auto second = install_flows({again}, ip("198.19.5.1"));
  ASSERT_TRUE(second) << second.error().message;
  EXPECT_EQ(second->flows[0], (FlowInstall{InstallOutcome::Collided, EEXIST}));
  EXPECT_EQ(second->collided, 1U);

  auto removed = remove_flows({f});
  ASSERT_TRUE(removed) << removed.error().message;
  EXPECT_EQ(*removed, 1U);
  EXPECT_TRUE(flows_from(ip("198.18.5.2")).empty());
  ::close(server);
  ::close(client);
}

// The Internet checksum over `len` bytes, starting from `sum`.
uint32_t csum_add(uint32_t sum, const void* data, size_t len) {
  const auto* p = static_cast<const uint8_t*>(data);
  for (size_t i = 0; i + 1 < len; i += 2) sum += static_cast<uint32_t>(p[i] << 8 | p[i + 1]);
  if (len % 2 != 0) sum += static_cast<uint32_t>(p[len - 1] << 8);
  return sum;
}

uint16_t csum_fold(uint32_t sum) {
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(~sum);
}

// A TCP segment in the middle of a connection (ACK|PSH with data, no SYN) from
// `src`:`sport` to `dst`:`dport`; the kernel adds the IP header of a raw IPPROTO_TCP socket.
std::vector<uint8_t> mid_stream_segment(uint32_t src, uint32_t dst, uint16_t sport, uint16_t dport,
                                        bool with_data = true) {
  std::vector<uint8_t> seg(sizeof(tcphdr) + (with_data ? 4 : 0), 0);
  auto* th = reinterpret_cast<tcphdr*>(seg.data());
  th->source = htons(sport);
  th->dest = htons(dport);
  th->seq = htonl(1000000);
  th->ack_seq = htonl(2000000);
  th->doff = sizeof(tcphdr) / 4;
  th->ack = 1;
  th->psh = 1;
  th->window = htons(502);
  if (with_data) std::memcpy(seg.data() + sizeof(tcphdr), "data", 4);
  struct {
    uint32_t src, dst;
    uint8_t zero, proto;
    uint16_t len;
  } pseudo{htonl(src), htonl(dst), 0, IPPROTO_TCP, htons(static_cast<uint16_t>(seg.size()))};
  uint32_t sum = csum_add(0, &pseudo, 12);
  sum = csum_add(sum, seg.data(), seg.size());
  th->check = htons(csum_fold(sum));
  return seg;
}

// Sends `seg` from raw socket `tx` to `dst` until raw socket `rx` sees it arrive at
// `dport` (3 s at most); returns the source it arrived from ("addr:port"), or "".
std::string forward_segment(int tx, int rx, const std::vector<uint8_t>& seg, const char* dst,
                            uint16_t dport) {
  const sockaddr_in to = sin(dst, 0);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(3);
  while (std::chrono::steady_clock::now() < deadline) {
    if (::sendto(tx, seg.data(), seg.size(), 0, reinterpret_cast<const sockaddr*>(&to),
                 sizeof to) != static_cast<ssize_t>(seg.size())) {
      return "";
    }
    pollfd p{rx, POLLIN, 0};
    while (::poll(&p, 1, 200) == 1) {
      uint8_t buf[256];
      const ssize_t n = ::recv(rx, buf, sizeof buf, 0);
      if (n < static_cast<ssize_t>(sizeof(iphdr) + sizeof(tcphdr))) continue;
      const auto* iph = reinterpret_cast<const iphdr*>(buf);
      const auto* th = reinterpret_cast<const tcphdr*>(buf + iph->ihl * 4);
      if (ntohs(th->dest) != dport || th->syn) continue;
      sockaddr_in from{};
      from.sin_addr.s_addr = iph->saddr;
      from.sin_port = th->source;
      return text(from);
    }
  }
  return "";
}

TEST_F(CtInstallNetns, InstalledEstablishedTcpFlowPassesAMidStreamSegmentWithThePublicPort) {
  // INVALID packets are dropped and counted on B, as a strict firewall does.
  ASSERT_EQ(testing::sh(
                "nft add table ip ctinstall_test && nft add chain ip ctinstall_test forward_check "
                "'{ type filter hook forward priority 0; }' && nft add rule ip "
                "ctinstall_test forward_check ct state invalid counter drop"),
            0);
  // The client's port is held by a socket, so nothing else in its namespace takes it.
  const int holder = socket_in(*topo_.priv, SOCK_STREAM, 0, "198.18.5.2");
  const int tx = socket_in(*topo_.priv, SOCK_RAW, IPPROTO_TCP, nullptr);
  const int rx = socket_in(*topo_.out, SOCK_RAW, IPPROTO_TCP, nullptr);
  ASSERT_GE(holder, 0);
  ASSERT_GE(tx, 0);
  ASSERT_GE(rx, 0);
  const uint16_t cport = port_of(holder);
  constexpr uint16_t kServerPort = 443;  // nothing listens: only the segment's header matters
  const uint16_t public_port = cport == 41000 ? 41001 : 41000;
  ReplicatedFlow f = replica(IPPROTO_TCP, "198.18.5.2", cport, kServerPort, public_port);
  f.flow.timeout_s = 432000;
  TcpInfo t;
  t.state = 3;  // TCP_CONNTRACK_ESTABLISHED
  t.wscale_orig = 7;
  t.wscale_reply = 7;
  t.flags_orig = t.flags_reply = 0x01 | 0x02;  // WINDOW_SCALE | SACK_PERM
  f.tcp = t;
  auto report = install_flows({f}, ip("198.19.5.1"));
  ASSERT_TRUE(report) << report.error().message;
  ASSERT_EQ(report->flows[0].outcome, InstallOutcome::Installed) << report->flows[0].error;
  // The kernel took the TCP protoinfo: ESTABLISHED, both window scales (kept only when both
  // directions carry IP_CT_TCP_FLAG_WINDOW_SCALE) and liberal window tracking.
  const auto installed = replicated_from(ip("198.18.5.2"));
  ASSERT_EQ(installed.size(), 1U);
  EXPECT_EQ(installed[0].public_port, public_port);
  ASSERT_TRUE(installed[0].tcp.has_value());
  EXPECT_EQ(installed[0].tcp->state, 3);  // TCP_CONNTRACK_ESTABLISHED
  EXPECT_EQ(installed[0].tcp->wscale_orig, 7);
  EXPECT_EQ(installed[0].tcp->wscale_reply, 7);
  EXPECT_EQ(installed[0].tcp->flags_orig & (0x01 | 0x02 | 0x08), 0x01 | 0x02 | 0x08);
  EXPECT_EQ(installed[0].tcp->flags_reply & (0x01 | 0x02 | 0x08), 0x01 | 0x02 | 0x08);

  const auto seg = mid_stream_segment(ip("198.18.5.2"), ip("198.19.5.2"), cport, kServerPort);
  EXPECT_EQ(forward_segment(tx, rx, seg, "198.19.5.2", kServerPort),
            "198.19.5.1:" + std::to_string(public_port));
  // Not INVALID on B: the drop rule never matched.
  const std::string counter =
      testing::capture("nft list chain ip ctinstall_test forward_check 2>&1");
  EXPECT_NE(counter.find("counter packets 0 bytes 0"), std::string::npos) << counter;
  // And still the one installed entry: the segment created no other. Nothing listens on
  // the server, so its stack answers with a RST to B's address and public port; B matches
  // it to the entry's reply direction and the entry closes (TCP_CONNTRACK_CLOSE).
  std::vector<ReplicatedFlow> entries;
  for (int i = 0; i < 20; ++i) {  // the RST is on its way: poll, 2 s at most
    entries = replicated_from(ip("198.18.5.2"));
    if (entries.size() != 1 || !entries[0].tcp || entries[0].tcp->state == 8) break;
    pollfd none{-1, 0, 0};
    (void)::poll(&none, 0, 100);
  }
  ASSERT_EQ(entries.size(), 1U);
  EXPECT_EQ(entries[0].flow, f.flow);
  ASSERT_TRUE(entries[0].tcp.has_value());
  EXPECT_EQ(entries[0].tcp->state, 8);  // TCP_CONNTRACK_CLOSE
  (void)testing::sh("nft delete table ip ctinstall_test");
  for (int fd : {holder, tx, rx}) ::close(fd);
}

// An ESTABLISHED flow replicated with the kernel's 5-day timeout is installed with at most
// kInstallTimeoutMaxS (350 s): if its connection died with its NAT, the entry and its public
// port are free again within minutes. A live connection's next packet refreshes the entry to
// the ESTABLISHED timeout (nf_ct_refresh_acct in nf_conntrack_tcp_packet()), so the bound
// costs it nothing.
TEST_F(CtInstallNetns,
       InstalledTcpFlowsTimeoutIsBoundedItsNextPacketRefreshesItBoundTimeoutsAgain) {
  uint32_t established = 0;
  std::ifstream("/proc/sys/net/netfilter/nf_conntrack_tcp_timeout_established") >> established;
  ASSERT_GT(established, kInstallTimeoutMaxS + 60) << "the router's ESTABLISHED timeout";
  // The server's stack would answer the segment with a RST (nothing listens), which closes
  // the entry (10 s): dropped on its way out, so the entry stays ESTABLISHED.
  ASSERT_EQ(testing::sh("ip netns exec " + topo_.out->name() +
                        " nft add table ip ctinstall_test \\; add chain ip ctinstall_test out "
                        "'{ type filter hook output priority 0; }' \\; add rule ip "
                        "ctinstall_test out tcp flags rst drop"),
            0);
  const int holder = socket_in(*topo_.priv, SOCK_STREAM, 0, "198.18.5.2");
  const int tx = socket_in(*topo_.priv, SOCK_RAW, IPPROTO_TCP, nullptr);
  const int rx = socket_in(*topo_.out, SOCK_RAW, IPPROTO_TCP, nullptr);
  ASSERT_GE(holder, 0);
  ASSERT_GE(tx, 0);
  ASSERT_GE(rx, 0);
  const uint16_t cport = port_of(holder);
  constexpr uint16_t kServerPort = 443;
  const uint16_t public_port = cport == 41000 ? 41001 : 41000;
  ReplicatedFlow f = replica(IPPROTO_TCP, "198.18.5.2", cport, kServerPort, public_port);
  f.flow.timeout_s = 431990;  // as replication reads a busy ESTABLISHED flow
  TcpInfo t;
  t.state = 3;  // TCP_CONNTRACK_ESTABLISHED
  f.tcp = t;
  auto report = install_flows({f}, ip("198.19.5.1"));
  ASSERT_TRUE(report) << report.error().message;
  ASSERT_EQ(report->flows[0].outcome, InstallOutcome::Installed) << report->flows[0].error;
  auto installed = replicated_from(ip("198.18.5.2"));
  ASSERT_EQ(installed.size(), 1U);
  EXPECT_GT(installed[0].flow.timeout_s, 0U);
  EXPECT_LE(installed[0].flow.timeout_s, kInstallTimeoutMaxS);

  // A pure ACK: with data unacknowledged the kernel would refresh to 300 s
  // (nf_conntrack_tcp_timeout_unacknowledged), not to the ESTABLISHED timeout.
  const auto seg =
      mid_stream_segment(ip("198.18.5.2"), ip("198.19.5.2"), cport, kServerPort, false);
  ASSERT_EQ(forward_segment(tx, rx, seg, "198.19.5.2", kServerPort),
            "198.19.5.1:" + std::to_string(public_port));
  installed = replicated_from(ip("198.18.5.2"));
  ASSERT_EQ(installed.size(), 1U);
  ASSERT_TRUE(installed[0].tcp.has_value());
  EXPECT_EQ(installed[0].tcp->state, 3);
  // Refreshed to the ESTABLISHED timeout, counted from the packet (a few seconds of slack
  // for the dump's rounding and a slow machine).
  EXPECT_GT(installed[0].flow.timeout_s, kInstallTimeoutMaxS);
  EXPECT_GE(installed[0].flow.timeout_s + 10, established);

  // The router takes its table back (Node::bound_stale_entries): the entry, whose
  // connection may have ended on a peer, gets the bound again; a second pass finds nothing.
  auto bounded = bound_timeouts(kInstallTimeoutMaxS);
  ASSERT_TRUE(bounded) << bounded.error().message;
  EXPECT_EQ(*bounded, 1U);
  installed = replicated_from(ip("198.18.5.2"));
  ASSERT_EQ(installed.size(), 1U);
  EXPECT_LE(installed[0].flow.timeout_s, kInstallTimeoutMaxS);
  ASSERT_TRUE(installed[0].tcp.has_value());
  EXPECT_EQ(installed[0].tcp->state, 3);
  bounded = bound_timeouts(kInstallTimeoutMaxS);
  ASSERT_TRUE(bounded) << bounded.error().message;
  EXPECT_EQ(*bounded, 0U);
  (void)testing::sh("ip netns exec " + topo_.out->name() + " nft delete table ip ctinstall_test");
  for (int fd : {holder, tx, rx}) ::close(fd);
}

// Many flows go out 64 requests per datagram; each result lands on its own flow.
TEST_F(CtInstallNetns, ManyFlowsAreInstalledInBatchesWithOneResultEach) {
  std::vector<ReplicatedFlow> flows;
  for (uint16_t i = 0; i < 300; ++i) {
    flows.push_back(replica(IPPROTO_UDP, "198.18.6.1", static_cast<uint16_t>(10000 + i), 53,
                            static_cast<uint16_t>(30000 + i)));
  }
  flows[150] = flows[10];       // the same original tuple again, in another datagram: EEXIST
  flows[151].flow.proto = 132;  // SCTP: refused before any request
  auto report = install_flows(flows, ip("198.19.5.1"));
  ASSERT_TRUE(report) << report.error().message;
  ASSERT_EQ(report->flows.size(), 300U);
  EXPECT_EQ(report->installed, 298U);
  EXPECT_EQ(report->collided, 1U);
  EXPECT_EQ(report->failed, 1U);
  EXPECT_EQ(report->flows[10].outcome, InstallOutcome::Installed);
  EXPECT_EQ(report->flows[150], (FlowInstall{InstallOutcome::Collided, EEXIST}));
  EXPECT_EQ(report->flows[151], (FlowInstall{InstallOutcome::Failed, EINVAL}));
  EXPECT_EQ(report->flows[299].outcome, InstallOutcome::Installed);
  EXPECT_EQ(replicated_from(ip("198.18.6.1")).size(), 298U);
  auto removed = remove_flows(flows);
  ASSERT_TRUE(removed) << removed.error().message;
  EXPECT_EQ(*removed, 298U);  // the duplicate's tuple is gone by then, SCTP never was
  EXPECT_TRUE(replicated_from(ip("198.18.6.1")).empty());
}

// A zone's Elastic IP left the secondary address a takeover installed its flows on: those
// entries go (purge_answering), the ones translated to the router's own address stay.
TEST_F(CtInstallNetns, PurgeAnsweringDeletesTheEntriesTranslatedToThatAddressOnly) {
  std::vector<ReplicatedFlow> own;
  std::vector<ReplicatedFlow> taken;
  for (uint16_t i = 0; i < 100; ++i) {
    own.push_back(replica(IPPROTO_UDP, "198.18.6.1", static_cast<uint16_t>(10000 + i), 53,
                          static_cast<uint16_t>(30000 + i)));
    taken.push_back(replica(IPPROTO_UDP, "198.18.6.2", static_cast<uint16_t>(10000 + i), 53,
                            static_cast<uint16_t>(30000 + i)));
  }
  auto a = install_flows(own, ip("198.19.5.1"));
  auto b = install_flows(taken, ip("198.19.5.9"));
  ASSERT_TRUE(a && b);
  ASSERT_EQ(a->installed, 100U);
  ASSERT_EQ(b->installed, 100U);

  auto purged = purge_answering(ip("198.19.5.9"));
  ASSERT_TRUE(purged) << purged.error().message;
  EXPECT_EQ(purged->purged, 100U);
  EXPECT_GE(purged->seen, 200U);
  EXPECT_TRUE(replicated_from(ip("198.18.6.2")).empty());
  EXPECT_EQ(replicated_from(ip("198.18.6.1")).size(), 100U);
  // Nothing left to delete: the second run finds none.
  purged = purge_answering(ip("198.19.5.9"));
  ASSERT_TRUE(purged) << purged.error().message;
  EXPECT_EQ(purged->purged, 0U);
  auto removed = remove_flows(own);
  ASSERT_TRUE(removed) << removed.error().message;
}

// Why the window-scale flags travel with the scales: without IP_CT_TCP_FLAG_WINDOW_SCALE
// in both directions the kernel drops the scales (nlattr_to_tcp), and the entry would size
// a scaled window 2^scale times too small.
TEST_F(CtInstallNetns, WindowScalesWithoutTheirFlagsAreDroppedByTheKernel) {
  ReplicatedFlow f = replica(IPPROTO_TCP, "198.18.5.7", 5000, 443, 42000);
  f.tcp = TcpInfo{3, 7, 7, 0, 0};
  auto report = install_flows({f}, ip("198.19.5.1"));
  ASSERT_TRUE(report) << report.error().message;
  ASSERT_EQ(report->flows[0].outcome, InstallOutcome::Installed) << report->flows[0].error;
  auto entries = replicated_from(ip("198.18.5.7"));
  ASSERT_EQ(entries.size(), 1U);
  ASSERT_TRUE(entries[0].tcp.has_value());
  EXPECT_EQ(entries[0].tcp->wscale_orig, 0);
  EXPECT_EQ(entries[0].tcp->wscale_reply, 0);
  // With the flags (what a dump of the translating NAT carries) they are kept.
  auto removed = remove_flows({f});
  ASSERT_TRUE(removed) << removed.error().message;
  ASSERT_EQ(*removed, 1U);
  f.tcp = TcpInfo{3, 7, 7, 0x01, 0x01};
  report = install_flows({f}, ip("198.19.5.1"));
  ASSERT_TRUE(report) << report.error().message;
  ASSERT_EQ(report->flows[0].outcome, InstallOutcome::Installed) << report->flows[0].error;
  entries = replicated_from(ip("198.18.5.7"));
  ASSERT_EQ(entries.size(), 1U);
  ASSERT_TRUE(entries[0].tcp.has_value());
  EXPECT_EQ(entries[0].tcp->wscale_orig, 7);
  EXPECT_EQ(entries[0].tcp->wscale_reply, 7);
}

TEST_F(CtInstallNetns, ReplyTupleOfOneOfThisHostsOwnFlowsIsCollidedItsPortElsewhereIsNot) {
  const int server = socket_in(*topo_.out, SOCK_DGRAM, 0, "198.19.5.2");
  const int client = socket_in(*topo_.priv, SOCK_DGRAM, 0, "198.18.5.2");
  ASSERT_GE(server, 0);
  ASSERT_GE(client, 0);
  // B's own flow: masquerade keeps the client's free port as the public port.
  sockaddr_in seen{};
  ASSERT_EQ(send_seen(client, sin("198.19.5.2", port_of(server)), server, &seen),
            "198.19.5.1:" + std::to_string(port_of(client)));
  const uint16_t taken = ntohs(seen.sin_port);
  // A replicated flow of another private host to the same server port whose public port is
  // that one: the same reply tuple.
  const ReplicatedFlow f = replica(IPPROTO_UDP, "198.18.5.9", 5000, port_of(server), taken);
  auto report = install_flows({f}, ip("198.19.5.1"));
  ASSERT_TRUE(report) << report.error().message;
  EXPECT_EQ(report->flows[0].outcome, InstallOutcome::Collided);
  EXPECT_EQ(report->collided, 1U);
  EXPECT_EQ(report->installed, 0U);
  EXPECT_TRUE(flows_from(ip("198.18.5.9")).empty());
  // The same public port towards another port of the server is free: the kernel tells the
  // two flows' replies apart by the whole tuple (nf_nat_used_tuple).
  const ReplicatedFlow elsewhere = replica(IPPROTO_UDP, "198.18.5.9", 5000, 6000, taken);
  auto ok = install_flows({elsewhere}, ip("198.19.5.1"));
  ASSERT_TRUE(ok) << ok.error().message;
  EXPECT_EQ(ok->flows[0].outcome, InstallOutcome::Installed) << ok->flows[0].error;
  EXPECT_EQ(flows_from(ip("198.18.5.9")).size(), 1U);
  // The same port for TCP is free: protocols do not share ports.
  ReplicatedFlow tcp = replica(IPPROTO_TCP, "198.18.5.9", 5001, 6000, taken);
  tcp.tcp = TcpInfo{3, 0, 0, 0, 0};
  auto other = install_flows({tcp}, ip("198.19.5.1"));
  ASSERT_TRUE(other) << other.error().message;
  EXPECT_EQ(other->flows[0].outcome, InstallOutcome::Installed) << other->flows[0].error;
  ::close(server);
  ::close(client);
}

}  // namespace
}  // namespace hanat::netfilter
