#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Scenario early_flow (issue #23): a flow that starts before hanatd gets NATed once hanatd
has installed its table.

nat1's ip_forward is on before hanatd runs (lab forwarding=True, no masquerade) and a host
firewall (a foreign table matching `ct state`) keeps conntrack running, so the UDP stream
from private host a1 is forwarded without NAT and the kernel records its flow un-NATed.
(Without any conntrack user in the namespace the kernel tracks nothing, and the first packet
after hanat's table appears is a new, NATed flow: that host never had the problem.)

hanatd starts 3 s later; within 1 s of its "data plane: masquerade table and forwarding
verified" the internet host's sink sees the same stream (one socket, one flow) arrive from
nat1's public address, and only from it from then on. Without the purge the flow keeps its
private source for as long as it keeps sending.

Usage: early_flow_e2e.py HANATD
Exit 0 pass, 1 fail, 77 skipped (not root, tools missing). The last line says which.
"""
import os
import re
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from hanatlab import Lab, LabUnavailable  # noqa: E402

VERIFIED = "data plane: masquerade table and forwarding verified"
PURGED = "conntrack entries forwarded without NAT purged"


def wait_for(fn, timeout, interval=0.02):
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(interval)


def run(lab, hanatd, failures):
    def check(what, ok):
        print(("ok:    " if ok else "FAIL:  ") + what, flush=True)
        if not ok:
            failures.append(what)
        return ok

    nat = lab.nat(1)
    public, a1 = nat["public_address"], lab.host("a1")["address"]
    lab.wait_route("a1", nat["private_address"], timeout=10)
    lab.exec(nat["ns"], ["nft", "add table inet hostfw; add chain inet hostfw allow { type filter "
                         "hook forward priority 0; policy accept; }; add rule inet hostfw allow "
                         "ct state established,related counter accept"])
    def hostfw():  # the foreign table without its counter values (they count the stream)
        out = lab.exec(nat["ns"], ["nft", "list", "table", "inet", "hostfw"]).stdout
        return re.sub(r"packets \d+ bytes \d+", "packets N bytes N", out)

    hostfw_before = hostfw()
    stream = lab.start_stream("a1", rate=200)
    stream.wait_received(100, timeout=10)
    # 3 s of the stream before hanatd starts (counted at the sink, so no fixed sleep).
    started = min(p[2] for p in stream.packets())
    wait_for(lambda: time.time_ns() >= started + 3_000_000_000, 5.0)
    before = {p[3] for p in stream.packets()}
    if not check(f"before hanatd the stream arrives un-NATed from {a1} (sources {before})",
                 before == {a1}):
        return
    lab.start_hanatd(1, hanatd)
    log = os.path.join(lab.dir, f"hanatd-{nat['name']}.log")

    def verified():
        try:
            with open(log) as f:
                return VERIFIED in f.read()
        except OSError:
            return False

    if not check("hanatd logged that the data plane is verified",
                 wait_for(verified, 40.0)):
        return
    t_verified = time.time_ns()

    def natted():
        return [p for p in stream.packets() if p[3] == public]

    wait_for(natted, 1.5)
    first = min((p[2] for p in natted()), default=None)
    delay_ms = None if first is None else (first - t_verified) / 1e6
    check(f"the stream arrives from {public} within 1 s of the verification "
          f"(first NATed packet {delay_ms} ms after it was seen)",
          delay_ms is not None and delay_ms <= 1000)
    # 200 ms more of the stream: all of it NATed.
    t_after = time.time_ns()
    wait_for(lambda: len([p for p in stream.packets() if p[2] > t_after]) >= 40, 3.0)
    late = {p[3] for p in stream.packets() if p[2] > t_after}
    check(f"after that only {public} (sources {late})", late == {public})
    with open(log) as f:
        text = f.read()
    # sd-daemon prefix <4> is WARNING.
    check("hanatd logged the purge with its count at WARNING",
          any(line.startswith("<4>") and PURGED in line for line in text.splitlines()))
    counters = lab.hanatd_status(nat["name"]).get("node", {}).get("counters", {})
    check(f"status counts the purged entries ({counters.get('unnatted_flows_purged')})",
          counters.get("unnatted_flows_purged", 0) >= 1)
    check("the host firewall's table is untouched", hostfw() == hostfw_before)
    stream.stop()


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    hanatd = os.path.abspath(sys.argv[1])
    t0 = time.monotonic()
    try:
        lab_cm = Lab(nats=1, hosts_per_zone=1, name="early", forwarding=True)
        lab = lab_cm.__enter__()
    except LabUnavailable as e:
        print(f"SKIPPED: {e}")
        return 77
    failures = []
    try:
        try:
            run(lab, hanatd, failures)
        except Exception as e:  # noqa: BLE001 - reported as a failure
            failures.append(f"{type(e).__name__}: {e}")
        if failures:
            path = os.path.join(lab.dir, f"hanatd-{lab.nat(1)['name']}.log")
            try:
                print("--- hanatd log (tail) ---\n" + open(path).read()[-2500:])
            except OSError:
                pass
    finally:
        lab_cm.__exit__(None, None, None)
    took = time.monotonic() - t0
    if failures:
        print(f"FAILED: early_flow, {len(failures)} check(s) in {took:.0f} s: " +
              "; ".join(failures))
        return 1
    print(f"PASSED: early_flow in {took:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
