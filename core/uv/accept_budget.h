// SPDX-License-Identifier: GPL-2.0-or-later
#pragma once
// AcceptBudget: how many connections a listener accepts per loop turn and per second, for
// every TCP or unix listener of hanatd (the status socket, the agent port). libuv accepts
// everything in a listener's backlog in one callback run; under a connection storm that
// one turn took 100-235 ms of wall time (the status-socket abuse bench, 100-220 accepts a
// turn) and the probe timers due meanwhile waited for it. With the budget, the listener's
// callback hands each connection to offer(): it is accepted now, or left in libuv, which
// then stops polling the listening socket until the next accept — the kernel's backlog
// holds the rest (and refuses connects past it) at no cost to the loop. The held
// connection is taken at the next turn (after the timers due) or, past the per-second
// budget, when the second is over.

#include <chrono>
#include <cstdint>
#include <functional>

#include "core/uv/uv.h"

namespace hanat::uv {

class AcceptBudget {
 public:
  struct Limits {
    int per_turn = 16;
    int per_second = 200;
  };
  // `accept_one` must call uv_accept (the wrapper's accept()) exactly once.
  AcceptBudget(Loop& loop, Limits limits, std::function<void()> accept_one);
  AcceptBudget(const AcceptBudget&) = delete;
  AcceptBudget& operator=(const AcceptBudget&) = delete;

  // The listener's connection callback: accepts now when both budgets allow, else holds
  // the connection for later.
  void offer();
  [[nodiscard]] std::uint64_t deferred() const { return deferred_count_; }

 private:
  [[nodiscard]] bool rate_allows();
  void take();
  void resume();

  Limits limits_;
  std::function<void()> accept_one_;
  // Runs once per turn while a turn's budget was used or a connection waits. An idle
  // handle, not a 0 ms timer: libuv 1.44 runs a 0 ms timer started from a timer callback
  // again in the same timer phase, so a budget reset by one bounded nothing.
  Idle turn_;
  bool turn_armed_ = false;
  Timer rest_;  // ends a rest of the listener (per-second budget)
  bool resting_ = false;
  bool held_ = false;  // a connection waits in libuv
  int this_turn_ = 0;
  int this_second_ = 0;
  std::chrono::steady_clock::time_point window_start_{};
  std::uint64_t deferred_count_ = 0;
};

}  // namespace hanat::uv
