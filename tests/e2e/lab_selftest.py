#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Self-test of the e2e lab (issue 8, item 1), without hanatd: a plain nft masquerade in
each NAT namespace stands in for it.

Checks what a daemon test will rely on: private hosts in both zones reach the internet
host through their zone's NAT (source address asserted at the receiver); a signed
ReplaceRoute moves zone a's hosts to NAT b within a deadline and the stream's gap across
the switch is measured; the blackhole override and link cuts work; IMDSv2 answers with a
token, refuses without one, serves working role credentials and settable notices; moto
checks signatures; generated hanat.toml files pass `hanatd --check-config` (when --hanatd
is given); teardown — normal, after a failure during set-up, and after Ctrl-C — leaves no
namespace, process or file, and nothing is ever added to the root namespace.

Exit status: 0 pass, 1 fail, 77 skipped (not root, tools missing). The last line says which.
"""

import argparse
import glob
import json
import os
import select
import signal
import subprocess
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import hanatlab  # noqa: E402
from hanatlab import lab as labmod  # noqa: E402
from hanatlab.lab import Lab, deadline_poll  # noqa: E402

SKIP = 77
results = []


def check(name, cond, detail=""):
    results.append((name, bool(cond), detail))
    print(f"  {'ok  ' if cond else 'FAIL'} {name}{': ' + detail if detail else ''}", flush=True)
    if not cond:
        raise AssertionError(f"{name}: {detail}")


def root_ns_snapshot():
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    routes = subprocess.run(["ip", "-4", "route", "show", "table", "all"], capture_output=True,
                            text=True).stdout
    names = sorted(line.split(":")[1].strip().split("@")[0] for line in links.splitlines())
    return names, sorted(routes.splitlines())


def start_sigint_child():
    """A child that builds a 1-NAT lab and waits; the test Ctrl-C's it once it is up."""
    # A background job inherits SIGINT ignored; an interactive Ctrl-C is what is tested.
    code = ("import signal, sys, time; sys.path.insert(0, %r)\n"
            "signal.signal(signal.SIGINT, signal.default_int_handler)\n"
            "from hanatlab import Lab\n"
            "with Lab(nats=1, name='sigint', masquerade=True) as lab:\n"
            "    print('READY', lab.desc['state'], flush=True)\n"
            "    end = time.monotonic() + 120\n"
            "    while time.monotonic() < end:\n"
            "        time.sleep(0.1)  # idle until the drill's Ctrl-C (bounded)\n" % HERE)
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)


def start_sigterm_child():
    """A child that builds a lab; the test SIGTERMs it in the middle of the set-up."""
    code = ("import sys; sys.path.insert(0, %r)\n"
            "from hanatlab import Lab\n"
            "Lab(nats=2, name='sigterm').up()\n"
            "print('UP', flush=True)\n" % HERE)
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)


