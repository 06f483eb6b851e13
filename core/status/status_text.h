// SPDX-License-Identifier: GPL-2.0-or-later
#pragma once
// `hanatctl status` for people: the status socket's JSON reply rendered as text. Pure (no
// I/O, no clock: durations come from the reply), so it is unit-tested on fixed replies;
// hanatctl only connects, sends and prints.

#include <jansson.h>

#include <cstdint>
#include <string>
#include <vector>

namespace hanat::status {

// The whole text for a {"cmd":"status"} reply. Missing fields are left out, never fatal:
// a daemon still starting has no members or tables yet.
[[nodiscard]] std::string format_status(const json_t* reply);

// A {"cmd":"events"} reply, one line per decision, oldest first:
// "2026-12-02T20:50:01Z notice  peer i-0b: up -> down (icmp, agent failed 3 times)".
// "no events yet" when there are none.
[[nodiscard]] std::string format_events(const json_t* reply);

// `hanatctl peers`: one block per peer of a {"cmd":"status"} reply: health, since (wall
// time and age), why it is in that health (for DOWN: the probes that failed, or the
// agent's own report), and each probe kind's last result with its age. This host first,
// as one line. "no peers (the daemon is still starting)" when the reply has none.
[[nodiscard]] std::string format_peers(const json_t* reply);

// `hanatctl routes`: one line per managed route of a {"cmd":"status"} reply: table, zone,
// destination, current target (marked "this host" when it points here), the allocated
// target and its member, "foreign" for a route hanat never writes, and the table's last
// write (target, result, time and age).
[[nodiscard]] std::string format_routes(const json_t* reply);

// `hanatctl drain --wait`: the tables of a {"cmd":"status"} reply with a route that still
// points at this host, in reply order.
[[nodiscard]] std::vector<std::string> tables_here(const json_t* reply);
// Whether a drain has finished in that reply: the engine runs, is drained, and no route
// points at this host any more.
[[nodiscard]] bool drain_finished(const json_t* reply);

// "2026-12-02T20:50:01.123Z" for unix milliseconds (UTC; no clock read).
[[nodiscard]] std::string iso8601_ms(std::int64_t unix_ms);

// "850ms", "12.3s", "4m05s", "2h03m", "3d04h": tenths of a second under a minute, the
// two most significant units above.
[[nodiscard]] std::string human_duration(std::int64_t ms);

}  // namespace hanat::status
