# SPDX-License-Identifier: GPL-2.0-or-later
"""Failover scenarios on the e2e lab, the same for every controller (hanatd profiles, the
keepalived baseline): used by tests/e2e/scenarios_e2e.py (generous bounds, CI) and
bench/failover/run.py (repetitions, medians, the keepalived ratio).

Each scenario runs on a lab with two NATs (nat1 in zone a, nat2 in zone b). nat1 is the
active NAT of zone a's route table; a private host of zone a (a1) streams 200 UDP packets/s
to the internet host, and the outage is the stream's longest gap. Route writes are counted
at the EC2 fault proxy every controller goes through (ReplaceRoute/CreateRoute/DeleteRoute
answered 200), route flips per table from the fabric's log (each change of a private
host's default route).

A controller has: name, start_all(), wait_ready(timeout), start(nat), stop(nat,
sig=SIGTERM) (returns once the process has exited), kill(nat); optionally stop_all().
"""

import json
import os
import signal
import statistics
import subprocess
import time

from hanatlab.lab import deadline_poll
from hanatlab.netns import LabError

ROUTE_WRITES = ("ReplaceRoute", "CreateRoute", "DeleteRoute")
LEGS = ("private", "public", "mgmt")
STREAM_HOST = "a1"


# ---------------------------------------------------------------------------------------
# hanatd as a controller

PROFILES = {
    # DESIGN.md defaults and the "fast" profile.
    "default": {"probe": {"interval": "200ms", "timeout": "200ms", "fall": 3, "rise": 5}},
    # The fast profile judges the forward path at the same pace as its probes.
    "fast": {"probe": {"interval": "50ms", "timeout": "50ms", "fall": 3, "rise": 5},
             "forward": {"interval": "50ms"}},
}


class HanatController:
    """hanatd on every NAT of the lab with one probe profile ("default", "fast", or a dict
    of config overrides)."""

    def __init__(self, lab, hanatd_path, profile="default", overrides=None):
        self.lab, self.binary = lab, hanatd_path
        if isinstance(profile, str):
            if profile not in PROFILES:
                raise ValueError(f"profile {profile!r}: one of {sorted(PROFILES)} or a dict")
            self.profile_name, ov = profile, json.loads(json.dumps(PROFILES[profile]))
        else:
            self.profile_name, ov = "custom", json.loads(json.dumps(profile))
        for sec, keys in (overrides or {}).items():
            ov.setdefault(sec, {}).update(keys)
        self.overrides = ov
        self.name = f"hanat-{self.profile_name}"
        self.procs = {}

    def _nats(self):
        return [n["name"] for n in self.lab.desc["nats"]]

    def start(self, nat):
        n = self.lab.nat(nat)["name"]
        p, _ = self.lab.start_hanatd(n, self.binary, self.overrides)
        self.procs[n] = p
        return p

    def start_all(self):
        for n in self._nats():
            self.start(n)

    def running(self, nat):
        p = self.procs.get(self.lab.nat(nat)["name"])
        return p is not None and p.poll() is None

    def _node(self, nat):
        return self.lab.hanatd_status(nat, timeout=1.0).get("node", {})

    def ready(self):
        """Every running hanatd is active and sees every other running member up."""
        names = [n for n in self._nats() if self.running(n)]
        if not names:
            return False
        ids = {self.lab.nat(n)["instance_id"] for n in names}
        for n in names:
            node = self._node(n)
            if node.get("state") != "active":
                return False
            up = {m["instance_id"] for m in node.get("members", [])
                  if m.get("self") or m.get("health") == "up"}
            if not ids <= up:
                return False
        return True

    def wait_ready(self, timeout=30.0):
        poll_until(f"{self.name} ready (active, peers up)", self.ready, timeout,
                   fail=lambda: self._dead_detail())

    def _dead_detail(self):
        dead = [n for n, p in self.procs.items() if p.poll() is not None]
        out = []
        for n in dead:
            log = os.path.join(self.lab.dir, f"hanatd-{n}.log")
            try:
                out.append(f"{n} exited: " + open(log).read()[-400:])
            except OSError:
                out.append(f"{n} exited")
        return "; ".join(out)

    def stop(self, nat, sig=signal.SIGTERM, timeout=20.0):
        """Sends sig and returns once the process has exited (its exit code)."""
        p = self.procs.get(self.lab.nat(nat)["name"])
        if p is None or p.poll() is not None:
            return None if p is None else p.returncode
        p.send_signal(sig)
        try:
            return p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            return p.wait(timeout=5)

    def kill(self, nat):
        return self.stop(nat, signal.SIGKILL, timeout=5)

    def stop_all(self):
        for n in self._nats():
            self.kill(n)

    def prepare_restart(self, nat, within_s=30):
        """What the package's postinst does before it restarts hanatd on upgrade."""
        return self.lab.hanatd_request(nat, {"cmd": "prepare-restart", "within_s": within_s})

    def route_writes(self):
        """hanatd's own count of route writes, summed over the running members."""
        total = 0
        for n in self._nats():
            if self.running(n):
                try:
                    total += self._node(n).get("counters", {}).get("route_writes", 0)
                except (OSError, LabError, ValueError):
                    pass
        return total


