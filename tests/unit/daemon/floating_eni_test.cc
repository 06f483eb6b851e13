// SPDX-License-Identifier: GPL-2.0-or-later
#include "core/daemon/floating_eni.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace hanat::daemon {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;

FloatingView view() {
  FloatingView v;
  v.eni_id = "eni-float";
  v.self_instance = "i-self";
  v.self_zone = "eu-west-1a";
  v.eni_zone = "eu-west-1a";
  v.status = "in-use";
  v.holder = "i-old";
  v.attachment_status = "attached";
  v.takeover_after = 10s;
  return v;
}

TEST(FloatingEni, WrongZoneNamesTheEniItsZoneAndOurs) {
  FloatingView v = view();
  v.eni_zone = "eu-west-1b";
  v.holder.clear();
  v.status = "available";
  auto d = decide_floating(v);
  EXPECT_EQ(d.step, FloatingStep::WrongZone);
  EXPECT_EQ(d.why,
            "floating ENI eni-float is in eu-west-1b, this instance (i-self) in eu-west-1a: EC2 "
            "attaches an ENI only to an instance in its own Availability Zone");
}

TEST(FloatingEni, AvailableIsAttachedAndOursIsKept) {
  FloatingView v = view();
  v.holder.clear();
  v.status = "available";
  EXPECT_EQ(decide_floating(v).step, FloatingStep::Attach);
  v.status = "detaching";
  EXPECT_EQ(decide_floating(v).step, FloatingStep::Wait) << "EC2 still detaching it";
  v = view();
  v.holder = "i-self";
  EXPECT_EQ(decide_floating(v).step, FloatingStep::Attached);
}

TEST(FloatingEni, AMemberThatIsUpOrAnswersKeepsIt) {
  FloatingView v = view();
  v.holder_is_member = true;
  auto d = decide_floating(v);
  EXPECT_EQ(d.step, FloatingStep::Wait);
  EXPECT_THAT(d.why, HasSubstr("waiting for i-old to release it"));
  // DOWN because its agent reports its data plane failed: alive, never force-detached,
  // however long.
  v.holder_down = true;
  v.holder_reports_down = true;
  v.holder_down_for = 1h;
  EXPECT_EQ(decide_floating(v).step, FloatingStep::Wait);
}

TEST(FloatingEni, ASilentMemberIsForceDetachedAfterTheBound) {
  FloatingView v = view();
  v.holder_is_member = true;
  v.holder_down = true;
  v.holder_down_for = 9900ms;
  auto d = decide_floating(v);
  EXPECT_EQ(d.step, FloatingStep::Wait);
  EXPECT_THAT(d.why, HasSubstr("DOWN for 9.9 s of 10 s"));
  v.holder_down_for = 10s;
  d = decide_floating(v);
  EXPECT_EQ(d.step, FloatingStep::ForceDetach);
  EXPECT_THAT(d.why, HasSubstr("i-old, DOWN (silent on every probe) for 10 s"));
}

TEST(FloatingEni, AStoppedHolderLosesItAtOnceARunningStrangerNever) {
  FloatingView v = view();
  EXPECT_EQ(decide_floating(v).step, FloatingStep::DescribeHolder) << "not a member: ask EC2";
  for (const char* s : {"stopped", "stopping", "shutting-down", "terminated"}) {
    v.holder_state = s;
    auto d = decide_floating(v);
    EXPECT_EQ(d.step, FloatingStep::ForceDetach) << s;
    EXPECT_THAT(d.why, HasSubstr(std::string("which is ") + s));
  }
  v.holder_state = "running";
  auto d = decide_floating(v);
  EXPECT_EQ(d.step, FloatingStep::Wait);
  EXPECT_THAT(d.why, HasSubstr("outside the group: never taken from it"));
  // Before the engine runs nobody is known as a member: a running holder is waited for.
  v.members_known = false;
  d = decide_floating(v);
  EXPECT_EQ(d.step, FloatingStep::Wait);
  EXPECT_THAT(d.why, HasSubstr("members are not read yet"));
  v.holder_state = "stopped";
  EXPECT_EQ(decide_floating(v).step, FloatingStep::ForceDetach) << "stopped needs no members";
  v.members_known = true;
  // A member EC2 shows stopped (read before discovery dropped it) goes at once too.
  v.holder_is_member = true;
  v.holder_state = "stopped";
  EXPECT_EQ(decide_floating(v).step, FloatingStep::ForceDetach);
}

TEST(FloatingEni, DetachInProgressIsWaitedFor) {
  FloatingView v = view();
  v.attachment_status = "detaching";
  v.holder_state = "stopped";
  EXPECT_EQ(decide_floating(v).step, FloatingStep::Wait) << "no second detach";
}

TEST(FloatingEni, FreeDeviceIndexSkipsThePrimaryAndUsedOnes) {
  EXPECT_EQ(free_device_index({0}), 1);
  EXPECT_EQ(free_device_index({0, 1}), 2);
  EXPECT_EQ(free_device_index({0, 2, 1, 4}), 3);
  EXPECT_EQ(free_device_index({}), 1);
}

}  // namespace
}  // namespace hanat::daemon
