#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""e2e foreign_route (issue 16, DESIGN rule 3): an operator points zone b's table at the
VPC's transit gateway while both NATs are healthy, and later the NAT that used to serve it
(nat2) is cut: no hanat write touches that table (counted per table at the lab's EC2
proxy, which every hanatd request goes through), `hanatctl status` shows it foreign with
the transit gateway's id. Once the operator points it back at a member (nat2, still cut),
hanat manages it again: nat1 takes it. nat2 returns and fails back. A second run does the
same with a NAT Gateway that is not the fallback (none is configured).

Usage: foreign_route_e2e.py HANATD [HANATCTL]. Exit 0 pass, 1 fail, 77 skipped.
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hanatlab import checks  # noqa: E402
from hanatlab import scenarios as sc  # noqa: E402


def foreign_routes(lab, hanatctl, nat, table):
    """The routes of `table` that `hanatctl status --json` marks foreign."""
    entry = checks.table_entry(checks.status_json(lab, hanatctl, nat), table) or {}
    return [r for r in entry.get("routes", []) if r.get("foreign") is True]


def shows_foreign(lab, hanatctl, nat, table, target):
    """hanatctl status shows `table`'s route as foreign, naming `target`: in --json (the
    route marked foreign, its current target `target`) and in the text (its line)."""
    js = foreign_routes(lab, hanatctl, nat, table)
    text = checks.status_text(lab, hanatctl, nat)
    lines = [ln for ln in text.splitlines()
             if table in ln and "foreign" in ln and target in ln]
    return bool(lines) and any(r.get("current") == target for r in js)


def one_run(lab, ck, hanatctl, what, kind, target):
    rt_b = lab.route_table("b")["id"]
    nat1, nat2 = lab.nat(1), lab.nat(2)
    tag = f"[{what}] "
    ck.need("zone b's table on nat2", lambda: checks.targets(lab)[rt_b] == nat2["eni_id"], 10)

    # The operator points the table elsewhere (straight to EC2, not through hanat's proxy).
    t0 = time.time_ns()
    lab.ec2().replace_route(RouteTableId=rt_b, DestinationCidrBlock="0.0.0.0/0",
                            **{kind: target})
    for n in (1, 2):
        ck.check(tag + f"nat{n}'s hanatctl status shows zone b's table foreign ({target})",
                 bool(ck.poll(f"nat{n} status foreign", lambda n=n: shows_foreign(
                     lab, hanatctl, n, rt_b, target), 5)),
                 checks.status_text(lab, hanatctl, n))

    # The NAT that served it dies: still nobody writes that table.
    # Links down (an ENI or host failure); the silent cut is two_per_zone_e2e.py's.
    checks.cut(lab, 2, False)
    ck.need("nat1 sees nat2 down", lambda: any(
        m.get("instance_id") == nat2["instance_id"] and m.get("health") == "down"
        for m in (checks.status_json(lab, hanatctl, 1) or {}).get("members", [])), 10)
    time.sleep(3)  # observation: three route read-backs (1 s) with nat2 down
    t1 = time.time_ns()
    w = checks.writes(lab, t0, t1, table=rt_b)
    ck.check(tag + f"no hanat write touched zone b's table ({len(w)})", w == [],
             [(x.get("action"), x.get("target"), x.get("client")) for x in w])
    ck.check(tag + f"zone b's table still points at {target} in EC2",
             checks.targets(lab)[rt_b] == target, checks.targets(lab)[rt_b])
    ck.check(tag + "nat1's hanatctl status still shows it foreign with nat2 down",
             shows_foreign(lab, hanatctl, 1, rt_b, target), checks.status_text(lab, hanatctl, 1))

    # The operator points it back at a member: nat2, which is down, so nat1 takes it.
    t2 = time.time_ns()
    lab.ec2().replace_route(RouteTableId=rt_b, DestinationCidrBlock="0.0.0.0/0",
                            NetworkInterfaceId=nat2["eni_id"])
    ck.check(tag + "pointed back at nat2 (down), the table is managed again: nat1 takes it",
             bool(ck.poll("zone b's table on nat1",
                          lambda: checks.targets(lab)[rt_b] == nat1["eni_id"], 10)),
             checks.targets(lab)[rt_b])
    w = checks.writes(lab, t2, time.time_ns(), table=rt_b)
    ck.check(tag + f"one write took it ({len(w)})", len(w) == 1,
             [(x.get("target"), x.get("client")) for x in w])
    ck.check(tag + "nat1's status no longer calls it foreign",
             bool(ck.poll("status not foreign", lambda: checks.table_entry(
                 checks.status_json(lab, hanatctl, 1), rt_b) is not None and not
                 foreign_routes(lab, hanatctl, 1, rt_b), 5)),
             checks.table_entry(checks.status_json(lab, hanatctl, 1), rt_b))

    # nat2 returns and takes its table back (failback): the lab as it started.
    checks.cut(lab, 2, True)
    ck.check(tag + "nat2 returns and fails back",
             bool(ck.poll("zone b's table back on nat2",
                          lambda: checks.targets(lab)[rt_b] == nat2["eni_id"],
                          checks.FAILBACK_S + 15)))
    others = [x for x in checks.writes(lab, t0, time.time_ns())
              if x.get("route_table") != rt_b]
    ck.check(tag + "zone a's table was never written", others == [],
             [(x.get("route_table"), x.get("target"), x.get("client")) for x in others])


def body(lab, ck, hanatd, hanatctl):
    ctl = sc.HanatController(lab, hanatd, checks.overrides(checks.LIVE))
    ctl.start_all()
    ctl.wait_ready(30)
    vpc = lab.desc["vpc"]
    one_run(lab, ck, hanatctl, "transit gateway", "TransitGatewayId",
            vpc["transit_gateway"]["id"])
    one_run(lab, ck, hanatctl, "NAT Gateway", "NatGatewayId", vpc["nat_gateway"]["id"])


if __name__ == "__main__":
    checks.run("foreign_route", body, dict(nats=2, hosts_per_zone=1), __doc__)
