#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Reload is all or nothing, in the e2e lab (issue 18, "Reload").

Two NATs run hanatd; NAT 1's file is rewritten and reloaded with `hanatctl reload`, and
each check is what an operator would see after it:

- a key that needs a restart (group.name) is refused by name, exit 2, nothing applied;
- agent.port and agent.listen_address: the agent answers on the new port or address at
  once, and no longer on the old one;
- nat.table: the table is renamed (one transaction), the old name gone;
- probe.kinds: after ["icmp", "agent"] -> ["icmp", "tcp"], a peer that goes silent on its
  private link is declared DOWN and its table taken over (before, the new "tcp" tracker
  stayed Unknown and the peer was never DOWN until a restart);
- egress.targets: a new, unreachable target makes the egress self-check go down.

Usage: reload_e2e.py HANATD HANATCTL
Exit 0 when every check passed, 1 on a failure, 77 when the lab cannot run.
"""
import argparse
import os
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, HERE)
from hanatlab import Lab, LabUnavailable  # noqa: E402

failures = []


def check(what, cond, detail=""):
    print(("ok:   " if cond else "FAIL: ") + what + ("" if cond else f" ({detail})"), flush=True)
    if not cond:
        failures.append(what)
    return cond


def poll(fn, timeout, interval=0.05):
    end = time.monotonic() + timeout
    last = None
    while time.monotonic() < end:
        try:
            last = fn()
        except Exception:  # noqa: BLE001 - the daemon may be busy
            last = None
        if last:
            return last
        time.sleep(interval)  # pacing of the poll loop
    return last


def log_of(lab, name):
    try:
        return open(os.path.join(lab.dir, f"{name}.log"), errors="replace").read()
    except OSError:
        return ""


BASE = {"probe": {"interval": "100ms", "timeout": "100ms", "rise": 3, "fall": 3},
        "failover": {"failback_delay": "1s"},
        "ec2": {"route_refresh_interval": "2s"}}


def merged(extra):
    out = {k: dict(v) for k, v in BASE.items()}
    for sec, keys in extra.items():
        out.setdefault(sec, {}).update(keys)
    return out


def reload(lab, hanatctl, extra):
    """Rewrites NAT 1's file with `extra` and runs `hanatctl reload` there."""
    lab.write_config(1, merged(extra))
    sock = os.path.join(lab.nat(1)["dir"], "hanatd.sock")
    return subprocess.run(["ip", "netns", "exec", lab.nat(1)["ns"], hanatctl, "--socket", sock,
                           "reload"], capture_output=True, text=True, timeout=20)


def agent_line(lab, port, address=None):
    """What NAT 1's agent answers NAT 2 on `port` of `address` (default: NAT 1's private
    address); "refused: ..." when nothing answers."""
    address = address or lab.nat(1)["private_address"]
    cp = subprocess.run(["ip", "netns", "exec", lab.nat(2)["ns"], sys.executable, "-c",
                         "import socket, sys\n"
                         "try:\n"
                         f"    c = socket.create_connection(('{address}', {port}), timeout=2)\n"
                         "    print(c.makefile().readline().strip())\n"
                         "except OSError as e:\n"
                         "    print('refused:', e)\n"],
                        capture_output=True, text=True, timeout=20)
    return cp.stdout.strip()


def route_target(lab, rtb):
    for t in lab.ec2().describe_route_tables(RouteTableIds=[rtb])["RouteTables"]:
        for r in t["Routes"]:
            if r.get("DestinationCidrBlock") == "0.0.0.0/0":
                return r.get("NetworkInterfaceId")
    return None


