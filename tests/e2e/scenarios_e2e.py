#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Failover scenarios end to end (issue 8 item 2): two hanatd (DESIGN's default probe
profile, 200 ms x fall 3) in the lab, one lab shared by every scenario (lab.reset() between
them), each scenario measured by tests/e2e/hanatlab/scenarios.py: the outage is the longest
gap of a 200 packets/s UDP stream from private host a1 (zone a, on nat1), route writes are
counted at the EC2 proxy, route flips per table from the fabric.

Generous bounds (CI machines are loaded); tight figures come from bench/failover/run.py.
A scenario listed in KNOWN_GAPS is a failure hanatd does not handle yet: its checks are
still run and reported as XFAIL; if they pass (XPASS) the test fails so the entry is removed.

Usage: scenarios_e2e.py HANATD [--only a,b] [--json FILE]
Exit 0 pass, 1 fail, 77 skipped (not root, tools missing). The last line says which.
"""
import argparse
import json
import os
import shutil
import sys
import tempfile
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from hanatlab import Lab, LabUnavailable  # noqa: E402
from hanatlab import scenarios as sc  # noqa: E402

KNOWN_GAPS = {}


def bounds(name, r, lab):
    """(description, ok) checks of one scenario's result."""
    nat2 = lab.nat(2)["private_address"]
    out = []
    w, ff = r["route_writes"], r["flip_flop"]
    notes = r["notes"]
    # Seen at the internet host's sink, not reported by hanatd: a1's packets arrive again
    # after the fault (failover scenarios), and after the outcome in every scenario.
    if sc.SCENARIOS[name][1] == "failover":
        out.append(("traffic flowing again after the fault (packets at the sink within "
                    "100 ms of the check)", notes.get("flowing") is True))
    out.append(("traffic after the outcome: 100 ms of packets arrived at the sink",
                notes.get("traffic_after") is True))
    if name in ("link_cut", "no_forward", "graceful", "spot"):
        out.append((f"outage {r['outage_ms']:.0f} ms < 3000 ms, traffic restored",
                    r["restored"] and r["outage_ms"] < 3000))
        out.append((f"zone a's route moved to nat2 (flips {r['flips']})",
                    r["flips"].get("a1", [])[-1:] == ["nat2"]))
        out.append((f"{w} route writes <= 4, no flip-flop", w <= 4 and not ff))
    if name == "link_cut" and "nat2_events" in notes:
        nat1 = lab.nat(1)["instance_id"]
        ev = notes["nat2_events"]
        down = [m for m in ev if m.startswith(f"peer {nat1}: up -> down (")]
        wrote = [m for m in ev if m.startswith("route ") and lab.nat(2)["eni_id"] in m]
        out.append((f"hanatctl events on nat2 shows nat1 down with its reason ({down[-1:]}) "
                    f"and the route write ({wrote[-1:]})", bool(down) and bool(wrote)))
    if name == "link_cut" and "failover_histogram" in notes:
        # hanat_failover_duration_seconds times detection to the acknowledged write: one
        # observation for this failover, and a part of the outage the stream measured
        # (detection itself is most of the rest), so never longer than it.
        h = notes["failover_histogram"]
        out.append((f"nat2's hanat_failover_duration_seconds: _count +{h['count']:.0f} "
                    f"(want +1), _sum +{h['sum_s'] * 1000:.0f} ms within the "
                    f"{r['outage_ms']:.0f} ms outage",
                    h["count"] == 1 and 0 < h["sum_s"] * 1000 <= r["outage_ms"] + 100))
    if name == "link_cut" and "nat2_hook" in notes:
        nat1 = lab.nat(1)["instance_id"]
        lines = notes["nat2_hook"]
        down = [x for x in lines if x.startswith(f"event=peer state=down previous=up peer={nat1} ")]
        took = [x for x in lines if x.startswith("event=route state=acquired ")]
        out.append((f"nat2's [hooks] on_transition ran for nat1 down ({down[-1:]}) and for the "
                    f"route it took ({took[-1:]})", bool(down) and bool(took)))
    if name == "no_forward" and "nat1_forward" in r["notes"]:
        out.append((f"nat1 reports its forward check down "
                    f"({r['notes']['nat1_forward']}: {r['notes']['nat1_forward_detail']})",
                    r["notes"]["nat1_forward"] == "down"
                    and "none left" in r["notes"]["nat1_forward_detail"]))
    if name == "graceful":
        out.append((f"hanatd exited 0 after the handover (exit {r['notes'].get('exit_code')})",
                    r["notes"].get("exit_code") == 0))
        out.append((f"make-before-break: outage {r['outage_ms']:.0f} ms < 1000 ms",
                    r["outage_ms"] < 1000))
    if name == "spot":
        out.append(("routes handed over before the termination",
                    r["notes"].get("moved_before_termination") is True))
        out.append((f"make-before-break: outage {r['outage_ms']:.0f} ms < 1000 ms",
                    r["outage_ms"] < 1000))
    if name == "sigkill":
        out.append((f"no outage: longest gap {r['outage_ms']:.0f} ms < 500 ms",
                    r["restored"] and r["outage_ms"] < 500))
        out.append((f"no route write ({w}) and no flip ({r['flips']})",
                    w == 0 and not any(r["flips"].values())))
    if name == "restart":
        out.append((f"hanatd exited 0 on SIGTERM after prepare-restart "
                    f"({notes.get('prepared')}, exit {notes.get('exit_code')})",
                    notes.get("prepared") == "restart prepared" and notes.get("exit_code") == 0))
        out.append((f"no outage: longest gap {r['outage_ms']:.0f} ms < 500 ms",
                    r["restored"] and r["outage_ms"] < 500))
        out.append((f"no route write ({w}) and no flip ({r['flips']})",
                    w == 0 and not any(r["flips"].values())))
    if name == "partition":
        out.append((f"no outage: longest gap {r['outage_ms']:.0f} ms < 500 ms",
                    r["restored"] and r["outage_ms"] < 500))
        out.append((f"no flip-flop: each table changed at most twice (flips {r['flips']}), "
                    f"{w} route writes <= 2 per table in a hold-down window",
                    not ff and w <= 2 * len(lab.desc["route_tables"])))
    if name == "api_unavailable":
        out.append((f"outage {r['outage_ms']:.0f} ms < 13000 ms once the API is back",
                    r["restored"] and r["outage_ms"] < 13000))
        out.append((f"outage {r['outage_ms']:.0f} ms >= 9000 ms: the API was really down",
                    r["outage_ms"] >= 9000))
        out.append((f"zone a's route moved to nat2, {w} route writes <= 4",
                    lab.default_route("a1") == nat2 and w <= 4 and not ff))
    if name == "flapping":
        out.append((f"{r['notes']['toggles']} link toggles of nat2 done",
                    r["notes"]["toggles"] >= 10))
        out.append(("zone b's traffic flows again once the flapping stopped (b1's packets "
                    "at the sink)", notes.get("b1_flowing") is True))
        out.append((f"no flip-flop (flips {r['flips']}), {w} route writes <= 2 per table",
                    not ff and w <= 2 * len(lab.desc["route_tables"])))
        out.append((f"zone a's longest gap {r['outage_ms']:.0f} ms < 3000 ms",
                    r["restored"] and r["outage_ms"] < 3000))
        # nat2 sees its own link drop: its failed probes of nat1 are not evidence, so zone
        # a's table stays on nat1 (nat1 may take zone b's table from the flapping nat2).
        out.append((f"zone a's table stayed on nat1 (flips {r['flips'].get('a1')})",
                    r["flips"].get("a1") == []))
    return out


