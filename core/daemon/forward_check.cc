// SPDX-License-Identifier: GPL-2.0-or-later
#include "core/daemon/forward_check.h"

#include <utility>

namespace hanat::daemon {

ForwardCheck::ForwardCheck(netfilter::NatManager& nat) : nat_(nat) {
  nat_.on_forward_counters([this](const netfilter::ForwardSample& s) { feed(s); });
}

void ForwardCheck::watch_forwarding(std::optional<ForwardCheckOptions> o) {
  watch_.rebase();
  if (!o) {
    nat_.watch_forwarding(std::nullopt);
    if (watch_.state() != engine::Health::Unknown) {
      watch_ = engine::ForwardWatch();
      if (on_change_) on_change_({engine::Health::Unknown, "forward check off"});
    }
    return;
  }
  o->watch.interval = o->interval;
  watch_.set_options(o->watch);
  nat_.watch_forwarding(o->interval);
}

void ForwardCheck::feed(const netfilter::ForwardSample& s) {
  if (!s.ok) {
    watch_.rebase();  // the window is lost; the next good reading is a new baseline
    return;
  }
  auto v = watch_.sample(s.counters.in, s.counters.out, s.counters.leaked, s.at);
  // Packets left with a private source: their flows' conntrack entries carry no NAT. Purge
  // them before reporting, so the next window shows whether the purge helped.
  if (watch_.purge_wanted()) nat_.purge_now();
  if (v && on_change_) on_change_(*v);
}

}  // namespace hanat::daemon
