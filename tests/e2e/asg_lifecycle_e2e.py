#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""e2e asg_lifecycle (issue 17): every documented Auto Scaling target lifecycle state that
nat1's fake IMDS serves starts a handover of zone a's table to nat2.

Both NATs are attached to an Auto Scaling group in moto with a terminating lifecycle hook.
hanatd reads the state every second here (ec2.notice_interval = "1s"; 5 s by default), and
each state's handover starts within that second: the route moves within NOTICE_S + 3 s.
- Standby, Warmed:Stopped, Warmed:Running, Warmed:Hibernated: nat1 drains (zone a's table
  moves to nat2, hanatd keeps running); the state back to InService, nat1 takes its table
  back (failback). For the Warmed:* states, which run the group's terminating hooks on the
  way back to the warm pool, CompleteLifecycleAction (CONTINUE) reaches the Auto Scaling
  API after the table moved.
- Terminated, Warmed:Terminated, Detached: nat1 hands zone a's table to nat2, releases the
  hook (CompleteLifecycleAction CONTINUE, logged at the lab's EC2/Auto Scaling proxy after
  the route write) and exits; then hanatd is started again with the state back to
  InService and takes the table back.
moto 5.2.1 has no CompleteLifecycleAction: the lab's proxy answers it as Auto Scaling does
(hanatlab/ec2proxy.py) and logs group, hook, instance and result.

Usage: asg_lifecycle_e2e.py HANATD [HANATCTL]. Exit 0 pass, 1 fail, 77 skipped.
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hanatlab import checks  # noqa: E402

GROUP, HOOK = "hanat-nat-asg", "hanat-handover"
DRAIN = ["Standby", "Warmed:Stopped", "Warmed:Running", "Warmed:Hibernated"]
LEAVE = ["Terminated", "Warmed:Terminated", "Detached"]
NOTICE_S = 1.0  # hanatd's IMDS notice poll interval (ec2.notice_interval below)
MOVE_S = NOTICE_S + 3.0  # the poll, then a planned handover's route write


def node(lab, nat):
    try:
        return lab.hanatd_status(nat).get("node", {})
    except Exception:  # noqa: BLE001 - not up (yet) or gone
        return {}


def make_group(lab):
    ec2, asg = lab.ec2(), lab.ec2("autoscaling")
    nat1, nat2 = lab.nat(1), lab.nat(2)
    inst = ec2.describe_instances(InstanceIds=[nat1["instance_id"]])["Reservations"][0][
        "Instances"][0]
    asg.create_launch_configuration(LaunchConfigurationName="hanat-nat",
                                    ImageId=inst["ImageId"], InstanceType="t3.micro")
    asg.create_auto_scaling_group(AutoScalingGroupName=GROUP, LaunchConfigurationName="hanat-nat",
                                  MinSize=0, MaxSize=2, DesiredCapacity=0,
                                  VPCZoneIdentifier=nat1["subnet_id"])
    asg.attach_instances(AutoScalingGroupName=GROUP,
                         InstanceIds=[nat1["instance_id"], nat2["instance_id"]])
    asg.put_lifecycle_hook(LifecycleHookName=HOOK, AutoScalingGroupName=GROUP,
                           LifecycleTransition="autoscaling:EC2_INSTANCE_TERMINATING",
                           HeartbeatTimeout=30, DefaultResult="CONTINUE")


def completions(lab, since_ns, instance):
    return [r for r in lab.ec2_fault_log(since_ns)
            if r.get("action") == "CompleteLifecycleAction" and r.get("instance") == instance]


