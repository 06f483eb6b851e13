#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Secrets and permissions, end to end in the lab (issue 10 item 5).

A full hanatd life with every credential source the daemon has, at debug log level with
every debug component on:
- instance-role credentials from the fake IMDS (AccessKeyId, SecretAccessKey, Token behind
  an IMDSv2 token), both NATs; `hanatctl status`, `status --json`, the metrics textfile,
  every status-socket command; a failover (NAT 2's private link cut) and failback; a reload;
- credentials from the environment (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY /
  AWS_SESSION_TOKEN);
- static credentials from the config file with a wrong secret, so EC2 answers with an
  authentication error that hanatd logs.
Then EVERY line of every hanatd log and every status/metrics output is searched for the
secret access keys, the session tokens and the IMDSv2 tokens hanatd used (captured from
the NAT's loopback with an AF_PACKET socket, so the test knows the exact tokens), and for
their first and last 16 characters.

Also: the status socket's mode and group from the config are honoured, and the plain-http
EC2 endpoint the lab uses is accepted with the warning line the operator must see.

Usage: secrets_e2e.py HANATD HANATCTL. Exit 0 passed, 1 failed, 77 skipped.
"""
import grp
import json
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, HERE)
from hanatlab import Lab, LabUnavailable, netns  # noqa: E402
from hanatlab.lab import child_env  # noqa: E402

HANATD, HANATCTL = sys.argv[1], sys.argv[2]
failures = []
DEBUG_ALL = ["engine", "ec2", "probes", "netfilter", "status", "daemon"]


def check(what, cond, detail=""):
    print(("ok:   " if cond else "FAIL: ") + what + ("" if cond else f" ({detail})"), flush=True)
    if not cond:
        failures.append(what)
    return cond


def poll(fn, timeout, interval=0.05):
    end = time.monotonic() + timeout
    last = None
    while time.monotonic() < end:
        try:
            last = fn()
        except Exception:  # noqa: BLE001 - the daemon may be starting
            last = None
        if last:
            return last
        time.sleep(interval)  # pacing of the poll loop
    return last


class LoopbackTokens:
    """Captures the IMDSv2 tokens on a NAT's loopback (AF_PACKET on "lo" in its namespace):
    every X-aws-ec2-metadata-token header hanatd sends to the fake IMDS, and every token
    body the IMDS hands out (the reply to PUT /latest/api/token)."""

    HDR = re.compile(rb"X-aws-ec2-metadata-token: *([A-Za-z0-9_\-=+/.]{8,})", re.I)

    def __init__(self, ns):
        with netns.in_netns(ns):
            self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
            self.sock.bind(("lo", 0))
        self.sock.settimeout(0.1)
        self.tokens = set()
        self.put_reply_bodies = set()
        self.stopping = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stopping:
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            for m in self.HDR.finditer(data):
                self.tokens.add(m.group(1).decode())
            # The token reply: "HTTP/1.x 200 ... X-aws-ec2-metadata-token-ttl-seconds: N
            # ... \r\n\r\n<token>" (the fake IMDS answers in one segment).
            if b"X-aws-ec2-metadata-token-ttl-seconds" in data and b"HTTP/1." in data:
                body = data.split(b"\r\n\r\n", 1)
                if len(body) == 2 and body[1].strip():
                    self.put_reply_bodies.add(body[1].strip().decode(errors="replace"))

    def close(self):
        self.stopping = True
        self.thread.join(2)
        self.sock.close()


def ctl(sock, *args):
    return subprocess.run([HANATCTL, "--socket", sock] + list(args), capture_output=True,
                          text=True, timeout=15)


def route_target(lab, rtb):
    for t in lab.ec2().describe_route_tables(RouteTableIds=[rtb])["RouteTables"]:
        for r in t["Routes"]:
            if r.get("DestinationCidrBlock") == "0.0.0.0/0":
                return r.get("NetworkInterfaceId")
    return None


def active(lab, nat):
    return lab.hanatd_status(nat).get("node", {}).get("state") == "active"


def pick_group():
    """A group other than root's that exists here (the socket is chgrp'ed to it)."""
    for name in ("daemon", "nogroup", "adm", "users"):
        try:
            return name, grp.getgrnam(name).gr_gid
        except KeyError:
            continue
    g = next(g for g in grp.getgrall() if g.gr_gid != 0)
    return g.gr_name, g.gr_gid


def needles(label, value):
    """The secret and its obvious substrings (first and last 16 characters)."""
    out = {}
    if value and len(value) >= 8:
        out[f"{label}"] = value
        if len(value) > 16:
            out[f"{label} (first 16 chars)"] = value[:16]
            out[f"{label} (last 16 chars)"] = value[-16:]
    return out


def run(lab):
    outputs = {}  # name -> text hanatd showed an operator
    env_secret = env_token = wrong = ""
    group_name, gid = pick_group()
    metrics_file = {k: os.path.join(lab.nat(k)["dir"], "hanat.prom") for k in (1, 2)}
    ov = {"probe": {"interval": "100ms", "timeout": "100ms", "rise": 3, "fall": 3},
          "failover": {"failback_delay": "2s", "handover_timeout": "5s"},
          "ec2": {"route_refresh_interval": "2s"},
          "log": {"level": "debug", "debug": DEBUG_ALL},
          "status": {"mode": "0640", "group": group_name}}
    eni = {k: lab.nat(k)["eni_id"] for k in (1, 2)}
    rt_b = lab.route_table("b")["id"]
    caps = {k: LoopbackTokens(lab.nat(k)["ns"]) for k in (1, 2)}
    role = {k: lab.nat(k)["imds"]["credentials"] for k in (1, 2)}
    try:
        # --- life 1: instance-role credentials through IMDSv2, both NATs, debug logging.
        procs = {}
        for k in (1, 2):
            o = json.loads(json.dumps(ov))
            o["metrics"] = {"textfile": metrics_file[k], "interval": "1s"}
            procs[k], _ = lab.start_hanatd(k, HANATD, o, credentials="instance-role",
                                           name=f"hanatd-role-{k}")
        check("instance-role: both hanatd active",
              poll(lambda: active(lab, 1) and active(lab, 2), 40))
        sock1 = os.path.join(lab.nat(1)["dir"], "hanatd.sock")
        st = os.stat(sock1)
        check("status socket mode 0640 as configured", stat.S_IMODE(st.st_mode) == 0o640,
              oct(st.st_mode))
        check(f"status socket group {group_name!r} as configured", st.st_gid == gid,
              f"gid {st.st_gid}, want {gid}")
        log1 = open(os.path.join(lab.dir, "hanatd-role-1.log"), errors="replace").read()
        check("the plain-http EC2 endpoint is accepted with a warning",
              re.search(r'ec2\.endpoint "http://[0-9.:]+/?" is plain http: requests are not '
                        r'encrypted', log1) is not None, log1[-600:])
        for k in (1, 2):
            for args in (("status",), ("status", "--json")):
                r = ctl(os.path.join(lab.nat(k)["dir"], "hanatd.sock"), *args)
                check(f"hanatctl {' '.join(args)} on NAT {k} exits 0", r.returncode == 0,
                      r.stderr)
                outputs[f"nat{k} hanatctl {' '.join(args)}"] = r.stdout + r.stderr
        for cmd in ("status", "metrics", "config", "debug", "help", "nope"):
            outputs[f"nat1 request {cmd}"] = json.dumps(lab.hanatd_request(1, {"cmd": cmd}))
        # Failover and failback while the role credentials are in use.
        lab.set_link(2, "private", False, mode="drop")
        check("failover: table b moved to NAT 1",
              poll(lambda: route_target(lab, rt_b) == eni[1], 15, 0.05))
        lab.set_link(2, "private", True, mode="drop")
        check("failback: table b back on NAT 2",
              poll(lambda: route_target(lab, rt_b) == eni[2] and active(lab, 2), 30, 0.1))
        # Reload (same file): a new generation.
        gen = lab.hanatd_status(1).get("config", {}).get("generation")
        procs[1].send_signal(signal.SIGHUP)
        check("reload: a new config generation",
              poll(lambda: lab.hanatd_status(1).get("config", {}).get("generation") != gen, 10))
        for k in (1, 2):
            if os.path.exists(metrics_file[k]):
                outputs[f"nat{k} metrics textfile"] = open(metrics_file[k]).read()
        outputs["nat1 status after reload"] = json.dumps(lab.hanatd_status(1))
        for k in (1, 2):
            lab.stop(f"hanatd-role-{k}")
        check("IMDSv2 tokens were captured on the loopback (the test can see them)",
              caps[1].tokens and caps[2].tokens, (caps[1].tokens, caps[2].tokens))

        # --- life 2: credentials from the environment (with a session token).
        # Temporary credentials from moto's STS, so the session token is one EC2 accepts.
        sts = lab.ec2("sts").assume_role(
            RoleArn=f"arn:aws:iam::{lab.desc['account_id']}:role/{lab.nat(1)['imds']['role']}",
            RoleSessionName="hanat-secrets-test")["Credentials"]
        env_secret, env_token = sts["SecretAccessKey"], sts["SessionToken"]
        cfg = lab.write_config(1, {**ov, "ec2": {**ov["ec2"], "credentials": "environment"}},
                               credentials="instance-role")
        env = child_env()
        env.update(AWS_ACCESS_KEY_ID=sts["AccessKeyId"], AWS_SECRET_ACCESS_KEY=env_secret,
                   AWS_SESSION_TOKEN=env_token)
        lab.spawn(lab.nat(1)["ns"], [HANATD, "--config", cfg], "hanatd-env-1", env=env)
        check("environment credentials: hanatd active", poll(lambda: active(lab, 1), 30),
              open(os.path.join(lab.dir, "hanatd-env-1.log"), errors="replace").read()[-1500:])
        outputs["env nat1 status --json"] = ctl(sock1, "status", "--json").stdout
        lab.stop("hanatd-env-1")

        # --- life 3: static credentials in the file with a wrong secret -> EC2 refuses.
        wrong = "WrongSecretKeyForHanatSecretsTest" + "z" * 7 + "WrongTail0123456"
        cfg = lab.write_config(1, {**ov, "ec2": {**ov["ec2"], "secret_access_key": wrong}})
        lab.spawn(lab.nat(1)["ns"], [HANATD, "--config", cfg], "hanatd-wrong-1")
        wlog = os.path.join(lab.dir, "hanatd-wrong-1.log")
        hit = poll(lambda: re.search(r"(AuthFailure|SignatureDoesNotMatch|InvalidClientTokenId)",
                                     open(wlog, errors="replace").read()), 30)
        check("a wrong secret: hanatd logs EC2's authentication error", hit,
              open(wlog, errors="replace").read()[-600:])
        r = ctl(sock1, "status", "--json")
        outputs["wrong-secret nat1 status --json"] = r.stdout + r.stderr
        lab.stop("hanatd-wrong-1")
    finally:
        for c in caps.values():
            c.close()

    secrets = {}
    secrets.update(needles("lab secret access key", lab.desc["credentials"]["secret_access_key"]))
    for k in (1, 2):
        secrets.update(needles(f"NAT {k} role SecretAccessKey", role[k].get("SecretAccessKey")))
        secrets.update(needles(f"NAT {k} role session Token", role[k].get("Token")))
        for i, t in enumerate(sorted(caps[k].tokens | caps[k].put_reply_bodies)):
            secrets.update(needles(f"NAT {k} IMDSv2 token #{i}", t))
    secrets.update(needles("environment secret access key", env_secret))
    secrets.update(needles("environment session token", env_token))
    secrets.update(needles("wrong secret access key", wrong))
    check("there are secrets to look for (role keys, tokens, IMDSv2 tokens)",
          len(secrets) >= 12, sorted(secrets))

    texts = dict(outputs)
    logs = sorted(f for f in os.listdir(lab.dir) if f.startswith("hanatd-") and f.endswith(".log"))
    nlines = 0
    for f in logs:
        text = open(os.path.join(lab.dir, f), errors="replace").read()
        nlines += text.count("\n")
        texts[f"log {f}"] = text
    role1 = texts.get("log hanatd-role-1.log", "")
    check(f"logs of the 4 hanatd runs to search ({nlines} lines), the failover in them",
          len(logs) == 4 and "route " + lab.route_table("b")["id"] in role1, role1[-2000:])
    def search(texts):
        found = []
        for where, text in texts.items():
            for lineno, line in enumerate(text.splitlines(), 1):
                for what, needle in secrets.items():
                    if needle in line:
                        found.append(f"{what} in {where} line {lineno}: {line[:160]}")
        return found

    # Control: the search finds the wrong secret in the config file that holds it.
    wrong_cfg = open(os.path.join(lab.nat(1)["dir"], "hanat.toml")).read()
    check("control: the search finds a secret where it is (life 3's hanat.toml)",
          any("wrong secret access key" in f for f in search({"hanat.toml": wrong_cfg})))
    leaks = search(texts)
    check(f"no secret, token or IMDSv2 token in any log line or status/metrics output "
          f"({len(secrets)} needles, {len(texts)} texts)", not leaks, "; ".join(leaks[:5]))


def main():
    try:
        lab_cm = Lab(nats=2, hosts_per_zone=1, name="secr")
        lab = lab_cm.__enter__()
    except LabUnavailable as e:
        print(f"SKIPPED: {e}")
        return 77
    try:
        run(lab)
    finally:
        lab_cm.__exit__(None, None, None)
    if failures:
        print(f"FAILED: {len(failures)} check(s): " + "; ".join(failures))
        return 1
    print("PASSED: no secret in logs or status; socket permissions; http endpoint warning")
    return 0


if __name__ == "__main__":
    sys.exit(main())