def start_cli_up():
    """`lab.py up` (detached), run alongside; checked and torn down by test_cli."""
    return subprocess.Popen([sys.executable, os.path.join(HERE, "lab.py"), "up", "--nats", "1",
                             "--name", "cli"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, stdin=subprocess.DEVNULL)


def test_cli(up):
    out, err = up.communicate(timeout=90)
    lab_id = f"cli{up.pid}"
    check("lab.py up builds and detaches a lab", up.returncode == 0 and
          f"lab {lab_id} up" in out, (out + err)[-300:])
    cli = [sys.executable, os.path.join(HERE, "lab.py")]
    st = subprocess.run(cli + ["status", lab_id], capture_output=True, text=True, timeout=30)
    check("lab.py status shows it detached and whole",
          "detached; 6/6 namespaces, 5/5 processes alive" in st.stdout, st.stdout[:200])
    cfg = subprocess.run(cli + ["config", lab_id, "nat1"], capture_output=True, text=True,
                         timeout=30)
    check("lab.py config writes nat1's hanat.toml", cfg.returncode == 0 and
          os.path.exists(cfg.stdout.strip()), (cfg.stdout + cfg.stderr)[-200:])
    state = json.load(open(glob.glob(os.path.join(
        labmod.STATE_ROOT, f"hanat-lab-{lab_id}-*", "state.json"))[0]))
    dn = subprocess.run(cli + ["down", lab_id], capture_output=True, text=True, timeout=60)
    left = hanatlab.leftovers(state)
    check("lab.py down removes it", dn.returncode == 0 and not left,
          (dn.stdout + dn.stderr).strip() + "; " + ", ".join(left))


def namespaces_with_prefix(prefix):
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return [line.split()[0] for line in out.splitlines() if line.startswith(prefix)]


def test_sigterm_during_setup(child):
    prefix = f"sigterm{child.pid}"
    pattern = os.path.join(labmod.STATE_ROOT, f"hanat-lab-{prefix}-*", "state.json")

    def moto_started():
        for path in glob.glob(pattern):
            try:
                st = json.load(open(path))
            except ValueError:
                return None  # being rewritten
            if any(p.get("name") == "moto" for p in st["processes"]):
                return st
        return None
    st = deadline_poll("the SIGTERM child to start moto", moto_started, 60, interval=0.01)
    child.send_signal(signal.SIGTERM)
    rc = child.wait(timeout=30)
    err = child.stderr.read()
    left = hanatlab.leftovers(st) + namespaces_with_prefix(prefix) + glob.glob(pattern)
    check("SIGTERM in the middle of set-up: nothing left", not left and rc == 128 + 15,
          f"rc={rc}; {', '.join(left)} {err.strip()[-200:] if rc != 143 else ''}")


def test_failure_during_setup():
    """A failure in the middle of up() (after namespaces and moto exist) removes all."""
    from hanatlab import seed
    real = seed.seed
    seen = {}

    def failing(lab, *a, **kw):
        seen["state"] = json.loads(json.dumps(lab.state))
        raise RuntimeError("injected failure during seeding")

    seed.seed = failing
    try:
        try:
            with Lab(nats=2, name="fail"):
                pass
            check("set-up failure propagates", False, "no exception")
        except RuntimeError as e:
            check("set-up failure propagates", "injected" in str(e), str(e))
    finally:
        seed.seed = real
    st = seen["state"]
    check("set-up failure had created namespaces and moto",
          len(st["namespaces"]) >= 5 and any(p["name"] == "moto" for p in st["processes"]),
          f"{len(st['namespaces'])} namespaces, {len(st['processes'])} processes")
    left = hanatlab.leftovers(st)
    check("nothing left after a set-up failure", not left, ", ".join(left))


def test_imds(lab):
    n1 = lab.nat(1)
    st, body = lab.imds_request(1, "/latest/meta-data/instance-id")
    check("IMDS instance-id with a token", st == 200 and body == n1["instance_id"], body)
    st, _ = lab.imds_request(1, "/latest/meta-data/instance-id", token=False)
    check("IMDS refuses a GET without a token (401)", st == 401, str(st))
    st, _ = lab.imds_request(1, "/latest/meta-data/instance-id", token="forged")
    check("IMDS refuses a forged token (401)", st == 401, str(st))
    st, _ = lab.imds_request(1, "/latest/api/token", token=False, method="PUT")
    check("IMDS token PUT without a TTL is 400", st == 400, str(st))
    st, tok = lab.imds_request(1, "/latest/api/token", token=False, method="PUT",
                               headers={"X-aws-ec2-metadata-token-ttl-seconds": "1"})
    st2, _ = lab.imds_request(1, "/latest/meta-data/instance-id", token=tok)
    deadline_poll("the 1 s token to expire", lambda: lab.imds_request(
        1, "/latest/meta-data/instance-id", token=tok)[0] == 401, 5, interval=0.1)
    check("IMDS token works, then expires after its TTL", st == 200 and st2 == 200)
    st, body = lab.imds_request(
        1, f"/latest/meta-data/network/interfaces/macs/{n1['mac']}/interface-id")
    check("IMDS serves the ENI of the NAT's MAC", st == 200 and body == n1["eni_id"], body)
    st, body = lab.imds_request(1, "/latest/meta-data/placement/availability-zone")
    check("IMDS zone", body == n1["zone"], body)
    mac_here = lab.exec(n1["ns"], ["cat", "/sys/class/net/priv/address"]).stdout.strip()
    check("the NAT's private leg carries its ENI's MAC", mac_here == n1["mac"], mac_here)
    st, role = lab.imds_request(1, "/latest/meta-data/iam/security-credentials/")
    st2, body = lab.imds_request(1, f"/latest/meta-data/iam/security-credentials/{role}")
    creds = json.loads(body)
    check("IMDS role credentials", st == 200 and st2 == 200 and
          creds["AccessKeyId"].startswith("ASIA") and creds["Token"], role)
    # The role credentials work against moto (signed, with the session token)...
    import boto3
    c = boto3.client("ec2", endpoint_url=lab.desc["api"]["endpoint"], region_name=lab.region,
                     aws_access_key_id=creds["AccessKeyId"],
                     aws_secret_access_key=creds["SecretAccessKey"],
                     aws_session_token=creds["Token"])
    with hanatlab.in_netns(lab.desc["api"]["ns"]):
        ids = [i["InstanceId"] for r in c.describe_instances()["Reservations"]
               for i in r["Instances"]]
    check("IMDS role credentials are accepted by moto", n1["instance_id"] in ids)
    # ... and a wrong secret is refused: moto checks signatures.
    bad = boto3.client("ec2", endpoint_url=lab.desc["api"]["endpoint"], region_name=lab.region,
                       aws_access_key_id=lab.desc["credentials"]["access_key_id"],
                       aws_secret_access_key="wrong")
    try:
        with hanatlab.in_netns(lab.desc["api"]["ns"]):
            bad.describe_route_tables()
        check("moto refuses a bad signature", False, "call succeeded")
    except Exception as e:  # noqa: BLE001
        check("moto refuses a bad signature", "AuthFailure" in str(e), str(e)[:80])

    st, _ = lab.imds_request(1, "/latest/meta-data/spot/instance-action")
    check("no spot notice by default (404)", st == 404, str(st))
    st, body = lab.imds_request(1, "/latest/meta-data/autoscaling/target-lifecycle-state")
    check("lifecycle state InService by default", body == "InService", body)
    notice = {"action": "terminate", "time": "2026-11-22T07:00:00Z"}
    lab.set_imds(1, spot_instance_action=notice, target_lifecycle_state="Terminated")
    st, body = lab.imds_request(1, "/latest/meta-data/spot/instance-action")
    check("spot notice after the control file is set", st == 200 and json.loads(body) == notice,
          body)
    st, body = lab.imds_request(1, "/latest/meta-data/autoscaling/target-lifecycle-state")
    check("lifecycle state after the control file is set", body == "Terminated", body)
    st, _ = lab.imds_request(2, "/latest/meta-data/spot/instance-action")
    check("the notice is per NAT (nat2 has none)", st == 404, str(st))
    lab.set_imds(1)
    st, _ = lab.imds_request(1, "/latest/meta-data/spot/instance-action")
    check("spot notice cleared", st == 404, str(st))
    lab.set_imds(2, status=503)
    st, _ = lab.imds_request(2, "/latest/meta-data/instance-id")
    check("IMDS outage drill answers 503", st == 503, str(st))
    lab.set_imds(2)
    st, _ = lab.imds_request(2, "/latest/meta-data/instance-id")
    check("IMDS back after the drill", st == 200, str(st))
    log = [json.loads(line) for line in open(n1["imds"]["log"])]
    check("IMDS logs requests (with/without token)",
          any(r.get("status") == 401 for r in log) and any(r.get("token") for r in log))


def test_routing(lab):
    n1, n2 = lab.nat(1), lab.nat(2)
    check("a1 default via nat1", lab.default_route("a1") == n1["private_address"],
          str(lab.default_route("a1")))
    check("b1 default via nat2", lab.default_route("b1") == n2["private_address"],
          str(lab.default_route("b1")))
    src_a, _ = lab.whoami("a1")
    src_b, _ = lab.whoami("b1")
    check("zone a egresses with nat1's public address", src_a == n1["public_address"], src_a)
    check("zone b egresses with nat2's public address", src_b == n2["public_address"], src_b)
    check("ping from b1 to the internet host", lab.ping(lab.host("b1")["ns"], "198.19.0.1"))
    # Outside the VPC a private host goes only through the fabric's default route.
    routes = labmod.ip(lab.host("a1")["ns"], "-4", "route").stdout.split("\n")
    check("a1's only routes: VPC on-link and the fabric's default",
          sorted(r.split()[0] for r in routes if r) == ["198.18.0.0/16", "default"],
          "; ".join(routes))


def test_failover_switch(lab):
    n1, n2 = lab.nat(1), lab.nat(2)
    rt_a = lab.route_table("a")
    stream = lab.start_stream("a1", rate=200)
    stream.wait_received(100, timeout=5)
    ec2 = lab.ec2()
    t_call = time.time()
    ec2.replace_route(RouteTableId=rt_a["id"], DestinationCidrBlock="0.0.0.0/0",
                      NetworkInterfaceId=n2["eni_id"])
    t_done = time.time()
    ev = lab.wait_route("a1", n2["private_address"], timeout=3, since=t_call)
    lag = ev["t_ms"] - t_done * 1000 if ev else None
    check("fabric moved a1 to nat2 after ReplaceRoute", ev is not None and ev["nat"] == "nat2" and
          ev["target"] == n2["eni_id"] and ev["from"] == n1["private_address"], json.dumps(ev))
    check("fabric applied it within 1 s of the API answer", lag is not None and lag < 1000,
          f"{lag:.0f} ms after ReplaceRoute returned (call took {1000 * (t_done - t_call):.0f} ms)")
    deadline_poll("packets via nat2", lambda: sum(
        1 for p in stream.packets() if p[3] == n2["public_address"]) >= 100, 5)
    r = stream.stop()
    print(f"  stream: sent {r['sent']}, received {r['received']}, lost {r['lost']}, "
          f"longest gap {r['max_gap_ms']} ms ({r['source_before']} -> {r['source_after']})")
    check("stream switched exactly once, nat1 -> nat2",
          [s["source"] for s in r["sources"]] == [n1["public_address"], n2["public_address"]],
          str([s["source"] for s in r["sources"]]))
    sg = r["switch_gaps"][0]
    print(f"  gap at the switch: {sg['gap_ms']} ms")
    check("gap across the switch below 1000 ms", sg["gap_ms"] < 1000 and r["max_gap_ms"] < 1000,
          f"{sg['gap_ms']} ms at the switch, longest {r['max_gap_ms']} ms")
    # The fabric logs just before running `ip route replace` (a fork+exec, ~5-30 ms).
    check("the switch happened after ReplaceRoute, when the fabric applied it",
          sg["start_ns"] / 1e9 >= t_call and sg["end_ns"] / 1e6 <= ev["t_ms"] + 500,
          f"last via nat1 {sg['start_ns'] / 1e6 - ev['t_ms']:+.0f} ms, first via nat2 "
          f"{sg['end_ns'] / 1e6 - ev['t_ms']:+.0f} ms from the fabric's log entry")
    check("lost packets bounded by the gap", r["lost"] <= r["max_gap_ms"] / 5 + 2,
          f"{r['lost']} lost")
    src, _ = lab.whoami("a1")
    check("after the switch zone a egresses with nat2's address", src == n2["public_address"],
          src)

    # Blackhole override: moto never reports blackholes; the fabric's control file does.
    lab.set_blackhole([n2["eni_id"]])
    lab.wait_route("a1", None, timeout=3)
    lab.wait_route("b1", None, timeout=3)
    check("blackholed target leaves zones a and b without a default route",
          lab.default_route("a1") is None and lab.default_route("b1") is None)
    check("no egress while blackholed", not lab.ping(lab.host("a1")["ns"], "198.19.0.1"))
    lab.set_blackhole([])
    lab.wait_route("a1", n2["private_address"], timeout=3)
    # Route deleted in EC2 -> no route; re-created on nat1 -> back to nat1.
    ec2.delete_route(RouteTableId=rt_a["id"], DestinationCidrBlock="0.0.0.0/0")
    lab.wait_route("a1", None, timeout=3)
    ec2.create_route(RouteTableId=rt_a["id"], DestinationCidrBlock="0.0.0.0/0",
                     NetworkInterfaceId=n1["eni_id"])
    lab.wait_route("a1", n1["private_address"], timeout=3)
    check("delete/create route follow", lab.whoami("a1")[0] == n1["public_address"])
    evs = [e for e in lab.fabric_events() if e.get("host") == "a1"]
    check("every change is logged with a timestamp",
          len(evs) >= 5 and all(isinstance(e["t_ms"], float) for e in evs),
          f"{len(evs)} events for a1")

    # Link cut at the switch side: nat1's carrier goes down, traffic stops; restore.
    lab.set_link(1, "public", False)
    check("cut public leg: nat1 cannot reach the internet",
          not lab.ping(n1["ns"], "198.19.0.1", timeout=1))
    lab.set_link(1, "public", True)
    deadline_poll("nat1's public leg back", lambda: lab.ping(n1["ns"], "198.19.0.1"), 10)
    check("restored public leg", True)
    # Silent cut: frames to and from nat1's private leg are dropped, links stay up.
    b1 = lab.host("b1")["ns"]
    lab.set_link(1, "private", False, mode="drop")
    carrier = lab.exec(n1["ns"], ["cat", "/sys/class/net/priv/carrier"]).stdout.strip()
    check("silent cut: nat1 unreachable from b1, nat2 still reachable, carrier up",
          not lab.ping(b1, n1["private_address"]) and lab.ping(b1, n2["private_address"]) and
          carrier == "1", f"carrier {carrier}")
    lab.set_link(1, "public", False, mode="drop")
    check("silent cut of the public leg too", not lab.ping(n1["ns"], "198.19.0.1"))
    lab.set_link(1, "private", True, mode="drop")
    lab.set_link(1, "public", True, mode="drop")
    deadline_poll("nat1 reachable again", lambda: lab.ping(b1, n1["private_address"]) and
                  lab.ping(n1["ns"], "198.19.0.1"), 10)
    check("silent cuts restored", True)

    # Partition between the NATs: they lose each other on every segment, nothing else.
    lab.set_partition(1, 2, True)
    check("partition: nat1 and nat2 cannot reach each other (private, mgmt)",
          not lab.ping(n1["ns"], n2["private_address"]) and
          not lab.ping(n2["ns"], n1["mgmt_address"]))
    check("partition: both still reach the private hosts and the internet",
          lab.ping(n1["ns"], lab.host("b1")["address"]) and
          lab.ping(n2["ns"], lab.host("a1")["address"]) and
          lab.ping(n1["ns"], "198.19.0.1") and lab.ping(n2["ns"], "198.19.0.1"))
    lab.set_partition(1, 2, False)
    # (The neighbour entries failed during the partition: re-resolution takes a moment.)
    deadline_poll("nat1 and nat2 to reach each other again",
                  lambda: lab.ping(n1["ns"], n2["private_address"]), 10)
    check("partition healed", True)

    # Forward drop: nat1's kernel drops forwarded packets; the host itself still answers.
    lab.set_forward_drop(1, True)
    check("forward drop: zone a loses egress through nat1",
          not lab.ping(lab.host("a1")["ns"], "198.19.0.1"))
    check("forward drop: nat1 still answers pings and reaches the internet itself",
          lab.ping(lab.host("a1")["ns"], n1["private_address"]) and
          lab.ping(n1["ns"], "198.19.0.1"))
    lab.set_forward_drop(1, False)
    check("forward drop removed: zone a egresses again",
          lab.ping(lab.host("a1")["ns"], "198.19.0.1"))

    # EC2 API hangs: the fabric logs the error and keeps the routes; then recovers.
    before = lab.default_route("a1")
    lab.pause_api(True)
    try:
        st = deadline_poll("the fabric to report the hung API", lambda: (
            lambda s: s if s and s.get("last_error") else None)(lab.fabric_status()), 10)
        check("fabric reports a hung EC2 API and keeps the routes",
              lab.default_route("a1") == before and before is not None, st["last_error"][:80])
    finally:
        lab.pause_api(False)
    deadline_poll("the fabric to recover", lambda: (
        lambda s: s and s["last_error"] is None)(lab.fabric_status()), 10)
    check("fabric recovers when the API answers again", True)

    # reset(): back to the initial routes and links, for tests sharing one lab.
    lab.set_link(2, "public", False, mode="drop")
    lab.set_partition(1, 2, True)
    lab.set_forward_drop(2, True)
    lab.set_blackhole([n1["eni_id"]])
    ec2.replace_route(RouteTableId=lab.route_table("b")["id"], DestinationCidrBlock="0.0.0.0/0",
                      NetworkInterfaceId=n1["eni_id"])
    lab.wait_route("b1", None, timeout=3)
    lab.reset()
    check("reset() restores routes, links, partitions and forwarding",
          lab.whoami("a1")[0] == n1["public_address"] and
          lab.whoami("b1")[0] == n2["public_address"] and
          deadline_poll("nat1 and nat2 to reach each other after reset()",
                        lambda: lab.ping(n1["ns"], n2["private_address"]), 10))


def test_aws_cli(lab):
    """The AWS CLI (a keepalived notify script's tool) reaches moto from a NAT namespace."""
    cp = subprocess.run(["ip", "netns", "exec", lab.nat(2)["ns"], "aws", "ec2",
                         "describe-route-tables", "--route-table-ids",
                         lab.route_table("b")["id"], "--output", "json"],
                        capture_output=True, text=True, env=lab.aws_env(), timeout=60)
    ok = cp.returncode == 0
    target = json.loads(cp.stdout)["RouteTables"][0]["Routes"] if ok else cp.stderr[-300:]
    check("aws CLI in nat2's namespace reads zone b's table from moto",
          ok and any(r.get("NetworkInterfaceId") == lab.nat(2)["eni_id"] for r in target),
          str(target)[:200])


def test_ec2_proxy(lab):
    """The EC2 fault proxy: byte-for-byte pass-through (moto checks the SigV4 signature over
    the Host header the client signed), and each fault mode gives the client what EC2 or the
    network would give; a duration ends the fault by itself; an action list confines it."""
    import socket

    import boto3
    import botocore.config
    import botocore.exceptions
    from hanatlab.lab import NsClient
    from hanatlab import netns
    api_ns = lab.desc["api"]["ns"]
    px = lab.desc["ec2_proxy"]

    def client(read_timeout=5):
        c = boto3.client("ec2", endpoint_url=px["endpoint"], region_name=lab.region,
                         aws_access_key_id=lab.desc["credentials"]["access_key_id"],
                         aws_secret_access_key=lab.desc["credentials"]["secret_access_key"],
                         config=botocore.config.Config(
                             retries={"mode": "standard", "total_max_attempts": 1},
                             connect_timeout=2, read_timeout=read_timeout))
        return NsClient(c, api_ns)

    def error_of(fn):
        try:
            fn()
        except botocore.exceptions.ClientError as e:
            return e.response["ResponseMetadata"]["HTTPStatusCode"], e.response["Error"]["Code"]
        except botocore.exceptions.BotoCoreError as e:
            return None, type(e).__name__
        return 200, None

    rt_a = lab.route_table("a")["id"]
    eni1 = lab.nat(1)["eni_id"]
    describe = (lambda c: lambda: c.describe_route_tables(RouteTableIds=[rt_a]))(client())
    replace = (lambda c: lambda: c.replace_route(RouteTableId=rt_a,
                                                 DestinationCidrBlock="0.0.0.0/0",
                                                 NetworkInterfaceId=eni1))(client())
    t0 = __import__("time").time_ns()
    check("proxy passes a signed call (Host kept as signed)", error_of(describe) == (200, None),
          str(error_of(describe)))
    bad = boto3.client("ec2", endpoint_url=px["endpoint"], region_name=lab.region,
                       aws_access_key_id=lab.desc["credentials"]["access_key_id"],
                       aws_secret_access_key="wrong",
                       config=botocore.config.Config(retries={"mode": "standard",
                                                              "total_max_attempts": 1}))
    check("moto's own errors pass through (wrong secret: 401 AuthFailure)",
          error_of(lambda: NsClient(bad, api_ns).describe_route_tables()) == (401, "AuthFailure"))

    def raw_exchange():
        """A hand-written request on a raw socket: what the peer does to the connection."""
        try:
            with netns.in_netns(api_ns):
                s = socket.create_connection((lab.desc["api"]["address"], px["port"]),
                                             timeout=3)
        except ConnectionResetError:
            return "reset"  # the RST can beat connect()'s return
        with s:
            try:
                body = b"Action=DescribeRouteTables&Version=2016-11-15"
                s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s"
                          % (len(body), body))
                data = s.recv(4096)
                return "eof" if data == b"" else data[:12].decode()
            except ConnectionResetError:
                return "reset"
            except socket.timeout:
                return "timeout"

    lab.ec2_fault("unavailable")
    check("unavailable: the connection is reset", raw_exchange() == "reset")
    code = error_of(describe)
    check("unavailable: an SDK sees a connection error", code[0] is None and
          code[1] in ("EndpointConnectionError", "ConnectionClosedError"), str(code))
    lab.ec2_fault("reset")
    check("reset: request read, then the connection is reset", raw_exchange() == "reset")
    lab.ec2_fault("throttle")
    check("throttle: HTTP 503 RequestLimitExceeded, as EC2 throttles",
          error_of(describe) == (503, "RequestLimitExceeded"), str(error_of(describe)))
    lab.ec2_fault("5xx")
    got = {error_of(describe), error_of(describe)}
    check("5xx: HTTP 500 InternalError and 503 Unavailable",
          got == {(500, "InternalError"), (503, "Unavailable")}, str(got))
    lab.ec2_fault("stall")
    slow = client(read_timeout=1)
    t = time.monotonic()
    code = error_of(lambda: slow.describe_route_tables(RouteTableIds=[rt_a]))
    check("stall: never answered, the client times out", code == (None, "ReadTimeoutError") and
          time.monotonic() - t >= 0.9, str(code))
    deadline_poll("the proxy to log the abandoned request", lambda: any(
        r["status"] == "abandoned" for r in lab.ec2_fault_log(t0)), 5)
    lab.ec2_fault("stall", duration=1.0)
    t = time.monotonic()
    code = error_of(describe)
    took = time.monotonic() - t
    check("stall with a duration: answered once the fault ends", code == (200, None) and
          0.7 <= took < 4, f"{code} after {took:.2f} s")
    lab.ec2_fault("throttle", duration=1.0)
    first = error_of(describe)
    t = time.monotonic()
    deadline_poll("the fault to end by itself", lambda: error_of(describe) == (200, None), 5)
    check("a duration ends the fault by itself", first == (503, "RequestLimitExceeded") and
          time.monotonic() - t < 3, str(first))
    lab.ec2_fault("throttle", actions=["ReplaceRoute"])
    check("actions: only the named actions are faulted",
          error_of(describe) == (200, None) and
          error_of(replace) == (503, "RequestLimitExceeded"))
    log = lab.ec2_fault_log(t0)
    statuses = {(r["action"], r["mode"], r["status"]) for r in log}
    check("the log records action, mode and status of each request",
          ("DescribeRouteTables", None, 200) in statuses and
          ("ReplaceRoute", "throttle", 503) in statuses and
          ("DescribeRouteTables", "5xx", 500) in statuses and
          (None, "unavailable", "reset") in statuses and
          all(isinstance(r["t_ns"], int) and r["t_ns"] >= t0 for r in log), str(statuses)[:300])
    # Every call above came from the API namespace's own address: the log names the caller.
    clients = {r.get("client") for r in log}
    check("the log records each request's source address (client)",
          clients == {lab.desc["api"]["address"]}, str(clients))
    try:
        lab.ec2_fault("flaky")
        check("a bad mode is refused naming it", False)
    except ValueError as e:
        check("a bad mode is refused naming it", "flaky" in str(e), str(e))
    lab.ec2_fault("unavailable")
    lab.reset()
    check("reset() ends the fault", error_of(replace) == (200, None))


