#pragma once
// DOC: core/engine is hanat's pure failover decision core. It receives events (probe
// results, observed route tables, completions of its own actions, ticks) and returns the
// actions to take, plus the time it next needs to be woken. It performs no I/O, reads no
// clock and logs nothing, so every policy can be tested scenario by scenario with a fake
// clock. The build fails if a file here includes an I/O header
// (cmake/check_engine_includes.cmake).

#include "core/engine/allocation.h"
#include "core/engine/health.h"
#include "core/engine/machine.h"
#include "core/engine/peer_health.h"
#include "core/engine/types.h"
