#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""e2e eip_follows (issue 17, DESIGN rule 8): a stable egress IP per zone. Each zone has an
Elastic IP tagged hanat:group + hanat:zone (failover.move_eip = true, no list: found by
tag). The lab's fabric plays the internet gateway for them: it follows what EC2 says each
EIP is associated with (the ENI from moto, the private IP from the EC2 proxy's record, as
moto ignores AssociateAddress's PrivateIpAddress) and translates the holder's packets to
the EIP's lab address 198.19.1.(100+Z).

  1. Both NATs up: the internet host sees zone a's private host with zone a's EIP and zone
     b's with zone b's.
  2. nat1 (zone a) is cut: nat2 serves both zones; both EIPs are on nat2 (zone b's on its
     primary private IP, zone a's on a secondary private IP it assigned), its status says
     so, and each zone's traffic still leaves with its own EIP.
  3. nat1 returns and fails back: zone a's EIP is back on nat1's primary IP, zone a's
     traffic leaves with it again, nat2 released the secondary IP.
  4. nat2's hanatd restarts with failover.eips listing zone b's EIP under an allocation id
     that does not exist: its status names the key and InvalidAllocationID.NotFound, and
     nat1 cut again, nat2 still takes zone a's route and EIP.

Public-path probing is off (probe.paths = ["private"]): moto leaves a moved EIP's address
on the old holder's DescribeInstances entry, which would make a NAT probe its own address.

Usage: eip_follows_e2e.py HANATD [HANATCTL]. Exit 0 pass, 1 fail, 77 skipped.
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hanatlab import checks  # noqa: E402
from hanatlab import scenarios as sc  # noqa: E402
from hanatlab.lab import ELASTIC_PREFIX, ZONE_INDEX, write_json  # noqa: E402


def add_zone_eips(lab):
    """One Elastic IP per private zone, tagged for the group and the zone, and the lab's
    address for each (the fabric reads them from the lab description)."""
    ec2 = lab.ec2()
    out = []
    for z in ("a", "b"):
        zone = next(zz for zz in lab.desc["zones"] if zz["letter"] == z)
        alloc = ec2.allocate_address(Domain="vpc")
        ec2.create_tags(Resources=[alloc["AllocationId"]],
                        Tags=[{"Key": "hanat:group", "Value": lab.group},
                              {"Key": "hanat:zone", "Value": zone["name"]}])
        out.append({"zone_letter": z, "zone": zone["name"],
                    "allocation_id": alloc["AllocationId"], "public_ip": alloc["PublicIp"],
                    "lab_address": f"{ELASTIC_PREFIX}{100 + ZONE_INDEX[z]}"})
    lab.desc["zone_eips"] = out
    write_json(lab.desc_path, lab.desc)
    return {e["zone_letter"]: e for e in out}


def fabric_eip(lab, zone):
    """[nat name, private ip] the fabric applies for zone's EIP, or None."""
    return ((lab.fabric_status() or {}).get("eips") or {}).get(zone)


def source_of(lab, host):
    """The source address the internet host sees for a TCP connection from `host`."""
    return lab.whoami(host, timeout=1.0)[0]


def eips_here(lab, hanatctl, nat):
    node = checks.status_json(lab, hanatctl, nat) or {}
    return {e.get("zone"): e for e in (node.get("eips") or {}).get("zones", [])
            if e.get("here")}


def secondary_ips(lab, nat):
    eni = lab.nat(nat)["eni_id"]
    ni = lab.ec2().describe_network_interfaces(NetworkInterfaceIds=[eni])["NetworkInterfaces"]
    return [p["PrivateIpAddress"] for p in ni[0].get("PrivateIpAddresses", [])
            if not p.get("Primary")]


def body(lab, ck, hanatd, hanatctl):
    eips = add_zone_eips(lab)
    la, lb = eips["a"]["lab_address"], eips["b"]["lab_address"]
    nat1, nat2 = lab.nat(1), lab.nat(2)
    rt_a = lab.route_table("a")["id"]
    ctl = sc.HanatController(lab, hanatd, checks.overrides(
        checks.LIVE, {"failover": {"move_eip": True}, "probe": {"paths": ["private"]}}))
    ctl.start_all()
    ctl.wait_ready(30)

    # 1. Each zone's EIP on its home NAT's primary IP.
    ck.need("zone a's EIP on nat1's primary IP (as EC2 says)",
            lambda: fabric_eip(lab, "a") == ["nat1", nat1["private_address"]], 20)
    ck.need("zone b's EIP on nat2's primary IP (as EC2 says)",
            lambda: fabric_eip(lab, "b") == ["nat2", nat2["private_address"]], 20)
    ck.check("a1 leaves with zone a's EIP",
             ck.poll("a1 seen as zone a's EIP", lambda: source_of(lab, "a1") == la, 10),
             source_of(lab, "a1"))
    ck.check("b1 leaves with zone b's EIP",
             ck.poll("b1 seen as zone b's EIP", lambda: source_of(lab, "b1") == lb, 10),
             source_of(lab, "b1"))

    # 2. nat1 cut: nat2 serves both zones and carries both EIPs.
    t_cut = time.time_ns()
    checks.cut(lab, 1, False)
    ck.need("zone a's table on nat2", lambda: checks.targets(lab)[rt_a] == nat2["eni_id"], 15)
    moved = ck.poll("zone a's EIP on a secondary IP of nat2", lambda: (
        fabric_eip(lab, "a") or [None, None])[0] == "nat2" and
        fabric_eip(lab, "a")[1] != nat2["private_address"], 15)
    ck.check("zone a's EIP moved to a secondary private IP of nat2 (as EC2 says)", bool(moved),
             fabric_eip(lab, "a"))
    log = lab.ec2_fault_log(t_cut)
    route = [r["t_ns"] for r in checks.writes(lab, t_cut, table=rt_a)]
    assoc = [r["t_ns"] for r in log if r.get("action") == "AssociateAddress"
             and r.get("status") == 200]
    ck.check("nat2 associated zone a's EIP only after its route write succeeded",
             bool(route) and bool(assoc) and min(assoc) > min(route), (route, assoc))
    ck.check("zone b's EIP stayed on nat2's primary IP",
             fabric_eip(lab, "b") == ["nat2", nat2["private_address"]], fabric_eip(lab, "b"))
    ck.check("a1 still leaves with zone a's EIP through nat2",
             ck.poll("a1 seen as zone a's EIP", lambda: source_of(lab, "a1") == la, 10),
             source_of(lab, "a1"))
    ck.check("b1 still leaves with zone b's EIP", source_of(lab, "b1") == lb, source_of(lab, "b1"))
    here = ck.poll("nat2's status shows both EIPs here",
                   lambda: len(eips_here(lab, hanatctl, 2)) == 2 and eips_here(lab, hanatctl, 2), 5)
    ck.check("nat2's hanatctl status --json: both zones' EIPs on this host", bool(here),
             eips_here(lab, hanatctl, 2))
    routes = checks.ctl(lab, hanatctl, 2, "routes").stdout
    ck.check("nat2's hanatctl routes lists both EIPs on this host (primary and secondary)",
             routes.count("on this host") == 2 and "(secondary)" in routes and
             "(primary)" in routes, routes)

    # 3. nat1 returns and fails back: zone a's EIP goes home, nat2 gives the IP back.
    checks.cut(lab, 1, True)
    ck.need("zone a's table back on nat1",
            lambda: checks.targets(lab)[rt_a] == nat1["eni_id"], checks.FAILBACK_S + 20)
    ck.check("zone a's EIP back on nat1's primary IP (as EC2 says)",
             bool(ck.poll("zone a's EIP on nat1", lambda: fabric_eip(lab, "a") ==
                          ["nat1", nat1["private_address"]], 15)), fabric_eip(lab, "a"))
    ck.check("a1 leaves with zone a's EIP after failback",
             ck.poll("a1 seen as zone a's EIP", lambda: source_of(lab, "a1") == la, 10),
             source_of(lab, "a1"))
    ck.check("b1 still leaves with zone b's EIP", source_of(lab, "b1") == lb, source_of(lab, "b1"))
    ck.check("nat2 released the secondary private IP",
             ck.poll("no secondary IP on nat2", lambda: secondary_ips(lab, 2) == [], 10) is not None
             and secondary_ips(lab, 2) == [], secondary_ips(lab, 2))
    moves = ((checks.status_json(lab, hanatctl, 2) or {}).get("eips") or {}).get("moves", {})
    ck.check("nat2 counted its EIP moves by result", moves.get("ok", 0) >= 2, moves)

    # 4. A listed allocation that does not exist: an error naming it; routes still move.
    missing = "eipalloc-0123456789abcdef0"
    ctl.kill(2)  # a restart moves nothing (DESIGN rule 10)
    listed = sc.HanatController(lab, hanatd, checks.overrides(checks.LIVE, {
        "failover": {"move_eip": True,
                     "eips": {eips["a"]["zone"]: eips["a"]["allocation_id"],
                              eips["b"]["zone"]: missing}},
        "probe": {"paths": ["private"]}}))
    listed.start(2)

    def problems():
        node = checks.status_json(lab, hanatctl, 2) or {}
        return [p for p in (node.get("eips") or {}).get("problems", [])
                if "InvalidAllocationID.NotFound" in p and missing in p]
    ck.check("nat2's status names the missing allocation (InvalidAllocationID.NotFound)",
             bool(ck.poll("the missing allocation in status", problems, 20)),
             (checks.status_json(lab, hanatctl, 2) or {}).get("eips"))
    ck.check("hanatctl status shows it as an ERROR line",
             f"failover.eips.{eips['b']['zone']}" in checks.status_text(lab, hanatctl, 2),
             checks.status_text(lab, hanatctl, 2))
    ck.need("nat2 running again", lambda: (checks.status_json(lab, hanatctl, 2) or {}).get(
        "state") == "active", 20)
    checks.cut(lab, 1, False)
    ck.check("nat1 cut again: zone a's table still moves to nat2",
             bool(ck.poll("zone a's table on nat2",
                          lambda: checks.targets(lab)[rt_a] == nat2["eni_id"], 15)),
             checks.targets(lab)[rt_a])
    ck.check("and zone a's EIP follows it",
             bool(ck.poll("zone a's EIP on nat2", lambda: (fabric_eip(lab, "a") or [None])[0]
                          == "nat2", 15)), fabric_eip(lab, "a"))
    checks.cut(lab, 1, True)
    listed.kill(2)


if __name__ == "__main__":
    checks.run("eip_follows", body, dict(nats=2, hosts_per_zone=1), __doc__)
