// SPDX-License-Identifier: GPL-2.0-or-later
#pragma once
// DOC: core/daemon/floating_eni decides what to do next with the floating ENI
// (failover.floating_eni), from what EC2 and the engine say. Pure: no clock, no I/O, so
// every case is a unit test (tests/unit/daemon/floating_eni_test.cc); node_floating.cc
// reads EC2, calls decide_floating() and carries the step out.
//
// Which member it follows: every member whose configuration names the ENI wants it; the
// member that holds it keeps it (no preemption, no failback: moving an ENI cuts what uses
// its addresses for the few seconds EC2 takes to detach and attach). Another member takes
// it only from a holder that cannot be serving:
//   - a holder that EC2 shows stopped, stopping, shutting-down or terminated (a stopped
//     instance keeps its ENIs until they are detached: EC2 User Guide, "Network interface
//     attachment"); at once;
//   - a holder that is a member of the group and has been DOWN, silent on every probe kind
//     and path, for failover.floating_eni_takeover_after (a hung instance answers neither
//     probes nor a normal detach, which is why the detach is forced). A member DOWN because
//     its agent says its data plane failed is alive and keeps the ENI;
//   - never a running instance outside the group.
// An ENI attaches only to an instance in its own Availability Zone (EC2 answers
// InvalidParameterValue otherwise), so a wrong zone is reported and never attempted.

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace hanat::daemon {

struct FloatingView {
  std::string eni_id;
  std::string self_instance;
  std::string self_zone;
  // The ENI as DescribeNetworkInterfaces shows it.
  std::string eni_zone;
  std::string status;             // available | in-use | attaching | detaching
  std::string holder;             // attachment's instance id; "" when not attached
  std::string attachment_status;  // attaching | attached | detaching | detached
  // The holder as the engine sees it (meaningful when holder_is_member). Before the engine
  // runs the members are not known: a running holder is then waited for, not judged.
  bool members_known = true;
  bool holder_is_member = false;
  bool holder_down = false;          // health DOWN
  bool holder_reports_down = false;  // DOWN because its agent says so (it answers)
  std::optional<std::chrono::milliseconds> holder_down_for;
  // The holder's EC2 state (DescribeInstances), when it was read.
  std::optional<std::string> holder_state;
  std::chrono::milliseconds takeover_after{10000};
};

enum class FloatingStep {
  Attached,        // attached to this instance
  WrongZone,       // in another Availability Zone: never attachable here
  Attach,          // available: attach it (at a free device index)
  ForceDetach,     // take it from a holder that cannot be serving
  DescribeHolder,  // need the holder's EC2 state first
  Wait,            // held by someone who keeps it, or a change in progress
};

struct FloatingDecision {
  FloatingStep step = FloatingStep::Wait;
  std::string why;  // for status and the log, names the ENI and the holder
};

[[nodiscard]] FloatingDecision decide_floating(const FloatingView& v);

// The lowest device index >= 1 that no attachment of this instance uses (0 is the primary
// ENI's). EC2 refuses an attachment at a used index (InvalidParameterValue).
[[nodiscard]] int free_device_index(const std::vector<int>& used);

[[nodiscard]] const char* to_string(FloatingStep s);

}  // namespace hanat::daemon
