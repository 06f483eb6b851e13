# SPDX-License-Identifier: GPL-2.0-or-later
"""Traffic tools: the UDP stream sender (run in a private host's namespace), a TCP whoami
client, and the analysis of a stream as recorded by the internet host's sink.

Sender: python3 -m hanatlab.traffic send --dst A --port P --rate 200 --stream ID --summary F
        sends until SIGTERM/SIGINT (or --count packets), then writes a JSON summary.
Whoami: python3 -m hanatlab.traffic whoami --dst A --port P  -> prints "ip port" as seen
        by the internet host.
Analyse: python3 -m hanatlab.traffic analyse --sink-log F --stream ID [--summary F]
"""

import argparse
import json
import os
import select
import signal
import socket
import sys
import time

from hanatlab.inet import MAGIC, PACKET


def send_main(a):
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setblocking(False)
    interval_ns = int(1e9 / a.rate)
    start = time.monotonic_ns()
    first_wall = None
    last_wall = None
    sent = 0
    errors = 0
    replies = 0
    seq = 0
    error_kinds = {}
    while not stop and (a.count == 0 or seq < a.count):
        due = start + seq * interval_ns
        # Wait for the send time, reading echoes meanwhile (select, not a blind sleep).
        while not stop:
            left = due - time.monotonic_ns()
            if left <= 0:
                break
            r, _, _ = select.select([s], [], [], left / 1e9)
            if r:
                try:
                    for _ in range(64):
                        s.recv(2048)
                        replies += 1
                except (BlockingIOError, ConnectionRefusedError, OSError):
                    pass
        if stop:
            break
        now = time.time_ns()
        try:
            s.sendto(PACKET.pack(MAGIC, a.stream, seq, now), (a.dst, a.port))
            sent += 1
        except OSError as e:
            # No default route while the fabric has none (ENETUNREACH): a lost packet.
            errors += 1
            error_kinds[e.strerror] = error_kinds.get(e.strerror, 0) + 1
        if first_wall is None:
            first_wall = now
        last_wall = now
        seq += 1
    summary = {"stream": a.stream, "rate": a.rate, "attempted": seq, "sent": sent,
               "send_errors": errors, "error_kinds": error_kinds, "replies": replies,
               "first_send_ns": first_wall, "last_send_ns": last_wall}
    tmp = a.summary + ".tmp"
    with open(tmp, "w") as f:
        json.dump(summary, f)
    os.replace(tmp, a.summary)
    return 0


def whoami_main(a):
    with socket.create_connection((a.dst, a.port), timeout=a.timeout) as c:
        c.settimeout(a.timeout)
        data = b""
        deadline = time.monotonic() + a.timeout
        while time.monotonic() < deadline and not data.endswith(b"\n"):
            chunk = c.recv(256)
            if not chunk:
                break
            data += chunk
    print(data.decode().strip())
    return 0


def read_sink(sink_log, stream_id):
    """Packets of one stream from the sink log: list of (seq, sent_ns, recv_ns, src_ip)."""
    out = []
    with open(sink_log) as f:
        for line in f:
            parts = line.split()
            if len(parts) != 6 or not parts[0].isdigit():
                continue  # a torn last line while the sink is still writing
            if int(parts[0]) != stream_id:
                continue
            out.append((int(parts[1]), int(parts[2]), int(parts[3]), parts[4]))
    return out


