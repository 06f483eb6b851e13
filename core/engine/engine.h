// SPDX-License-Identifier: GPL-2.0-or-later
#pragma once
// DOC: core/engine is hanat's pure failover decision core. It receives events (probe
// results, observed route tables, completions of its own actions, ticks) and returns the
// actions to take, plus the time it next needs to be woken. It performs no I/O, reads no
// clock and logs nothing, so every policy can be tested scenario by scenario with a fake
// clock. The build fails if a file here includes an I/O header
// (cmake/check_engine_includes.cmake).
//
// Files:
//   types.h        Config (+ validate()), the Event and Action variants, Snapshot
//   machine.h      Machine: handle(Event) -> actions, next_deadline(), snapshot(); its
//                  rules live in three files:
//     machine.cc         handle(), the per-state handlers on_*() and after_reconcile() that
//                        compute a Transition, enter() that applies it, snapshot()
//     machine_facts.cc   absorb*(): probe results, observed routes, EC2 and NAT completions
//                        (epoch guard), config reloads and index_config()
//     machine_routes.cc  reconcile() and the route writes: claim(), hand_over_or_rescue(),
//                        want(), strike(), move_eips(), maybe_recover(),
//                        recompute_allocation(), holder() and the token bucket
//   allocation.h   allocate(): which healthy member serves which route table
//   peer_health.h  PeerHealth: a peer's UP/DOWN from per-kind rise/fall and the agent verdict
//   forward_watch.h ForwardWatch: the forward-stall judgement from the forward counters that
//                  netfilter reads and the shell feeds in (core/daemon/forward_check.h)
//   (core/base/health.h HealthTracker, rise/fall hysteresis of one signal, and
//   core/base/probe_kind.h ProbeKind are shared with probes/ and config; types.h names them
//   here)
//
// Policy map (DESIGN "Failover semantics" -> where it lives):
//   1 allocation -> recompute_allocation() (machine_routes.cc); 2 claim, don't push ->
//   claim() writes only self, hand_over_or_rescue() is the handover exception
//   (machine_routes.cc); 3 take over only from the dead -> holder() and claim()
//   (machine_routes.cc); 4 damping -> strike() and the hold-down check in claim()
//   (machine_routes.cc); 5 failback -> claim() (LiveMember / Fallback cases,
//   machine_routes.cc); 6 self-health -> on_serving() to Failing (machine.cc); 7 write
//   economy -> want() and the token bucket (machine_routes.cc); 8 optional actions ->
//   move_eips(), maybe_recover() (machine_routes.cc); 8's safe recovery and
//   self-suspicion (a member that sees every peer fall silent at once suspects itself
//   first) and 10's agent-silent peer -> maybe_recover(), suspicion(), agent_silent() and
//   their use in claim() and recompute_allocation(); the rules are spelled out in
//   machine.h's header comment.

#include "core/engine/allocation.h"
#include "core/engine/machine.h"
#include "core/engine/peer_health.h"
#include "core/engine/types.h"
