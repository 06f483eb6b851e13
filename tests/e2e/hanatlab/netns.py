# SPDX-License-Identifier: GPL-2.0-or-later
"""Low-level helpers: `ip` commands, per-thread network-namespace switching, and the
processes the lab starts (tracked by pid and start time so teardown never signals a
process that merely reused the pid)."""

import contextlib
import ctypes
import os
import signal
import subprocess
import time

CLONE_NEWNET = 0x40000000

_libc = ctypes.CDLL(None, use_errno=True)


class LabError(RuntimeError):
    """A lab operation failed; the message names the command or resource."""


def run(argv, check=True, timeout=20, input_text=None):
    """Runs a short command; returns CompletedProcess. Raises LabError naming the command."""
    try:
        cp = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                            input=input_text, stdin=None if input_text is not None else
                            subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        raise LabError(f"command timed out after {timeout}s: {' '.join(argv)}") from e
    if check and cp.returncode != 0:
        raise LabError(f"command failed ({cp.returncode}): {' '.join(argv)}: "
                       f"{cp.stderr.strip() or cp.stdout.strip()}")
    return cp


def ip(ns, *args, check=True):
    """`ip -n NS ARGS...` (NS None: the current namespace of the caller, never used for
    changes: the lab adds nothing to the root namespace)."""
    argv = ["ip"] + (["-n", ns] if ns else []) + list(args)
    return run(argv, check=check)


def netns_exists(name):
    return os.path.exists(f"/run/netns/{name}")


def netns_pids(name):
    cp = run(["ip", "netns", "pids", name], check=False)
    if cp.returncode != 0:
        return []
    return [int(p) for p in cp.stdout.split() if p.isdigit()]


@contextlib.contextmanager
def in_netns(name):
    """Runs the body with the CALLING THREAD in network namespace `name` (setns(2) acts per
    thread). Sockets created inside stay in that namespace after the block ends."""
    orig = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        target = os.open(f"/run/netns/{name}", os.O_RDONLY)
    except OSError:
        os.close(orig)
        raise LabError(f"network namespace {name} does not exist")
    try:
        if _libc.setns(target, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise LabError(f"setns({name}) failed: {os.strerror(err)}")
        try:
            yield
        finally:
            if _libc.setns(orig, CLONE_NEWNET) != 0:
                # Staying in a lab namespace would make every later socket of this thread
                # land there: fail loudly.
                raise LabError("cannot return to the original network namespace")
    finally:
        os.close(target)
        os.close(orig)


def proc_starttime(pid):
    """Start time of `pid` in clock ticks (field 22 of /proc/PID/stat), None if gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read().decode(errors="replace")
    except OSError:
        return None
    # The command name (field 2) may contain spaces and parentheses: split after the last ')'.
    rest = data[data.rfind(")") + 2:].split()
    if len(rest) < 20 or rest[0] == "Z":
        return None
    return int(rest[19])


def spawn(ns, argv, log_path, env=None):
    """Starts argv inside namespace ns (ns None: here) in its own session (so the whole
    process group can be signalled). Returns (Popen, record) where record identifies the
    process for teardown: {"pid", "start", "argv", "ns", "log"}."""
    full = (["ip", "netns", "exec", ns] if ns else []) + list(argv)
    with open(log_path, "ab") as log:
        p = subprocess.Popen(full, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                             start_new_session=True, env=env, close_fds=True)
    # `ip netns exec` execs the command in place, so p.pid is the program itself.
    rec = {"pid": p.pid, "start": proc_starttime(p.pid), "argv": list(argv), "ns": ns,
           "log": log_path}
    return p, rec


def alive(rec):
    st = proc_starttime(rec["pid"])
    return st is not None and (rec.get("start") is None or st == rec["start"])


def stop_processes(recs, term_timeout=3.0):
    """Stops several processes at once: SIGTERM to each one's process group, one bounded
    wait for all, then SIGKILL to those left; only a pid that is still the process started
    (same start time, alive()) is signalled. A lab's helpers (moto, the proxies, the fakes) each
    take a few hundred milliseconds to exit; stopping them one by one added seconds to
    every test's teardown."""
    live = [r for r in recs if alive(r)]
    for sig, wait in ((signal.SIGTERM, term_timeout), (signal.SIGKILL, 3.0)):
        for rec in live:
            try:
                os.killpg(rec["pid"], sig)
            except ProcessLookupError:
                pass
            except PermissionError:
                os.kill(rec["pid"], sig)
        deadline = time.monotonic() + wait
        while live and time.monotonic() < deadline:
            for rec in live:
                try:
                    os.waitpid(rec["pid"], os.WNOHANG)
                except ChildProcessError:
                    pass
            live = [r for r in live if alive(r)]
            if live:
                time.sleep(0.02)  # pacing of the bounded wait for the exits
        if not live:
            return


def stop_process(rec, term_timeout=3.0):
    """SIGTERM the process group of rec, then SIGKILL after term_timeout. Only signals the
    pid if it is still the process we started (same start time)."""
    stop_processes([rec], term_timeout)
