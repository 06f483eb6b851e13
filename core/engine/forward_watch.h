// SPDX-License-Identifier: GPL-2.0-or-later
#pragma once
// The forward-path check: judges this NAT's own forwarding from two packet counters that the
// netfilter module keeps in hanat's table (netfilter/batch.h, kForwardInChain): packets that
// arrived to be forwarded ("in") and packets forwarded out ("out"), read every interval.
// netfilter only reads them (NatManager, ForwardSample); the daemon shell feeds each reading
// here (core/daemon/forward_check.h), so the judgement stays in the engine.
//
// Why counters and not a probe: a NAT whose kernel drops forwarded packets (a forward-hook
// drop, a routing or rp_filter mistake) still answers ICMP and the agent port, and its own
// egress check passes, because none of those cross the FORWARD hook. Only the traffic the
// NAT exists for does, so the traffic itself is the probe.
//
// The rule, per window (one reading to the next):
//   - out grew: the forward path works (a success);
//   - in grew and out did not: a stalled window;
//   - neither grew: idle, no evidence either way.
// DOWN after `fall` consecutive stalled windows that together saw at least `min_packets`
// packets in (an idle window breaks the run: a stall is judged on continuous traffic, so a
// lone packet now and then that the host's own firewall drops never adds up to a failover).
// UP from DOWN after `rise` consecutive successes. A NAT that handed its routes away gets no
// traffic to judge, so DOWN also ends after a recheck delay with no traffic at all: the NAT
// is offered back (failback still waits for its own delay), and if it stalls again it goes
// DOWN again (within recheck_max) with the delay doubled, up to `recheck_max`, so a NAT that stays
// broken costs a short outage at exponentially growing intervals rather than never returning once
// fixed. Counters that went backwards (the table was re-created) only start a new baseline.
//
// A third counter, "leaked", counts forwarded packets that left the egress interface after
// source NAT still carrying a configured private source (netfilter/batch.h, kLeakChain): a
// flow whose conntrack entry was made while the masquerade was missing. Any growth asks the
// shell to purge such entries (purge_wanted()); a purged flow's next packet is NATed, so the
// leak stops within a window. When it does not — `leak_fall` consecutive windows leak despite
// the purges — the NAT is DOWN as for a stall (its traffic is dropped by the internet
// gateway, just as surely), with the same recheck and rise rules. A leaking window is never a
// success, even though its packets did leave.

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include "core/engine/types.h"

namespace hanat::engine {

struct ForwardWatchOptions {
  std::chrono::nanoseconds interval = std::chrono::milliseconds(200);  // for the detail text
  std::uint64_t min_packets = 10;
  int fall = 3;
  int rise = 3;
  std::chrono::nanoseconds recheck = std::chrono::seconds(60);
  std::chrono::nanoseconds recheck_max = std::chrono::minutes(30);
  int leak_fall = 3;
};

class ForwardWatch {
 public:
  explicit ForwardWatch(ForwardWatchOptions o = {}) : o_(o) {}

  struct Verdict {
    Health state = Health::Unknown;
    std::string detail;  // "1210 packets arrived to be forwarded in 600 ms, none left"
  };

  // Feeds the cumulative counters read at `now`; returns the new verdict when the state
  // changes (Unknown -> Up, Up -> Down, Down -> Up).
  std::optional<Verdict> sample(std::uint64_t in, std::uint64_t out, Time now) {
    return sample(in, out, 0, now);
  }
  // The same with the cumulative leak counter.
  std::optional<Verdict> sample(std::uint64_t in, std::uint64_t out, std::uint64_t leaked,
                                Time now);
  // Whether the last window saw packets leave un-NATed: the shell should purge now.
  [[nodiscard]] bool purge_wanted() const { return purge_wanted_; }

  // Forgets the baseline (after a reading failed or the check was reconfigured); the state is
  // kept.
  void rebase() { last_.reset(); }
  void set_options(ForwardWatchOptions o) { o_ = o; }

  [[nodiscard]] Health state() const { return state_; }
  [[nodiscard]] const std::string& detail() const { return detail_; }
  // While DOWN: when the NAT is offered back if no traffic arrives.
  [[nodiscard]] std::optional<Time> recheck_at() const { return recheck_at_; }
  [[nodiscard]] std::uint64_t in_total() const { return in_total_; }
  [[nodiscard]] std::uint64_t out_total() const { return out_total_; }
  [[nodiscard]] std::uint64_t leaked_total() const { return leaked_total_; }

 private:
  std::optional<Verdict> change(Health to, std::string detail);
  void start_recheck(Time now);

  ForwardWatchOptions o_;
  struct Reading {
    std::uint64_t in = 0;
    std::uint64_t out = 0;
    std::uint64_t leaked = 0;
  };
  std::optional<Reading> last_;
  Health state_ = Health::Unknown;
  std::string detail_;
  int stalled_windows_ = 0;
  std::uint64_t stalled_in_ = 0;
  int ok_windows_ = 0;
  std::optional<Time> recheck_at_;
  std::optional<Time> offered_at_;  // when DOWN last ended by the recheck, without proof
  std::chrono::nanoseconds next_recheck_{0};
  std::uint64_t in_total_ = 0;  // packets seen by this watch (across table re-creations)
  std::uint64_t out_total_ = 0;
  std::uint64_t leaked_total_ = 0;
  int leak_windows_ = 0;
  std::uint64_t leak_packets_ = 0;
  bool purge_wanted_ = false;
};

}  // namespace hanat::engine
