#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Failover benchmark (issue 8 item 4): every scenario of tests/e2e/hanatlab/scenarios.py x
controller {hanat default profile (200 ms x fall 3), hanat fast profile (50 ms x fall 3),
keepalived baseline (VRRP unicast, 1 s adverts, notify_master calling the AWS CLI)} x N
repetitions, in one lab per controller (lab.reset() between runs). The outage is the
longest gap of a 200 packets/s UDP stream from private host a1 (zone a, home NAT nat1);
route writes are ReplaceRoute/CreateRoute/DeleteRoute calls answered 200 at the lab's EC2
proxy (every controller goes through it); a run where traffic never came back within the
scenario's window counts the window as its outage and is flagged "no failover".

Prints a table (median and max outage per scenario and controller, route writes, flip-flops,
the ratio hanat/keepalived of the medians), the DESIGN.md targets met/missed, and writes
every run as JSON. Root, the lab's tools, keepalived and the AWS CLI (for the baseline).

  bench/failover/run.py --hanatd build/bin/hanatd [--reps 5] [--scenarios a,b]
                        [--controllers hanat-default,hanat-fast,keepalived] [--json F]
  (hanat-default-1path, hanat-fast-1path: the same profiles probing peers on their private
  path only, for a one-path/two-path comparison in one run)

With --connections it measures connection survival instead (issues 20 and 21,
tests/e2e/hanatlab/connkeep.py): 200 long-lived TCP connections (16 bytes each way every
50 ms) through nat1 across a drain, nat2's failback, a spot notice with termination 8 s
later, a stop (SIGTERM to the controller) and a link cut; per run how many survived, were
reset or stalled, the longest echo wait, when the route moved and the first reset came, and where a new connection leaves.
Controllers default to hanat-default (a handover that keeps no connection: the lab's
[handover] flow_drain = 0), hanat-keep (the same profile keeping connections) and
keepalived; hanat's failback_delay is 3 s there (the failback scenario would otherwise wait
its default 30 s).

  bench/failover/run.py --connections --hanatd build/bin/hanatd [--reps 3]
                        [--scenarios drain,failback,spot,stop,cut] [--json F]
