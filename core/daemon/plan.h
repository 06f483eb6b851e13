// SPDX-License-Identifier: GPL-2.0-or-later
#pragma once
// `hanatd plan`: what a daemon on this host would do now, computed from discovery alone and
// printed for a person to read before trusting the daemon with routes (like
// `terraform plan`). Pure: no I/O, so it is tested directly.

#include <string>
#include <vector>

#include "core/engine/types.h"

namespace hanat::daemon {

struct PlanInput {
  std::string self;                           // this host's instance id
  std::vector<engine::Member> members;        // as discovered (running members)
  std::vector<engine::ObservedTable> tables;  // current routes as described
  std::vector<std::string> destinations;      // managed destinations
  std::string fallback;                       // NAT gateway id, may be empty
};

struct PlannedWrite {
  std::string table, destination;
  engine::Target from, to;
};

struct Plan {
  std::vector<std::string> allocated;  // per table (same order as input): ENI/instance/nat/""
  std::vector<PlannedWrite> writes;    // claims this host would make now
  std::string text;                    // the human-readable report
};

// Assumes every discovered member is healthy (plan does not probe): the allocation is the
// one the group converges to when all members are up. Writes follow "claim, don't push":
// only tables allocated to this host whose current target differs.
Plan make_plan(const PlanInput& in);

}  // namespace hanat::daemon
