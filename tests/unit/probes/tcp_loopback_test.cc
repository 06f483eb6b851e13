// SPDX-License-Identifier: GPL-2.0-or-later
// TcpProber and AgentServer over 127.0.0.1 (port 0 everywhere).
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>

#include <memory>
#include <optional>
#include <thread>
#include <vector>

#include "probes/agent_line.h"
#include "probes/agent_server.h"
#include "probes/tcp.h"
#include "tests/support/uv_test_util.h"

namespace hanat::probes {
namespace {

using namespace std::chrono_literals;
using hanat::testing::expect_clean_close;
using hanat::testing::run_until;

sockaddr_in loopback(std::uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return a;
}

std::uint16_t port_of(uv::Tcp& t) {
  sockaddr_storage ss{};
  EXPECT_FALSE(t.sockname(ss));
  return ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
}

// A server that answers each connection with `reply` (then closes, unless `hold`).
struct RawServer {
  RawServer(uv::Loop& loop, std::string reply, bool hold = false)
      : loop_(loop), reply_(std::move(reply)), hold_(hold), listener(loop) {
    auto a = loopback(0);
    EXPECT_FALSE(listener.bind(reinterpret_cast<sockaddr*>(&a)));
    EXPECT_FALSE(listener.listen(8, [this](std::error_code) {
      auto c = std::make_unique<uv::Tcp>(loop_);
      if (listener.accept(*c)) return;
      uv::Tcp* raw = c.get();
      conns.push_back(std::move(c));
      if (!reply_.empty()) {
        (void)raw->write(reply_, [this, raw](std::error_code) {
          if (!hold_) std::erase_if(conns, [raw](auto& p) { return p.get() == raw; });
        });
      } else if (!hold_) {
        conns.pop_back();
      }
    }));
    port = port_of(listener);
  }
  uv::Loop& loop_;
  std::string reply_;
  bool hold_;
  uv::Tcp listener;
  std::uint16_t port = 0;
  std::vector<std::unique_ptr<uv::Tcp>> conns;
};

class TcpLoopback : public ::testing::Test {
 protected:
  void TearDown() override { expect_clean_close(loop); }