def test_elastic_ips(lab):
    """The NATs' Elastic IPs are a path between them (issue 25): the EC2 proxy reports the
    lab's address instead of moto's 127/8 one, the internet gateway translates it to the
    NAT's private address and the sender's source to its own Elastic IP; a partition cuts
    that path too, a private-path block (set_private_block) only the private one."""
    n1, n2 = lab.nat(1), lab.nat(2)
    env = lab.aws_env()
    cp = subprocess.run(["ip", "netns", "exec", n1["ns"], "aws", "ec2", "describe-instances",
                         "--instance-ids", n2["instance_id"], "--output", "json"],
                        capture_output=True, text=True, env=env, timeout=60)
    inst = (json.loads(cp.stdout)["Reservations"][0]["Instances"][0]
            if cp.returncode == 0 else {})
    check("DescribeInstances through the EC2 proxy: nat2's public IP is its lab Elastic IP",
          inst.get("PublicIpAddress") == n2["elastic_address"] and
          inst["NetworkInterfaces"][0]["Association"]["PublicIp"] == n2["elastic_address"],
          cp.stderr[-300:] or str(inst.get("PublicIpAddress")))
    direct = lab.ec2().describe_instances(InstanceIds=[n2["instance_id"]])
    check("moto itself still has its own address (the fabric and lab.ec2() see moto's)",
          direct["Reservations"][0]["Instances"][0].get("PublicIpAddress") ==
          n2["eip"]["public_ip"])
    check("ICMP between the NATs' Elastic IPs, both ways",
          lab.ping(n1["ns"], n2["elastic_address"]) and
          lab.ping(n2["ns"], n1["elastic_address"]))
    # A TCP listener on nat2's private address (where hanatd's agent listens) sees nat1
    # connect to nat2's Elastic IP from nat1's Elastic IP.
    lab.spawn(n2["ns"], [sys.executable, "-c", (
        "import socket\n"
        "s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
        f"s.bind(('{n2['private_address']}', 4790)); s.listen()\n"
        "while True:\n"
        "    c, a = s.accept(); c.sendall(a[0].encode()); c.close()\n")], "eip-listener")
    seen = deadline_poll("the listener on nat2's private address", lambda: (
        lambda cp: cp.returncode == 0 and cp.stdout.strip())(lab.exec(n1["ns"], [
            sys.executable, "-c",
            "import socket\n"
            f"c = socket.create_connection(('{n2['elastic_address']}', 4790), timeout=1)\n"
            "print(c.recv(64).decode())"], check=False)), 10)
    check("TCP to nat2's Elastic IP reaches its private address from nat1's Elastic IP",
          seen == n1["elastic_address"], str(seen))
    lab.stop("eip-listener")
    lab.set_private_block(1, 2, True)
    check("private block: no ICMP between the private addresses, Elastic IPs still answer",
          not lab.ping(n1["ns"], n2["private_address"]) and
          not lab.ping(n2["ns"], n1["private_address"]) and
          lab.ping(n1["ns"], n2["elastic_address"]) and
          lab.ping(n2["ns"], n1["elastic_address"]))
    check("private block: private hosts and the internet still reachable",
          lab.ping(n1["ns"], lab.host("b1")["address"]) and lab.ping(n1["ns"], "198.19.0.1"))
    lab.set_private_block(1, 2, False)
    check("private block lifted", lab.ping(n1["ns"], n2["private_address"]))
    # The Elastic IP is delivered to the private leg (the ENI): a NAT whose private leg is
    # cut is silent on both paths; one whose public leg is cut cannot answer on it.
    lab.set_link(2, "private", False, mode="drop")
    check("nat2's private leg cut: its Elastic IP is silent too",
          not lab.ping(n1["ns"], n2["elastic_address"]))
    lab.set_link(2, "private", True, mode="drop")
    lab.set_link(2, "public", False, mode="drop")
    check("nat2's public leg cut: its Elastic IP is silent, its private address answers",
          not lab.ping(n1["ns"], n2["elastic_address"]) and
          deadline_poll("nat2's private address after its private leg's return",
                        lambda: lab.ping(n1["ns"], n2["private_address"]), 10))
    lab.set_link(2, "public", True, mode="drop")
    deadline_poll("nat2's Elastic IP after its public leg's return",
                  lambda: lab.ping(n1["ns"], n2["elastic_address"]), 10)
    lab.set_partition(1, 2, True)
    check("partition: the Elastic-IP path is cut too",
          not lab.ping(n1["ns"], n2["elastic_address"]) and
          not lab.ping(n2["ns"], n1["elastic_address"]))
    lab.set_partition(1, 2, False)
    deadline_poll("nat1 to reach nat2's Elastic IP again",
                  lambda: lab.ping(n1["ns"], n2["elastic_address"]), 10)
    check("partition healed: Elastic-IP path back", True)


