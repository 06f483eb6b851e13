#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""e2e cut_keeps_connections (issue 21, stateful failover): 200 long-lived TCP connections
from zone a's hosts through nat1, then every link of nat1 cut (a NAT that dies). Each zone
has an Elastic IP (failover.move_eip = true; the lab's fabric plays the internet gateway:
it translates each EIP to the private address EC2 says it is associated with), so the
connections leave with zone a's EIP, and after the failover zone a's EIP is on a secondary
private IP of nat2.

Zone a's two hosts use the same source ports, so nat1 remaps the public port of one
connection of each pair (as a busy NAT does for hosts talking to one popular address).

  1. [failover] stateful = false (today): the route and zone a's EIP move to nat2. nat2 has
     no conntrack entry for the connections: it picks up their next packet mid-stream and
     masquerades it afresh. The fabric translates the EIP statelessly, as EC2's internet
     gateway does, so a connection survives only where nat2 happens to pick the port nat1
     had (the host's own source port); every connection whose port nat1 remapped is reset
     by the server, and fewer than 99 % survive.
  2. Both hanatd restarted with stateful = true, nat1 back (it fails back, zone a's EIP
     with it), 200 new connections. Before the cut nat2 must hold nat1's flows (its status:
     `takeover.replicas.<nat1>`); after it, nat2 installed them before its route write
     (`takeover.last.<nat1>`), >= 99 % of the connections survive (the server sees the same
     address and port, no RST) and the longest stall is at most the failover outage (the
     route's move after the cut) + 1 s.
  3. 10 connections opened through nat2 while nat1 is still cut (zone a's hosts share their
     source ports: nat2 remaps half). nat1 back: nat2, which still holds zone a's table,
     replicates the zone's flows to nat1 (the member that takes the table), and nat1
     installs them on its own address before its failback's route write (status
     `takeover.last["failback of <nat2>"]`): the 10 connections survive the failback.
     Zone a fails back with its EIP; nat2 keeps the secondary private IP the EIP
     left as the zone's source for a grace (status `eips.zones[].leaving`: packets still
     routed to nat2 are dropped at the internet gateway, not masqueraded afresh and reset),
     then deletes the conntrack entries translated to it (status
     `takeover.purged_on_release`). Zone b's EIP stays on nat2: nat1, cut off from
     everything, judged nat2 dead too (zone b has flows, replicated to nat1) and started a
     stateful takeover of zone b; that takeover's AssociateAddress, queued on nat1's dropped
     EC2 leg, was abandoned with its route claim when nat1 found its own data plane failed.
  4. Only nat1's private link cut (frames dropped): nat2 no longer hears nat1 and takes zone
     a's table with nat1's flows, while nat1's own checks, which look outwards, find nothing
     wrong with it (it never fails, so its recovery does not bound anything). Half of zone
     a's new connections end through nat2; the link returns and nat1 takes the table back.
     nat1's ESTABLISHED entries of the ended connections, which no packet of theirs will
     reach again, then expire in at most 350 s instead of the kernel's 5 days (status
     `takeover.stale_bounded`). The other half come back through nat1, every one alive.

A failed check of step 2 names the first missing link of the chain: nothing replicated
to nat2, nothing installed, or installed but the connections still reset.

Public-path probing is off (probe.paths = ["private"]), as in eip_follows: moto leaves a
moved EIP's address on the old holder's DescribeInstances entry.

