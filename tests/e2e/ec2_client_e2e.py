#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Scenario ec2_client (issue #18, the EC2 client part): two hanatd whose clock is 10
minutes behind EC2's and whose environment names a proxy that cannot be reached still start
and fail over.

The lab's EC2 proxy plays EC2 with its clock 600 s ahead (hanatlab/ec2proxy.py "skew"): a
request signed more than 5 minutes off gets HTTP 400 RequestExpired with EC2's Date, as from
a NAT at boot before chrony synced. Both daemons run with http_proxy, HTTPS_PROXY and
ALL_PROXY set to an address in the lab range where nothing listens, and no_proxy naming the
EC2 endpoint's address (what an operator whose EC2 endpoint is reached directly writes):
instance metadata must never go through a proxy, so both must come up (their identity is
read from IMDS) and reach EC2.

Checked: both members come up; each was refused once or more for its clock and then signs
with EC2's (no refusal after the first minute); cutting nat1's links moves table a to nat2
in EC2 within 10 s and nat2's status shows the write ok.

Usage: ec2_client_e2e.py HANATD
Exit 0 pass, 1 fail, 77 skipped (not root, tools missing). The last line says which.
"""
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from hanatlab import Lab, LabUnavailable  # noqa: E402
from hanatlab.lab import child_env  # noqa: E402

SKEW_S = 600
DEAD_PROXY = "http://198.18.255.254:3128"  # in the lab range; nothing routes or listens there


def wait_for(fn, timeout, interval=0.05):
    deadline = time.monotonic() + timeout
    while True:
        try:
            v = fn()
        except Exception:  # noqa: BLE001 - the daemon may not be up yet
            v = None
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(interval)  # pacing of the poll loop


def run(lab, hanatd, failures):
    def check(what, ok, detail=""):
        print(("ok:    " if ok else "FAIL:  ") + what + (f" ({detail})" if detail and not ok
                                                          else ""), flush=True)
        if not ok:
            failures.append(what)
        return ok

    lab.ec2_fault(None, skew=SKEW_S)
    api = lab.desc["api"]["address"]
    env = child_env()
    env.update({"http_proxy": DEAD_PROXY, "HTTPS_PROXY": DEAD_PROXY, "ALL_PROXY": DEAD_PROXY,
                "no_proxy": api})
    t_start = time.time_ns()
    for k in (1, 2):
        n = lab.nat(k)
        path = lab.write_config(k)
        lab.spawn(n["ns"], [hanatd, "--config", path], f"hanatd-{n['name']}", env=env)

    def state(k):
        return lab.hanatd_status(k).get("node", {}).get("state")

    for k in (1, 2):
        st = wait_for(lambda k=k: state(k) in ("active", "standby") and state(k), 40)
        if not check(f"nat{k} up with its clock {SKEW_S} s behind EC2's and a dead proxy in "
                     f"its environment (state {st})", st in ("active", "standby")):
            return
    log = lab.ec2_fault_log(t_start)
    for k in (1, 2):
        mine = [r for r in log if r.get("client") == lab.nat(k)["mgmt_address"]]
        refused = [r for r in mine if r.get("mode") == "skew"]
        ok = [r for r in mine if r.get("status") == 200]
        check(f"nat{k}: refused for its clock ({len(refused)}x), then signed with EC2's "
              f"({len(ok)} calls answered 200)", refused and ok)
        late = [r for r in refused if r["t_ns"] > refused[0]["t_ns"] + 60_000_000_000]
        check(f"nat{k}: no refusal after its first minute ({len(late)})", not late)

    rt_a = lab.route_table("a")["id"]
    eni2 = lab.nat(2)["eni_id"]
    wait_for(lambda: state(1) == "active" and state(2) == "active", 30)
    t_cut = time.time_ns()
    for leg in ("private", "public", "mgmt"):
        lab.set_link(1, leg, False, mode="drop")

    def table_a_target():
        for t in lab.ec2().describe_route_tables(RouteTableIds=[rt_a])["RouteTables"]:
            for r in t["Routes"]:
                if r.get("DestinationCidrBlock") == "0.0.0.0/0":
                    return r.get("NetworkInterfaceId") == eni2
        return False

    moved = wait_for(table_a_target, 10)
    took = (time.time_ns() - t_cut) / 1e9
    check(f"link cut: EC2 routes table a to nat2 within 10 s ({took:.1f} s)", bool(moved))
    tables = {t["id"]: t for t in lab.hanatd_status(2).get("node", {}).get("tables", [])}
    lw = tables.get(rt_a, {}).get("last_write", {})
    check("nat2's status shows its write to table a, ok", lw.get("outcome") == "ok"
          and lw.get("target") == eni2, lw)


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    hanatd = os.path.abspath(sys.argv[1])
    t0 = time.monotonic()
    try:
        lab_cm = Lab(nats=2, hosts_per_zone=1, name="ec2c")
        lab = lab_cm.__enter__()
    except LabUnavailable as e:
        print(f"SKIPPED: {e}")
        return 77
    failures = []
    try:
        try:
            run(lab, hanatd, failures)
        except Exception as e:  # noqa: BLE001 - reported as a failure
            failures.append(f"{type(e).__name__}: {e}")
        if failures:
            for k in (1, 2):
                path = os.path.join(lab.dir, f"hanatd-{lab.nat(k)['name']}.log")
                try:
                    print(f"--- nat{k} hanatd log (tail) ---\n" + open(path).read()[-2000:])
                except OSError:
                    pass
    finally:
        lab_cm.__exit__(None, None, None)
    took = time.monotonic() - t0
    if failures:
        print(f"FAILED: ec2_client, {len(failures)} check(s) in {took:.0f} s: " +
              "; ".join(failures))
        return 1
    print(f"PASSED: ec2_client in {took:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
