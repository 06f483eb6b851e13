#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Soak: two hanatd in the e2e lab with a random fault every ~20 s (issue 10 item 3).

    bench/soak/run.py [MINUTES] [--seed N] [--hanatd PATH] [--every S] [--bound S]
                      [--stateful [--rate N] [--long N] [--expect-survival]]

--stateful: stateful failover with connection churn, short and long flows, and the
replica, conntrack, memory and survival checks of churn.py (issue 21).

Faults (seeded; the seed is printed so a run can be replayed): a NAT's private, public or
management link cut (carrier down or silent drop) and restored; SIGKILL of a hanatd and a
restart; EC2 API faults through the lab's fault proxy (throttling, 5xx, stalls, resets,
unavailable) when the lab has one (`lab.ec2_fault`).

Checked continuously, each a FAIL line when broken:
- no crash: both hanatd alive except the one the soak killed (until its restart);
- memory: VmRSS of each hanatd process, sampled every second; after a warm-up the growth
  (median of the last samples minus the median at the end of warm-up) stays < 1 MiB; a
  restarted process starts a new baseline;
- routes: after each fault clears, every private route table points at a healthy member
  (process alive, state active, own data plane ok, and in the NAT's namespace ip_forward 1
  and hanatd's masquerade table, as the lab sees it) within --bound seconds; at the end
  every table is back on its home member;
- route writes: the route writes EC2 answered (ReplaceRoute/CreateRoute/DeleteRoute with
  HTTP 200, counted at the lab's EC2 proxy, not by hanatd) stay within
  2 x (writes the faults require) + 4, a flip-flop detector; hanatd's own
  counters.route_writes are reported beside them.

Prints the seed and the command line that replays the run first, one line per fault and
a summary; the last line is PASSED/FAILED (a failure repeats the replay command). The same
seed gives the same faults in the same order (kind, NAT, duration, spacing); how many fit
in the minutes depends on how fast each one converges. Exit 0/1, 77 when the lab cannot
run here (not root, tools missing).
"""
import argparse
import json
import os
import random
import signal
import statistics
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))
from hanatlab import Lab, LabUnavailable  # noqa: E402
from hanatlab.lab import deadline_poll  # noqa: E402
from hanatlab.netns import LabError  # noqa: E402

MIB = 1024 * 1024
ROUTE_WRITES = ("ReplaceRoute", "CreateRoute", "DeleteRoute")
OVERRIDES = {"probe": {"interval": "100ms", "timeout": "100ms", "rise": 3, "fall": 3},
             "failover": {"failback_delay": "3s", "handover_timeout": "5s"},
             "ec2": {"route_refresh_interval": "2s"}}


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def vm_rss(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


class Member:
    """One NAT's hanatd: the current process, its RSS samples and its write counter."""

    def __init__(self, soak, k):
        self.soak, self.k = soak, k
        self.proc = None
        self.generation = 0
        self.killed = False  # killed by the soak, restart pending
        self.started = 0.0
        self.rss = []  # (t, bytes) of the current process
        self.finished = []  # per finished process: {"pid", "lived_s", "growth", ...}
        self.writes_done = 0  # route writes of processes that are gone
        self.writes_now = 0  # of the current process (last status seen)

    def start(self):
        self.generation += 1
        lab = self.soak.lab
        self.proc, _ = lab.start_hanatd(self.k, self.soak.hanatd, self.soak.overrides,
                                        name=f"hanatd-{self.k}-{self.generation}")
        self.started = time.monotonic()
        self.rss = []
        self.writes_now = 0
        self.killed = False

    def retire(self):
        self.finished.append(self.soak.rss_verdict(self))
        self.writes_done += self.writes_now
        self.writes_now = 0

    def kill(self):
        self.killed = True
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)
        self.retire()


class Soak:
    """The soak. Subclasses (churn.py: --stateful) add traffic and checks through the hooks
    (on_started, on_round, before_fault, after_fault, on_faults_done, rss_bound,
    add_summary), which do nothing here."""

    overrides = OVERRIDES

    def __init__(self, lab, hanatd, seed, minutes, every, bound, warmup):
        self.lab, self.hanatd = lab, hanatd
        self.rnd = random.Random(seed)
        self.minutes, self.every, self.bound, self.warmup = minutes, every, bound, warmup
        self.members = {k: Member(self, k) for k in (1, 2)}
        self.eni = {k: lab.nat(k)["eni_id"] for k in (1, 2)}
        self.home = {rt["id"]: rt["initial_target"] for rt in lab.desc["route_tables"]}
        self.failures = []
        self.faults = []
        self.required_writes = 0
        self.writes_base = 0
        self.t_base_ns = None  # start of the fault phase (wall clock ns)
        self.rounds = 0  # monitor rounds completed
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.has_ec2_fault = hasattr(lab, "ec2_fault")
        self.ec2 = lab.ec2()  # direct to moto, not through the fault proxy

    def fail(self, what):
        with self.lock:
            self.failures.append(what)
        log("FAIL: " + what)

    # -- observation ----------------------------------------------------------------------

    def status(self, k):
        try:
            return self.lab.hanatd_status(k, timeout=2.0)
        except Exception:  # noqa: BLE001 - restarting, or busy: no status this time
            return None

    def monitor(self):
        """Every second: liveness, RSS, write counters."""
        while not self.stop.wait(1.0):
            for k, m in self.members.items():
                with self.lock:
                    if m.killed or m.proc is None:
                        continue
                    rc = m.proc.poll()
                    if rc is not None:
                        m.killed = True  # do not report it twice
                        self.failures.append(f"hanatd {k} died (exit {rc})")
                        log(f"FAIL: hanatd {k} died on its own (exit {rc}); log tail:\n"
                            + self.tail(k, m))
                        continue
                    r = vm_rss(m.proc.pid)
                    if r is not None:
                        m.rss.append((time.monotonic(), r))
                st = self.status(k)
                if st:
                    w = st.get("node", {}).get("counters", {}).get("route_writes")
                    if isinstance(w, int):
                        with self.lock:
                            m.writes_now = max(m.writes_now, w)
            self.on_round()
            with self.lock:
                self.rounds += 1

    # -- hooks (see the class comment) ------------------------------------------------------

    def on_started(self):
        """Start-up converged; the faults begin next."""

    def on_round(self):
        """Once per monitor round (about a second), on the monitor thread."""

    def before_fault(self, kind, k):
        """Just before fault `kind` on NAT `k` is applied."""

    def fault_cleared(self, kind, k):
        """Fault `kind` on NAT `k` has just been undone (links up, hanatd restarted)."""

    def after_fault(self, rec):
        """A fault cleared and its next one is due (rec: the fault's record)."""

    def on_faults_done(self):
        """The last fault converged; before the final convergence check."""

    def rss_bound(self, r):
        """The allowed RSS growth of one finished process (r: rss_verdict's dict)."""
        return MIB

    def add_summary(self, s):
        """Adds to the summary dict, and calls fail() for whatever the checks found."""

    def tail(self, k, m):
        path = os.path.join(self.lab.dir, f"hanatd-{k}-{m.generation}.log")
        try:
            return "".join(open(path, errors="replace").readlines()[-15:])
        except OSError:
            return "(no log)"

    def rss_verdict(self, m):
        """Growth of one process after warm-up: median of the last 5 samples minus the
        median of the 5 samples after warm-up (None when it did not live long enough)."""
        s = list(m.rss)
        out = {"nat": m.k, "generation": m.generation,
               "lived_s": round(time.monotonic() - m.started, 1)}
        after = [r for t, r in s if t - m.started >= self.warmup]
        if len(after) < 20:
            out["growth"] = None
            return out
        base = statistics.median(after[:5])
        end = statistics.median(after[-5:])
        out.update(baseline_kib=base // 1024, end_kib=end // 1024,
                   max_kib=max(after) // 1024, growth=end - base)
        return out

    def routes(self):
        out = {}
        for t in self.ec2.describe_route_tables(RouteTableIds=list(self.home))["RouteTables"]:
            for r in t["Routes"]:
                if r.get("DestinationCidrBlock") == "0.0.0.0/0":
                    out[t["RouteTableId"]] = r.get("NetworkInterfaceId")
        return out

    def data_plane(self, k):
        """What the lab sees in NAT k's namespace itself, not hanatd's word: ip_forward on
        and hanatd's masquerade table in the kernel."""
        ns = self.lab.nat(k)["ns"]
        fwd = self.lab.exec(ns, ["cat", "/proc/sys/net/ipv4/ip_forward"], check=False)
        rules = self.lab.exec(ns, ["nft", "list", "ruleset"], check=False)
        return (fwd.stdout.strip() == "1" and " hanat {" in rules.stdout
                and "masquerade" in rules.stdout)

    def healthy(self):
        """ENIs of the members that are alive, active and whose own data plane is ok, by
        their status and as the lab sees their namespace (data_plane)."""
        out = set()
        for k, m in self.members.items():
            if m.killed or m.proc is None or m.proc.poll() is not None:
                continue
            st = self.status(k) or {}
            node = st.get("node", {})
            if node.get("state") == "active" and node.get("self", {}).get("nat_ok", True) \
                    and node.get("self", {}).get("egress", "ok") in ("ok", "up", "healthy") \
                    and self.data_plane(k):
                out.add(self.eni[k])
        return out

    def wait_converged(self, want_home=False, bound=None):
        """Seconds until every table is on a healthy member (or its home member), or None."""
        t0 = time.monotonic()
        end = t0 + (bound or self.bound)
        last = None
        while time.monotonic() < end:
            try:
                r, h = self.routes(), self.healthy()
                last = (r, sorted(h))
                ok = all(v == self.home[t] for t, v in r.items()) if want_home else \
                    all(v in h for v in r.values())
                if ok and len(r) == len(self.home) and (not want_home or len(h) == 2):
                    return time.monotonic() - t0
            except Exception as e:  # noqa: BLE001 - API under a fault: try again
                last = repr(e)
            time.sleep(0.2)
        log(f"      not converged: {last}")
        return None

    # -- faults -----------------------------------------------------------------------------

    def owner_of_tables(self, k):
        try:
            return sum(1 for v in self.routes().values() if v == self.eni[k])
        except Exception:  # noqa: BLE001
            return 1

    def pick(self):
        kinds = ["cut-private-drop", "cut-private-down", "cut-public-drop", "cut-mgmt-drop",
                 "kill"]
        if self.has_ec2_fault:
            kinds += ["ec2-throttle", "ec2-5xx", "ec2-stall", "ec2-reset", "ec2-unavailable"]
        return self.rnd.choice(kinds), self.rnd.choice((1, 2)), self.rnd.uniform(3.0, 8.0)

    def inject(self, kind, k, dur):
        """Applies a fault, waits `dur`, clears it. Returns the writes it requires."""
        owned = self.owner_of_tables(k)
        if kind.startswith("cut-"):
            _, leg, mode = kind.split("-")
            self.lab.set_link(k, leg, False, mode=mode)
            time.sleep(dur)  # the fault's duration, not synchronisation
            self.lab.set_link(k, leg, True, mode=mode)
            # Cut private or public: the tables move away and come back (failback).
            return 2 * owned if leg in ("private", "public") else 0
        if kind == "kill":
            with self.lock:
                self.members[k].kill()
            time.sleep(dur)  # the fault's duration (hanatd down), not synchronisation
            with self.lock:
                self.members[k].start()
            return 2 * owned
        mode = kind[len("ec2-"):]
        self.lab.ec2_fault(mode=mode, duration=None)
        time.sleep(dur)  # the fault's duration, not synchronisation
        self.lab.ec2_fault(mode=None)
        return 0

    # -- the run ----------------------------------------------------------------------------

    def writes(self):
        """hanatd's own count of its route writes (every process, summed)."""
        with self.lock:
            return sum(m.writes_done + m.writes_now for m in self.members.values())

    def ec2_writes(self, since_ns, until_ns=None):
        """Route writes EC2 answered 200 in [since_ns, until_ns], as the lab's EC2 proxy
        logged them (evidence from outside hanatd)."""
        return sum(1 for r in self.lab.ec2_fault_log(since_ns)
                   if r.get("action") in ROUTE_WRITES and r.get("status") == 200
                   and (until_ns is None or r["t_ns"] <= until_ns))

    def monitor_round(self, timeout=10.0):
        """Returns once the monitor has done a whole round after this call (liveness, RSS
        and counters sampled after now), or raises LabError after `timeout` s."""
        with self.lock:
            want = self.rounds + 2  # the round under way may have begun before the call
        deadline_poll("a monitor round", lambda: self.rounds >= want, timeout, interval=0.05)

    def run(self):
        for m in self.members.values():
            m.start()
        mon = threading.Thread(target=self.monitor, daemon=True)
        mon.start()
        t = self.wait_converged(want_home=True, bound=60)
        if t is None:
            self.fail("start-up: tables not on their home members within 60 s")
            return
        # Start-up claims are not faults' writes: count from here.
        self.writes_base = self.writes()
        self.t_base_ns = time.time_ns()
        log(f"start-up converged in {t:.1f}s; soaking {self.minutes} min, a fault every "
            f"~{self.every:.0f}s")
        self.on_started()
        end = time.monotonic() + self.minutes * 60
        n = 0
        while time.monotonic() + self.every / 2 < end and len(self.failures) < 10:
            nxt = time.monotonic() + self.rnd.uniform(0.75, 1.25) * self.every
            kind, k, dur = self.pick()
            n += 1
            w0, t_fault_ns = self.writes(), time.time_ns()
            log(f"fault {n}: {kind} on NAT {k} for {dur:.1f}s")
            self.before_fault(kind, k)
            req = self.inject(kind, k, dur)
            self.fault_cleared(kind, k)
            self.required_writes += req
            conv = self.wait_converged()
            rec = {"n": n, "kind": kind, "nat": k, "duration_s": round(dur, 1),
                   "converged_s": None if conv is None else round(conv, 2),
                   "required_writes": req}
            # (A check that began before the bound and ended after it counts as late.)
            if conv is None or conv > self.bound:
                self.fail(f"fault {n} ({kind} NAT {k}): tables not on a healthy member "
                          f"{self.bound:g}s after it cleared")
            # The fault schedule: the next fault starts at its drawn time (the pacing of
            # the drill, not synchronisation; the writes are read from the EC2 proxy's log).
            while time.monotonic() < nxt and not self.stop.is_set():
                time.sleep(0.2)
            rec["writes"] = self.ec2_writes(t_fault_ns)
            rec["hanatd_writes"] = self.writes() - w0
            self.after_fault(rec)
            self.faults.append(rec)
            log(f"      converged in {rec['converged_s']}s, writes {rec['writes']} at EC2, "
                f"{rec['hanatd_writes']} by hanatd's count (required {req})")
        self.on_faults_done()
        t = self.wait_converged(want_home=True, bound=max(30.0, self.bound))
        if t is None:
            self.fail("end: tables not back on their home members")
        # One more monitor round for the final counters and RSS.
        try:
            self.monitor_round()
        except LabError as e:
            self.fail(f"end: {e} (the monitor thread is stuck)")
        self.stop.set()
        mon.join(5)
        with self.lock:
            for m in self.members.values():
                if not m.killed:
                    m.retire()

    def summary(self):
        total_writes = self.ec2_writes(self.t_base_ns) if self.t_base_ns else 0
        hanatd_writes = self.writes() - self.writes_base
        bound = 2 * self.required_writes + 4
        if total_writes > bound:
            self.fail(f"route writes at EC2 {total_writes} > bound {bound} "
                      f"(2 x {self.required_writes} required + 4; hanatd counted "
                      f"{hanatd_writes})")
        rss = [f for m in self.members.values() for f in m.finished]
        for r in rss:
            if r.get("growth") is not None and r["growth"] >= self.rss_bound(r):
                self.fail(f"NAT {r['nat']} process {r['generation']}: RSS grew "
                          f"{r['growth'] / 1024:.0f} KiB after warm-up (bound "
                          f"{self.rss_bound(r) / 1024:.0f} KiB)")
        conv = [f["converged_s"] for f in self.faults if f["converged_s"] is not None]
        kinds = {}
        for f in self.faults:
            kinds[f["kind"]] = kinds.get(f["kind"], 0) + 1
        out = {"faults": len(self.faults), "by_kind": kinds,
                "converged_s_max": max(conv) if conv else None,
                "converged_s_median": statistics.median(conv) if conv else None,
                "route_writes": total_writes, "hanatd_route_writes": hanatd_writes,
                "required_writes": self.required_writes,
                "write_bound": bound, "rss": rss, "ec2_faults": self.has_ec2_fault}
        self.add_summary(out)
        return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("minutes", nargs="?", type=float, default=3.0)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--hanatd", default=os.path.join(ROOT, "build", "bin", "hanatd"))
    ap.add_argument("--every", type=float, default=20.0, help="mean seconds between faults")
    ap.add_argument("--bound", type=float, default=15.0,
                    help="seconds after a fault clears for every table to be on a healthy member")
    ap.add_argument("--warmup", type=float, default=30.0, help="RSS warm-up per process, s")
    ap.add_argument("--stateful", action="store_true",
                    help="stateful failover with short and long flows (churn.py)")
    ap.add_argument("--rate", type=float, default=100.0,
                    help="--stateful: short flows per second, all hosts together")
    ap.add_argument("--long", type=int, default=200, help="--stateful: long flows")
    ap.add_argument("--expect-survival", action="store_true",
                    help="--stateful: assert the 95 %% survival floor of long flows through "
                         "a cut (same as HANAT_EXPECT_SURVIVAL=1)")
    a = ap.parse_args()
    if a.expect_survival:
        os.environ["HANAT_EXPECT_SURVIVAL"] = "1"
    seed = a.seed if a.seed is not None else random.SystemRandom().randrange(1 << 31)
    replay = (f"{sys.argv[0]} {a.minutes:g} --seed {seed} --every {a.every:g} "
              f"--bound {a.bound:g} --warmup {a.warmup:g} --hanatd {a.hanatd}" +
              (f" --stateful --rate {a.rate:g} --long {a.long}" if a.stateful else "") +
              (" --expect-survival" if a.expect_survival else ""))
    log(f"soak: seed {seed}, {a.minutes} min, hanatd {a.hanatd}")
    log(f"replay: {replay}")
    if not os.access(a.hanatd, os.X_OK):
        print(f"FAILED: {a.hanatd} is not an executable (build it first)")
        return 1
    try:
        lab_cm = Lab(nats=2, hosts_per_zone=1, name="soak")
        lab = lab_cm.__enter__()
    except LabUnavailable as e:
        print(f"SKIPPED: {e}")
        return 77
    soak = None
    s = None
    try:
        if a.stateful:
            import churn
            churn.prepare(lab)
            soak = churn.ChurnSoak(lab, a.hanatd, seed, a.minutes, a.every, a.bound,
                                   a.warmup, rate=a.rate, long=a.long)
        else:
            soak = Soak(lab, a.hanatd, seed, a.minutes, a.every, a.bound, a.warmup)
        if not soak.has_ec2_fault:
            log("note: this lab has no EC2 fault proxy (lab.ec2_fault): EC2 faults skipped")
        soak.run()
        s = soak.summary()
    finally:
        if soak is not None:
            soak.stop.set()
            if a.stateful:
                churn.stop_traffic(soak)
        lab_cm.__exit__(None, None, None)
        if s is None:
            print(f"FAILED: the soak stopped on an error; replay with: {replay}", flush=True)
    print(json.dumps(s, indent=1))
    print(f"seed {seed}: {s['faults']} faults, max convergence {s['converged_s_max']} s, "
          f"route writes {s['route_writes']} at EC2, {s['hanatd_route_writes']} by hanatd "
          f"(bound {s['write_bound']})")
    if soak.failures:
        print(f"FAILED: {len(soak.failures)}: " + "; ".join(soak.failures[:10]) +
              f" -- replay with: {replay}")
        return 1
    print("PASSED: soak")
    return 0


if __name__ == "__main__":
    sys.exit(main())
