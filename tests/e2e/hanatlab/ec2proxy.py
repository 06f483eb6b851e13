# SPDX-License-Identifier: GPL-2.0-or-later
"""EC2 fault proxy: a small threaded HTTP proxy in the lab's API namespace, between the
lab's EC2 clients (hanatd, the keepalived notify script) and moto_server, which has no
fault injection of its own (see MOTO.md).

Requests and replies pass byte for byte: the request head (including the Host header the
client signed — moto recomputes SigV4 from the Host it receives, so rewriting it to moto's
own address would fail every signature) and body go to moto unchanged, and moto's reply goes
back unchanged. moto answers every request with `Connection: close`, so one request per
client connection is all a client expects; faulted replies say `Connection: close` too.

A fault is read from the control file (rewritten atomically by the lab, re-read for every
request) with keys:
  "mode":    null (pass-through) | "unavailable" | "throttle" | "5xx" | "stall" | "reset" |
             "incorrect_state"
  "until":   wall-clock seconds (time.time()) when the fault ends by itself, or null
  "actions": list of EC2 Action names the fault applies to (others pass), or null = all
What each mode gives the client, as EC2 or the network would:
  unavailable  the connection is reset as soon as it is accepted, nothing read (what a
               client sees from an endpoint that refuses: ECONNRESET/ECONNREFUSED); with an
               action list the request has to be read first to know its action
  throttle     HTTP 503 with EC2's RequestLimitExceeded error body (EC2 throttles with 503)
  5xx          HTTP 500 InternalError and 503 Unavailable, alternating (both are documented
               EC2 server errors a client must retry)
  stall        the request is read and never answered while the fault lasts; once it ends
               the request goes to moto and its reply is returned (a slow, not lost, call);
               a client that gives up first closes the connection and is forgotten
  reset        the request is read, then the connection is closed with a TCP RST
  incorrect_state  HTTP 400 IncorrectInstanceState, what EC2 answers StartInstances for an
               instance it still considers `stopping` (moto changes states at once and never
               does); meant for an action list such as ["StartInstances"]

Two more keys emulate EC2 itself rather than a fault, and apply whatever the mode:
  "skew":    seconds (may be negative) EC2's clock is ahead of the lab's. A request whose
             X-Amz-Date is more than 5 minutes from EC2's clock gets HTTP 400 RequestExpired
             (as EC2 answers a signature from a host whose clock is off); every reply, the
             relayed ones too, carries EC2's clock in its Date header.
  "buckets": {action: [burst, refill per second]}: EC2's per-API request token buckets
             ("Request throttling for the Amazon EC2 API"); a request of a listed action when
             its bucket holds less than one token gets RequestLimitExceeded (HTTP 503), and
             is logged with mode "bucket". A request is charged when its last byte reached
             this host (the kernel's TCP_INFO last_data_recv), not when a proxy thread got
             to it: EC2's buckets are not slowed by the emulator's scheduling, and a
             proxy thread starved for a second under load (the lab runs beside niced test
             binaries) would otherwise see a second's worth of requests as one burst. And
             in the order the connections were accepted (each request has a connection of
             its own): a bucket's answer depends on what came before, and the threads that
             read the requests may run in any order (a thread waits at most TURN_WAIT_S for
             the ones accepted before it).

Auto Scaling: requests signed for the autoscaling service come through the same proxy to
moto, which answers DescribeAutoScalingInstances and DescribeLifecycleHooks but has no
CompleteLifecycleAction (moto 5.2.1); the proxy answers that one itself as Auto Scaling
does (HTTP 200, an empty CompleteLifecycleActionResult) and logs its group, hook,
instance and result.

Public addresses: moto draws Elastic IPs from 127.0.0.0/8 (MOTO.md), which no host may use
as a path to a NAT. With --public-map FILE (JSON {moto's address: the lab's address},
re-read for every request), the addresses in a DescribeInstances reply (ipAddress, and
publicIp in an instance's network interfaces) are replaced by the lab's, which the lab's
internet gateway translates to the NAT's private address, as EC2's does for an Elastic IP.

Elastic IPs on a private IP: moto ignores AssociateAddress's PrivateIpAddress (the EIP shows
on the ENI's primary IP whatever was asked). With --eip-state FILE the proxy records, for
each AssociateAddress, {allocation id: {ENI id: private IP}} (the private IP named for that
ENI last; "" when none was named) in FILE (rewritten atomically), which the lab's fabric
reads to deliver the EIP's traffic to the private IP EC2 would have associated. The record
is written before the request goes to moto and undone when moto refuses it, so whoever sees
the EIP on an ENI in DescribeAddresses finds its private IP recorded (EC2 moves both at
once). The proxy fakes only this record; moto keeps the association itself.

Every request is logged as a JSON line {t_ns, action, mode, status, client}: status is the
HTTP status returned, or "reset", or "abandoned" (a stalled client that gave up); a request
naming a route table adds route_table, destination and target (the target parameter's
value), so a test can count the writes to one table.

Usage: python3 -m hanatlab.ec2proxy --listen ADDR --upstream ADDR:PORT --control F --log F
       --ready F [--public-map F]   (the chosen port is written to the ready file as JSON)
"""

