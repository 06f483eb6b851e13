# SPDX-License-Identifier: GPL-2.0-or-later
"""What the living-group scenarios (two_per_zone, asg_replace, foreign_route,
tagged_bystander; one file each in tests/e2e/) share: checks that print and collect
failures, polls with a deadline, the route tables as EC2 has them, hanatd's route writes as
the lab's EC2 proxy saw them (per table), `hanatctl status`, and a main() that builds the
lab, runs the scenario, prints the daemons' log tails on failure and tears everything down.

A scenario's exit code: 0 every check passed, 1 a check failed, 77 the lab cannot run here
(not root, tools missing). The last line says PASSED, FAILED or SKIPPED.
"""

import argparse
import json
import os
import subprocess
import sys
import time
import traceback

from hanatlab.lab import Lab, LabUnavailable
from hanatlab.scenarios import ROUTE_WRITES

# Timers shortened so that a scenario runs in about a minute: DESIGN's probe defaults
# (200 ms x fall 3, rise 5), a 3 s failback delay, hold-down 2 s doubling to 4 s, route
# tables read back every second.
TIMERS = {
    "probe": {"interval": "200ms", "timeout": "200ms", "fall": 3, "rise": 5},
    "ec2": {"route_refresh_interval": "1s"},
    "failover": {"preempt": True, "failback_delay": "3s", "hold_down": "2s",
                 "hold_down_max": "4s"},
}
FAILBACK_S = 3.0
HOLD_DOWN_MAX_S = 4.0
# Live membership (DESIGN rule 9): members re-read every 2 s instead of 30 s.
LIVE = {"group": {"refresh_interval": "2s"}}


def overrides(*extra):
    """TIMERS merged with the given override dicts ({section: {key: value}})."""
    out = json.loads(json.dumps(TIMERS))
    for e in extra:
        for sec, keys in e.items():
            out.setdefault(sec, {}).update(keys)
    return out


class Checks:
    def __init__(self):
        self.failures, self.xfails, self.xpasses = [], [], []

    def check(self, what, cond, detail=""):
        print(("ok:   " if cond else "FAIL: ") + what + ("" if cond else f" ({detail})"),
              flush=True)
        if not cond:
            self.failures.append(what)
        return cond

    def known_gap(self, what, cond, gap):
        """A check hanatd is known to fail (`gap` says why): reported XFAIL, or XPASS when
        it held this run (the gap may be timing-dependent), never failing the scenario —
        the gap is tracked in the scenario's docstring and the summary line."""
        print(("XPASS:" if cond else "XFAIL:") + f" {what}" +
              ("" if cond else f" (known gap: {gap})"), flush=True)
        (self.xpasses if cond else self.xfails).append(what)
        return cond

    def poll(self, what, fn, timeout, interval=0.05):
        """fn() until truthy or the deadline; returns its value or None (and says so)."""
        end = time.monotonic() + timeout
        last = None
        while True:
            try:
                last = fn()
                if last:
                    return last
            except Exception as e:  # noqa: BLE001 - a daemon or moto not answering yet
                last = e
            if time.monotonic() >= end:
                print(f"      timed out after {timeout}s waiting for {what}; last: {last!r}"[:600],
                      flush=True)
                return None
            time.sleep(interval)  # pacing of the deadline loop

    def need(self, what, fn, timeout, interval=0.05):
        """A precondition of the next steps: a poll that fails the scenario on timeout."""
        v = self.poll(what, fn, timeout, interval)
        self.check(f"precondition: {what} within {timeout} s", bool(v),
                   "timed out, see the line above")
        return v


def targets(lab, destination="0.0.0.0/0"):
    """{route table id: target id} of `destination` in every table of the lab's VPC, as
    EC2 (moto) has it; None for a table without that route."""
    out = {}
    for rt in lab.ec2().describe_route_tables(
            Filters=[{"Name": "vpc-id", "Values": [lab.desc["vpc"]["id"]]}])["RouteTables"]:
        r = next((r for r in rt.get("Routes", [])
                  if r.get("DestinationCidrBlock") == destination), None)
        out[rt["RouteTableId"]] = None if r is None else (
            r.get("NetworkInterfaceId") or r.get("InstanceId") or r.get("NatGatewayId") or
            r.get("TransitGatewayId") or r.get("GatewayId") or r.get("VpcPeeringConnectionId"))
    return out


