#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""e2e partition_private_path (issue 25, DESIGN rule 4): two healthy NATs lose the private
path between them — ICMP echo and the agent port dropped between their private addresses,
what a security-group change that removes the NATs' rule for each other does — while both
still reach each other's Elastic IP through the internet gateway, the private hosts, the
internet and EC2. A peer that answers on one path is alive, so:

- no route write at all (EC2 proxy log), no route change at the fabric, no gap in either
  private host's stream;
- both NATs' `hanatctl status` (member warning and paths), `hanatctl metrics`
  (hanat_peer_path_up) and log name the broken path: "private path down, public path up";
- after the heal the warning goes and nothing moves either.

The issue's figure is a 10-minute block at hanatd's defaults (hold_down 10 s doubling to
300 s: the single-path behaviour swaps both tables at 0.8, 12.8, 24.8, 46.8 s, ...). Here
the timers are shortened as in the other lab scenarios (hold_down 2 s doubling to 4 s) and
the block lasts BLOCK_S = 30 s: 7 hold_down_max windows, more chances to swap than the
10 minutes give at the defaults (2 windows of 300 s), in a test that runs in about 90 s.

Then the other half of the issue's rule: a NAT whose own public leg alone is cut (the
internet unreachable, the private path fine) is handled by its data-plane checks, as
before: nat1's egress check fails, it hands zone a to nat2, nat2 never reports nat1's
private path as the broken one, and zone b stays on nat2; when the leg returns, zone a fails
back to nat1.

Usage: partition_private_path_e2e.py HANATD [HANATCTL]. Exit 0 pass, 1 fail, 77 skipped.
"""
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hanatlab import checks  # noqa: E402
from hanatlab import scenarios as sc  # noqa: E402

BLOCK_S = 30.0
AFTER_HEAL_S = 2 * checks.HOLD_DOWN_MAX_S  # two hold-down windows: a late swap would show
WARNING = "private path down, public path up"


def peer_member(lab, hanatctl, nat, peer):
    """The member entry of NAT `peer` in NAT `nat`'s `hanatctl status --json`, or {}."""
    node = checks.status_json(lab, hanatctl, nat) or {}
    pid = lab.nat(peer)["instance_id"]
    return next((m for m in node.get("members", []) if m.get("instance_id") == pid), {})


def path_metrics(lab, hanatctl, nat, peer):
    """{path: value} of hanat_peer_path_up for NAT `peer` in NAT `nat`'s metrics."""
    cp = checks.ctl(lab, hanatctl, nat, "metrics")
    pid = lab.nat(peer)["instance_id"]
    out = {}
    for m in re.finditer(r'^hanat_peer_path_up\{instance_id="([^"]+)",path="([^"]+)"\} (\S+)$',
                         cp.stdout, re.M):
        if m.group(1) == pid:
            out[m.group(2)] = float(m.group(3))
    return out


def log_of(lab, nat):
    try:
        with open(os.path.join(lab.dir, f"hanatd-nat{nat}.log")) as f:
            return f.read()
    except OSError:
        return ""


