// SPDX-License-Identifier: GPL-2.0-or-later
#pragma once
// Test helpers for code on the libuv loop.

#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <string>

#include "core/uv/uv.h"

namespace hanat::testing {

// Asserts that every wrapper was destroyed (no handle left open) and that the loop then
// closes with 0 — stricter than libuv's own tests, which close leftovers first.
inline void expect_clean_close(uv::Loop& loop) {
  std::vector<std::string> open = loop.open_handles();
  std::string names;
  for (const auto& h : open) names += h + " ";
  EXPECT_TRUE(open.empty()) << "handles left open: " << names;
  EXPECT_EQ(loop.close(), std::error_code{});
}

// Runs the loop until `done()` or the deadline (wall clock). Returns done().
inline bool run_until(uv::Loop& loop, const std::function<bool()>& done,
                      std::chrono::milliseconds deadline = std::chrono::seconds(5)) {
  auto end = std::chrono::steady_clock::now() + deadline;
  // A guard timer wakes the loop so the deadline is checked even when nothing happens.
  uv::Timer guard(loop);
  (void)guard.start(std::chrono::milliseconds(5), std::chrono::milliseconds(5), [] {});
  while (!done() && std::chrono::steady_clock::now() < end) {
    loop.run(UV_RUN_ONCE);
  }
  return done();
}

}  // namespace hanat::testing
