// SPDX-License-Identifier: GPL-2.0-or-later
#pragma once
// DOC: Tells a restart from a stop when SIGTERM arrives. A stop (shutdown, `systemctl
// stop`, a removed package) hands this host's routes to a peer before exiting; a restart
// (`systemctl restart`, a package upgrade) must not: the nftables table and forwarding stay
// in place while the process is replaced, peers keep the host UP on ICMP meanwhile, and the
// new process finds its routes still pointing at itself. Moving them away and back would
// reset every established connection twice for nothing.
//
// Two sources, either is enough:
//   - an explicit `hanatctl prepare-restart` shortly before the signal (the package's
//     postinst does this before it restarts the unit on upgrade; it works without a
//     system bus and under any service manager);
//   - the job systemd is running on this unit when the signal arrives, read over D-Bus
//     (org.freedesktop.systemd1): during `systemctl restart` the unit's job has JobType
//     "restart" while its stop half runs; during shutdown or `systemctl stop` it is "stop".

#include <string>
#include <string_view>

namespace hanat::daemon {

// True for the systemd job types whose stop half is followed by a start of the same unit.
// "try-restart" collapses into "restart" on an active unit in systemd's job engine, but a
// manager may report either.
[[nodiscard]] bool job_type_is_restart(std::string_view job_type);

// The type of the job systemd runs on the unit this process belongs to ("stop",
// "restart", ...), "" when there is none. Asks the system bus with a bounded timeout; on
// any failure (no bus, not a systemd unit, access denied) returns "" and says why in `why`.
// Blocking: call it once, at SIGTERM, never on a hot path.
[[nodiscard]] std::string systemd_unit_job_type(std::string* why);

}  // namespace hanat::daemon
