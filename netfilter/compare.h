// SPDX-License-Identifier: GPL-2.0-or-later
#pragma once
// Pure comparison of the desired table with the one read back from the kernel. Semantics,
// not bytes: rules are compared as their rendered expression lists (handles and positions are
// the kernel's), chains by name, type, hook, priority and policy.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "netfilter/spec.h"

namespace hanat::netfilter {

struct ChainState {
  std::string name;
  std::string type;              // "nat"; empty for a regular (non-base) chain
  std::optional<uint32_t> hook;  // NF_INET_*; unset for a regular chain
  std::optional<int32_t> priority;
  std::optional<uint32_t> policy;  // NF_ACCEPT / NF_DROP; unset = kernel default (accept)
  std::vector<std::vector<std::string>> rules;  // each rule's expressions, in chain order

  friend bool operator==(const ChainState&, const ChainState&) = default;
};

struct TableState {
  std::string name;
  bool exists = false;
  uint32_t flags = 0;  // NFT_TABLE_F_DORMANT would switch every rule off
  std::vector<ChainState> chains;

  friend bool operator==(const TableState&, const TableState&) = default;
};

// What the kernel should hold for `spec` (validated).
[[nodiscard]] core::Result<TableState, Error> desired_state(const NatSpec& spec);

// The first difference between `desired` and `actual`, phrased for a log line and naming the
// object: `table ip hanat: missing`, `chain ip hanat postrouting: 0 rules, want 2`,
// `rule 1 in chain ip hanat postrouting: expressions differ (...)`. nullopt when equal.
[[nodiscard]] std::optional<std::string> compare(const TableState& desired,
                                                 const TableState& actual);

}  // namespace hanat::netfilter