import argparse
import calendar
import json
import os
import select
import signal
import socket
import socketserver
import struct
import sys
import threading
import time
import urllib.parse

MODES = ("unavailable", "throttle", "5xx", "stall", "reset", "incorrect_state")
MAX_HEAD = 64 * 1024
MAX_BODY = 16 * 1024 * 1024
UPSTREAM_TIMEOUT = 60.0
CLIENT_TIMEOUT = 30.0
TURN_WAIT_S = 1.0  # how long a request waits for those accepted before it (buckets only)
# Replies whose public addresses the --public-map rewrites (what hanatd reads a peer's
# public address from).
PUBLIC_MAP_ACTIONS = ("DescribeInstances",)

ERRORS = {
    # EC2's error body (Query API): Response/Errors/Error{Code,Message} and a RequestID.
    "RequestLimitExceeded": (503, "Service Unavailable", "Request limit exceeded."),
    "InternalError": (500, "Internal Server Error",
                      "An internal error has occurred. Retry your request, but if the "
                      "problem persists, contact us with details by posting a message on "
                      "the AWS forums."),
    "Unavailable": (503, "Service Unavailable",
                    "The server is overloaded and can't handle the request."),
    "RequestExpired": (400, "Bad Request",
                       "Request has expired."),
    "IncorrectInstanceState": (400, "Bad Request",
                               "The instance is not in a state from which it can be started."),
}
SKEW_LIMIT = 300.0  # EC2 refuses a signature time more than 5 minutes from its clock


def http_date(t):
    return time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(t))


def amz_date(head):
    """The X-Amz-Date of a request head as epoch seconds, or None."""
    for line in head.decode("latin-1").split("\r\n")[1:]:
        k, sep, v = line.partition(":")
        if sep and k.strip().lower() == "x-amz-date":
            try:
                return calendar.timegm(time.strptime(v.strip(), "%Y%m%dT%H%M%SZ"))
            except ValueError:
                return None
    return None


def error_reply(code, request_id, date=None):
    status, reason, message = ERRORS[code]
    body = ('<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error><Code>'
            f"{code}</Code><Message>{message}</Message></Error></Errors>"
            f"<RequestID>{request_id}</RequestID></Response>").encode()
    head = (f"HTTP/1.1 {status} {reason}\r\nContent-Type: text/xml;charset=UTF-8\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n"
            + (f"Date: {http_date(date)}\r\n" if date is not None else "")
            + "Server: AmazonEC2\r\n\r\n").encode()
    return status, head + body


