// SPDX-License-Identifier: GPL-2.0-or-later
#include "core/uv/accept_budget.h"

namespace hanat::uv {

AcceptBudget::AcceptBudget(Loop& loop, Limits limits, std::function<void()> accept_one)
    : limits_(limits), accept_one_(std::move(accept_one)), turn_(loop), rest_(loop) {}

void AcceptBudget::offer() {
  if (this_turn_ >= limits_.per_turn || !rate_allows()) {
    // Not accepting makes libuv stop polling the listening socket until uv_accept is
    // called (resume); the other connections wait in the kernel's backlog.
    if (!held_) ++deferred_count_;
    held_ = true;
    return;
  }
  take();
}

bool AcceptBudget::rate_allows() {
  if (resting_) return false;
  const auto now = std::chrono::steady_clock::now();
  if (now - window_start_ >= std::chrono::seconds(1)) {
    window_start_ = now;
    this_second_ = 0;
  }
  if (this_second_ < limits_.per_second) return true;
  resting_ = true;
  auto rest =
      std::chrono::ceil<std::chrono::milliseconds>(window_start_ + std::chrono::seconds(1) - now);
  (void)rest_.start(rest, std::chrono::milliseconds(0), [this] {
    resting_ = false;
    resume();
  });
  return false;
}

void AcceptBudget::take() {
  ++this_second_;
  ++this_turn_;
  if (!turn_armed_) {
    // The idle phase runs after the timers of each turn and before its I/O poll (whose
    // timeout it makes 0 while active), so the due probe timers run first every turn.
    turn_armed_ = !turn_.start([this] {
      const bool used = this_turn_ > 0;
      this_turn_ = 0;
      resume();
      // A listener resting for the rate limit is resumed by its timer, not by this
      // handle, which would otherwise keep the loop polling without sleeping until then.
      if (!used && (!held_ || resting_)) {
        (void)turn_.stop();
        turn_armed_ = false;
      }
    });
  }
  accept_one_();
}

void AcceptBudget::resume() {
  if (!held_ || this_turn_ >= limits_.per_turn || !rate_allows()) return;
  held_ = false;
  take();  // the connection libuv holds; uv_accept resumes polling the listener
}

}  // namespace hanat::uv
