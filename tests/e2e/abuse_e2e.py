#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""hanatd's status socket under abuse, in the e2e lab (issue 10 item 4).

Two NATs run hanatd with a fast probe interval. While an abuser opens 1,000 concurrent
connections to NAT 1's status socket, sends oversized and malformed requests, floods
requests it never reads the replies to and dribbles requests a byte at a time, this checks
what an operator would see:

- hanatd stays up and answers a normal `status` afterwards;
- its probe schedule keeps time, measured from outside: an AF_PACKET socket in the peer's
  namespace timestamps (in the kernel, SO_TIMESTAMPNS) every ICMP echo request NAT 1 sends to
  the peer, and the jitter |dt - interval| of consecutive sends is compared with and without
  abuse;
- a failover triggered during the abuse (the peer's private link silently cut) completes
  within the no-abuse figure plus a margin.

The bounds asserted are generous (the test machine is a loaded 2-core box shared with other
builds); bench/abuse/run.py reports the real figures (p50/p99 jitter, medians over runs).

Usage: abuse_e2e.py HANATD [--interval-ms 50] [--window 8]
Exit 0 when every check passed, 1 on a failure, 77 when the lab cannot run. Also importable:
bench/abuse/run.py uses measure_phase().
"""
import argparse
import errno
import json
import os
import random
import resource
import selectors
import signal
import socket
import statistics
import struct
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, HERE)
from hanatlab import Lab, LabUnavailable, netns  # noqa: E402

SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
ETH_P_IP = 0x0800
failures = []
STOP = threading.Event()


def check(what, cond, detail=""):
    print(("ok:   " if cond else "FAIL: ") + what + ("" if cond else f" ({detail})"), flush=True)
    if not cond:
        failures.append(what)
    return cond


def poll(fn, timeout, interval=0.02):
    """fn() until truthy or the deadline; returns the last value (falsy on time-out)."""
    end = time.monotonic() + timeout
    last = None
    while time.monotonic() < end:
        try:
            last = fn()
        except Exception as e:  # noqa: BLE001 - the daemon may be starting
            last = None
            err = e  # noqa: F841
        if last:
            return last
        time.sleep(interval)  # pacing of the poll loop
    return last


# -- capture of the echo requests, from outside ------------------------------------------

class EchoCapture:
    """Kernel receive times (CLOCK_REALTIME ns, SO_TIMESTAMPNS) of the ICMP echo requests
    from `src` to `dst` arriving on `iface` in namespace `ns`. AF_PACKET sees the frame as
    the peer's interface receives it, before any socket of the peer is involved."""

    def __init__(self, ns, iface, src, dst):
        with netns.in_netns(ns):
            self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_IP))
            self.sock.bind((iface, 0))
        self.sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 21)
        self.sock.settimeout(0.1)
        self.src, self.dst = socket.inet_aton(src), socket.inet_aton(dst)
        self.times = []
        self.lock = threading.Lock()
        self.stopping = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stopping:
            try:
                data, anc, _, addr = self.sock.recvmsg(2048, socket.CMSG_SPACE(16))
            except socket.timeout:
                continue
            except OSError:
                return
            if addr[2] == socket.PACKET_OUTGOING or len(data) < 14 + 20 + 8:
                continue
            ip = data[14:]
            ihl = (ip[0] & 0x0F) * 4
            if ip[9] != 1 or ip[12:16] != self.src or ip[16:20] != self.dst or ip[ihl] != 8:
                continue
            ts = None
            for level, kind, payload in anc:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                    sec, nsec = struct.unpack("qq", payload[:16])
                    ts = sec * 1_000_000_000 + nsec
            if ts is None:
                ts = time.time_ns()
            with self.lock:
                self.times.append(ts)

    def between(self, t0_ns, t1_ns):
        with self.lock:
            return [t for t in self.times if t0_ns <= t <= t1_ns]

    def close(self):
        self.stopping = True
        self.thread.join(2)
        self.sock.close()