def run(lab, hanatd, hanatctl):
    p1, _ = lab.start_hanatd(1, hanatd, merged({}))
    p2, _ = lab.start_hanatd(2, hanatd, merged({}))
    eni = {k: lab.nat(k)["eni_id"] for k in (1, 2)}
    rt_b = lab.route_table("b")["id"]
    settled = poll(lambda: all(lab.hanatd_status(k).get("node", {}).get("state") == "active"
                               for k in (1, 2)) and route_target(lab, rt_b) == eni[2], 40, 0.2)
    check("both hanatd active, table b on NAT 2", settled, log_of(lab, "hanatd-nat1")[-800:])

    def generation():
        return lab.hanatd_status(1)["config"]["generation"]

    # 1. A key that needs a restart: refused whole, by name.
    cp = reload(lab, hanatctl, {"group": {"name": "another"}, "log": {"level": "debug"}})
    check("a group.name change is refused: exit 2", cp.returncode == 2, cp)
    check("... naming the key", "group.name: needs a restart" in cp.stderr, cp.stderr)
    check("... and the running generation stays", generation() == 1)

    # 2. agent.port: answers on the new port, not on the old one.
    port = lab.agent_port
    cp = reload(lab, hanatctl, {"agent": {"port": port + 1}})
    check("agent.port reload: exit 0", cp.returncode == 0, cp)
    line = agent_line(lab, port + 1)
    check("the agent answers on the new port", line.startswith("up "), line)
    check("... and no longer on the old one", agent_line(lab, port).startswith("refused"),
          agent_line(lab, port))
    cp = reload(lab, hanatctl, {})
    check("agent.port back: exit 0", cp.returncode == 0, cp)
    check("the agent answers on the old port again", agent_line(lab, port).startswith("up "))

    # agent.listen_address: NAT 1's management address instead of the private one.
    mgmt = lab.nat(1)["mgmt_address"]
    cp = reload(lab, hanatctl, {"agent": {"listen_address": mgmt}})
    check("agent.listen_address reload: exit 0", cp.returncode == 0, cp)
    line = agent_line(lab, port, mgmt)
    check("the agent answers on the new address", line.startswith("up "), line)
    check("... and no longer on the old one", agent_line(lab, port).startswith("refused"))
    cp = reload(lab, hanatctl, {})
    check("agent.listen_address back: exit 0", cp.returncode == 0, cp)
    check("the agent answers on the private address again",
          agent_line(lab, port).startswith("up "))

    # nat.table: renamed in one transaction; the host holds the new table only.
    def tables():
        cp = subprocess.run(["ip", "netns", "exec", lab.nat(1)["ns"], "nft", "list", "tables"],
                            capture_output=True, text=True, timeout=20)
        return cp.stdout.split()
    cp = reload(lab, hanatctl, {"nat": {"table": "hanat_r"}})
    check("nat.table reload: exit 0", cp.returncode == 0, cp)
    renamed = poll(lambda: "hanat_r" in tables() and "hanat" not in tables(), 10)
    check("the masquerade table is renamed, the old one gone", renamed, tables())
    cp = reload(lab, hanatctl, {})
    check("nat.table back: exit 0", cp.returncode == 0, cp)
    check("... and back again", poll(lambda: "hanat" in tables() and "hanat_r" not in tables(),
                                     10), tables())

    # 3. probe.kinds: "agent" replaced by "tcp" (to the peer's agent port, a TCP listener):
    # a peer silent on its private link must still be declared DOWN.
    kinds = {"probe": {"kinds": ["icmp", "tcp"], "tcp_port": port}}
    cp = reload(lab, hanatctl, kinds)
    check("probe.kinds reload: exit 0", cp.returncode == 0, cp)

    def tcp_rtt():
        for m in lab.hanatd_status(1).get("node", {}).get("members", []):
            if m.get("instance_id") == lab.nat(2)["instance_id"]:
                return "tcp" in (m.get("last_rtt_us") or {})
        return False
    check("NAT 1 probes NAT 2 with the new kind", poll(tcp_rtt, 5), lab.hanatd_status(1))
    cut = time.monotonic()
    lab.set_link(2, "private", False, mode="drop")
    moved = poll(lambda: route_target(lab, rt_b) == eni[1], 15, 0.05)
    check(f"after the reload, a silent peer is DOWN and its table taken over "
          f"({(time.monotonic() - cut) * 1000:.0f} ms)", moved,
          log_of(lab, "hanatd-nat1")[-1500:])
    lab.set_link(2, "private", True, mode="drop")

    # 4. egress.targets: an unreachable target makes the self-check fail.
    cp = reload(lab, hanatctl, {**kinds, "egress": {"targets": ["198.19.0.250:9"],
                                                    "interval": "200ms", "timeout": "200ms"}})
    check("egress.targets reload: exit 0", cp.returncode == 0, cp)
    down = poll(lambda: lab.hanatd_status(1)["node"]["self"]["egress"] == "down", 15, 0.1)
    check("the new egress target is probed: self-check down", down,
          lab.hanatd_status(1).get("node", {}).get("self"))
    check("hanatd stayed up through every reload", p1.poll() is None and p2.poll() is None)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("hanatd")
    ap.add_argument("hanatctl")
    a = ap.parse_args()
    try:
        lab_cm = Lab(nats=2, hosts_per_zone=1, name="reload")
        lab = lab_cm.__enter__()
    except LabUnavailable as e:
        print(f"SKIPPED: {e}")
        return 77
    try:
        run(lab, a.hanatd, a.hanatctl)
    finally:
        lab_cm.__exit__(None, None, None)
    if failures:
        print(f"FAILED: {len(failures)} check(s): " + "; ".join(failures))
        return 1
    print("PASSED: reload")
    return 0


if __name__ == "__main__":
    sys.exit(main())
