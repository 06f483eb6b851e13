#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""e2e boot_without_ec2 (issue 17, "data plane first"): a NAT host whose hanatd starts
while IMDS answers 503 and the EC2 API refuses connections (the lab's EC2 proxy resets every
request) still forwards and NATs at once, because forwarding and the masquerade table come
from the config alone.

nat2 runs first and normally. Private host a1 (zone a, its route table on nat1 from the
start) streams UDP to the internet host; with nat1's forwarding off and no hanatd there,
nothing arrives. Then IMDS (503) and EC2 (connections reset) go down for nat1 and its
hanatd starts: the stream arrives from nat1's public address within 1 s of the start,
while status shows the daemon still in its start-up phases. IMDS comes back (EC2 still
refused: the proxy logs nat1's refused calls), then EC2: nat1 joins the group (status
phase "running", nat2 listed up).

Then, within one route refresh (1 s): the source/destination check of nat1's ENI turned
back on in EC2 (ModifyNetworkInterfaceAttribute, as an IaC apply would) is off again, with
a WARNING and the status counters. Last, a failover: every leg of nat2 is cut and zone b's
table moves to nat1, and b1's traffic leaves from nat1's public address.

Usage: boot_without_ec2_e2e.py HANATD [HANATCTL]. Exit 0 pass, 1 fail, 77 skipped.
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hanatlab import checks  # noqa: E402

SDC_FOUND = "source/destination check found enabled"
REFRESH_S = 1.0  # checks.TIMERS: ec2.route_refresh_interval


def node(lab, nat):
    try:
        return lab.hanatd_status(nat).get("node", {})
    except Exception:  # noqa: BLE001 - the socket is not there yet
        return {}


def member_health(doc, instance_id):
    for m in doc.get("members", []):
        if m.get("instance_id") == instance_id:
            return m.get("health")
    return None


def eni_sdc(lab, eni):
    ni = lab.ec2().describe_network_interfaces(NetworkInterfaceIds=[eni])["NetworkInterfaces"]
    return ni[0].get("SourceDestCheck")


