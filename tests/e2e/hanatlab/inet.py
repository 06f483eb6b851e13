# SPDX-License-Identifier: GPL-2.0-or-later
"""The internet host's services, run inside the internet namespace:

- a UDP sink on ADDRESS:0 that records every packet of the lab's stream format
  (stream id, sequence number, send time) with its arrival time and source address, one
  line per packet in the sink log, and echoes the packet back to its sender;
- a TCP "whoami" server on ADDRESS:0 that answers each connection with the peer's
  address and port as seen here (i.e. after NAT) and closes.

Ping is answered by the kernel. The chosen ports go to a JSON ready file.

Usage: python3 -m hanatlab.inet --address A --ready FILE --sink-log FILE
"""

import argparse
import json
import os
import selectors
import signal
import socket
import struct
import sys
import time

# Stream packet: magic, stream id, sequence number, send time (ns since the epoch).
PACKET = struct.Struct("!4sIIQ")
MAGIC = b"HLAB"


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--address", required=True)
    ap.add_argument("--ready", required=True)
    ap.add_argument("--sink-log", required=True)
    a = ap.parse_args(argv)

    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))

    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind((a.address, 0))
    udp.setblocking(False)
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    tcp.bind((a.address, 0))
    tcp.listen(64)
    tcp.setblocking(False)

    log = open(a.sink_log, "a", buffering=1)
    tmp = a.ready + ".tmp"
    with open(tmp, "w") as f:
        json.dump({"udp_port": udp.getsockname()[1], "tcp_port": tcp.getsockname()[1],
                   "pid": os.getpid()}, f)
    os.replace(tmp, a.ready)

    sel = selectors.DefaultSelector()
    sel.register(udp, selectors.EVENT_READ, "udp")
    sel.register(tcp, selectors.EVENT_READ, "tcp")
    while not stop:
        for key, _ in sel.select(timeout=0.2):
            if key.data == "udp":
                for _ in range(256):  # bounded drain per wake-up
                    try:
                        data, peer = udp.recvfrom(2048)
                    except BlockingIOError:
                        break
                    now = time.time_ns()
                    if len(data) >= PACKET.size:
                        magic, stream, seq, sent = PACKET.unpack_from(data)
                        if magic == MAGIC:
                            log.write(f"{stream} {seq} {sent} {now} {peer[0]} {peer[1]}\n")
                    try:
                        udp.sendto(data, peer)
                    except OSError:
                        pass  # the return path may be down during a failover
            else:
                try:
                    conn, peer = tcp.accept()
                except BlockingIOError:
                    continue
                try:
                    conn.settimeout(1.0)
                    conn.sendall(f"{peer[0]} {peer[1]}\n".encode())
                except OSError:
                    pass
                finally:
                    conn.close()
    log.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