def cpu_seconds(pid):
    """User + system CPU seconds of process `pid` (hanatd), or None if it is not hanatd."""
    try:
        with open(f"/proc/{pid}/comm") as f:
            if not f.read().startswith("hanatd"):
                return None
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def jitter_ms(times_ns, interval_ms):
    """|dt - interval| in ms for consecutive sends."""
    return [abs((b - a) / 1e6 - interval_ms) for a, b in zip(times_ns, times_ns[1:])]


def pct(values, p):
    if not values:
        return float("nan")
    s = sorted(values)
    k = min(len(s) - 1, max(0, int(round(p / 100.0 * (len(s) - 1)))))
    return s[k]


# -- the abuser --------------------------------------------------------------------------

MALFORMED = [b"{\n", b"null\n", b"[]\n", b"{\"cmd\":\n", b"{\"cmd\":42}\n", b"{\"cmd\":\"nope\"}\n",
             b"\xff\xfe\xfd garbage\n", b"{\"cmd\":\"status\"\x00}\n", b"[" * 5000 + b"\n",
             b"{\"cmd\":\"status\",\"cmd\":\"drain\"}x\n", b"\"" * 100 + b"\n",
             b"{\"cmd\":\"" + b"A" * 4000 + b"\"}\n"]


def abuse(sock_path, seconds, conns=1000, seed=1):
    """Runs the abuse against `sock_path` for `seconds`; returns counters. Kinds by index:
    0 idle (never sends), 1 flood without reading, 2 oversized request (no newline),
    3 malformed lines (replies read and discarded), 4 a valid request dribbled a byte at a
    time. A connection the server closes is reopened, so about `conns` stay open."""
    rnd = random.Random(seed)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, conns + 256)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    sel = selectors.DefaultSelector()
    stats = {"connects": 0, "connect_refused": 0, "closed_by_server": 0, "bytes_sent": 0,
             "bytes_read": 0, "oversized": 0, "malformed": 0, "floods": 0}
    socks = {}  # fileno -> [socket, kind, progress]
    end = time.monotonic() + seconds

    def open_one(kind):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.setblocking(False)
        try:
            s.connect(sock_path)
        except OSError:
            # EAGAIN: the listen backlog is full. A unix socket, unlike TCP, does not
            # complete the connect later: count it and try again next round.
            stats["connect_refused"] += 1
            s.close()
            return
        stats["connects"] += 1
        socks[s.fileno()] = [s, kind, 0]
        sel.register(s, selectors.EVENT_READ | selectors.EVENT_WRITE)

    def close_one(fd):
        s = socks.pop(fd)[0]
        try:
            sel.unregister(s)
        except (KeyError, ValueError):
            pass
        s.close()
        stats["closed_by_server"] += 1

    dribble = b"{\"cmd\":\"status\"}\n"
    flood = b"{\"cmd\":\"status\"}\n" * 64
    oversize = b"x" * 65536
    want_open = conns
    ready = False
    while time.monotonic() < end and not STOP.is_set():
        if not ready and stats["connects"] >= conns:
            print("ready", flush=True)  # the parent starts measuring now
            ready = True
        # Keep about `conns` connections open, reopening (kind by index) what was closed.
        opened = 0
        while len(socks) < want_open and opened < 100 and time.monotonic() < end:
            open_one(len(socks) % 5)
            opened += 1
        for key, ev in sel.select(timeout=0.01):
            fd = key.fd
            if fd not in socks:
                continue
            s, kind, prog = socks[fd]
            try:
                if ev & selectors.EVENT_READ:
                    if kind == 1:
                        # Never read: only notice EOF/reset without consuming replies.
                        peek = s.recv(1, socket.MSG_PEEK)
                        if not peek:
                            close_one(fd)
                            continue
                        sel.modify(s, selectors.EVENT_WRITE)
                    else:
                        data = s.recv(65536)
                        if not data:
                            close_one(fd)
                            continue
                        stats["bytes_read"] += len(data)
                if ev & selectors.EVENT_WRITE:
                    if kind == 0:
                        sel.modify(s, selectors.EVENT_READ)  # idle: wait to be cut off
                    elif kind == 1:
                        stats["bytes_sent"] += s.send(flood)
                        stats["floods"] += 1
                    elif kind == 2:
                        stats["bytes_sent"] += s.send(oversize)
                        stats["oversized"] += 1
                    elif kind == 3:
                        line = rnd.choice(MALFORMED)
                        stats["bytes_sent"] += s.send(line)
                        stats["malformed"] += 1
                    elif kind == 4:
                        if prog < len(dribble) - 1:  # never the final newline
                            stats["bytes_sent"] += s.send(dribble[prog:prog + 1])
                            socks[fd][2] = prog + 1
                        else:
                            sel.modify(s, selectors.EVENT_READ)
            except (BlockingIOError, InterruptedError):
                pass
            except OSError as e:
                if e.errno in (errno.ECONNRESET, errno.EPIPE, errno.ENOTCONN, errno.ECONNREFUSED,
                               errno.EAGAIN, errno.EINVAL):
                    close_one(fd)
                else:
                    raise
    stats["open_at_end"] = len(socks)
    for fd in list(socks):
        socks.pop(fd)[0].close()
    return stats


