// SPDX-License-Identifier: GPL-2.0-or-later
#pragma once
// `hanatctl status` for people: the status socket's JSON reply rendered as text. Pure (no
// I/O, no clock: durations come from the reply), so it is unit-tested on fixed replies;
// hanatctl only connects, sends and prints.

#include <jansson.h>

#include <cstdint>
#include <string>

namespace hanat::status {

// The whole text for a {"cmd":"status"} reply. Missing fields are left out, never fatal:
// a daemon still starting has no members or tables yet.
[[nodiscard]] std::string format_status(const json_t* reply);

// A {"cmd":"events"} reply, one line per decision, oldest first:
// "2026-12-02T20:50:01Z notice  peer i-0b: up -> down (icmp, agent failed 3 times)".
// "no events yet" when there are none.
[[nodiscard]] std::string format_events(const json_t* reply);

// "850ms", "12.3s", "4m05s", "2h03m", "3d04h": tenths of a second under a minute, the
// two most significant units above.
[[nodiscard]] std::string human_duration(std::int64_t ms);

}  // namespace hanat::status