Usage: cut_keeps_connections_e2e.py HANATD [HANATCTL]. Exit 0 pass, 1 fail, 77 skipped.
"""
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from eip_follows_e2e import add_zone_eips, fabric_eip  # noqa: E402
from hanatlab import checks, conns, connkeep  # noqa: E402
from hanatlab import scenarios as sc  # noqa: E402

COUNT = connkeep.COUNT
# Zone a's two hosts open their connections from the same source ports (SPORT_BASE + i), so
# nat1's masquerade keeps the port of one of each pair and must remap the other: half the
# flows leave with a public port that only nat1's conntrack knows.
# The stateful run uses other ports: the first run's connections may still be in TIME_WAIT
# and in the NATs' conntrack tables.
SPORT_BASE = {False: 45000, True: 46000}
REPLICATED_WAIT_S = 15  # new flows are streamed as they start; a full resync follows a connect
SURVIVE = 0.99
ZONE_B_COUNT = 10
# Step 4: connections of zone a that end while nat2 has the table, and as many that live on.
ENDING = 10
ENDING_SPORT, LIVING_SPORT = 48000, 48100
# Step 3: connections opened through nat2 while nat1 is cut (zone a's two hosts share the
# ports, so nat2 remaps half of them): they must survive the failback too.
DURING = 10
DURING_SPORT = 48200
BOUND_S = 350  # netfilter/ct_install.h kInstallTimeoutMaxS
# How long zone b's EIP is watched after nat1's links return: its dropped EC2 leg's queued
# request would reach EC2 within a TCP retransmission or a client retry.
STRAY_WAIT_S = 5


def overrides(stateful):
    return checks.overrides(checks.LIVE, connkeep.keep_overrides(False), {
        "failover": {"move_eip": True, "stateful": stateful},
        "probe": {"paths": ["private"]}})


def takeover(lab, hanatctl, nat):
    return (checks.status_json(lab, hanatctl, nat) or {}).get("takeover") or {}


def replicated(lab, hanatctl, nat, member):
    """Live flows `nat` holds of `member` (status takeover.replicas), 0 when none."""
    return ((takeover(lab, hanatctl, nat).get("replicas") or {}).get(member) or {}).get(
        "live", 0)


def cut_run(lab, ck, server, hanatctl, stateful, la):
    """Connections from zone a through nat1, nat1 cut; the measurements."""
    hosts = connkeep.zone_hosts(lab, "a")
    nat1_id = lab.nat(1)["instance_id"]
    res = {"stateful": stateful}
    c = connkeep._open(lab, server, hosts, COUNT, sport_base=SPORT_BASE[stateful])
    res["established"] = c.established()
    res["before"] = connkeep._before(c)
    if stateful:
        held = ck.poll(f"nat2 holds nat1's {COUNT} flows",
                       lambda: replicated(lab, hanatctl, 2, nat1_id) >= COUNT,
                       REPLICATED_WAIT_S)
        res["replicated_before_cut"] = replicated(lab, hanatctl, 2, nat1_id)
        res["replicas"] = takeover(lab, hanatctl, 2).get("replicas")
        res["replication_ok"] = bool(held)
    t_ev = time.time_ns()
    sc.cut_links(lab, 1)
    moved = connkeep._wait(lambda: connkeep._moved_at(lab, hosts[0], 2, t_ev),
                           connkeep.MOVE_TIMEOUT_S)
    res["route_moved_ms"] = None if moved is None else round(moved - t_ev / 1e6, 1)
    res["eip_on_nat2"] = bool(ck.poll("zone a's EIP on nat2", lambda: (
        fabric_eip(lab, "a") or [None])[0] == "nat2", 15))
    time.sleep(connkeep.OBSERVE_S)  # the connections run on after the move: the observation
    res["new_source"] = connkeep._new_source(lab, hosts[0])
    res["takeover"] = takeover(lab, hanatctl, 2)
    r = connkeep._outcome(res, c, t_ev)
    # Port kept by nat1's masquerade (the public port is the host's source port) or remapped.
    for kind, same in (("kept", True), ("remapped", False)):
        cs = [x for x in r["connections"] if x.get("seen_as") and x.get("local") and
              (x["seen_as"][1] == x["local"][1]) == same]
        res[f"port_{kind}"] = len(cs)
        res[f"port_{kind}_survived"] = sum(1 for x in cs if x["outcome"] == "survived")
    print(json.dumps(res, default=str), flush=True)
    print(f"cut (stateful = {str(stateful).lower()}): {res['line']}; route moved "
          f"{res['route_moved_ms']} ms after the cut", flush=True)
    ck.check(f"{COUNT} connections established through nat1 with zone a's EIP ({la})",
             res["established"] == COUNT and res["before"] == {la: COUNT},
             f"established {res['established']}, server saw {res['before']}")
    ck.check("the route moved to nat2", res["route_moved_ms"] is not None,
             res["route_moved_ms"])
    ck.check("zone a's EIP followed it to nat2", res["eip_on_nat2"], fabric_eip(lab, "a"))
    ck.check(f"a connection opened afterwards leaves with zone a's EIP ({la})",
             res["new_source"] == la, res["new_source"])
    ck.check(f"nat1 remapped the public port of some connections (same source ports from "
             f"two hosts: {res['port_remapped']} remapped, {res['port_kept']} kept)",
             res["port_remapped"] > 0 and res["port_kept"] > 0)
    return res


def stateful_checks(ck, res, nat1_id):
    """Issue 21's target, each check naming the first missing link."""
    last = ((res.get("takeover") or {}).get("last") or {}).get(nat1_id)
    if not res["replication_ok"]:
        ck.check(f"nat2 held nat1's {COUNT} flows before the cut (replication)", False,
                 f"the survivor held {res['replicated_before_cut']} replicated flows of nat1 "
                 f"(status takeover.replicas: {res['replicas']}): nat1's replication stream "
                 "(Replica frames on the member channel, delivered to "
                 "Node::on_replica_batch) did not reach nat2")
    else:
        ck.check(f"nat2 held nat1's {COUNT} flows before the cut (replication)", True,
                 res["replicated_before_cut"])
    installed = (last or {}).get("installed", 0)
    ck.check(f"nat2 installed >= {SURVIVE:.0%} of nat1's flows when it took nat1's tables",
             last is not None and installed >= SURVIVE * COUNT,
             "no stateful takeover of nat1 ran on nat2 (status takeover.last is empty)"
             if last is None else f"takeover.last: {last}")
    ck.check(f">= {SURVIVE:.0%} of {COUNT} connections survived (same address and port, no "
             "RST)", res["survived"] >= SURVIVE * COUNT, res["line"])
    ck.check(f"the connections whose port nat1 had remapped survived too "
             f"({res['port_remapped_survived']} of {res['port_remapped']})",
             res["port_remapped"] > 0 and
             res["port_remapped_survived"] >= SURVIVE * res["port_remapped"],
             res["line"])
    bound = None if res["route_moved_ms"] is None else res["route_moved_ms"] + 1000
    # Measured on a run where connections survived: a reset ends a connection's wait early.
    ck.check("the longest stall is at most the failover outage + 1 s",
             bound is not None and res["survived"] > 0 and res["max_echo_ms"] is not None
             and res["max_echo_ms"] <= bound,
             ("no connection survived: nothing to measure; " if res["survived"] == 0 else "")
             + f"longest echo wait {res['max_echo_ms']} ms, route moved "
             f"{res['route_moved_ms']} ms after the cut")


