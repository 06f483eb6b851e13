// SPDX-License-Identifier: GPL-2.0-or-later
// PeerMonitor on a real loop over 127.0.0.1 (TCP and agent kinds need no privilege), and
// the validation of its inputs.
#include "probes/monitor.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <map>

#include "probes/agent_line.h"
#include "probes/agent_server.h"
#include "tests/support/uv_test_util.h"

namespace hanat::probes {
namespace {

using namespace std::chrono_literals;
using hanat::testing::expect_clean_close;
using hanat::testing::run_until;

PeerSpec spec(std::string id, std::vector<ProbeKind> kinds, std::uint16_t tcp = 1,
              std::uint16_t agent = 2, std::string address = "127.0.0.1") {
  return PeerSpec{.id = std::move(id),
                  .address = std::move(address),
                  .kinds = std::move(kinds),
                  .tcp_port = tcp,
                  .agent_port = agent,
                  .public_address = {}};
}

TEST(PeerMonitorCreate, RejectsBadInputNamingPeerAndField) {
  uv::Loop loop;
  auto err = [&](std::vector<PeerSpec> peers, ProbeOptions o = {}) {
    auto r = PeerMonitor::create(loop, std::move(peers), o, {});
    return r ? std::string("accepted") : r.error();
  };
  EXPECT_EQ(err({spec("", {ProbeKind::Tcp})}), "peer #1: empty id");
  EXPECT_EQ(err({spec("i-a", {ProbeKind::Tcp}), spec("i-a", {ProbeKind::Tcp})}),
            "peer 'i-a': listed twice");
  EXPECT_EQ(err({spec("i-a", {ProbeKind::Tcp}, 1, 2, "nat-b.internal")}),
            "peer 'i-a' address: 'nat-b.internal' is not a numeric IPv4 address");
  EXPECT_EQ(err({spec("i-a", {})}), "peer 'i-a': no probe kinds");
  PeerSpec bad_public = spec("i-a", {ProbeKind::Tcp});
  bad_public.public_address = "203.0.113.300";
  EXPECT_EQ(err({bad_public}),
            "peer 'i-a' public address: '203.0.113.300' is not a numeric IPv4 address");
  EXPECT_EQ(err({spec("i-a", {ProbeKind::Tcp, ProbeKind::Tcp})}),
            "peer 'i-a': probe kind 'tcp' twice");
  EXPECT_EQ(err({spec("i-a", {ProbeKind::Tcp}, 0)}), "peer 'i-a': tcp probe without a tcp port");
  EXPECT_EQ(err({spec("i-a", {ProbeKind::Agent}, 1, 0)}),
            "peer 'i-a': agent probe without an agent port");
  ProbeOptions slow;
  slow.interval = 0ms;
  EXPECT_EQ(err({spec("i-a", {ProbeKind::Tcp})}, slow),
            "probes: probe interval 0 ms is outside 10..60000 ms");
  ProbeOptions bad_if;
  bad_if.interface = "this-name-is-too-long";
  EXPECT_EQ(err({spec("i-a", {ProbeKind::Tcp})}, bad_if),
            "probes: interface: 'this-name-is-too-long' is not a valid interface name");
  EXPECT_EQ(err({spec("i-a", {ProbeKind::Tcp})}), "accepted");
  expect_clean_close(loop);
}

TEST(PeerMonitorLoop, ProbesEveryKindOnThePublicAddressTooAndNamesThePath) {
  uv::Loop loop;
  {
    AgentServer agent(loop, [] {
      return reply_for({.forwarding = true,
                        .masquerade = true,
                        .egress_ok = true,
                        .draining = false,
                        .egress_detail = {},
                        .forwarding_detail = {}},
                       "i-b");
    });
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_FALSE(agent.listen(a));
    // Both "paths" are loopback here: what is checked is that each kind is probed once per
    // path and that every result names its path.
    PeerSpec p = spec("i-b", {ProbeKind::Tcp, ProbeKind::Agent}, agent.port(), agent.port());
    p.public_address = "127.0.0.1";
    std::map<std::pair<ProbePath, ProbeKind>, int> seen;
    ProbeOptions o;
    o.interval = 40ms;
    o.timeout = 40ms;
    auto m = PeerMonitor::create(loop, {p}, o,
                                 {[&](const ProbeResult& r) {
                                    EXPECT_TRUE(r.outcome.ok) << r.outcome.detail;
                                    ++seen[{r.path, r.kind}];
                                  },
                                  {}});
    ASSERT_TRUE(m) << m.error();
    ASSERT_FALSE((*m)->start());
    ASSERT_TRUE(run_until(
        loop,
        [&] {
          return seen.size() == 4 &&
                 std::all_of(seen.begin(), seen.end(),
                             [](const auto& e) { return e.second >= 3; }) &&
                 (*m)->peer("i-b")->state() == Health::Up;
        },
        3s));
    (*m)->stop();
  }
  expect_clean_close(loop);
}

TEST(PeerMonitorLoop, SendsAKindOnBothPathsInTheSameSlot) {
  // A peer is DOWN only once every path reached `fall`: were its public probes a slot behind
  // its private ones, the outage after a dead NAT would grow by that slot (bench/failover
  // link_cut measured ~40 ms at the defaults). Each kind's two paths share one planned time,
  // and the kinds are spread over the interval as with one path.
  uv::Loop loop;
  {
    AgentServer agent(loop, [] {
      return reply_for({.forwarding = true,
                        .masquerade = true,
                        .egress_ok = true,
                        .draining = false,
                        .egress_detail = {},
                        .forwarding_detail = {}},
                       "i-b");
    });
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_FALSE(agent.listen(a));
    PeerSpec p = spec("i-b", {ProbeKind::Tcp, ProbeKind::Agent}, agent.port(), agent.port());
    p.public_address = "127.0.0.1";
    std::map<std::pair<ProbePath, ProbeKind>, std::vector<Time>> planned;
    ProbeOptions o;
    o.interval = 40ms;
    o.timeout = 20ms;
    auto m = PeerMonitor::create(loop, {p}, o,
                                 {[&](const ProbeResult& r) {
                                    planned[{r.path, r.kind}].push_back(r.planned);
                                  },
                                  {}});
    ASSERT_TRUE(m) << m.error();
    EXPECT_EQ((*m)->schedule().size(), 4u);
    EXPECT_EQ((*m)->schedule().phases(), 2u) << "one phase per kind, whatever the paths";
    ASSERT_FALSE((*m)->start());
    ASSERT_TRUE(run_until(
        loop,
        [&] {
          return planned.size() == 4 && std::all_of(planned.begin(), planned.end(),
                                                    [](auto& e) { return e.second.size() >= 2; });
        },
        3s));
    (*m)->stop();
    for (ProbeKind k : {ProbeKind::Tcp, ProbeKind::Agent}) {
      const auto& priv = planned[{ProbePath::Private, k}];
      const auto& pub = planned[{ProbePath::Public, k}];
      for (std::size_t i = 0; i < 2; ++i) {
        EXPECT_EQ(priv[i], pub[i]) << to_string(k) << " round " << i << ": paths in one slot";
      }
    }
    auto kinds_apart = planned[{ProbePath::Private, ProbeKind::Agent}][0] -
                       planned[{ProbePath::Private, ProbeKind::Tcp}][0];
    EXPECT_EQ(kinds_apart, 20ms) << "the two kinds half an interval apart, as with one path";
  }
  expect_clean_close(loop);
}

TEST(PeerMonitorLoop, SpreadsProbesAndNeverOverlapsATarget) {
  uv::Loop loop;
  {
    std::vector<std::unique_ptr<AgentServer>> agents;
    std::vector<PeerSpec> peers;
    for (int i = 0; i < 4; ++i) {
      std::string id = "i-" + std::to_string(i);
      agents.push_back(std::make_unique<AgentServer>(loop, [id] {
        return reply_for({.forwarding = true,
                          .masquerade = true,
                          .egress_ok = true,
                          .draining = false,
                          .egress_detail = {},
                          .forwarding_detail = {}},
                         id);
      }));
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      ASSERT_FALSE(agents.back()->listen(a));
      peers.push_back(spec(id, {ProbeKind::Tcp, ProbeKind::Agent}, agents.back()->port(),
                           agents.back()->port()));
    }
    std::map<std::pair<std::string, ProbeKind>, std::vector<const ProbeResult*>> by_target;
    std::vector<ProbeResult> results;
    results.reserve(1000);
    std::vector<PeerTransition> transitions;
    ProbeOptions o;
    o.interval = 40ms;
    o.timeout = 40ms;
    o.rise = 2;
    auto m = PeerMonitor::create(loop, peers, o,
                                 {[&](const ProbeResult& r) { results.push_back(r); },
                                  [&](const PeerTransition& t) { transitions.push_back(t); }});
    ASSERT_TRUE(m) << m.error();
    ASSERT_FALSE((*m)->start());
    ASSERT_TRUE(run_until(
        loop, [&] { return results.size() >= 8 * 8; }, 3s));
    (*m)->stop();
    for (const auto& r : results) {
      EXPECT_TRUE(r.outcome.ok) << r.peer << " " << to_string(r.kind) << ": " << r.outcome.detail;
      by_target[{r.peer, r.kind}].push_back(&r);
    }
    ASSERT_EQ(by_target.size(), 8u);
    std::vector<Time> first_planned, first_sent;
    for (auto& [target, rs] : by_target) {
      first_planned.push_back(rs.front()->planned);
      first_sent.push_back(rs.front()->sent);
      for (std::size_t i = 1; i < rs.size(); ++i) {
        EXPECT_GE(rs[i]->sent, rs[i - 1]->at) << "overlap on " << target.first;
        // Anchored: planned times stay on the grid. A loop stalled past a whole interval
        // (this test also runs beside the lab at nice 19) skips a slot, never shifts it.
        auto step = rs[i]->planned - rs[i - 1]->planned;
        EXPECT_TRUE(step >= o.interval && step % o.interval == decltype(step){0})
            << "anchored schedule: "
            << std::chrono::duration_cast<std::chrono::microseconds>(step).count() << " us";
      }
    }
    // 8 targets over 40 ms: planned 5 ms apart, and none sent before its planned time, so
    // the first round is spread out rather than a burst at start. (The spread of the actual
    // send times is not bounded from below: a stalled loop may send several late at once.)
    for (std::size_t i = 0; i < first_planned.size(); ++i) {
      EXPECT_GE(first_sent[i], first_planned[i]) << "sent before its slot";
    }
    std::sort(first_planned.begin(), first_planned.end());
    for (std::size_t i = 1; i < first_planned.size(); ++i) {
      EXPECT_EQ(first_planned[i] - first_planned[i - 1], 5ms);
    }
    ASSERT_EQ(transitions.size(), 4u);
    for (const auto& t : transitions) EXPECT_EQ(t.to, Health::Up);
    EXPECT_EQ((*m)->peer("i-2")->state(), Health::Up);
    EXPECT_EQ((*m)->peer("i-9"), nullptr);
    ASSERT_EQ((*m)->peers().size(), 4u);
    EXPECT_EQ((*m)->peers()[3].id(), "i-3");
    m.value().reset();
    agents.clear();
  }
  expect_clean_close(loop);
}

TEST(PeerMonitorLoop, StopInsideCallbackThenRestartKeepsProbing) {
  uv::Loop loop;
  {
    // A silent agent: every probe runs to its 50 ms deadline, longer than the 20 ms interval,
    // so launches are deferred while the previous probe is in flight.
    uv::Tcp silent(loop);
    std::vector<std::unique_ptr<uv::Tcp>> held;
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_FALSE(silent.bind(reinterpret_cast<sockaddr*>(&a)));
    ASSERT_FALSE(silent.listen(16, [&](std::error_code) {
      auto c = std::make_unique<uv::Tcp>(loop);
      if (!silent.accept(*c)) held.push_back(std::move(c));
    }));
    sockaddr_storage ss{};
    ASSERT_FALSE(silent.sockname(ss));
    auto port = ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);

    ProbeOptions o;
    o.interval = 20ms;
    o.timeout = 50ms;
    PeerMonitor* mon = nullptr;
    int results = 0;
    bool stop_on_next = true;
    auto m = PeerMonitor::create(loop, {spec("i-s", {ProbeKind::Agent}, 1, port)}, o,
                                 {[&](const ProbeResult& r) {
                                    EXPECT_EQ(r.outcome.failure, Failure::Timeout);
                                    ++results;
                                    if (stop_on_next) {
                                      stop_on_next = false;
                                      mon->stop();
                                    }
                                  },
                                  {}});
    ASSERT_TRUE(m) << m.error();
    mon = m->get();
    ASSERT_FALSE(mon->start());
    ASSERT_TRUE(run_until(
        loop, [&] { return results == 1; }, 2s));
    ASSERT_FALSE(mon->start());
    EXPECT_TRUE(run_until(
        loop, [&] { return results >= 4; }, 2s))
        << "after a restart the target must be probed again";
    m.value().reset();
  }
  expect_clean_close(loop);
}

}  // namespace
}  // namespace hanat::probes
