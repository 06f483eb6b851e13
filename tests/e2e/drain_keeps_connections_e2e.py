#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""e2e drain_keeps_connections (issue 20): 200 long-lived TCP connections from zone a's
hosts through nat1, then `hanatctl drain` on nat1.
Checks in hanatlab/connkeep.py (expectations), in keep mode ([handover] flow_drain on):
200/200 survive, none stalls more than 100 ms, new connections leave through nat2, nat1's
hanatd still runs while its old connections are open.

Usage: drain_keeps_connections_e2e.py HANATD [HANATCTL]. Exit 0 pass, 1 fail, 77 skipped.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hanatlab import checks, connkeep  # noqa: E402

if __name__ == "__main__":
    checks.run("drain_keeps_connections",
               connkeep.e2e_body("drain", keep=True), dict(nats=2, hosts_per_zone=2),
               __doc__)
