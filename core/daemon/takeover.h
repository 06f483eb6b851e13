// SPDX-License-Identifier: GPL-2.0-or-later
#pragma once
// DOC: core/daemon/takeover — takeover with state (DESIGN.md, "Connection survival"; issue
// #21, `[failover] stateful`): when this member claims the tables of a member that died, it
// first installs that member's replicated flows (replica_store.h) into its own conntrack
// table, translated to the address the zone's traffic leaves with here, and only then lets
// the route writes go to EC2.
//
// Why this order. Until a route moves, the dead member's flows send nothing here. Once it
// moves, their next packet arrives mid-stream: without an entry, conntrack creates a fresh
// one and the masquerade rule translates it to this host's own address and any free port —
// the far end sees a stranger and answers with a RST — and the later installation of that
// flow then fails (EEXIST: the original tuple exists). With the entry installed first, the
// packet continues with the dead NAT's public port, and with the zone's Elastic IP on the
// address the entry was installed to, the far end's answers reach it too: the same public
// address and port, and TCP's retransmission covers the gap. The Elastic IP is moved when the
// installation starts, beside it (AssociateAddress takes an EC2 round trip, 100-300 ms): a
// dead member cannot object, and without state it moves only after the route write, which
// would add that round trip to the time the answers are lost.
//
// Pure: time comes in as arguments, the kernel and EC2 are the caller's
// (core/daemon/node_takeover.cc; tests/unit/daemon/takeover_test.cc).
//
//   judge()             whether a claim is a stateful takeover
//   split_by_address()  which local address each flow continues on (its source's zone)
//   Install             the flows in chunks across loop turns, the claims held meanwhile,
//                       bounded by kHoldBound
//   ServedTables        when this host's own connections went on elsewhere (its entries
//                       are then bounded: netfilter/ct_install.h, bound_timeouts())

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "core/engine/types.h"
#include "netfilter/flow.h"

namespace hanat::daemon::takeover {

using Time = std::chrono::steady_clock::time_point;
using netfilter::ReplicatedFlow;

// Flows per chunk: one chunk per loop turn keeps the loop free for probes, the channel and
// EC2's answers. Measured 2026-12-03 on a 2-core machine at load ~7 (`netfilter_netns_test
// --gtest_filter=TakeoverNetns.ChunksOfKChunkFlowsStayWithinALoopTurn`): 10,000 flows in
// 49-60 ms, the slowest chunk of 1,000 7-13 ms; chunks of 2,000 took up to 49 ms.
inline constexpr size_t kChunk = 1000;
// How long the claims wait for the installation at most. A failover's outage is about
// detection (fall × interval, 600 ms at the defaults) plus the route write; holding the
// routes longer than a second to save connections would cost every other flow of the zone
// that long: past it the writes go and the installation continues (flows whose packets
// arrive before their entry are lost, as without state).
inline constexpr std::chrono::milliseconds kHoldBound{1000};

// ---- Whether a claim is a stateful takeover -----------------------------------------------

struct ClaimView {
  bool stateful = false;       // [failover] stateful
  std::string previous;        // the member the route points at now ("": not a member)
  bool previous_down = false;  // DOWN in this member's view
  // Nothing of it answers, not even its agent with "draining" (MemberSnapshot::silent): it
  // died. A member that drains or stops hands its tables over itself and keeps translating
  // (the connection-keeping handover); installing its flows here would take its ports.
  bool previous_silent = false;
  bool previous_steered = false;  // its handover's flows are steered back to it from here
  size_t replicated = 0;          // its flows in the replica store
};

enum class Verdict {
  Stateful,   // hold the claim, install the flows first
  Off,        // stateful = false, or not a claim of a member's route: as without state
  NotDead,    // the member is not DOWN and silent (a planned handover, or alive)
  Steered,    // its flows are steered back to it (a planned handover under way)
  NoReplica,  // nothing replicated of it (replication off on its side, or not yet)
};
[[nodiscard]] Verdict judge(const ClaimView& v);
[[nodiscard]] const char* to_string(Verdict v);

// ---- Which address each flow continues on -------------------------------------------------
//
// A member may translate flows of several zones (its own, and those it took over): each
// continues on the address that zone's Elastic IP goes to here, picked by the flow's source
// (the zone's subnet CIDRs, longest prefix). A flow of no such zone has no public address
// here to continue on and is counted, not installed.

struct AddressRoute {
  uint32_t net = 0;  // host byte order
  uint8_t prefix = 0;
  uint32_t address = 0;  // the local address the zone leaves with here
};

struct Group {
  uint32_t address = 0;
  std::vector<ReplicatedFlow> flows;
};

struct Split {
  std::vector<Group> groups;  // by address, ascending
  uint64_t unroutable = 0;
};

[[nodiscard]] Split split_by_address(const std::vector<ReplicatedFlow>& flows,
                                     const std::vector<AddressRoute>& routes);

// ---- The installation ---------------------------------------------------------------------

struct Counters {
  uint64_t flows = 0;  // replicated flows taken from the store
  uint64_t installed = 0;
  uint64_t collided = 0;    // the public port is this host's own (or EEXIST)
  uint64_t failed = 0;      // any other error, or a chunk that failed as a whole
  uint64_t unroutable = 0;  // no address here for its zone
};

class Install {
 public:
  struct Settings {
    size_t chunk = kChunk;
    std::chrono::milliseconds hold = kHoldBound;
  };
  struct Release {
    std::vector<engine::WriteRoute> writes;
    std::string why;  // empty: the installation finished in time
  };
  struct Chunk {
    uint32_t address = 0;
    std::vector<ReplicatedFlow> flows;
    bool first_of_address = false;  // read own_ports(address) before this one
  };

