// SPDX-License-Identifier: GPL-2.0-or-later
#pragma once
// Deterministic allocation of route tables to healthy members (DESIGN "Failover semantics" 1).
// Every member computes the same answer from the same inputs, whatever order it holds them
// in: members and tables are ranked by id internally.

#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

namespace hanat::engine {

struct AllocMember {
  std::string_view id;
  std::string_view zone;
  std::int64_t launch_time = 0;
};
struct AllocTable {
  std::string_view id;
  std::string_view zone;
};

inline constexpr int kAllocFallback = -1;  // no healthy member: the fallback NAT Gateway
inline constexpr int kAllocNobody = -2;    // no healthy member and no fallback configured

// Returns, for each table (same order as `tables`), an index into `healthy`, or
// kAllocFallback / kAllocNobody.
//  1. A table goes to a healthy member in its home zone; several such members share the
//     zone's tables round-robin in id order (even spread, stable tie-break by id).
//  2. A table whose zone has no healthy member goes to the member with the fewest tables so
//     far (counting step 1), ties broken by launch time (older first), then id.
//  3. With no healthy member at all, every table goes to the fallback if there is one.
std::vector<int> allocate(std::span<const AllocMember> healthy, std::span<const AllocTable> tables,
                          bool have_fallback);

}  // namespace hanat::engine
