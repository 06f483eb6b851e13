// SPDX-License-Identifier: GPL-2.0-or-later
// conf/iam-policy.json is least privilege for exactly what the EC2 client can call:
// the set of ec2:* actions it allows equals ec2::all_actions(), its autoscaling:* actions
// equal ec2::autoscaling_actions(), and every mutating action is confined to resources
// tagged hanat:group (ec2:ResourceTag, autoscaling:ResourceTag on the Auto Scaling group).
// Describe* calls cannot be resource-scoped in EC2 or Auto Scaling (the Service
// Authorization Reference lists no resource type for them), so they are the only actions
// allowed on "*".

#include <gtest/gtest.h>
#include <jansson.h>

#include <algorithm>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "ec2/api.h"
#include "ec2/autoscaling.h"

namespace {

using JsonPtr = std::unique_ptr<json_t, decltype(&json_decref)>;

struct Statement {
  std::string sid;
  std::vector<std::string> actions;
  std::vector<std::string> resources;
  std::string group_condition;    // StringEquals <service>:ResourceTag/hanat:group, or empty
  std::string condition_service;  // "ec2" or "autoscaling": whose ResourceTag key it is
  bool has_other_keys = false;    // NotAction, NotResource, Deny...
};

std::vector<std::string> strings_of(json_t* v) {
  std::vector<std::string> out;
  if (json_is_string(v)) {
    out.emplace_back(json_string_value(v));
  } else if (json_is_array(v)) {
    size_t i = 0;
    json_t* e = nullptr;
    json_array_foreach(v, i, e) {
      if (json_is_string(e)) out.emplace_back(json_string_value(e));
    }
  }
  return out;
}

std::vector<Statement> load_policy() {
  json_error_t err{};
  JsonPtr root(json_load_file(HANAT_IAM_POLICY, 0, &err), &json_decref);
  EXPECT_NE(root, nullptr) << HANAT_IAM_POLICY << ":" << err.line << ": " << err.text;
  std::vector<Statement> out;
  if (!root) return out;
  EXPECT_STREQ(json_string_value(json_object_get(root.get(), "Version")), "2012-10-17");
  json_t* stmts = json_object_get(root.get(), "Statement");
  EXPECT_TRUE(json_is_array(stmts)) << "Statement must be an array";
  size_t i = 0;
  json_t* s = nullptr;
  json_array_foreach(stmts, i, s) {
    Statement st;
    if (json_t* sid = json_object_get(s, "Sid")) st.sid = json_string_value(sid);
    const char* effect = json_string_value(json_object_get(s, "Effect"));
    st.has_other_keys = effect == nullptr || std::string(effect) != "Allow" ||
                        json_object_get(s, "NotAction") != nullptr ||
                        json_object_get(s, "NotResource") != nullptr;
    st.actions = strings_of(json_object_get(s, "Action"));
    st.resources = strings_of(json_object_get(s, "Resource"));
    json_t* eq = json_object_get(json_object_get(s, "Condition"), "StringEquals");
    for (const char* key : {"ec2:ResourceTag/hanat:group", "autoscaling:ResourceTag/hanat:group"}) {
      if (json_t* g = json_object_get(eq, key); json_is_string(g)) {
        st.group_condition = json_string_value(g);
        st.condition_service = std::string(key).substr(0, std::string(key).find(':'));
      }
    }
    out.push_back(std::move(st));
  }
  return out;
}

bool is_read_only(const std::string& action) {
  return action.rfind("ec2:Describe", 0) == 0 || action.rfind("autoscaling:Describe", 0) == 0;
}

std::string service_of(const std::string& action) {
  return action.substr(0, action.find(':'));
}

TEST(IamPolicy, AllowsExactlyTheActionsTheClientCalls) {
  std::set<std::string> in_policy;
  for (const auto& st : load_policy()) {
    for (const auto& a : st.actions) {
      EXPECT_EQ(a.find('*'), std::string::npos) << "wildcard action " << a << " in " << st.sid;
      EXPECT_TRUE(a.rfind("ec2:", 0) == 0 || a.rfind("autoscaling:", 0) == 0)
          << "action of another service " << a << " in " << st.sid;
      EXPECT_TRUE(in_policy.insert(a).second) << a << " appears twice";
    }
  }
  std::set<std::string> client;
  for (auto a : hanat::ec2::all_actions()) client.insert("ec2:" + std::string(a));
  ASSERT_EQ(client.size(), 21u);
  for (auto a : hanat::ec2::autoscaling_actions()) client.insert("autoscaling:" + std::string(a));
  ASSERT_EQ(client.size(), 24u);
  for (const auto& a : client) {
    EXPECT_TRUE(in_policy.contains(a)) << "the client calls " << a << " but the policy lacks it";
  }
  for (const auto& a : in_policy) {
    EXPECT_TRUE(client.contains(a)) << "the policy allows " << a << " which the client never calls";
  }
}

TEST(IamPolicy, OnlyAllowStatementsWithoutNegation) {
  for (const auto& st : load_policy()) {
    EXPECT_FALSE(st.has_other_keys) << st.sid << ": only plain Allow/Action/Resource is expected";
  }
}

TEST(IamPolicy, EveryMutatingActionIsConfinedToTheGroupTag) {
  int mutating = 0;
  for (const auto& st : load_policy()) {
    bool any_mutating = false;
    for (const auto& a : st.actions) any_mutating = any_mutating || !is_read_only(a);
    if (!any_mutating) continue;
    ++mutating;
    EXPECT_EQ(st.group_condition, "REPLACE-WITH-GROUP")
        << st.sid << ": mutating actions need StringEquals <service>:ResourceTag/hanat:group";
    ASSERT_FALSE(st.resources.empty()) << st.sid;
    for (const auto& r : st.resources) {
      EXPECT_NE(r, "*") << st.sid << ": mutating actions must name resource types";
      EXPECT_EQ(r.rfind("arn:aws:" + st.condition_service + ":", 0), 0u) << st.sid << ": " << r;
    }
    for (const auto& a : st.actions) {
      EXPECT_FALSE(is_read_only(a)) << st.sid << ": keep " << a << " in the Describe statement";
      EXPECT_EQ(service_of(a), st.condition_service)
          << st.sid << ": " << a << " needs its own service's ResourceTag condition";
    }
  }
  EXPECT_GE(mutating, 1);
}

TEST(IamPolicy, RouteWritesAreScopedToRouteTables) {
  std::map<std::string, std::vector<std::string>> resources_of;
  for (const auto& st : load_policy()) {
    for (const auto& a : st.actions) resources_of[a] = st.resources;
  }
  for (const char* a : {"ec2:CreateRoute", "ec2:ReplaceRoute", "ec2:DeleteRoute"}) {
    EXPECT_EQ(resources_of[a], std::vector<std::string>{"arn:aws:ec2:*:*:route-table/*"}) << a;
  }
  for (const char* a : {"ec2:StopInstances", "ec2:TerminateInstances"}) {
    EXPECT_EQ(resources_of[a], std::vector<std::string>{"arn:aws:ec2:*:*:instance/*"}) << a;
  }
}

TEST(IamPolicy, ReadOnlyActionsAreTheOnlyOnesOnEveryResource) {
  for (const auto& st : load_policy()) {
    bool star = std::find(st.resources.begin(), st.resources.end(), "*") != st.resources.end();
    if (!star) continue;
    for (const auto& a : st.actions) EXPECT_TRUE(is_read_only(a)) << a << " on Resource \"*\"";
  }
}

}  // namespace