def body(lab, ck, hanatd, hanatctl):
    nat1, nat2 = lab.nat(1), lab.nat(2)
    rt_b = lab.route_table("b")["id"]
    cfg = checks.overrides(checks.LIVE)
    lab.start_hanatd(2, hanatd, cfg)
    ck.need("nat2's hanatd running", lambda: node(lab, 2).get("phase") == "running", 30)

    lab.wait_route("a1", nat1["private_address"], timeout=10)
    stream = lab.start_stream("a1", rate=200)
    # 1 s of the stream with nat1 not forwarding: the observation window of the check below.
    time.sleep(1.0)
    ck.check("before nat1's hanatd, a1's stream does not get through nat1",
             stream.received() == 0, stream.received())

    lab.set_imds(1, status=503)
    lab.ec2_fault("unavailable")
    t_start = time.time_ns()
    lab.start_hanatd(1, hanatd, cfg)
    public = nat1["public_address"]

    def natted():
        return [p for p in stream.packets() if p[3] == public and p[2] >= t_start]

    ck.poll(f"a1's stream from {public}", natted, 5.0, interval=0.02)
    first = min((p[2] for p in natted()), default=None)
    delay_ms = None if first is None else (first - t_start) / 1e6
    ck.check(f"a1's stream arrives NATed to nat1's {public} within 1 s of hanatd's start "
             f"while IMDS and EC2 are down ({delay_ms} ms)",
             delay_ms is not None and delay_ms <= 1000, delay_ms)
    doc = node(lab, 1)
    ck.check("nat1's status: still in start-up (identity), data plane ok",
             doc.get("phase") == "identity" and doc.get("self", {}).get("nat_ok") is True,
             {k: doc.get(k) for k in ("phase", "phase_error")})

    # IMDS back, EC2 still refusing: nat1 gets past identity and its EC2 calls are refused.
    lab.set_imds(1)
    mgmt = nat1["mgmt_address"]
    refused = ck.poll("nat1's EC2 calls refused at the proxy", lambda: [
        r for r in lab.ec2_fault_log(t_start)
        if r.get("client") == mgmt and r.get("status") == "reset"], 15)
    ck.check("nat1's EC2 calls were refused while EC2 was down", bool(refused))
    ck.check("nat1 has not joined while EC2 is down",
             node(lab, 1).get("phase") != "running", node(lab, 1).get("phase"))
    late = [p for p in stream.packets() if p[2] > time.time_ns() - 500_000_000]
    ck.check("a1's stream keeps arriving from nat1 meanwhile",
             bool(late) and {p[3] for p in late} == {public}, {p[3] for p in late})

    # EC2 back: nat1 joins the group (its start-up retries back off to at most 30 s).
    lab.ec2_fault(None)
    joined = ck.poll("nat1 running with nat2 up", lambda: (
        node(lab, 1).get("phase") == "running" and
        member_health(node(lab, 1), nat2["instance_id"]) == "up"), 45, interval=0.2)
    ck.check("nat1 joins the group once EC2 answers (status: running, nat2 up)", bool(joined),
             node(lab, 1).get("phase"))
    if not joined:
        return
    text = checks.status_text(lab, hanatctl, 1)
    ck.check("hanatctl status lists nat2", nat2["instance_id"] in text, text[:400])

    # The source/destination check turned back on outside hanat: off again within one
    # route refresh.
    eni = nat1["eni_id"]
    ck.need("nat1's source/destination check off", lambda: eni_sdc(lab, eni) is False, 5)
    repairs_before = node(lab, 1).get("counters", {}).get("source_dest_check_repairs", 0)
    # Not read back: hanatd's refresh may repair it between the write and a read (0.04 s
    # seen). The repair counter and the WARNING below show hanatd saw it on.
    lab.ec2().modify_network_interface_attribute(NetworkInterfaceId=eni,
                                                 SourceDestCheck={"Value": True})
    t_on = time.monotonic()
    off = ck.poll("source/destination check off again", lambda: eni_sdc(lab, eni) is False,
                  5 * REFRESH_S, interval=0.05)
    took = time.monotonic() - t_on
    # One refresh interval until the next read-back, plus the read and the write.
    ck.check(f"the source/destination check is off again within one route refresh "
             f"({took:.2f} s, refresh {REFRESH_S:.0f} s)", bool(off) and took <= REFRESH_S + 1.0,
             took)
    with open(os.path.join(lab.dir, f"hanatd-{nat1['name']}.log")) as f:
        log = f.read()
    # sd-daemon prefix <4> is WARNING.
    ck.check("hanatd logged the repair at WARNING",
             any(line.startswith("<4>") and SDC_FOUND in line for line in log.splitlines()))
    counters = node(lab, 1).get("counters", {})
    ck.check(f"status counts it (source_dest_check_repairs "
             f"{counters.get('source_dest_check_repairs')}, drift_repairs "
             f"{counters.get('drift_repairs')})",
             counters.get("source_dest_check_repairs", 0) >= repairs_before + 1 and
             counters.get("drift_repairs", 0) >= 1, counters)

    # A failover after the late join: nat2 cut, zone b moves to nat1.
    checks.cut(lab, 2, False)
    moved = ck.poll("zone b's table on nat1",
                    lambda: checks.targets(lab)[rt_b] == nat1["eni_id"], 15, interval=0.1)
    ck.check("nat2 cut: zone b's table moves to nat1", bool(moved), checks.targets(lab)[rt_b])
    if moved:
        lab.wait_route("b1", nat1["private_address"], timeout=10)
        src = ck.poll("b1 leaving from nat1", lambda: lab.whoami("b1")[0] == public, 10)
        ck.check(f"b1's traffic leaves from nat1's {public}", bool(src))
    stream.stop()


if __name__ == "__main__":
    checks.run("boot_without_ec2", body, {"nats": 2, "hosts_per_zone": 1}, __doc__)
