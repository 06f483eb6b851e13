#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""e2e recovery (issue 17, DESIGN rules 8 and 10): safe peer recovery with
`recovery_action = "stop-start"` on a lab of three NATs. P is the oldest member (the only
one that may recover both others), X and Y the others.

1. P's own private and public legs cut silently (carrier up, so its link watch sees
   nothing): P sees every peer fall silent at once and its egress check fail, and fences
   nobody; X and Y never fence the older P.
2. X drained (`hanatctl drain`: its agent answers "draining"): never fenced.
3. X's hanatd stopped (SIGTERM: handover, exit; the host still answers ICMP): never fenced.
4. Y silent (hanatd killed, every leg cut): P stop-starts it — the proxy sees
   StopInstances then StartInstances from P. The proxy refuses StartInstances with
   IncorrectInstanceState (EC2's answer while an instance is still `stopping`) until P has
   crashed and been restarted mid stop-start: the restarted P resumes it from its state
   directory (no second StopInstances) and retries until accepted; moto shows Y stopped,
   then running; P's status names the action, target and result.
5. P's hanatd restarted while Y stays silent: no second stop-start within the cool-down
   (read back from the state directory); status still shows the last action.

Timers: DESIGN's probe defaults, egress check every 500 ms, recovery_after 4 s,
recovery_cooldown 120 s. Usage: recovery_e2e.py HANATD [HANATCTL]. Exit 0 pass, 1 fail,
77 skipped.
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hanatlab import checks  # noqa: E402
from hanatlab import scenarios as sc  # noqa: E402

RECOVERY_AFTER_S = 4.0
RECOVERY = {
    "failover": {"recovery_action": "stop-start", "recovery_after": "4s",
                 "recovery_cooldown": "120s"},
    "egress": {"interval": "500ms", "timeout": "500ms"},
}
ACTIONS = ("StopInstances", "StartInstances", "RebootInstances", "TerminateInstances")


def recovery_calls(lab, since_ns):
    """(action, client address) of every recovery call that reached the EC2 proxy."""
    return [(r.get("action"), r.get("client")) for r in lab.ec2_fault_log(since_ns)
            if r.get("action") in ACTIONS]


def start_statuses(lab, since_ns):
    """The HTTP status of every StartInstances the EC2 proxy answered, in order."""
    return [r.get("status") for r in lab.ec2_fault_log(since_ns)
            if r.get("action") == "StartInstances"]


def state_of(lab, instance_id):
    r = lab.ec2().describe_instances(InstanceIds=[instance_id])
    return r["Reservations"][0]["Instances"][0]["State"]["Name"]


def member(node, instance_id):
    for m in (node or {}).get("members", []):
        if m.get("instance_id") == instance_id:
            return m
    return {}


def quiet_for(ck, lab, what, since_ns, seconds):
    """No recovery call for `seconds` (the negative this step asserts needs the time to
    pass: recovery_after plus margin); returns the calls seen."""
    end = time.monotonic() + seconds
    calls = []
    while time.monotonic() < end and not calls:
        calls = recovery_calls(lab, since_ns)
        time.sleep(0.2)  # pacing of the deadline loop
    ck.check(f"{what}: no recovery call in {seconds:.0f} s", calls == [], calls)
    return calls


def serving(lab, names):
    """Every hanatd of `names` serves (standby or active: with three NATs and two tables
    one owns nothing) and sees the others of `names` up."""
    ids = {lab.nat(n)["instance_id"] for n in names}
    for n in names:
        node = lab.hanatd_status(n, timeout=1.0).get("node", {})
        if node.get("state") not in ("standby", "active"):
            return False
        up = {m["instance_id"] for m in node.get("members", [])
              if m.get("self") or m.get("health") == "up"}
        if not ids <= up:
            return False
    return True


def body(lab, ck, hanatd, hanatctl):
    # P: the oldest member by (launch time, instance id), the rank hanatd recovers by.
    insts = lab.ec2().describe_instances(
        InstanceIds=[n["instance_id"] for n in lab.desc["nats"]])["Reservations"]
    launch = {i["InstanceId"]: i["LaunchTime"] for r in insts for i in r["Instances"]}
    order = sorted(lab.desc["nats"], key=lambda n: (launch[n["instance_id"]], n["instance_id"]))
    p, x, y = (n["name"] for n in order)
    pid, xid, yid = (n["instance_id"] for n in order)
    p_mgmt = lab.nat(p)["mgmt_address"]
    print(f"P={p} ({pid}), X={x} ({xid}), Y={y} ({yid})", flush=True)
    ctl = sc.HanatController(lab, hanatd, checks.overrides(checks.LIVE, RECOVERY))
    ctl.start_all()
    ck.need("every hanatd serving, peers up", lambda: serving(lab, (p, x, y)), 40)

    # 1. P's own legs cut silently: every peer silent at once, its egress fails.
    t1 = time.time_ns()
    lab.set_links_together(p, ("private", "public"), False)
    ck.poll(f"{p} suspects itself", lambda: (checks.status_json(lab, hanatctl, p) or {})
            .get("recovery", {}).get("suspect"), 5)
    quiet_for(ck, lab, f"{p}'s own legs cut", t1, RECOVERY_AFTER_S + 6)
    node = checks.status_json(lab, hanatctl, p) or {}
    ck.check(f"{p}'s status: suspect, not confirmed by its own checks",
             node.get("recovery", {}).get("suspect") is True and
             node.get("recovery", {}).get("self_confirmed") is False, node.get("recovery"))
    lab.set_links_together(p, ("private", "public"), True)
    ck.need("every hanatd serving again", lambda: serving(lab, (p, x, y)), 40)

    # 2. X drained: its agent answers "draining".
    t2 = time.time_ns()
    d = checks.ctl(lab, hanatctl, x, "drain")
    ck.check(f"hanatctl drain {x}", d.returncode == 0, d.stderr)
    ck.poll(f"{p} sees {x} down", lambda: member(checks.status_json(lab, hanatctl, p), xid)
            .get("health") == "down", 5)
    quiet_for(ck, lab, f"{x} draining", t2, RECOVERY_AFTER_S + 4)
    ck.check(f"{p} does not call the draining {x} silent",
             member(checks.status_json(lab, hanatctl, p), xid).get("silent") is False,
             member(checks.status_json(lab, hanatctl, p), xid))
    u = checks.ctl(lab, hanatctl, x, "undrain")
    ck.check(f"hanatctl undrain {x}", u.returncode == 0, u.stderr)
    ck.need(f"{x} serving again", lambda: serving(lab, (p, x, y)), 30)

    # 3. X's hanatd stopped; its host still answers ICMP.
    t3 = time.time_ns()
    ctl.stop(x)
    quiet_for(ck, lab, f"{x}'s hanatd stopped", t3, RECOVERY_AFTER_S + 4)
    mx = member(checks.status_json(lab, hanatctl, p), xid)
    ck.check(f"{p} does not call {x} silent (its host answers)", mx.get("silent") is False, mx)

    # 4. Y silent: hanatd killed, every leg cut. P stop-starts it. EC2 answers the first
    # StartInstances with IncorrectInstanceState (as it does while it still considers the
    # instance `stopping`; moto never does): P retries after its backoff.
    t4 = time.time_ns()
    lab.ec2_fault("incorrect_state", actions=["StartInstances"])
    ctl.kill(y)
    checks.cut(lab, y, False, mode="drop")
    refused = ck.poll(f"{p}'s first StartInstances refused with IncorrectInstanceState",
                      lambda: 400 in start_statuses(lab, t4), RECOVERY_AFTER_S + 20,
                      interval=0.05)
    # P crashes in the middle of the stop-start and is started again: it must finish the
    # stop-start from its state directory (Y would otherwise stay stopped), not begin anew.
    t_crash = time.time_ns()
    ctl.kill(p)
    ctl.start(p)
    ck.poll(f"{p} running again after a crash mid stop-start",
            lambda: (checks.status_json(lab, hanatctl, p) or {}).get("state") in
            ("standby", "active"), 30)
    resumed = ck.poll(f"the restarted {p} resumes with StartInstances (refused again)",
                      lambda: 400 in start_statuses(lab, t_crash), 20, interval=0.05)
    lab.ec2_fault(None)
    seen = []

    def started():
        s = state_of(lab, yid)
        if not seen or seen[-1] != s:
            seen.append(s)
        return 200 in start_statuses(lab, t4) and s in ("pending", "running")

    ok = ck.poll(f"{y} stop-started", started, 20, interval=0.1)
    calls = recovery_calls(lab, t4)
    statuses = start_statuses(lab, t4)
    ck.check(f"{y} stop-started by {p}: one StopInstances, StartInstances refused, resumed "
             f"after {p}'s crash and retried until accepted ({statuses})",
             bool(refused) and bool(resumed) and bool(ok) and [a for a, _ in calls][:2] == [
                 "StopInstances", "StartInstances"] and
             [a for a, _ in calls].count("StopInstances") == 1 and
             {a for a, _ in calls} == {"StopInstances", "StartInstances"} and
             statuses[0] == 400 and statuses[-1] == 200 and
             all(c == p_mgmt for _, c in calls), calls)
    ck.check(f"moto showed {y} stopped, then running ({seen})",
             "stopped" in seen and seen[-1] in ("pending", "running") and
             seen.index("stopped") < len(seen) - 1, seen)
    last = ck.poll(f"{p}'s status: last recovery ok",
                   lambda: ((checks.status_json(lab, hanatctl, p) or {}).get("recovery", {})
                            .get("last") or {}).get("result") == "ok" and
                   checks.status_json(lab, hanatctl, p)["recovery"]["last"], 10)
    ck.check(f"{p}'s status: stop-start of {y}, ok ({last})",
             bool(last) and last.get("target") == yid and last.get("action") == "stop-start",
             last)

    # 5. P's hanatd restarted (crash and restart) while Y stays silent: no second action.
    t5 = time.time_ns()
    ctl.kill(p)
    ctl.start(p)
    ck.poll(f"{p} running again", lambda: (checks.status_json(lab, hanatctl, p) or {})
            .get("state") in ("standby", "active"), 30)
    ck.poll(f"{p} sees {y} silent again",
            lambda: member(checks.status_json(lab, hanatctl, p), yid).get("silent"), 15)
    quiet_for(ck, lab, f"{p} restarted, {y} still silent (cool-down)", t5,
              RECOVERY_AFTER_S + 6)
    node = checks.status_json(lab, hanatctl, p) or {}
    last = node.get("recovery", {}).get("last") or {}
    ck.check(f"after the restart {p}'s status still shows the stop-start of {y}",
             last.get("target") == yid and last.get("result") == "ok", node.get("recovery"))


if __name__ == "__main__":
    checks.run("recovery", body, dict(nats=3, hosts_per_zone=1), __doc__)
