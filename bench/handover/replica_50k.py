#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Stateful failover at a NAT holding 50,000 concurrent flows (issue 21), whole daemons in
the e2e lab:

    bench/handover/replica_50k.py [--hanatd build/bin/hanatd] [--flows 50000] [--no-cut]

Opening 50,000 real connections through the lab would measure the lab; the flows are
modelled instead: bench_ct_fill creates that many established, source-NATed TCP conntrack
entries from zone a's subnet in nat1's namespace through ctnetlink (the takeover's own
install path), so nat1's kernel holds them as if it translated them. Reports:

  - shipping: the creation raises one NEW event per entry at once; the time until nat2
    holds them all, and what nat1's stream did (events sent, drops, overruns, resyncs);
  - the resync every 30 s at that size: nat1's conntrack dump (it blocks the loop: status
    replication.last_dump), the channel bytes of one resync, and the CPU of both daemons
    over 60 s with the flows minus 60 s without them (two resyncs);
  - the holder's memory: nat2's VmRSS before and after it holds them;
  - the takeover (unless --no-cut): nat1's links cut, nat2 installs the 50,000 entries
    (status takeover.last: how many, in how long).

Exit 77 when the lab cannot run here (not root, tools missing).
"""
import argparse
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.dont_write_bytecode = True
sys.path.insert(0, HERE)
from churn_cpu import E2E, cpu_ticks, hanatd_pid, node, wire_bytes  # noqa: E402,F401
from eip_follows_e2e import add_zone_eips  # noqa: E402
from hanatlab import Lab, LabUnavailable, checks  # noqa: E402
from hanatlab import scenarios as sc  # noqa: E402


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def poll(what, fn, timeout):
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v:
            return v
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: not within {timeout} s")
        time.sleep(0.2)


def held(lab, origin):
    reps = (node(lab, 2).get("takeover") or {}).get("replicas") or {}
    return int((reps.get(origin) or {}).get("live", 0))


def target(lab):
    ts = (node(lab, 1).get("replication") or {}).get("targets") or []
    return ts[0] if ts else {}


def cpu_window(pids, seconds):
    tck = os.sysconf("SC_CLK_TCK")
    before = {n: cpu_ticks(p) for n, p in pids.items()}
    t0 = time.monotonic()
    time.sleep(seconds)  # a measuring window, not a synchronisation
    took = time.monotonic() - t0
    return {n: (cpu_ticks(p) - before[n]) / tck for n, p in pids.items()}, took


def run(lab, hanatd, flows, cut):
    over = checks.overrides({"failover": {"failback_delay": "3s", "move_eip": True,
                                          "stateful": True},
                             "probe": {"paths": ["private"]}})
    ctl = sc.HanatController(lab, hanatd, "default", over)
    ctl.start_all()
    out = {}
    try:
        ctl.wait_ready(40)
        poll("nat1 streaming to nat2", lambda: target(lab).get("connected"), 30)
        pids = {n: hanatd_pid(ctl.procs[lab.nat(n)["name"]]) for n in (1, 2)}
        n1 = lab.nat(1)
        origin = poll("nat2 holding a replica of nat1", lambda: next(iter(
            (node(lab, 2).get("takeover") or {}).get("replicas") or {}), None), 30)
        time.sleep(2)
        out["idle_cpu"], out["idle_s"] = cpu_window(pids, 60)
        out["rss_before_kib"] = rss_kib(pids[2])
        t_before = dict(target(lab))
        zone_a = next(h for h in lab.desc["hosts"] if h["zone_letter"] == "a")
        net = ".".join(zone_a["address"].split(".")[:3]) + ".0"
        fill = os.path.join(os.path.dirname(hanatd), "bench_ct_fill")
        t0 = time.monotonic()
        r = lab.exec(n1["ns"], [fill, str(flows), net, lab.desc["internet"]["address"],
                                n1["public_address"]], timeout=300)
        out["fill"] = r.stdout.strip()
        # A few public ports are nat1's own already (its probes, the channel): skipped.
        installed = int(out["fill"].split()[1])
        try:
            poll(f"nat2 holding the {installed} flows", lambda: held(lab, origin) >= installed,
                 120)
        except RuntimeError as e:
            raise RuntimeError(f"{e} (fill: {out['fill']}; nat1 replication: "
                               f"{node(lab, 1).get('replication')}; nat2 holds "
                               f"{held(lab, origin)})") from e
        out["ship_s"] = time.monotonic() - t0
        t_after = dict(target(lab))
        out["stream"] = {k: int(t_after.get(k, 0)) - int(t_before.get(k, 0))
                         for k in ("events_sent", "flows_sent", "drops", "resyncs", "wire_bytes")}
        out["overruns"] = int((node(lab, 1).get("replication") or {}).get("overruns", 0))
        out["rss_after_kib"] = rss_kib(pids[2])
        b0, r0 = wire_bytes(lab), int(target(lab).get("resyncs", 0))
        out["full_cpu"], out["full_s"] = cpu_window(pids, 60)
        b1, r1 = wire_bytes(lab), int(target(lab).get("resyncs", 0))
        out["resyncs_in_window"] = r1 - r0
        out["bytes_in_window"] = b1 - b0
        out["last_dump"] = (node(lab, 1).get("replication") or {}).get("last_dump")
        if cut:
            sc.cut_links(lab, 1)
            last = poll("nat2's takeover of nat1", lambda: ((node(lab, 2).get("takeover") or {})
                                                           .get("last") or {}).get(origin), 120)
            out["takeover"] = last
    finally:
        ctl.stop_all()
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--hanatd", default=os.path.join(ROOT, "build", "bin", "hanatd"))
    ap.add_argument("--flows", type=int, default=50000)
    ap.add_argument("--no-cut", action="store_true")
    a = ap.parse_args()
    try:
        with Lab(nats=2, hosts_per_zone=1, name="r50k") as lab:
            add_zone_eips(lab)
            o = run(lab, a.hanatd, a.flows, not a.no_cut)
    except LabUnavailable as e:
        print(f"SKIPPED: {e}")
        return 77
    pct = lambda c, s: 100.0 * c / s  # noqa: E731
    print(f"fill (nat1's namespace): {o['fill']}")
    st = o["stream"]
    print(f"shipping: nat2 held them all {o['ship_s']:.1f} s after the fill began; nat1 sent "
          f"{st['events_sent']} events and {st['flows_sent']} flows in {st['resyncs']} resyncs, "
          f"{st['drops']} dropped, {o['overruns']} event-socket overruns, "
          f"{st['wire_bytes'] / 1e6:.2f} MB")
    d = o["last_dump"] or {}
    busy = int(d.get("busy_us", d.get("us", 0))) / 1000
    longest = int(d.get("longest_step_us", d.get("us", 0))) / 1000
    print(f"resync at {a.flows} flows: nat1's dump {busy:.1f} ms of loop time, at most "
          f"{longest:.1f} ms at a time, {int(d.get('wall_us', 0)) / 1000:.1f} ms from request to end "
          f"({d.get('seen')} entries read, {d.get('flows')} kept); "
          f"{o['bytes_in_window'] / max(o['resyncs_in_window'], 1) / 1e6:.2f} MB per resync "
          f"({o['resyncs_in_window']} in the 60 s window)")
    for n, who in ((1, "nat1 (sender)"), (2, "nat2 (holder)")):
        idle, full = pct(o["idle_cpu"][n], o["idle_s"]), pct(o["full_cpu"][n], o["full_s"])
        print(f"CPU {who}: {idle:.2f} % of a core without the flows, {full:.2f} % with them: "
              f"{(o['full_cpu'][n] - o['idle_cpu'][n]) * 1000 / max(o['resyncs_in_window'], 1):.0f}"
              f" ms per resync")
    print(f"holder memory: nat2 VmRSS {o['rss_before_kib']} KiB -> {o['rss_after_kib']} KiB "
          f"(+{(o['rss_after_kib'] - o['rss_before_kib']) / 1024:.1f} MiB, "
          f"{(o['rss_after_kib'] - o['rss_before_kib']) * 1024 / a.flows:.0f} bytes per flow)")
    if "takeover" in o:
        t = o["takeover"]
        print(f"takeover: nat2 installed {t.get('installed')} of {t.get('flows')} "
              f"(collided {t.get('collided')}, failed {t.get('failed')}, unroutable "
              f"{t.get('unroutable')}) in {t.get('took_ms')} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