def analyse(packets, summary=None):
    """Outage analysis of one stream.

    packets: (seq, sent_ns, recv_ns, src_ip) as recorded by the sink; summary: the
    sender's summary (attempted count, first/last send time) or None.
    The longest gap is the longest interval without an arrival: between consecutive
    arrivals, and also from the first send to the first arrival and from the last arrival
    to the last send when packets at either end were lost (so an outage at an edge of the
    stream is not hidden). Returns a dict:
      sent, received, lost, duplicates, reordered,
      max_gap_ms, gap_start_ns, gap_end_ns, source_before, source_after,
      sources: [{"source", "first_ns", "last_ns", "packets"}] in arrival order (one entry
               per contiguous run of one source), switches: number of source changes,
      switch_gaps: [{"from", "to", "start_ns", "end_ns", "gap_ms"}] one per change.
    """
    arrivals = sorted(packets, key=lambda p: p[2])
    seqs = set()
    dups = 0
    reordered = 0
    max_seq_seen = -1
    for seq, _, _, _ in arrivals:
        if seq in seqs:
            dups += 1
        seqs.add(seq)
        if seq < max_seq_seen:
            reordered += 1
        max_seq_seen = max(max_seq_seen, seq)
    attempted = summary["attempted"] if summary else (max(seqs) + 1 if seqs else 0)
    res = {"sent": attempted, "received": len(seqs), "lost": max(0, attempted - len(seqs)),
           "duplicates": dups, "reordered": reordered, "max_gap_ms": None,
           "gap_start_ns": None, "gap_end_ns": None, "source_before": None,
           "source_after": None, "sources": [], "switches": 0}
    for _, _, recv, src in arrivals:
        if res["sources"] and res["sources"][-1]["source"] == src:
            res["sources"][-1]["last_ns"] = recv
            res["sources"][-1]["packets"] += 1
        else:
            res["sources"].append({"source": src, "first_ns": recv, "last_ns": recv,
                                   "packets": 1})
    res["switches"] = max(0, len(res["sources"]) - 1)
    # The gap at each change of source: last arrival via the old NAT to the first via the
    # new one (a planned switch can have no loss at all, so it need not be the max gap).
    res["switch_gaps"] = [
        {"from": a["source"], "to": b["source"], "start_ns": a["last_ns"],
         "end_ns": b["first_ns"], "gap_ms": round((b["first_ns"] - a["last_ns"]) / 1e6, 3)}
        for a, b in zip(res["sources"], res["sources"][1:])]

    best = None  # (gap_ns, start, end, before, after)

    def consider(gap, start, end, before, after):
        nonlocal best
        if best is None or gap > best[0]:
            best = (gap, start, end, before, after)

    if not arrivals:
        if summary and summary.get("first_send_ns") and summary.get("last_send_ns"):
            consider(summary["last_send_ns"] - summary["first_send_ns"],
                     summary["first_send_ns"], summary["last_send_ns"], None, None)
    else:
        for prev, cur in zip(arrivals, arrivals[1:]):
            consider(cur[2] - prev[2], prev[2], cur[2], prev[3], cur[3])
        if summary and summary.get("first_send_ns") and 0 not in seqs:
            consider(arrivals[0][2] - summary["first_send_ns"], summary["first_send_ns"],
                     arrivals[0][2], None, arrivals[0][3])
        if summary and summary.get("last_send_ns") and (attempted - 1) not in seqs:
            consider(summary["last_send_ns"] - arrivals[-1][2], arrivals[-1][2],
                     summary["last_send_ns"], arrivals[-1][3], None)
    if best is not None:
        res["max_gap_ms"] = round(best[0] / 1e6, 3)
        res["gap_start_ns"], res["gap_end_ns"] = best[1], best[2]
        res["source_before"], res["source_after"] = best[3], best[4]
    return res


def main(argv=None):
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("send")
    s.add_argument("--dst", required=True)
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--rate", type=float, default=200.0)
    s.add_argument("--stream", type=int, required=True)
    s.add_argument("--count", type=int, default=0)
    s.add_argument("--summary", required=True)
    w = sub.add_parser("whoami")
    w.add_argument("--dst", required=True)
    w.add_argument("--port", type=int, required=True)
    w.add_argument("--timeout", type=float, default=2.0)
    an = sub.add_parser("analyse", help="print the analysis of one stream as JSON")
    an.add_argument("--sink-log", required=True)
    an.add_argument("--stream", type=int, required=True)
    an.add_argument("--summary", help="the sender's summary JSON (edge outages need it)")
    a = ap.parse_args(argv)
    if a.cmd == "analyse":
        summary = None
        if a.summary:
            with open(a.summary) as f:
                summary = json.load(f)
        print(json.dumps(analyse(read_sink(a.sink_log, a.stream), summary), indent=2))
        return 0
    if a.cmd == "send":
        if not (0 < a.rate <= 100000):
            ap.error(f"--rate {a.rate}: must be in (0, 100000] packets/s")
        return send_main(a)
    return whoami_main(a)


if __name__ == "__main__":
    sys.exit(main())
