// SPDX-License-Identifier: GPL-2.0-or-later
#include "netfilter/manager.h"

#include <algorithm>
#include <utility>

#include "netfilter/batch.h"
#include "netfilter/compare.h"
#include "netfilter/conntrack.h"

namespace hanat::netfilter {

NatManager::NatManager(uv::Loop& loop, ManagerOptions options)
    : loop_(loop),
      options_(std::move(options)),
      timer_(loop),
      sysctl_(options_.sysctl_root),
      forward_timer_(loop) {}

void NatManager::watch_forwarding(std::optional<std::chrono::milliseconds> interval) {
  (void)forward_timer_.stop();
  forward_interval_ = interval;
  if (!forward_interval_) return;
  const auto every = *forward_interval_;
  (void)forward_timer_.start(every, every, [this] { sample_forwarding(); });
}

void NatManager::sample_forwarding() {
  if (!forward_interval_ || !nat_ || !nat_->forward_counters) return;
  ForwardSample sample;
  sample.at = std::chrono::steady_clock::now();
  if (auto s = ensure_netlink(); !s) {
    forward_error_ = s.error().message;
    if (on_forward_) on_forward_(sample);
    return;
  }
  auto c = netlink_->read_forward_counters(nat_->table);
  if (!c) {
    // The table is missing or altered: the drift check repairs it and reports the health;
    // here the window is simply lost.
    forward_error_ = c.error().message;
    if (on_forward_) on_forward_(sample);
    return;
  }
  forward_error_.clear();
  sample.ok = true;
  sample.counters = *c;
  if (on_forward_) on_forward_(sample);
}

Status NatManager::ensure_netlink() {
  if (netlink_) return ok();
  auto nl = Netlink::open(options_.netlink_timeout);
  if (!nl) return core::Unexpected(nl.error());
  netlink_.emplace(std::move(nl).value());
  return ok();
}

Status NatManager::commit_and_verify() {
  if (auto s = check_interface(nat_->egress_interface); !s) return s;
  if (auto s = ensure_netlink(); !s) return s;
  auto batch = build_batch(*nat_, netlink_->next_seq(), replaced_table_);
  if (!batch) return core::Unexpected(batch.error());
  if (auto s = netlink_->commit(*batch); !s) return s;
  replaced_table_.clear();
  // A commit that the kernel ACKed is not yet proof: read it back (the failure mode of other
  // NAT setups is a rule that silently never got installed).
  if (auto s = netlink_->verify(*nat_); !s) {
    return fail(s.error().code, "after commit: " + s.error().message);
  }
  return ok();
}

Status NatManager::check_ownership(const NatSpec& nat) {
  if (auto s = ensure_netlink(); !s) return s;
  auto state = netlink_->read_table(nat.table);
  if (!state) return core::Unexpected(state.error());
  if (!state->exists) return ok();
  // Every chain hanat may have created in this table, with or without the forward and
  // leak counters (a reload may have turned either off since).
  std::vector<std::string> ours;
  for (const bool counters : {false, true}) {
    for (const bool leak : {false, true}) {
      NatSpec variant = nat;
      variant.forward_counters = counters;
      variant.leak_counter = leak;
      auto want = desired_state(variant);
      if (!want) return core::Unexpected(want.error());
      for (const auto& c : want->chains) ours.push_back(c.name);
    }
  }
  for (const auto& c : state->chains) {
    if (std::find(ours.begin(), ours.end(), c.name) == ours.end()) {
      return fail(std::make_error_code(std::errc::operation_not_permitted),
                  "table ip " + nat.table + " exists and holds chain " + c.name +
                      ", which hanat does not create: it is not hanat's table and is left "
                      "alone (choose another nat.table)");
    }
  }
  return ok();
}

Status NatManager::fail_with(Error e) {
  ++counters_.failures;
  // Start the next attempt on a fresh socket: after a timeout or dropped ACKs (ENOBUFS) the
  // old one may still hold answers that belong to nothing.
  netlink_.reset();
  set_health(Health{false, e.message});
  return core::Unexpected(std::move(e));
}

void NatManager::set_health(Health h) {
  if (h == health_) return;
  health_ = std::move(h);
  if (on_health_) on_health_(health_);
}

void NatManager::arm_timer() {
  if (timer_.active()) return;
  // The callback only records its outcome in health_/counters_; nothing to propagate.
  (void)timer_.start(options_.drift_interval, options_.drift_interval, [this] { (void)check(); });
}

Status NatManager::apply(const NatSpec& nat, const SysctlSpec& sysctls) {
  if (auto v = validate(nat); !v) return v;  // nothing changes for an invalid spec
  if (!nat_ || nat_->table != nat.table) {
    // A name this process has not applied yet: hanat replaces its table whole, so a table
    // of that name that holds chains hanat never creates belongs to someone else (an
    // operator's, a firewall's) and is left alone.
    if (auto s = check_ownership(nat); !s) return fail_with(std::move(s).error());
  }
  if (nat_ && nat_->table != nat.table && replaced_table_.empty()) {
    // Renamed by a reload: hanat owns one table, so the old one goes — in the transaction
    // that creates the new one (commit_and_verify), so that a failure keeps the old
    // table and the host keeps its masquerade. Only a name hanat applied itself is ever
    // removed; a rename back before the removal committed cancels it.
    replaced_table_ = nat_->table;
  }
  if (replaced_table_ == nat.table) replaced_table_.clear();
  nat_ = nat;
  sysctls_ = sysctl_entries(sysctls);
  arm_timer();
  ensure_monitor();
  if (auto s = commit_and_verify(); !s) return fail_with(std::move(s).error());
  ++counters_.applies;
  // After the table: the nat chain makes the kernel load conntrack for this namespace, and
  // the net.netfilter.nf_conntrack_* entries exist only from then on.
  auto changed = sysctl_.apply(sysctls_);
  if (!changed) return fail_with(std::move(changed).error());
  set_health(Health{true, {}});
  // Last: the table is in place and forwarding on, so a purged flow's next packet is NATed
  // (a host whose ip_forward was on before hanatd started forwarded without NAT until now).
  purge_unnatted_flows();
  return ok();
}

void NatManager::purge_unnatted_flows() {
  PurgeOutcome out;
  auto filter = purge_filter(*nat_);
  auto r = filter ? purge_unnatted(std::move(filter).value(), options_.netlink_timeout)
                  : core::Result<PurgeResult, Error>(core::Unexpected(filter.error()));
  if (r) {
    out.purged = r->purged;
    counters_.purged += r->purged;
  } else {
    out.error = r.error().message;
    ++counters_.purge_failures;
  }
  if (on_purge_) on_purge_(out);
}

void NatManager::ensure_monitor() {
  if (!options_.watch_notifications) return;
  if (monitor_) {
    monitor_->set_table(nat_->table);
    return;
  }
  auto m = NftMonitor::open(
      loop_, nat_->table,
      [this](const std::string& what) {
        if (!nat_) return;
        ++counters_.notified_checks;
        if (monitor_) counters_.notifications_lost = monitor_->overruns();
        // Outcome recorded in health_/counters_ and reported through the callbacks.
        (void)check_now("nftables notification: " + what);
      },
      options_.notification_rcvbuf);
  if (!m) {
    monitor_error_ = m.error().message;
    return;
  }
  monitor_error_.clear();
  monitor_ = std::move(m).value();
}

void NatManager::purge_now() {
  if (nat_) purge_unnatted_flows();
}

Status NatManager::check() {
  return check_now("drift check");
}

Status NatManager::check_now(const std::string& trigger) {
  if (!nat_)
    return fail(std::make_error_code(std::errc::operation_not_permitted), "nothing applied");
  ++counters_.checks;
  if (auto s = check_interface(nat_->egress_interface); !s) {
    return fail_with(std::move(s).error());
  }
  if (auto s = ensure_netlink(); !s) return fail_with(std::move(s).error());
  auto v = netlink_->verify(*nat_);
  if (!v) {
    if (v.error().code != std::errc::state_not_recoverable) {
      return fail_with(std::move(v).error());  // could not even read the table
    }
    const std::string drift = v.error().message;
    if (auto s = commit_and_verify(); !s) {
      Error e = std::move(s).error();
      e.message = drift + "; repair failed: " + e.message;
      return fail_with(std::move(e));
    }
    ++counters_.table_repairs;
    last_repair_ = drift;
    if (on_repair_) on_repair_(Repair{drift, trigger});
    purge_unnatted_flows();
  }
  auto diff = sysctl_.check(sysctls_);
  if (!diff) return fail_with(std::move(diff).error());
  if (*diff) {
    auto changed = sysctl_.apply(sysctls_);
    if (!changed) {
      Error e = std::move(changed).error();
      e.message = **diff + "; repair failed: " + e.message;
      return fail_with(std::move(e));
    }
    ++counters_.sysctl_repairs;
    last_repair_ = **diff;
    if (on_repair_) on_repair_(Repair{last_repair_, trigger});
  }
  set_health(Health{true, {}});
  return ok();
}

Status NatManager::remove() {
  stop();
  const std::string table = nat_ ? nat_->table : NatSpec{}.table;
  nat_.reset();
  set_health(Health{false, "removed"});
  if (auto s = ensure_netlink(); !s) return s;
  auto batch = build_removal(table, netlink_->next_seq());
  if (!batch) return core::Unexpected(batch.error());
  if (auto s = netlink_->commit(*batch); !s) return s;
  auto state = netlink_->read_table(table);
  if (!state) return core::Unexpected(state.error());
  if (state->exists) {
    return fail(std::make_error_code(std::errc::state_not_recoverable),
                "table ip " + table + ": still present after removal");
  }
  return ok();
}

void NatManager::stop() {
  monitor_.reset();
  (void)timer_.stop();
  (void)forward_timer_.stop();
}

}  // namespace hanat::netfilter
