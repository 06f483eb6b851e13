# SPDX-License-Identifier: GPL-2.0-or-later
"""Long-lived TCP connections through the NATs, and what happens to each of them
(issue 20: a planned handover must keep every established connection; issue 21: a failover
with state should keep ≥ 99 %).

- Server (run in the internet namespace): an echo server on ADDRESS:0. The first message
  of a connection is a hello naming the run and the connection's index; the server answers
  it with the peer address and port it sees (i.e. after NAT) and logs one JSON line per
  connection event (`hello` with the peer, `closed` with how: eof, reset, error). Every
  later byte is echoed back unchanged.
- Client (run in a private host's namespace): opens N connections (one process, one
  selector loop, no thread per connection), sends a 16-byte message on each every
  `interval` (50 ms), staggered over the interval, and checks that every echo comes back
  in order and unchanged. Per connection it records: the outcome (`survived`, `reset` — an
  RST, an error or an unexpected close —, `stalled` — open but its oldest message
  unanswered for longer than `stall_limit` at the end —, or `connect_failed`), the longest
  wait for an echo (`max_echo_ms`: from a send to its echo, or to the reset or end while
  unanswered), the longest time without progress (`max_silence_ms`: between consecutive
  echoes; the send interval is its floor), the address the server saw (`seen_as`) and the
  local address. SIGTERM/SIGINT or `--duration` end the run: sending stops, outstanding
  echoes are awaited briefly, every connection is closed with a FIN, and a JSON report and
  a one-line summary are written.

    python3 -m hanatlab.conns serve --address A --ready F --log F
    python3 -m hanatlab.conns client --dst A --port P --count 200 --ready F --report F
                                     [--interval-ms 50] [--duration S] [--run ID]
    python3 -m hanatlab.conns summary REPORT...   (one line for one or more reports)

The accounting (ConnStats, summarize) is pure and unit-tested in test_hanatlab.py.
"""

import argparse
import collections
import errno
import json
import os
import selectors
import signal
import socket
import struct
import sys
import time

# A data message: magic, sequence number, send time (monotonic ns). Echoed unchanged.
MSG = struct.Struct("!4sIQ")
MAGIC = b"HCON"
# The hello: magic, run id, connection index, padding. Answered with HELLO_REPLY.
HELLO = struct.Struct("!4sII4x")
HELLO_MAGIC = b"HHEL"
# The hello's answer: magic, the peer's IPv4 address and port as the server sees them.
HELLO_REPLY = struct.Struct("!4s4sH6x")
REPLY_MAGIC = b"HSAW"
assert MSG.size == HELLO.size == HELLO_REPLY.size == 16

OUTCOMES = ("survived", "reset", "stalled", "connect_failed")


class ConnStats:
    """What one connection went through. Pure: every method takes the time (monotonic ns)
    from the caller, so the accounting can be driven by a fake clock."""

    def __init__(self, index):
        self.index = index
        self.outstanding = collections.deque()  # (seq, sent_ns)
        self.sent = 0
        self.echoed = 0
        self.max_echo_ns = 0
        self.max_silence_ns = 0
        self.last_progress_ns = None  # the last echo (or the first send)
        self.established_ns = None
        self.ended_ns = None
        self.outcome = None  # set by reset() or finish()
        self.error = None
        self.seen_as = None
        self.local = None
        self.first_send_wall_ns = None
        self.reset_wall_ns = None

    def on_established(self, now, seen_as=None):
        self.established_ns = now
        self.seen_as = seen_as

    def on_send(self, seq, now):
        self.sent += 1
        self.outstanding.append((seq, now))
        if self.last_progress_ns is None:
            self.last_progress_ns = now

    def on_echo(self, seq, now):
        """An echo arrived; returns an error string when it is not the one expected."""
        if not self.outstanding:
            return f"echo of message {seq} that was never sent"
        want, sent = self.outstanding[0]
        if seq != want:
            return f"echo of message {seq} where {want} was expected"
        self.outstanding.popleft()
        self.echoed += 1
        self.max_echo_ns = max(self.max_echo_ns, now - sent)
        if self.last_progress_ns is not None:
            self.max_silence_ns = max(self.max_silence_ns, now - self.last_progress_ns)
        self.last_progress_ns = now
        return None

    def _close_gaps(self, now):
        # A message still unanswered waited from its send until now; the silence too.
        if self.outstanding:
            self.max_echo_ns = max(self.max_echo_ns, now - self.outstanding[0][1])
            if self.last_progress_ns is not None:
                self.max_silence_ns = max(self.max_silence_ns, now - self.last_progress_ns)

    def on_reset(self, now, error, wall_ns=None):
        """The connection ended by an RST, an error, or a close the client did not ask for."""
        if self.outcome is not None:
            return
        self._close_gaps(now)
        self.outcome = "reset" if self.established_ns is not None else "connect_failed"
        self.error = error
        self.ended_ns = now
        self.reset_wall_ns = wall_ns

    def finish(self, now, stall_limit_ns):
        """The run ended with the connection still open: survived, or stalled when its
        oldest unanswered message is older than stall_limit_ns."""
        if self.outcome is not None:
            return
        self._close_gaps(now)
        self.ended_ns = now
        if self.established_ns is None:
            self.outcome = "connect_failed"
            self.error = self.error or "not established when the run ended"
        elif self.outstanding and now - self.outstanding[0][1] > stall_limit_ns:
            self.outcome = "stalled"
        else:
            self.outcome = "survived"

    def report(self):
        return {"index": self.index, "outcome": self.outcome, "error": self.error,
                "sent": self.sent, "echoed": self.echoed,
                "unanswered": len(self.outstanding),
                "max_echo_ms": round(self.max_echo_ns / 1e6, 3),
                "max_silence_ms": round(self.max_silence_ns / 1e6, 3),
                "seen_as": self.seen_as, "local": self.local,
                "reset_wall_ns": self.reset_wall_ns}


