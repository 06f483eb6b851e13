// SPDX-License-Identifier: GPL-2.0-or-later
#pragma once
// Two namespaces joined by a veth pair: "a" runs the probers (the test thread lives there for
// the whole test), "b" is the peer NAT (kernel answers ICMP; an AgentServer and a TCP
// listener run on the same loop, their sockets created inside "b").
//   a: hpa<pid> 198.18.0.1/24  <->  b: hpb<pid> 198.18.0.2/24

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "probes/agent_line.h"
#include "probes/agent_server.h"
#include "probes/monitor.h"
#include "tests/integration/probes/netns.h"
#include "tests/support/uv_test_util.h"

namespace hanat::probes {

using namespace std::chrono_literals;
using hanat::testing::InNetns;
using hanat::testing::Netns;
using hanat::testing::run_until;
using hanat::testing::sh;

inline sockaddr_in addr(const char* ip, std::uint16_t port = 0) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  inet_pton(AF_INET, ip, &a.sin_addr);
  return a;
}

inline constexpr const char* kA = "198.18.0.1";
inline constexpr const char* kB = "198.18.0.2";
inline constexpr const char* kPeerId = "i-0peer0000000000b";

struct Log {
  std::vector<ProbeResult> results;
  std::vector<PeerTransition> transitions;
  MonitorCallbacks callbacks() {
    return {[this](const ProbeResult& r) { results.push_back(r); },
            [this](const PeerTransition& t) { transitions.push_back(t); }};
  }
  [[nodiscard]] std::size_t downs() const {
    std::size_t n = 0;
    for (const auto& t : transitions) n += t.to == Health::Down ? 1 : 0;
    return n;
  }
};

class NetnsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (std::string why = hanat::testing::netns_unavailable(); !why.empty()) {
      GTEST_SKIP() << why;
    }
    hanat::testing::reap_stale_netns();
    std::string pid = std::to_string(getpid());
    a_ = std::make_unique<Netns>("hanat-pr-" + pid + "-a");
    b_ = std::make_unique<Netns>("hanat-pr-" + pid + "-b");
    ASSERT_TRUE(a_->ok() && b_->ok()) << "ip netns add failed";
    pa_ = "hpa" + pid;
    pb_ = "hpb" + pid;
    ASSERT_EQ(sh("ip -n " + a_->name() + " link add " + pa_ + " type veth peer name " + pb_ +
                 " netns " + b_->name()),
              0);
    ASSERT_EQ(sh("ip -n " + a_->name() + " addr add " + kA + "/24 dev " + pa_), 0);
    ASSERT_EQ(sh("ip -n " + b_->name() + " addr add " + kB + "/24 dev " + pb_), 0);
    ASSERT_EQ(sh("ip -n " + a_->name() + " link set " + pa_ + " up"), 0);
    ASSERT_EQ(sh("ip -n " + b_->name() + " link set " + pb_ + " up"), 0);
    // A veth reports carrier (LOWER_UP) only once both ends are up and the kernel's link
    // watch has run, a few ms later: tests that read the carrier must start after it.
    bool carrier = false;
    for (auto end = std::chrono::steady_clock::now() + std::chrono::seconds(2);
         !carrier && std::chrono::steady_clock::now() < end;) {
      carrier = sh("ip -n " + a_->name() + " link show " + pa_ + " | grep -q LOWER_UP") == 0;
      if (!carrier) std::this_thread::sleep_for(std::chrono::milliseconds(5));  // poll pace
    }
    ASSERT_TRUE(carrier) << pa_ << " has no carrier 2 s after both ends went up";
    in_a_ = std::make_unique<InNetns>(a_->name());
    ASSERT_TRUE(in_a_->ok()) << "setns into " << a_->name();
  }

  void TearDown() override {
    egress_.reset();
    monitor_.reset();
    agent_.reset();
    listener_.reset();
    extra_.clear();
    hanat::testing::expect_clean_close(loop_);
    in_a_.reset();
    c_.reset();
    b_.reset();
    a_.reset();
  }

  // Starts the peer's agent (answers from `health_`) and a TCP listener inside "b".
  void start_peer_services() {
    InNetns in_b(b_->name());
    ASSERT_TRUE(in_b.ok());
    agent_ = std::make_unique<AgentServer>(loop_, [this] { return reply_for(health_, kPeerId); });
    std::string err;
    ASSERT_FALSE(agent_->listen(addr(kB), &err)) << err;
    listener_ = std::make_unique<uv::Tcp>(loop_);
    auto la = addr(kB);
    ASSERT_FALSE(listener_->bind(reinterpret_cast<sockaddr*>(&la)));
    ASSERT_FALSE(listener_->listen(64, [this](std::error_code) {
      auto c = std::make_unique<uv::Tcp>(loop_);
      if (!listener_->accept(*c)) extra_.push_back(std::move(c));
    }));
    sockaddr_storage ss{};
    ASSERT_FALSE(listener_->sockname(ss));
    tcp_port_ = ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
  }

  PeerSpec peer(std::vector<ProbeKind> kinds) const {
    return PeerSpec{.id = kPeerId,
                    .address = kB,
                    .kinds = std::move(kinds),
                    .tcp_port = tcp_port_,
                    .agent_port = agent_ ? agent_->port() : std::uint16_t{0},
                    .public_address = {}};
  }

  void make_monitor(std::vector<ProbeKind> kinds, ProbeOptions o, IcmpMode m = IcmpMode::Auto) {
    auto r = PeerMonitor::create(loop_, {peer(std::move(kinds))}, o, log_.callbacks(), m);
    ASSERT_TRUE(r) << r.error();
    monitor_ = std::move(r).value();
    ASSERT_FALSE(monitor_->start());
  }

  Health state() const { return monitor_->peer(kPeerId)->state(); }

  bool wait_state(Health h, std::chrono::milliseconds deadline) {
    return run_until(
        loop_, [&] { return state() == h; }, deadline);
  }

  // net.ipv4.ping_group_range is per namespace; "0 2147483647" admits root's group 0.
  bool allow_ping_sockets(bool allow) {
    return a_->run(std::string("sysctl -q -w net.ipv4.ping_group_range=") +
                   (allow ? "'0 2147483647'" : "'1 0'"));
  }

  uv::Loop loop_;
  std::unique_ptr<Netns> a_, b_, c_;
  std::unique_ptr<InNetns> in_a_;
  std::string pa_, pb_;
  SelfHealth health_{.forwarding = true,
                     .masquerade = true,
                     .egress_ok = true,
                     .draining = false,
                     .egress_detail = {},
                     .forwarding_detail = {}};
  std::unique_ptr<AgentServer> agent_;
  std::unique_ptr<uv::Tcp> listener_;
  std::vector<std::unique_ptr<uv::Tcp>> extra_;
  std::uint16_t tcp_port_ = 0;
  Log log_;
  std::unique_ptr<PeerMonitor> monitor_;
  std::unique_ptr<EgressCheck> egress_;
};

}  // namespace hanat::probes