def body(lab, ck, hanatd, hanatctl):
    nat1, nat2 = lab.nat(1), lab.nat(2)
    rt_a = lab.route_table("a")["id"]
    make_group(lab)
    # The lab config points autoscaling_endpoint at its proxy.
    cfg = checks.overrides({"ec2": {"notice_interval": f"{NOTICE_S:g}s"}})
    lab.start_hanatd(2, hanatd, cfg)
    lab.start_hanatd(1, hanatd, cfg)
    ck.need("both hanatd running, zone a's table on nat1", lambda: (
        node(lab, 1).get("phase") == "running" and node(lab, 2).get("phase") == "running" and
        checks.targets(lab)[rt_a] == nat1["eni_id"]), 40)

    def on(nat):
        return lambda: checks.targets(lab)[rt_a] == nat["eni_id"]

    def handed_over_write(since):
        w = [x for x in checks.writes(lab, since, table=rt_a) if x.get("target") == nat2["eni_id"]]
        return w[0]["t_ns"] if w else None

    def moves_to_nat2(state):
        t0 = time.monotonic()
        moved = ck.poll(f"{state}: zone a on nat2", on(nat2), NOTICE_S + 10, interval=0.1)
        took = time.monotonic() - t0
        ck.check(f"{state}: zone a's table moves to nat2 within {MOVE_S:g} s ({took:.1f} s)",
                 bool(moved) and took <= MOVE_S, checks.targets(lab)[rt_a])

    for state in DRAIN:
        since = time.time_ns()
        lab.set_imds(1, target_lifecycle_state=state)
        moves_to_nat2(state)
        doc = node(lab, 1).get("self", {})
        ck.check(f"{state}: nat1 keeps running, drained, status shows the state",
                 doc.get("lifecycle_state") == state and doc.get("lifecycle_drained") is True,
                 {k: doc.get(k) for k in ("lifecycle_state", "lifecycle_drained")})
        if state == DRAIN[0]:
            text = checks.status_text(lab, hanatctl, 1)
            line = [x for x in text.splitlines() if x.startswith("lifecycle:")]
            ck.check(f"{state}: hanatctl status says it ({line})",
                     line == [f"lifecycle:   {state}, routes handed over"], text[:600])
        if state.startswith("Warmed:"):
            done = ck.poll(f"{state}: CompleteLifecycleAction",
                           lambda: completions(lab, since, nat1["instance_id"]), 10)
            t_write = handed_over_write(since)
            ck.check(f"{state}: CompleteLifecycleAction ({HOOK}, CONTINUE) after the route moved",
                     bool(done) and t_write is not None and done[0]["t_ns"] > t_write and
                     done[0].get("hook") == HOOK and done[0].get("group") == GROUP and
                     done[0].get("result") == "CONTINUE", (done, t_write))
        lab.set_imds(1, target_lifecycle_state="InService")
        back = ck.poll(f"{state} -> InService: zone a back on nat1", on(nat1),
                       NOTICE_S + checks.FAILBACK_S + 15, interval=0.1)
        ck.check(f"{state} -> InService: nat1 takes zone a back", bool(back),
                 checks.targets(lab)[rt_a])

    for i, state in enumerate(LEAVE):
        since = time.time_ns()
        lab.set_imds(1, target_lifecycle_state=state)
        moves_to_nat2(state)
        done = ck.poll(f"{state}: CompleteLifecycleAction",
                       lambda: completions(lab, since, nat1["instance_id"]), 10)
        t_write = handed_over_write(since)
        ck.check(f"{state}: CompleteLifecycleAction ({HOOK}, CONTINUE) after the route moved",
                 bool(done) and t_write is not None and done[0]["t_ns"] > t_write and
                 done[0].get("hook") == HOOK and done[0].get("result") == "CONTINUE",
                 (done, t_write))
        gone = ck.poll(f"{state}: nat1's hanatd exits", lambda: not node(lab, 1), 20)
        ck.check(f"{state}: nat1's hanatd exits after the handover", bool(gone))
        # The instance is replaced (or comes back): hanatd starts again, in service.
        lab.set_imds(1, target_lifecycle_state="InService")
        lab.start_hanatd(1, hanatd, cfg, name=f"hanatd-{nat1['name']}-{i + 2}")
        back = ck.poll(f"{state}: zone a back on nat1 after the restart", on(nat1),
                       checks.FAILBACK_S + 25, interval=0.1)
        ck.check(f"{state}: a new hanatd on nat1 takes zone a back", bool(back),
                 checks.targets(lab)[rt_a])

    logs = ""
    for name in [nat1["name"]] + [f"{nat1['name']}-{i + 2}" for i in range(len(LEAVE))]:
        try:
            with open(os.path.join(lab.dir, f"hanatd-{name}.log")) as f:
                logs += f.read()
        except OSError:
            pass
    ck.check("nat1's logs: every hook answered in time (no 'no answer within')",
             "no answer within" not in logs and "CONTINUE" in logs)


if __name__ == "__main__":
    checks.run("asg_lifecycle", body, {"nats": 2, "hosts_per_zone": 1}, __doc__)