def conntrack(lab, nat):
    """NAT `nat`'s conntrack entries, one dict each: proto, state (TCP), timeout (s), and
    the src, dst, sport and dport lists (original direction first, then the reply's)."""
    cp = lab.exec(lab.nat(nat)["ns"], ["cat", "/proc/net/nf_conntrack"], check=False)
    out = []
    for line in cp.stdout.splitlines():
        f = line.split()
        if len(f) < 6:
            continue
        e = {"proto": f[2], "timeout": int(f[4]), "state": f[5] if f[2] == "tcp" else ""}
        for key in ("src", "dst", "sport", "dport"):
            e[key] = [x.split("=", 1)[1] for x in f if x.startswith(key + "=")]
        out.append(e)
    return out


def answering(lab, nat, address):
    """NAT `nat`'s conntrack entries translated to `address` (their reply goes to it)."""
    return sum(1 for e in conntrack(lab, nat) if len(e["dst"]) >= 2 and e["dst"][1] == address)


def failback_checks(lab, ck, server, hanatctl, zone, rt_a):
    """3. nat1 back: zone a fails back, its EIP leaves nat2's secondary address, and nat2
    deletes what it translated to that address: the installed entries of connections that
    live on through nat1 would otherwise keep their ports there for days (a packet refreshes
    an ESTABLISHED entry to 5 days), and the next takeover of zone a would find them taken."""
    zones = ((checks.status_json(lab, hanatctl, 2) or {}).get("eips") or {}).get("zones", [])
    addr = next((z.get("secondary_ip") for z in zones if z.get("zone") == zone), None)
    ck.check("after the takeover zone a leaves nat2 with a secondary private IP",
             addr is not None, zones)
    if addr is None:
        return
    before = answering(lab, 2, addr)
    # The closed connections' entries (TIME_WAIT: 120 s) at least.
    ck.check(f"nat2 holds entries translated to {addr} before the failback", before > 0,
             before)
    ck.need("nat1 found its own data plane failed while cut", lambda: (checks.status_json(
        lab, hanatctl, 1) or {}).get("state") in ("failing", "unhealthy"), 15)
    nat1, nat2 = lab.nat(1), lab.nat(2)
    during = connkeep._open(lab, server, connkeep.zone_hosts(lab, "a"), DURING,
                            sport_base=DURING_SPORT)
    ck.check(f"{DURING} connections opened through nat2 while nat1 is cut",
             during.established() == DURING, during.established())
    sc.cut_links(lab, 1, up=True)

    def leaving_with_entries():
        # Released, and its grace running: the zone's sources still leave from the address
        # (its snat rule), and its entries are still there.
        z = next((z for z in ((checks.status_json(lab, hanatctl, 2) or {}).get("eips") or {})
                  .get("zones", []) if z.get("zone") == zone), {})
        return z.get("leaving") is True and z.get("secondary_ip") == addr and \
            answering(lab, 2, addr) > 0
    grace = ck.poll("nat2 released zone a's EIP and keeps its address's entries a while",
                    leaving_with_entries, checks.FAILBACK_S + 20)
    ck.check(f"once zone a's EIP left it, nat2 keeps {addr}'s snat rule and entries for a "
             "grace (packets still routed there are dropped at the internet gateway, not "
             "masqueraded afresh and reset by the server)", bool(grace))
    ck.need("zone a's table back on nat1",
            lambda: checks.targets(lab)[rt_a] == nat1["eni_id"], checks.FAILBACK_S + 20)
    ck.need("zone a's EIP back on nat1's primary IP",
            lambda: fabric_eip(lab, "a") == ["nat1", nat1["private_address"]], 20)
    # nat1's takeover of zone b while it was cut off was abandoned with its route claim
    # when it found its own data plane failed, the AssociateAddress with it (sent once its
    # EC2 leg returned, it would take zone b's EIP from nat2, which serves the zone and
    # believes it holds the EIP: zone b would leave without it).
    home_b = ["nat2", nat2["private_address"]]
    moved = ck.poll("zone b's EIP leaves nat2 (it must not)",
                    lambda: fabric_eip(lab, "b") != home_b, STRAY_WAIT_S)
    ck.check("zone b's EIP stayed on nat2's primary IP: nat1's takeover of it while cut off "
             "was abandoned, its AssociateAddress too", not moved, fabric_eip(lab, "b"))
    left = ck.poll(f"nat2 holds no entry translated to {addr}",
                   lambda: answering(lab, 2, addr) == 0, 15)
    purged = takeover(lab, hanatctl, 2).get("purged_on_release", 0)
    # Not all `before` are purged: some end by themselves (closed, timed out) during the
    # grace; none may be left.
    ck.check(f"once zone a's EIP left it and its grace ended, nat2 deleted its entries "
             f"translated to {addr} ({before} before; status takeover.purged_on_release "
             f"{purged})", bool(left) and purged > 0, f"{answering(lab, 2, addr)} left")
    # nat2 replicated the zone's flows to nat1 once nat1 was back (the table still routed
    # to nat2); nat1 installed them before its route write, on its own address.
    fb = ((takeover(lab, hanatctl, 1).get("last") or {}).get(
        "failback of " + nat2["instance_id"]) or {})
    ck.check(f"nat1 installed the flows nat2 opened for zone a meanwhile before its failback "
             f"(status takeover.last[\"failback of {nat2['instance_id']}\"])",
             fb.get("installed", 0) >= DURING, fb)
    r = during.stop()
    ck.check(f"the {DURING} connections opened through nat2 during the cut survived the "
             f"failback ({r['line']})", r["summary"]["survived"] == DURING, r["line"])