def summarize(conns, stall_ms=100.0):
    """Totals over per-connection reports (ConnStats.report() dicts, from one or more
    clients): count, each outcome, the longest echo wait and silence, how many waited
    longer than stall_ms for an echo, and the addresses the server saw (ip -> count)."""
    out = {"count": len(conns)}
    for o in OUTCOMES:
        out[o] = sum(1 for c in conns if c["outcome"] == o)
    out["max_echo_ms"] = max((c["max_echo_ms"] for c in conns), default=None)
    out["max_silence_ms"] = max((c["max_silence_ms"] for c in conns), default=None)
    out["stall_ms"] = stall_ms
    out["over_stall"] = sum(1 for c in conns if c["max_echo_ms"] > stall_ms)
    seen = {}
    for c in conns:
        if c.get("seen_as"):
            seen[c["seen_as"][0]] = seen.get(c["seen_as"][0], 0) + 1
    out["seen_as"] = seen
    resets = sorted(c["reset_wall_ns"] for c in conns if c.get("reset_wall_ns"))
    out["first_reset_wall_ns"] = resets[0] if resets else None
    out["last_reset_wall_ns"] = resets[-1] if resets else None
    errors = {}
    for c in conns:
        if c.get("error"):
            errors[c["error"]] = errors.get(c["error"], 0) + 1
    out["errors"] = errors
    return out


def summary_line(s):
    """One human line from summarize()'s dict."""
    seen = ", ".join(f"{ip} x{n}" for ip, n in sorted(s["seen_as"].items())) or "-"
    echo = "-" if s["max_echo_ms"] is None else f"{s['max_echo_ms']:.0f} ms"
    return (f"{s['count']} connections: {s['survived']} survived, {s['reset']} reset, "
            f"{s['stalled']} stalled, {s['connect_failed']} not connected; longest echo wait "
            f"{echo}, {s['over_stall']} over {s['stall_ms']:g} ms; server saw {seen}")


# ---------------------------------------------------------------------------------------
# server

