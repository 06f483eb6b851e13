// SPDX-License-Identifier: GPL-2.0-or-later
#include "ec2/autoscaling.h"

#include "ec2/reply.h"
#include "ec2/xml.h"

namespace hanat::ec2 {
namespace {

using core::Result;
using core::Unexpected;

std::string request_id(const XmlNode& root) {
  const XmlNode* m = root.child("ResponseMetadata");
  return m != nullptr ? m->text_of("RequestId") : "";
}

// Auto Scaling lists are <Name><member>...</member>...</Name>.
std::vector<const XmlNode*> members(const XmlNode* parent, std::string_view list) {
  std::vector<const XmlNode*> out;
  const XmlNode* l = parent != nullptr ? parent->child(list) : nullptr;
  if (l == nullptr) return out;
  for (const auto& c : l->children)
    if (c.name == "member") out.push_back(&c);
  return out;
}

Params autoscaling_params(std::string_view action) {
  Params p(action);
  p.set("Version", std::string(kAutoScalingApiVersion));
  return p;
}

}  // namespace

Params DescribeAutoScalingInstancesRequest::params() const {
  Params p = autoscaling_params(kAction);
  for (size_t i = 0; i < instance_ids.size(); ++i)
    p.add("InstanceIds.member." + std::to_string(i + 1), instance_ids[i]);
  return p;
}

Result<DescribeAutoScalingInstancesOk, Ec2Error> DescribeAutoScalingInstancesRequest::parse(
    std::string_view xml) {
  auto root = parse_response(kAction, xml);
  if (!root) return Unexpected(std::move(root).error());
  DescribeAutoScalingInstancesOk ok;
  ok.request_id = request_id(*root);
  for (const XmlNode* m :
       members(root->child("DescribeAutoScalingInstancesResult"), "AutoScalingInstances")) {
    ok.instances.push_back({m->text_of("InstanceId"), m->text_of("AutoScalingGroupName"),
                            m->text_of("LifecycleState"), m->text_of("AvailabilityZone")});
  }
  return ok;
}

Params DescribeLifecycleHooksRequest::params() const {
  Params p = autoscaling_params(kAction);
  p.add("AutoScalingGroupName", group_name);
  return p;
}

Result<DescribeLifecycleHooksOk, Ec2Error> DescribeLifecycleHooksRequest::parse(
    std::string_view xml) {
  auto root = parse_response(kAction, xml);
  if (!root) return Unexpected(std::move(root).error());
  DescribeLifecycleHooksOk ok;
  ok.request_id = request_id(*root);
  for (const XmlNode* m : members(root->child("DescribeLifecycleHooksResult"), "LifecycleHooks")) {
    ok.hooks.push_back({m->text_of("LifecycleHookName"), m->text_of("AutoScalingGroupName"),
                        m->text_of("LifecycleTransition")});
  }
  return ok;
}

Params CompleteLifecycleActionRequest::params() const {
  Params p = autoscaling_params(kAction);
  p.add("AutoScalingGroupName", group_name);
  p.add("LifecycleHookName", hook_name);
  p.add("InstanceId", instance_id);
  p.add("LifecycleActionResult", result);
  return p;
}

Result<SimpleOk, Ec2Error> CompleteLifecycleActionRequest::parse(std::string_view xml) {
  auto root = parse_response(kAction, xml);
  if (!root) return Unexpected(std::move(root).error());
  return SimpleOk{request_id(*root)};
}

const std::vector<std::string_view>& autoscaling_actions() {
  static const std::vector<std::string_view> kActions = {
      DescribeAutoScalingInstancesRequest::kAction,
      DescribeLifecycleHooksRequest::kAction,
      CompleteLifecycleActionRequest::kAction,
  };
  return kActions;
}

}  // namespace hanat::ec2