# ---------------------------------------------------------------------------------------
# helpers

poll_until = deadline_poll


def wait_for(fn, timeout, interval=0.02):
    """fn() until truthy or timeout; returns the value or None (no exception)."""
    end = time.monotonic() + timeout
    while True:
        try:
            v = fn()
            if v:
                return v
        except Exception:  # noqa: BLE001 - a transient failure of a status read
            pass
        if time.monotonic() >= end:
            return None
        time.sleep(interval)  # pacing of the deadline loop


def arrivals_since(stream, since_ns, source=None):
    """Packets of `stream` that reached the internet host at or after since_ns (wall clock
    ns), through `source` (a NAT's public address) when given: seen by the lab's sink, not
    reported by any controller."""
    return sum(1 for p in stream.packets()
               if p[2] >= since_ns and (source is None or p[3] == source))


def cut_links(lab, nat, up=False):
    """All legs of a NAT: the EC2 leg first, so the host cannot write a route in the moment
    it already sees its peers gone (with the 50 ms profile it would, and that is a drill
    artefact, not a failure mode); then the private and public legs at the same moment
    (a dead NAT is silent on both of the paths its peers probe: cut one after the other,
    the outage would include the tens of ms between the two nft commands)."""
    lab.set_link(nat, "mgmt", up, mode="drop")
    lab.set_links_together(nat, ("private", "public"), up)


def route_flips(lab, since_ms, until_ms=None):
    """Per private host (= per route table: one host per zone), the default-route changes
    the fabric applied in [since_ms, until_ms], and the hops in order."""
    out = {h["name"]: [] for h in lab.desc["hosts"]}
    for e in lab.fabric_events():
        if ("host" not in e or e.get("failed") or "to" not in e or e["t_ms"] < since_ms or
                (until_ms is not None and e["t_ms"] > until_ms)):
            continue
        if e.get("from") != e.get("to"):
            out.setdefault(e["host"], []).append(e.get("nat") or e.get("to"))
    return out


def is_flip_flop(flips):
    """A table whose route changed more than twice in the scenario. DESIGN.md allows, under
    a partition, a take-over and one give-back per table per hold-down window (each side
    sees the other's write and backs off); more than that is the flip-flop hold-down must
    prevent. Every scenario here is shorter than two hold-down windows (10 s, doubling)."""
    return any(len(v) > 2 for v in flips.values())


def route_write_counts(lab, since_ns, until_ns=None):
    """(writes answered 200, write attempts) seen at the EC2 proxy in the window."""
    ok = tries = 0
    for r in lab.ec2_fault_log(since_ns):
        if until_ns is not None and r["t_ns"] > until_ns:
            continue
        if r.get("action") in ROUTE_WRITES:
            tries += 1
            ok += r.get("status") == 200
    return ok, tries


def via(lab, nat):
    return lab.nat(nat)["private_address"]


# ---------------------------------------------------------------------------------------
# scenarios: each does its fault and returns once the outcome is known (or its window is
# over), with a dict of notes; run_scenario measures around it.

def failover_histogram(lab, nat):
    """(count, sum) of hanat_failover_duration_seconds in NAT `nat`'s hanatctl metrics, or
    None when hanatd does not answer."""
    try:
        text = lab.hanatd_request(nat, {"cmd": "metrics"}).get("text", "")
    except OSError:
        return None
    got = {}
    for line in text.splitlines():
        for part in ("count", "sum"):
            prefix = f"hanat_failover_duration_seconds_{part} "
            if line.startswith(prefix):
                got[part] = float(line[len(prefix):])
    return (got["count"], got["sum"]) if len(got) == 2 else None


