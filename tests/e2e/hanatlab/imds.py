# SPDX-License-Identifier: GPL-2.0-or-later
"""Fake EC2 instance metadata service (IMDSv2 only) for one NAT host, run inside that NAT's
namespace on 169.254.169.254:80 (the address is on the namespace's loopback).

Behaviour follows the EC2 user guide for IMDSv2 with HttpTokens=required:
- PUT /latest/api/token with X-aws-ec2-metadata-token-ttl-seconds in 1..21600 returns a
  token (400 when the TTL is missing or out of range); a PUT carrying X-Forwarded-For is
  refused with 403, as EC2 does, so proxies cannot fetch tokens.
- Every GET needs a valid, unexpired X-aws-ec2-metadata-token, else 401.
- Directories list their entries one per line, sub-directories with a trailing '/'.

A test changes the instance's notices by (atomically) rewriting the control file, which is
re-read on every request, keys:
  "spot_instance_action":   {"action": "terminate", "time": "..."} or null (404)
  "target_lifecycle_state": "InService" (default) or e.g. "Terminated"
  "status":                 an HTTP status to answer every request with (outage drill)
  "delay_ms":               delay before answering (slow IMDS drill)
Every request is logged (method, path, status, token used yes/no) as a JSON line.

Usage: python3 -m hanatlab.imds --info FILE   (FILE: JSON written by the lab)
"""

import argparse
import http.server
import json
import os
import secrets
import signal
import sys
import threading
import time

MAX_TTL = 21600