def body(lab, ck, hanatd, hanatctl):
    n1, n2 = lab.nat(1), lab.nat(2)
    rt_a, rt_b = lab.route_table("a")["id"], lab.route_table("b")["id"]
    ctl = sc.HanatController(lab, hanatd, checks.overrides())
    t_start = time.time_ns()
    ctl.start_all()
    ctl.wait_ready(30)

    # Both NATs probe each other on both paths; the public one is the peer's Elastic IP.
    for me, peer in ((1, 2), (2, 1)):
        m = ck.need(f"nat{me} sees nat{peer} up on both paths", lambda me=me, peer=peer: (
            lambda m: m if m.get("paths") == {"private": "up", "public": "up"} else None)(
                peer_member(lab, hanatctl, me, peer)), 15)
        ck.check(f"nat{me} probes nat{peer}'s Elastic IP {lab.nat(peer)['elastic_address']} as "
                 "its public path",
                 (m or {}).get("public_address") == lab.nat(peer)["elastic_address"], m)
    before = checks.targets(lab)

    streams = {h: lab.start_stream(h, rate=200) for h in ("a1", "b1")}
    for s in streams.values():
        s.wait_received(100, timeout=10)

    # The private path between the NATs breaks (ICMP and the agent port, both ways).
    t_block = time.time_ns()
    lab.set_private_block(1, 2, True)
    for me, peer in ((1, 2), (2, 1)):
        m = ck.poll(f"nat{me}'s warning about nat{peer}", lambda me=me, peer=peer: (
            lambda m: m if m.get("warning") == WARNING else None)(
                peer_member(lab, hanatctl, me, peer)), 10)
        ck.check(f"nat{me}'s status: nat{peer} up, paths private down / public up, "
                 f"warning \"{WARNING}\"",
                 bool(m) and m.get("health") == "up" and
                 m.get("paths") == {"private": "down", "public": "up"},
                 m or peer_member(lab, hanatctl, me, peer))
        text = checks.status_text(lab, hanatctl, me)
        line = next((ln for ln in text.splitlines() if lab.nat(peer)["instance_id"] in ln), "")
        ck.check(f"nat{me}'s `hanatctl status` shows the warning on nat{peer}'s line",
                 f"WARNING: {WARNING}" in line, text)
        pm = path_metrics(lab, hanatctl, me, peer)
        ck.check(f"nat{me}'s metrics: hanat_peer_path_up for nat{peer} private 0, public 1",
                 pm == {"private": 0.0, "public": 1.0}, pm)
        ck.check(f"nat{me}'s log has a WARNING naming the broken path",
                 f"peer {lab.nat(peer)['instance_id']}: {WARNING}" in log_of(lab, me),
                 log_of(lab, me)[-800:])

    # The observation window of the scenario, not a synchronisation: nothing may move in it.
    time.sleep(max(0.0, BLOCK_S - (time.time_ns() - t_block) / 1e9))
    for me, peer in ((1, 2), (2, 1)):
        m = peer_member(lab, hanatctl, me, peer)
        ck.check(f"after {BLOCK_S:.0f} s of block nat{me} still sees nat{peer} up with the "
                 "warning", m.get("health") == "up" and m.get("warning") == WARNING, m)
    t_heal = time.time_ns()
    lab.set_private_block(1, 2, False)
    for me, peer in ((1, 2), (2, 1)):
        m = ck.poll(f"nat{me} sees nat{peer}'s private path back", lambda me=me, peer=peer: (
            lambda m: m if m.get("paths") == {"private": "up", "public": "up"} and
            "warning" not in m else None)(peer_member(lab, hanatctl, me, peer)), 10)
        ck.check(f"healed: nat{me} sees both paths of nat{peer} up, no warning", bool(m),
                 peer_member(lab, hanatctl, me, peer))
        pm = path_metrics(lab, hanatctl, me, peer)
        ck.check(f"healed: nat{me}'s hanat_peer_path_up for nat{peer} is 1 on both paths",
                 pm == {"private": 1.0, "public": 1.0}, pm)
    time.sleep(AFTER_HEAL_S)  # observation window after the heal, as above
    t_end = time.time_ns()
    gaps = {h: s.stop() for h, s in streams.items()}

    w = checks.writes(lab, t_start, t_end)
    ck.check(f"0 route writes from start to {AFTER_HEAL_S:.0f} s after the heal "
             f"({len(w)})", w == [], [(x.get("route_table"), x.get("client")) for x in w])
    for h, r in gaps.items():
        ck.check(f"{h}: no gap in its stream (longest {r['max_gap_ms']:.0f} ms < 500 ms, "
                 f"lost {r['lost']})", r["max_gap_ms"] < 500, r)
        ck.check(f"{h}: its route never changed", checks.flips(lab, h, t_block) == [],
                 checks.flips(lab, h, t_block))
    ck.check("EC2's route tables as before the block", checks.targets(lab) == before,
             (before, checks.targets(lab)))
    print(f"      block {BLOCK_S:.0f} s from {t_block}, heal at {t_heal}", flush=True)

    # nat1's own public leg alone is cut: its egress check (not the second path) decides.
    a = lab.start_stream("a1", rate=200)
    a.wait_received(50, timeout=10)
    t_cut = time.time_ns()
    lab.set_link(1, "public", False, mode="drop")
    moved = ck.poll("a1's route via nat2",
                    lambda: lab.default_route("a1") == n2["private_address"], 15)
    ck.check("nat1 with its public leg cut hands zone a to nat2", bool(moved),
             f"a1 via {lab.default_route('a1')}")
    since = time.time_ns()
    ck.poll("a1's packets through nat2",
            lambda: sc.arrivals_since(a, since, n2["public_address"]) >= 50, 5)
    self1 = ck.poll("nat1's own egress check down", lambda: (
        lambda s: s if s.get("egress") == "down" else None)(
            (checks.status_json(lab, hanatctl, 1) or {}).get("self", {})), 5)
    ck.check("nat1's status names its own failing data plane (egress down)", bool(self1),
             (checks.status_json(lab, hanatctl, 1) or {}).get("self"))
    # nat1's agent (private path) says its own data plane is down: nat2 takes that verdict,
    # not a path warning.
    m = ck.poll("nat2 to see nat1 down", lambda: (
        lambda m: m if m.get("health") == "down" else None)(peer_member(lab, hanatctl, 2, 1)),
        5) or peer_member(lab, hanatctl, 2, 1)
    ck.check("nat2 sees nat1 down by nat1's own verdict, with no broken-path warning",
             m.get("health") == "down" and m.get("warning") is None, m)
    lab.set_link(1, "public", True, mode="drop")
    back = ck.poll("a1's route back via nat1",
                   lambda: lab.default_route("a1") == n1["private_address"],
                   checks.FAILBACK_S + 15)
    ck.check("nat1's leg back: zone a fails back to nat1", bool(back),
             f"a1 via {lab.default_route('a1')}")
    r = a.stop()
    t_end = time.time_ns()
    # The egress check decides, as before the second path: the lab probes the internet
    # host every 1 s and calls egress down when nothing answered within 3 s; then one
    # ReplaceRoute and the fabric's next poll.
    ck.check(f"public-leg cut: a1's longest gap {r['max_gap_ms']:.0f} ms < 5000 ms (egress "
             "check: 3 s window at a 1 s interval, then the handover)",
             r["max_gap_ms"] < 5000, r)
    wa, wb = (checks.writes(lab, t_cut, t_end, table=t) for t in (rt_a, rt_b))
    # Today's writes for a NAT whose data plane fails: its own handover to nat2, nat2's
    # take-over of a peer whose agent reports down (the same target: the two race), and
    # the failback.
    ck.check(f"public-leg cut: zone a's table written {len(wa)} times (<= 3: nat1's "
             "handover, nat2's take-over, the failback), zone b's never",
             1 <= len(wa) <= 3 and wb == [],
             [(x.get("route_table"), x.get("target"), x.get("client")) for x in wa + wb])


if __name__ == "__main__":
    checks.run("partition_private_path", body, dict(nats=2, hosts_per_zone=1), __doc__)
