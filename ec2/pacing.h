// SPDX-License-Identifier: GPL-2.0-or-later
#pragma once
// Pure pacing pieces: client-side token buckets that mirror EC2's API throttling buckets, and
// capped, jittered exponential backoff. Time is passed in (monotonic milliseconds, e.g.
// uv::Loop::now()), never read here.

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ec2/api.h"

namespace hanat::ec2 {

using Millis = std::chrono::milliseconds;

struct BucketSpec {
  double burst = 0;         // bucket size (tokens)
  double refill_per_s = 0;  // tokens added per second
};

// EC2 meters request rates per API action, per account and region ("Request throttling for
// the Amazon EC2 API", request token bucket sizes): every action has its own bucket, sized by
// its category unless listed otherwise — mutating actions 50 burst / 5 per s, non-mutating 100
// / 20, and a describe with neither filters, ids nor paging draws on the action's smaller
// "unfiltered and unpaginated" bucket, 50 / 10. So ReplaceRoute, CreateRoute and
// AssociateAddress do not compete with each other, but every ReplaceRoute of the account and
// region does (other tools included). `per_action` overrides one action's bucket, for an
// account whose limits AWS raised or that shares them with other tools. The client spends
// nine tenths of each burst (see Client), so that network jitter never empties EC2's.
struct BucketLimits {
  BucketSpec mutating{50, 5};
  BucketSpec non_mutating{100, 20};
  BucketSpec unfiltered_describe{50, 10};
  std::map<std::string, BucketSpec, std::less<>> per_action;  // "ReplaceRoute" -> {100, 10}
  [[nodiscard]] const BucketSpec& of(Bucket b) const;
  // The bucket `action` draws on when charged to category `b`.
  [[nodiscard]] const BucketSpec& of(std::string_view action, Bucket b) const;
  // Sets one limit from the config: `key` is a category ("mutating", "non_mutating",
  // "unfiltered_describe") or an action the client calls ("ReplaceRoute", ...). Returns why
  // it cannot be applied (unknown key, burst < 1, refill <= 0), or nullopt.
  [[nodiscard]] std::optional<std::string> set(std::string_view key, BucketSpec spec);
};

// The EC2 actions this client calls (the keys BucketLimits::set accepts besides categories):
// all_actions(), inline in api.h so that the config check can name a bad key without
// linking the client.
inline const std::vector<std::string_view>& known_actions() {
  return all_actions();
}

inline bool is_rate_limit_key(std::string_view key) {
  if (key == "mutating" || key == "non_mutating" || key == "unfiltered_describe") return true;
  for (auto a : known_actions()) {
    if (a == key) return true;
  }
  return false;
}

// "neither a category (...) nor an EC2 action hanat calls (...)", for error messages.
inline std::string rate_limit_keys_hint() {
  std::string list;
  for (auto a : known_actions()) list += (list.empty() ? "" : ", ") + std::string(a);
  return "neither a category (mutating, non_mutating, unfiltered_describe) nor an EC2 action "
         "hanat calls (" +
         list + ")";
}

class TokenBucket {
 public:
  TokenBucket(BucketSpec spec, Millis now);
  // Takes one token if one is available at `now`.
  [[nodiscard]] bool try_take(Millis now);
  // Time from `now` until one token is available (0 when one is).
  [[nodiscard]] Millis wait_time(Millis now) const;
  [[nodiscard]] double tokens(Millis now) const;
  // Empties the bucket (EC2 just throttled us: its bucket is empty, so ours should be).
  void drain(Millis now);
  [[nodiscard]] const BucketSpec& spec() const { return spec_; }

 private:
  BucketSpec spec_;
  double tokens_;
  Millis last_;
};

struct BackoffPolicy {
  Millis base{50};            // first retry after ~base for 5xx/transport errors
  Millis throttle_base{500};  // first retry after ~throttle_base for throttling errors
  Millis cap{8000};           // no single wait longer than this
  int max_attempts = 8;       // attempts in total, the first included
};

// Delay before attempt number `attempt` + 1 (attempt >= 1 is the attempt that just failed):
// min(cap, base * 2^(attempt-1)), then "equal jitter" — half fixed, half uniformly random from
// `random` — so synchronized clients spread out without ever retrying immediately (the AWS
// Architecture Blog's "Exponential Backoff and Jitter").
[[nodiscard]] Millis backoff_delay(const BackoffPolicy& p, int attempt, bool throttled,
                                   uint64_t random);

}  // namespace hanat::ec2
