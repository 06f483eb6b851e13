// SPDX-License-Identifier: GPL-2.0-or-later
#pragma once
// DOC: The three Amazon EC2 Auto Scaling calls hanatd makes to release a lifecycle hook
// once its routes are handed over, shaped like the EC2 requests of ec2/api.h so that
// ec2::Client sends them (with ClientOptions::service "autoscaling" and the Auto Scaling
// API version: same Query protocol, same SigV4, another endpoint).
//   DescribeAutoScalingInstances  which group this instance belongs to, its lifecycle state
//   DescribeLifecycleHooks        the group's hooks (the terminating ones are completed)
//   CompleteLifecycleAction       CONTINUE: the instance may go now
// Replies are Auto Scaling's XML (<Member> lists, PascalCase names), parsed purely here.

#include <string>
#include <string_view>
#include <vector>

#include "core/base/result.h"
#include "ec2/api.h"

namespace hanat::ec2 {

inline constexpr std::string_view kAutoScalingApiVersion = "2011-01-01";
inline constexpr std::string_view kAutoScalingService = "autoscaling";

struct AutoScalingInstance {
  std::string instance_id;
  std::string group_name;
  std::string lifecycle_state;  // InService, Terminating:Wait, Warmed:Pending:Wait, ...
  std::string availability_zone;
};

struct DescribeAutoScalingInstancesOk {
  std::string request_id;
  std::vector<AutoScalingInstance> instances;
};

struct DescribeAutoScalingInstancesRequest {
  static constexpr std::string_view kAction = "DescribeAutoScalingInstances";
  using Ok = DescribeAutoScalingInstancesOk;
  std::vector<std::string> instance_ids;
  [[nodiscard]] Params params() const;
  [[nodiscard]] Bucket bucket() const { return Bucket::NonMutating; }
  [[nodiscard]] std::string write_key() const { return ""; }
  static core::Result<Ok, Ec2Error> parse(std::string_view xml);
};

struct LifecycleHook {
  std::string name;
  std::string group_name;
  std::string transition;  // autoscaling:EC2_INSTANCE_TERMINATING or ..._LAUNCHING
};

struct DescribeLifecycleHooksOk {
  std::string request_id;
  std::vector<LifecycleHook> hooks;
};

struct DescribeLifecycleHooksRequest {
  static constexpr std::string_view kAction = "DescribeLifecycleHooks";
  using Ok = DescribeLifecycleHooksOk;
  std::string group_name;
  [[nodiscard]] Params params() const;
  [[nodiscard]] Bucket bucket() const { return Bucket::NonMutating; }
  [[nodiscard]] std::string write_key() const { return ""; }
  static core::Result<Ok, Ec2Error> parse(std::string_view xml);
};

struct CompleteLifecycleActionRequest {
  static constexpr std::string_view kAction = "CompleteLifecycleAction";
  using Ok = SimpleOk;
  std::string group_name;
  std::string hook_name;
  std::string instance_id;
  std::string result = "CONTINUE";
  [[nodiscard]] Params params() const;
  [[nodiscard]] Bucket bucket() const { return Bucket::Mutating; }
  [[nodiscard]] std::string write_key() const { return "hook:" + hook_name + ":" + instance_id; }
  static core::Result<Ok, Ec2Error> parse(std::string_view xml);
};

// Every Auto Scaling action the client can call, for the IAM policy check.
[[nodiscard]] const std::vector<std::string_view>& autoscaling_actions();

}  // namespace hanat::ec2
