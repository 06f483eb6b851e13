// SPDX-License-Identifier: GPL-2.0-or-later
#pragma once
// NatManager: keeps the NAT data plane of this host in the desired state, on the loop.
//
// apply() installs the table (one transaction), reads it back and compares, and applies the
// sysctls. From then on a drift check runs every `drift_interval` (default 5 s): it reads the
// table back, re-applies it if it is missing or altered (someone ran `nft flush ruleset`, a
// package reloaded a firewall), rewrites sysctls that were reset (ip_forward flipped off), and
// counts every repair. Whatever cannot be repaired makes the data plane unhealthy, with the
// reason, so the agent check answers `down` and the engine hands the routes away
// (DESIGN.md, failover semantics 6).
//
// After every apply and every table repair, conntrack entries of flows that were forwarded
// without NAT while the table was missing are deleted (conntrack.h), so their next packet is
// NATed; the outcome goes to on_purge() and the counters. A failed purge does not make the
// data plane unhealthy: the table is right, only those flows stay un-NATed until they end.
//
// Destroying the manager (hanatd exiting) leaves the rules in the kernel: traffic must not
// stop because the daemon restarts. Only remove() deletes the table.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "core/uv/uv.h"
#include "netfilter/monitor.h"
#include "netfilter/netlink.h"
#include "netfilter/spec.h"
#include "netfilter/sysctl.h"

namespace hanat::netfilter {

struct Health {
  bool ok = false;
  std::string reason;  // why not ok; empty when ok

  friend bool operator==(const Health&, const Health&) = default;
};

struct NatCounters {
  uint64_t applies = 0;             // apply() calls that committed
  uint64_t checks = 0;              // drift checks run
  uint64_t table_repairs = 0;       // table re-applied because it was missing or altered
  uint64_t sysctl_repairs = 0;      // sysctls rewritten because they had drifted
  uint64_t failures = 0;            // applies or checks that left the data plane unhealthy
  uint64_t purged = 0;              // conntrack entries that escaped NAT, deleted (conntrack.h)
  uint64_t purge_failures = 0;      // purges that could not read or delete the entries
  uint64_t notified_checks = 0;     // checks run because nftables announced a change to the table
  uint64_t notifications_lost = 0;  // ENOBUFS on the notification socket (each: one check)
};

// One repair, for the log line: what was wrong and what noticed it.
struct Repair {
  std::string what;     // the first difference, e.g. "table ip hanat: missing"
  std::string trigger;  // "nftables notification: table deleted", "drift check"
};

// The outcome of the conntrack purge that follows every apply and table repair.
struct PurgeOutcome {
  uint64_t purged = 0;
  std::string error;  // empty when the purge ran
};

// One reading of the forward-path counters of the applied table (netfilter/batch.h,
// kForwardInChain). netfilter only measures: the judgement of a stall is the engine's
// ForwardWatch, which the daemon feeds with these readings (core/daemon/forward_check.h).
struct ForwardSample {
  bool ok = false;           // false: the reading failed (forward_read_error() says why)
  ForwardCounters counters;  // cumulative since the table was created; valid when ok
  std::chrono::steady_clock::time_point at;
};

struct ManagerOptions {
  std::chrono::milliseconds drift_interval{5000};
  std::chrono::milliseconds netlink_timeout{1000};
  std::string sysctl_root = "/proc/sys";
  // Verify at once when nftables announces a change to the table (monitor.h). Off only in
  // tests that measure the drift timer alone.
  bool watch_notifications = true;
  int notification_rcvbuf = NftMonitor::kDefaultRcvBuf;  // bytes; tests shrink it
};

class NatManager {
 public:
  explicit NatManager(uv::Loop& loop, ManagerOptions options = {});
  NatManager(const NatManager&) = delete;
  NatManager& operator=(const NatManager&) = delete;
  ~NatManager() = default;  // leaves the rules in place on purpose

  // Makes `nat` and `sysctls` the desired state and applies them now; starts (or keeps) the
  // drift timer. An invalid spec changes nothing and returns the validation error. A missing
  // egress interface or a kernel error is returned too, but the spec stays desired, so the
  // drift check keeps retrying (an ENI can appear later). A table name not applied before
  // by this manager that already holds chains hanat never creates is refused: it is not
  // hanat's, and nothing is changed. A new table name removes the
  // table of the previous name in the same transaction that creates the new one: until
  // that transaction succeeds (this apply or a drift check's retry), the old table stays.
  [[nodiscard]] Status apply(const NatSpec& nat, const SysctlSpec& sysctls);