def sc_link_cut(lab, ctl, p):
    """All links of the active NAT cut (silently: frames dropped at the switches)."""
    hist_before = failover_histogram(lab, 2) if isinstance(ctl, HanatController) else None
    cut_links(lab, 1)
    notes = {"moved": bool(wait_for(lambda: lab.default_route(STREAM_HOST) == via(lab, 2),
                                    p["window"]))}
    if hist_before is not None:
        # The takeover write's acknowledgement ends nat2's failover timing; the fabric moved
        # the route from the same write, so the observation is there or about to be.
        after = wait_for(lambda: (lambda h: h if h and h[0] > hist_before[0] else None)(
            failover_histogram(lab, 2)), 3.0)
        if after:
            notes["failover_histogram"] = {"count": after[0] - hist_before[0],
                                           "sum_s": after[1] - hist_before[1]}
        else:
            notes["failover_histogram"] = {"count": 0, "sum_s": 0.0}
    hook_dir = getattr(ctl, "hook_dir", None)
    if hook_dir:
        # The hook runs asynchronously after the transition: poll for both lines.
        log = os.path.join(hook_dir, lab.nat(2)["instance_id"] + ".log")
        nat1 = lab.nat(1)["instance_id"]

        def hook_lines():
            lines = open(log).read().splitlines() if os.path.exists(log) else []
            done = (any(x.startswith(f"event=peer state=down previous=up peer={nat1} ")
                        for x in lines)
                    and any(x.startswith("event=route state=acquired ") for x in lines))
            return lines if done else None
        notes["nat2_hook"] = wait_for(hook_lines, 5.0) or (
            open(log).read().splitlines() if os.path.exists(log) else [])
    if isinstance(ctl, HanatController):
        # What an operator reads afterwards on the surviving NAT: `hanatctl events`.
        notes["nat2_events"] = [e["message"] for e in
                                lab.hanatd_request(2, {"cmd": "events"}).get("events", [])]
    return notes


def sc_no_forward(lab, ctl, p):
    """The active NAT's kernel drops every forwarded packet; it still answers pings, its
    agent port and its own egress check."""
    lab.set_forward_drop(1, True)
    moved = bool(wait_for(lambda: lab.default_route(STREAM_HOST) == via(lab, 2), p["window"]))
    notes = {"moved": moved}
    if isinstance(ctl, HanatController):
        # What the broken NAT says of itself: its forward check saw the stall.
        self_ = ctl._node(1).get("self", {})
        notes["nat1_forward"] = self_.get("forward")
        notes["nat1_forward_detail"] = self_.get("forward_detail", "")
    return notes


def sc_sigkill(lab, ctl, p):
    """The controller on the active NAT is SIGKILLed; the host keeps forwarding."""
    ctl.kill(1)
    end = time.monotonic() + p["observe"]
    moved_at = None
    while time.monotonic() < end:
        if moved_at is None and lab.default_route(STREAM_HOST) == via(lab, 2):
            moved_at = time.monotonic()
        time.sleep(0.05)  # pacing of the watch over the observation window (the drill)
    return {"moved": moved_at is not None}


def sc_graceful(lab, ctl, p):
    """SIGTERM to the controller on the active NAT; once it has exited the host goes down
    (all links cut): a shutdown."""
    code = ctl.stop(1, signal.SIGTERM)
    cut_links(lab, 1)
    return {"exit_code": code,
            "moved": bool(wait_for(lambda: lab.default_route(STREAM_HOST) == via(lab, 2),
                                   p["window"]))}


def sc_spot(lab, ctl, p):
    """A spot interruption notice in the active NAT's IMDS; the instance terminates (all
    links cut) p["notice_s"] later, as EC2 does after its two-minute warning."""
    lab.set_imds(1, spot_instance_action={
        "action": "terminate",
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 120))})
    end = time.monotonic() + p["notice_s"]
    moved_before = False
    while time.monotonic() < end:
        moved_before = moved_before or lab.default_route(STREAM_HOST) == via(lab, 2)
        time.sleep(0.05)  # pacing of the watch over the notice period (the drill)
    cut_links(lab, 1)
    return {"moved_before_termination": moved_before,
            "moved": bool(wait_for(lambda: lab.default_route(STREAM_HOST) == via(lab, 2),
                                   p["window"]))}