  Outcome agent(std::uint16_t port, std::string expect = "i-peer",
                std::chrono::milliseconds t = 500ms) {
    std::optional<Outcome> got;
    TcpProber p(loop, {});
    p.agent(loopback(port), t, std::move(expect), [&](Outcome o) { got = std::move(o); });
    EXPECT_TRUE(run_until(
        loop, [&] { return got.has_value(); }, 3s));
    EXPECT_EQ(p.in_flight(), 0u);
    return got.value_or(failed(Failure::Error, "test: no outcome"));
  }
  Outcome connect(std::uint16_t port) {
    std::optional<Outcome> got;
    TcpProber p(loop, {});
    p.connect(loopback(port), 500ms, [&](Outcome o) { got = std::move(o); });
    EXPECT_TRUE(run_until(
        loop, [&] { return got.has_value(); }, 3s));
    return got.value_or(failed(Failure::Error, "test: no outcome"));
  }
  uv::Loop loop;
};

std::uint16_t closed_port(uv::Loop& loop) {
  uv::Tcp t(loop);
  auto a = loopback(0);
  EXPECT_FALSE(t.bind(reinterpret_cast<sockaddr*>(&a)));
  return port_of(t);  // bound but never listening: connects get RST
}

TEST_F(TcpLoopback, AgentUpIsOkWithFacts) {
  SelfHealth h{.forwarding = true,
               .masquerade = true,
               .egress_ok = true,
               .draining = false,
               .egress_detail = {},
               .forwarding_detail = {}};
  AgentServer server(loop, [&h] { return reply_for(h, "i-peer"); });
  std::string err;
  ASSERT_FALSE(server.listen(loopback(0), &err)) << err;
  Outcome o = agent(server.port());
  EXPECT_TRUE(o.ok) << o.detail;
  ASSERT_TRUE(o.agent);
  EXPECT_TRUE(o.agent->facts.masquerade);
  EXPECT_GT(o.rtt.count(), 0);

  // The provider is read on every connection: the next probe sees the failure.
  h.masquerade = false;
  o = agent(server.port());
  EXPECT_FALSE(o.ok);
  EXPECT_EQ(o.failure, Failure::AgentDown);
  EXPECT_EQ(o.detail, "masquerade rule missing");

  h.masquerade = true;
  h.draining = true;
  o = agent(server.port());
  EXPECT_EQ(o.failure, Failure::AgentDown);
  EXPECT_EQ(o.detail, "draining");
  EXPECT_EQ(server.served(), 3u);
  EXPECT_TRUE(run_until(
      loop, [&] { return server.open_connections() == 0; }, 2s));
}

// A provider with nothing to report yet (hanatd before its first data-plane check) closes
// the connection unanswered: the peer sees a failed probe, never a "down" report.
TEST_F(TcpLoopback, AgentNotReadyIsAFailedProbeNotADownReport) {
  bool ready = false;
  SelfHealth h{.forwarding = true,
               .masquerade = true,
               .egress_ok = true,
               .draining = false,
               .egress_detail = {},
               .forwarding_detail = {}};
  AgentServer server(loop, [&]() -> std::optional<AgentReply> {
    if (!ready) return std::nullopt;
    return reply_for(h, "i-peer");
  });
  std::string err;
  ASSERT_FALSE(server.listen(loopback(0), &err)) << err;
  Outcome o = agent(server.port());
  EXPECT_FALSE(o.ok);
  EXPECT_NE(o.failure, Failure::AgentDown) << o.detail;
  EXPECT_FALSE(o.agent);
  EXPECT_EQ(server.served(), 0u);
  ready = true;
  o = agent(server.port());
  EXPECT_TRUE(o.ok) << o.detail;
  EXPECT_EQ(server.served(), 1u);
}

// A connection flood is accepted at the status socket's pace (core/uv/accept_budget.h):
// at most per_second a second, the rest waiting in the kernel's backlog, each answered in
// the end.
TEST_F(TcpLoopback, AgentServerAcceptsAtMostItsBudgetPerSecond) {
  AgentServer server(loop,
                     [] {
                       return reply_for({.forwarding = true,
                                         .masquerade = true,
                                         .egress_ok = true,
                                         .draining = false,
                                         .egress_detail = {},
                                         .forwarding_detail = {}},
                                        "i-self");
                     },
                     {.per_turn = 4, .per_second = 10});
  ASSERT_FALSE(server.listen(loopback(0)));
  // The kernel completes these handshakes into the listen backlog (128) without accept().
  std::vector<int> fds;
  for (int i = 0; i < 25; ++i) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(fd, 0);
    sockaddr_in a = loopback(server.port());
    ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    fds.push_back(fd);
  }
  const auto t0 = std::chrono::steady_clock::now();
  ASSERT_TRUE(run_until(
      loop, [&] { return server.served() >= 10; }, 2s));
  ASSERT_TRUE(run_until(
      loop, [&] { return server.served() > 10; }, 3s));
  // The 11th waited for the next second.
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 900ms);
  EXPECT_GT(server.deferred_accepts(), 0u);
  EXPECT_TRUE(run_until(
      loop, [&] { return server.served() == 25; }, 5s));
  for (int fd : fds) ::close(fd);
  EXPECT_TRUE(run_until(
      loop, [&] { return server.open_connections() == 0; }, 2s));
}

TEST_F(TcpLoopback, AgentOfAnotherInstanceIsAnError) {
  AgentServer server(loop, [] {
    return reply_for({.forwarding = true,
                      .masquerade = true,
                      .egress_ok = true,
                      .draining = false,
                      .egress_detail = {},
                      .forwarding_detail = {}},
                     "i-other");
  });
  ASSERT_FALSE(server.listen(loopback(0)));
  Outcome o = agent(server.port(), "i-peer");
  EXPECT_EQ(o.failure, Failure::Error);
  EXPECT_EQ(o.detail, "agent at 127.0.0.1 is 'i-other', expected 'i-peer'");
  EXPECT_TRUE(agent(server.port(), "").ok) << "no expectation: any instance";
}

TEST_F(TcpLoopback, MalformedAgentLineIsAnErrorNamingTheProblem) {
  RawServer s(loop, "HTTP/1.1 400 Bad Request\r\n\r\n");
  Outcome o = agent(s.port);
  EXPECT_EQ(o.failure, Failure::Error);
  EXPECT_EQ(o.detail, "agent line: expected 'up' or 'down' first, got 'HTTP/1.1'");
}

