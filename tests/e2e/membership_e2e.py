#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""A living group (issue #16) in the lab, against moto (signatures checked).

1. Explicit discovery that tolerates the real world: hanatd on both NATs with `discovery =
   "explicit"`, where `members` lists one instance that has been terminated and
   `route_tables` one table that has been deleted. hanatd must start, name both missing ids
   in `hanatctl status --json` and in one WARNING each, and manage the rest: the two real
   tables are listed, and when nat2's private link is cut, zone b's table moves to nat1.
2. Live membership with tag discovery: hanatd on nat1 only. nat2 carries the group tag but
   runs no hanatd: it answers ICMP, is listed as "not running hanatd" (one WARNING) and zone
   b's table, which points at it, is not taken. When nat2's tag is removed it leaves the
   group within the refresh interval and nat1 takes zone b's table at once; tagged again, it
   is a member again and is given nothing.

Exit 0 when every check passed, 1 on a failure, 77 when the lab cannot run (not root,
tools missing). The last line says PASSED, FAILED or SKIPPED.
"""
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from hanatlab import Lab, LabUnavailable  # noqa: E402

HANATD = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "../../build/bin/hanatd")
HANATCTL = sys.argv[2] if len(sys.argv) > 2 else os.path.join(HERE, "../../build/bin/hanatctl")
failures = []


def check(what, cond, detail=""):
    print(("ok:   " if cond else "FAIL: ") + what + ("" if cond else f" ({detail})"), flush=True)
    if not cond:
        failures.append(what)
    return cond


def poll(what, fn, timeout):
    """Polls fn() until it returns something truthy or the deadline passes."""
    end = time.monotonic() + timeout
    last = None
    while time.monotonic() < end:
        try:
            last = fn()
            if last:
                return last
        except Exception as e:  # noqa: BLE001 - the daemon may not be up yet
            last = e
        time.sleep(0.1)  # pacing of the poll loop
    print(f"      timed out after {timeout}s waiting for {what}; last: {last!r}"[:600])
    return None


def status(lab, nat):
    """The node part of `hanatctl status --json`, or None."""
    sock = os.path.join(lab.nat(nat)["dir"], "hanatd.sock")
    out = subprocess.run([HANATCTL, "--socket", sock, "status", "--json"], capture_output=True,
                         text=True, timeout=10)
    if out.returncode != 0:
        return None
    return json.loads(out.stdout).get("node")


def default_target(lab, rt):
    t = lab.ec2().describe_route_tables(RouteTableIds=[rt])["RouteTables"][0]
    for r in t["Routes"]:
        if r.get("DestinationCidrBlock") == "0.0.0.0/0":
            return r.get("NetworkInterfaceId") or r.get("InstanceId") or r.get("GatewayId")
    return None


def main():
    try:
        lab_cm = Lab(nats=2, hosts_per_zone=1, name="e2em")
        lab = lab_cm.__enter__()
    except LabUnavailable as e:
        print(f"SKIPPED: {e}")
        return 77
    try:
        explicit_lists(lab)
        for nat in (1, 2):
            lab.stop(f"hanatd-nat{nat}")
        lab.reset()
        live_membership(lab)
    except Exception as e:  # noqa: BLE001 - e.g. a lab wait that timed out: a failure
        import traceback
        traceback.print_exc()
        check("the scenario ran to its end", False, f"{type(e).__name__}: {e}")
    finally:
        lab_cm.__exit__(None, None, None)
    if failures:
        print(f"FAILED: {len(failures)} check(s): " + "; ".join(failures))
        return 1
    print("PASSED: explicit lists with missing ids; members that leave and join; foreign route and adopt")
    return 0


def explicit_lists(lab):
    ec2 = lab.ec2()
    n1, n2 = lab.nat(1), lab.nat(2)
    rt_a, rt_b = lab.route_table("a")["id"], lab.route_table("b")["id"]
    vpc = lab.desc["vpc"]["id"]
    subnet = ec2.describe_instances(InstanceIds=[n1["instance_id"]])[
        "Reservations"][0]["Instances"][0]["SubnetId"]
    gone = ec2.run_instances(ImageId="ami-12c6146b", InstanceType="t3.micro", MinCount=1,
                             MaxCount=1, SubnetId=subnet)["Instances"][0]["InstanceId"]
    ec2.terminate_instances(InstanceIds=[gone])
    deleted = ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
    ec2.delete_route_table(RouteTableId=deleted)
    print(f"      terminated member {gone}, deleted table {deleted}")

    overrides = {
        "group": {"discovery": "explicit",
                  "members": [n1["instance_id"], n2["instance_id"], gone],
                  "route_tables": [rt_a, rt_b, deleted],
                  "refresh_interval": "2s"},
        "probe": {"interval": "100ms", "timeout": "100ms", "rise": 3, "fall": 3},
        "failover": {"failback_delay": "3s"},
        "ec2": {"route_refresh_interval": "2s"},
    }
    for nat in (1, 2):
        lab.start_hanatd(nat, HANATD, overrides)

    def settled():
        s = status(lab, 1)
        # The tables are listed once the engine read them (its first Describe).
        return s if s and s.get("phase") == "running" and s.get("missing") and \
            s.get("tables") else None

    s = poll("nat1 running with missing ids and its tables in its status", settled, 30)
    check("hanatd starts although one listed member and one listed table do not exist",
          s is not None and s.get("phase") == "running", f"status {s!r}"[:400])
    if s is None:
        with open(os.path.join(lab.dir, "hanatd-nat1.log")) as f:
            print("      hanatd-nat1.log (tail):\n" + f.read()[-2500:])
        return
    check("status names the terminated member as missing",
          s["missing"].get("members") == [gone], f"missing {s['missing']!r}")
    check("status names the deleted table as missing",
          s["missing"].get("route_tables") == [deleted], f"missing {s['missing']!r}")
    check("the two existing tables are managed",
          sorted(t["id"] for t in s.get("tables", [])) == sorted([rt_a, rt_b]),
          f"tables {[t['id'] for t in s.get('tables', [])]}")
    check("the members are the two running NATs",
          sorted(m["instance_id"] for m in s.get("members", [])) ==
          sorted([n1["instance_id"], n2["instance_id"]]),
          f"members {[m['instance_id'] for m in s.get('members', [])]}")
    with open(os.path.join(lab.dir, "hanatd-nat1.log")) as f:
        log = f.read()
    warned = [line for line in log.splitlines() if "WARN" in line.upper() or "<4>" in line]
    check("one WARNING names the terminated member",
          sum(gone in line for line in warned) == 1, "\n".join(warned)[-600:])
    check("one WARNING names the deleted table",
          sum(deleted in line for line in warned) == 1, "\n".join(warned)[-600:])

    # nat2 must be seen up by nat1 before its link is cut, or nothing would be taken over.
    def b_up():
        st = status(lab, 1)
        return st and any(m["instance_id"] == n2["instance_id"] and m["health"] == "up"
                          for m in st.get("members", []))
    check("nat1 sees nat2 up", bool(poll("nat2 up in nat1's view", b_up, 20)))
    lab.set_link(2, "private", False, mode="drop")
    moved = poll("zone b's table on nat1's ENI",
                 lambda: default_target(lab, rt_b) == n1["eni_id"], 20)
    check("the rest is managed: zone b's table moves to nat1 when nat2 is cut", bool(moved),
          f"rt_b -> {default_target(lab, rt_b)}")


def live_membership(lab):
    ec2 = lab.ec2()
    n1, n2 = lab.nat(1), lab.nat(2)
    rt_b = lab.route_table("b")["id"]
    overrides = {
        "group": {"refresh_interval": "2s"},
        "probe": {"interval": "100ms", "timeout": "100ms", "rise": 3, "fall": 3},
        "failover": {"failback_delay": "3s"},
        "ec2": {"route_refresh_interval": "2s"},
    }
    lab.start_hanatd(1, HANATD, overrides, name="hanatd-nat1-tags")

    def member(st, iid):
        return next((m for m in (st or {}).get("members", []) if m["instance_id"] == iid), None)

    def bystander():
        st = status(lab, 1)
        m = member(st, n2["instance_id"])
        return st if m and m.get("note") == "not running hanatd" else None
    st = poll("nat2 listed as not running hanatd", bystander, 20)
    check("a tagged instance without hanatd is listed as not running hanatd", st is not None)
    m2 = member(st, n2["instance_id"])
    check("it answers ICMP (up), its agent never answered",
          m2 is not None and m2["health"] == "up" and m2.get("agent_answered") is False,
          f"{m2!r}")
    check("zone b's table, held by that live instance, is not taken",
          default_target(lab, rt_b) == n2["eni_id"], f"rt_b -> {default_target(lab, rt_b)}")
    log_path = os.path.join(lab.dir, "hanatd-nat1-tags.log")
    with open(log_path) as f:
        lines = [ln for ln in f.read().splitlines() if "not running hanatd" in ln]
    check("one WARNING says so", len(lines) == 1 and lines[0].startswith("<4>"), f"{lines!r}")

    ec2.delete_tags(Resources=[n2["instance_id"]], Tags=[{"Key": "hanat:group"}])
    t0 = time.monotonic()
    gone = poll("nat2 gone from nat1's members",
                lambda: (lambda st: st and member(st, n2["instance_id"]) is None and st)(
                    status(lab, 1)), 10)
    check("an untagged instance leaves the group within the refresh interval (2 s)",
          gone is not None and time.monotonic() - t0 < 6, f"after {time.monotonic() - t0:.1f}s")
    moved = poll("zone b's table on nat1", lambda: default_target(lab, rt_b) == n1["eni_id"], 10)
    check("the table it held is taken at once", bool(moved),
          f"rt_b -> {default_target(lab, rt_b)}")

    ec2.create_tags(Resources=[n2["instance_id"]],
                    Tags=[{"Key": "hanat:group", "Value": lab.desc["group"]}])
    back = poll("nat2 a member again", lambda: member(status(lab, 1), n2["instance_id"]), 10)
    check("tagged again, it is a member again", back is not None)
    time.sleep(3)  # a window in which a wrong allocation would show as a write
    check("and is given nothing: zone b's table stays on nat1",
          default_target(lab, rt_b) == n1["eni_id"], f"rt_b -> {default_target(lab, rt_b)}")
    with open(log_path) as f:
        log = f.read()
    check("the log says it left and joined",
          "left the group" in log and "joined the group" in log, log[-800:])

    # A foreign route: the operator points nat1's own table at the internet gateway.
    rt_a = lab.route_table("a")["id"]
    igw = lab.desc["vpc"]["internet_gateway"]
    ec2.replace_route(RouteTableId=rt_a, DestinationCidrBlock="0.0.0.0/0", GatewayId=igw)

    def foreign_shown():
        st = status(lab, 1)
        t = next((t for t in (st or {}).get("tables", []) if t["id"] == rt_a), None)
        r = t and t["routes"][0]
        return r if r and r.get("foreign") else None
    r = poll("zone a's table shown foreign", foreign_shown, 10)
    check("a route at the internet gateway is shown foreign (igw-...)",
          r is not None and r.get("status") == f"foreign ({igw})", f"{r!r}")
    time.sleep(3)  # more than one describe interval: a write would have happened by now
    check("and is never written", default_target(lab, rt_a) == igw,
          f"rt_a -> {default_target(lab, rt_a)}")
    with open(log_path) as f:
        lines = [ln for ln in f.read().splitlines() if "foreign" in ln and rt_a in ln]
    check("one WARNING says so", len(lines) == 1 and lines[0].startswith("<4>"), f"{lines!r}")
    sock = os.path.join(n1["dir"], "hanatd.sock")
    out = subprocess.run([HANATCTL, "--socket", sock, "adopt", rt_a], capture_output=True,
                         text=True, timeout=10)
    check("hanatctl adopt is accepted", out.returncode == 0 and "adopted" in out.stdout,
          f"{out.returncode} {out.stdout!r} {out.stderr!r}")
    back = poll("zone a's table on nat1 again",
                lambda: default_target(lab, rt_a) == n1["eni_id"], 10)
    check("after adopt, hanat writes the table back to its member", bool(back),
          f"rt_a -> {default_target(lab, rt_a)}")
    out = subprocess.run([HANATCTL, "--socket", sock, "adopt", rt_a], capture_output=True,
                         text=True, timeout=10)
    check("adopting a table with no foreign route is refused with the reason",
          out.returncode == 1 and "has no foreign route" in out.stderr, f"{out.stderr!r}")


if __name__ == "__main__":
    sys.exit(main())
