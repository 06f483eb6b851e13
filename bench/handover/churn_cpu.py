#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""What stateful failover's replication costs the whole daemon (issue 21): hanatd's CPU
time on both NATs of the e2e lab while zone a's two hosts open short TCP connections
through nat1 at a fixed rate, once with [failover] stateful = false (the baseline) and once
with it on, in the same run and the same lab.

    bench/handover/churn_cpu.py [--hanatd build/bin/hanatd] [--rate 200] [--seconds 30]
                                [--perf DIR]

--perf DIR also records a CPU profile of both hanatd processes over the stateful window
(`perf record -g -p <pid>`, DIR/nat1.data and DIR/nat2.data; read with `perf report -i`).

Each short connection goes to the internet host's whoami server, which answers and
closes: about five conntrack events on nat1 (NEW, the reply, ESTABLISHED, the FIN states;
DESTROY comes 120 s later, after TIME_WAIT). With stateful on, nat1 streams them to nat2
(the member that would take zone a's table) and nat2 holds them. CPU is utime + stime from
/proc/<pid>/stat over the measured window (10 ms ticks), as a share of one core. Prints one
line per mode and the difference per 1,000 new flows per second, and the bytes nat1 wrote
on the member channel over the window (its status, replication.targets[].wire_bytes) per
1,000 new flows per second. Exit 77 when the lab
cannot run here (not root, tools missing).
"""
import argparse
import os
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
E2E = os.path.join(ROOT, "tests", "e2e")
sys.dont_write_bytecode = True
sys.path.insert(0, E2E)
from eip_follows_e2e import add_zone_eips  # noqa: E402
from hanatlab import Lab, LabUnavailable, checks  # noqa: E402
from hanatlab import scenarios as sc  # noqa: E402

# Runs inside a private host's namespace: `rate` connections per second for `seconds`,
# each connect, read the answer, close; prints "ok failed". The pacing sleeps until each
# connection's slot (a rate, not a synchronisation).
CHURN = r"""
import socket, sys, time
dst, port, rate, dur = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
ok = failed = n = 0
t0 = time.monotonic()
while time.monotonic() - t0 < dur:
    due = t0 + n / rate
    now = time.monotonic()
    if due > now:
        time.sleep(due - now)
    n += 1
    try:
        s = socket.create_connection((dst, port), timeout=1.0)
        s.recv(64)
        s.close()
        ok += 1
    except OSError:
        failed += 1
print(ok, failed, flush=True)
"""


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        rest = f.read().rsplit(")", 1)[1].split()
    return int(rest[11]) + int(rest[12])  # utime, stime (fields 14 and 15)


def hanatd_pid(p):
    """The hanatd process the lab started (its Popen, or the one child of a wrapper)."""
    with open(f"/proc/{p.pid}/comm") as f:
        if f.read().strip() == "hanatd":
            return p.pid
    with open(f"/proc/{p.pid}/task/{p.pid}/children") as f:
        kids = [int(x) for x in f.read().split()]
    for k in kids:
        with open(f"/proc/{k}/comm") as f:
            if f.read().strip() == "hanatd":
                return k
    raise RuntimeError(f"no hanatd under pid {p.pid}")


def node(lab, nat):
    """hanatd's status node document over its socket, or {}."""
    try:
        return lab.hanatd_status(nat).get("node", {})
    except Exception:  # noqa: BLE001 - not answering yet: nothing known
        return {}


def start_perf(perf_dir, pids):
    """perf record on each pid (call graphs by frame pointers), or [] without perf_dir."""
    if not perf_dir:
        return []
    os.makedirs(perf_dir, exist_ok=True)
    return [subprocess.Popen(["perf", "record", "-q", "-g", "-F", "997", "-p", str(pid), "-o",
                              os.path.join(perf_dir, f"nat{n}.data")],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for n, pid in pids.items()]


def stop_perf(recorders):
    for r in recorders:
        r.send_signal(signal.SIGINT)  # perf writes its file on SIGINT
    for r in recorders:
        r.wait(60)


def wire_bytes(lab):
    """Channel bytes nat1 wrote replicating (status replication.targets[].wire_bytes), or
    None when its hanatd does not report them."""
    ts = (node(lab, 1).get("replication") or {}).get("targets") or []
    if not ts or any("wire_bytes" not in t for t in ts):
        return None
    return sum(int(t["wire_bytes"]) for t in ts)


def measure(lab, hanatd, stateful, rate, seconds, perf_dir=None):
    over = checks.overrides({"failover": {"failback_delay": "3s", "move_eip": True,
                                          "stateful": stateful},
                             "probe": {"paths": ["private"]}})
    ctl = sc.HanatController(lab, hanatd, "default", over)
    ctl.start_all()
    try:
        ctl.wait_ready(40)
        if stateful:
            # Replication set up (nat1 streams to nat2) before the window starts.
            def streaming():
                r = node(lab, 1).get("replication") or {}
                return any(t.get("connected") for t in r.get("targets", []))
            deadline = time.monotonic() + 20
            while not streaming():
                if time.monotonic() > deadline:
                    raise RuntimeError("nat1 never connected its replication stream: "
                                       f"{node(lab, 1).get('replication')}")
                time.sleep(0.2)
        pids = {n: hanatd_pid(ctl.procs[lab.nat(n)["name"]]) for n in (1, 2)}
        inet = lab.desc["internet"]
        hosts = [h["name"] for h in lab.desc["hosts"] if h["zone_letter"] == "a"]
        recorders = start_perf(perf_dir if stateful else None, pids)
        bytes_before = wire_bytes(lab) if stateful else None
        before = {n: cpu_ticks(p) for n, p in pids.items()}
        t0 = time.monotonic()
        procs = [lab.spawn(lab.host(h)["ns"], [
            sys.executable, "-c", CHURN, inet["address"], str(inet["tcp_port"]),
            str(rate / len(hosts)), str(seconds)], f"churn-{int(stateful)}-{h}")
            for h in hosts]
        for p in procs:
            p.wait(seconds + 30)
        took = time.monotonic() - t0
        after = {n: cpu_ticks(p) for n, p in pids.items()}
        stop_perf(recorders)
        bytes_after = wire_bytes(lab) if stateful else None
        ok = failed = 0
        for h in hosts:
            with open(os.path.join(lab.dir, f"churn-{int(stateful)}-{h}.log")) as f:
                a, b = f.read().split()[-2:]
            ok, failed = ok + int(a), failed + int(b)
        tck = os.sysconf("SC_CLK_TCK")
        held = sum(int((v or {}).get("live", 0)) for v in
                   ((node(lab, 2).get("takeover") or {}).get("replicas") or {}).values())
        return {"stateful": stateful, "flows": ok, "failed": failed, "seconds": took,
                "flows_per_s": ok / took, "held_on_nat2": held,
                "bytes_per_s": (None if bytes_before is None or bytes_after is None
                                else (bytes_after - bytes_before) / took),
                "cpu": {n: (after[n] - before[n]) / tck / took for n in pids}}
    finally:
        ctl.stop_all()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--hanatd", default=os.path.join(ROOT, "build", "bin", "hanatd"))
    ap.add_argument("--rate", type=float, default=200.0, help="new flows per second in all")
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--perf", metavar="DIR", help="also profile both hanatd (stateful window)")
    a = ap.parse_args()
    try:
        with Lab(nats=2, hosts_per_zone=2, name="churn") as lab:
            add_zone_eips(lab)
            rows = [measure(lab, a.hanatd, s, a.rate, a.seconds, a.perf) for s in (False, True)]
    except LabUnavailable as e:
        print(f"SKIPPED: {e}")
        return 77
    for r in rows:
        print(f"stateful = {str(r['stateful']).lower():5}: {r['flows']} flows in "
              f"{r['seconds']:.1f} s ({r['flows_per_s']:.0f}/s, {r['failed']} failed); hanatd CPU "
              f"nat1 {100 * r['cpu'][1]:.2f} % of a core, nat2 {100 * r['cpu'][2]:.2f} %; "
              f"nat2 holds {r['held_on_nat2']} of nat1's flows", flush=True)
    base, st = rows
    per_k = 1000.0 / max(st["flows_per_s"], 1.0)
    print(f"replication per 1,000 new flows/s: nat1 (sender) "
          f"+{100 * (st['cpu'][1] - base['cpu'][1]) * per_k:.2f} % of a core, nat2 (holder) "
          f"+{100 * (st['cpu'][2] - base['cpu'][2]) * per_k:.2f} %")
    if st["bytes_per_s"] is not None:
        print(f"replication bandwidth per 1,000 new flows/s: {st['bytes_per_s'] * per_k / 1000:.1f} "
              f"KB/s on the member channel (nat1 wrote {st['bytes_per_s'] / 1000:.1f} KB/s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
