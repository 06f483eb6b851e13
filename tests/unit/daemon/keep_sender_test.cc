// SPDX-License-Identifier: GPL-2.0-or-later
#include "core/daemon/keep_sender.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>

namespace hanat::daemon::keep {
namespace {

using netfilter::Flow;
using netfilter::FlowEvent;
using netfilter::FlowEvents;
using std::chrono::milliseconds;
using ::testing::ElementsAre;
using ::testing::IsEmpty;

constexpr char kPeer[] = "i-0b";

Flow tcp(uint16_t sport) {
  return {IPPROTO_TCP, 0xC6130005, 0xC6138001, sport, 443, 100};
}

// Records what the sender asks of the kernel and the channel.
struct Fake final : SenderPort {
  struct State {
    std::vector<std::string> calls;
    std::vector<Flow> dump;
    std::string open_error;
    std::string dump_error;
    std::vector<std::vector<std::string>> snapshots;  // the tables of each snapshot
    std::vector<std::vector<Flow>> sent;
    std::vector<std::vector<Flow>> destroyed;
    std::optional<size_t> open;  // count_open()'s answer; nullopt: an error
    int recounts = 0;
  };
  explicit Fake(State& s) : s_(s) {}
  std::string open() override {
    s_.calls.push_back("open");
    return s_.open_error;
  }
  std::string reconnect() override {
    s_.calls.push_back("reconnect");
    return "";
  }
  core::Result<size_t, std::string> count_open() override {
    ++s_.recounts;
    if (!s_.open) return core::Unexpected(std::string("netlink: timed out"));
    return *s_.open;
  }
  core::Result<std::vector<Flow>, std::string> snapshot(
      const std::vector<std::string>& tables) override {
    s_.calls.push_back("snapshot");
    s_.snapshots.push_back(tables);
    if (!s_.dump_error.empty()) return core::Unexpected(s_.dump_error);
    return s_.dump;
  }
  void send_flows(const std::vector<Flow>& flows, bool replace, bool complete) override {
    s_.calls.push_back(std::string("flows") + (replace ? " replace" : "") +
                       (complete ? " complete" : ""));
    s_.sent.push_back(flows);
  }
  void send_destroyed(const std::vector<Flow>& flows) override {
    s_.calls.push_back("destroyed");
    s_.destroyed.push_back(flows);
  }
  void send_end() override { s_.calls.push_back("end"); }
  void close() override { s_.calls.push_back("close"); }
  State& s_;
};

engine::WriteRoute write(const std::string& table, engine::OpId op = 1) {
  engine::WriteRoute w;
  w.op = op;
  w.table = table;
  w.destination = "0.0.0.0/0";
  w.target.kind = engine::TargetKind::Instance;
  w.target.id = kPeer;
  return w;
}

struct Harness {
  Fake::State port;
  Time t0{};
  Time now{};
  std::unique_ptr<Sender> sender;
  explicit Harness(milliseconds flow_drain = milliseconds(300000)) {
    Sender::Settings s;
    s.flow_drain = flow_drain;
    sender = std::make_unique<Sender>(kPeer, std::make_unique<Fake>(port), s);
  }
  void advance(milliseconds d) { now += d; }
};

std::vector<std::string> tables(const Sender::Release& r) {
  std::vector<std::string> t;
  for (const auto& w : r.writes) t.push_back(w.table);
  return t;
}

TEST(KeepSender, HoldsTheWriteUntilThePeerAcknowledgesTheSnapshot) {
  Harness h;
  h.port.dump = {tcp(1000), tcp(1001)};
  auto r = h.sender->hold(write("rtb-a"), h.now);
  EXPECT_THAT(r.writes, IsEmpty());
  EXPECT_EQ(h.sender->held(), 1U);
  EXPECT_EQ(h.sender->next_deadline(), h.now + kAckWait);
  h.advance(milliseconds(3));
  (void)h.sender->on_ready(h.now);
  EXPECT_THAT(h.port.calls, ElementsAre("open", "snapshot", "flows replace complete"));
  EXPECT_THAT(h.port.snapshots, ElementsAre(ElementsAre("rtb-a")));
  EXPECT_EQ(h.sender->phase(), Sender::Phase::Acking);
  EXPECT_THAT(h.sender->tick(h.now).writes, IsEmpty());  // the bound has not passed
  h.advance(milliseconds(4));
  r = h.sender->on_ack(h.now);
  EXPECT_THAT(tables(r), ElementsAre("rtb-a"));
  EXPECT_EQ(r.why, "");
  EXPECT_EQ(h.sender->phase(), Sender::Phase::Streaming);
  EXPECT_EQ(h.sender->handed_at(), h.now);
  EXPECT_EQ(h.sender->flows_left(), 2U);
  EXPECT_EQ(h.sender->acked_flows(), 2U);
}

TEST(KeepSender, WritesGoAnywayAtTheAckBoundAndTheDrainGoesOn) {
  Harness h;
  h.port.dump = {tcp(1000)};
  (void)h.sender->hold(write("rtb-a"), h.now);
  (void)h.sender->on_ready(h.now);
  h.advance(kAckWait - milliseconds(1));
  EXPECT_THAT(h.sender->tick(h.now).writes, IsEmpty());
  h.advance(milliseconds(1));
  auto r = h.sender->tick(h.now);
  EXPECT_THAT(tables(r), ElementsAre("rtb-a"));
  EXPECT_THAT(r.why, ::testing::HasSubstr("no acknowledgement from i-0b within 500 ms"));
  // The snapshot is out: a late ack still counts, and the drain waits for the flow.
  EXPECT_EQ(h.sender->review(h.now), DrainVerdict::Wait);
  EXPECT_THAT(h.sender->on_ack(h.now).writes, IsEmpty());
  EXPECT_EQ(h.sender->phase(), Sender::Phase::Streaming);
}

TEST(KeepSender, NeverConnectedGivesUpAtTheBound) {
  Harness h;
  (void)h.sender->hold(write("rtb-a"), h.now);
  h.advance(kAckWait);
  auto r = h.sender->tick(h.now);
  EXPECT_THAT(tables(r), ElementsAre("rtb-a"));
  EXPECT_THAT(r.why, ::testing::HasSubstr("channel not connected"));
  EXPECT_EQ(h.sender->phase(), Sender::Phase::Ended);
  EXPECT_THAT(h.port.calls, ElementsAre("open", "close"));  // no End on a channel never up
}

TEST(KeepSender, OpenFailureReleasesAtOnce) {
  Harness h;
  h.port.open_error = "accept_steered: net.ipv4.conf.all.rp_filter is 1, needs 0";
  auto r = h.sender->hold(write("rtb-a"), h.now);
  EXPECT_THAT(tables(r), ElementsAre("rtb-a"));
  EXPECT_EQ(r.why, h.port.open_error);
  EXPECT_EQ(h.sender->phase(), Sender::Phase::Ended);
  // Later writes to the same peer are not held either.
  EXPECT_THAT(tables(h.sender->hold(write("rtb-b"), h.now)), ElementsAre("rtb-b"));
}

TEST(KeepSender, DumpFailureReleasesTheWriteAndEnds) {
  Harness h;
  h.port.dump_error = "netlink: Operation not permitted";
  (void)h.sender->hold(write("rtb-a"), h.now);
  auto r = h.sender->on_ready(h.now);
  // The held write goes at once, without the flows.
  EXPECT_THAT(tables(r), ElementsAre("rtb-a"));
  EXPECT_EQ(h.sender->phase(), Sender::Phase::Ended);
  EXPECT_THAT(h.sender->problem(), ::testing::HasSubstr("conntrack dump: netlink"));
  EXPECT_THAT(h.port.calls, ElementsAre("open", "snapshot", "end", "close"));
  EXPECT_EQ(h.sender->held(), 0U);
}

TEST(KeepSender, ChannelClosedBeforeTheAckReleasesAndEnds) {
  Harness h;
  h.port.dump = {tcp(1)};
  (void)h.sender->hold(write("rtb-a"), h.now);
  (void)h.sender->on_ready(h.now);
  auto r = h.sender->on_closed("connection reset by peer", h.now);
  EXPECT_THAT(tables(r), ElementsAre("rtb-a"));
  EXPECT_THAT(r.why, ::testing::HasSubstr("member channel to i-0b: connection reset"));
  EXPECT_EQ(h.sender->phase(), Sender::Phase::Ended);
  EXPECT_EQ(h.sender->verdict(), DrainVerdict::NoFlows);
}

TEST(KeepSender, WritesOfSeveralTablesAreHeldTogether) {
  Harness h;
  (void)h.sender->hold(write("rtb-a", 1), h.now);
  (void)h.sender->hold(write("rtb-b", 2), h.now);
  (void)h.sender->on_ready(h.now);
  EXPECT_THAT(h.port.snapshots, ElementsAre(ElementsAre("rtb-a", "rtb-b")));
  EXPECT_THAT(tables(h.sender->on_ack(h.now)), ElementsAre("rtb-a", "rtb-b"));
  // A table handed over later: its write waits for a new snapshot of every table.
  (void)h.sender->hold(write("rtb-c", 3), h.now);
  EXPECT_THAT(h.port.snapshots.back(), ElementsAre("rtb-a", "rtb-b", "rtb-c"));
  EXPECT_EQ(h.sender->held(), 1U);
  EXPECT_THAT(tables(h.sender->on_ack(h.now)), ElementsAre("rtb-c"));
}

// ---- failback: the taker asks (reclaim), this member writes nothing --------------------------

TEST(KeepSender, ReclaimSendsTheSnapshotAndTheAckStartsTheDrain) {
  Harness h;
  h.port.dump = {tcp(1000), tcp(1001)};
  auto r = h.sender->reclaim({"rtb-b"}, h.now);
  EXPECT_THAT(r.writes, IsEmpty());
  EXPECT_EQ(h.sender->held(), 0U);
  EXPECT_EQ(h.sender->next_deadline(), h.now + kAckWait);
  (void)h.sender->on_ready(h.now);
  EXPECT_THAT(h.port.calls, ElementsAre("open", "snapshot", "flows replace complete"));
  EXPECT_THAT(h.port.snapshots, ElementsAre(ElementsAre("rtb-b")));
  // Not acknowledged yet: no drain to judge.
  EXPECT_EQ(h.sender->review(h.now), DrainVerdict::Wait);
  h.advance(milliseconds(5));
  EXPECT_THAT(h.sender->on_ack(h.now).writes, IsEmpty());
  EXPECT_EQ(h.sender->phase(), Sender::Phase::Streaming);
  EXPECT_EQ(h.sender->handed_at(), h.now);
  EXPECT_EQ(h.sender->acked_flows(), 2U);
  EXPECT_EQ(h.sender->review(h.now), DrainVerdict::Wait);
  // The flows end: End, and the channel closes. The member itself stays (nothing to exit).
  FlowEvents ev;
  ev.events = {{true, tcp(1000)}, {true, tcp(1001)}};
  h.sender->on_events(ev);
  EXPECT_EQ(h.sender->review(h.now), DrainVerdict::NoFlows);
  EXPECT_EQ(h.port.calls[h.port.calls.size() - 2], "end");
  EXPECT_EQ(h.port.calls.back(), "close");
}

TEST(KeepSender, ReclaimOfTheSameTablesAgainSendsNothingNew) {
  Harness h;
  (void)h.sender->reclaim({"rtb-b"}, h.now);
  (void)h.sender->on_ready(h.now);
  (void)h.sender->on_ack(h.now);
  (void)h.sender->reclaim({"rtb-b"}, h.now);
  EXPECT_THAT(h.port.calls, ElementsAre("open", "snapshot", "flows replace complete"));
  // A new table: one snapshot of both replaces what the taker holds.
  (void)h.sender->reclaim({"rtb-b", "rtb-c"}, h.now);
  EXPECT_THAT(h.port.snapshots, ElementsAre(ElementsAre("rtb-b"), ElementsAre("rtb-b", "rtb-c")));
  EXPECT_EQ(h.sender->phase(), Sender::Phase::Acking);
}

// The taker writes at its own bound; this member gives up on a channel that never came up
// (nothing steered, nothing to keep) and keeps the drain of a snapshot that went out.
TEST(KeepSender, ReclaimNeverConnectedEndsAtTheBound) {
  Harness h;
  (void)h.sender->reclaim({"rtb-b"}, h.now);
  h.advance(kAckWait);
  EXPECT_THAT(h.sender->tick(h.now).writes, IsEmpty());
  EXPECT_EQ(h.sender->phase(), Sender::Phase::Ended);
  EXPECT_THAT(h.sender->problem(), ::testing::HasSubstr("channel not connected"));
  EXPECT_THAT(h.port.calls, ElementsAre("open", "close"));
}

TEST(KeepSender, ReclaimUnackedSnapshotStillDrains) {
  Harness h;
  h.port.dump = {tcp(7)};
  (void)h.sender->reclaim({"rtb-b"}, h.now);
  (void)h.sender->on_ready(h.now);
  h.advance(kAckWait);
  (void)h.sender->tick(h.now);
  EXPECT_EQ(h.sender->phase(), Sender::Phase::Acking);
  EXPECT_EQ(h.sender->handed_at(), h.now);
  EXPECT_EQ(h.sender->review(h.now), DrainVerdict::Wait);  // the flow is still open
}

TEST(KeepSender, ReclaimOpenFailureEndsAndSaysWhy) {
  Harness h;
  h.port.open_error = "accept_steered: no VXLAN support";
  EXPECT_THAT(h.sender->reclaim({"rtb-b"}, h.now).writes, IsEmpty());
  EXPECT_EQ(h.sender->phase(), Sender::Phase::Ended);
  EXPECT_EQ(h.sender->problem(), h.port.open_error);
}

TEST(KeepSender, EventsStreamInOrderAndCountTheFlowsLeft) {
  Harness h;
  h.port.dump = {tcp(1), tcp(2)};
  (void)h.sender->hold(write("rtb-a"), h.now);
  (void)h.sender->on_ready(h.now);
  (void)h.sender->on_ack(h.now);
  FlowEvents ev;
  ev.events = {{false, tcp(3)}, {true, tcp(1)}, {true, tcp(2)}, {false, tcp(4)}};
  h.sender->on_events(ev);
  EXPECT_THAT(h.port.calls, ElementsAre("open", "snapshot", "flows replace complete", "flows",
                                        "destroyed", "flows"));
  EXPECT_THAT(h.port.destroyed, ElementsAre(ElementsAre(tcp(1), tcp(2))));
  EXPECT_EQ(h.sender->flows_left(), 2U);
  // A resync (events were lost) replaces the count and what B holds.
  FlowEvents rs;
  rs.resync = std::vector<Flow>{tcp(4)};
  h.sender->on_events(rs);
  EXPECT_EQ(h.port.calls.back(), "flows replace");
  EXPECT_EQ(h.sender->flows_left(), 1U);
}

TEST(KeepSender, EndsWhenTheLastFlowEnds) {
  Harness h;
  h.port.dump = {tcp(1)};
  (void)h.sender->hold(write("rtb-a"), h.now);
  (void)h.sender->on_ready(h.now);
  (void)h.sender->on_ack(h.now);
  EXPECT_EQ(h.sender->review(h.now), DrainVerdict::Wait);
  FlowEvents ev;
  ev.events = {{true, tcp(1)}};
  h.sender->on_events(ev);
  EXPECT_EQ(h.sender->review(h.now), DrainVerdict::NoFlows);
  EXPECT_EQ(h.sender->phase(), Sender::Phase::Ended);
  EXPECT_EQ(h.port.calls[h.port.calls.size() - 2], "end");
  EXPECT_EQ(h.port.calls.back(), "close");
  // Ended: it stays ended, with its verdict.
  EXPECT_EQ(h.sender->review(h.now), DrainVerdict::NoFlows);
  EXPECT_EQ(h.sender->next_deadline(), std::nullopt);
}

TEST(KeepSender, EndsAtFlowDrainOrAnEarlierDeadline) {
  Harness h(milliseconds(60000));
  h.port.dump = {tcp(1)};
  (void)h.sender->hold(write("rtb-a"), h.now);
  (void)h.sender->on_ready(h.now);
  (void)h.sender->on_ack(h.now);
  h.port.open = 1;
  (void)h.sender->tick(h.now);  // the first recount, due at once
  h.sender->set_deadline(h.now + milliseconds(60000));
  EXPECT_EQ(h.sender->next_deadline(), h.now + milliseconds(2000));  // the next recount
  EXPECT_EQ(h.sender->flows_left(), 1U);
  h.sender->set_deadline(h.now + milliseconds(8000));
  h.advance(milliseconds(7999));
  EXPECT_EQ(h.sender->review(h.now), DrainVerdict::Wait);
  h.advance(milliseconds(1));
  EXPECT_EQ(h.sender->review(h.now), DrainVerdict::Deadline);

  Harness g(milliseconds(60000));
  g.port.dump = {tcp(1)};
  (void)g.sender->hold(write("rtb-a"), g.now);
  (void)g.sender->on_ready(g.now);
  (void)g.sender->on_ack(g.now);
  g.advance(milliseconds(60000));
  EXPECT_EQ(g.sender->review(g.now), DrainVerdict::FlowDrain);
  EXPECT_EQ(g.port.calls.back(), "close");
}

TEST(KeepSender, ForcedReleasesHeldWritesAndEnds) {
  Harness h;
  h.port.dump = {tcp(1)};
  (void)h.sender->hold(write("rtb-a"), h.now);
  (void)h.sender->on_ready(h.now);
  auto r = h.sender->force(h.now);
  EXPECT_THAT(tables(r), ElementsAre("rtb-a"));
  EXPECT_EQ(h.sender->review(h.now), DrainVerdict::Forced);
  EXPECT_THAT(h.port.calls,
              ElementsAre("open", "snapshot", "flows replace complete", "end", "close"));
}

TEST(KeepSender, ChannelLostWhileStreamingKeepsTheDrainAndReconnects) {
  Harness h;
  h.port.dump = {tcp(1)};
  (void)h.sender->hold(write("rtb-a"), h.now);
  (void)h.sender->on_ready(h.now);
  (void)h.sender->on_ack(h.now);
  EXPECT_THAT(h.sender->on_closed("end of stream", h.now).writes, IsEmpty());
  EXPECT_EQ(h.sender->phase(), Sender::Phase::Streaming);
  FlowEvents ev;
  ev.events = {{false, tcp(2)}};
  h.sender->on_events(ev);  // counted, not sent
  EXPECT_EQ(h.sender->flows_left(), 2U);
  EXPECT_EQ(h.port.calls.back(), "flows replace complete");
  EXPECT_EQ(h.sender->review(h.now), DrainVerdict::Wait);
  // The taker restarted (its start-up removed the steering): a new connection after a
  // second, and a fresh snapshot once it is up.
  (void)h.sender->tick(h.now);  // the first recount (an error here: the carried count stays)
  EXPECT_EQ(h.sender->next_deadline(), h.now + milliseconds(1000));
  h.advance(milliseconds(999));
  (void)h.sender->tick(h.now);
  EXPECT_EQ(h.port.calls.back(), "flows replace complete");
  h.advance(milliseconds(1));
  (void)h.sender->tick(h.now);
  EXPECT_EQ(h.port.calls.back(), "reconnect");
  // That one fails too: again a second later.
  EXPECT_THAT(h.sender->on_closed("connect: connection refused", h.now).writes, IsEmpty());
  h.advance(milliseconds(1000));
  (void)h.sender->tick(h.now);
  EXPECT_EQ(h.sender->reconnects(), 2U);
  h.port.dump = {tcp(1), tcp(2), tcp(3)};
  EXPECT_THAT(h.sender->on_ready(h.now).writes, IsEmpty());
  EXPECT_EQ(h.port.calls.back(), "flows replace complete");
  EXPECT_EQ(h.sender->flows_left(), 3U);
  // Closed again before the ack: still draining, still reconnecting.
  EXPECT_THAT(h.sender->on_closed("reset", h.now).writes, IsEmpty());
  EXPECT_EQ(h.sender->phase(), Sender::Phase::Streaming);
  h.advance(milliseconds(1000));
  (void)h.sender->tick(h.now);
  (void)h.sender->on_ready(h.now);
  (void)h.sender->on_ack(h.now);
  EXPECT_EQ(h.sender->phase(), Sender::Phase::Streaming);
  EXPECT_EQ(h.sender->review(h.now), DrainVerdict::Wait);
}

TEST(KeepSender, ClosedTcpFlowsDoNotHoldTheDrain) {
  Harness h;
  h.port.dump = {tcp(1), tcp(2)};
  h.port.open = 1;  // one of the two is in TIME_WAIT: over, its entry not yet gone
  (void)h.sender->hold(write("rtb-a"), h.now);
  (void)h.sender->on_ready(h.now);
  (void)h.sender->on_ack(h.now);
  EXPECT_EQ(h.sender->next_deadline(), h.now);  // the first recount is due at once
  (void)h.sender->tick(h.now);
  EXPECT_EQ(h.port.recounts, 1);
  EXPECT_EQ(h.sender->flows_left(), 1U);
  EXPECT_EQ(h.sender->flows_carried(), 2U);
  EXPECT_EQ(h.sender->review(h.now), DrainVerdict::Wait);
  EXPECT_EQ(h.sender->next_deadline(), h.now + milliseconds(2000));
  // A new flow counts until the next recount.
  FlowEvents ev;
  ev.events = {{false, tcp(3)}};
  h.port.open = 0;
  h.sender->on_events(ev);
  EXPECT_EQ(h.sender->flows_left(), 3U);
  h.advance(milliseconds(1999));
  (void)h.sender->tick(h.now);
  EXPECT_EQ(h.port.recounts, 1);
  h.advance(milliseconds(1));
  (void)h.sender->tick(h.now);
  EXPECT_EQ(h.port.recounts, 2);
  EXPECT_EQ(h.sender->flows_left(), 0U);
  EXPECT_EQ(h.sender->review(h.now), DrainVerdict::NoFlows);
}

TEST(KeepSender, AFailedRecountKeepsTheCarriedCount) {
  Harness h;
  h.port.dump = {tcp(1)};
  h.port.open = std::nullopt;
  (void)h.sender->hold(write("rtb-a"), h.now);
  (void)h.sender->on_ready(h.now);
  (void)h.sender->on_ack(h.now);
  (void)h.sender->tick(h.now);
  EXPECT_EQ(h.sender->flows_left(), 1U);
  EXPECT_THAT(h.sender->problem(), ::testing::HasSubstr("recount: netlink: timed out"));
  EXPECT_EQ(h.sender->review(h.now), DrainVerdict::Wait);
}

TEST(KeepSender, DestroyedWhileDrainingSendsEnd) {
  Harness h;
  h.port.dump = {tcp(1)};
  (void)h.sender->hold(write("rtb-a"), h.now);
  (void)h.sender->on_ready(h.now);
  (void)h.sender->on_ack(h.now);
  h.sender.reset();
  EXPECT_THAT(h.port.calls,
              ElementsAre("open", "snapshot", "flows replace complete", "end", "close"));
}

}  // namespace
}  // namespace hanat::daemon::keep
