// SPDX-License-Identifier: GPL-2.0-or-later
#pragma once
// DOC: What an Auto Scaling target lifecycle state (IMDS
// `/latest/meta-data/autoscaling/target-lifecycle-state`) asks of hanatd. The documented
// values (Amazon EC2 Auto Scaling User Guide, "Retrieve the target lifecycle state through
// instance metadata") are InService, Standby, Detached, Terminated, Warmed:Stopped,
// Warmed:Running, Warmed:Hibernated and Warmed:Terminated. Every one but InService takes
// the instance out of service, so each starts a handover:
//   - Terminated, Warmed:Terminated, Detached: the instance leaves the group (terminated,
//     or no longer the Auto Scaling group's): hand the routes over, then exit, as on a
//     spot notice;
//   - Standby, Warmed:Stopped, Warmed:Running, Warmed:Hibernated: the instance stays (or
//     comes back from the warm pool later): drain, keep running, and undrain when the
//     target state is InService again.
// Pure: unit-tested in tests/unit/daemon/lifecycle_test.cc.

#include <string_view>

namespace hanat::daemon {

enum class LifecycleResponse {
  Serve,    // InService (or no state published: not in an Auto Scaling group)
  Leave,    // hand over and exit
  Drain,    // hand over, keep running
  Unknown,  // a value this version does not know: logged, nothing changes
};

[[nodiscard]] LifecycleResponse lifecycle_response(std::string_view target_state);
[[nodiscard]] const char* to_string(LifecycleResponse r);

}  // namespace hanat::daemon
