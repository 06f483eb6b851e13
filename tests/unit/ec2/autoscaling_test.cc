// SPDX-License-Identifier: GPL-2.0-or-later
// The Auto Scaling calls of ec2/autoscaling.h: parameters and replies in the shapes of the
// Amazon EC2 Auto Scaling API Reference (Query API, version 2011-01-01).
#include "ec2/autoscaling.h"

#include <gtest/gtest.h>

#include "ec2/client.h"

namespace hanat::ec2 {
namespace {

TEST(AutoScaling, CompleteLifecycleActionParams) {
  CompleteLifecycleActionRequest r;
  r.group_name = "nat-asg";
  r.hook_name = "drain";
  r.instance_id = "i-0123456789abcdef0";
  EXPECT_EQ(
      r.params().encode(),
      "Action=CompleteLifecycleAction&Version=2011-01-01&AutoScalingGroupName=nat-asg&"
      "LifecycleHookName=drain&InstanceId=i-0123456789abcdef0&LifecycleActionResult=CONTINUE");
  EXPECT_EQ(r.bucket(), Bucket::Mutating);
}

TEST(AutoScaling, DescribeAutoScalingInstancesParamsAndReply) {
  DescribeAutoScalingInstancesRequest r;
  r.instance_ids = {"i-1"};
  EXPECT_EQ(r.params().encode(),
            "Action=DescribeAutoScalingInstances&Version=2011-01-01&InstanceIds.member.1=i-1");
  auto ok = DescribeAutoScalingInstancesRequest::parse(
      R"(<DescribeAutoScalingInstancesResponse xmlns="http://autoscaling.amazonaws.com/doc/2011-01-01/">
  <DescribeAutoScalingInstancesResult>
    <AutoScalingInstances>
      <member>
        <HealthStatus>HEALTHY</HealthStatus>
        <AutoScalingGroupName>nat-asg</AutoScalingGroupName>
        <AvailabilityZone>eu-west-1a</AvailabilityZone>
        <InstanceId>i-1</InstanceId>
        <LifecycleState>Terminating:Wait</LifecycleState>
      </member>
    </AutoScalingInstances>
  </DescribeAutoScalingInstancesResult>
  <ResponseMetadata><RequestId>req-1</RequestId></ResponseMetadata>
</DescribeAutoScalingInstancesResponse>)");
  ASSERT_TRUE(ok) << ok.error().describe();
  EXPECT_EQ(ok->request_id, "req-1");
  ASSERT_EQ(ok->instances.size(), 1u);
  EXPECT_EQ(ok->instances[0].group_name, "nat-asg");
  EXPECT_EQ(ok->instances[0].lifecycle_state, "Terminating:Wait");
  EXPECT_EQ(ok->instances[0].availability_zone, "eu-west-1a");
}

TEST(AutoScaling, DescribeLifecycleHooksReply) {
  auto ok = DescribeLifecycleHooksRequest::parse(
      R"(<DescribeLifecycleHooksResponse xmlns="http://autoscaling.amazonaws.com/doc/2011-01-01/">
  <DescribeLifecycleHooksResult><LifecycleHooks>
    <member><LifecycleHookName>drain</LifecycleHookName><AutoScalingGroupName>nat-asg</AutoScalingGroupName>
      <LifecycleTransition>autoscaling:EC2_INSTANCE_TERMINATING</LifecycleTransition><HeartbeatTimeout>3600</HeartbeatTimeout></member>
    <member><LifecycleHookName>boot</LifecycleHookName><AutoScalingGroupName>nat-asg</AutoScalingGroupName>
      <LifecycleTransition>autoscaling:EC2_INSTANCE_LAUNCHING</LifecycleTransition></member>
  </LifecycleHooks></DescribeLifecycleHooksResult>
  <ResponseMetadata><RequestId>req-2</RequestId></ResponseMetadata>
</DescribeLifecycleHooksResponse>)");
  ASSERT_TRUE(ok) << ok.error().describe();
  ASSERT_EQ(ok->hooks.size(), 2u);
  EXPECT_EQ(ok->hooks[0].name, "drain");
  EXPECT_EQ(ok->hooks[0].transition, "autoscaling:EC2_INSTANCE_TERMINATING");
  EXPECT_EQ(ok->hooks[1].transition, "autoscaling:EC2_INSTANCE_LAUNCHING");
}

TEST(AutoScaling, ErrorsAndForeignDocuments) {
  // No action pending for the instance: Auto Scaling's ValidationError.
  auto e = CompleteLifecycleActionRequest::parse(
      R"(<ErrorResponse xmlns="http://autoscaling.amazonaws.com/doc/2011-01-01/"><Error><Type>Sender</Type>
<Code>ValidationError</Code><Message>No active Lifecycle Action found with instance ID i-1</Message>
</Error><RequestId>r</RequestId></ErrorResponse>)");
  ASSERT_FALSE(e);
  EXPECT_EQ(e.error().code, "ValidationError");
  auto bad = CompleteLifecycleActionRequest::parse("<DescribeRouteTablesResponse/>");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().kind, ErrorKind::BadReply);
  EXPECT_FALSE(CompleteLifecycleActionRequest::parse("not xml"));
  auto ok = CompleteLifecycleActionRequest::parse(
      "<CompleteLifecycleActionResponse><CompleteLifecycleActionResult/><ResponseMetadata>"
      "<RequestId>r3</RequestId></ResponseMetadata></CompleteLifecycleActionResponse>");
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->request_id, "r3");
}

TEST(AutoScaling, DefaultEndpoint) {
  EXPECT_EQ(default_endpoint("eu-west-1", kAutoScalingService),
            "https://autoscaling.eu-west-1.amazonaws.com/");
  EXPECT_EQ(default_endpoint("cn-north-1", kAutoScalingService),
            "https://autoscaling.cn-north-1.amazonaws.com.cn/");
  EXPECT_EQ(default_endpoint("eu-west-1"), "https://ec2.eu-west-1.amazonaws.com/");
}

}  // namespace
}  // namespace hanat::ec2
