#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""e2e asg_replace (issue 16): an Auto Scaling replacement. nat2 (zone b) is terminated in
EC2 and its host removed; nat1 takes zone b's table. A new instance with the group tag
starts in zone b (new instance id, new ENI) and runs hanatd: zone b's table moves nat1 ->
new NAT exactly once, after the new NAT is UP and its failback_delay has passed, and then
no route write at all for 3 x hold_down_max. The survivor's `hanatctl status` lists the new
member and no longer lists nat2. (DESIGN rule 9: membership is live.)

Usage: asg_replace_e2e.py HANATD [HANATCTL]. Exit 0 pass, 1 fail, 77 skipped.
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hanatlab import checks  # noqa: E402
from hanatlab import scenarios as sc  # noqa: E402


def member_health(lab, hanatctl, nat, instance_id):
    node = checks.status_json(lab, hanatctl, nat) or {}
    for m in node.get("members", []):
        if m.get("instance_id") == instance_id:
            return m.get("health")
    return None


def body(lab, ck, hanatd, hanatctl):
    rt_b = lab.route_table("b")["id"]
    nat1, nat2 = lab.nat(1), lab.nat(2)
    ctl = sc.HanatController(lab, hanatd, checks.overrides(checks.LIVE))
    ctl.start_all()
    ctl.wait_ready(30)
    ck.check("zone b's table starts on nat2", checks.targets(lab)[rt_b] == nat2["eni_id"])

    # nat2 is terminated (EC2) and its host goes; nat1 takes zone b's table.
    t_term = time.time_ns()
    lab.remove_nat(2)
    ck.check("zone b's table moves to nat1 once nat2 is gone",
             bool(ck.poll("zone b's table on nat1",
                          lambda: checks.targets(lab)[rt_b] == nat1["eni_id"], 10)),
             checks.targets(lab)[rt_b])
    gone = ck.poll("nat1's status without nat2", lambda: member_health(
        lab, hanatctl, 1, nat2["instance_id"]) is None, 10)
    ck.check("nat1's status no longer lists the terminated nat2", bool(gone),
             member_health(lab, hanatctl, 1, nat2["instance_id"]))

    # The Auto Scaling group launches a replacement in zone b, which starts hanatd.
    new = lab.add_nat("b")
    t_new = time.time_ns()
    t_new_mono = time.monotonic()
    ctl.start(new["name"])
    seen_up = [None]

    def moved():
        if seen_up[0] is None and member_health(lab, hanatctl, 1, new["instance_id"]) == "up":
            seen_up[0] = time.monotonic()
        return checks.targets(lab)[rt_b] == new["eni_id"]
    ok = ck.poll(f"zone b's table on the new NAT {new['name']}", moved,
                 checks.FAILBACK_S + 30, interval=0.1)
    t_moved = time.monotonic()
    ck.check(f"zone b's table moves to the new NAT {new['name']} ({new['instance_id']})",
             bool(ok), checks.targets(lab)[rt_b])
    ck.check("nat1 saw the new NAT up before the table moved",
             seen_up[0] is not None and seen_up[0] <= t_moved, seen_up[0])
    ck.check(f"the move came after failback_delay ({t_moved - t_new_mono:.1f} s after the new "
             f"hanatd started, >= {checks.FAILBACK_S:.0f} s)",
             t_moved - t_new_mono >= checks.FAILBACK_S)

    # Then nothing: 3 x hold_down_max without a single route write.
    t_quiet = checks.after_last_write(ck, lab, t_new, rt_b)
    time.sleep(3 * checks.HOLD_DOWN_MAX_S)  # the observation window of the checks below
    t_end = time.time_ns()
    quiet = checks.writes(lab, t_quiet, t_end)
    ck.check(f"no route write in the {3 * checks.HOLD_DOWN_MAX_S:.0f} s after the move "
             f"(3 x hold_down_max) ({len(quiet)})", quiet == [],
             [(x.get("route_table"), x.get("target"), x.get("client")) for x in quiet])
    to_b = checks.writes(lab, t_new, t_end, table=rt_b)
    ck.check(f"exactly one write to zone b's table since the new NAT started ({len(to_b)})",
             len(to_b) == 1 and to_b[0].get("target") == new["eni_id"],
             [(x.get("target"), x.get("client")) for x in to_b])
    b_flips = checks.flips(lab, "b1", t_new)
    ck.check(f"b1's route changed once, to the new NAT ({b_flips})",
             b_flips == [new["name"]])
    ck.check("zone b's table is still on the new NAT",
             checks.targets(lab)[rt_b] == new["eni_id"])
    ck.check("every write since nat2's termination was to zone b's table",
             all(x.get("route_table") == rt_b for x in checks.writes(lab, t_term, t_end)),
             checks.writes(lab, t_term, t_end))

    text = checks.status_text(lab, hanatctl, 1)
    ck.check("nat1's hanatctl status lists the new member and not nat2",
             new["instance_id"] in text and nat2["instance_id"] not in text, text)
    ck.check("nat1's hanatctl status --json shows the new member up",
             member_health(lab, hanatctl, 1, new["instance_id"]) == "up")
    text = checks.status_text(lab, hanatctl, new["name"])
    ck.check("the new NAT's hanatctl status lists nat1 and not nat2",
             nat1["instance_id"] in text and nat2["instance_id"] not in text, text)


if __name__ == "__main__":
    checks.run("asg_replace", body, dict(nats=2, hosts_per_zone=1), __doc__)