def complete_lifecycle_reply(request_id):
    body = ('<?xml version="1.0" encoding="UTF-8"?>\n<CompleteLifecycleActionResponse '
            'xmlns="http://autoscaling.amazonaws.com/doc/2011-01-01/">'
            "<CompleteLifecycleActionResult/><ResponseMetadata>"
            f"<RequestId>{request_id}</RequestId></ResponseMetadata>"
            "</CompleteLifecycleActionResponse>").encode()
    head = ("HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
    return 200, head + body


def lifecycle_detail(body):
    q = urllib.parse.parse_qs(body.decode("latin-1"), keep_blank_values=True)
    keys = {"AutoScalingGroupName": "group", "LifecycleHookName": "hook",
            "InstanceId": "instance", "LifecycleActionResult": "result"}
    return {v: q[k][0] for k, v in keys.items() if q.get(k)}


def action_of(target, body):
    """The EC2 Action of a Query API request (form body, or the query string of a GET)."""
    for src in (body.decode("latin-1"), urllib.parse.urlsplit(target).query):
        vals = urllib.parse.parse_qs(src, keep_blank_values=True).get("Action")
        if vals:
            return vals[0]
    return None


ROUTE_TARGET_PARAMS = ("NetworkInterfaceId", "InstanceId", "NatGatewayId", "GatewayId",
                       "TransitGatewayId", "VpcPeeringConnectionId", "EgressOnlyInternetGatewayId",
                       "LocalGatewayId", "CarrierGatewayId", "CoreNetworkArn", "VpcEndpointId")


def route_detail(target, body):
    """For a request that names a route table (ReplaceRoute, CreateRoute, DeleteRoute,
    ...): {"route_table", "destination", "target"} (the keys it has), so a test can tell
    which table a controller wrote, not only that it wrote; for Attach/Detach-
    NetworkInterface {"eni", "attachment", "instance", "device_index", "force"} (the keys it
    has). {} for other requests."""
    for src in (body.decode("latin-1"), urllib.parse.urlsplit(target).query):
        q = urllib.parse.parse_qs(src, keep_blank_values=True)
        if "Action" not in q:
            continue
        out = {}
        if q.get("RouteTableId"):
            out["route_table"] = q["RouteTableId"][0]
        if q.get("DestinationCidrBlock"):
            out["destination"] = q["DestinationCidrBlock"][0]
        for k in ROUTE_TARGET_PARAMS:
            if q.get(k):
                out["target"] = q[k][0]
                break
        # Attach/DetachNetworkInterface: which ENI or attachment, where, and whether the
        # detach was forced (moto accepts Force and ignores it: a test checks it here).
        for k, key in (("AttachmentId", "attachment"), ("Force", "force"),
                       ("DeviceIndex", "device_index"), ("InstanceId", "instance")):
            if q.get(k) and q["Action"][0] in ("AttachNetworkInterface",
                                                "DetachNetworkInterface"):
                out[key] = q[k][0]
        if q.get("NetworkInterfaceId") and "target" not in out:
            out["eni"] = q["NetworkInterfaceId"][0]
        return out
    return {}


def read_request(conn):
    """Reads one request: returns (head bytes, body bytes, target, action) or None when
    the client closed or sent something that is not an HTTP request with a length."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        if len(buf) > MAX_HEAD:
            return None
        chunk = conn.recv(65536)
        if not chunk:
            return None
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    head += b"\r\n\r\n"
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3:
        return None
    headers = {}
    for line in lines[1:]:
        k, sep, v = line.partition(":")
        if sep:
            headers[k.strip().lower()] = v.strip()
    if "chunked" in headers.get("transfer-encoding", "").lower():
        return None  # EC2 clients send a Content-Length; nothing here sends chunks
    try:
        length = int(headers.get("content-length", "0"))
    except ValueError:
        return None
    if not 0 <= length <= MAX_BODY:
        return None
    if headers.get("expect", "").lower() == "100-continue" and len(rest) < length:
        conn.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
    body = rest
    while len(body) < length:
        chunk = conn.recv(min(65536, length - len(body)))
        if not chunk:
            return None
        body += chunk
    return head, body[:length], parts[1], action_of(parts[1], body[:length])


# struct tcp_info (linux/tcp.h): 8 one-byte fields, then 32-bit fields; tcpi_last_data_recv,
# milliseconds since the last data segment arrived, is the twelfth of those.
TCP_INFO_LAST_DATA_RECV = 8 + 11 * 4


def arrival_time(conn):
    """time.monotonic() when the last data segment of the request read from `conn` reached
    this host (the kernel keeps it in jiffies, a few milliseconds apart); now when the
    kernel cannot say."""
    now = time.monotonic()
    try:
        info = conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
        (ago_ms,) = struct.unpack_from("I", info, TCP_INFO_LAST_DATA_RECV)
    except (OSError, struct.error):
        return now
    return now - ago_ms / 1000.0


def rewrite_public(reply, mapping):
    """A whole HTTP reply with every address of `mapping` replaced where it is an XML
    element's whole text (">127.0.0.3<"), and its Content-Length fixed. A chunked reply
    (moto sends none) passes unchanged."""
    head, sep, body = reply.partition(b"\r\n\r\n")
    if not sep or b"transfer-encoding: chunked" in head.lower():
        return reply
    for old, new in mapping.items():
        body = body.replace(f">{old}<".encode(), f">{new}<".encode())
    lines = [ln for ln in head.split(b"\r\n") if not ln.lower().startswith(b"content-length:")]
    lines.append(f"Content-Length: {len(body)}".encode())
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def rst_close(conn):
    """Closes with a TCP RST instead of a FIN (SO_LINGER on, timeout 0)."""
    try:
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    conn.close()


class Proxy:
    def __init__(self, upstream, control, log_path, public_map=None, eip_state=None):
        self.public_map_path = public_map
        self.eip_state_path = eip_state
        self.eip_state = {}
        host, _, port = upstream.rpartition(":")
        self.upstream = (host, int(port))
        self.control_path = control
        self.log = open(log_path, "a", buffering=1)
        self.lock = threading.Lock()
        # Bucket turns in accept order (turn_wait, turn_done).
        self.turns = threading.Condition()
        self.turn_low = 0  # every connection accepted before this one is past its turn
        self.turn_passed = set()
        self.n_5xx = 0
        self.n_req = 0
        self.tokens = {}  # action -> (tokens, at) of the emulated EC2 buckets

    def control(self):
        try:
            with open(self.control_path) as f:
                c = json.load(f)
        except (OSError, ValueError):
            return {}
        return c if isinstance(c, dict) else {}

    def public_map(self):
        """{moto's public address: the lab's} from the --public-map file ({} without)."""
        if not self.public_map_path:
            return {}
        try:
            with open(self.public_map_path) as f:
                m = json.load(f)
        except (OSError, ValueError):
            return {}
        return {str(k): str(v) for k, v in m.items()} if isinstance(m, dict) else {}

    def turn_wait(self, seq):
        """Waits until every connection accepted before `seq` has passed its bucket's
        decision (turn_done), at most TURN_WAIT_S (a client that never sends its request)."""
        end = time.monotonic() + TURN_WAIT_S
        with self.turns:
            while self.turn_low < seq:
                left = end - time.monotonic()
                if left <= 0:
                    return
                self.turns.wait(left)

    def turn_done(self, seq):
        """Connection `seq` is past its bucket's decision (or has none): idempotent."""
        with self.turns:
            if seq < self.turn_low or seq in self.turn_passed:
                return
            self.turn_passed.add(seq)
            while self.turn_low in self.turn_passed:
                self.turn_passed.remove(self.turn_low)
                self.turn_low += 1
            self.turns.notify_all()

    def take_token(self, action, buckets, arrived):
        """EC2's bucket for `action` at the request's arrival (time.monotonic() seconds):
        True when a token was taken (or none is emulated). Threads may charge arrivals out
        of order; the bucket's clock never goes back, so a request charged after a later
        one is charged at that later time (lenient by the reordering, milliseconds)."""
        spec = buckets.get(action) if isinstance(buckets, dict) else None
        if not spec:
            return True
        burst, refill = float(spec[0]), float(spec[1])
        with self.lock:
            have, at = self.tokens.get(action, (burst, arrived))
            now = max(at, arrived)
            have = min(burst, have + (now - at) * refill)
            ok = have >= 1.0
            self.tokens[action] = (have - 1.0 if ok else have, now)
        return ok

    def fault(self, action=None, known=False):
        """The mode that applies now (None: pass). known=False: the action is not read yet,
        so only a fault without an action list applies."""
        try:
            with open(self.control_path) as f:
                c = json.load(f)
        except (OSError, ValueError):
            return None
        if not isinstance(c, dict) or c.get("mode") not in MODES:
            return None
        until = c.get("until")
        if until is not None and time.time() >= until:
            return None
        acts = c.get("actions")
        if acts:
            if not known or action not in acts:
                return None
        return c["mode"]

    def write_log(self, action, mode, status, client=None, detail=None):
        rec = {"t_ns": time.time_ns(), "action": action, "mode": mode, "status": status,
               "client": client}
        rec.update(detail or {})
        with self.lock:
            self.log.write(json.dumps(rec) + "\n")

    def forward(self, conn, head, body, skew=None, public_map=None):
        """Sends the request to moto unchanged and relays the reply until moto closes
        (with EC2's skewed clock in its Date header when `skew` is set; with the lab's
        public addresses when `public_map` is not empty: the reply is then held whole).
        Returns moto's HTTP status (or 502 when moto could not be reached)."""
        try:
            up = socket.create_connection(self.upstream, timeout=5)
        except OSError:
            status, data = 502, (b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n"
                                 b"Connection: close\r\n\r\n")
            conn.sendall(data)
            return status
        status = None
        with up:
            up.settimeout(UPSTREAM_TIMEOUT)
            up.sendall(head + body)
            first = b""
            held = b""  # with a skew: the reply head, until its end, to rewrite its Date
            pending = []  # with a public map: the whole reply, rewritten once moto closed
            while True:
                chunk = up.recv(65536)
                if chunk and public_map:
                    pending.append(chunk)
                    continue
                if not chunk and pending:
                    chunk = rewrite_public(b"".join(pending), public_map)
                    pending = []
                if not chunk:
                    break
                if status is None:
                    first += chunk
                    line = first.split(b"\r\n", 1)[0].split(b" ")
                    if len(line) >= 2 and line[1].isdigit() and line[1] != b"100":
                        status = int(line[1])
                if skew is not None and held is not None:
                    held += chunk
                    if b"\r\n\r\n" not in held:
                        continue
                    rhead, _, rest = held.partition(b"\r\n\r\n")
                    lines = [ln for ln in rhead.split(b"\r\n")
                             if not ln.lower().startswith(b"date:")]
                    lines.insert(1, f"Date: {http_date(time.time() + skew)}".encode())
                    chunk = b"\r\n".join(lines) + b"\r\n\r\n" + rest
                    held = None
                conn.sendall(chunk)
            if held:
                conn.sendall(held)
        return status

    def handle(self, conn, seq):
        try:
            self.handle_request(conn, seq)
        finally:
            self.turn_done(seq)

    def handle_request(self, conn, seq):
        with self.lock:
            self.n_req += 1
        try:
            client = conn.getpeername()[0]  # the caller's source address, for the log
        except OSError:
            client = None
        mode = self.fault()
        if mode == "unavailable":
            rst_close(conn)
            self.write_log(None, mode, "reset", client)
            return
        conn.settimeout(CLIENT_TIMEOUT)
        try:
            req = read_request(conn)
        except OSError:
            req = None
        if req is None:
            conn.close()
            return
        head, body, target, action = req
        arrived = arrival_time(conn)
        detail = route_detail(target, body)
        ctl = self.control()
        skew = ctl.get("skew")
        skew = float(skew) if isinstance(skew, (int, float)) else None
        if skew is not None:
            signed = amz_date(head)
            ec2_now = time.time() + skew
            if signed is None or abs(signed - ec2_now) > SKEW_LIMIT:
                status, data = error_reply("RequestExpired", f"hanatlab-{os.getpid()}",
                                           date=ec2_now)
                try:
                    conn.sendall(data)
                except OSError:
                    pass
                conn.close()
                self.write_log(action, "skew", status, client)
                return
        buckets = ctl.get("buckets")
        if isinstance(buckets, dict) and buckets.get(action):
            self.turn_wait(seq)
        charged = self.take_token(action, buckets, arrived)
        self.turn_done(seq)
        if not charged:
            status, data = error_reply("RequestLimitExceeded", f"hanatlab-{os.getpid()}")
            try:
                conn.sendall(data)
            except OSError:
                pass
            conn.close()
            # How long the request waited in this proxy before it was charged: a refusal
            # with a large lag points at the machine, not at the client's pacer.
            self.write_log(action, "bucket", status, client,
                           {"lag_ms": round((time.monotonic() - arrived) * 1000)})
            return
        mode = self.fault(action, known=True)
        if mode in ("unavailable", "reset"):
            rst_close(conn)
            self.write_log(action, mode, "reset", client, detail)
            return
        if mode == "throttle":
            code = "RequestLimitExceeded"
        elif mode == "5xx":
            with self.lock:
                self.n_5xx += 1
                code = "InternalError" if self.n_5xx % 2 else "Unavailable"
        elif mode == "incorrect_state":
            code = "IncorrectInstanceState"
        else:
            code = None
        if code:
            status, data = error_reply(code, f"hanatlab-{os.getpid()}-{self.n_req}")
            try:
                conn.sendall(data)
            except OSError:
                pass
            conn.close()
            self.write_log(action, mode, status, client, detail)
            return
        if action == "CompleteLifecycleAction":
            status, data = complete_lifecycle_reply(f"hanatlab-{os.getpid()}-{self.n_req}")
            try:
                conn.sendall(data)
            except OSError:
                pass
            conn.close()
            self.write_log(action, mode, status, client, lifecycle_detail(body))
            return
        if mode == "stall":
            # Hold the request until the fault ends; a client that gives up closes its end,
            # which shows as a readable socket with nothing (or an error) to read.
            while self.fault(action, known=True) == "stall":
                r, _, _ = select.select([conn], [], [], 0.05)
                if r:
                    try:
                        gone = conn.recv(1, socket.MSG_PEEK) == b""
                    except OSError:
                        gone = True
                    if gone:
                        conn.close()
                        self.write_log(action, mode, "abandoned", client, detail)
                        return
        # Recorded before moto commits the association, undone if it refuses: a fabric poll
        # that finds the EIP on the new ENI in DescribeAddresses finds the private IP too, as
        # EC2 moves the EIP and its private IP in one step.
        undo = (self.record_association(target, body)
                if action == "AssociateAddress" and self.eip_state_path else None)
        try:
            status = self.forward(conn, head, body, skew, self.public_map()
                                  if action in PUBLIC_MAP_ACTIONS else None)
        except OSError:
            status = None
        conn.close()
        if undo is not None and status != 200:
            self.restore_association(*undo)
        self.write_log(action, mode, status if status is not None else "upstream-error", client,
                       detail)

    def record_association(self, target, body):
        """Records the private IP an AssociateAddress names for its ENI (see --eip-state);
        returns what restore_association() needs to undo it, or None."""
        q = urllib.parse.parse_qs(body.decode("latin-1"), keep_blank_values=True)
        if "Action" not in q:
            q = urllib.parse.parse_qs(urllib.parse.urlsplit(target).query)
        alloc = (q.get("AllocationId") or [""])[0]
        eni = (q.get("NetworkInterfaceId") or [""])[0]
        if not alloc or not eni:
            return None
        with self.lock:
            by_eni = self.eip_state.setdefault(alloc, {})
            before = by_eni.get(eni)
            by_eni[eni] = (q.get("PrivateIpAddress") or [""])[0]
            self.write_eip_state()
        return alloc, eni, before

    def restore_association(self, alloc, eni, before):
        with self.lock:
            by_eni = self.eip_state.setdefault(alloc, {})
            if before is None:
                by_eni.pop(eni, None)
            else:
                by_eni[eni] = before
            self.write_eip_state()

    def write_eip_state(self):
        tmp = self.eip_state_path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.eip_state, f)
        os.replace(tmp, self.eip_state_path)


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128
    accepted = 0  # connections accepted so far: each one's turn for the buckets

    def process_request(self, request, client_address):
        # Called in the accepting thread, in the kernel's accept order (a socket takes no
        # attribute of its own: the turn waits in a map for the handler's thread).
        with self.turn_lock:
            self.turn_of[request] = self.accepted
        self.accepted += 1
        super().process_request(request, client_address)

    def take_turn(self, request):
        with self.turn_lock:
            return self.turn_of.pop(request)


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--listen", required=True)
    ap.add_argument("--upstream", required=True, help="moto_server as ADDR:PORT")
    ap.add_argument("--control", required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--ready", required=True)
    ap.add_argument("--public-map", help="JSON file {moto's public address: the lab's}")
    ap.add_argument("--eip-state", help="JSON file the private IPs of AssociateAddress go to")
    a = ap.parse_args(argv)
    proxy = Proxy(a.upstream, a.control, a.log, a.public_map, a.eip_state)

    class Handler(socketserver.BaseRequestHandler):
        def handle(self):
            proxy.handle(self.request, srv.take_turn(self.request))

        def finish(self):
            pass

    srv = Server((a.listen, 0), Handler)
    srv.turn_lock, srv.turn_of = threading.Lock(), {}

    def stop(*_):
        threading.Thread(target=srv.shutdown, daemon=True).start()
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    tmp = a.ready + ".tmp"
    with open(tmp, "w") as f:
        json.dump({"port": srv.server_address[1]}, f)
    os.replace(tmp, a.ready)
    srv.serve_forever(poll_interval=0.2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