  Install(std::string member, Split split, Time now, Settings s);

  // A claim of one of the member's tables: held while installing (the bound counts from the
  // first hold), returned at once when the installation is over or the bound passed.
  [[nodiscard]] Release hold(engine::WriteRoute w, Time now);
  // The engine abandoned a write (AbandonWrite): dropped if held. Whether it was.
  bool cancel(engine::OpId op);
  // The next flows to install, or nullopt when every flow was tried.
  [[nodiscard]] std::optional<Chunk> next_chunk();
  // The outcome of the chunk last returned; releases the writes when it was the last.
  [[nodiscard]] Release chunk_done(uint64_t installed, uint64_t collided, uint64_t failed,
                                   Time now);
  // The kernel refused the chunk as a whole (socket, dump): its flows count as failed, the
  // installation stops, the writes go.
  [[nodiscard]] Release chunk_failed(const std::string& why, Time now);
  // At deadline(): the bound passed, the writes go (the installation continues).
  [[nodiscard]] Release tick(Time now);

  [[nodiscard]] std::optional<Time> deadline() const;
  [[nodiscard]] bool finished() const { return finished_; }  // every flow tried
  [[nodiscard]] bool released() const { return released_; }
  [[nodiscard]] size_t held() const { return held_.size(); }
  [[nodiscard]] const std::string& member() const { return member_; }
  [[nodiscard]] const Counters& counters() const { return counters_; }
  [[nodiscard]] const std::string& error() const { return error_; }
  [[nodiscard]] Time started() const { return started_; }
  // When every flow was tried (finished()).
  [[nodiscard]] std::optional<Time> finished_at() const { return finished_at_; }

 private:
  Release release(std::string why);

  std::string member_;
  Split split_;
  Settings settings_;
  Time started_;
  std::optional<Time> first_hold_;
  std::optional<Time> finished_at_;
  size_t group_ = 0;   // cursor: group index
  size_t offset_ = 0;  // ... and the next flow in it
  size_t in_chunk_ = 0;
  bool finished_ = false;
  bool released_ = false;
  std::string error_;
  std::vector<engine::WriteRoute> held_;
  Counters counters_;
};

// ---- When this host's own connections went on elsewhere ---------------------------------
//
// A peer that takes this host's tables with their flows continues its connections, and some
// end there: this host never sees their FIN, and the kernel keeps an ESTABLISHED entry five
// days after its last packet (nf_conntrack_tcp_timeout_established). Its own failure is one
// way its tables leave; others do not change its state: a cut of its private link (its own
// checks look outwards; the peer no longer hears it and takes its tables while it stays
// Active), a partition, an operator's route to a gateway, a kill (the next process finds
// the kernel's entries). Whatever moved them, two signs tell it: a route read-back shows a
// table that routed here routing elsewhere, or this host's claim of a table of its own zone
// succeeds (the engine writes only a route that points elsewhere: a failback, or the first
// claim after start-up). The host's recovery from its own failure needs no trigger of its
// own: it reclaims its tables.
class ServedTables {
 public:
  // A DescribeRouteTables answer; `self` are this host's instance and ENI ids. Returns the
  // first table that routed here at the previous read-back and routes elsewhere now ("").
  std::string observe(const std::vector<engine::ObservedTable>& tables,
                      const std::set<std::string>& self);
  // This host's claim of `table` was acknowledged: whether the table is of `own_zone` as
  // last read back (a peer's table taken over moves none of this host's connections).
  [[nodiscard]] bool claimed_own(const std::string& table, const std::string& own_zone) const;

 private:
  std::set<std::string> served_;  // routed here at the last read-back
  std::map<std::string, std::string> zones_;
};

}  // namespace hanat::daemon::takeover