def writes(lab, since_ns, until_ns=None, table=None):
    """Route writes (ReplaceRoute/CreateRoute/DeleteRoute answered 200) that reached EC2
    through the lab's proxy — hanatd's, never the test's own (lab.ec2() goes to moto
    directly) — in [since_ns, until_ns], to `table` when given."""
    return [r for r in lab.ec2_fault_log(since_ns)
            if r.get("action") in ROUTE_WRITES and r.get("status") == 200
            and (until_ns is None or r["t_ns"] <= until_ns)
            and (table is None or r.get("route_table") == table)]


def after_last_write(ck, lab, since_ns, table, timeout=5):
    """The time just after the proxy logged the last write to `table` since `since_ns`.
    The proxy logs a write once moto's answer is relayed, so a test that sees the new
    target in EC2 can be ahead of that record: a quiet window that starts "now" would count
    the very write it follows. Falls back to now when no write is logged in `timeout`."""
    done = ck.poll(f"the write to {table} in the EC2 proxy's log",
                   lambda: writes(lab, since_ns, table=table), timeout)
    if not done:
        return time.time_ns()
    return max(time.time_ns(), max(w["t_ns"] for w in done) + 1)


def flips(lab, host, since_ns):
    """The NATs (names; None = no route) host's default route went to since since_ns."""
    return [e.get("nat") for e in lab.fabric_events()
            if e.get("host") == host and "to" in e and not e.get("failed")
            and e["t_ms"] >= since_ns / 1e6 and e.get("from") != e.get("to")]


def cut(lab, nat, up, mode="down"):
    """Every leg of NAT `nat` down (up=False) or back, EC2 leg first (scenarios.cut_links
    does the same with mode "drop")."""
    for leg in ("mgmt", "private", "public"):
        lab.set_link(nat, leg, up, mode=mode)


def ctl(lab, hanatctl, nat, *args):
    sock = os.path.join(lab.nat(nat)["dir"], "hanatd.sock")
    return subprocess.run([hanatctl, "--socket", sock] + list(args), capture_output=True,
                          text=True, timeout=10)


def status_text(lab, hanatctl, nat):
    cp = ctl(lab, hanatctl, nat, "status")
    return cp.stdout if cp.returncode == 0 else ""


def status_json(lab, hanatctl, nat):
    """`hanatctl status --json`'s node document, or None."""
    cp = ctl(lab, hanatctl, nat, "status", "--json")
    if cp.returncode != 0:
        return None
    try:
        doc = json.loads(cp.stdout)
    except ValueError:
        return None
    return doc.get("node", doc)


def table_entry(node, table_id):
    for t in (node or {}).get("tables", []):
        if t.get("id") == table_id:
            return t
    return None


def main(name, body, lab_kwargs, description):
    """Parses `HANATD [HANATCTL]`, builds the lab, runs body(lab, checks, hanatd,
    hanatctl), reports. Returns the exit code."""
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("hanatd", nargs="?", default=os.path.join(here, "../../build/bin/hanatd"))
    ap.add_argument("hanatctl", nargs="?",
                    default=os.path.join(here, "../../build/bin/hanatctl"))
    a = ap.parse_args()
    t0 = time.monotonic()
    try:
        cm = Lab(name=name[:12].replace("_", ""), **lab_kwargs)
        lab = cm.__enter__()
    except LabUnavailable as e:
        print(f"SKIPPED: {e}")
        return 77
    ck = Checks()
    try:
        print(f"lab up in {lab.desc['build_seconds']} s", flush=True)
        body(lab, ck, a.hanatd, a.hanatctl)
    except Exception as e:  # noqa: BLE001 - reported as a failure, then the lab goes
        traceback.print_exc()
        ck.failures.append(f"{name}: {e}")
    finally:
        if ck.failures:
            for n in lab.desc["nats"] + lab.desc.get("removed_nats", []):
                path = os.path.join(lab.dir, f"hanatd-{n['name']}.log")
                try:
                    print(f"--- {n['name']} log (tail) ---\n" + open(path).read()[-3000:])
                except OSError:
                    pass
        cm.__exit__(None, None, None)
    took = time.monotonic() - t0
    if ck.failures:
        print(f"FAILED: {name}: {len(ck.failures)} check(s) in {took:.0f} s: " +
              "; ".join(ck.failures))
        return 1
    print(f"PASSED: {name} in {took:.0f} s" +
          (f" (known gaps, XFAIL: {'; '.join(ck.xfails)})" if ck.xfails else "") +
          (f" (known gaps not seen this run, XPASS: {'; '.join(ck.xpasses)})"
           if ck.xpasses else ""))
    return 0


def run(name, body, lab_kwargs, description):
    sys.exit(main(name, body, lab_kwargs, description))
