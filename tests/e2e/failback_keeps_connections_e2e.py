#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""e2e failback_keeps_connections (issue 20): nat2's hanatd stopped (nat1 takes zone b),
200 long-lived TCP connections from zone b's hosts through nat1, then nat2's hanatd starts
again and fails its home table back from nat1.
nat2 asks nat1 for the zone's flows (the member channel's Reclaim) and writes its route only
once it holds them; nat1 keeps translating them.
Checks in hanatlab/connkeep.py (expectations), in keep mode ([handover] flow_drain on):
200/200 survive, none stalls more than 100 ms, new connections leave through nat2, nat1
ends the handover once the clients closed them. Then the same failback with nat1's member
channel unreachable from nat2: the route still moves (the request's bound, 500 ms) and nat2
logs that the connections are not kept.

Usage: failback_keeps_connections_e2e.py HANATD [HANATCTL]. Exit 0 pass, 1 fail, 77 skipped.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hanatlab import checks, connkeep  # noqa: E402

if __name__ == "__main__":
    checks.run("failback_keeps_connections",
               connkeep.e2e_body(("failback", "failback_unreachable"), keep=True),
               dict(nats=2, hosts_per_zone=2), __doc__)
