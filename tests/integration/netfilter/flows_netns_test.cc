// SPDX-License-Identifier: GPL-2.0-or-later
// Reading the flows a handover carries from a real conntrack table (netfilter/conntrack.h,
// netfilter/ct_events.h): traffic is forwarded and masqueraded through a NAT namespace made
// here, then dumped and streamed (new, then destroy) with the tuples the private host used.
//
//   priv (198.18.1.2) -- lan0 [nat] wan0 (198.19.1.1) -- (198.19.1.2) out
#include <arpa/inet.h>
#include <libmnl/libmnl.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <fstream>

#include <gtest/gtest.h>

#include "netfilter/batch.h"
#include "netfilter/conntrack.h"
#include "netfilter/ct_events.h"
#include "netfilter/netlink.h"
#include "tests/integration/netfilter/nat_router.h"
#include "tests/integration/netfilter/netns_util.h"
#include "tests/support/uv_test_util.h"

namespace hanat::netfilter {
namespace {

using testing::EnterNetns;
using testing::flush_conntrack;
using testing::ip;
using testing::Netns;
using testing::port_of;
using testing::sin;
using testing::write_proc;

// A UDP socket in the calling thread's namespace bound to `addr`:0; -1 on failure.
int udp_here(const char* addr) {
  const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  const sockaddr_in a = sin(addr, 0);
  if (fd < 0 || ::bind(fd, reinterpret_cast<const sockaddr*>(&a), sizeof a) != 0) return -1;
  return fd;
}

// The same inside `ns` (the socket stays there after the thread leaves).
int udp_in(const Netns& ns, const char* addr) {
  EnterNetns in(ns);
  if (!in.ok()) return -1;
  return udp_here(addr);
}

// Sends from `fd` to out's 198.19.1.2:`port` until one datagram arrives at `rx` (ARP on fresh
// veths may eat the first); the source address it arrived with, or "".
std::string send_seen(int fd, int rx, uint16_t port) {
  sockaddr_in from{};
  if (testing::send_seen(fd, sin("198.19.1.2", port), rx, &from).empty()) return {};
  char text[INET_ADDRSTRLEN] = {};
  inet_ntop(AF_INET, &from.sin_addr, text, sizeof text);
  return text;
}

class FlowsNetns : public ::testing::Test {
 protected:
  void SetUp() override {
    if (auto why = testing::netns_skip_reason(); !why.empty()) GTEST_SKIP() << why;
    testing::remove_stale_netns();
    topo_.build(1);
  }
  void TearDown() override { topo_.tear_down(); }
  // Opens `n` UDP flows from the private host to `rx` (`port`), each seen at the far end with
  // the router's public address; their sockets go to `fds`.
  ::testing::AssertionResult open_flows(int n, int rx, uint16_t port, std::vector<int>& fds) {
    for (int i = 0; i < n; ++i) {
      const int fd = udp_in(*topo_.priv, "198.18.1.2");
      if (fd < 0) return ::testing::AssertionFailure() << "flow " << i << ": no socket";
      fds.push_back(fd);
      if (auto seen = send_seen(fd, rx, port); seen != "198.19.1.1")
        return ::testing::AssertionFailure() << "flow " << i << " arrived from " << seen;
    }
    return ::testing::AssertionSuccess();
  }
  testing::NatRouter topo_;
};

Flow udp_flow(const char* src, uint16_t sport, uint16_t dport) {
  Flow f;
  f.proto = IPPROTO_UDP;
  f.src = ip(src);
  f.dst = ip("198.19.1.2");
  f.sport = sport;
  f.dport = dport;
  return f;
}

bool has(const std::vector<Flow>& v, const Flow& f) {
  return std::find(v.begin(), v.end(), f) != v.end();
}

TEST_F(FlowsNetns, MasqueradedFlowsAreDumpedThenStreamedNewAndDestroyed) {
  // Every entry gets the event extension, also those older than the listener (the kernel's
  // default 2, "auto", gives it only to entries created while a listener exists).
  ASSERT_TRUE(write_proc("/proc/sys/net/netfilter/nf_conntrack_events", "1"));
  const int rx = udp_in(*topo_.out, "198.19.1.2");
  ASSERT_GE(rx, 0);
  const uint16_t port = port_of(rx);
  auto filter = flow_filter({"198.18.1.0/24"});
  ASSERT_TRUE(filter) << filter.error().message;

  // A flow that exists before anything listens: found by the dump.
  const int early = udp_in(*topo_.priv, "198.18.1.2");
  ASSERT_GE(early, 0);
  ASSERT_EQ(send_seen(early, rx, port), "198.19.1.1");
  const Flow early_flow = udp_flow("198.18.1.2", port_of(early), port);
  // The NAT host's own flow from a configured source range is never carried.
  const int own = udp_here("198.18.1.1");  // this thread is in nat
  ASSERT_GE(own, 0);
  ASSERT_EQ(send_seen(own, rx, port), "198.19.1.1");  // masqueraded too

  auto dump = dump_flows(*filter, 100);
  ASSERT_TRUE(dump) << dump.error().message;
  EXPECT_GE(dump->seen, 2U);
  ASSERT_EQ(dump->flows.size(), 1U);
  EXPECT_EQ(dump->flows[0], early_flow);
  EXPECT_GT(dump->flows[0].timeout_s, 0U);
  // The bound holds: with max 0 nothing is returned and the flow is counted as skipped.
  auto none = dump_flows(*filter, 0);
  ASSERT_TRUE(none);
  EXPECT_TRUE(none->flows.empty());
  EXPECT_EQ(none->skipped, 1U);

  uv::Loop loop;
  {
    std::vector<FlowEvent> events;
    auto stream = CtEvents::open(loop, *filter, 100, [&](const FlowEvents& e) {
      EXPECT_FALSE(e.resync.has_value());
      events.insert(events.end(), e.events.begin(), e.events.end());
    });
    ASSERT_TRUE(stream) << stream.error().message;

    // A new flow: announced as new, with the private host's tuple.
    const int late = udp_in(*topo_.priv, "198.18.1.2");
    ASSERT_GE(late, 0);
    ASSERT_EQ(send_seen(late, rx, port), "198.19.1.1");
    const Flow late_flow = udp_flow("198.18.1.2", port_of(late), port);
    ASSERT_TRUE(testing::run_until(loop, [&] { return !events.empty(); }));
    ASSERT_EQ(events.size(), 1U);
    EXPECT_FALSE(events[0].destroyed);
    EXPECT_EQ(events[0].flow, late_flow);

    // Both end (flushed): two destroys, the early flow's too; the NAT's own flow is filtered.
    events.clear();
    ASSERT_TRUE(flush_conntrack());
    ASSERT_TRUE(testing::run_until(loop, [&] { return events.size() >= 2; }));
    std::vector<Flow> destroyed;
    for (const auto& e : events) {
      EXPECT_TRUE(e.destroyed);
      destroyed.push_back(e.flow);
    }
    EXPECT_TRUE(has(destroyed, early_flow));
    EXPECT_TRUE(has(destroyed, late_flow));
    EXPECT_EQ(destroyed.size(), 2U);
    EXPECT_EQ((*stream)->counters().malformed, 0U);
    EXPECT_GE((*stream)->counters().filtered, 1U);  // the NAT host's own flow
    stream->reset();
    ::close(late);
  }
  testing::expect_clean_close(loop);
  for (int fd : {early, own, rx}) ::close(fd);
}

// With `batch` the stream stops watching the socket for that long after draining it: events
// that arrive meanwhile wait in the receive buffer and come in one wake-up, none lost.
TEST_F(FlowsNetns, BatchedStreamGathersTheEventsOfAPauseInOneWakeUp) {
  const int rx = udp_in(*topo_.out, "198.19.1.2");
  ASSERT_GE(rx, 0);
  const uint16_t port = port_of(rx);
  auto filter = flow_filter({"198.18.1.0/24"});
  ASSERT_TRUE(filter);
  constexpr auto kBatch = std::chrono::milliseconds(300);
  using Clock = std::chrono::steady_clock;
  uv::Loop loop;
  {
    std::vector<std::pair<Clock::time_point, std::vector<FlowEvent>>> wakes;
    auto stream = CtEvents::open(
        loop, *filter, 100,
        [&](const FlowEvents& e) { wakes.emplace_back(Clock::now(), e.events); },
        CtEvents::kDefaultRcvBuf, false, kBatch);
    ASSERT_TRUE(stream) << stream.error().message;
    // The first event is read at once (the stream was watching).
    const int first = udp_in(*topo_.priv, "198.18.1.2");
    ASSERT_GE(first, 0);
    ASSERT_EQ(send_seen(first, rx, port), "198.19.1.1");
    ASSERT_TRUE(testing::run_until(loop, [&] { return !wakes.empty(); }));
    ASSERT_EQ(wakes[0].second.size(), 1U);
    EXPECT_EQ(wakes[0].second[0].flow, udp_flow("198.18.1.2", port_of(first), port));
    // Five more during the pause (the loop is not run meanwhile; creating them takes far
    // less than kBatch): one wake-up delivers them all, no sooner than kBatch after the first.
    std::vector<int> fds{first};
    ASSERT_TRUE(open_flows(5, rx, port, fds));
    ASSERT_TRUE(testing::run_until(loop, [&] { return wakes.size() >= 2; }));
    ASSERT_EQ(wakes.size(), 2U);
    EXPECT_GE(wakes[1].first - wakes[0].first, kBatch - std::chrono::milliseconds(2));
    std::vector<Flow> got;
    for (const auto& e : wakes[1].second) {
      EXPECT_FALSE(e.destroyed);
      got.push_back(e.flow);
    }
    ASSERT_EQ(got.size(), 5U);
    for (size_t i = 1; i < fds.size(); ++i)
      EXPECT_TRUE(has(got, udp_flow("198.18.1.2", port_of(fds[i]), port)));
    EXPECT_EQ((*stream)->counters().overruns, 0U);
    stream->reset();
    for (int fd : fds) ::close(fd);
  }
  testing::expect_clean_close(loop);
  ::close(rx);
}

// The replication's dump read in steps (one datagram per step with a zero budget) finds what
// the dump in one piece finds.
TEST_F(FlowsNetns, ASteppedDumpReadsTheSameFlowsAsOnePiece) {
  const int rx = udp_in(*topo_.out, "198.19.1.2");
  ASSERT_GE(rx, 0);
  const uint16_t port = port_of(rx);
  auto filter = flow_filter({"198.18.1.0/24"});
  ASSERT_TRUE(filter);
  std::vector<int> fds;
  ASSERT_TRUE(open_flows(300, rx, port, fds));  // a dump datagram holds about a hundred entries
  auto whole = dump_replicated_flows(*filter, 1000);
  ASSERT_TRUE(whole) << whole.error().message;
  ASSERT_EQ(whole->flows.size(), 300U);
  auto dumper = ReplicatedDumper::start(*filter, 1000);
  ASSERT_TRUE(dumper) << dumper.error().message;
  int steps = 0;
  for (bool done = false; !done && steps < 10000; ++steps) {
    auto r = (*dumper)->step(std::chrono::microseconds(0));
    ASSERT_TRUE(r) << r.error().message;
    done = *r;
  }
  EXPECT_GE(steps, 2);
  auto& got = (*dumper)->result();
  EXPECT_EQ(got.seen, whole->seen);
  std::vector<Flow> a, b;
  for (const auto& f : whole->flows) a.push_back(f.flow);
  for (const auto& f : got.flows) b.push_back(f.flow);
  EXPECT_EQ(b.size(), a.size());
  for (const auto& f : a) EXPECT_TRUE(has(b, f));
  // Stepping on after the end changes nothing.
  auto again = (*dumper)->step(std::chrono::microseconds(0));
  ASSERT_TRUE(again);
  EXPECT_TRUE(*again);
  EXPECT_EQ(got.flows.size(), 300U);
  for (int fd : fds) ::close(fd);
  ::close(rx);
}

TEST_F(FlowsNetns, LostEventsAreReplacedByAResyncDump) {
  const int rx = udp_in(*topo_.out, "198.19.1.2");
  ASSERT_GE(rx, 0);
  const uint16_t port = port_of(rx);
  auto filter = flow_filter({"198.18.1.0/24"});
  ASSERT_TRUE(filter);
  uv::Loop loop;
  {
    std::optional<std::vector<Flow>> resync;
    // A receive buffer too small for the events of many flows: the kernel reports ENOBUFS.
    auto stream = CtEvents::open(
        loop, *filter, 1000,
        [&](const FlowEvents& e) {
          if (e.resync) resync = e.resync;
        },
        256);
    ASSERT_TRUE(stream) << stream.error().message;
    std::vector<int> fds;
    ASSERT_TRUE(open_flows(40, rx, port, fds));
    ASSERT_TRUE(testing::run_until(loop, [&] { return resync.has_value(); }));
    EXPECT_GE((*stream)->counters().overruns, 1U);
    EXPECT_EQ(resync->size(), 40U);
    for (int fd : fds) EXPECT_TRUE(has(*resync, udp_flow("198.18.1.2", port_of(fd), port)));
    stream->reset();
    for (int fd : fds) ::close(fd);
  }
  testing::expect_clean_close(loop);
  ::close(rx);
}

}  // namespace
}  // namespace hanat::netfilter
