// SPDX-License-Identifier: GPL-2.0-or-later
#include "ec2/pacing.h"

#include <algorithm>
#include <cmath>

namespace hanat::ec2 {

const BucketSpec& BucketLimits::of(Bucket b) const {
  switch (b) {
    case Bucket::Mutating:
      return mutating;
    case Bucket::NonMutating:
      return non_mutating;
    case Bucket::UnfilteredDescribe:
      return unfiltered_describe;
  }
  return non_mutating;
}

const BucketSpec& BucketLimits::of(std::string_view action, Bucket b) const {
  if (b != Bucket::UnfilteredDescribe) {
    if (auto it = per_action.find(action); it != per_action.end()) return it->second;
  }
  return of(b);
}

std::optional<std::string> BucketLimits::set(std::string_view key, BucketSpec spec) {
  if (!(spec.burst >= 1) || !(spec.refill_per_s > 0)) {
    return "rate limit '" + std::string(key) + "' needs burst >= 1 and refill > 0 per second";
  }
  if (key == "mutating") {
    mutating = spec;
  } else if (key == "non_mutating") {
    non_mutating = spec;
  } else if (key == "unfiltered_describe") {
    unfiltered_describe = spec;
  } else {
    if (!is_rate_limit_key(key)) {
      return "rate limit '" + std::string(key) + "' is " + rate_limit_keys_hint();
    }
    per_action[std::string(key)] = spec;
  }
  return std::nullopt;
}

TokenBucket::TokenBucket(BucketSpec spec, Millis now)
    : spec_(spec), tokens_(spec.burst), last_(now) {}

double TokenBucket::tokens(Millis now) const {
  const double elapsed_s = now > last_ ? static_cast<double>((now - last_).count()) / 1000.0 : 0.0;
  return std::min(spec_.burst, tokens_ + elapsed_s * spec_.refill_per_s);
}

bool TokenBucket::try_take(Millis now) {
  tokens_ = tokens(now);
  if (now > last_) last_ = now;
  if (tokens_ < 1.0) return false;
  tokens_ -= 1.0;
  return true;
}

void TokenBucket::drain(Millis now) {
  tokens_ = 0;
  if (now > last_) last_ = now;
}

Millis TokenBucket::wait_time(Millis now) const {
  const double have = tokens(now);
  if (have >= 1.0) return Millis{0};
  if (spec_.refill_per_s <= 0) return Millis{INT32_MAX};
  return Millis{static_cast<int64_t>(std::ceil((1.0 - have) / spec_.refill_per_s * 1000.0))};
}

Millis backoff_delay(const BackoffPolicy& p, int attempt, bool throttled, uint64_t random) {
  const int64_t base = (throttled ? p.throttle_base : p.base).count();
  const int shift = std::clamp(attempt - 1, 0, 30);
  const int64_t cap = p.cap.count();
  const int64_t d = std::min(cap, base << shift);
  const int64_t half = d / 2;
  const int64_t jitter =
      half > 0 ? static_cast<int64_t>(random % static_cast<uint64_t>(half + 1)) : 0;
  return Millis{std::max<int64_t>(1, d - half + jitter)};
}

}  // namespace hanat::ec2
