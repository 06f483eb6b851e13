// SPDX-License-Identifier: GPL-2.0-or-later
#include "netfilter/compare.h"

#include <linux/netfilter.h>

#include "netfilter/batch.h"

namespace hanat::netfilter {

namespace {

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& e : v) s += (s.empty() ? "" : " ") + e;
  return s;
}

std::string opt_text(const std::optional<uint32_t>& v) {
  return v ? std::to_string(*v) : std::string("none");
}

std::string opt_text(const std::optional<int32_t>& v) {
  return v ? std::to_string(*v) : std::string("none");
}

}  // namespace

core::Result<TableState, Error> desired_state(const NatSpec& spec) {
  // Compared with what the kernel dumps, so in the form it dumps (batch.h, desired_rules).
  auto rules = desired_rules(spec, /*as_dumped=*/true);
  if (!rules) return core::Unexpected(rules.error());
  TableState t;
  t.name = spec.table;
  t.exists = true;
  ChainState c;
  c.name = std::string(kChainName);
  c.type = "nat";
  c.hook = NF_INET_POST_ROUTING;
  c.priority = kChainPriority;
  for (const auto& r : *rules) c.rules.push_back(rule_expressions(r.get()));
  t.chains.push_back(std::move(c));
  if (spec.forward_counters) {
    for (const bool outgoing : {false, true}) {
      auto rule = forward_counter_rule(spec, outgoing);
      if (!rule) return core::Unexpected(rule.error());
      ChainState f;
      f.name = std::string(outgoing ? kForwardOutChain : kForwardInChain);
      f.type = "filter";
      f.hook = outgoing ? NF_INET_POST_ROUTING : NF_INET_PRE_ROUTING;
      f.priority = kForwardChainPriority;
      f.rules.push_back(rule_expressions(rule->get()));
      t.chains.push_back(std::move(f));
    }
  }
  if (spec.leak_counter) {
    auto leak = leak_counter_rules(spec);
    if (!leak) return core::Unexpected(leak.error());
    ChainState l;
    l.name = std::string(kLeakChain);
    l.type = "filter";
    l.hook = NF_INET_POST_ROUTING;
    l.priority = kLeakChainPriority;
    for (const auto& r : *leak) l.rules.push_back(rule_expressions(r.get()));
    t.chains.push_back(std::move(l));
  }
  return t;
}

std::optional<std::string> compare(const TableState& desired, const TableState& actual) {
  const std::string tw = "table ip " + desired.name;
  if (!actual.exists) return tw + ": missing";
  if (actual.flags != desired.flags) {
    return tw + ": flags " + std::to_string(actual.flags) + ", want " +
           std::to_string(desired.flags) + (actual.flags & 1U ? " (table is dormant)" : "");
  }
  for (const auto& a : actual.chains) {
    bool wanted = false;
    for (const auto& d : desired.chains) wanted = wanted || d.name == a.name;
    if (!wanted) return "chain ip " + desired.name + " " + a.name + ": not ours (unexpected chain)";
  }
  for (const auto& d : desired.chains) {
    const std::string cw = "chain ip " + desired.name + " " + d.name;
    const ChainState* a = nullptr;
    for (const auto& c : actual.chains) {
      if (c.name == d.name) a = &c;
    }
    if (a == nullptr) return cw + ": missing";
    if (a->type != d.type || a->hook != d.hook || a->priority != d.priority) {
      return cw + ": type " + (a->type.empty() ? "none" : a->type) + " hook " + opt_text(a->hook) +
             " priority " + opt_text(a->priority) + ", want type " + d.type + " hook " +
             opt_text(d.hook) + " priority " + opt_text(d.priority);
    }
    // An unset policy is the kernel default, accept; only the kernel's own answer counts.
    const uint32_t want_policy = d.policy.value_or(NF_ACCEPT);
    const uint32_t have_policy = a->policy.value_or(NF_ACCEPT);
    if (want_policy != have_policy) {
      return cw + ": policy " + std::to_string(have_policy) + ", want " +
             std::to_string(want_policy);
    }
    if (a->rules.size() != d.rules.size()) {
      return cw + ": " + std::to_string(a->rules.size()) + " rules, want " +
             std::to_string(d.rules.size());
    }
    for (size_t i = 0; i < d.rules.size(); ++i) {
      if (a->rules[i] != d.rules[i]) {
        return "rule " + std::to_string(i + 1) + " in " + cw + ": expressions differ (have " +
               join(a->rules[i]) + "; want " + join(d.rules[i]) + ")";
      }
    }
  }
  return std::nullopt;
}

}  // namespace hanat::netfilter