def start_abuser(sock_path, seconds, conns=1000, seed=1):
    """The abuser in its own process (so it does not share the GIL with the capture)."""
    return subprocess.Popen([sys.executable, os.path.abspath(__file__), "--abuse", sock_path,
                             str(seconds), str(conns), str(seed)], stdout=subprocess.PIPE,
                            text=True)


# -- the lab scenario --------------------------------------------------------------------

def overrides(interval_ms):
    ms = f"{interval_ms}ms"
    return {"probe": {"interval": ms, "timeout": ms, "rise": 3, "fall": 3},
            "failover": {"failback_delay": "1s", "handover_timeout": "5s"},
            "ec2": {"route_refresh_interval": "2s"},
            # Room for the 1,000 concurrent clients (the default, 64, refuses the rest at
            # once, which the abuse also exercises when max_clients is reached).
            "status": {"max_clients": 1100}}


def route_target(lab, rtb):
    for t in lab.ec2().describe_route_tables(RouteTableIds=[rtb])["RouteTables"]:
        for r in t["Routes"]:
            if r.get("DestinationCidrBlock") == "0.0.0.0/0":
                return r.get("NetworkInterfaceId")
    return None


def active(lab, nat):
    return lab.hanatd_status(nat).get("node", {}).get("state") == "active"


