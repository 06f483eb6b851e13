#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""e2e spot_keeps_connections (issue 20): 200 long-lived TCP connections from zone a's
hosts through nat1, a spot interruption notice in nat1's IMDS and its termination (every
link cut) 8 s later; half the connections end 6 s after the notice.
Checks in hanatlab/connkeep.py (expectations), in keep mode ([handover] flow_drain on):
the 100 that end before the termination survive (none stalls over 100 ms), the rest end at
the termination, not before.

Usage: spot_keeps_connections_e2e.py HANATD [HANATCTL]. Exit 0 pass, 1 fail, 77 skipped.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hanatlab import checks, connkeep  # noqa: E402

if __name__ == "__main__":
    checks.run("spot_keeps_connections",
               connkeep.e2e_body("spot", keep=True), dict(nats=2, hosts_per_zone=2),
               __doc__)
