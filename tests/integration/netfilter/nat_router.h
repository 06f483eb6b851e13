// SPDX-License-Identifier: GPL-2.0-or-later
#pragma once
// A NAT host between one private host and one internet host, each in a namespace of its
// own, for the conntrack tests:
//
//   priv (198.18.N.2, default via .1) -- lan0 [router 198.18.N.1 / 198.19.N.1] wan0 -- out
//   (198.19.N.2)
//
// The router forwards and runs hanat's masquerade table for 198.18.N.0/24 out of wan0 (the
// table also loads conntrack and NAT into the namespace); the test thread is moved into it.

#include <arpa/inet.h>
#include <libmnl/libmnl.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "netfilter/batch.h"
#include "netfilter/netlink.h"
#include "tests/integration/netfilter/netns_util.h"

namespace hanat::testing {

// 198.18.1.2:port as a socket address; ip(): the address alone, host byte order.
inline sockaddr_in sin(const char* ip, uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  inet_pton(AF_INET, ip, &a.sin_addr);
  return a;
}

inline uint32_t ip(const char* text) {
  return ntohl(sin(text, 0).sin_addr.s_addr);
}

// The local port `fd` is bound to, 0 when unknown.
inline uint16_t port_of(int fd) {
  sockaddr_in a{};
  socklen_t len = sizeof a;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) return 0;
  return ntohs(a.sin_port);
}

// "198.18.1.2:5000".
inline std::string text(const sockaddr_in& a) {
  char t[INET_ADDRSTRLEN] = {};
  inet_ntop(AF_INET, &a.sin_addr, t, sizeof t);
  return std::string(t) + ":" + std::to_string(ntohs(a.sin_port));
}

// Sends "x" from `fd` to `to` until a datagram arrives at `rx` (ARP on fresh veths may eat
// the first; bounded: 10 tries of 200 ms). Returns the sender address it arrived from, or "".
inline std::string send_seen(int fd, const sockaddr_in& to, int rx,
                             sockaddr_in* from_out = nullptr) {
  for (int attempt = 0; attempt < 10; ++attempt) {
    (void)::sendto(fd, "x", 1, 0, reinterpret_cast<const sockaddr*>(&to), sizeof to);
    pollfd p{rx, POLLIN, 0};
    if (::poll(&p, 1, 200) != 1) continue;
    sockaddr_in from{};
    socklen_t len = sizeof from;
    char buf[8];
    if (::recvfrom(rx, buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&from), &len) > 0) {
      if (from_out != nullptr) *from_out = from;
      return text(from);
    }
  }
  return {};
}

inline bool write_proc(const std::string& path, const std::string& value) {
  std::ofstream f(path);
  f << value;
  return static_cast<bool>(f.flush());
}

// IPCTNL_MSG_CT_DELETE without a tuple flushes the namespace's table (ctnetlink_del_conntrack
// -> ctnetlink_flush_conntrack); every entry with the event extension announces DESTROY.
inline bool flush_conntrack() {
  mnl_socket* s = mnl_socket_open(NETLINK_NETFILTER);
  if (s == nullptr) return false;
  std::vector<uint8_t> buf(MNL_SOCKET_BUFFER_SIZE);
  nlmsghdr* nlh = mnl_nlmsg_put_header(buf.data());
  nlh->nlmsg_type = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_DELETE;
  nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
  nlh->nlmsg_seq = 1;
  auto* nfg = static_cast<nfgenmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(nfgenmsg)));
  nfg->nfgen_family = AF_INET;
  nfg->version = NFNETLINK_V0;
  bool ok = mnl_socket_bind(s, 0, MNL_SOCKET_AUTOPID) == 0 &&
            mnl_socket_sendto(s, nlh, nlh->nlmsg_len) >= 0;
  if (ok) {
    const ssize_t n = mnl_socket_recvfrom(s, buf.data(), buf.size());
    ok = n > 0 && mnl_cb_run(buf.data(), static_cast<size_t>(n), 1, mnl_socket_get_portid(s),
                             nullptr, nullptr) >= 0;
  }
  mnl_socket_close(s);
  return ok;
}

struct NatRouter {
  std::unique_ptr<Netns> router, priv, out;
  std::unique_ptr<EnterNetns> enter;

  // Builds it with third octet `net`; gtest fatal failures on any step (check
  // HasFatalFailure() after it).
  void build(int net) {
    const std::string n = std::to_string(net);
    router = std::make_unique<Netns>("router");
    priv = std::make_unique<Netns>("priv");
    out = std::make_unique<Netns>("out");
    ASSERT_TRUE(router->ok() && priv->ok() && out->ok());
    ASSERT_EQ(router->ip("link add lan0 type veth peer name eth0 netns " + priv->name()), 0);
    ASSERT_EQ(router->ip("link add wan0 type veth peer name eth0 netns " + out->name()), 0);
    ASSERT_EQ(router->ip("addr add 198.18." + n + ".1/24 dev lan0"), 0);
    ASSERT_EQ(router->ip("addr add 198.19." + n + ".1/24 dev wan0"), 0);
    ASSERT_EQ(router->ip("link set lan0 up"), 0);
    ASSERT_EQ(router->ip("link set wan0 up"), 0);
    ASSERT_EQ(priv->ip("addr add 198.18." + n + ".2/24 dev eth0"), 0);
    ASSERT_EQ(priv->ip("link set eth0 up"), 0);
    ASSERT_EQ(priv->ip("route add default via 198.18." + n + ".1"), 0);
    ASSERT_EQ(out->ip("addr add 198.19." + n + ".2/24 dev eth0"), 0);
    ASSERT_EQ(out->ip("link set eth0 up"), 0);
    enter = std::make_unique<EnterNetns>(*router);
    ASSERT_TRUE(enter->ok());
    ASSERT_TRUE(write_proc("/proc/sys/net/ipv4/ip_forward", "1"));
    netfilter::NatSpec spec;
    spec.egress_interface = "wan0";
    spec.source_cidrs = {"198.18." + n + ".0/24"};
    auto nl = netfilter::Netlink::open();
    ASSERT_TRUE(nl);
    auto batch = netfilter::build_batch(spec, nl->next_seq());
    ASSERT_TRUE(batch);
    ASSERT_TRUE(nl->commit(*batch));
  }
  // Back to the test's own namespace first, then every namespace deleted.
  void tear_down() {
    enter.reset();
    out.reset();
    priv.reset();
    router.reset();
  }
};

}  // namespace hanat::testing
