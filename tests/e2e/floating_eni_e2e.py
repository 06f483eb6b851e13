#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""e2e floating_eni (issue 17 item 2): the floating ENI (failover.floating_eni) really
floats, and one that cannot be attached never keeps a member from failing over.

Both NATs in zone a (an ENI attaches only within its Availability Zone), both naming the
same floating ENI. The lab's fabric follows EC2's attachments ("follow_enis"): the ENI's
private address FLOAT_ADDR is on the namespace of the NAT that EC2 says holds it.

1. Wrong zone: both NATs name an ENI of a zone-b subnet. Each says so in `hanatctl status`
   (text and JSON: the ENI, its zone and ours), counts it in hanat_floating_eni_failures_total
   and never calls AttachNetworkInterface; cutting the NAT serving zone a still moves zone
   a's route to the other.
2. Floating: nat1 starts first and attaches the ENI (device index 1), a1 reaches
   FLOAT_ADDR; nat2, which already has another ENI at device index 1, waits ("waiting for
   <nat1> to release it (it is up)"). nat1 is cut (every leg): nat2 takes zone a's route,
   and once nat1 has been DOWN for failover.floating_eni_takeover_after (TAKEOVER_S) it
   force-detaches the ENI (DetachNetworkInterface Force=true, as the lab's EC2 proxy logs
   it: moto accepts Force and detaches at once, so nothing is faked) and attaches it at
   the free device index 2. a1 reaches FLOAT_ADDR again — nat1 is cut, so the answer is
   nat2's — and nat2's status and metrics show the ENI attached and one force-detach.

Usage: floating_eni_e2e.py HANATD HANATCTL. Exit 0 pass, 1 fail, 77 skipped.
"""
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hanatlab import checks  # noqa: E402
from hanatlab import scenarios as sc  # noqa: E402

FLOAT_ADDR = "198.18.101.50"
OTHER_ADDR = "198.18.101.60"
TAKEOVER_S = 2.0


def self_of(lab, hanatctl, nat):
    return (checks.status_json(lab, hanatctl, nat) or {}).get("self", {})


def metric(lab, hanatctl, nat, name, eni):
    cp = checks.ctl(lab, hanatctl, nat, "metrics")
    m = re.search(r'^' + name + r'\{eni="' + re.escape(eni) + r'"\} (\S+)$', cp.stdout, re.M)
    return float(m.group(1)) if m else None


def attachment(lab, eni):
    ni = lab.ec2().describe_network_interfaces(NetworkInterfaceIds=[eni])["NetworkInterfaces"][0]
    return ni.get("Attachment") or {}


def peers_up(lab, hanatctl):
    """Each running NAT sees the other up (both in zone a, one of them may stay standby:
    the scenario needs their probes, not a table each)."""
    for me, peer in ((1, 2), (2, 1)):
        node = checks.status_json(lab, hanatctl, me) or {}
        pid = lab.nat(peer)["instance_id"]
        if not any(m.get("instance_id") == pid and m.get("health") == "up"
                   for m in node.get("members", [])):
            return False
    return True


def eni_calls(lab, since_ns, action):
    return [r for r in lab.ec2_fault_log(since_ns) if r.get("action") == action]


def body(lab, ck, hanatd, hanatctl):
    n1, n2 = lab.nat(1), lab.nat(2)
    ec2 = lab.ec2()
    zone_b = lab.host("b1")
    wrong = ec2.create_network_interface(SubnetId=zone_b["subnet_id"])["NetworkInterface"]
    good = ec2.create_network_interface(SubnetId=n1["subnet_id"],
                                        PrivateIpAddress=FLOAT_ADDR)["NetworkInterface"]
    other = ec2.create_network_interface(SubnetId=n1["subnet_id"],
                                         PrivateIpAddress=OTHER_ADDR)["NetworkInterface"]
    lab.follow_enis(True)

    # --- 1. an ENI of another zone: a clear error, and routes still fail over.
    t0 = time.time_ns()
    ctl = sc.HanatController(lab, hanatd, checks.overrides(
        {"failover": {"floating_eni": wrong["NetworkInterfaceId"],
                      "floating_eni_takeover_after": f"{TAKEOVER_S:.0f}s"}}))
    ctl.start_all()
    ck.need("both NATs see each other up", lambda: peers_up(lab, hanatctl), 30)
    for k in (1, 2):
        nat = lab.nat(k)
        want = (f"floating ENI {wrong['NetworkInterfaceId']} is in {wrong['AvailabilityZone']}, "
                f"this instance ({nat['instance_id']}) in {nat['zone']}")
        s = ck.poll(f"nat{k}'s wrong-zone error", lambda k=k: (
            lambda s: s if s.get("floating_eni_error") else None)(self_of(lab, hanatctl, k)), 10)
        ck.check(f"nat{k}'s status JSON: error naming the ENI, its zone and ours",
                 bool(s) and want in s.get("floating_eni_state", ""), s)
        text = checks.status_text(lab, hanatctl, k)
        ck.check(f"nat{k}'s `hanatctl status` shows it", want in text, text)
        ck.check(f"nat{k}'s hanat_floating_eni_failures_total >= 1, attached 0",
                 (metric(lab, hanatctl, k, "hanat_floating_eni_failures_total",
                         wrong["NetworkInterfaceId"]) or 0) >= 1 and
                 metric(lab, hanatctl, k, "hanat_floating_eni_attached",
                        wrong["NetworkInterfaceId"]) == 0.0)
    ck.check("no AttachNetworkInterface for the wrong-zone ENI",
             eni_calls(lab, t0, "AttachNetworkInterface") == [],
             eni_calls(lab, t0, "AttachNetworkInterface"))
    # Both NATs are in zone a: which one serves zone a's table is the allocation's stable
    # tie-break (by instance id). That one is cut; the other must take the table.
    addrs = {n1["private_address"]: 1, n2["private_address"]: 2}
    serving = ck.need("a NAT serving zone a", lambda: addrs.get(lab.default_route("a1")), 15)
    peer = 3 - (serving or 1)
    sc.cut_links(lab, serving or 1)
    moved = ck.poll(f"a1's route via nat{peer}",
                    lambda: lab.default_route("a1") == lab.nat(peer)["private_address"], 15)
    ck.check(f"wrong-zone ENI: cutting nat{serving} still moves zone a to nat{peer}",
             bool(moved), lab.default_route("a1"))
    ctl.stop_all()
    lab.reset()

    # --- 2. the ENI floats from a dead holder to the member that is left.
    ec2.attach_network_interface(NetworkInterfaceId=other["NetworkInterfaceId"],
                                 InstanceId=n2["instance_id"], DeviceIndex=1)
    eni = good["NetworkInterfaceId"]
    ctl = sc.HanatController(lab, hanatd, checks.overrides(
        {"failover": {"floating_eni": eni,
                      "floating_eni_takeover_after": f"{TAKEOVER_S:.0f}s"}}))
    t1 = time.time_ns()
    ctl.start(1)
    att = ck.need("the ENI attached to nat1", lambda: (
        lambda a: a if a.get("InstanceId") == n1["instance_id"] else None)(attachment(lab, eni)),
        20)
    ck.check("nat1 attached it at device index 1 (its first free one)",
             bool(att) and att.get("DeviceIndex") == 1, att)
    ck.need("nat1's status: attached", lambda: self_of(lab, hanatctl, 1).get(
        "floating_eni_attached"), 10)
    ck.need("the fabric puts the ENI's address on nat1",
            lambda: lab.eni_address_nat(FLOAT_ADDR) == n1["name"], 10)
    ck.check(f"a1 reaches {FLOAT_ADDR} on nat1",
             bool(ck.poll("ping", lambda: lab.ping(zone_a_ns(lab), FLOAT_ADDR), 10)))
    ctl.start(2)
    ck.need("both NATs see each other up", lambda: peers_up(lab, hanatctl), 30)
    s = ck.poll("nat2 waiting", lambda: (lambda s: s if "waiting for " + n1["instance_id"] +
                                         " to release it (it is up)" in
                                         s.get("floating_eni_state", "") else None)(
        self_of(lab, hanatctl, 2)), 10)
    ck.check("nat2 waits while nat1 holds it and is up",
             bool(s) and "(it is up)" in s.get("floating_eni_state", "") and
             not s.get("floating_eni_attached"), s or self_of(lab, hanatctl, 2))
    ck.check("nobody detached it while nat1 was up",
             eni_calls(lab, t1, "DetachNetworkInterface") == [],
             eni_calls(lab, t1, "DetachNetworkInterface"))

    t_cut = time.time_ns()
    sc.cut_links(lab, 1)
    moved = ck.poll("a1's route via nat2", lambda: lab.default_route("a1") == n2["private_address"],
                    15)
    ck.check("nat1 cut: zone a served by nat2", bool(moved), lab.default_route("a1"))
    att = ck.poll("the ENI attached to nat2", lambda: (
        lambda a: a if a.get("InstanceId") == n2["instance_id"] else None)(attachment(lab, eni)),
        TAKEOVER_S + 15)
    ck.check("nat2 attached the ENI at device index 2 (1 is taken)",
             bool(att) and att.get("DeviceIndex") == 2, att or attachment(lab, eni))
    det = [r for r in eni_calls(lab, t_cut, "DetachNetworkInterface") if r.get("status") == 200]
    ck.check("nat2 force-detached it from nat1 (DetachNetworkInterface Force=true, once)",
             len(det) == 1 and det[0].get("force") == "true" and
             det[0].get("client") == n2["mgmt_address"], det)
    if det:
        after = (det[0]["t_ns"] - t_cut) / 1e9
        ck.check(f"not before nat1 was DOWN for {TAKEOVER_S:.0f} s ({after:.1f} s after the cut; "
                 "DOWN takes 0.6 s)", after >= TAKEOVER_S, after)
    ck.need("the fabric moves the ENI's address to nat2",
            lambda: lab.eni_address_nat(FLOAT_ADDR) == n2["name"], 10)
    ck.check(f"a1 reaches {FLOAT_ADDR} again, now on nat2 (nat1 is cut)",
             bool(ck.poll("ping", lambda: lab.ping(zone_a_ns(lab), FLOAT_ADDR), 10)))
    s = ck.poll("nat2's status attached", lambda: (
        lambda s: s if s.get("floating_eni_attached") else None)(self_of(lab, hanatctl, 2)), 10)
    ck.check("nat2's status: attached, 1 force-detach",
             bool(s) and s.get("floating_eni_force_detaches") == 1, s)
    ck.check("nat2's metrics: hanat_floating_eni_attached 1, force_detaches_total 1",
             metric(lab, hanatctl, 2, "hanat_floating_eni_attached", eni) == 1.0 and
             metric(lab, hanatctl, 2, "hanat_floating_eni_force_detaches_total", eni) == 1.0)
    ctl.stop_all()


def zone_a_ns(lab):
    return lab.host("a1")["ns"]


if __name__ == "__main__":
    checks.run("floating_eni", body, dict(nats=2, hosts_per_zone=1, nat_zones=["a", "a"]),
               __doc__)
