#pragma once
// Pure pacing pieces: client-side token buckets that mirror EC2's API throttling buckets, and
// capped, jittered exponential backoff. Time is passed in (monotonic milliseconds, e.g.
// uv::Loop::now()), never read here.

#include <chrono>
#include <cstdint>

#include "ec2/api.h"

namespace hanat::ec2 {

using Millis = std::chrono::milliseconds;

struct BucketSpec {
  double burst = 0;         // bucket size (tokens)
  double refill_per_s = 0;  // tokens added per second
};

// EC2's documented defaults per account and region: mutating actions 50 burst / 5 per s,
// non-mutating 100 / 20, unfiltered-and-unpaginated describes 50 / 10.
struct BucketLimits {
  BucketSpec mutating{50, 5};
  BucketSpec non_mutating{100, 20};
  BucketSpec unfiltered_describe{50, 10};
  [[nodiscard]] const BucketSpec& of(Bucket b) const;
};

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