class Server:
    """The echo server: one listening socket, one selector. `plant` is for tests:
    {index: ("reset", after_s) | ("stall", after_s, for_s)} makes the server send an RST on
    that connection, or hold its echoes, after_s seconds after its hello."""

    def __init__(self, address, log, plant=None):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((address, 0))
        self.sock.listen(1024)
        self.sock.setblocking(False)
        self.port = self.sock.getsockname()[1]
        self.log = log
        self.plant = plant or {}
        self.sel = selectors.DefaultSelector()
        self.sel.register(self.sock, selectors.EVENT_READ, None)
        self.conns = {}  # socket -> state dict

    def _log(self, **kw):
        if self.log is not None:
            self.log.write(json.dumps(dict(t_ns=time.time_ns(), **kw)) + "\n")

    def _close(self, s, how, rst=False):
        st = self.conns.pop(s)
        self._log(event="closed", run=st["run"], index=st["index"], peer=st["peer"], how=how,
                  bytes=st["bytes"])
        self.sel.unregister(s)
        if rst:
            # SO_LINGER with a zero timeout: close() sends an RST instead of a FIN.
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()

    def step(self, timeout):
        now = time.monotonic()
        for s, st in list(self.conns.items()):
            p = self.plant.get(st["index"]) if st["hello_at"] is not None else None
            if p and p[0] == "reset" and now >= st["hello_at"] + p[1]:
                self._close(s, "planted reset", rst=True)
        for key, _ in self.sel.select(timeout):
            if key.fileobj is self.sock:
                for _ in range(64):  # bounded accept burst per wake-up
                    try:
                        c, peer = self.sock.accept()
                    except BlockingIOError:
                        break
                    c.setblocking(False)
                    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    self.conns[c] = {"peer": list(peer), "buf": b"", "out": b"",
                                     "run": None, "index": None, "hello_at": None,
                                     "bytes": 0}
                    self.sel.register(c, selectors.EVENT_READ, None)
                continue
            self._readable(key.fileobj)
        for s, st in list(self.conns.items()):
            if st["out"]:
                self._flush(s, st)

    def _readable(self, s):
        st = self.conns.get(s)
        if st is None:
            return
        try:
            data = s.recv(65536)
        except ConnectionResetError:
            self._close(s, "reset")
            return
        except OSError as e:
            self._close(s, f"error: {e.strerror}")
            return
        if not data:
            self._close(s, "eof")
            return
        st["bytes"] += len(data)
        if st["hello_at"] is None:
            st["buf"] += data
            if len(st["buf"]) < HELLO.size:
                return
            magic, run, index = HELLO.unpack_from(st["buf"])
            if magic != HELLO_MAGIC:
                self._close(s, "bad hello")
                return
            st.update(run=run, index=index, hello_at=time.monotonic())
            self._log(event="hello", run=run, index=index, peer=st["peer"])
            st["out"] += HELLO_REPLY.pack(REPLY_MAGIC, socket.inet_aton(st["peer"][0]),
                                          st["peer"][1])
            data, st["buf"] = st["buf"][HELLO.size:], b""
        st["out"] += data

    def _flush(self, s, st):
        p = self.plant.get(st["index"])
        if p and p[0] == "stall":
            now = time.monotonic()
            if st["hello_at"] + p[1] <= now < st["hello_at"] + p[1] + p[2]:
                return  # the planted stall: echoes held back
        try:
            n = s.send(st["out"])
            st["out"] = st["out"][n:]
        except BlockingIOError:
            pass
        except OSError as e:
            self._close(s, f"error: {e.strerror}")

    def close(self):
        for s in list(self.conns):
            self._close(s, "server stopped")
        self.sel.unregister(self.sock)
        self.sock.close()
        self.sel.close()


def serve_main(a):
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    with open(a.log, "a", buffering=1) as log:
        srv = Server(a.address, log)
        tmp = a.ready + ".tmp"
        with open(tmp, "w") as f:
            json.dump({"port": srv.port, "pid": os.getpid()}, f)
        os.replace(tmp, a.ready)
        while not stop:
            srv.step(0.02)
        srv.close()
    return 0


def read_server_log(path, run=None):
    """The server's log as a list of dicts (a torn last line skipped), of one run."""
    out = []
    try:
        with open(path) as f:
            for line in f:
                try:
                    e = json.loads(line)
                except ValueError:
                    continue
                if run is None or e.get("run") == run:
                    out.append(e)
    except FileNotFoundError:
        pass
    return out


# ---------------------------------------------------------------------------------------
# client

