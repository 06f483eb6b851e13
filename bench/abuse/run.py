#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Probe schedule of hanatd with and without abuse of its status socket (issue 10 item 4).

    bench/abuse/run.py [--runs 3] [--window 10] [--interval-ms 50] [--max-clients 1100]
                       [--hanatd PATH]

One e2e lab, two hanatd; NAT 1's ICMP echo requests to NAT 2 are timestamped in the
kernel at NAT 2's interface (AF_PACKET, SO_TIMESTAMPNS). Each run measures a window
without abuse, then one while 1,000 clients abuse NAT 1's status socket (oversized,
malformed, flooding without reading, dribbling, idle), each followed by a failover (NAT 2's
private link cut). Prints per run and the medians over runs: jitter |dt - interval| p50 and
p99, the abuse/no-abuse ratio, and the failover time. Figures depend on the machine's load:
say what else ran when you quote them.
"""
import argparse
import json
import os
import statistics
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))
import abuse_e2e  # noqa: E402
from hanatlab import Lab, LabUnavailable  # noqa: E402


def med(rows, key):
    vals = [r[key] for r in rows if r.get(key) is not None]
    return statistics.median(vals) if vals else None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--window", type=float, default=10.0)
    ap.add_argument("--interval-ms", type=int, default=50)
    ap.add_argument("--max-clients", type=int, default=1100,
                    help="status max_clients (1100 serves all 1,000 abusers; 64 is the default "
                    "and turns most away)")
    ap.add_argument("--hanatd", default=os.path.join(ROOT, "build", "bin", "hanatd"))
    a = ap.parse_args()
    base_overrides = abuse_e2e.overrides
    abuse_e2e.overrides = lambda ms: {**base_overrides(ms),
                                      "status": {"max_clients": a.max_clients}}
    try:
        lab_cm = Lab(nats=2, hosts_per_zone=1, name="abench")
        lab = lab_cm.__enter__()
    except LabUnavailable as e:
        print(f"SKIPPED: {e}")
        return 77
    rows = {"no abuse": [], "abuse": []}
    try:
        sc = abuse_e2e.Scenario(lab, a.hanatd, a.interval_ms)
        if not sc.settle(40):
            print("FAILED: the lab did not settle (both active, table b on NAT 2)")
            return 1
        for run in range(a.runs):
            for name, conns in (("no abuse", 0), ("abuse", 1000)):
                r = sc.measure_phase(a.window, abuse_conns=conns, seed=run + 1)
                rows[name].append(r)
                print(f"run {run + 1} {name:8s}: sends {r['sends']}/{r['expected_sends']} "
                      f"jitter p50 {r['jitter_p50_ms']:.2f} ms p99 {r['jitter_p99_ms']:.2f} ms "
                      f"max {r['jitter_max_ms']:.1f} ms, failover "
                      f"{r['failover_ms'] and round(r['failover_ms'])} ms (failback after NAT 2's "
                      f"hold-down of {r['failback_hold_down_ms'] / 1000:.0f} s), hanatd CPU "
                      f"{r.get('hanatd_cpu_pct')} % of a core", flush=True)
                print(f"      hanatd's own send delay (us, last 1,024 sends): "
                      f"{json.dumps(r.get('hanatd_send_delay_us'))}", flush=True)
                if conns:
                    print(f"      abuser: {json.dumps(r.get('abuser', {}))}", flush=True)
                if not r["failback"]:
                    print("FAILED: no failback after the link came back: "
                          + json.dumps(r.get("failback_state")))
                    return 1
        sc.close()
    finally:
        lab_cm.__exit__(None, None, None)
    summary = {}
    for name, rs in rows.items():
        summary[name] = {k: med(rs, k) for k in ("jitter_p50_ms", "jitter_p99_ms",
                                                 "jitter_max_ms", "failover_ms",
                                                 "hanatd_cpu_pct")}
    n, ab = summary["no abuse"], summary["abuse"]
    print(json.dumps(summary, indent=1))
    print(f"medians over {a.runs} runs, probe interval {a.interval_ms} ms:")
    print(f"  jitter p50: {n['jitter_p50_ms']:.2f} ms without abuse, {ab['jitter_p50_ms']:.2f} ms "
          f"with (x{ab['jitter_p50_ms'] / max(n['jitter_p50_ms'], 1e-6):.1f})")
    print(f"  jitter p99: {n['jitter_p99_ms']:.2f} ms without abuse, {ab['jitter_p99_ms']:.2f} ms "
          f"with (x{ab['jitter_p99_ms'] / max(n['jitter_p99_ms'], 1e-6):.1f})")
    print(f"  failover:   {n['failover_ms']:.0f} ms without abuse, {ab['failover_ms']:.0f} ms with")
    return 0


if __name__ == "__main__":
    sys.exit(main())
