#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""e2e two_per_zone (issue 16): three NATs, two in zone a and one in zone b, two route
tables per zone. Zone a's tables are spread over zone a's two NATs; cutting one moves its
table to the other NAT of zone a (not to zone b's); once the cut NAT is back its table
returns after failback_delay; route writes stay bounded (at most 3 to that table: the
take-over, the cut NAT's own late handover and the failback, counted at the lab's EC2
proxy; the private host's route changes exactly twice), and the tables nobody lost are
never written: not by the cut NAT's claims sent while it was cut (abandoned when its own
egress check fails, and never delivered late), nor when its links return (the peers it saw
fall silent are judged afresh).

Usage: two_per_zone_e2e.py HANATD [HANATCTL]. Exit 0 pass, 1 fail, 77 skipped.
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hanatlab import checks  # noqa: E402
from hanatlab import scenarios as sc  # noqa: E402


def body(lab, ck, hanatd, hanatctl):
    nats = {n["name"]: n for n in lab.desc["nats"]}
    zone_a = [n for n in nats.values() if n["zone_letter"] == "a"]
    zone_b = [n for n in nats.values() if n["zone_letter"] == "b"]
    tables_a = [rt for rt in lab.desc["route_tables"] if rt["zone_letter"] == "a"]
    eni_name = {n["eni_id"]: n["name"] for n in nats.values()}
    ck.check("the lab has two NATs in zone a, one in zone b, two tables per zone",
             len(zone_a) == 2 and len(zone_b) == 1 and len(tables_a) == 2, lab.desc["nats"])

    ctl = sc.HanatController(lab, hanatd, checks.TIMERS)
    t_start = time.time_ns()
    ctl.start_all()
    ctl.wait_ready(30)

    # Spread: each NAT of zone a serves one of zone a's tables, in EC2 and in status.
    now = checks.targets(lab)
    on = {rt["id"]: eni_name.get(now[rt["id"]]) for rt in lab.desc["route_tables"]}
    ck.check(f"zone a's tables are on zone a's two NATs, one each ({on})",
             sorted(on[rt["id"]] for rt in tables_a) == sorted(n["name"] for n in zone_a))
    node = checks.status_json(lab, hanatctl, zone_b[0]["name"])
    alloc = {rt["id"]: eni_name.get((checks.table_entry(node, rt["id"]) or {})
                                    .get("allocated")) for rt in tables_a}
    ck.check(f"{zone_b[0]['name']}'s hanatctl status allocates zone a's tables to zone a's "
             f"two NATs ({alloc})",
             sorted(alloc.values(), key=str) == sorted(n["name"] for n in zone_a))
    ck.check("start-up wrote no route (the tables were already where hanatd puts them)",
             checks.writes(lab, t_start) == [], checks.writes(lab, t_start))

    # First round: the NAT of zone a serving a1's table loses its links (the switch ports
    # go down, as an ENI or host failure does); second round: the same NAT is cut silently
    # (frames dropped, links up: a hung host).
    cut_round(lab, ck, hanatctl, on, "down")
    cut_round(lab, ck, hanatctl, on, "drop")


def cut_round(lab, ck, hanatctl, on, mode):
    """Cuts the zone-a NAT serving a1's table (links `mode`), checks the move to zone a's
    other NAT, restores it, checks the failback and the writes."""
    zone_a = [n for n in lab.desc["nats"] if n["zone_letter"] == "a"]
    zone_b = [n for n in lab.desc["nats"] if n["zone_letter"] == "b"]
    tables_a = [rt for rt in lab.desc["route_tables"] if rt["zone_letter"] == "a"]
    victim_table = lab.host("a1")["route_table"]
    victim = on[victim_table]
    other = next(n["name"] for n in zone_a if n["name"] != victim)
    other_table = next(rt["id"] for rt in tables_a if rt["id"] != victim_table)
    host_b = next(h["name"] for h in lab.desc["hosts"] if h["zone_letter"] == "b")
    tag = f"[{mode}] "
    stream = lab.start_stream("a1", rate=200)
    stream.wait_received(100, timeout=10)
    t_cut = time.time_ns()
    checks.cut(lab, victim, False, mode)
    moved = ck.poll(f"a1's route to {other}",
                    lambda: lab.default_route("a1") == lab.nat(other)["private_address"], 10)
    ck.check(tag + f"cutting {victim} moves a1's table to {other}, zone a's other NAT",
             bool(moved), f"a1 via {lab.default_route('a1')}")
    since = time.time_ns()
    ck.poll("a1's packets through the new NAT",
            lambda: sc.arrivals_since(stream, since, lab.nat(other)["public_address"]) >= 50, 5)
    r = stream.stop()
    ck.check(tag + f"outage {r['max_gap_ms']:.0f} ms < 3000 ms", r["max_gap_ms"] < 3000, r)
    now = checks.targets(lab)
    ck.check(tag + "in EC2 the table is on zone a's other NAT, not zone b's",
             now[victim_table] == lab.nat(other)["eni_id"], now)
    ck.check(tag + f"{other} keeps its own table",
             now[other_table] == lab.nat(other)["eni_id"], now)
    ck.check(tag + "zone b's tables stay on zone b's NAT",
             all(now[rt["id"]] == zone_b[0]["eni_id"] for rt in lab.desc["route_tables"]
                 if rt["zone_letter"] == "b"), now)
    ck.check(tag + f"{host_b} never changed route", checks.flips(lab, host_b, t_cut) == [],
             checks.flips(lab, host_b, t_cut))

    # The cut lasts until the cut NAT itself sees its egress fail (its status socket is
    # local, so it answers while cut): back from a shorter cut (under the 3 s egress
    # window) a NAT never judged itself unhealthy, so its failback delay counts as passed
    # and it reclaims at once — hanatd's failback delay runs from its own health, not from
    # when its peers can reach it again.
    ck.need(f"{victim} sees its own egress fail", lambda: (checks.status_json(
        lab, hanatctl, victim) or {}).get("self", {}).get("egress") == "down", 10)

    # Failback: the cut NAT returns; after failback_delay it takes its table back.
    t_back_ns = time.time_ns()
    checks.cut(lab, victim, True, mode)
    t_back = time.monotonic()
    back = ck.poll(f"a1's route back on {victim}",
                   lambda: lab.default_route("a1") == lab.nat(victim)["private_address"],
                   checks.FAILBACK_S + 15)
    took = time.monotonic() - t_back
    ck.check(tag + f"failback: the table returns to {victim}", bool(back))
    ck.check(tag + f"failback after {took:.1f} s >= failback_delay {checks.FAILBACK_S:.0f} s",
         took >= checks.FAILBACK_S - 0.2, took)

    # Quiet afterwards: a hold-down window with no write at all.
    t_quiet = checks.after_last_write(ck, lab, t_back_ns, victim_table) if back else \
        time.time_ns()
    time.sleep(checks.HOLD_DOWN_MAX_S)  # the observation window of the check below
    t_end = time.time_ns()
    ck.check(tag + f"no route write in the {checks.HOLD_DOWN_MAX_S:.0f} s after the failback",
         checks.writes(lab, t_quiet, t_end) == [], checks.writes(lab, t_quiet, t_end))
    w = checks.writes(lab, t_cut, t_end)
    per = {rt["id"]: sum(1 for x in w if x.get("route_table") == rt["id"])
           for rt in lab.desc["route_tables"]}
    detail = [(x.get("route_table"), x.get("target"), x.get("client")) for x in w]
    # At most: the take-over, the cut NAT's own handover to its best peer once its egress
    # check fails (DESIGN rule 2; sent while its EC2 leg is cut, it lands when the links
    # return, naming the NAT that already has the table), the failback.
    ck.check(tag + f"route writes bounded: {per[victim_table]} to the cut NAT's table (<= 3: "
             "take-over, its own handover, failback)", 1 <= per[victim_table] <= 3, detail)
    ck.check(tag + f"no write to the tables the cut NAT did not serve ({per})",
         sum(per.values()) == per[victim_table], detail)
    a1_flips = checks.flips(lab, "a1", t_cut)
    ck.check(tag + f"a1's route changed twice, to {other} and back to {victim} ({a1_flips})",
             a1_flips == [other, victim])
    # Settled before the next round: every table back where it started.
    ck.need("every table back on its start-up NAT",
            lambda: all(checks.targets(lab)[rt["id"]] == rt["initial_target"]
                        for rt in lab.desc["route_tables"]), 10)

if __name__ == "__main__":
    checks.run("two_per_zone", body,
               dict(nats=3, nat_zones=["a", "a", "b"], hosts_per_zone=2, tables_per_zone=2),
               __doc__)