class State:
    def __init__(self, info):
        self.info = info
        self.tokens = {}  # token -> expiry (monotonic)
        self.lock = threading.Lock()
        self.log = open(info["log"], "a", buffering=1)

    def control(self):
        try:
            with open(self.info["control"]) as f:
                c = json.load(f)
            return c if isinstance(c, dict) else {}
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as e:
            self.write_log({"error": f"control file {self.info['control']}: {e}"})
            return {}

    def write_log(self, rec):
        rec["t"] = time.time()
        with self.lock:
            self.log.write(json.dumps(rec) + "\n")

    def tree(self, ctl):
        i = self.info
        mac = i["mac"]
        creds = dict(i["credentials"])
        creds.setdefault("Code", "Success")
        creds.setdefault("Type", "AWS-HMAC")
        creds.setdefault("LastUpdated", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        meta = {
            "ami-id": "ami-12c6146b",
            "hostname": i["local_ipv4"],
            "instance-id": i["instance_id"],
            "instance-type": "t3.micro",
            "local-ipv4": i["local_ipv4"],
            "mac": mac,
            "placement": {"availability-zone": i["availability_zone"], "region": i["region"]},
            "network": {"interfaces": {"macs": {mac: {
                "device-number": "0",
                "interface-id": i["eni_id"],
                "local-ipv4s": i["local_ipv4"],
                "mac": mac,
                "subnet-id": i["subnet_id"],
                "subnet-ipv4-cidr-block": i["subnet_cidr"],
                "vpc-id": i["vpc_id"],
                "vpc-ipv4-cidr-block": i["vpc_cidr"],
                "vpc-ipv4-cidr-blocks": i["vpc_cidr"],
            }}}},
            # The lab's public leg address: what the internet host sees (moto's EIPs are in
            # 127.0.0.0/8 and are never used as addresses).
            "public-ipv4": i.get("public_ipv4", ""),
            "iam": {"info": json.dumps({
                        "Code": "Success", "LastUpdated": creds["LastUpdated"],
                        "InstanceProfileArn":
                            f"arn:aws:iam::{i.get('account_id', '123456789012')}:"
                            f"instance-profile/{i['role']}",
                        "InstanceProfileId": "AIPALABLABLABLABLAB01"}, indent=2),
                    "security-credentials": {i["role"]: json.dumps(creds, indent=2)}},
            "autoscaling": {"target-lifecycle-state":
                            str(ctl.get("target_lifecycle_state") or "InService")},
        }
        spot = ctl.get("spot_instance_action")
        if spot:
            meta["spot"] = {"instance-action": json.dumps(spot)}
        doc = {"accountId": i.get("account_id", "123456789012"),
               "availabilityZone": i["availability_zone"], "region": i["region"],
               "instanceId": i["instance_id"], "privateIp": i["local_ipv4"],
               "instanceType": "t3.micro", "imageId": "ami-12c6146b"}
        return {"latest": {"meta-data": meta,
                           "dynamic": {"instance-identity": {"document": json.dumps(doc)}}}}


def lookup(tree, path):
    node = tree
    for part in [p for p in path.split("/") if p]:
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def make_handler(state):
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "EC2ws"
        sys_version = ""

        # No reverse DNS: the default address_string() is fine (it is numeric), but
        # log_message goes to stderr; we keep our own JSON log instead.
        def log_message(self, fmt, *args):
            pass

        def address_string(self):
            return self.client_address[0]

        def reply(self, status, body="", ctype="text/plain", token_used=False, extra=None):
            data = body.encode()
            self.send_response(status)
            for k, v in (extra or {}).items():
                self.send_header(k, v)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)
            state.write_log({"method": self.command, "path": self.path, "status": status,
                             "token": token_used, "peer": self.client_address[0]})

        def drill(self):
            ctl = state.control()
            delay = ctl.get("delay_ms")
            if isinstance(delay, (int, float)) and 0 < delay <= 60000:
                time.sleep(delay / 1000.0)  # the drill is the delay itself
            st = ctl.get("status")
            if isinstance(st, int) and 100 <= st <= 599:
                self.reply(st, "drill\n")
                return None
            return ctl

        def do_PUT(self):
            length = int(self.headers.get("Content-Length") or 0)
            if 0 < length <= 65536:
                self.rfile.read(length)
            ctl = self.drill()
            if ctl is None:
                return
            if self.path.split("?")[0] != "/latest/api/token":
                self.reply(403 if self.path.startswith("/latest/") else 404, "")
                return
            if self.headers.get("X-Forwarded-For"):
                self.reply(403, "")
                return
            ttl = self.headers.get("X-aws-ec2-metadata-token-ttl-seconds", "")
            if not ttl.isdigit() or not (1 <= int(ttl) <= MAX_TTL):
                self.reply(400, "")
                return
            token = secrets.token_urlsafe(32)
            with state.lock:
                now = time.monotonic()
                # Bound the table: drop expired tokens.
                for k in [k for k, v in state.tokens.items() if v < now]:
                    del state.tokens[k]
                state.tokens[token] = now + int(ttl)
            self.reply(200, token, extra={"X-aws-ec2-metadata-token-ttl-seconds": ttl})

        def do_GET(self):
            ctl = self.drill()
            if ctl is None:
                return
            token = self.headers.get("X-aws-ec2-metadata-token")
            with state.lock:
                exp = state.tokens.get(token) if token else None
            if exp is None or exp < time.monotonic():
                self.reply(401, "", token_used=bool(token))
                return
            path = self.path.split("?")[0]
            node = lookup(state.tree(ctl), path)
            if node is None:
                self.reply(404, "<?xml version=\"1.0\" encoding=\"iso-8859-1\"?>\n"
                           "<title>404 - Not Found</title>\n", ctype="text/html",
                           token_used=True)
            elif isinstance(node, dict):
                lines = [k + "/" if isinstance(v, dict) else k for k, v in node.items()]
                self.reply(200, "\n".join(lines), token_used=True)
            else:
                ctype = "application/json" if node.startswith("{") else "text/plain"
                self.reply(200, node, ctype=ctype, token_used=True)

        def do_POST(self):
            self.reply(405, "")

    return Handler


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def server_bind(self):
        # HTTPServer.server_bind calls socket.getfqdn(), a reverse DNS lookup that hangs in
        # a namespace without a resolver: bind like TCPServer and name the server by number.
        import socketserver
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--info", required=True)
    a = ap.parse_args(argv)
    with open(a.info) as f:
        info = json.load(f)
    state = State(info)
    srv = Server((info.get("address", "169.254.169.254"), int(info.get("port", 80))),
                 make_handler(state))
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=srv.shutdown).start())
    state.write_log({"event": "listening", "address": srv.server_address[0],
                     "port": srv.server_address[1], "pid": os.getpid()})
    srv.serve_forever(poll_interval=0.2)
    srv.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