class Scenario:
    """Two hanatd in a lab; NAT 1 is the one abused and measured."""

    def __init__(self, lab, hanatd, interval_ms):
        self.lab, self.interval_ms = lab, interval_ms
        self.p1, _ = lab.start_hanatd(1, hanatd, overrides(interval_ms))
        self.p2, _ = lab.start_hanatd(2, hanatd, overrides(interval_ms))
        self.eni = {k: lab.nat(k)["eni_id"] for k in (1, 2)}
        self.rt_b = lab.route_table("b")["id"]
        self.sock1 = os.path.join(lab.nat(1)["dir"], "hanatd.sock")
        n1, n2 = lab.nat(1), lab.nat(2)
        self.cap = EchoCapture(n2["ns"], n2["interfaces"]["private"], n1["private_address"],
                               n2["private_address"])

    def settle(self, timeout=30):
        """Both active and table b on NAT 2 (its home member)."""
        return poll(lambda: active(self.lab, 1) and active(self.lab, 2)
                    and route_target(self.lab, self.rt_b) == self.eni[2], timeout, 0.1)

    def measure_phase(self, window_s, abuse_conns=0, seed=1):
        """One phase: `window_s` of probe capture (with the abuser running when
        abuse_conns > 0), then NAT 2's private link cut and the time until EC2 routes table
        b to NAT 1, then the link restored and the failback awaited. Returns a dict."""
        out = {"abuse": abuse_conns > 0}
        ab = None
        if abuse_conns:
            ab = start_abuser(self.sock1, window_s + 30, abuse_conns, seed)
            # Measure once the abuser has opened its connections (it says "ready").
            line = ab.stdout.readline().strip()
            out["abuser_ready"] = line == "ready"
        t0 = time.time_ns()
        cpu0 = cpu_seconds(self.p1.pid)
        time.sleep(window_s)  # the measurement window itself
        cpu1 = cpu_seconds(self.p1.pid)
        t1 = time.time_ns()
        if cpu0 is not None and cpu1 is not None:
            # How hard hanatd worked meanwhile: the share of one core it used.
            out["hanatd_cpu_pct"] = round(100.0 * (cpu1 - cpu0) / ((t1 - t0) / 1e9), 1)
        sends = self.cap.between(t0, t1)
        j = jitter_ms(sends, self.interval_ms)
        out.update(sends=len(sends), expected_sends=int(window_s * 1000 / self.interval_ms),
                   jitter_p50_ms=pct(j, 50), jitter_p99_ms=pct(j, 99),
                   jitter_max_ms=max(j) if j else float("nan"),
                   # The three worst gaps: (seconds into the window, jitter ms).
                   worst=sorted(((round((sends[i + 1] - t0) / 1e9, 2), round(v, 1))
                                 for i, v in enumerate(j)), key=lambda x: -x[1])[:3])
        # hanatd's own view of the same thing: how late its probe sends left (last 1,024).
        st = poll(lambda: self.lab.hanatd_status(1), 5) or {}
        out["hanatd_send_delay_us"] = st.get("node", {}).get("self", {}).get("probe_send_delay_us")
        # Failover during the abuse: NAT 2 silently partitioned from the VPC segment.
        cut = time.monotonic()
        self.lab.set_link(2, "private", False, mode="drop")
        moved = poll(lambda: route_target(self.lab, self.rt_b) == self.eni[1], 15, 0.01)
        out["failover_ms"] = (time.monotonic() - cut) * 1000 if moved else None
        out["hanatd_alive_during"] = self.p1.poll() is None
        if ab is not None:
            ab.terminate()
            try:
                so, _ = ab.communicate(timeout=10)
                out["abuser"] = json.loads(so.strip().splitlines()[-1]) if so.strip() else {}
            except (subprocess.TimeoutExpired, ValueError):
                ab.kill()
                ab.wait()
                out["abuser"] = {}
        self.lab.set_link(2, "private", True, mode="drop")
        # NAT 2 saw its home table rewritten while it was cut off, which is what a rival
        # writing under a partition looks like: it backs off that table for a hold-down that
        # doubles with each strike (DESIGN, damping; 10 s, 20 s, 40 s... forgotten after a
        # quiet period). Repeated phases meet a longer one each time, so the failback is
        # awaited for the hold-down NAT 2 reports plus the usual margin.
        hold_ms = self.hold_down_ms(2)
        out["failback_hold_down_ms"] = hold_ms
        out["failback"] = bool(self.settle(30 + hold_ms / 1000.0))
        if not out["failback"]:
            out["failback_state"] = self.describe_state()
        return out

    def describe_state(self):
        """What an operator would look at when the failback did not come: where table b
        points and each NAT's state, its view of table b and its peers."""
        def view(nat):
            try:
                st = self.lab.hanatd_status(nat)
            except Exception as e:  # noqa: BLE001 - a dead daemon is the answer
                return {"error": str(e)}
            node = st.get("node", {})
            return {"state": node.get("state"), "reason": node.get("reason"),
                    "table_b": [t for t in st.get("tables", []) if t.get("id") == self.rt_b],
                    "members": [{k: m.get(k) for k in ("instance_id", "health", "down_for_ms")}
                                for m in st.get("members", [])]}
        return {"table_b_target": route_target(self.lab, self.rt_b), "eni": self.eni,
                "nat1": view(1), "nat2": view(2)}

    def hold_down_ms(self, nat):
        """The longest hold-down `nat` reports on any table (0 when none)."""
        st = poll(lambda: self.lab.hanatd_status(nat), 5) or {}
        return max([t.get("hold_down_ms", 0) for t in st.get("tables", [])] or [0])

    def close(self):
        self.cap.close()


