// SPDX-License-Identifier: GPL-2.0-or-later
// Token buckets and backoff, with time passed in.

#include "ec2/pacing.h"

#include <gtest/gtest.h>

namespace hanat::ec2 {
namespace {

using namespace std::chrono_literals;

TEST(TokenBucket, BurstThenRefillRate) {
  TokenBucket b(BucketLimits{}.mutating, 0ms);
  int taken = 0;
  while (b.try_take(0ms)) ++taken;
  EXPECT_EQ(taken, 50);
  EXPECT_EQ(b.wait_time(0ms), 200ms);  // 5 per second
  EXPECT_FALSE(b.try_take(199ms));
  EXPECT_TRUE(b.try_take(200ms));
  EXPECT_FALSE(b.try_take(200ms));
  // Ten seconds of refill give 50 tokens, never more than the burst.
  taken = 0;
  while (b.try_take(60s)) ++taken;
  EXPECT_EQ(taken, 50);
}

TEST(TokenBucket, DrainEmptiesIt) {
  TokenBucket b(BucketLimits{}.non_mutating, 0ms);
  b.drain(10ms);
  EXPECT_FALSE(b.try_take(10ms));
  EXPECT_EQ(b.wait_time(10ms), 50ms);  // 20 per second
}

TEST(Backoff, GrowsIsCappedAndJittered) {
  BackoffPolicy p;
  p.base = 100ms;
  p.cap = 1000ms;
  // Equal jitter: within [d/2, d] where d = min(cap, base * 2^(n-1)).
  for (uint64_t r : {0ull, 1ull, 12345ull, ~0ull}) {
    const auto d1 = backoff_delay(p, 1, false, r);
    EXPECT_GE(d1, 50ms);
    EXPECT_LE(d1, 100ms);
    const auto d3 = backoff_delay(p, 3, false, r);
    EXPECT_GE(d3, 200ms);
    EXPECT_LE(d3, 400ms);
    const auto d10 = backoff_delay(p, 10, false, r);
    EXPECT_GE(d10, 500ms);
    EXPECT_LE(d10, 1000ms);
    const auto t1 = backoff_delay(p, 1, true, r);
    EXPECT_GE(t1, 250ms);  // throttling starts from throttle_base (500 ms)
  }
  EXPECT_NE(backoff_delay(p, 3, false, 1), backoff_delay(p, 3, false, 77));
}

}  // namespace
}  // namespace hanat::ec2
