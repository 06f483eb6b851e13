// SPDX-License-Identifier: GPL-2.0-or-later
#include "core/engine/forward_watch.h"

#include <algorithm>

namespace hanat::engine {

namespace {

std::string ms_text(std::chrono::nanoseconds d) {
  return std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(d).count()) + " ms";
}

std::string s_text(std::chrono::nanoseconds d) {
  return std::to_string(std::chrono::duration_cast<std::chrono::seconds>(d).count()) + " s";
}

}  // namespace

void ForwardWatch::start_recheck(Time now) {
  // The delay before the NAT is offered back doubles when it fails again within recheck_max
  // of being offered back without proof, and starts over otherwise.
  if (offered_at_ && now - *offered_at_ < o_.recheck_max && next_recheck_.count() > 0) {
    next_recheck_ = std::min(next_recheck_ * 2, o_.recheck_max);
  } else {
    next_recheck_ = std::min(o_.recheck, o_.recheck_max);
  }
  offered_at_.reset();
  recheck_at_ = now + next_recheck_;
}

std::optional<ForwardWatch::Verdict> ForwardWatch::change(Health to, std::string detail) {
  detail_ = std::move(detail);
  if (to == state_) return std::nullopt;
  state_ = to;
  return Verdict{state_, detail_};
}

std::optional<ForwardWatch::Verdict> ForwardWatch::sample(std::uint64_t in, std::uint64_t out,
                                                          std::uint64_t leaked, Time now) {
  const Reading cur{in, out, leaked};
  purge_wanted_ = false;
  if (!last_ || in < last_->in || out < last_->out || leaked < last_->leaked) {
    // First reading, or the table was replaced (apply, drift repair) and its counters
    // started again from zero: nothing to compare with yet.
    last_ = cur;
    return std::nullopt;
  }
  const std::uint64_t d_in = in - last_->in;
  const std::uint64_t d_out = out - last_->out;
  const std::uint64_t d_leak = leaked - last_->leaked;
  last_ = cur;
  in_total_ += d_in;
  out_total_ += d_out;
  leaked_total_ += d_leak;

  if (d_leak > 0) {
    purge_wanted_ = true;
    ok_windows_ = 0;
    stalled_windows_ = 0;
    stalled_in_ = 0;
    ++leak_windows_;
    leak_packets_ += d_leak;
    if (state_ == Health::Down || leak_windows_ < o_.leak_fall) return std::nullopt;
    start_recheck(now);
    std::string detail = std::to_string(leak_packets_) +
                         " packets left the egress interface without source NAT in " +
                         ms_text(o_.interval * leak_windows_) + ", despite purging their flows";
    leak_windows_ = 0;
    leak_packets_ = 0;
    return change(Health::Down, std::move(detail));
  }
  leak_windows_ = 0;
  leak_packets_ = 0;

  if (d_out > 0) {
    stalled_windows_ = 0;
    stalled_in_ = 0;
    ++ok_windows_;
    if (state_ == Health::Down && ok_windows_ < o_.rise) return std::nullopt;
    if (state_ == Health::Up) return std::nullopt;
    recheck_at_.reset();
    offered_at_.reset();  // traffic proves the repair: the next stall starts from the base delay
    return change(Health::Up,
                  std::to_string(d_out) + " packets forwarded in the last " + ms_text(o_.interval));
  }
  ok_windows_ = 0;
  if (d_in > 0) {
    ++stalled_windows_;
    stalled_in_ += d_in;
    if (state_ == Health::Down || stalled_windows_ < o_.fall || stalled_in_ < o_.min_packets) {
      return std::nullopt;
    }
    start_recheck(now);
    const auto span = o_.interval * stalled_windows_;
    std::string detail = std::to_string(stalled_in_) + " packets arrived to be forwarded in " +
                         ms_text(span) + " and none left";
    stalled_windows_ = 0;
    stalled_in_ = 0;
    return change(Health::Down, std::move(detail));
  }
  // Idle: a stall is judged on continuous traffic only.
  stalled_windows_ = 0;
  stalled_in_ = 0;
  if (state_ == Health::Down && recheck_at_ && now >= *recheck_at_) {
    recheck_at_.reset();
    offered_at_ = now;
    return change(Health::Up, "no traffic to judge " + s_text(next_recheck_) +
                                  " after the stall: offered back into service");
  }
  return std::nullopt;
}

}  // namespace hanat::engine