def run(lab, hanatd, interval_ms, window_s):
    sc = Scenario(lab, hanatd, interval_ms)
    try:
        check("both hanatd active, table b on NAT 2", sc.settle(40))
        base = sc.measure_phase(window_s)
        print("      no abuse: " + json.dumps(base))
        abused = sc.measure_phase(window_s, abuse_conns=1000)
        print("      abuse:    " + json.dumps(abused))
        # The abuse phase measured with the abuse on: the abuser had opened its 1,000
        # connections (it says "ready") before the window began, not after or never.
        check("the abuser was ready (connections open) before the measurement window",
              abused.get("abuser_ready") is True, abused.get("abuser_ready"))
        ab = abused.get("abuser", {})
        check("the abuser held ~1,000 connections and sent every kind of abuse",
              ab.get("connects", 0) >= 1000 and ab.get("oversized", 0) > 0
              and ab.get("malformed", 0) > 0 and ab.get("floods", 0) > 0, ab)
        check("hanatd stayed up under abuse", abused["hanatd_alive_during"] and sc.p1.poll() is None,
              f"exit {sc.p1.poll()}: " + open(os.path.join(lab.dir, "hanatd-nat1.log"),
                                               errors="replace").read()[-1500:])
        st = poll(lambda: sc.lab.hanatd_status(1), 5)
        check("hanatd answers a normal status after the abuse",
              isinstance(st, dict) and st.get("ok") is True and "node" in st, st)
        # Probes kept their schedule: nearly every send captured, bounded p99 jitter.
        for name, ph in (("no abuse", base), ("abuse", abused)):
            # Generous bounds: ctest runs another test beside this one on the 2 cores (a
            # package build, say) and the abuser itself takes most of a core.
            # bench/abuse/run.py measures DESIGN's target (p99 < 5 ms) on a quiet machine.
            # 50 ms still fails the defects found here: one loop turn serving the whole
            # backlog held probes for up to 235 ms (p99 137 ms).
            share = 0.9 if name == "no abuse" else 0.5
            check(f"{name}: at least {share:.0%} of the probe sends seen",
                  ph["sends"] >= share * ph["expected_sends"], ph)
            bound = 20.0 if name == "no abuse" else 50.0
            check(f"{name}: p99 probe jitter < {bound:.0f} ms", ph["jitter_p99_ms"] < bound, ph)
            check(f"{name}: failover happened", ph["failover_ms"] is not None, ph)
            check(f"{name}: failback to NAT 2 after the link came back", ph["failback"], ph)
        sd = abused.get("hanatd_send_delay_us") or {}
        check("hanatd reports how late its probe sends left (status probe_send_delay_us)",
              sd.get("samples", 0) > 0 and 0 <= sd.get("p50", -1) <= sd.get("p99", -1)
              <= sd.get("max", -1), sd)
        if base["failover_ms"] is not None and abused["failover_ms"] is not None:
            bound = base["failover_ms"] + 500.0
            check(f"failover under abuse ({abused['failover_ms']:.0f} ms) within the no-abuse "
                  f"figure ({base['failover_ms']:.0f} ms) + 500 ms",
                  abused["failover_ms"] <= bound)
        log = open(os.path.join(lab.dir, "hanatd-nat1.log"), errors="replace").read()
        lines = log.count("\n")
        check(f"hanatd's log did not flood under abuse ({lines} lines)", lines < 500,
              log[-800:])
    finally:
        sc.close()


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--abuse":
        _, _, path, seconds, conns, seed = sys.argv
        signal.signal(signal.SIGTERM, lambda *_: STOP.set())
        print(json.dumps(abuse(path, float(seconds), int(conns), int(seed))), flush=True)
        return 0
    ap = argparse.ArgumentParser()
    ap.add_argument("hanatd")
    ap.add_argument("--interval-ms", type=int, default=50)
    ap.add_argument("--window", type=float, default=8.0)
    a = ap.parse_args()
    try:
        lab_cm = Lab(nats=2, hosts_per_zone=1, name="abuse")
        lab = lab_cm.__enter__()
    except LabUnavailable as e:
        print(f"SKIPPED: {e}")
        return 77
    try:
        run(lab, a.hanatd, a.interval_ms, a.window)
    finally:
        lab_cm.__exit__(None, None, None)
    if failures:
        print(f"FAILED: {len(failures)} check(s): " + "; ".join(failures))
        return 1
    print("PASSED: status socket under abuse")
    return 0


if __name__ == "__main__":
    sys.exit(main())