  // One drift check now (the timer runs the same). Ok when everything matches or was
  // repaired; otherwise the error that left the data plane unhealthy.
  [[nodiscard]] Status check();

  // Stops the drift timer and deletes the table in one transaction. Sysctls are left as
  // they are: turning forwarding off could cut traffic that is not ours.
  [[nodiscard]] Status remove();

  // Stops the drift timer; the rules stay.
  void stop();

  [[nodiscard]] const Health& health() const { return health_; }
  [[nodiscard]] const NatCounters& counters() const { return counters_; }
  // What the last repair fixed, e.g. "table ip hanat: missing" (for status and logs).
  [[nodiscard]] const std::string& last_repair() const { return last_repair_; }
  [[nodiscard]] const std::optional<NatSpec>& desired() const { return nat_; }

  // Called whenever health changes (ok <-> unhealthy, or a different reason).
  void on_health_change(std::function<void(const Health&)> cb) { on_health_ = std::move(cb); }
  // Called after each conntrack purge (every apply and table repair).
  void on_purge(std::function<void(const PurgeOutcome&)> cb) { on_purge_ = std::move(cb); }
  // Called after each successful repair (table or sysctl), once per repair.
  void on_repair(std::function<void(const Repair&)> cb) { on_repair_ = std::move(cb); }

  // Purges the conntrack entries of flows forwarded without NAT now (as after a repair), and
  // reports through on_purge(). The forward check calls it when the leak counter grows.
  void purge_now();

  // Why the nftables notification socket could not be opened (empty when it is watched):
  // changes are then noticed by the drift check only.
  [[nodiscard]] const std::string& monitor_error() const { return monitor_error_; }
  [[nodiscard]] bool monitoring() const { return monitor_ != nullptr; }

  // Starts (or re-times) the forward counter readings: every `interval`, the counters of the
  // applied table (when its NatSpec has forward_counters on) are read and reported through
  // on_forward_counters(). They are a separate signal from health(): the table and sysctls
  // can be perfect while the forward path drops everything. nullopt stops the readings.
  void watch_forwarding(std::optional<std::chrono::milliseconds> interval);
  void on_forward_counters(std::function<void(const ForwardSample&)> cb) {
    on_forward_ = std::move(cb);
  }
  [[nodiscard]] bool forward_watching() const { return forward_interval_.has_value(); }
  // Why the last counter reading failed (empty after a good one).
  [[nodiscard]] const std::string& forward_read_error() const { return forward_error_; }
  // One counter reading now (the timer runs the same); for tests.
  void sample_forwarding();

 private:
  Status ensure_netlink();
  Status commit_and_verify();  // replaces replaced_table_ too, if set
  // Ok when no table of nat.table exists, or it holds only chains hanat creates.
  Status check_ownership(const NatSpec& nat);
  Status fail_with(Error e);
  void set_health(Health h);
  void arm_timer();
  void purge_unnatted_flows();
  Status check_now(const std::string& trigger);
  void ensure_monitor();

  uv::Loop& loop_;
  ManagerOptions options_;
  uv::Timer timer_;
  Sysctl sysctl_;
  std::optional<Netlink> netlink_;
  std::optional<NatSpec> nat_;
  // The table of a previous name (a rename) whose removal has not committed yet.
  std::string replaced_table_;
  std::vector<SysctlEntry> sysctls_;
  Health health_{false, "not applied yet"};
  NatCounters counters_;
  std::string last_repair_;
  std::function<void(const Health&)> on_health_;
  std::function<void(const PurgeOutcome&)> on_purge_;
  std::function<void(const Repair&)> on_repair_;
  std::unique_ptr<NftMonitor> monitor_;
  std::string monitor_error_;

  uv::Timer forward_timer_;
  std::optional<std::chrono::milliseconds> forward_interval_;
  std::string forward_error_;
  std::function<void(const ForwardSample&)> on_forward_;
};

}  // namespace hanat::netfilter
