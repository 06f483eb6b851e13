#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""e2e replication_stream (issue 21, the sending side of stateful failover): with
[failover] stateful = true each NAT streams its conntrack flows over the member channel to
the member that would take its tables if it died (here: the other NAT).

  1. Both NATs up: nat1's status shows nat2 as its replication target, connected, and a
     resync sent; nat2's status shows replica frames received from nat1 (and the other way).
  2. 20 long-lived TCP connections from zone a's hosts through nat1: nat2 receives at least
     one upsert per connection from nat1 (resync or events).
  3. The clients close their connections: nat1 sends the TCP state changes as events
     (its events_sent grows by at least one per connection).
  4. With stateful = false (the default) a hanatd has no replication target.

The survivor's side (installing the flows when nat1 dies) is e2e cut_keeps_connections.

Usage: replication_stream_e2e.py HANATD [HANATCTL]. Exit 0 pass, 1 fail, 77 skipped.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hanatlab import checks, conns, connkeep  # noqa: E402

COUNT = 20


def repl(lab, hanatctl, nat):
    node = checks.status_json(lab, hanatctl, nat) or {}
    return node.get("replication") or {}


def target(lab, hanatctl, nat, member):
    for t in repl(lab, hanatctl, nat).get("targets", []):
        if t.get("member") == member:
            return t
    return None


def received(lab, hanatctl, nat, member):
    return (repl(lab, hanatctl, nat).get("received") or {}).get(member) or {}


def body(lab, ck, hanatd, hanatctl):
    from hanatlab.scenarios import HanatController
    n1, n2 = lab.nat(1)["instance_id"], lab.nat(2)["instance_id"]
    ctl = HanatController(lab, hanatd, checks.overrides(
        {"failover": {"stateful": True, "move_eip": True}}))
    server = conns.LabServer(lab)
    ctl.start_all()
    ctl.wait_ready(40)

    t = ck.need("nat1 replicates to nat2, connected, a resync sent",
                lambda: (lambda x: x if x and x.get("connected") and x.get("resyncs", 0) >= 1
                         else None)(target(lab, hanatctl, 1, n2)), 15)
    ck.check("nat2 received nat1's resync",
             ck.poll("nat2 holds a resync from nat1",
                     lambda: received(lab, hanatctl, 2, n1).get("resyncs", 0) >= 1, 10),
             received(lab, hanatctl, 2, n1))
    # The resync's conntrack dump is read in steps (node_replicate.cc kDumpStep, 10 ms): its
    # record in status says how long the loop waited for it at most.
    d = repl(lab, hanatctl, 1).get("last_dump") or {}
    ck.check("nat1's status shows its last resync dump, read in steps of under 100 ms",
             d.get("wall_us", -1) >= d.get("busy_us", 0) >= d.get("longest_step_us", -1) >= 0
             and d.get("longest_step_us", 10**9) < 100_000 and d.get("flows", -1) >= 0, d)
    ck.check("nat2 replicates to nat1 too",
             ck.poll("nat2's target nat1 connected",
                     lambda: (target(lab, hanatctl, 2, n1) or {}).get("connected"), 10),
             repl(lab, hanatctl, 2))

    before = received(lab, hanatctl, 2, n1).get("upserts", 0)
    c = conns.LabConns(lab, server, connkeep.zone_hosts(lab, "a"),
                       COUNT // len(connkeep.zone_hosts(lab, "a")))
    established = c.wait_ready()
    ck.check(f"{COUNT} connections established", established == COUNT, established)
    ck.check(f"nat2 received at least {COUNT} upserts from nat1 for them",
             ck.poll("upserts from nat1",
                     lambda: received(lab, hanatctl, 2, n1).get("upserts", 0) - before >= COUNT,
                     10),
             received(lab, hanatctl, 2, n1))
    sent_before = (target(lab, hanatctl, 1, n2) or {}).get("events_sent", 0)
    r = c.stop()
    ck.check("the connections closed cleanly", r["summary"].get("reset", 0) == 0, r["line"])
    ck.check(f"nat1 sent their state changes as events (>= {COUNT})",
             ck.poll("events from nat1",
                     lambda: (target(lab, hanatctl, 1, n2) or {}).get("events_sent", 0)
                     - sent_before >= COUNT, 10),
             target(lab, hanatctl, 1, n2))
    ck.check("no event dropped", (target(lab, hanatctl, 1, n2) or {}).get("drops", 1) == 0,
             target(lab, hanatctl, 1, n2))

    # Off by default: nothing is replicated.
    ctl.stop_all()
    off = HanatController(lab, hanatd, checks.overrides())
    off.start_all()
    off.wait_ready(40)
    st = repl(lab, hanatctl, 1)
    ck.check("stateful = false: no replication target", st.get("enabled") is False and
             not st.get("targets"), st)
    off.stop_all()


if __name__ == "__main__":
    checks.run("replication_stream", body, dict(nats=2, hosts_per_zone=2), __doc__)