def sc_restart(lab, ctl, p):
    """The controller on the active NAT is restarted the way a package upgrade or
    `systemctl restart` does it (hanatd: prepare-restart, SIGTERM, a new process). The host
    keeps its table and forwarding throughout; nothing should move."""
    notes = {}
    prepare = getattr(ctl, "prepare_restart", None)
    if prepare:
        notes["prepared"] = prepare(1).get("result")
    notes["exit_code"] = ctl.stop(1, signal.SIGTERM)
    ctl.start(1)
    ctl.wait_ready(20)
    # Settled: a restarted controller that wanted to move something would do it within a
    # probe round or two of being ready; the window is the drill, not a synchronisation.
    time.sleep(p["observe"])
    return notes


def sc_partition(lab, ctl, p):
    """nat1 and nat2 cannot reach each other; both still reach the internet and the
    private hosts."""
    lab.set_partition(1, 2, True)
    time.sleep(p["observe"])  # the scenario's observation window, not a synchronisation
    lab.set_partition(1, 2, False)
    return {}


def sc_api_unavailable(lab, ctl, p):
    """The EC2 API refuses connections for p["api_down_s"] seconds from the moment the
    active NAT's links are cut."""
    lab.ec2_fault("unavailable", duration=p["api_down_s"])
    cut_links(lab, 1)
    return {"moved": bool(wait_for(lambda: lab.default_route(STREAM_HOST) == via(lab, 2),
                                   p["api_down_s"] + p["window"]))}


def sc_flapping(lab, ctl, p):
    """The peer's (nat2's) private link flaps every p["period_s"] for p["flap_s"]; the
    stream from zone a (on nat1) must not suffer and routes must not flip-flop."""
    b = lab.start_stream("b1", rate=200)
    b.wait_received(50)
    end = time.monotonic() + p["flap_s"]
    up = True
    toggles = 0
    while time.monotonic() < end:
        up = not up
        lab.set_link(2, "private", up, mode="down")
        toggles += 1
        time.sleep(p["period_s"])  # the flap period is the drill itself
    lab.set_link(2, "private", True, mode="down")
    t_up_ns = time.time_ns()
    # Settled: zone b's traffic flows again (half a second of b1's packets arrived after the
    # link came back up for good), whichever NAT carries it. (This was a fixed 1 s sleep;
    # route flips are still counted until run_scenario has seen zone a's traffic after it.)
    b1_flowing = bool(wait_for(lambda: arrivals_since(b, t_up_ns) >= b.rate // 2, 10.0,
                               interval=0.05))
    rb = b.stop()
    return {"toggles": toggles, "b1_max_gap_ms": rb["max_gap_ms"],
            "b1_lost": rb["lost"], "b1_flowing": b1_flowing}


# name -> (function, kind, params for "ci", params for "bench")
# kind "failover": a failover is expected (outage until traffic is restored);
# kind "steady": no failover is needed (outage ~0, no flip-flop expected).
SCENARIOS = {
    "link_cut": (sc_link_cut, "failover", {"window": 15}, {"window": 15}),
    "no_forward": (sc_no_forward, "failover", {"window": 10}, {"window": 12}),
    "sigkill": (sc_sigkill, "steady", {"observe": 6}, {"observe": 8}),
    "graceful": (sc_graceful, "failover", {"window": 15}, {"window": 15}),
    # hanatd polls IMDS notices every 5 s: the termination comes 8 s after the notice
    # (EC2 gives two minutes), so every controller has seen it at least once.
    "spot": (sc_spot, "failover", {"notice_s": 8, "window": 20},
             {"notice_s": 8, "window": 20}),
    "partition": (sc_partition, "steady", {"observe": 8}, {"observe": 15}),
    "restart": (sc_restart, "steady", {"observe": 3}, {"observe": 5}),
    "api_unavailable": (sc_api_unavailable, "failover", {"api_down_s": 10, "window": 12},
                        {"api_down_s": 10, "window": 12}),
    "flapping": (sc_flapping, "steady", {"flap_s": 8, "period_s": 0.3},
                 {"flap_s": 20, "period_s": 0.3}),
}


def cleanup(lab, ctl):
    """Ends the controller (SIGKILL first: a graceful stop would hand routes over — hanatd's
    handover, keepalived's priority-0 advert that makes the peer run its notify script), then
    whatever it left running in the NAT namespaces (a notify script's AWS CLI call in flight
    would otherwise write a route after the reset), then resets the lab."""
    from hanatlab import netns
    for n in lab.desc["nats"]:
        try:
            ctl.kill(n["name"])
        except Exception:  # noqa: BLE001 - not running
            pass
    stop_all = getattr(ctl, "stop_all", None)
    if stop_all:
        stop_all()  # e.g. keepalived's: removes its masquerade stand-in
    lab_pids = {r["pid"] for r in lab.state["processes"] if netns.alive(r)}
    for n in lab.desc["nats"]:
        for pid in netns.netns_pids(n["ns"]):
            if pid not in lab_pids:
                # A descendant of a controller this lab started (ended by its pid, checked
                # by start time so a reused pid is never signalled).
                start = netns.proc_starttime(pid)
                if start is not None:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                    wait_for(lambda p=pid, s=start: netns.proc_starttime(p) != s, 2.0)
    lab.reset()


