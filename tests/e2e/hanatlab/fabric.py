# SPDX-License-Identifier: GPL-2.0-or-later
"""The fabric: plays the VPC router for the lab's private hosts.

It polls DescribeRouteTables on moto (signed, with the lab's credentials) every
`interval_ms` and, for each private subnet, takes the target of the 0.0.0.0/0 route of the
table associated with the subnet (or of the VPC's main table when none is) and applies it to
the subnet's private hosts:
  ENI or instance of a lab NAT  -> `default via <that NAT's private address>`
  missing route, state blackhole, a target listed in the control file's "blackhole" list
  (moto never produces blackholes), or a target that is no lab NAT -> no default route.
With "follow_enis": true in the control file, it also plays EC2's ENI attachment for the
lab's secondary ENIs (a floating ENI): each poll reads the VPC's network interfaces, and the
private address of every ENI attached to a lab NAT other than its primary one is put on that
NAT's private leg (a /32 on "priv"), taken off the NAT that had it, and the private hosts'
neighbour entries for it are flushed (as EC2 delivers an ENI's address to the instance it is
attached to now). Logged as {"eni": .., "address": .., "nat": .., "from_nat": ..}; the
status file's "eni_addresses" maps each such address to its NAT (null: attached to none).
Every route change is logged as a JSON line with the wall-clock time in ms, e.g.
  {"t_ms": 1763791234567.1, "ts": "2025-11-22T06:40:34.567Z", "host": "a1",
   "subnet": "subnet-..", "route_table": "rtb-..",
   "target": "eni-..", "nat": "nat2", "from": "198.18.101.11", "to": "198.18.102.12"}
("from"/"to" are next hops, null meaning no default route; "from" is also null at the first
application.) An entry is written just before the change is applied; a failed `ip` adds an
entry with "failed": true and is retried at the next poll. A status file (JSON) is
rewritten after every poll: polls, last_poll_ms, last_error, routes {host: next hop}.

Zone Elastic IPs (lab option zone_eips, hanatd's failover.move_eip): the fabric also plays
the internet gateway's 1:1 NAT for each zone's EIP, following what EC2 says it is associated
with. Every poll reads the EIPs (DescribeAddresses: the ENI) and the EC2 proxy's record of
the private IP each AssociateAddress named (moto ignores PrivateIpAddress and always shows
the ENI's primary IP: MOTO.md), and keeps in the internet namespace one nft table
`lab_eip` that translates, statelessly as EC2 does, the source of the holder's packets to
the EIP's lab address (198.19.1.(100+Z)) and the internet host's packets to that address
back to the holder: the NAT's public-leg address when the EIP is on its primary private IP
(what its masquerade leaves with), else that secondary private IP, routed back via the
NAT's public leg (eip_script). The EIPs are read after the route tables and applied before
the hosts' routes in each poll (an association hanatd waited for never takes effect after
the route write that followed it). Each change is logged as {"eip": zone, "nat", "private_ip",
"source", "address"} and the status file gains "eips" {zone: [nat, private_ip]}.

Usage (inside the API namespace, where moto is reachable):
  python3 -m hanatlab.fabric --desc LAB.json
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import time


def decide(route_tables, subnets, targets, blackhole):
    """Pure decision: for each subnet id in `subnets`, the (next_hop, target_id, nat, rtb)
    implied by `route_tables` (DescribeRouteTables' RouteTables list). `targets` maps ENI
    and instance ids to (nat name, address); `blackhole` is a set of ids to treat as
    blackholes. next_hop None means: no default route."""
    explicit = {}
    main_table = None
    for rt in route_tables:
        for assoc in rt.get("Associations", []):
            if assoc.get("Main"):
                main_table = rt
            elif assoc.get("SubnetId"):
                explicit[assoc["SubnetId"]] = rt
    out = {}
    for subnet in subnets:
        rt = explicit.get(subnet, main_table)
        if rt is None:
            out[subnet] = (None, None, None, None)
            continue
        route = next((r for r in rt.get("Routes", [])
                      if r.get("DestinationCidrBlock") == "0.0.0.0/0"), None)
        if route is None:
            out[subnet] = (None, None, None, rt["RouteTableId"])
            continue
        target = (route.get("NetworkInterfaceId") or route.get("InstanceId") or
                  route.get("NatGatewayId") or route.get("GatewayId") or None)
        if route.get("State") == "blackhole" or target is None or target in blackhole:
            out[subnet] = (None, target, None, rt["RouteTableId"])
            continue
        hit = targets.get(route.get("NetworkInterfaceId") or "") or \
            targets.get(route.get("InstanceId") or "")
        if hit is None:
            out[subnet] = (None, target, None, rt["RouteTableId"])
        else:
            out[subnet] = (hit[1], target, hit[0], rt["RouteTableId"])
    return out


def decide_enis(interfaces, nats):
    """Pure: {private address: nat name or None} for every ENI of `interfaces`
    (DescribeNetworkInterfaces' list) that is not a lab NAT's primary ENI, placed on the NAT
    (`nats`: instance id -> (name, primary ENI id)) it is attached to; None when attached to
    no lab NAT."""
    out = {}
    primaries = {eni for _, eni in nats.values()}
    for ni in interfaces:
        if ni.get("NetworkInterfaceId") in primaries:
            continue
        addr = ni.get("PrivateIpAddress")
        if not addr:
            continue
        att = ni.get("Attachment") or {}
        hit = nats.get(att.get("InstanceId") or "")
        attached = att.get("Status", "attached") in ("attached", "attaching")
        out[addr] = hit[0] if hit and attached else None
    return out


def move_address(addr, old_ns, new_ns, dev, host_namespaces):
    """Moves addr/32 from old_ns to new_ns (either may be None) on `dev`, then flushes the
    hosts' neighbour entries for it so their next packet asks who has it now."""
    ok, err = True, ""
    if old_ns:
        subprocess.run(["ip", "-n", old_ns, "addr", "del", f"{addr}/32", "dev", dev],
                       capture_output=True, text=True, timeout=10)
    if new_ns:
        cp = subprocess.run(["ip", "-n", new_ns, "addr", "replace", f"{addr}/32", "dev", dev],
                            capture_output=True, text=True, timeout=10)
        ok, err = cp.returncode == 0, cp.stderr.strip()
    for ns in host_namespaces:
        subprocess.run(["ip", "-n", ns, "neigh", "flush", "to", addr], capture_output=True,
                       text=True, timeout=10)
    return ok, err


def read_control(path):
    try:
        with open(path) as f:
            c = json.load(f)
        return c if isinstance(c, dict) else {}
    except (OSError, ValueError):
        return {}


def decide_eips(zone_eips, addresses, recorded, nats):
    """Pure decision for the zone EIPs: {zone letter: (nat name, private ip, source)} or
    None for an EIP that is on no lab NAT. `addresses` is DescribeAddresses' list,
    `recorded` the proxy's {allocation id: {ENI id: private IP}}, `nats` the lab's NATs."""
    by_alloc = {a.get("AllocationId"): a for a in addresses}
    by_eni = {n["eni_id"]: n for n in nats}
    out = {}
    for z in zone_eips:
        a = by_alloc.get(z["allocation_id"]) or {}
        nat = by_eni.get(a.get("NetworkInterfaceId") or "")
        if nat is None:
            out[z["zone_letter"]] = None
            continue
        rec = recorded.get(z["allocation_id"]) or {}
        ip = rec.get(nat["eni_id"]) or nat["private_address"]
        source = nat["public_address"] if ip == nat["private_address"] else ip
        out[z["zone_letter"]] = (nat["name"], ip, source)
    return out


def eip_script(zone_eips, decided):
    """The `lab_eip` table for `decided` (decide_eips), replaced in one transaction.

    Stateless, as EC2's internet gateway is: its 1:1 NAT of an Elastic IP keeps no state per
    connection, so when the EIP is associated with another private IP, packets of a
    connection already open come and go through the new holder unchanged (the stateful
    failover relies on it). A stateful `snat` here would keep the old holder in its
    conntrack entries: the new holder's packets would get a fresh translation (another port
    when the old one is still taken) and the replies would go on to the old holder.
    - pre: a packet of the holder's to this namespace (the internet host) has its source
      rewritten to the EIP's lab address before conntrack sees it (priority -310, raw is
      -300), so every packet of a connection is the same tuple whoever held the EIP;
    - out: the internet host's packet to the EIP has its destination rewritten to the
      holder's source after conntrack (-150; conntrack is -200) and is routed anew
      (a `route` chain) to the holder."""
    pre = out = ""
    for z in zone_eips:
        d = decided.get(z["zone_letter"])
        if d is not None:
            pre += f'  fib daddr type local ip saddr {d[2]} ip saddr set {z["lab_address"]}\n'
            out += f'  ip daddr {z["lab_address"]} ip daddr set {d[2]}\n'
    # EC2's internet gateway translates a private IP with an Elastic IP or a public IP and
    # drops what comes from one without: a NAT's secondary private IP the zone's EIP left.
    pre += '  fib daddr type local ip saddr 198.18.0.0/16 drop\n'
    return ("table ip lab_eip {}\ndelete table ip lab_eip\ntable ip lab_eip {\n"
            " chain pre { type filter hook prerouting priority -310; policy accept;\n"
            + pre + " }\n"
            " chain out { type route hook output priority -150; policy accept;\n"
            + out + " }\n}\n")


def read_json(path):
    try:
        with open(path) as f:
            v = json.load(f)
        return v if isinstance(v, dict) else {}
    except (OSError, ValueError):
        return {}


def stamp(t):
    """{"t_ms": epoch ms, "ts": "2026-11-22T06:40:01.123Z"} for wall-clock time t (s)."""
    ms = int(t * 1000) % 1000
    return {"t_ms": round(t * 1000, 1),
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{ms:03d}Z"}


def read_blackhole(path):
    try:
        with open(path) as f:
            c = json.load(f)
        return set(c.get("blackhole", [])) if isinstance(c, dict) else set()
    except FileNotFoundError:
        return set()
    except (OSError, ValueError):
        return set()


def apply_route(ns, dev, via):
    if via is None:
        cp = subprocess.run(["ip", "-n", ns, "route", "del", "default"], capture_output=True,
                            text=True, timeout=10)
        # "No such process": there was no default route, which is the wanted state.
        return cp.returncode == 0 or "No such process" in cp.stderr, cp.stderr.strip()
    cp = subprocess.run(["ip", "-n", ns, "route", "replace", "default", "via", via, "dev", dev,
                         "onlink"], capture_output=True, text=True, timeout=10)
    return cp.returncode == 0, cp.stderr.strip()


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--desc", required=True)
    a = ap.parse_args(argv)
    with open(a.desc) as f:
        desc = json.load(f)
    import boto3  # imported here so `decide` stays importable without boto3
    import botocore.config

    ec2 = boto3.client(
        "ec2", endpoint_url=desc["api"]["endpoint"], region_name=desc["region"],
        aws_access_key_id=desc["credentials"]["access_key_id"],
        aws_secret_access_key=desc["credentials"]["secret_access_key"],
        config=botocore.config.Config(retries={"max_attempts": 1}, connect_timeout=1,
                                      read_timeout=2))
    fab = desc["fabric"]
    interval = fab["interval_ms"] / 1000.0

    def nat_targets(d):
        out = {}
        for n in d["nats"]:
            out[n["eni_id"]] = (n["name"], n["private_address"])
            out[n["instance_id"]] = (n["name"], n["private_address"])
        return out
    targets = nat_targets(desc)

    def nat_enis(d):
        return {n["instance_id"]: (n["name"], n["eni_id"]) for n in d["nats"]}

    def nat_ns(d):
        return {n["name"]: (n["ns"], n["interfaces"]["private"]) for n in d["nats"]}
    enis, namespaces = nat_enis(desc), nat_ns(desc)
    eni_applied = {}  # address -> nat name it is on (None: on none)
    # The lab rewrites its description (atomically) when a NAT is removed or added (an
    # Auto Scaling replacement): the fabric then follows routes to the new NAT's ENI.
    desc_mtime = os.stat(a.desc).st_mtime_ns
    hosts_by_subnet = {}
    for h in desc["hosts"]:
        hosts_by_subnet.setdefault(h["subnet_id"], []).append(h)
    applied = {}  # host name -> next hop currently applied ("unset" before the first poll)
    zone_eips = desc.get("zone_eips") or []
    eips_applied = None  # decide_eips' last applied result
    eip_routes = set()  # secondary IPs routed via a NAT's public leg in the internet ns
    inet_ns = desc["internet"]["ns"]

    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    log = open(fab["log"], "a", buffering=1)
    polls = 0
    last_error = None
    next_poll = time.monotonic()
    while not stop:
        t0 = time.time()
        try:
            m = os.stat(a.desc).st_mtime_ns
            if m != desc_mtime:
                with open(a.desc) as f:
                    d = json.load(f)
                targets, enis, namespaces = nat_targets(d), nat_enis(d), nat_ns(d)
                zone_eips = d.get("zone_eips") or []
                desc_mtime = m
        except (OSError, ValueError, KeyError):
            pass  # keep the NATs known so far; the next poll reads it again
        try:
            tables = ec2.describe_route_tables(
                Filters=[{"Name": "vpc-id", "Values": [desc["vpc"]["id"]]}])["RouteTables"]
            last_error = None
        except Exception as e:  # keep the last applied routes while moto is unreachable
            tables = None
            if str(e) != last_error:
                log.write(json.dumps(dict(stamp(t0), error=str(e))) + "\n")
            last_error = str(e)
        # The EIPs are read after the route tables and applied before the routes: hanatd
        # associates an EIP ahead of a route write and waits for EC2's answer, so a route
        # this poll saw comes with the association made before it, and the hosts' new
        # route (one `ip route` per host, tens of ms) never precedes the EIP's move.
        if zone_eips and tables is not None:
            try:
                addrs = ec2.describe_addresses(
                    AllocationIds=[z["allocation_id"] for z in zone_eips])["Addresses"]
            except Exception as e:
                addrs = None
                log.write(json.dumps(dict(stamp(t0), error="eips: " + str(e))) + "\n")
            if addrs is not None:
                try:
                    with open(a.desc) as f:
                        nats = json.load(f)["nats"]
                except (OSError, ValueError, KeyError):
                    nats = desc["nats"]
                decided = decide_eips(zone_eips, addrs,
                                      read_json(desc["ec2_proxy"].get("eip_state", "")), nats)
                if decided != eips_applied:
                    for z, d in sorted(decided.items()):
                        if eips_applied is None or eips_applied.get(z) != d:
                            log.write(json.dumps(dict(
                                stamp(time.time()), eip=z, nat=d and d[0],
                                private_ip=d and d[1], source=d and d[2])) + "\n")
                    by_name = {n["name"]: n for n in nats}
                    want = {d[1]: by_name[d[0]]["public_address"] for d in decided.values()
                            if d is not None and d[2] == d[1]}
                    ok = True
                    # The internet host answers the EIP's lab address: its route lookup
                    # needs a route for it before the output hook translates it back.
                    for z in zone_eips:
                        cp = subprocess.run(["ip", "-n", inet_ns, "route", "replace",
                                             f'{z["lab_address"]}/32', "dev", "br0"],
                                            capture_output=True, text=True, timeout=10)
                        ok = ok and cp.returncode == 0
                    for ip_, via in want.items():
                        cp = subprocess.run(["ip", "-n", inet_ns, "route", "replace",
                                             f"{ip_}/32", "via", via, "dev", "br0"],
                                            capture_output=True, text=True, timeout=10)
                        ok = ok and cp.returncode == 0
                    for ip_ in eip_routes - set(want):
                        subprocess.run(["ip", "-n", inet_ns, "route", "del", f"{ip_}/32"],
                                       capture_output=True, text=True, timeout=10)
                    eip_routes = set(want)
                    cp = subprocess.run(["ip", "netns", "exec", inet_ns, "nft", "-f", "-"],
                                        input=eip_script(zone_eips, decided),
                                        capture_output=True, text=True, timeout=10)
                    if ok and cp.returncode == 0:
                        eips_applied = decided
                    else:
                        log.write(json.dumps(dict(stamp(time.time()), eip_failed=True,
                                                  error=cp.stderr.strip())) + "\n")
        if tables is not None:
            wanted = decide(tables, list(hosts_by_subnet), targets, read_blackhole(fab["control"]))
            for subnet, (via, target, nat, rtb) in wanted.items():
                for h in hosts_by_subnet[subnet]:
                    if applied.get(h["name"], "unset") == via:
                        continue
                    # Logged (and flushed: line buffered) just before the route changes, so
                    # whoever sees the new route also finds its log entry.
                    rec = dict(stamp(time.time()), host=h["name"], subnet=subnet,
                               route_table=rtb, target=target, nat=nat,
                               **{"from": applied.get(h["name"]), "to": via})
                    log.write(json.dumps(rec) + "\n")
                    ok, err = apply_route(h["ns"], h["dev"], via)
                    if ok:
                        applied[h["name"]] = via
                    else:
                        # Retried at the next poll (and logged again).
                        log.write(json.dumps(dict(stamp(time.time()), host=h["name"],
                                                  error=err, to=via, failed=True)) + "\n")
        if read_control(fab["control"]).get("follow_enis"):
            try:
                nis = ec2.describe_network_interfaces(
                    Filters=[{"Name": "vpc-id", "Values": [desc["vpc"]["id"]]}])[
                        "NetworkInterfaces"]
            except Exception as e:  # keep the addresses where they are until moto answers
                nis = None
                log.write(json.dumps(dict(stamp(t0), error=f"enis: {e}")) + "\n")
            if nis is not None:
                for addr, nat in decide_enis(nis, enis).items():
                    if addr in eni_applied and eni_applied[addr] == nat:
                        continue
                    old = eni_applied.get(addr)
                    log.write(json.dumps(dict(stamp(time.time()), address=addr, nat=nat,
                                              from_nat=old, eni=True)) + "\n")
                    old_ns = namespaces.get(old, (None, None))[0] if old else None
                    new_ns, dev = namespaces.get(nat, (None, "priv")) if nat else (None, "priv")
                    ok, err = move_address(addr, old_ns, new_ns, dev,
                                           [h["ns"] for h in desc["hosts"]])
                    if ok:
                        eni_applied[addr] = nat
                    else:
                        log.write(json.dumps(dict(stamp(time.time()), address=addr, error=err,
                                                  failed=True)) + "\n")
        polls += 1
        st = {"polls": polls, "last_poll_ms": round(t0 * 1000, 1), "last_error": last_error,
              "routes": applied, "eni_addresses": eni_applied, "pid": os.getpid(),
              "eips": {z: (list(d[:2]) if d else None)
                       for z, d in (eips_applied or {}).items()}}
        tmp = fab["status"] + ".tmp"
        with open(tmp, "w") as f:
            json.dump(st, f)
        os.replace(tmp, fab["status"])
        next_poll += interval
        delay = next_poll - time.monotonic()
        if delay < 0:
            next_poll = time.monotonic()  # fell behind (slow moto): do not burst
        else:
            time.sleep(delay)  # pacing of the poll loop, not synchronisation
    log.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