class Client:
    """N connections from this namespace to dst:port; see the module docstring."""

    def __init__(self, dst, port, count, interval_s=0.05, run=0, stall_limit_s=1.0,
                 bind=None, sport_base=None):
        self.dst, self.port, self.count, self.run = dst, port, count, run
        # Connection i from source port sport_base + i (None: the kernel's choice). Two
        # hosts with the same base collide pairwise at a NAT, which must then remap one of
        # each pair to another public port.
        self.sport_base = sport_base
        self.interval_ns = int(interval_s * 1e9)
        self.stall_limit_ns = int(stall_limit_s * 1e9)
        self.bind = bind
        self.sel = selectors.DefaultSelector()
        self.stats = [ConnStats(i) for i in range(count)]
        self.socks = {}  # index -> socket
        self.state = {}  # index -> {"phase", "buf", "next_ns", "seq"}
        self.started_ns = time.monotonic_ns()
        self.sending = True

    def open_all(self):
        for i in range(self.count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.bind or self.sport_base:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind((self.bind or "0.0.0.0",
                        0 if self.sport_base is None else self.sport_base + i))
            err = s.connect_ex((self.dst, self.port))
            if err not in (0, errno.EINPROGRESS):
                self.stats[i].on_reset(time.monotonic_ns(), os.strerror(err), time.time_ns())
                s.close()
                continue
            self.socks[i] = s
            # Sends staggered over one interval, so 200 connections are not 200 bursts.
            self.state[i] = {"phase": "connecting", "buf": b"", "seq": 0,
                             "next_ns": None, "offset": self.interval_ns * i // self.count}
            self.sel.register(s, selectors.EVENT_WRITE, i)

    def established(self):
        return sum(1 for st in self.stats if st.established_ns is not None)

    def alive(self):
        return len(self.socks)

    def pending(self):
        """Connections still connecting or waiting for the hello's answer."""
        return sum(1 for i in self.socks if self.state[i]["phase"] != "running")

    def _fail(self, i, error):
        s = self.socks.pop(i, None)
        if s is None:
            return
        self.stats[i].on_reset(time.monotonic_ns(), error, time.time_ns())
        self.sel.unregister(s)
        s.close()

    def _on_event(self, i, mask):
        s = self.socks.get(i)
        if s is None:
            return
        st = self.state[i]
        if st["phase"] == "connecting":
            err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                self._fail(i, os.strerror(err))
                return
            self.stats[i].local = list(s.getsockname())
            try:
                s.send(HELLO.pack(HELLO_MAGIC, self.run, i))
            except OSError as e:
                self._fail(i, e.strerror or str(e))
                return
            st["phase"] = "hello"
            self.sel.modify(s, selectors.EVENT_READ, i)
            return
        try:
            data = s.recv(65536)
        except BlockingIOError:
            return
        except OSError as e:
            # ECONNRESET: an RST (from the server, or from whatever answered for it).
            self._fail(i, e.strerror or str(e))
            return
        if not data:
            self._fail(i, "closed by the server (EOF)")
            return
        st["buf"] += data
        now = time.monotonic_ns()
        if st["phase"] == "hello":
            if len(st["buf"]) < HELLO_REPLY.size:
                return
            magic, addr, port = HELLO_REPLY.unpack_from(st["buf"])
            if magic != REPLY_MAGIC:
                self._fail(i, "bad hello reply")
                return
            st["buf"] = st["buf"][HELLO_REPLY.size:]
            self.stats[i].on_established(now, [socket.inet_ntoa(addr), port])
            st["phase"] = "running"
            st["next_ns"] = max(now, self.started_ns + st["offset"])
        while len(st["buf"]) >= MSG.size:
            magic, seq, _ = MSG.unpack_from(st["buf"])
            st["buf"] = st["buf"][MSG.size:]
            err = ("echo corrupted (bad magic)" if magic != MAGIC else
                   self.stats[i].on_echo(seq, now))
            if err:
                self._fail(i, err)
                return

    def _send_due(self, now):
        """Sends every due message; returns the next due time."""
        nxt = None
        for i, s in list(self.socks.items()):
            st = self.state[i]
            if st["phase"] != "running":
                continue
            if st["next_ns"] <= now:
                seq = st["seq"]
                try:
                    # 16 bytes into an empty (or nearly) send buffer: never partial here.
                    s.send(MSG.pack(MAGIC, seq, now))
                except BlockingIOError:
                    pass  # the buffer is full: the peer is not reading; a stall, not a reset
                except OSError as e:
                    self._fail(i, e.strerror or str(e))
                    continue
                else:
                    st["seq"] += 1
                    self.stats[i].on_send(seq, now)
                    if self.stats[i].first_send_wall_ns is None:
                        self.stats[i].first_send_wall_ns = time.time_ns()
                # The next send one interval later; after a long pause, no catch-up burst.
                st["next_ns"] = max(st["next_ns"] + self.interval_ns, now)
            nxt = st["next_ns"] if nxt is None else min(nxt, st["next_ns"])
        return nxt

    def step(self, max_wait_s=0.05):
        now = time.monotonic_ns()
        nxt = self._send_due(now) if self.sending else None
        wait = max_wait_s if nxt is None else max(0.0, min(max_wait_s, (nxt - now) / 1e9))
        for key, mask in self.sel.select(wait):
            self._on_event(key.data, mask)

    def stop(self, linger_s=0.5):
        """Stops sending, waits up to linger_s for outstanding echoes, decides each
        connection's outcome, then closes them all (FIN) and waits briefly for the server's
        close. Returns the per-connection reports."""
        self.sending = False
        end = time.monotonic() + linger_s
        while time.monotonic() < end and any(
                self.stats[i].outstanding for i in self.socks):
            self.step(0.02)
        now = time.monotonic_ns()
        for st in self.stats:
            st.finish(now, self.stall_limit_ns)
        for s in self.socks.values():
            try:
                s.shutdown(socket.SHUT_WR)
            except OSError:
                pass
        # The server closes on our FIN; a bounded wait for its EOF keeps the close orderly.
        end = time.monotonic() + linger_s
        pending = dict(self.socks)
        while pending and time.monotonic() < end:
            for key, _ in self.sel.select(0.02):
                i = key.data
                try:
                    d = pending[i].recv(65536) if i in pending else b"x"
                except OSError:
                    d = b""
                if not d and i in pending:
                    self.sel.unregister(pending.pop(i))
        for i, s in self.socks.items():
            if i in pending:
                self.sel.unregister(s)
            s.close()
        self.socks = {}
        self.sel.close()
        return [st.report() for st in self.stats]


def client_main(a):
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    c = Client(a.dst, a.port, a.count, a.interval_ms / 1000.0, a.run, a.stall_limit_ms / 1000.0,
               sport_base=a.sport_base)
    c.open_all()
    t_end = time.monotonic() + a.duration if a.duration else None
    ready_by = time.monotonic() + a.connect_timeout
    ready_written = False
    while not stop and (t_end is None or time.monotonic() < t_end):
        c.step()
        if not ready_written and (c.pending() == 0 or time.monotonic() >= ready_by):
            # Every connection answered its hello (or failed, or the connect timeout
            # passed): the ready file says how many are established.
            if a.ready:
                tmp = a.ready + ".tmp"
                with open(tmp, "w") as f:
                    json.dump({"established": c.established(), "count": a.count,
                               "pid": os.getpid(), "wall_ns": time.time_ns()}, f)
                os.replace(tmp, a.ready)
            ready_written = True
    conns = c.stop()
    s = summarize(conns, a.stall_ms)
    report = {"run": a.run, "dst": [a.dst, a.port], "interval_ms": a.interval_ms,
              "summary": s, "connections": conns}
    if a.report:
        tmp = a.report + ".tmp"
        with open(tmp, "w") as f:
            json.dump(report, f)
        os.replace(tmp, a.report)
    print(summary_line(s), flush=True)
    return 0


# ---------------------------------------------------------------------------------------
# in the lab

def _load(path):
    with open(path) as f:
        return json.load(f)


class LabServer:
    """The echo server in the lab's internet namespace (port 0; the bound port read back
    from its ready file). Stopped with the lab, or by stop()."""

    def __init__(self, lab, name="conns-server"):
        from hanatlab.lab import deadline_poll
        self.lab, self.name = lab, name
        self.address = lab.desc["internet"]["address"]
        self.log = os.path.join(lab.dir, f"{name}-events.log")
        ready = os.path.join(lab.dir, f"{name}-ready.json")
        lab.spawn(lab.desc["internet"]["ns"], [
            sys.executable, "-m", "hanatlab.conns", "serve", "--address", self.address,
            "--ready", ready, "--log", self.log], name)
        self.port = deadline_poll(f"the echo server {name} to listen", lambda: os.path.exists(
            ready) and _load(ready)["port"], 10)

    def events(self, run=None):
        return read_server_log(self.log, run)

    def stop(self):
        self.lab.stop(self.name)


class LabConns:
    """`count` connections from each of `hosts` (one client process per host namespace)
    to a LabServer. wait_ready() once all are established; stop() ends the clients (the
    connections close with a FIN) and returns {"summary", "connections", "line"}."""

    _runs = 0

    def __init__(self, lab, server, hosts, count, interval_ms=50, stall_ms=100,
                 stall_limit_ms=1000, sport_base=None):
        import random
        self.lab, self.server, self.hosts = lab, server, list(hosts)
        self.stall_ms = stall_ms
        self.run = random.randrange(1, 2**31)
        LabConns._runs += 1
        self.clients = []  # (host, name, ready path, report path, Popen)
        for h in self.hosts:
            name = f"conns-{self.run}-{h}"
            ready = os.path.join(lab.dir, f"{name}-ready.json")
            report = os.path.join(lab.dir, f"{name}-report.json")
            p = lab.spawn(lab.host(h)["ns"], [
                sys.executable, "-m", "hanatlab.conns", "client", "--dst", server.address,
                "--port", str(server.port), "--count", str(count), "--interval-ms",
                str(interval_ms), "--run", str(self.run), "--stall-ms", str(stall_ms),
                "--stall-limit-ms", str(stall_limit_ms), "--ready", ready, "--report",
                report] + ([] if sport_base is None else ["--sport-base", str(sport_base)]),
                name)
            self.clients.append((h, name, ready, report, p))
        self.count = count * len(self.hosts)
        self.result = None

    def established(self):
        """Connections that answered their hello, per the clients' ready files (None while a
        client is still connecting)."""
        n = 0
        for _, _, ready, _, _ in self.clients:
            if not os.path.exists(ready):
                return None
            n += _load(ready)["established"]
        return n

    def wait_ready(self, timeout=20):
        from hanatlab.lab import deadline_poll
        deadline_poll(f"{self.count} connections established",
                      lambda: self.established() is not None, timeout)
        return self.established()

    def stop(self, timeout=10):
        """SIGTERM to every client, then their reports merged."""
        if self.result is not None:
            return self.result
        for _, _, _, _, p in self.clients:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        conns = []
        for h, name, _, report, p in self.clients:
            try:
                p.wait(timeout=timeout)
            except Exception:  # noqa: BLE001 - a client that hangs: ended, reported missing
                self.lab.stop(name)
            try:
                with open(report) as f:
                    r = json.load(f)
            except (OSError, ValueError):
                r = {"connections": []}
            for c in r["connections"]:
                c["host"] = h
            conns += r["connections"]
        s = summarize(conns, self.stall_ms)
        s["missing"] = self.count - len(conns)
        self.result = {"summary": s, "connections": conns, "line": summary_line(s),
                       "run": self.run}
        return self.result


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    sv = sub.add_parser("serve", help="the echo server (internet host)")
    sv.add_argument("--address", required=True)
    sv.add_argument("--ready", required=True, help="JSON file written with the bound port")
    sv.add_argument("--log", required=True, help="JSON lines, one per connection event")
    cl = sub.add_parser("client", help="N long-lived connections (private host)")
    cl.add_argument("--dst", required=True)
    cl.add_argument("--port", type=int, required=True)
    cl.add_argument("--count", type=int, default=200)
    cl.add_argument("--interval-ms", type=float, default=50.0)
    cl.add_argument("--duration", type=float, default=0.0,
                    help="seconds, then stop by itself (0: until SIGTERM)")
    cl.add_argument("--connect-timeout", type=float, default=10.0)
    cl.add_argument("--stall-limit-ms", type=float, default=1000.0,
                    help="an open connection whose oldest message waited longer at the end "
                         "is 'stalled'")
    cl.add_argument("--stall-ms", type=float, default=100.0,
                    help="the summary counts connections whose longest echo wait exceeds this")
    cl.add_argument("--run", type=int, default=0, help="run id, in the server's log")
    cl.add_argument("--sport-base", type=int, default=None,
                    help="connection i from source port SPORT_BASE + i (default: any)")
    cl.add_argument("--ready", help="JSON file written once every connection is established")
    cl.add_argument("--report", help="JSON report written at the end")
    sm = sub.add_parser("summary", help="one line for one or more client reports")
    sm.add_argument("reports", nargs="+")
    a = ap.parse_args(argv)
    if a.cmd == "serve":
        return serve_main(a)
    if a.cmd == "summary":
        conns = []
        stall = 100.0
        for path in a.reports:
            with open(path) as f:
                r = json.load(f)
            conns += r["connections"]
            stall = r["summary"]["stall_ms"]
        print(summary_line(summarize(conns, stall)))
        return 0
    if not 1 <= a.count <= 20000:
        ap.error(f"--count {a.count}: must be in [1, 20000]")
    if not 1 <= a.interval_ms <= 60000:
        ap.error(f"--interval-ms {a.interval_ms}: must be in [1, 60000]")
    if not 1 <= a.port <= 65535:
        ap.error(f"--port {a.port}: must be in [1, 65535]")
    return client_main(a)


if __name__ == "__main__":
    sys.exit(main())