def run_scenario(lab, ctl, name, mode="ci", ready_timeout=40.0):
    """Runs one scenario with controller ctl on a lab that was reset: starts the
    controller, streams, applies the fault, measures. Returns the result dict:
    scenario, controller, outage_ms, restored, no_failover, route_writes, write_attempts,
    flips {host: [nat, ...]}, flip_flop, notes, seconds."""
    fn, kind, ci, bench = SCENARIOS[name]
    p = ci if mode == "ci" else bench
    t_start = time.monotonic()
    ctl.start_all()
    ctl.wait_ready(ready_timeout)
    stream = lab.start_stream(STREAM_HOST, rate=200)
    res = {"scenario": name, "controller": ctl.name, "kind": kind}
    try:
        stream.wait_received(100, timeout=10)
        t0_ns = time.time_ns()
        notes = fn(lab, ctl, p)
        # Traffic back: packets arriving again after the fault (bounded by the window).
        if kind == "failover":
            def flowing():
                pk = stream.packets()
                return pk and max(x[2] for x in pk) > time.time_ns() - 100_000_000
            notes["flowing"] = bool(wait_for(flowing, 3.0 if notes.get("moved") else 0.1))
        # A little traffic after the outcome, so the gap is closed: 100 ms of the stream's
        # packets arrived after this point (polled at the sink). When the failover did not
        # bring traffic back, not more than the half second this used to be a fixed sleep
        # for: the missing traffic is then the measurement (no_failover).
        t_out_ns = time.time_ns()
        expect = kind == "steady" or notes.get("flowing")
        notes["traffic_after"] = bool(wait_for(
            lambda: arrivals_since(stream, t_out_ns) >= stream.rate // 10,
            3.0 if expect else 0.5, interval=0.05))
        t1_ns = time.time_ns()
        r = stream.stop()
    finally:
        stream.stop()
    writes, tries = route_write_counts(lab, t0_ns, t1_ns)
    flips = route_flips(lab, t0_ns / 1e6, t1_ns / 1e6)
    restored = bool(r["received"]) and r["gap_end_ns"] is not None and (
        r["sources"] and r["sources"][-1]["last_ns"] >= t1_ns - 400_000_000)
    window_ms = (t1_ns - t0_ns) / 1e6
    res.update({
        "outage_ms": round(r["max_gap_ms"], 1) if restored else round(window_ms, 1),
        "max_gap_ms": r["max_gap_ms"], "restored": bool(restored),
        "no_failover": not restored,
        "lost": r["lost"], "sent": r["sent"],
        "source_before": r["source_before"], "source_after": r["source_after"],
        "route_writes": writes, "write_attempts": tries,
        "flips": flips,
        "flip_flop": is_flip_flop(flips),
        "notes": notes, "seconds": round(time.monotonic() - t_start, 2),
        "window_ms": round(window_ms, 1),
    })
    return res


def summarize(results):
    """{(scenario, controller): {n, median_ms, max_ms, no_failover, writes_median,
    writes_max, flip_flops}} over repetitions."""
    groups = {}
    for r in results:
        groups.setdefault((r["scenario"], r["controller"]), []).append(r)
    out = {}
    for k, rs in groups.items():
        ok = [r for r in rs if "error" not in r]
        outs = [r["outage_ms"] for r in ok]
        out[k] = {"n": len(ok), "errors": len(rs) - len(ok),
                  "median_ms": statistics.median(outs) if outs else None,
                  "max_ms": max(outs) if outs else None,
                  "no_failover": sum(1 for r in ok if r["no_failover"]),
                  "writes_median": statistics.median([r["route_writes"] for r in ok])
                  if ok else None,
                  "writes_max": max([r["route_writes"] for r in ok]) if ok else None,
                  "flip_flops": sum(1 for r in ok if is_flip_flop(r["flips"])),
                  "flips_max": max((max((len(v) for v in r["flips"].values()), default=0)
                                    for r in ok), default=0)}
    return out