def test_configs(lab, hanatd):
    for n in lab.desc["nats"]:
        path = lab.write_config(n["name"], {"probe": {"interval": "50ms", "timeout": "50ms"}})
        text = open(path).read()
        check(f"hanat.toml for {n['name']} names the EC2 proxy's endpoint and its socket",
              f'endpoint = "{lab.desc["ec2_proxy"]["endpoint"]}"' in text and n["dir"] in text and
              'interval = "50ms"' in text)
        if hanatd:
            cp = subprocess.run([hanatd, "--check-config", path], capture_output=True, text=True,
                                timeout=20)
            check(f"hanatd --check-config accepts {n['name']}'s hanat.toml", cp.returncode == 0,
                  (cp.stdout + cp.stderr).strip()[:300])
            role = lab.write_config(n["name"], path=os.path.join(n["dir"], "role.toml"),
                                    credentials="instance-role")
            cp = subprocess.run([hanatd, "--check-config", role], capture_output=True,
                                text=True, timeout=20)
            check(f"hanatd --check-config accepts {n['name']}'s instance-role config",
                  cp.returncode == 0, (cp.stdout + cp.stderr).strip()[:300])
    if hanatd:
        # The daemon starts in its NAT namespace with the generated config (its status
        # socket appears); teardown must stop it (checked with the other leftovers).
        p, path = lab.start_hanatd(1, hanatd)
        sock = os.path.join(lab.nat(1)["dir"], "hanatd.sock")
        deadline_poll("hanatd's status socket", lambda: os.path.exists(sock) or
                      p.poll() is not None, 10)
        check("hanatd runs in nat1's namespace with the lab's config",
              p.poll() is None and os.path.exists(sock),
              open(os.path.join(lab.dir, "hanatd-nat1.log")).read()[-300:])
        st = lab.hanatd_status(1)
        check("hanatd answers a status request on the lab's socket", isinstance(st, dict),
              json.dumps(st)[:200])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--hanatd", help="hanatd binary: check the generated configs with it")
    a = ap.parse_args()
    probs = hanatlab.prerequisites(masquerade=True)
    if probs:
        print("SKIPPED: e2e lab self-test: " + "; ".join(probs))
        return SKIP
    t0 = time.monotonic()
    root_before = root_ns_snapshot()
    child = start_sigint_child()
    child2 = start_sigterm_child()
    cli_up = start_cli_up()
    failed = None
    state = None
    try:
        print("set-up failure:", flush=True)
        test_failure_during_setup()
        test_sigterm_during_setup(child2)
        print(f"main lab: (at {time.monotonic() - t0:.1f} s)", flush=True)
        with Lab(nats=2, masquerade=True, forwarding=True, name="self") as lab:
            state = lab.state
            print(f"lab {lab.id} up in {lab.desc['build_seconds']} s ({lab.desc_path})")
            print(f"routing: (at {time.monotonic() - t0:.1f} s)", flush=True)
            test_routing(lab)
            print(f"imds: (at {time.monotonic() - t0:.1f} s)", flush=True)
            test_imds(lab)
            print(f"failover switch: (at {time.monotonic() - t0:.1f} s)", flush=True)
            try:
                test_failover_switch(lab)
            except Exception:
                print("--- fabric log ---\n" + open(lab.desc["fabric"]["log"]).read()[-3000:])
                raise
            print(f"aws cli: (at {time.monotonic() - t0:.1f} s)", flush=True)
            test_aws_cli(lab)
            print(f"ec2 fault proxy: (at {time.monotonic() - t0:.1f} s)", flush=True)
            test_ec2_proxy(lab)
            print(f"elastic ips: (at {time.monotonic() - t0:.1f} s)", flush=True)
            test_elastic_ips(lab)
            print(f"configs: (at {time.monotonic() - t0:.1f} s)", flush=True)
            test_configs(lab, a.hanatd)
            gap = [d for n, ok, d in results if n.startswith("gap across")]
            gap = [g.split(",")[0] for g in gap]
        print(f"teardown: (at {time.monotonic() - t0:.1f} s)", flush=True)
        left = hanatlab.leftovers(state)
        check("nothing left after teardown", not left, ", ".join(left))
        print(f"lab.py: (at {time.monotonic() - t0:.1f} s)", flush=True)
        test_cli(cli_up)
        print(f"Ctrl-C: (at {time.monotonic() - t0:.1f} s)", flush=True)
        line = ""
        end = time.monotonic() + 60
        while time.monotonic() < end and not line.startswith("READY"):
            r, _, _ = select.select([child.stdout], [], [], max(0.0, end - time.monotonic()))
            if not r:
                break
            line = child.stdout.readline()
            if not line:
                break
        check("Ctrl-C child lab came up", line.startswith("READY"),
              line.strip() or child.stderr.read()[-500:])
        child_state = json.load(open(line.split()[1]))
        child.send_signal(signal.SIGINT)
        rc = child.wait(timeout=30)
        left = hanatlab.leftovers(child_state)
        check("nothing left after Ctrl-C", not left and rc != 0,
              f"rc={rc}; " + ", ".join(left))
        check("root namespace untouched", root_ns_snapshot() == root_before)
    except Exception as e:  # noqa: BLE001
        failed = e
        traceback.print_exc()
    finally:
        # The children's labs must go even when this test failed half-way: SIGTERM (their
        # own teardown), then SIGKILL and a teardown from their state files.
        for ch, prefix in ((child2, "sigterm"), (child, "sigint"), (cli_up, "cli")):
            if ch.poll() is None:
                ch.send_signal(signal.SIGTERM)
                try:
                    ch.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    ch.kill()
                    ch.wait(timeout=10)
            for path in glob.glob(os.path.join(labmod.STATE_ROOT,
                                               f"hanat-lab-{prefix}{ch.pid}-*", "state.json")):
                try:
                    hanatlab.teardown_state(json.load(open(path)))
                except (OSError, ValueError):
                    pass
    took = time.monotonic() - t0
    n_ok = sum(1 for r in results if r[1])
    if failed:
        print(f"FAILED: e2e lab self-test: {failed} ({n_ok}/{len(results)} checks passed, "
              f"{took:.1f} s)")
        return 1
    print(f"PASSED: e2e lab self-test: {n_ok} checks in {took:.1f} s; gap across a "
          f"ReplaceRoute switch {gap[0] if gap else '?'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
