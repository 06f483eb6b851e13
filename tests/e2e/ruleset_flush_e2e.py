#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Scenario ruleset_flush (issue #23): a firewall reload on the serving NAT under traffic.

`nft -f` of a file that starts with `flush ruleset` (what most hosts' nftables.conf does)
deletes hanat's table together with every other one and loads a host firewall whose
`ct state` rule keeps conntrack running. hanatd hears the deletion on its nftables
notification socket and puts its table back at once:

1. Under a running stream, the reload runs inside nat1's namespace followed by a tight poll
   for `table ip hanat`: the table is back within 100 ms of the reload's end. A new UDP
   stream and new TCP connects started right after the reload all arrive from nat1's public
   address within 1 s of the repair, and so does the stream that ran across it. hanatd logs
   one WARNING naming what was wrong ("repaired table ip hanat: missing (noticed by nftables
   notification: table deleted)").
2. A flow whose first packet slips into the gap is forwarded without NAT and would stay
   broken for as long as it lives. The gap is made long enough to be certain of that by
   stopping hanatd (SIGSTOP) around a second reload: the new stream arrives un-NATed; after
   SIGCONT the repair's purge deletes its entry and the stream arrives NATed within 1 s. The
   purge is logged at WARNING with its count, and `hanatctl status` shows it.

Usage: ruleset_flush_e2e.py HANATD [HANATCTL]
Exit 0 pass, 1 fail, 77 skipped (not root, tools missing). The last line says which.
"""
import os
import re
import signal
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from hanatlab import Lab, LabUnavailable  # noqa: E402

VERIFIED = "data plane: masquerade table and forwarding verified"
REPAIRED = "data plane: repaired table ip hanat: missing (noticed by nftables notification"
PURGED = "conntrack entries forwarded without NAT purged"

# A host's /etc/nftables.conf: start from nothing, then the host firewall.
RELOAD = """flush ruleset
table inet hostfw {
  chain forward {
    type filter hook forward priority 0; policy accept;
    ct state established,related counter accept
  }
}
"""


def wait_for(fn, timeout, interval=0.02):
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(interval)


def run(lab, hanatd, hanatctl, failures):
    def check(what, ok):
        print(("ok:    " if ok else "FAIL:  ") + what, flush=True)
        if not ok:
            failures.append(what)
        return ok

    nat = lab.nat(1)
    public = nat["public_address"]
    conf = os.path.join(lab.dir, "nftables.conf")
    with open(conf, "w") as f:
        f.write(RELOAD)
    lab.exec(nat["ns"], ["nft", "-f", conf])  # the host firewall is there before hanatd
    proc, _ = lab.start_hanatd(1, hanatd)
    log = os.path.join(lab.dir, f"hanatd-{nat['name']}.log")

    def log_text():
        try:
            with open(log) as f:
                return f.read()
        except OSError:
            return ""

    if not check("hanatd logged that the data plane is verified",
                 wait_for(lambda: VERIFIED in log_text(), 40.0)):
        return
    lab.wait_route("a1", nat["private_address"], timeout=20)
    running = lab.start_stream("a1", rate=200)
    running.wait_received(50, timeout=10)
    if not check("before the reload the stream arrives from " + public,
                 {p[3] for p in running.packets()} == {public}):
        return

    # 1. The reload. `nft monitor` in nat1's namespace timestamps the kernel's announcements
    # of the deletion and of hanat's re-created table as they arrive (the repair latency,
    # both ends seen by the same reader); a tight `nft list table` poll after the reload's end
    # gives an upper bound that includes starting nft processes on a loaded machine.
    mon = subprocess.Popen(["ip", "netns", "exec", nat["ns"], "stdbuf", "-oL", "nft",
                            "monitor", "tables"], stdout=subprocess.PIPE, text=True)
    events = []  # (monotonic ns, line) as the reader thread receives them

    def reader():
        for line in mon.stdout:
            events.append((time.monotonic_ns(), line.strip()))

    threading.Thread(target=reader, daemon=True).start()
    try:
        # The monitor is live once it reports a table of our own making (it subscribes some
        # time after it starts: repeat until it does).
        live = wait_for(lambda: lab.exec(nat["ns"], [
            "nft", "add table ip flushmark; delete table ip flushmark"]) and wait_for(
                lambda: any(e == "add table ip flushmark" for _, e in events), 0.2), 10.0)
        if not check("nft monitor is listening in the NAT's namespace", live):
            return
        script = (f"nft -f {conf}; a=$(date +%s%N); "
                  "until nft list table ip hanat >/dev/null 2>&1; do :; done; "
                  "b=$(date +%s%N); echo $a $b")
        cp = lab.exec(nat["ns"], ["sh", "-c", script], timeout=20)
        wait_for(lambda: any(e == "add table ip hanat" for _, e in events), 5.0)
    finally:
        mon.kill()
        mon.wait()
    deleted = [t for t, e in events if e == "delete table ip hanat"]
    added = [t for t, e in events if e == "add table ip hanat" and deleted and t >= deleted[0]]
    repair_ms = None if not (deleted and added) else (added[-1] - deleted[0]) / 1e6
    flushed_ns, back_ns = (int(x) for x in cp.stdout.split())
    polled_ms = (back_ns - flushed_ns) / 1e6
    # The target is 100 ms. On a machine whose run queue is longer than its CPUs (the suite
    # beside parallel builds) hanatd and the monitor wait for a CPU in turn, so the bound
    # gets the same kind of scheduling slack the namespace tests give their timers.
    load, cpus = os.getloadavg()[0], os.cpu_count() or 1
    bound = 100 if load <= cpus else 250
    check(f"table ip hanat re-created {repair_ms and round(repair_ms, 1)} ms after its "
          f"deletion was announced (want <= {bound} ms, load {load:.1f} on {cpus} CPUs; "
          f"`nft list` poll from the end of `nft -f`: {polled_ms:.1f} ms)",
          repair_ms is not None and repair_ms <= bound)
    stream = lab.start_stream("a1", rate=200)
    connects = []
    for _ in range(3):
        try:
            addr, _port = lab.whoami("a1", timeout=2.0)
        except Exception as e:  # noqa: BLE001 - a failed connect is a failed check
            addr = f"error: {e}"
        connects.append((addr, time.time_ns()))
    stream.wait_received(40, timeout=5)

    def first_natted(s, after_ns):
        return min((p[2] for p in s.packets() if p[3] == public and p[2] >= after_ns),
                   default=None)

    first = wait_for(lambda: first_natted(stream, back_ns), 1.5)
    # From the repair, or from the stream's first send if the sender started later.
    start_ns = max(back_ns, min((p[1] for p in stream.packets()), default=back_ns))
    delay = None if first is None else (first - start_ns) / 1e6
    check(f"a new stream after the reload arrives from {public} within 1 s of the repair "
          f"or its start (first packet {delay} ms after)", delay is not None and delay <= 1000)
    srcs = {p[3] for p in stream.packets()}
    check(f"...and only from {public} (sources {srcs})", srcs == {public})
    check(f"3 new TCP connects after the reload are seen from {public} "
          f"({[c[0] for c in connects]}, last done "
          f"{(connects[-1][1] - back_ns) / 1e6:.0f} ms after the repair)",
          all(c[0] == public for c in connects))
    t_after = time.time_ns()
    wait_for(lambda: len([p for p in running.packets() if p[2] > t_after]) >= 40, 3.0)
    late = {p[3] for p in running.packets() if p[2] > t_after}
    check(f"the stream that ran across the reload still arrives from {public} ({late})",
          late == {public})
    warnings = [line for line in log_text().splitlines()
                if line.startswith("<4>") and REPAIRED in line]
    check(f"hanatd logged the repair once at WARNING ({len(warnings)})", len(warnings) == 1)
    stream.stop()

    # 2. A flow in the gap: hanatd is held (SIGSTOP) while the reload runs and the flow
    # starts; its first packets leave un-NATed.
    os.kill(proc.pid, signal.SIGSTOP)
    try:
        lab.exec(nat["ns"], ["nft", "-f", conf])
        stranded = lab.start_stream("a1", rate=200)
        stranded.wait_received(20, timeout=5)
        gap_srcs = {p[3] for p in stranded.packets()}
    finally:
        os.kill(proc.pid, signal.SIGCONT)
    t_cont = time.time_ns()
    check(f"a stream started in the gap leaves without NAT ({gap_srcs})", public not in gap_srcs)
    first = wait_for(lambda: first_natted(stranded, t_cont), 1.5)
    delay = None if first is None else (first - t_cont) / 1e6
    check(f"once hanatd runs again the same stream arrives from {public} within 1 s "
          f"({delay} ms)", delay is not None and delay <= 1000)
    t_after = time.time_ns()
    wait_for(lambda: len([p for p in stranded.packets() if p[2] > t_after]) >= 40, 3.0)
    late = {p[3] for p in stranded.packets() if p[2] > t_after}
    check(f"...and only from {public} from then on ({late})", late == {public})
    purges = [line for line in log_text().splitlines()
              if line.startswith("<4>") and PURGED in line]
    check(f"hanatd logged the purge with its count at WARNING ({purges[-1:]})", bool(purges))
    counters = lab.hanatd_status(nat["name"]).get("node", {}).get("counters", {})
    check(f"status counts the purged flows ({counters.get('unnatted_flows_purged')})",
          counters.get("unnatted_flows_purged", 0) >= 1)
    text = subprocess.run([hanatctl, "--socket", os.path.join(nat["dir"], "hanatd.sock"),
                           "status"], capture_output=True, text=True, timeout=10).stdout
    m = re.search(r"un-NATed: +(\d+) flows purged", text)
    check(f"hanatctl status shows them ({m.group(0) if m else 'no un-NATed line'})",
          m is not None and int(m.group(1)) >= 1)
    for s in (stranded, running):
        s.stop()


def main():
    if len(sys.argv) not in (2, 3):
        print(__doc__)
        return 2
    hanatd = os.path.abspath(sys.argv[1])
    hanatctl = os.path.abspath(sys.argv[2]) if len(sys.argv) == 3 else os.path.join(
        os.path.dirname(hanatd), "hanatctl")
    t0 = time.monotonic()
    try:
        lab_cm = Lab(nats=1, hosts_per_zone=1, name="flush")
        lab = lab_cm.__enter__()
    except LabUnavailable as e:
        print(f"SKIPPED: {e}")
        return 77
    failures = []
    try:
        try:
            run(lab, hanatd, hanatctl, failures)
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
        print(f"FAILED: ruleset_flush, {len(failures)} check(s) in {took:.0f} s: " +
              "; ".join(failures))
        return 1
    print(f"PASSED: ruleset_flush in {took:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
