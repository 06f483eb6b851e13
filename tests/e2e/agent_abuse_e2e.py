#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""hanatd's agent port under abuse, in the e2e lab (issue 18, "Agent").

What an operator would see:

1. A local process that holds the agent port before hanatd starts (it could answer the
   peers' agent checks with `down <id>` and make every peer take this host's routes) makes
   hanatd exit non-zero with a message naming the port; hanatd runs with the default
   listen address (this instance's private IP from instance metadata).
2. 1,000 connections/s at NAT 1's agent port, from a private host, do not delay NAT 1's
   probe sends beyond the status-socket abuse figures (abuse_e2e.py: p99 jitter < 50 ms,
   at least half the sends seen), measured from outside with the same capture.
3. A TTL-1 flood of 100 packets/s from a private host through a quiet NAT does not trip the
   forward-path check: such packets expire in the NAT (ICMP time exceeded) and are not
   counted as "arrived to be forwarded".

Usage: agent_abuse_e2e.py HANATD [--interval-ms 50] [--window 8]
Exit 0 when every check passed, 1 on a failure, 77 when the lab cannot run.
"""
import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, HERE)
from hanatlab import Lab, LabUnavailable  # noqa: E402
from abuse_e2e import EchoCapture, jitter_ms, pct  # noqa: E402

failures = []

# Runs inside a private host's namespace: non-blocking connects to ADDR:PORT at RATE per
# second for SECONDS, each closed soon after (at most 200 open); prints the count.
FLOODER = r"""
import socket, sys, time
addr = (sys.argv[1], int(sys.argv[2])); rate = int(sys.argv[3]); seconds = float(sys.argv[4])
socks, n, t0 = [], 0, time.monotonic()
while time.monotonic() - t0 < seconds:
    due = int((time.monotonic() - t0) * rate)
    while n < due:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        try:
            s.connect(addr)
        except OSError:
            pass
        socks.append(s)
        n += 1
    while len(socks) > 200:
        socks.pop(0).close()
    time.sleep(0.001)  # pacing of the send loop
print(n, flush=True)
"""

# Runs inside a private host's namespace: UDP datagrams with IP TTL 1 to ADDR:PORT at RATE
# per second for SECONDS; prints the count.
TTL1 = r"""
import socket, sys, time
addr = (sys.argv[1], int(sys.argv[2])); rate = int(sys.argv[3]); seconds = float(sys.argv[4])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, 1)
n, t0 = 0, time.monotonic()
while time.monotonic() - t0 < seconds:
    while n < int((time.monotonic() - t0) * rate):
        try:
            s.sendto(b"ttl1", addr)
        except OSError:
            pass
        n += 1
    time.sleep(0.002)  # pacing of the send loop
