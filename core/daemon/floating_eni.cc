// SPDX-License-Identifier: GPL-2.0-or-later
#include "core/daemon/floating_eni.h"

#include <algorithm>

namespace hanat::daemon {

namespace {

bool not_serving(const std::string& state) {
  return state == "stopped" || state == "stopping" || state == "shutting-down" ||
         state == "terminated";
}

std::string seconds_text(std::chrono::milliseconds d) {
  auto tenths = d.count() / 100;
  std::string s = std::to_string(tenths / 10);
  if (tenths % 10 != 0) s += "." + std::to_string(tenths % 10);
  return s + " s";
}

}  // namespace

FloatingDecision decide_floating(const FloatingView& v) {
  const std::string eni = "floating ENI " + v.eni_id;
  if (!v.eni_zone.empty() && !v.self_zone.empty() && v.eni_zone != v.self_zone) {
    return {FloatingStep::WrongZone,
            eni + " is in " + v.eni_zone + ", this instance (" + v.self_instance + ") in " +
                v.self_zone +
                ": EC2 attaches an ENI only to an instance in its own Availability Zone"};
  }
  if (v.holder.empty()) {
    if (v.status == "available") return {FloatingStep::Attach, eni + " is available"};
    return {FloatingStep::Wait, eni + " is " + (v.status.empty() ? "in transition" : v.status)};
  }
  if (v.holder == v.self_instance) {
    if (v.attachment_status == "detaching" || v.attachment_status == "detached") {
      return {FloatingStep::Wait, eni + " is being detached from this instance"};
    }
    return {FloatingStep::Attached, eni + " is attached to this instance"};
  }
  if (v.attachment_status == "detaching" || v.attachment_status == "detached") {
    return {FloatingStep::Wait, eni + " is being detached from " + v.holder};
  }
  if (v.holder_state && not_serving(*v.holder_state)) {
    return {FloatingStep::ForceDetach,
            eni + " is attached to " + v.holder + ", which is " + *v.holder_state};
  }
  if (v.holder_is_member) {
    if (!v.holder_down) {
      return {FloatingStep::Wait, eni + ": waiting for " + v.holder + " to release it (it is up)"};
    }
    if (v.holder_reports_down) {
      return {FloatingStep::Wait, eni + ": waiting for " + v.holder +
                                      " to release it (its agent answers: it is alive)"};
    }
    auto down = v.holder_down_for.value_or(std::chrono::milliseconds(0));
    if (down >= v.takeover_after) {
      return {FloatingStep::ForceDetach, eni + " is attached to " + v.holder +
                                             ", DOWN (silent on every probe) for " +
                                             seconds_text(down)};
    }
    return {FloatingStep::Wait, eni + ": waiting for " + v.holder + " to release it (DOWN for " +
                                    seconds_text(down) + " of " + seconds_text(v.takeover_after) +
                                    ")"};
  }
  if (!v.holder_state) {
    return {FloatingStep::DescribeHolder, eni + " is attached to " + v.holder + ", not a member"};
  }
  if (!v.members_known) {
    return {FloatingStep::Wait, eni + ": waiting for " + v.holder + " to release it (a " +
                                    *v.holder_state +
                                    " instance; the group's members are not "
                                    "read yet)"};
  }
  return {FloatingStep::Wait, eni + ": waiting for " + v.holder + " to release it (a " +
                                  *v.holder_state +
                                  " instance outside the group: never taken from it)"};
}

int free_device_index(const std::vector<int>& used) {
  int i = 1;
  while (std::find(used.begin(), used.end(), i) != used.end()) ++i;
  return i;
}

const char* to_string(FloatingStep s) {
  switch (s) {
    case FloatingStep::Attached:
      return "attached";
    case FloatingStep::WrongZone:
      return "wrong-zone";
    case FloatingStep::Attach:
      return "attach";
    case FloatingStep::ForceDetach:
      return "force-detach";
    case FloatingStep::DescribeHolder:
      return "describe-holder";
    case FloatingStep::Wait:
      return "wait";
  }
  return "wait";
}

}  // namespace hanat::daemon