"""

import argparse
import json
import os
import platform
import statistics
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
E2E = os.path.normpath(os.path.join(HERE, "..", "..", "tests", "e2e"))
sys.path.insert(0, E2E)
from hanatlab import Lab, LabUnavailable  # noqa: E402
from hanatlab import scenarios as sc  # noqa: E402

CONTROLLERS = ("hanat-default", "hanat-fast", "keepalived", "hanat-default-1path",
               "hanat-fast-1path")
# DESIGN.md targets: (scenario, controller) -> bound on the median outage in ms.
TARGETS = {("link_cut", "hanat-default"): 1000, ("link_cut", "hanat-fast"): 350,
           ("graceful", "hanat-default"): 100, ("graceful", "hanat-fast"): 100,
           ("spot", "hanat-default"): 100, ("spot", "hanat-fast"): 100}
RATIO_TARGET = 4.0  # hanat at least 4x shorter than keepalived (link cut)


def make_controller(lab, name, hanatd, advert_int):
    if name.startswith("hanat-"):
        # "-1path": peers probed on their private address only ([probe] paths), to compare
        # one path with two in the same run.
        profile = name.split("-")[1]
        one = {"probe": {"paths": ["private"]}} if name.endswith("-1path") else None
        ctl = sc.HanatController(lab, hanatd, profile, overrides=one)
        ctl.name = name
        return ctl
    from hanatlab.keepalived import Keepalived
    return Keepalived(lab, advert_int=advert_int)


def loadavg():
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def fmt_ms(v):
    if v is None:
        return "-"
    return f"{v / 1000:.2f} s" if v >= 10000 else f"{v:.0f}"


def table(results, scenarios, controllers):
    s = sc.summarize(results)
    lines = []
    head = "| scenario | controller | runs | median ms | max ms | no failover | route writes (median/max) | route changes per table, max (flip-flop runs) | hanat/keepalived |"
    lines += [head, "|" + "---|" * 9]
    for scen in scenarios:
        kad = s.get((scen, "keepalived"))
        for c in controllers:
            g = s.get((scen, c))
            if not g:
                continue
            ratio = ""
            if c != "keepalived" and kad and kad["median_ms"] and g["median_ms"] is not None:
                ratio = f"{g['median_ms'] / kad['median_ms']:.2f}" if kad["median_ms"] > 0 else ""
            lines.append(f"| {scen} | {c} | {g['n']}" + (f" ({g['errors']} errors)" if
                                                     g["errors"] else "") +
                         f" | {fmt_ms(g['median_ms'])} | {fmt_ms(g['max_ms'])} | "
                         f"{g['no_failover']} | {g['writes_median']:g}/{g['writes_max']} | "
                         f"{g['flips_max']} ({g['flip_flops']}) | {ratio} |" if g["n"] else
                         f"| {scen} | {c} | 0 ({g['errors']} errors) | | | | | | |")
    return "\n".join(lines), s


def targets(s):
    out = []
    for (scen, c), bound in TARGETS.items():
        g = s.get((scen, c))
        if not g or g["median_ms"] is None:
            continue
        ok = g["median_ms"] <= bound and not g["no_failover"]
        out.append(f"- {scen}, {c}: median {g['median_ms']:.0f} ms (target <= {bound} ms): "
                   f"{'met' if ok else 'MISSED'}")
    kad = s.get(("link_cut", "keepalived"))
    for c in ("hanat-default", "hanat-fast"):
        g = s.get(("link_cut", c))
        if g and kad and g["median_ms"] and kad["median_ms"]:
            r = kad["median_ms"] / g["median_ms"]
            out.append(f"- link_cut, {c}: {r:.1f}x shorter than keepalived (target >= "
                       f"{RATIO_TARGET:g}x): {'met' if r >= RATIO_TARGET else 'MISSED'}")
    return out


# ---------------------------------------------------------------------------------------
# connection survival (--connections)

# hanat-default: the lab's [handover] flow_drain = 0 (a handover that keeps nothing, as
# before the connection-keeping handover); hanat-keep: the same profile keeping connections
# (connkeep.KEEP_FLOW_DRAIN).
# hanat-eip: zone Elastic IPs that follow the zone's tables ([failover] move_eip), no state
# replicated; hanat-stateful: the same with [failover] stateful (issue 21). Both get one EIP
# per zone in their lab; the others keep each NAT's own address.
CONN_CONTROLLERS = ("hanat-default", "hanat-keep", "hanat-eip", "hanat-stateful", "keepalived")


def conn_table(results, scenarios, controllers):
    """Markdown table of connection-survival runs: medians over repetitions."""
    def med(xs):
        xs = [x for x in xs if x is not None]
        return statistics.median(xs) if xs else None

    def f(v, unit=""):
        return "-" if v is None else f"{v:.0f}{unit}"
    lines = ["| scenario | controller | runs | established | survived (min-max) | reset | "
             "stalled | longest echo wait ms | route moved after ms | first reset after ms "
             "| new connection via |",
             "|" + "---|" * 11]
    for scen in scenarios:
        for c in controllers:
            rs = [r for r in results if r["scenario"] == scen and r["controller"] == c]
            ok = [r for r in rs if "error" not in r]
            if not rs:
                continue
            if not ok:
                lines.append(f"| {scen} | {c} | 0 ({len(rs)} errors) |" + " |" * 8)
                continue
            surv = [r["survived"] for r in ok]
            via = {}
            for r in ok:
                via[r.get("new_source_nat") or r.get("new_source")] = via.get(
                    r.get("new_source_nat") or r.get("new_source"), 0) + 1
            lines.append(
                f"| {scen} | {c} | {len(ok)}" + (f" ({len(rs) - len(ok)} errors)" if
                                                 len(rs) > len(ok) else "") +
                f" | {f(med([r['established'] for r in ok]))} | {f(med(surv))} "
                f"({min(surv)}-{max(surv)}) | {f(med([r['reset'] for r in ok]))} | "
                f"{f(med([r['stalled'] for r in ok]))} | "
                f"{f(med([r['max_echo_ms'] for r in ok]))} | "
                f"{f(med([r.get('route_moved_ms') for r in ok]))} | "
                f"{f(med([r.get('first_reset_ms') for r in ok]))} | "
                + ", ".join(f"{k} x{v}" for k, v in sorted(via.items(), key=str)) + " |")
    return "\n".join(lines)


def run_connections(a, scenarios, controllers, hanatd):
    from hanatlab import connkeep, conns
    meta = {"kind": "connections", "started": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                            time.gmtime()),
            "host": platform.node(), "cpus": os.cpu_count(), "load_before": loadavg(),
            "reps": a.reps, "scenarios": scenarios, "controllers": controllers,
            "hanatd": hanatd, "advert_int": a.advert_int, "count": connkeep.COUNT}
    results = []
    t0 = time.monotonic()

    def save():
        meta["load_after"] = loadavg()
        meta["seconds"] = round(time.monotonic() - t0, 1)
        with open(a.json, "w") as f:
            json.dump({"meta": meta, "runs": results}, f, indent=1)

    import contextlib
    try:
        with contextlib.ExitStack() as stack:
            ctls = {}
            for c in controllers:
                lab = stack.enter_context(Lab(nats=2, hosts_per_zone=2, name="connbench"))
                if c.startswith("hanat-"):
                    over = {"failover": {"failback_delay": "3s"}}
                    profile = c.split("-", 1)[1]
                    if profile == "keep":
                        profile = "default"
                        over.update(connkeep.keep_overrides(True))
                    elif profile in ("eip", "stateful"):
                        from eip_follows_e2e import add_zone_eips
                        add_zone_eips(lab)
                        over["failover"].update(move_eip=True, stateful=profile == "stateful")
                        # moto leaves a moved EIP's address on the old holder's
                        # DescribeInstances entry: private-path probing only (as the e2e).
                        over["probe"] = {"paths": ["private"]}
                        profile = "default"
                    ctl = sc.HanatController(lab, hanatd, profile, over)
                    ctl.name = c
                else:
                    ctl = make_controller(lab, c, hanatd, a.advert_int)
                ctls[c] = (lab, ctl, conns.LabServer(lab))
            for rep in range(1, a.reps + 1):
                for c in controllers:
                    lab, ctl, server = ctls[c]
                    for scen in scenarios:
                        t = time.monotonic()
                        try:
                            r = connkeep.run_scenario(lab, ctl, scen, server)
                            src = r.get("new_source")
                            nat = lab.nat_by_source(src) if src else None
                            r["new_source_nat"] = nat["name"] if nat else src
                        except Exception as e:  # noqa: BLE001 - recorded, bench goes on
                            traceback.print_exc()
                            r = {"scenario": scen, "error": str(e)[:500]}
                        r.update(rep=rep, controller=c, load=loadavg())
                        results.append(r)
                        print(f"[{time.monotonic() - t0:6.0f} s] {c:13} {scen:9} rep {rep}: " +
                              (r["line"] + f"; route moved {r.get('route_moved_ms')} ms, "
                               f"first reset {r.get('first_reset_ms')} ms, new connection "
                               f"via {r.get('new_source_nat')}" if "error" not in r else
                               f"ERROR {r['error'][:200]}") +
                              f" ({time.monotonic() - t:.0f} s)", flush=True)
                        sc.cleanup(lab, ctl)
                        save()
    except LabUnavailable as e:
        print(f"the lab cannot run here: {e}")
        return 77
    finally:
        save()
    print()
    print(f"connection survival: {a.reps} reps, {connkeep.COUNT} connections, "
          f"{os.cpu_count()} CPUs, load {meta['load_before']} -> {meta['load_after']}, "
          f"{meta['seconds']:.0f} s")
    print(conn_table(results, scenarios, controllers))
    print(f"\nraw results: {os.path.abspath(a.json)}")
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hanatd", default=os.path.join(HERE, "..", "..", "build", "bin", "hanatd"))
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--scenarios", default=",".join(sc.SCENARIOS))
    ap.add_argument("--controllers", default=",".join(CONTROLLERS))
    ap.add_argument("--json", default="failover-bench.json", help="raw results (JSON)")
    ap.add_argument("--mode", choices=("bench", "ci"), default="bench",
                    help="scenario parameters: bench (e.g. 20 s of flapping) or ci (shorter)")
    ap.add_argument("--advert-int", type=float, default=1.0,
                    help="keepalived's advert interval (default: keepalived's 1 s)")
    ap.add_argument("--report", metavar="JSON",
                    help="print the table of an earlier run's JSON and exit (runs nothing)")
    ap.add_argument("--connections", action="store_true",
                    help="measure connection survival (drain, failback, spot, cut) instead")
    a = ap.parse_args()
    if a.report:
        with open(a.report) as f:
            data = json.load(f)
        m = data["meta"]
        if m.get("kind") == "connections":
            print(f"connection survival of {m['started']}: {m['reps']} reps, {m['count']} "
                  f"connections, {m['cpus']} CPUs, load {m['load_before']} -> "
                  f"{m.get('load_after')}, {len(data['runs'])} runs")
            print(conn_table(data["runs"], m["scenarios"], m["controllers"]))
            return 0
        text, s = table(data["runs"], m["scenarios"], m["controllers"])
        print(f"failover benchmark of {m['started']}: {m['reps']} reps, mode {m['mode']}, "
              f"{m['cpus']} CPUs, load {m['load_before']} -> {m.get('load_after')}, "
              f"{len(data['runs'])} runs")
        print(text + "\n\n" + "\n".join(targets(s)))
        return 0
    if a.connections:
        from hanatlab import connkeep
        scenarios = [x for x in (a.scenarios if a.scenarios != ",".join(sc.SCENARIOS) else
                                 ",".join(connkeep.SCENARIOS)).split(",") if x]
        controllers = [x for x in (a.controllers if a.controllers != ",".join(CONTROLLERS)
                                   else ",".join(CONN_CONTROLLERS)).split(",") if x]
        bad = [x for x in scenarios if x not in connkeep.SCENARIOS]
        bad += [x for x in controllers if x not in CONTROLLERS + CONN_CONTROLLERS]
        if bad or a.reps < 1:
            ap.error(f"unknown scenario/controller {bad} (scenarios with --connections: "
                     f"{', '.join(connkeep.SCENARIOS)}; controllers: "
                     f"{', '.join(sorted(set(CONTROLLERS + CONN_CONTROLLERS)))}); "
                     "--reps >= 1")
        hanatd = os.path.abspath(a.hanatd)
        if any(c.startswith("hanat") for c in controllers) and not os.access(hanatd, os.X_OK):
            ap.error(f"--hanatd {hanatd}: not an executable")
        return run_connections(a, scenarios, controllers, hanatd)
    scenarios = [x for x in a.scenarios.split(",") if x]
    controllers = [x for x in a.controllers.split(",") if x]
    bad = [x for x in scenarios if x not in sc.SCENARIOS]
    bad += [x for x in controllers if x not in CONTROLLERS]
    if bad or a.reps < 1:
        ap.error(f"unknown scenario/controller {bad} (scenarios: {', '.join(sc.SCENARIOS)}; "
                 f"controllers: {', '.join(CONTROLLERS)}); --reps >= 1")
    hanatd = os.path.abspath(a.hanatd)
    if any(c.startswith("hanat") for c in controllers) and not os.access(hanatd, os.X_OK):
        ap.error(f"--hanatd {hanatd}: not an executable (build it: cmake --build build "
                 "--target hanatd)")

    meta = {"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "host": platform.node(), "cpus": os.cpu_count(), "load_before": loadavg(),
            "reps": a.reps, "mode": a.mode, "scenarios": scenarios,
            "controllers": controllers, "hanatd": hanatd, "advert_int": a.advert_int,
            "params": {n: sc.SCENARIOS[n][3 if a.mode == "bench" else 2] for n in scenarios}}
    results = []
    t0 = time.monotonic()

    def save():
        meta["load_after"] = loadavg()
        meta["seconds"] = round(time.monotonic() - t0, 1)
        with open(a.json, "w") as f:
            json.dump({"meta": meta, "runs": results}, f, indent=1)

    import contextlib
    try:
        with contextlib.ExitStack() as stack:
            # One lab per controller (nothing one leaves behind can touch another), all up
            # at once so that repetitions interleave the controllers: a run cut short still
            # has every controller, and load drifts hit them alike.
            ctls = {}
            for c in controllers:
                lab = stack.enter_context(Lab(nats=2, hosts_per_zone=1, name="bench"))
                ctls[c] = (lab, make_controller(lab, c, hanatd, a.advert_int))
            for rep in range(1, a.reps + 1):
                for c in controllers:
                    lab, ctl = ctls[c]
                    for scen in scenarios:
                        t = time.monotonic()
                        try:
                            r = sc.run_scenario(lab, ctl, scen, mode=a.mode)
                        except Exception as e:  # noqa: BLE001 - recorded, bench goes on
                            traceback.print_exc()
                            r = {"scenario": scen, "controller": c, "error": str(e)[:500]}
                        r.update(rep=rep, controller=c, load=loadavg())
                        results.append(r)
                        print(f"[{time.monotonic() - t0:6.0f} s] {c:13} {scen:15} rep {rep}: " +
                              (f"outage {r['outage_ms']:.0f} ms, writes {r['route_writes']}, "
                               f"flips {r['flips']}" + (" NO FAILOVER" if r["no_failover"]
                                                        else "")
                               if "error" not in r else f"ERROR {r['error'][:200]}") +
                              f" ({time.monotonic() - t:.0f} s)", flush=True)
                        try:
                            sc.cleanup(lab, ctl)
                        except Exception as e:  # noqa: BLE001
                            print(f"reset failed: {e}", flush=True)
                            raise
                        save()
    except LabUnavailable as e:
        print(f"the lab cannot run here: {e}")
        return 77
    finally:
        save()
    text, s = table(results, scenarios, controllers)
    print()
    print(f"failover benchmark: {a.reps} reps, mode {a.mode}, {os.cpu_count()} CPUs, load "
          f"{meta['load_before']} -> {meta['load_after']}, {meta['seconds']:.0f} s")
    print(text)
    print()
    print("\n".join(targets(s)))
    print(f"\nraw results: {os.path.abspath(a.json)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