def own_entries(lab, nat, host_addresses, sports):
    """NAT `nat`'s TCP entries of the connections from `host_addresses` with a source port
    in `sports`: {(source, port): (state, timeout s)}."""
    out = {}
    for e in conntrack(lab, nat):
        if e["proto"] != "tcp" or not e["src"] or not e["sport"]:
            continue
        src, sport = e["src"][0], int(e["sport"][0])  # the private host's (original) side
        if src in host_addresses and sport in sports:
            out[(src, sport)] = (e["state"], e["timeout"])
    return out


def private_cut_checks(lab, ck, server, hanatctl, rt_a):
    """4. A table that left and came back without nat1 failing (only its private link cut):
    nat1 bounds its entries of the connections that went on without it."""
    nat1, nat2 = lab.nat(1), lab.nat(2)
    hosts = connkeep.zone_hosts(lab, "a")
    addrs = {lab.host(h)["address"] for h in hosts}
    # nat2 still holds nat1's flows of the earlier steps (closed ones until their timeouts):
    # the new connections' flows are counted on top of them.
    base = replicated(lab, hanatctl, 2, nat1["instance_id"])
    ending = connkeep._open(lab, server, hosts, ENDING, sport_base=ENDING_SPORT)
    living = connkeep._open(lab, server, hosts, ENDING, sport_base=LIVING_SPORT)
    ending_ports = range(ENDING_SPORT, ENDING_SPORT + max(1, ENDING // len(hosts)))
    ck.need(f"nat2 holds nat1's flows of the {2 * ENDING} new connections (on top of "
            f"{base})",
            lambda: replicated(lab, hanatctl, 2, nat1["instance_id"]) >= base + 2 * ENDING,
            REPLICATED_WAIT_S)
    # What the kernel gives a connection that sends (nf_conntrack_tcp_timeout_established):
    # what nat1's entries would keep without a bound. Polled: while a segment waits for its
    # ACK the entry shows nf_conntrack_tcp_timeout_unacknowledged (300 s) instead.
    def unbounded():
        e = own_entries(lab, 1, addrs, ending_ports)
        return e if len(e) == ENDING and all(st == "ESTABLISHED" and t > BOUND_S
                                             for st, t in e.values()) else None
    unbounded_entries = ck.poll("nat1's entries over the bound", unbounded, 5)
    ck.check(f"nat1's entries of {ENDING} live connections are ESTABLISHED with a timeout "
             f"over {BOUND_S} s", bool(unbounded_entries),
             own_entries(lab, 1, addrs, ending_ports))
    bounded_before = takeover(lab, hanatctl, 1).get("stale_bounded", 0)
    lab.set_link(1, "private", False, mode="drop")
    try:
        ck.need("zone a's table on nat2 (nat1's private link cut)",
                lambda: checks.targets(lab)[rt_a] == nat2["eni_id"], 15)

        def through_nat2():
            # An installed entry gets at most BOUND_S; a packet through it, the full timeout.
            e = own_entries(lab, 2, addrs, ending_ports)
            return len(e) == ENDING and all(st == "ESTABLISHED" and t > BOUND_S
                                            for st, t in e.values())
        ck.need("the connections' packets pass nat2 (their entries there refreshed)",
                through_nat2, 15)
        r = ending.stop()
        ck.check(f"{ENDING} connections ended through nat2 ({r['line']})",
                 r["summary"]["survived"] == ENDING, r["line"])
        state = (checks.status_json(lab, hanatctl, 1) or {}).get("state")
        ck.check(f"nat1 did not find itself failed (state {state})",
                 state in ("active", "standby"), state)
    finally:
        lab.set_link(1, "private", True, mode="drop")
    restored_ns = time.time_ns()
    ck.need("zone a's table back on nat1",
            lambda: checks.targets(lab)[rt_a] == nat1["eni_id"], checks.FAILBACK_S + 30)
    bounded = ck.poll(
        f"nat1's entries of the ended connections expire in <= {BOUND_S} s",
        lambda: all(t <= BOUND_S for _, t in own_entries(lab, 1, addrs, ending_ports).values()),
        10)
    ck.check(f"nat1's entries of the {ENDING} connections that ended through nat2 expire in at "
             f"most {BOUND_S} s", bool(bounded), own_entries(lab, 1, addrs, ending_ports))
    count = takeover(lab, hanatctl, 1).get("stale_bounded", 0) - bounded_before
    ck.check(f"nat1's status counts them (takeover.stale_bounded +{count})", count >= ENDING,
             count)
    ck.need("zone a's EIP back on nat1's primary IP",
            lambda: fabric_eip(lab, "a") == ["nat1", nat1["private_address"]], 20)
    r = living.stop()
    first = r["summary"].get("first_reset_wall_ns")
    when = ("" if first is None else
            f"; first reset {(first - restored_ns) / 1e6:+.0f} ms from the link's return")
    # The failback's window without the Elastic IP (the home NAT associates it first, the
    # holder keeps the zone's secondary IP for a grace) resets none of them.
    ck.check(f"the other {ENDING} connections survived the cut and the failback "
             f"({r['line']}{when})", r["summary"]["survived"] == ENDING, r["line"])


def body(lab, ck, hanatd, hanatctl):
    eips = add_zone_eips(lab)
    la = eips["a"]["lab_address"]
    nat1 = lab.nat(1)
    rt_a = lab.route_table("a")["id"]
    server = conns.LabServer(lab)
    try:
        # 1. Today: a dead NAT's connections die with it.
        ctl = sc.HanatController(lab, hanatd, overrides(False))
        ctl.start_all()
        ctl.wait_ready(40)
        ck.need("zone a's EIP on nat1's primary IP",
                lambda: fabric_eip(lab, "a") == ["nat1", nat1["private_address"]], 20)
        try:
            r = cut_run(lab, ck, server, hanatctl, False, la)
        finally:
            while connkeep._OPEN:
                connkeep._OPEN.pop().stop()
        # EC2's internet gateway translates an EIP statelessly, so a connection whose
        # public port nat2's masquerade happens to pick again (the host's own source port,
        # when it is free there) is picked up mid-stream by nat2's conntrack and continues;
        # one whose port nat1 had remapped gets another one from nat2 and is reset.
        ck.check(f"stateful = false: the connections whose port nat1 remapped are reset "
                 f"({r['port_remapped_survived']} of {r['port_remapped']} survived)",
                 r["port_remapped"] > 0 and r["port_remapped_survived"] == 0, r["line"])
        ck.check(f"stateful = false: fewer than {SURVIVE:.0%} survive ({r['survived']})",
                 r["survived"] < SURVIVE * COUNT, r["line"])

        # 2. Stateful: both daemons restarted with it (a restart key), nat1 back.
        ctl.stop_all()
        sc.cut_links(lab, 1, up=True)
        ctl = sc.HanatController(lab, hanatd, overrides(True))
        ctl.start_all()
        ctl.wait_ready(40)
        ck.need("zone a's table back on nat1",
                lambda: checks.targets(lab)[rt_a] == nat1["eni_id"], checks.FAILBACK_S + 20)
        ck.need("zone a's EIP back on nat1's primary IP",
                lambda: fabric_eip(lab, "a") == ["nat1", nat1["private_address"]], 20)
        ck.check("nat2 reserved a secondary private IP for zone a ahead of a takeover",
                 bool(ck.poll("nat2's reserved IP for zone a", lambda: any(
                     z.get("reserved_ip") for z in ((checks.status_json(
                         lab, hanatctl, 2) or {}).get("eips") or {}).get("zones", [])
                     if z.get("zone") == eips["a"]["zone"]), 15)),
                 ((checks.status_json(lab, hanatctl, 2) or {}).get("eips") or {}))
        # Zone b's flows through nat2, replicated to nat1: cut off from everything, nat1
        # judges nat2 dead too and starts a stateful takeover of zone b, whose early
        # AssociateAddress sits in its dropped EC2 leg (step 3).
        nat2_id = lab.nat(2)["instance_id"]
        connkeep._open(lab, server, connkeep.zone_hosts(lab, "b"), ZONE_B_COUNT,
                       sport_base=47000)
        ck.need(f"nat1 holds nat2's {ZONE_B_COUNT} flows of zone b",
                lambda: replicated(lab, hanatctl, 1, nat2_id) >= ZONE_B_COUNT,
                REPLICATED_WAIT_S)
        try:
            r = cut_run(lab, ck, server, hanatctl, True, la)
        finally:
            while connkeep._OPEN:
                connkeep._OPEN.pop().stop()
        stateful_checks(ck, r, nat1["instance_id"])
        try:
            failback_checks(lab, ck, server, hanatctl, eips["a"]["zone"], rt_a)
        finally:
            while connkeep._OPEN:
                connkeep._OPEN.pop().stop()
        try:
            private_cut_checks(lab, ck, server, hanatctl, rt_a)
        finally:
            while connkeep._OPEN:
                connkeep._OPEN.pop().stop()
        ctl.stop_all()
    finally:
        server.stop()


if __name__ == "__main__":
    checks.run("cut_keeps_connections", body, dict(nats=2, hosts_per_zone=2), __doc__)
