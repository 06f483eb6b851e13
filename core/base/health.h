// SPDX-License-Identifier: GPL-2.0-or-later
#pragma once
// Rise/fall hysteresis for one health signal (a peer's probe kind, the egress check).
// A signal flips to Down only after `fall` consecutive failures and back to Up only after
// `rise` consecutive successes; a result of the opposite kind resets the other counter,
// as Envoy's health checker does. Starting Unknown, it settles on whichever threshold it
// reaches first, so a daemon that just started does not declare a live peer dead.
//
// Pure and shared: the engine judges peers with it and probes/ summarises what it measured
// with it, so it lives here rather than in core/engine (probes/ may not include the engine).

#include <cstdint>

namespace hanat::core {

enum class Health : std::uint8_t { Unknown, Up, Down };

// Three-valued outcome of one recorded result.
enum class HealthChange : std::uint8_t {
  Changed,    // the state flipped with this result
  Pending,    // the result disagrees with the state, threshold not reached yet
  Unchanged,  // the result agrees with the state
};

struct Thresholds {
  int rise = 5;
  int fall = 3;
};

class HealthTracker {
 public:
  explicit HealthTracker(Thresholds t = {}, Health initial = Health::Unknown)
      : t_(t), state_(initial) {}

  HealthChange record(bool ok);
  // Forces a state without counting (an agent that says "down" is down at once).
  HealthChange force(Health h);
  void set_thresholds(Thresholds t) { t_ = t; }

  [[nodiscard]] Health state() const { return state_; }
  [[nodiscard]] int successes() const { return ok_run_; }
  [[nodiscard]] int failures() const { return fail_run_; }
  [[nodiscard]] const Thresholds& thresholds() const { return t_; }

 private:
  Thresholds t_;
  Health state_;
  int ok_run_ = 0;
  int fail_run_ = 0;
};

const char* to_string(Health h);

}  // namespace hanat::core