TEST_F(TcpLoopback, LineSplitAcrossEofIsParsed) {
  RawServer s(loop, "down i-peer maintenance window");  // no newline, then FIN
  Outcome o = agent(s.port);
  EXPECT_EQ(o.failure, Failure::AgentDown);
  EXPECT_EQ(o.detail, "maintenance window");
}

TEST_F(TcpLoopback, CloseWithoutLineIsAnError) {
  RawServer s(loop, "");
  Outcome o = agent(s.port);
  EXPECT_EQ(o.failure, Failure::Error);
  EXPECT_EQ(o.detail, "agent closed without a line");
}

TEST_F(TcpLoopback, SilentAgentTimesOut) {
  RawServer s(loop, "", /*hold=*/true);
  Outcome o = agent(s.port, "i-peer", 80ms);
  EXPECT_EQ(o.failure, Failure::Timeout);
  EXPECT_EQ(o.detail, "no agent line before the deadline");
  EXPECT_GE(o.rtt, 80ms);
}

TEST_F(TcpLoopback, DeadlineCountsFromTheCallNotFromAStaleLoopTime) {
  RawServer s(loop, "", /*hold=*/true);
  loop.run(UV_RUN_NOWAIT);
  // A long callback chain: the loop's cached time falls 100 ms behind the clock.
  std::this_thread::sleep_for(100ms);
  std::optional<Outcome> got;
  TcpProber p(loop, {});
  p.agent(loopback(s.port), 60ms, "", [&](Outcome o) { got = std::move(o); });
  ASSERT_TRUE(run_until(
      loop, [&] { return got.has_value(); }, 2s));
  EXPECT_EQ(got->failure, Failure::Timeout);
  EXPECT_GE(got->rtt, 60ms) << "the deadline was cut short by the stale loop time";
}

TEST_F(TcpLoopback, EndlessAgentLineIsCutOff) {
  RawServer s(loop, std::string(4000, 'u'), /*hold=*/true);
  Outcome o = agent(s.port);
  EXPECT_EQ(o.failure, Failure::Error);
  EXPECT_EQ(o.detail, "agent line longer than 256 bytes");
}

TEST_F(TcpLoopback, ConnectOkAndRefused) {
  RawServer s(loop, "", /*hold=*/true);
  Outcome ok = connect(s.port);
  EXPECT_TRUE(ok.ok) << ok.detail;
  Outcome refused = connect(closed_port(loop));
  EXPECT_EQ(refused.failure, Failure::Refused) << refused.detail;
  Outcome agent_refused = agent(closed_port(loop));
  EXPECT_EQ(agent_refused.failure, Failure::Refused) << agent_refused.detail;
}

TEST_F(TcpLoopback, BindToMissingDeviceFailsAtOnceNamingIt) {
  TcpProber p(loop, {.interface = "hanat-nodev0", .has_source = false, .source = {}});
  std::optional<Outcome> got;
  p.connect(loopback(9), 100ms, [&](Outcome o) { got = std::move(o); });
  ASSERT_TRUE(got) << "setup failures are reported before connect() returns";
  EXPECT_EQ(got->failure, Failure::Error);
  EXPECT_EQ(got->detail, "binding the probe socket: No such device");
}

TEST_F(TcpLoopback, DestroyingProberWithProbesInFlightCallsNothing) {
  RawServer s(loop, "", /*hold=*/true);
  int calls = 0;
  {
    TcpProber p(loop, {});
    for (int i = 0; i < 5; ++i) p.agent(loopback(s.port), 1s, "", [&](Outcome) { ++calls; });
    EXPECT_EQ(p.in_flight(), 5u);
    loop.run(UV_RUN_NOWAIT);
  }
  run_until(
      loop, [] { return false; }, 50ms);
  EXPECT_EQ(calls, 0);
}

TEST_F(TcpLoopback, AgentServerListenErrorNamesAddress) {
  AgentServer a(loop, {});
  ASSERT_FALSE(a.listen(loopback(0)));
  AgentServer b(loop, {});
  std::string err;
  EXPECT_TRUE(b.listen(loopback(a.port()), &err));
  EXPECT_EQ(err,
            "agent port 127.0.0.1:" + std::to_string(a.port()) + ": listen: address already in use")
      << "libuv reports EADDRINUSE of a TCP bind at listen()";
}

}  // namespace
}  // namespace hanat::probes