def log_size(path):
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def log_since(path, offset, limit=6000):
    """A hanatd log from byte `offset` on (its last `limit` characters); a log that was
    started afresh (smaller than `offset`) is read whole."""
    try:
        with open(path, errors="replace") as f:
            text = f.read()
    except OSError as e:
        return f"(unreadable: {e})"
    if len(text) >= offset:
        text = text[offset:]
    return text[-limit:]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("hanatd")
    ap.add_argument("--only", help="comma-separated scenario names")
    ap.add_argument("--json", help="write the raw results here")
    a = ap.parse_args()
    names = a.only.split(",") if a.only else list(sc.SCENARIOS)
    bad = [n for n in names if n not in sc.SCENARIOS]
    if bad:
        print(f"unknown scenario(s) {bad}; known: {', '.join(sc.SCENARIOS)}")
        return 2
    t0 = time.monotonic()
    try:
        lab_cm = Lab(nats=2, hosts_per_zone=1, name="scen")
        lab = lab_cm.__enter__()
    except LabUnavailable as e:
        print(f"SKIPPED: {e}")
        return 77
    failures, xfails, results = [], [], []
    hook_dir = None
    logs = {n["name"]: os.path.join(lab.dir, f"hanatd-{n['name']}.log") for n in lab.desc["nats"]}
    try:
        # [hooks] on_transition on both NATs: a script that appends each transition's
        # environment to <dir>/<instance id>.log; link_cut reads nat2's.
        hook_dir = tempfile.mkdtemp(prefix="hanat-hooks-")
        hook = os.path.join(hook_dir, "hook.sh")
        with open(hook, "w") as f:
            f.write("#!/bin/sh\n"
                    "printf 'event=%s state=%s previous=%s peer=%s table=%s reason=%s\\n' "
                    "\"$HANAT_EVENT\" \"$HANAT_STATE\" \"$HANAT_PREVIOUS\" \"$HANAT_PEER\" "
                    "\"$HANAT_ROUTE_TABLE\" \"$HANAT_REASON\" >> \"$1/$HANAT_INSTANCE_ID.log\"\n")
        os.chmod(hook, 0o755)
        ctl = sc.HanatController(lab, a.hanatd, "default",
                                 overrides={"hooks": {"on_transition": [hook, hook_dir]}})
        ctl.hook_dir = hook_dir
        for name in names:
            print(f"{name}: (at {time.monotonic() - t0:.1f} s)", flush=True)
            failed_before = len(failures)
            offsets = {n: log_size(path) for n, path in logs.items()}
            try:
                r = sc.run_scenario(lab, ctl, name, mode="ci")
            except Exception as e:  # noqa: BLE001 - reported, then the next scenario
                traceback.print_exc()
                failures.append(f"{name}: {e}")
                r = None
            if r is not None:
                results.append(r)
                print(f"      outage {r['outage_ms']:.0f} ms, writes {r['route_writes']}, "
                      f"flips {r['flips']}, notes {r['notes']}", flush=True)
                checks = bounds(name, r, lab)
                gap = KNOWN_GAPS.get(name)
                for what, ok in checks:
                    tag = "ok:   " if ok else ("XFAIL:" if gap else "FAIL: ")
                    print(f"  {tag} {name}: {what}", flush=True)
                    if not ok and not gap:
                        failures.append(f"{name}: {what}")
                if gap:
                    if all(ok for _, ok in checks):
                        failures.append(f"{name}: XPASS — hanatd now handles it; remove it "
                                        "from KNOWN_GAPS")
                    else:
                        xfails.append(name)
                        print(f"  known gap: {gap}", flush=True)
            if len(failures) > failed_before:
                # What each hanatd logged during the failed scenario: the tail printed at
                # the end belongs to the last scenario, not this one.
                for n, path in logs.items():
                    print(f"--- {n} log during {name} ---\n" +
                          log_since(path, offsets[n]), flush=True)
            try:
                sc.cleanup(lab, ctl)
            except Exception as e:  # noqa: BLE001
                failures.append(f"{name}: reset after the scenario: {e}")
                break
    finally:
        if a.json:
            with open(a.json, "w") as f:
                json.dump(results, f, indent=1)
        if failures:
            for n, path in logs.items():
                try:
                    print(f"--- {n} log (tail) ---\n" + open(path).read()[-2500:])
                except OSError:
                    pass
        lab_cm.__exit__(None, None, None)
        if hook_dir:
            shutil.rmtree(hook_dir, ignore_errors=True)
    took = time.monotonic() - t0
    if failures:
        print(f"FAILED: {len(failures)} check(s) in {took:.0f} s: " + "; ".join(failures))
        return 1
    print(f"PASSED: {len(results)} failover scenarios in {took:.0f} s" +
          (f" (known gaps, XFAIL: {', '.join(xfails)})" if xfails else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