print(n, flush=True)
"""


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
        except Exception:  # noqa: BLE001 - the daemon may be starting
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


def held_port(lab, hanatd):
    """1: a process holds the agent port; hanatd must exit non-zero, saying so."""
    n1 = lab.nat(1)
    holder = lab.spawn(n1["ns"], [sys.executable, "-c",
                                  "import socket, time\n"
                                  "s = socket.socket()\n"
                                  f"s.bind(('0.0.0.0', {lab.agent_port}))\n"
                                  "s.listen(8)\nprint('holding', flush=True)\n"
                                  "time.sleep(120)\n"], "port-holder")
    check("the port holder is listening",
          poll(lambda: "holding" in log_of(lab, "port-holder"), 10), log_of(lab, "port-holder"))
    p, _ = lab.start_hanatd(1, hanatd, {"agent": {"listen_address": ""}}, name="hanatd-held")
    try:
        code = p.wait(timeout=30)
    except subprocess.TimeoutExpired:
        code = None
    log = log_of(lab, "hanatd-held")
    check("hanatd exits when its agent port is taken", code is not None, log[-1500:])
    check(f"... with a non-zero status ({code})", code not in (None, 0), log[-1500:])
    # libuv reports EADDRINUSE of a TCP bind at listen().
    want = f"agent port {n1['private_address']}:{lab.agent_port}: listen: address already in use"
    check("... naming the port on the private address from instance metadata", want in log,
          log[-1500:])
    check("... and why it matters", "another process holds the port" in log, log[-1500:])
    holder.terminate()
    holder.wait(timeout=10)


def overrides(interval_ms):
    ms = f"{interval_ms}ms"
    return {"probe": {"interval": ms, "timeout": ms, "rise": 3, "fall": 3},
            "agent": {"listen_address": ""},
            "ec2": {"route_refresh_interval": "2s"}}


def flood_and_ttl(lab, hanatd, interval_ms, window_s):
    """2 and 3: two NATs running, NAT 1 flooded at its agent port; then TTL-1 packets."""
    p1, _ = lab.start_hanatd(1, hanatd, overrides(interval_ms))
    p2, _ = lab.start_hanatd(2, hanatd, overrides(interval_ms))
    n1, n2 = lab.nat(1), lab.nat(2)
    up = poll(lambda: all(lab.hanatd_status(k).get("node", {}).get("state") == "active"
                          for k in (1, 2)), 40, 0.2)
    check("both hanatd active", up, [log_of(lab, "hanatd-nat1")[-800:]])
    cap = EchoCapture(n2["ns"], n2["interfaces"]["private"], n1["private_address"],
                      n2["private_address"])
    try:
        phases = {}
        for name, rate in (("no flood", 0), ("flood", 1000)):
            fl = None
            if rate:
                fl = lab.spawn(lab.host("a1")["ns"],
                               [sys.executable, "-c", FLOODER, n1["private_address"],
                                str(lab.agent_port), str(rate), str(window_s + 1)],
                               "agent-flooder")
                time.sleep(0.5)  # the flood is under way before the window opens
            t0 = time.time_ns()
            time.sleep(window_s)  # the measurement window itself
            t1 = time.time_ns()
            sends = cap.between(t0, t1)
            j = jitter_ms(sends, interval_ms)
            phases[name] = {"sends": len(sends),
                            "expected_sends": int(window_s * 1000 / interval_ms),
                            "jitter_p50_ms": pct(j, 50), "jitter_p99_ms": pct(j, 99),
                            "jitter_max_ms": max(j) if j else float("nan")}
            if fl is not None:
                fl.wait(timeout=30)
                phases[name]["flood_connects"] = (log_of(lab, "agent-flooder").strip() or "0")
            print(f"      {name}: " + json.dumps(phases[name]), flush=True)
        fld = phases["flood"]
        check("the flooder made ~1,000 connections/s",
              int(fld.get("flood_connects", "0").split()[-1]) >= 900 * window_s, fld)
        check("hanatd stayed up under the agent flood", p1.poll() is None,
              log_of(lab, "hanatd-nat1")[-1500:])
        for name, ph in phases.items():
            # The status-socket abuse figures (abuse_e2e.py), on the same loaded machine.
            share = 0.9 if name == "no flood" else 0.5
            check(f"{name}: at least {share:.0%} of the probe sends seen",
                  ph["sends"] >= share * ph["expected_sends"], ph)
            bound = 20.0 if name == "no flood" else 50.0
            check(f"{name}: p99 probe jitter < {bound:.0f} ms", ph["jitter_p99_ms"] < bound, ph)
        st = poll(lambda: lab.hanatd_status(1), 5) or {}
        check("hanatd answers its status after the flood", st.get("ok") is True, st)
    finally:
        cap.close()

    # 3. TTL 1 through the NAT that routes zone a (a quiet one: no other traffic).
    via = lab.default_route("a1")
    nat = next((k for k in (1, 2) if lab.nat(k)["private_address"] == via), None)
    check("a1 routes through a NAT", nat is not None, via)
    if nat is None:
        return

    def fwd():
        return (lab.hanatd_status(nat).get("node", {}).get("self", {}) or {})

    before = poll(fwd, 5) or {}
    check("the forward check runs", before.get("forward") in ("up", "unknown"), before)
    inet = lab.desc["internet"]["address"]
    sender = lab.spawn(lab.host("a1")["ns"], [sys.executable, "-c", TTL1, inet, "9", "100", "5"],
                       "ttl1-flood")
    sender.wait(timeout=30)
    sent = int((log_of(lab, "ttl1-flood").strip() or "0").split()[-1])
    # The check's window is fall x interval (3 x 200 ms): 5 s of flood is many windows, and
    # one more window afterwards lets a late verdict show.
    time.sleep(1.0)  # one forward-check window past the flood
    after = poll(fwd, 5) or {}
    check(f"the TTL-1 flood ran ({sent} packets in 5 s)", sent >= 450, sent)
    check("a TTL-1 flood does not trip the forward check", after.get("forward") != "down", after)
    grew = after.get("forward_in_packets", 0) - before.get("forward_in_packets", 0)
    check(f"TTL-1 packets are not counted as arriving to be forwarded (+{grew})",
          grew < sent / 10, {"before": before, "after": after})
    log = log_of(lab, f"hanatd-{lab.nat(nat)['name']}")
    check("no 'forward check: down' in the NAT's log", "forward check: down" not in log,
          log[-800:])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("hanatd")
    ap.add_argument("--interval-ms", type=int, default=50)
    ap.add_argument("--window", type=float, default=8.0)
    a = ap.parse_args()
    try:
        lab_cm = Lab(nats=2, hosts_per_zone=1, name="agentab")
        lab = lab_cm.__enter__()
    except LabUnavailable as e:
        print(f"SKIPPED: {e}")
        return 77
    try:
        held_port(lab, a.hanatd)
        flood_and_ttl(lab, a.hanatd, a.interval_ms, a.window)
    finally:
        lab_cm.__exit__(None, None, None)
    if failures:
        print(f"FAILED: {len(failures)} check(s): " + "; ".join(failures))
        return 1
    print("PASSED: agent port under abuse")
    return 0


if __name__ == "__main__":
    sys.exit(main())
