// SPDX-License-Identifier: GPL-2.0-or-later
#pragma once
// DOC: core/daemon/keep_plan — the pure decisions of the connection-keeping handover
// (DESIGN.md, "Connection survival"; issue #20) that the node's wiring follows. No I/O, no
// clock reads: unit-tested in tests/unit/daemon/keep_plan_test.cc.
//
//   handover_sources()  which flows the leaving member sends: the sources of the tables it
//                       hands over
//   choose_steer_slot() the taking member's mark, route table and rule priority per peer
//   steer_verdict()     when the taking member drops a peer's steering
//   drain_verdict()     when the leaving member, its routes handed over, may exit
//   stop_timeout()      what systemd's TimeoutStopSec must cover

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace hanat::daemon::keep {

// ---- Which flows the leaving member sends ---------------------------------------------------
//
// The flows of the private hosts whose packets the handed-over tables route: the CIDRs of the
// subnets associated with those tables, as discovery read them (DescribeRouteTables'
// associations, DescribeSubnets' CidrBlock). Sending a narrower set would leave flows of a
// moved zone unsteered (reset); a wider one steers flows whose route did not move — harmless
// (B never sees their packets) but it spends the set's room. When a handed-over table has no
// known subnet CIDR (a table tagged with hanat:zone and no association yet, or a subnet
// discovery could not describe), its sources are unknown and the whole `[nat] source_cidrs`
// is sent instead; empty there means every source, as the masquerade rule does (should_carry()
// reads an empty list the same way).
struct Sources {
  std::vector<std::string> cidrs;  // sorted, unique; empty = every source
  bool fallback = false;           // [nat] source_cidrs (or everything) was used
};
[[nodiscard]] Sources handover_sources(
    const std::vector<std::string>& tables,
    const std::map<std::string, std::vector<std::string>>& table_cidrs,
    const std::vector<std::string>& nat_source_cidrs);

// ---- The taking member's steering slot per peer ---------------------------------------------
//
// Each peer whose flows this member steers needs its own fwmark, routing table and fwmark
// rule (netfilter/steer_batch.h, SteerSpec). Slot i (0 <= i < kMaxSteerSlots) is
//   mark          kSteerMarkBase + i      (0x68610000 = "ha": a value of its own, clear of the
//                                          low bits kube-proxy (0x4000, 0x8000) and the VPC
//                                          CNI (0x80) use)
//   route table   kSteerTableBase + i     (far above the small numbers operators and
//                                          ec2-net-utils (10000 + device index) use, and never
//                                          253-255)
//   rule priority kSteerRulePriorityBase + i (400: before the VPC CNI's rules at 512/1024/1536,
//                                          ec2-net-utils' per-interface rules and "main" at
//                                          32766, after "local" at 0)
// The slot is the lowest one no installed peer holds, and a peer keeps its slot as long as its
// steering stays installed: a re-install for the same peer reuses it, so a mark never changes
// under flows already marked. Two handovers to one member at once (two peers leaving) get two
// slots; a peer's slot is free again after remove().
inline constexpr uint32_t kMaxSteerSlots = 64;
inline constexpr uint32_t kSteerMarkBase = 0x68610000;
inline constexpr uint32_t kSteerTableBase = 0x68610000;
inline constexpr uint32_t kSteerRulePriorityBase = 400;

struct SteerSlot {
  uint32_t index = 0;
  uint32_t mark = 0;
  uint32_t route_table = 0;
  uint32_t rule_priority = 0;
  friend bool operator==(const SteerSlot&, const SteerSlot&) = default;
};
[[nodiscard]] SteerSlot steer_slot(uint32_t index);
// `held`: peer (private address, host order) -> slot index of the installed steerings.
// `peer`'s own slot when it holds one; else the lowest free; nullopt when all are taken.
[[nodiscard]] std::optional<SteerSlot> choose_steer_slot(uint32_t peer,
                                                         const std::map<uint32_t, uint32_t>& held);

// ---- When the taking member drops a peer's steering -----------------------------------------
struct PeerView {
  bool member = true;        // still in the group (not terminated, stopped, untagged)
  bool down = false;         // DOWN in this member's view (fall threshold reached)
  bool ended = false;        // the peer sent the channel's end: its drain is over
  size_t held = 0;           // flows held for it (the FlowTable after expiry)
  bool channel_open = true;  // its channel connection is still up
};
enum class SteerVerdict {
  Keep,
  Ended,    // the peer ended the handover
  Down,     // the peer is DOWN: its translations are gone, steering only blackholes
  Left,     // the peer left the group
  Drained,  // nothing held and the peer's channel closed: no flow left to steer
};
// Drop as soon as steering can no longer help: a peer that is DOWN or gone holds no
// translation (its flows are lost, no worse than without the handover), an ended or empty
// handover has nothing left. A closed channel with flows held is kept: the peer may only have
// restarted its connection, and each flow expires on its own timeout (FlowTable).
[[nodiscard]] SteerVerdict steer_verdict(const PeerView& p);
[[nodiscard]] const char* to_string(SteerVerdict v);

// ---- When the leaving member exits ---------------------------------------------------------
struct DrainView {
  size_t flows_left = 0;                 // flows still carried (dump + events)
  std::chrono::milliseconds elapsed{0};  // since the routes were handed over
  std::chrono::milliseconds flow_drain{300000};
  std::optional<std::chrono::milliseconds> deadline{};  // an outer bound (spot notice, ASG hook)
  bool forced = false;  // a second SIGTERM, or a shutdown that cannot wait
};
enum class DrainVerdict { Wait, NoFlows, FlowDrain, Deadline, Forced };
[[nodiscard]] DrainVerdict drain_verdict(const DrainView& d);
[[nodiscard]] const char* to_string(DrainVerdict v);

// How long the leaving member waits for the taker's ack of its snapshot before it writes the
// routes anyway (the flows not yet installed are reset, as without the handover).
inline constexpr std::chrono::milliseconds kAckWait{500};

// ---- systemd's stop timeout ----------------------------------------------------------------
//
// `systemctl stop` sends SIGTERM and waits TimeoutStopSec before SIGKILL. The stop must cover
// the route handover (failover.handover_timeout), the flows' drain (handover.flow_drain) and
// a margin for the exit itself: 10 s + 5 min + 20 s = 330 s at the defaults. The unit's
// TimeoutStopSec (packaging/systemd/hanat.service) must be at least this wherever a leaving
// member waits for its flows, and an operator who raises flow_drain raises it with a drop-in.
// A stop that must be quicker sends a second SIGTERM, which ends the drain.
inline constexpr std::chrono::milliseconds kStopMargin{20000};
[[nodiscard]] std::chrono::milliseconds stop_timeout(std::chrono::milliseconds handover_timeout,
                                                     std::chrono::milliseconds flow_drain);

}  // namespace hanat::daemon::keep
