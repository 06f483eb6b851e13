# SPDX-License-Identifier: GPL-2.0-or-later
"""The e2e lab: network namespaces for NAT hosts, private hosts, an internet host and an
EC2 API (moto_server), seeded so that EC2's view matches the lab's addresses, with a fake
IMDS per NAT and a fabric that applies the route tables to the private hosts.

Topology (every interface lives in a lab namespace; nothing is added to the root one):

  private hosts a1.. (zone a), b1.. (zone b)      eth0 198.18.Z.(10+j)/16
        |                                          (Z = zone index: a=1, b=2)
  [sw] br0 — the VPC's private L2 segment
        |
  NAT k  priv 198.18.(100+Z).(10+k)/16   (= its ENI's private IP in moto, same MAC)
         pub  198.19.0.(10+k)/24  --- [inet] br0 198.19.0.1 (internet host: UDP sink,
         mgmt 198.19.254.(10+k)/24 --- [api] br0 198.19.254.1  TCP whoami, ping)
         lo   169.254.169.254 (fake IMDS on :80)          moto_server on :<free port>, fabric

The VPC is 198.18.0.0/16 and every private-segment address is configured as /16, which
plays the VPC's "local" route: all VPC addresses are on-link, as they are in a VPC.

Elastic IPs: NAT k's EIP is 198.19.1.(10+k) (`elastic_address`). moto's own EIP addresses
are in 127/8 (never a path to anything), so the EC2 proxy reports the lab's address in
their place in DescribeInstances, and the internet namespace plays the internet gateway's
1:1 NAT for it: traffic to 198.19.1.(10+k) is translated to NAT k's private address and
delivered on the VPC segment (the inet namespace's "vpc" veth, 198.18.255.1/32, port "igw"
of the switch) to NAT k's private leg, which stands for its ENI; a NAT that sends it has
its source translated to its own Elastic IP, so the reply (out of the receiver's public
leg) comes back through the gateway, as between two EC2 instances talking over their
public addresses. A NAT whose private leg is cut is therefore silent on both paths, as an
instance whose ENI is dead.
"""

import atexit
import contextlib
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

from hanatlab import config as cfgmod
from hanatlab import netns
from hanatlab.netns import LabError, ip, run
from hanatlab import traffic

E2E_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STATE_ROOT = os.environ.get("HANAT_LAB_ROOT", tempfile.gettempdir())
VPC_CIDR = "198.18.0.0/16"
INET_ADDR = "198.19.0.1"
API_ADDR = "198.19.254.1"
ELASTIC_PREFIX = "198.19.1."  # NAT k's Elastic IP: ELASTIC_PREFIX + str(10 + k)
IGW_VPC_ADDR = "198.18.255.1"  # the internet gateway's address on the VPC segment
IMDS_ADDR = "169.254.169.254"
ROLE = "hanat-nat"
ACCOUNT = "123456789012"
PRIVATE_ZONES = ("a", "b")
ZONE_INDEX = {"a": 1, "b": 2, "c": 3}


class LabUnavailable(LabError):
    """The machine cannot run the lab (not root, a tool missing): tests skip on this."""


def prerequisites(masquerade=True):
    """Problems that prevent the lab from running here, as a list of sentences."""
    probs = []
    if os.geteuid() != 0:
        probs.append("not root (network namespaces need CAP_SYS_ADMIN and CAP_NET_ADMIN)")
    for tool in ["ip"] + (["nft"] if masquerade else []):
        if shutil.which(tool) is None:
            probs.append(f"`{tool}` is not installed")
    import importlib.util
    for mod in ("boto3", "moto.server"):
        # find_spec of a submodule imports its package, and importing moto takes most of a
        # second: look for moto/server.py in the package's directory instead.
        top, _, sub = mod.partition(".")
        try:
            spec = importlib.util.find_spec(top)
        except ImportError:
            spec = None
        found = spec is not None and (not sub or any(
            os.path.exists(os.path.join(d, sub + ".py"))
            for d in spec.submodule_search_locations or []))
        if not found:
            probs.append(f"{sys.executable} has no module {mod} (boto3 and moto_server ship "
                         "with the machine image's python3)")
    return probs


def deadline_poll(what, fn, timeout, interval=0.02, fail=None):
    """Calls fn() until it returns a truthy value or `timeout` seconds pass (then raises
    LabError naming `what`, plus what fail() returns, when given, to explain the state).
    Bounded in time and, through the interval, in count."""
    end = time.monotonic() + timeout
    last_exc = None
    while True:
        try:
            v = fn()
            if v:
                return v
        except Exception as e:  # noqa: BLE001 - reported on timeout
            last_exc = e
        if time.monotonic() >= end:
            extra = fail() if fail else ""
            raise LabError(f"timed out after {timeout}s waiting for {what}" +
                           (f" (last error: {last_exc})" if last_exc else "") +
                           (f"; {extra}" if extra else ""))
        time.sleep(interval)  # pacing of the deadline loop


def write_json(path, obj):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=False)
    os.replace(tmp, path)


def child_env():
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env["PYTHONPATH"] = E2E_DIR + (":" + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # no __pycache__ in the source tree
    env.pop("AWS_PROFILE", None)
    return env


# ---------------------------------------------------------------------------------------
# Teardown from a state file, shared by Lab.down() and `lab.py down`.

def teardown_state(state, keep_dir=False):
    """Stops the lab's processes, removes its namespaces and (unless keep_dir) its
    directory. Idempotent. Returns a list of problems (empty when all went)."""
    problems = []
    # What a test started after the lab was up (hanatd above all) stops first, one at a
    # time, newest first, while EC2 and the fakes still answer: a hanatd's SIGTERM hands its
    # routes over. Then the lab's own processes, all at once.
    procs = state.get("processes", [])
    infra = state.get("infra_processes", len(procs))
    for rec in reversed(procs[infra:]):
        try:
            netns.stop_process(rec)
        except Exception as e:  # noqa: BLE001
            problems.append(f"stopping pid {rec.get('pid')}: {e}")
    try:
        netns.stop_processes(procs[:infra])
    except Exception as e:  # noqa: BLE001
        problems.append(f"stopping the lab's processes: {e}")
    for ns in reversed(state.get("namespaces", [])):
        if not netns.netns_exists(ns):
            continue
        # Anything still running in a namespace this lab created was started for the lab
        # (e.g. a hanatd a test spawned by hand): end it by pid so the namespace can go.
        for pid in netns.netns_pids(ns):
            netns.stop_process({"pid": pid, "start": netns.proc_starttime(pid)}, 2.0)
        cp = run(["ip", "netns", "del", ns], check=False)
        if cp.returncode != 0 and netns.netns_exists(ns):
            problems.append(f"ip netns del {ns}: {cp.stderr.strip()}")
    d = state.get("dir")
    if d and not keep_dir and os.path.isdir(d) and os.path.basename(d).startswith("hanat-lab-"):
        shutil.rmtree(d, ignore_errors=True)
        if os.path.exists(d):
            problems.append(f"cannot remove {d}")
    return problems


def leftovers(state):
    """What of a torn-down lab is still there (namespaces, live processes, files)."""
    left = []
    for ns in state.get("namespaces", []):
        if netns.netns_exists(ns):
            left.append(f"namespace {ns}")
    for rec in state.get("processes", []):
        if netns.alive(rec):
            left.append(f"process {rec['pid']} ({' '.join(rec['argv'][:3])})")
    d = state.get("dir")
    if d and os.path.exists(d):
        left.append(f"directory {d}")
    return left


_active = []
_active_lock = threading.Lock()
_hooks_installed = False


def _cleanup_all():
    with _active_lock:
        labs = list(_active)
    for lab in labs:
        lab.down()


def _on_sigterm(signum, frame):
    # Unwind like Ctrl-C does, so `with Lab()` blocks and finally clauses run; atexit is
    # the safety net for labs used without `with`.
    raise SystemExit(128 + signum)


def _install_hooks():
    global _hooks_installed
    if _hooks_installed:
        return
    _hooks_installed = True
    atexit.register(_cleanup_all)
    if threading.current_thread() is threading.main_thread():
        if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
            signal.signal(signal.SIGTERM, _on_sigterm)
        # SIGINT keeps Python's default: KeyboardInterrupt unwinds the same way (an
        # ignored SIGINT, e.g. in a background job, stays ignored).
        if signal.getsignal(signal.SIGINT) == signal.SIG_DFL:
            signal.signal(signal.SIGINT, signal.default_int_handler)


@contextlib.contextmanager
def _signals_blocked():
    """Defers SIGINT/SIGTERM (main thread only: Python runs handlers there) until the end
    of the block."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


class _MotoWarmUp(threading.Thread):
    """Waits for moto_server to listen, then sends it one EC2 request so that its EC2
    models are loaded before seeding starts. result() joins and returns the port (or raises
    what went wrong)."""

    def __init__(self, api_ns, log_path, proc, region):
        super().__init__(name="moto-warm-up", daemon=True)
        self.api_ns, self.log_path, self.proc, self.region = api_ns, log_path, proc, region
        self.port, self.error = None, None

    def _port(self):
        with open(self.log_path) as f:
            m = re.search(r"Running on http://[0-9.]+:(\d+)", f.read())
        if self.proc.poll() is not None:
            raise LabError(f"moto_server exited; see {self.log_path}")
        return int(m.group(1)) if m else None

    def run(self):
        try:
            self.port = deadline_poll("moto_server to listen", self._port, 30)
            # moto routes a request by its SigV4 credential scope (MOTO.md): a request
            # signed for ec2 with any key loads EC2; signatures are not checked yet.
            import boto3
            import botocore.config
            with netns.in_netns(self.api_ns):
                boto3.client("ec2", endpoint_url=f"http://{API_ADDR}:{self.port}",
                             region_name=self.region, aws_access_key_id="lab-setup",
                             aws_secret_access_key="lab-setup",
                             config=botocore.config.Config(
                                 retries={"max_attempts": 3}, connect_timeout=2,
                                 read_timeout=30)).describe_vpcs()
        except BaseException as e:  # noqa: BLE001 - handed to result()
            self.error = e

    def result(self):
        self.join(60)
        if self.is_alive():
            raise LabError("moto_server did not answer a first EC2 request within 60 s")
        if self.error is not None:
            raise self.error
        return self.port


_ids = {}


def _unique_id(prefix):
    """prefix + pid, and a counter for a second lab of the same name in one process."""
    n = _ids[prefix] = _ids.get(prefix, 0) + 1
    return f"{prefix}{os.getpid()}" + (f"n{n}" if n > 1 else "")


class NsClient:
    """A boto3 client whose calls run with the calling thread inside the API namespace, so
    a test in the root namespace can talk to moto (sockets are made per call: moto closes
    every connection)."""

    def __init__(self, client, ns):
        self._client = client
        self._ns = ns

    def __getattr__(self, name):
        attr = getattr(self._client, name)
        if not callable(attr):
            return attr

        def call(*a, **kw):
            with netns.in_netns(self._ns):
                return attr(*a, **kw)
        return call


class Stream:
    """A UDP stream from a private host to the internet host; stop() returns the analysis
    (see traffic.analyse)."""

    def __init__(self, lab, host, stream_id, rate, proc, rec, summary):
        self.lab, self.host, self.id, self.rate = lab, host, stream_id, rate
        self.proc, self.rec, self.summary_path = proc, rec, summary
        self.result = None

    def packets(self):
        return traffic.read_sink(self.lab.desc["internet"]["sink_log"], self.id)

    def received(self):
        return len(self.packets())

    def wait_received(self, n, timeout=5.0):
        return deadline_poll(f"{n} packets of stream {self.id} at the internet host",
                             lambda: self.received() >= n, timeout)

    def stop(self, drain_timeout=2.0):
        if self.result is not None:
            return self.result
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            netns.stop_process(self.rec)
        summary = None
        if os.path.exists(self.summary_path):
            with open(self.summary_path) as f:
                summary = json.load(f)
        # Packets still in flight: wait until the sink has every packet sent before the
        # last one that arrived, bounded by drain_timeout.
        if summary:
            end = time.monotonic() + drain_timeout
            last = -1
            while time.monotonic() < end:
                n = self.received()
                if n >= summary["sent"] or n == last:
                    break
                last = n
                time.sleep(0.05)  # pacing of the drain poll (deadline and no-progress exit)
        self.result = traffic.analyse(self.packets(), summary)
        self.result["summary"] = summary
        return self.result


class Lab:
    """See the module docstring and tests/e2e/README.md."""

    def __init__(self, nats=2, hosts_per_zone=1, name=None, group="lab", region="us-east-1",
                 nat_zones=None, forwarding=False, masquerade=False, fabric_interval_ms=50,
                 agent_port=4790, keep_dir=False, tables_per_zone=1, tag_everything=False):
        if not 1 <= nats <= 3:
            raise ValueError(f"nats={nats}: the lab has 1 to 3 NAT hosts")
        if not 1 <= hosts_per_zone <= 8:
            raise ValueError(f"hosts_per_zone={hosts_per_zone}: must be 1 to 8")
        if not 1 <= tables_per_zone <= min(4, hosts_per_zone):
            raise ValueError(f"tables_per_zone={tables_per_zone}: 1 to 4 and at most "
                             f"hosts_per_zone ({hosts_per_zone}), so every table has a host")
        if not 10 <= fabric_interval_ms <= 5000:
            raise ValueError(f"fabric_interval_ms={fabric_interval_ms}: must be 10 to 5000")
        self.nat_zones = list(nat_zones or ["a", "b", "c"][:nats])
        if len(self.nat_zones) != nats or any(z not in "abc" or len(z) != 1
                                              for z in self.nat_zones):
            raise ValueError(f"nat_zones={nat_zones!r}: need {nats} zone letters from a, b, c")
        prefix = name or "hl"
        if not re.fullmatch(r"[a-z][a-z0-9]{0,11}", prefix):
            raise ValueError(f"name={name!r}: 1-12 lowercase letters/digits, starting "
                             "with a letter")
        self.id = _unique_id(prefix)
        self.nats, self.hosts_per_zone, self.group, self.region = (nats, hosts_per_zone,
                                                                    group, region)
        self.forwarding, self.masquerade = forwarding, masquerade
        # HANAT_LAB_KEEP=1 keeps every lab's directory (logs, status, the fabric's events)
        # after teardown, for a look at a run that failed.
        keep_dir = keep_dir or os.environ.get("HANAT_LAB_KEEP", "") == "1"
        self.fabric_interval_ms, self.agent_port, self.keep_dir = (fabric_interval_ms,
                                                                    agent_port, keep_dir)
        self.tables_per_zone, self.tag_everything = tables_per_zone, bool(tag_everything)
        self.state = {"id": self.id, "dir": None, "namespaces": [], "processes": [],
                      "creator_pid": os.getpid(),
                      "creator_start": netns.proc_starttime(os.getpid()), "detached": False}
        self.desc = None
        self.desc_path = None
        self._procs = {}
        self._streams = 0
        self._down = False

    @classmethod
    def attach(cls, desc_path):
        """A Lab object for a lab that is already up (e.g. `lab.py up`, from its lab.json).
        It does not own the lab: down() leaves it running (use `lab.py down`); processes it
        spawn()s are recorded in the lab's state file, so `lab.py down` stops them too."""
        with open(desc_path) as f:
            desc = json.load(f)
        with open(desc["state"]) as f:
            state = json.load(f)
        self = cls.__new__(cls)
        self.id, self.region, self.group = desc["id"], desc["region"], desc["group"]
        self.desc, self.desc_path, self.dir, self.state = desc, desc_path, desc["dir"], state
        self.keep_dir = False
        self._procs, self._streams, self._down = {}, 0, True
        return self

    # -- lifecycle -----------------------------------------------------------------------

    def __enter__(self):
        self.up()
        return self

    def __exit__(self, *exc):
        self.down()
        return False

    def up(self):
        probs = prerequisites(self.masquerade)
        if probs:
            raise LabUnavailable("the e2e lab cannot run here: " + "; ".join(probs))
        _install_hooks()
        self.state["dir"] = tempfile.mkdtemp(prefix=f"hanat-lab-{self.id}-", dir=STATE_ROOT)
        self.dir = self.state["dir"]
        self._save_state()
        with _active_lock:
            _active.append(self)
        try:
            self._build()
        except BaseException:
            self.down()
            raise
        return self

    def down(self):
        """Tears everything down (idempotent). Returns the list of problems."""
        if self._down:
            return []
        # A second Ctrl-C must not cut the teardown short.
        with _signals_blocked():
            probs = teardown_state(self.state, keep_dir=self.keep_dir)
            self._down = True
            with _active_lock:
                if self in _active:
                    _active.remove(self)
        return probs

    def detach(self):
        """Leaves the lab running after this process exits (`lab.py up`); `lab.py down`
        removes it later from its state file."""
        self.state["detached"] = True
        self._save_state()
        with _active_lock:
            if self in _active:
                _active.remove(self)

    def leftovers(self):
        return leftovers(self.state)

    def _save_state(self):
        write_json(os.path.join(self.dir, "state.json"), self.state)

    def _ns(self, role):
        name = f"{self.id}-{role}"
        if netns.netns_exists(name):
            raise LabError(f"network namespace {name} already exists (a lab of a previous "
                           "process with the same pid? `lab.py down --all` removes orphans)")
        # Recorded before it exists, so a signal between the two cannot leak it.
        self.state["namespaces"].append(name)
        self._save_state()
        run(["ip", "netns", "add", name])
        ip(name, "link", "set", "lo", "up")
        return name

    def spawn(self, ns, argv, name, env=None):
        """Starts argv in namespace ns (its output goes to <dir>/<name>.log); the lab stops
        it (SIGTERM, then SIGKILL) on teardown. Returns the Popen."""
        log = os.path.join(self.dir, f"{name}.log")
        # Signals are not blocked here: the child would inherit the mask and ignore
        # SIGTERM. A Ctrl-C between Popen and the record below cannot leak the process
        # either: teardown also ends every process left inside the lab's namespaces.
        p, rec = netns.spawn(ns, argv, log, env=env or child_env())
        rec["name"] = name
        self.state["processes"].append(rec)
        self._save_state()
        self._procs[name] = (p, rec)
        return p

    def stop(self, name):
        """Stops a process started with spawn() (by its name)."""
        p, rec = self._procs[name]
        netns.stop_process(rec)
        p.poll()

    def exec(self, ns, argv, timeout=20, check=True):
        """Runs a short command in namespace ns and returns the CompletedProcess."""
        return run(["ip", "netns", "exec", ns] + list(argv), check=check, timeout=timeout)

    def python(self, ns, module, args, timeout=20, check=True):
        """Runs `python3 -m hanatlab.<module> args` in namespace ns."""
        cp = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-m",
                             f"hanatlab.{module}"] + list(args), capture_output=True,
                            text=True, timeout=timeout, env=child_env(),
                            stdin=subprocess.DEVNULL)
        if check and cp.returncode != 0:
            raise LabError(f"hanatlab.{module} {' '.join(args)} in {ns} failed: "
                           f"{cp.stderr.strip()[-400:]}")
        return cp

    # -- building ------------------------------------------------------------------------

    def _veth(self, ns_a, name_a, ns_b, name_b, master=None):
        ip(ns_a, "link", "add", name_a, "type", "veth", "peer", "name", name_b, "netns", ns_b)
        if master:
            ip(ns_a, "link", "set", name_a, "master", master)
        ip(ns_a, "link", "set", name_a, "up")

    def _build(self):
        t_start = time.monotonic()
        sw, inet, api = self._ns("sw"), self._ns("inet"), self._ns("api")
        for ns in (sw, inet, api):
            ip(ns, "link", "add", "br0", "type", "bridge")
            # A bridge without an address of its own takes the lowest MAC of its ports and
            # changes it when that port goes (a NAT removed) or a lower one comes (a NAT
            # added): the NATs' neighbour entries for the internet host and the EC2 API
            # would then point at a MAC nobody has until they are re-resolved (seconds of
            # failed egress checks and EC2 calls). A fixed, locally administered MAC.
            ip(ns, "link", "set", "br0", "address",
               "02:" + ":".join(f"{random.randrange(256):02x}" for _ in range(5)))
            ip(ns, "link", "set", "br0", "up")
        ip(inet, "addr", "add", f"{INET_ADDR}/24", "dev", "br0")
        # The internet namespace routes traffic to the NATs' Elastic IPs back out of the
        # port it came in on (the internet gateway's hairpin): no ICMP redirect, which would
        # send a NAT straight to its peer's public leg, where the Elastic IP is unknown.
        for key in ("all", "default", "br0"):
            self.exec(inet, ["sysctl", "-qw", f"net.ipv4.conf.{key}.send_redirects=0"])
        self.exec(inet, ["sysctl", "-qw", "net.ipv4.ip_forward=1"])
        # The internet gateway's attachment to the VPC: Elastic-IP traffic reaches a NAT on
        # its private leg (the ENI, as in EC2, where one ENI carries both), so a NAT whose
        # private leg is cut is silent on both probe paths. Only /32 routes to the NATs use
        # it (no VPC-wide route: the internet host must not answer un-NATed private
        # sources directly).
        self._veth(sw, "igw", inet, "vpc", "br0")
        ip(inet, "addr", "add", f"{IGW_VPC_ADDR}/32", "dev", "vpc")
        ip(inet, "link", "set", "vpc", "up")
        ip(api, "addr", "add", f"{API_ADDR}/24", "dev", "br0")

        # moto_server first: it takes about a second to listen and three more to load its
        # EC2 models on the first EC2 request (moto.ec2.models imports for ~2.5 s). A thread
        # makes that first request while this one builds the rest of the topology.
        moto_log = os.path.join(self.dir, "moto.log")
        self.spawn(api, [sys.executable, "-m", "moto.server", "-H", API_ADDR, "-p", "0"], "moto")
        warm = _MotoWarmUp(api, moto_log, self._procs["moto"][0], self.region)
        warm.start()

        zones_used = sorted(set(PRIVATE_ZONES) | set(self.nat_zones))
        zone_index = ZONE_INDEX
        nats = [self._nat_host(k, self.nat_zones[k - 1]) for k in range(1, self.nats + 1)]

        hosts = []
        for z in PRIVATE_ZONES:
            for j in range(1, self.hosts_per_zone + 1):
                name = f"{z}{j}"
                ns = self._ns(name)
                # Host j sits in the subnet of its zone's ((j - 1) mod tables)-th table.
                t = (j - 1) % self.tables_per_zone
                addr = f"198.18.{zone_index[z] + 10 * t}.{10 + j}"
                self._veth(sw, f"h{name}", ns, "eth0", "br0")
                ip(ns, "addr", "add", f"{addr}/16", "dev", "eth0")
                ip(ns, "link", "set", "eth0", "up")
                hosts.append({"name": name, "ns": ns, "zone_letter": z,
                              "zone": self.region + z, "address": addr, "dev": "eth0",
                              "table_index": t, "switch_port": [sw, f"h{name}"]})

        port = warm.result()
        endpoint = f"http://{API_ADDR}:{port}"

        # The EC2 fault proxy in front of moto (hanatlab/ec2proxy.py): hanatd's and the
        # AWS CLI's endpoint; lab.ec2() and the fabric keep talking to moto directly.
        proxy = {"control": os.path.join(self.dir, "ec2-fault.json"),
                 "log": os.path.join(self.dir, "ec2-proxy.log"),
                 "ready": os.path.join(self.dir, "ec2-proxy-ready.json"),
                 "public_map": os.path.join(self.dir, "ec2-public-map.json"),
                 "eip_state": os.path.join(self.dir, "ec2-eip-state.json")}
        write_json(proxy["control"], {"mode": None})
        write_json(proxy["public_map"], {})
        self.spawn(api, [sys.executable, "-m", "hanatlab.ec2proxy", "--listen", API_ADDR,
                         "--upstream", f"{API_ADDR}:{port}", "--control", proxy["control"],
                         "--log", proxy["log"], "--ready", proxy["ready"],
                         "--public-map", proxy["public_map"],
                         "--eip-state", proxy["eip_state"]], "ec2proxy")

        def proxy_port():
            if self._procs["ec2proxy"][0].poll() is not None:
                with open(os.path.join(self.dir, "ec2proxy.log")) as f:
                    raise LabError("the EC2 proxy exited: " + f.read()[-600:])
            return os.path.exists(proxy["ready"]) and json.load(open(proxy["ready"]))["port"]

        inet_ready = os.path.join(self.dir, "inet-ready.json")
        sink_log = os.path.join(self.dir, "udp-sink.log")
        self.spawn(inet, [sys.executable, "-m", "hanatlab.inet", "--address", INET_ADDR,
                          "--ready", inet_ready, "--sink-log", sink_log], "inet")

        # Seeding talks to moto directly; the proxy and the internet host start meanwhile.
        from hanatlab import seed
        seeded = seed.seed(self, api, endpoint, nats, hosts, zones_used, zone_index,
                           tables_per_zone=self.tables_per_zone,
                           tag_everything=self.tag_everything)
        proxy["port"] = deadline_poll("the EC2 fault proxy to listen", proxy_port, 10)
        proxy["endpoint"] = f"http://{API_ADDR}:{proxy['port']}"

        for nat in nats:
            # The NAT's private leg carries its ENI's MAC, as eth0 does on an instance.
            ip(nat["ns"], "link", "set", "priv", "address", nat["mac"])
            ip(nat["ns"], "link", "set", "priv", "up")

        self.desc = {
            "id": self.id, "dir": self.dir, "region": self.region, "group": self.group,
            "account_id": ACCOUNT, "agent_port": self.agent_port,
            "vpc": {"id": seeded["vpc_id"], "cidr": VPC_CIDR,
                    "internet_gateway": seeded["internet_gateway"],
                    "public_route_table": seeded["public_route_table"],
                    "transit_gateway": seeded["transit_gateway"],
                    "nat_gateway": seeded["nat_gateway"]},
            "tag_everything": self.tag_everything, "removed_nats": [],
            "api": {"ns": api, "address": API_ADDR, "port": port, "endpoint": endpoint,
                    "log": moto_log},
            "ec2_proxy": proxy,
            "credentials": seeded["credentials"],
            "internet": {"ns": inet, "address": INET_ADDR, "sink_log": sink_log},
            "switch": {"ns": sw},
            "zones": seeded["zones"],
            "route_tables": seeded["route_tables"],
            "nats": nats, "hosts": hosts,
            "fabric": {"log": os.path.join(self.dir, "fabric.log"),
                       "status": os.path.join(self.dir, "fabric-status.json"),
                       "control": os.path.join(self.dir, "fabric-control.json"),
                       "interval_ms": self.fabric_interval_ms},
            "namespaces": list(self.state["namespaces"]),
            "state": os.path.join(self.dir, "state.json"),
        }
        self.desc_path = os.path.join(self.dir, "lab.json")
        ports = deadline_poll("the internet host's services",
                              lambda: os.path.exists(inet_ready) and json.load(open(inet_ready)),
                              10)
        self.desc["internet"].update(udp_port=ports["udp_port"], tcp_port=ports["tcp_port"])

        for nat in nats:
            self._start_imds(nat)
        self._apply_igw()

        write_json(self.desc_path, self.desc)
        self.spawn(api, [sys.executable, "-m", "hanatlab.fabric", "--desc", self.desc_path],
                   "fabric")
        for nat in nats:
            deadline_poll(f"the IMDS of {nat['name']}",
                          lambda n=nat: self.imds_request(n["name"], "/latest/meta-data/"
                                                          "instance-id")[0] == 200, 10)
        deadline_poll("the fabric's first routes", lambda: self._fabric_settled(), 20)
        self.state["infra_processes"] = len(self.state["processes"])
        self._save_state()
        self.desc["build_seconds"] = round(time.monotonic() - t_start, 2)
        self.desc["namespaces"] = list(self.state["namespaces"])
        write_json(self.desc_path, self.desc)

    def _nat_host(self, k, z):
        """NAT host k's namespace in zone z, wired to the three switches; returns its
        description (without the EC2 ids, which seeding adds)."""
        sw, inet, api = f"{self.id}-sw", f"{self.id}-inet", f"{self.id}-api"
        zi = ZONE_INDEX[z]
        ns = self._ns(f"nat{k}")
        nat = {"name": f"nat{k}", "index": k, "ns": ns, "zone_letter": z,
               "zone": self.region + z,
               "private_address": f"198.18.{100 + zi}.{10 + k}",
               "public_address": f"198.19.0.{10 + k}",
               "elastic_address": f"{ELASTIC_PREFIX}{10 + k}",
               "mgmt_address": f"198.19.254.{10 + k}",
               "interfaces": {"private": "priv", "public": "pub", "mgmt": "mgmt"},
               "switch_ports": {"private": [sw, f"n{k}"], "public": [inet, f"n{k}"],
                                "mgmt": [api, f"n{k}"]}}
        self._veth(sw, f"n{k}", ns, "priv", "br0")
        # AWS's intra-VPC MTU (9001) on the NATs' VPC legs: the steering tunnel between
        # members (netfilter/steer.h, VXLAN, 50 bytes) then carries 1500-byte packets from
        # one NAT to the other unfragmented, as it does in a VPC.
        ip(sw, "link", "set", f"n{k}", "mtu", "9001")
        ip(ns, "link", "set", "priv", "mtu", "9001")
        self._veth(inet, f"n{k}", ns, "pub", "br0")
        self._veth(api, f"n{k}", ns, "mgmt", "br0")
        ip(ns, "addr", "add", f"{nat['private_address']}/16", "dev", "priv")
        ip(ns, "addr", "add", f"{nat['public_address']}/24", "dev", "pub")
        ip(ns, "addr", "add", f"{nat['mgmt_address']}/24", "dev", "mgmt")
        ip(ns, "addr", "add", f"{IMDS_ADDR}/32", "dev", "lo")
        for dev in ("pub", "mgmt"):
            ip(ns, "link", "set", dev, "up")
        ip(ns, "route", "add", "default", "via", INET_ADDR, "dev", "pub")
        if self.forwarding:
            self.exec(ns, ["sysctl", "-qw", "net.ipv4.ip_forward=1"])
        if self.masquerade:
            # Stands in for hanatd's table in lab self-tests; hanatd owns table "hanat".
            run(["ip", "netns", "exec", ns, "nft", "-f", "-"], input_text=(
                "table ip lab_masq {\n chain post {\n"
                "  type nat hook postrouting priority srcnat; policy accept;\n"
                "  oifname \"pub\" masquerade\n }\n}\n"))
        return nat

    def _start_imds(self, nat):
        """Writes NAT `nat`'s IMDS description and starts its fake IMDS (the role
        credentials come from nat["_role_credentials"], set by seeding)."""
        d = os.path.join(self.dir, nat["name"])
        os.makedirs(d, exist_ok=True)
        nat["dir"] = d
        info = {"address": IMDS_ADDR, "port": 80, "instance_id": nat["instance_id"],
                "availability_zone": nat["zone"], "region": self.region, "mac": nat["mac"],
                "eni_id": nat["eni_id"], "subnet_id": nat["subnet_id"],
                "subnet_cidr": nat["subnet_cidr"], "vpc_id": self.desc["vpc"]["id"],
                "vpc_cidr": VPC_CIDR, "local_ipv4": nat["private_address"],
                "public_ipv4": nat["public_address"],
                "role": ROLE, "credentials": nat.pop("_role_credentials"),
                "account_id": ACCOUNT,
                "control": os.path.join(d, "imds-control.json"),
                "log": os.path.join(d, "imds.log")}
        write_json(os.path.join(d, "imds-info.json"), info)
        nat["imds"] = {"endpoint": f"http://{IMDS_ADDR}", "control": info["control"],
                       "log": info["log"], "role": ROLE, "info": os.path.join(
                           d, "imds-info.json"), "credentials": info["credentials"]}
        self.spawn(nat["ns"], [sys.executable, "-m", "hanatlab.imds", "--info",
                               os.path.join(d, "imds-info.json")], f"imds-{nat['name']}")

    # -- membership changes (an Auto Scaling replacement) ---------------------------------

    def remove_nat(self, which, terminate=True):
        """NAT `which` leaves the VPC as a terminated instance does: its processes stop,
        its namespace (and so its three switch ports) goes, and (terminate=True) its
        instance is terminated in EC2. Its description moves to desc["removed_nats"]; the
        fabric stops treating its ENI as a NAT (a route to it gives no default route)."""
        n = self.nat(which)
        for name, (p, rec) in list(self._procs.items()):
            if rec.get("ns") == n["ns"] or name in (f"imds-{n['name']}",
                                                   f"hanatd-{n['name']}"):
                netns.stop_process(rec)
                p.poll()
        for pid in netns.netns_pids(n["ns"]):
            netns.stop_process({"pid": pid, "start": netns.proc_starttime(pid)}, 2.0)
        if terminate:
            self.ec2().terminate_instances(InstanceIds=[n["instance_id"]])
        run(["ip", "netns", "del", n["ns"]])
        self.desc["nats"] = [x for x in self.desc["nats"] if x is not n]
        self.desc["removed_nats"].append(n)
        self.desc["namespaces"] = [x for x in self.desc["namespaces"] if x != n["ns"]]
        ip(self.desc["internet"]["ns"], "route", "del", f"{n['private_address']}/32",
           check=False)
        self._apply_igw()
        write_json(self.desc_path, self.desc)
        return n

    def add_nat(self, zone_letter):
        """A new NAT host in zone `zone_letter` (a new instance with the group tag, a new
        ENI, an Elastic IP, its own fake IMDS), as an Auto Scaling group launches one. Its
        index is one more than any NAT the lab ever had (names and addresses are never
        reused). Returns its description; the fabric follows routes to it."""
        if zone_letter not in self.nat_zones and zone_letter not in ZONE_INDEX:
            raise ValueError(f"zone {zone_letter!r}: one of a, b, c")
        from hanatlab import seed
        k = 1 + max(n["index"] for n in self.desc["nats"] + self.desc["removed_nats"])
        if k > 9:
            raise LabError("the lab numbers NAT hosts 1 to 9")
        zone = next((z for z in self.desc["zones"] if z["letter"] == zone_letter), None)
        if zone is None:
            raise LabError(f"the lab's VPC has no subnet in zone {zone_letter}")
        nat = self._nat_host(k, zone_letter)
        seed.launch_nat(self.ec2(), self, nat, zone)
        nat["_role_credentials"] = seed.assume_role(self.ec2("sts"), self.id, nat["name"])
        ip(nat["ns"], "link", "set", "priv", "address", nat["mac"])
        ip(nat["ns"], "link", "set", "priv", "up")
        self._start_imds(nat)
        self.desc["nats"].append(nat)
        self._apply_igw()
        self.desc["namespaces"] = list(self.state["namespaces"])
        write_json(self.desc_path, self.desc)
        deadline_poll(f"the IMDS of {nat['name']}",
                      lambda: self.imds_request(nat["name"], "/latest/meta-data/"
                                                "instance-id")[0] == 200, 10)
        return nat

    def replace_nat(self, which):
        """An Auto Scaling replacement: NAT `which` is terminated and removed, a new NAT
        starts in the same zone. Returns (old, new) descriptions."""
        old = self.remove_nat(which)
        return old, self.add_nat(old["zone_letter"])

    def _apply_igw(self):
        """The internet gateway's view of the NATs' Elastic IPs, for the NATs the lab has
        now (and the partitions): the EC2 proxy's address map, and in the internet
        namespace a route to each NAT's private address over the VPC segment (its ENI)
        plus one nft table, replaced in one transaction:
          - to_private: a packet to NAT k's Elastic IP goes to NAT k's private address (EC2's
            internet gateway translates an Elastic IP to the primary private IP);
          - from_elastic: a NAT's packet so translated leaves with the sender's own Elastic
            IP as its source, as EC2 translates it, so that the reply (sent out of the
            receiver's public leg, its default route) comes back through here and is
            translated back;
          - partition: the Elastic-IP path between two partitioned NATs is dropped too
            (set_partition: they lose each other everywhere)."""
        inet = self.desc["internet"]["ns"]
        nats = self.desc["nats"]
        write_json(self.desc["ec2_proxy"]["public_map"],
                   {n["eip"]["public_ip"]: n["elastic_address"] for n in nats})
        for n in nats:
            ip(inet, "route", "replace", f"{n['private_address']}/32", "dev", "vpc",
               "src", IGW_VPC_ADDR)
        dnat = "".join(f'  ip daddr {n["elastic_address"]} dnat to {n["private_address"]}\n'
                       for n in nats)
        snat = "".join(f'  ct status dnat ip saddr {{ {n["public_address"]}, '
                       f'{n["private_address"]} }} snat to {n["elastic_address"]}\n'
                       for n in nats)
        part = ""
        by_name = {n["name"]: n for n in nats}
        for pair in self.state.get("partitions", []):
            if pair[0] not in by_name or pair[1] not in by_name:
                continue
            x, y = by_name[pair[0]], by_name[pair[1]]
            for a, b in ((x, y), (y, x)):
                part += (f'  ip saddr {{ {a["public_address"]}, {a["private_address"]} }} '
                         f'ip daddr {b["private_address"]} drop\n')
        script = ("table ip lab_igw {}\ndelete table ip lab_igw\ntable ip lab_igw {\n"
                  " chain to_private { type nat hook prerouting priority dstnat; policy accept;\n"
                  + dnat + " }\n"
                  " chain from_elastic {\n"
                  "  type nat hook postrouting priority srcnat; policy accept;\n"
                  + snat + " }\n"
                  " chain partition { type filter hook forward priority 0; policy accept;\n"
                  + part + " }\n}\n")
        run(["ip", "netns", "exec", inet, "nft", "-f", "-"], input_text=script)

    def _fabric_settled(self):
        st = self.fabric_status()
        if not st or st.get("polls", 0) < 1:
            return False
        want = {rt["id"]: rt["initial_nat"] for rt in self.desc["route_tables"]}
        nat_addr = {n["name"]: n["private_address"] for n in self.desc["nats"]}
        for h in self.desc["hosts"]:
            if st["routes"].get(h["name"]) != nat_addr[want[h["route_table"]]]:
                return False
        return True

    # -- accessors -----------------------------------------------------------------------

    def nat(self, which):
        """A NAT's description by index (1-based) or name ("nat1")."""
        for n in self.desc["nats"]:
            if which in (n["index"], n["name"]):
                return n
        raise KeyError(f"no NAT {which!r} in lab {self.id}")

    def host(self, name):
        for h in self.desc["hosts"]:
            if h["name"] == name:
                return h
        raise KeyError(f"no private host {name!r} in lab {self.id}")

    def route_table(self, zone_letter):
        for rt in self.desc["route_tables"]:
            if rt["zone_letter"] == zone_letter:
                return rt
        raise KeyError(f"no route table for zone {zone_letter!r}")

    def nat_by_source(self, address):
        """The NAT whose public address is `address` (what the internet host sees)."""
        for n in self.desc["nats"]:
            if n["public_address"] == address:
                return n
        return None

    def ec2(self, service="ec2"):
        """A boto3 client for moto, signed with the lab's credentials, usable from any
        namespace (each call runs in the API namespace)."""
        import boto3
        import botocore.config
        c = boto3.client(service, endpoint_url=self.desc["api"]["endpoint"],
                         region_name=self.region,
                         aws_access_key_id=self.desc["credentials"]["access_key_id"],
                         aws_secret_access_key=self.desc["credentials"]["secret_access_key"],
                         config=botocore.config.Config(retries={"max_attempts": 2}))
        return NsClient(c, self.desc["api"]["ns"])

    def ec2_endpoint(self, proxy=True):
        """The EC2 endpoint for clients under test: the fault proxy (default) or moto."""
        p = self.desc.get("ec2_proxy")
        return p["endpoint"] if proxy and p else self.desc["api"]["endpoint"]

    def aws_env(self, base=None, proxy=True):
        """Environment for the AWS CLI / any SDK talking to the lab's moto from a NAT or
        the API namespace (e.g. a keepalived notify script): static keys, region and
        AWS_ENDPOINT_URL (honoured by botocore >= 1.31, awscli v1 included) — the EC2 fault
        proxy's unless proxy=False, so EC2 drills apply to every controller alike."""
        env = dict(child_env() if base is None else base)
        for k in [k for k in env if k.startswith("AWS_")]:
            del env[k]
        env.update(AWS_ACCESS_KEY_ID=self.desc["credentials"]["access_key_id"],
                   AWS_SECRET_ACCESS_KEY=self.desc["credentials"]["secret_access_key"],
                   AWS_DEFAULT_REGION=self.region, AWS_REGION=self.region,
                   AWS_ENDPOINT_URL=self.ec2_endpoint(proxy),
                   AWS_EC2_METADATA_DISABLED="true", AWS_CONFIG_FILE="/dev/null",
                   AWS_SHARED_CREDENTIALS_FILE="/dev/null")
        return env

    def pause_api(self, paused=True):
        """Freezes (SIGSTOP) or thaws (SIGCONT) moto_server: connections are still accepted
        by the kernel but never answered — the "EC2 API hangs" drill. (Cutting a NAT's
        "mgmt" leg with mode="drop" is the "EC2 API unreachable" drill.)"""
        rec = next(r for r in self.state["processes"] if r.get("name") == "moto")
        if not netns.alive(rec):
            raise LabError("moto_server is not running")
        os.killpg(rec["pid"], signal.SIGSTOP if paused else signal.SIGCONT)

    # -- EC2 faults ----------------------------------------------------------------------

    EC2_FAULT_MODES = ("unavailable", "throttle", "5xx", "stall", "reset", "incorrect_state")

    def ec2_fault(self, mode=None, duration=None, actions=None, skew=None):
        """Sets the EC2 fault proxy's fault (see hanatlab/ec2proxy.py): mode None =
        pass-through; "unavailable" (connection reset at once), "throttle" (HTTP 503
        RequestLimitExceeded), "5xx" (500 InternalError / 503 Unavailable, alternating),
        "stall" (never answered while the fault lasts), "reset" (request read, then RST),
        "incorrect_state" (HTTP 400 IncorrectInstanceState, for StartInstances).
        duration: seconds after which the proxy passes again by itself. actions: EC2 Action
        names the fault applies to (others pass). skew: seconds EC2's clock is ahead of the
        lab's (the proxy then refuses signatures more than 5 minutes off with RequestExpired
        and stamps replies with EC2's Date). Applies to the next request read."""
        if mode is not None and mode not in self.EC2_FAULT_MODES:
            raise ValueError(f"ec2_fault: mode {mode!r}: None or one of "
                             f"{', '.join(self.EC2_FAULT_MODES)}")
        if duration is not None and not (isinstance(duration, (int, float)) and duration > 0):
            raise ValueError(f"ec2_fault: duration {duration!r}: a number of seconds > 0")
        if actions is not None and (isinstance(actions, str) or
                                    not all(isinstance(a, str) and a for a in actions)):
            raise ValueError(f"ec2_fault: actions {actions!r}: a list of EC2 Action names")
        if skew is not None and not isinstance(skew, (int, float)):
            raise ValueError(f"ec2_fault: skew {skew!r}: a number of seconds")
        write_json(self.desc["ec2_proxy"]["control"], {
            "mode": mode,
            "until": None if mode is None or duration is None else time.time() + duration,
            "actions": list(actions) if actions else None,
            "skew": skew})

    def ec2_fault_log(self, since_ns=None):
        """Requests the proxy saw: [{t_ns (wall clock), action, mode, status, client}],
        oldest first; status is the HTTP status returned, "reset" or "abandoned"; client
        the caller's source address (a NAT's mgmt_address)."""
        out = []
        try:
            with open(self.desc["ec2_proxy"]["log"]) as f:
                for line in f:
                    try:
                        rec = json.loads(line)
                    except ValueError:
                        continue  # a torn last line
                    if since_ns is None or rec["t_ns"] >= since_ns:
                        out.append(rec)
        except FileNotFoundError:
            pass
        return out

    # -- IMDS ----------------------------------------------------------------------------

    def set_imds(self, nat, **control):
        """Rewrites NAT `nat`'s IMDS control file atomically. Keys: spot_instance_action
        (dict or None), target_lifecycle_state (str), status (int), delay_ms (number).
        Keys not given are reset to their defaults."""
        allowed = {"spot_instance_action", "target_lifecycle_state", "status", "delay_ms"}
        bad = set(control) - allowed
        if bad:
            raise ValueError(f"set_imds: unknown keys {sorted(bad)}; allowed {sorted(allowed)}")
        write_json(self.nat(nat)["imds"]["control"], control)

    def imds_request(self, nat, path, token=True, method="GET", headers=None):
        """One request to NAT `nat`'s IMDS from inside that NAT's namespace. token=True gets
        a fresh IMDSv2 token first; a string is used as the token; False sends none.
        Returns (status, body)."""
        n = self.nat(nat)
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

        def do(req):
            try:
                with opener.open(req, timeout=3) as r:
                    return r.status, r.read().decode()
            except urllib.error.HTTPError as e:
                return e.code, e.read().decode(errors="replace")

        base = f"http://{IMDS_ADDR}"
        with netns.in_netns(n["ns"]):
            hdrs = dict(headers or {})
            if token is True:
                st, tok = do(urllib.request.Request(
                    base + "/latest/api/token", method="PUT",
                    headers={"X-aws-ec2-metadata-token-ttl-seconds": "60"}))
                if st != 200:
                    return st, tok
                hdrs["X-aws-ec2-metadata-token"] = tok
            elif isinstance(token, str):
                hdrs["X-aws-ec2-metadata-token"] = token
            return do(urllib.request.Request(base + path, method=method, headers=hdrs))

    # -- fabric --------------------------------------------------------------------------

    def fabric_status(self):
        try:
            with open(self.desc["fabric"]["status"]) as f:
                return json.load(f)
        except (FileNotFoundError, ValueError):
            return None

    def fabric_events(self):
        out = []
        try:
            with open(self.desc["fabric"]["log"]) as f:
                for line in f:
                    try:
                        out.append(json.loads(line))
                    except ValueError:
                        pass  # a torn last line
        except FileNotFoundError:
            pass
        return out

    def _fabric_control(self, **keys):
        path = self.desc["fabric"]["control"]
        try:
            with open(path) as f:
                c = json.load(f)
        except (OSError, ValueError):
            c = {}
        c.update(keys)
        write_json(path, c)

    def set_blackhole(self, targets):
        """Makes the fabric treat these ENI/instance ids as blackhole targets."""
        self._fabric_control(blackhole=list(targets))

    def follow_enis(self, on=True):
        """Makes the fabric put every secondary ENI's private address on the NAT that EC2
        says it is attached to (fabric.py: "follow_enis"), e.g. a floating ENI's."""
        self._fabric_control(follow_enis=bool(on))

    def eni_address_nat(self, address):
        """The NAT name the fabric last put `address` on (None: none or not yet)."""
        return ((self.fabric_status() or {}).get("eni_addresses") or {}).get(address)

    def default_route(self, host):
        """The next hop of a private host's default route (None: no default route)."""
        out = ip(self.host(host)["ns"], "-4", "route", "show", "default").stdout
        m = re.search(r"default via ([0-9.]+)", out)
        return m.group(1) if m else None

    def wait_route(self, host, via, timeout=5.0, since=None):
        """Polls until host's default route is via `via` (None: no route); returns the
        latest fabric log entry that set it — only entries at or after `since` (a
        time.time() value) when given — or None if there is none (the route was already
        so). The fabric logs each change just before applying it."""
        deadline_poll(f"{host}'s default route via {via}",
                      lambda: self.default_route(host) == via, timeout)
        for e in reversed(self.fabric_events()):
            if (e.get("host") == host and e.get("to") == via and not e.get("failed") and
                    (since is None or e["t_ms"] >= since * 1000)):
                return e
        return None

    # -- traffic -------------------------------------------------------------------------

    def start_stream(self, host, rate=200):
        """Starts a UDP stream (rate packets/s, sequence numbers and send times) from a
        private host to the internet host's sink. Returns a Stream; stop() analyses it."""
        self._streams += 1
        sid = random.randrange(1, 2**31)
        summary = os.path.join(self.dir, f"stream-{sid}.json")
        name = f"stream-{sid}"
        p = self.spawn(self.host(host)["ns"], [
            sys.executable, "-m", "hanatlab.traffic", "send", "--dst", INET_ADDR, "--port",
            str(self.desc["internet"]["udp_port"]), "--rate", str(rate), "--stream", str(sid),
            "--summary", summary], name)
        return Stream(self, host, sid, rate, p, self._procs[name][1], summary)

    def whoami(self, host, timeout=2.0):
        """The (address, port) the internet host sees for a TCP connection from `host`."""
        cp = self.python(self.host(host)["ns"], "traffic", [
            "whoami", "--dst", INET_ADDR, "--port", str(self.desc["internet"]["tcp_port"]),
            "--timeout", str(timeout)], timeout=timeout + 10)
        a, p = cp.stdout.split()
        return a, int(p)

    def ping(self, ns, address, count=1, timeout=1):
        """True when `count` echo requests from namespace ns to address are answered."""
        cp = self.exec(ns, ["ping", "-n", "-q", "-c", str(count), "-W", str(timeout), address],
                       check=False, timeout=count * timeout + 10)
        return cp.returncode == 0

    # -- links ---------------------------------------------------------------------------

    def set_link(self, nat, leg, up, mode="down"):
        """Cuts (up=False) or restores a NAT's "private", "public" or "mgmt" leg at the
        switch side. mode "down": the switch port goes down, so the NAT sees its carrier
        drop (an ENI/link failure). mode "drop": the switch silently drops every frame to
        and from that port while all links stay up (a hung or partitioned instance, the
        failure a health check must detect by itself)."""
        if leg not in ("private", "public", "mgmt"):
            raise ValueError(f"leg {leg!r}: one of 'private', 'public', 'mgmt'")
        ns, port = self.nat(nat)["switch_ports"][leg]
        if mode == "down":
            ip(ns, "link", "set", port, "up" if up else "down")
        elif mode == "drop":
            run(["ip", "netns", "exec", ns, "nft", "-f", "-"],
                input_text=self._drop_script(ns, port, up))
        else:
            raise ValueError(f"mode {mode!r}: 'down' or 'drop'")

    def _drop_script(self, ns, port, up):
        """Records switch port `port` of namespace ns as cut (up=False) or not, and returns
        the nft script that makes ns's bridge drop frames of every cut port (one
        transaction: create-if-missing, delete, re-create with the current cuts)."""
        cuts = self.state.setdefault("cuts", {}).setdefault(ns, [])
        if up and port in cuts:
            cuts.remove(port)
        elif not up and port not in cuts:
            cuts.append(port)
        self._save_state()
        script = "table bridge lab_cut {}\ndelete table bridge lab_cut\n"
        if cuts:
            ports = ", ".join(f'"{p}"' for p in sorted(cuts))
            script += ("table bridge lab_cut {\n"
                       " chain cut_fwd { type filter hook forward priority 0; "
                       f"iifname {{ {ports} }} drop; oifname {{ {ports} }} drop; }}\n"
                       " chain cut_in { type filter hook input priority 0; "
                       f"iifname {{ {ports} }} drop; }}\n"
                       " chain cut_out { type filter hook output priority 0; "
                       f"oifname {{ {ports} }} drop; }}\n}}\n")
        return script

    def set_links_together(self, nat, legs, up):
        """Several legs of NAT `nat` silently cut (up=False) or restored at the same moment
        (mode "drop" of set_link, the nft commands of the different switches run in
        parallel): a NAT that dies is silent on its private and its public path at once,
        where one set_link after the other leaves tens of ms between them on a loaded
        machine, which a controller probing both paths would count as outage."""
        jobs = []
        for leg in legs:
            if leg not in ("private", "public", "mgmt"):
                raise ValueError(f"leg {leg!r}: one of 'private', 'public', 'mgmt'")
            ns, port = self.nat(nat)["switch_ports"][leg]
            jobs.append((ns, self._drop_script(ns, port, up)))
        procs = [subprocess.Popen(["ip", "netns", "exec", ns, "nft", "-f", "-"],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for ns, _ in jobs]
        for p, (_, script) in zip(procs, jobs):
            p.stdin.write(script)
            p.stdin.close()
        errors = []
        for p, (ns, _) in zip(procs, jobs):
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
            if p.returncode != 0:
                errors.append(f"nft in {ns} (exit {p.returncode}): {p.stderr.read().strip()}")
            p.stdout.close()
            p.stderr.close()
        if errors:
            raise LabError("; ".join(errors))

    def set_partition(self, a, b, on=True):
        """Partitions NATs a and b from each other (on=True) or heals it: every switch (the
        private segment, the internet and API bridges) drops frames between their two ports,
        and the internet gateway drops what one sends to the other's Elastic IP, while both
        still reach every other host — a split between two healthy members on every path.
        (set_private_block cuts the private path alone.)"""
        pa, pb = self.nat(a), self.nat(b)
        parts = self.state.setdefault("partitions", [])
        pair = sorted([pa["name"], pb["name"]])
        if on and pair not in parts:
            parts.append(pair)
        elif not on and pair in parts:
            parts.remove(pair)
        self._save_state()
        for leg in ("private", "public", "mgmt"):
            ns = pa["switch_ports"][leg][0]
            rules = ""
            for x, y in parts:
                px, py = self.nat(x)["switch_ports"][leg][1], self.nat(y)["switch_ports"][leg][1]
                rules += (f' iifname "{px}" oifname "{py}" drop\n'
                          f' iifname "{py}" oifname "{px}" drop\n')
            script = "table bridge lab_part {}\ndelete table bridge lab_part\n"
            if rules:
                script += ("table bridge lab_part {\n chain part_fwd {\n"
                           "  type filter hook forward priority 0;\n" + rules + " }\n}\n")
            run(["ip", "netns", "exec", ns, "nft", "-f", "-"], input_text=script)
        self._apply_igw()  # and the path between their Elastic IPs

    def set_private_block(self, a, b, on=True, agent_port=None):
        """Drops ICMP echo requests and TCP to the agent port between NATs a's and b's
        private addresses (on=True) or lets them through again: what a security-group
        change that removes the NATs' rule for each other does. Each NAT's kernel drops
        such packets from the other's private address on input (a table of its own); their
        Elastic IPs (through the internet gateway), the private hosts, the internet and EC2
        stay reachable."""
        pa, pb = self.nat(a), self.nat(b)
        port = agent_port or self.agent_port
        for me, peer in ((pa, pb), (pb, pa)):
            script = "table inet lab_sg {}\ndelete table inet lab_sg\n"
            if on:
                src = f'ip saddr {peer["private_address"]} ip daddr {me["private_address"]}'
                script += ("table inet lab_sg {\n chain sg_in {\n"
                           "  type filter hook input priority -10; policy accept;\n"
                           f"  {src} icmp type echo-request drop\n"
                           f"  {src} tcp dport {port} drop\n }}\n}}\n")
            run(["ip", "netns", "exec", me["ns"], "nft", "-f", "-"], input_text=script)

    def set_forward_drop(self, nat, on=True):
        """Makes NAT `nat`'s kernel drop every forwarded packet (an nftables forward chain
        with policy drop, in its own table) while the host itself still answers pings, its
        agent port and its own egress: a NAT whose data plane silently broke."""
        ns = self.nat(nat)["ns"]
        script = "table inet lab_nofwd {}\ndelete table inet lab_nofwd\n"
        if on:
            script += ("table inet lab_nofwd {\n chain drop_fwd {\n"
                       "  type filter hook forward priority -200; policy drop;\n }\n}\n")
        run(["ip", "netns", "exec", ns, "nft", "-f", "-"], input_text=script)

    def start_hanatd(self, nat, binary, overrides=None, name=None, args=(),
                     credentials="static"):
        """Writes NAT `nat`'s hanat.toml (with overrides) and starts `binary --config` in
        that NAT's namespace; the lab stops it on teardown. Returns (Popen, config path);
        the daemon's output is in <dir>/<name>.log (name default "hanatd-<nat>")."""
        n = self.nat(nat)
        path = self.write_config(nat, overrides, credentials=credentials)
        p = self.spawn(n["ns"], [binary, "--config", path] + list(args),
                       name or f"hanatd-{n['name']}")
        return p, path

    def reset(self, timeout=10.0):
        """Back to the state after up(), for tests that share one lab: every private route
        table's default route on its initial NAT ENI, no blackhole override, no IMDS notice,
        every link restored, no partition or forward drop, the EC2 proxy passing, and the
        fabric's routes applied. (Processes a test spawned and moto objects it created are
        its own business.)"""
        self.ec2_fault(None)
        ec2 = self.ec2()
        for rt in self.desc["route_tables"]:
            try:
                ec2.replace_route(RouteTableId=rt["id"], DestinationCidrBlock="0.0.0.0/0",
                                  NetworkInterfaceId=rt["initial_target"])
            except Exception as e:  # noqa: BLE001 - the route was deleted: re-create it
                if "InvalidRoute.NotFound" not in str(e):
                    raise
                ec2.create_route(RouteTableId=rt["id"], DestinationCidrBlock="0.0.0.0/0",
                                 NetworkInterfaceId=rt["initial_target"])
        self.set_blackhole([])
        for pair in list(self.state.get("partitions", [])):
            self.set_partition(pair[0], pair[1], False)
        for n in self.desc["nats"]:
            self.set_imds(n["name"])
            self.set_forward_drop(n["name"], False)
            run(["ip", "netns", "exec", n["ns"], "nft", "-f", "-"],
                input_text="table inet lab_sg {}\ndelete table inet lab_sg\n")
            for leg in ("private", "public", "mgmt"):
                self.set_link(n["name"], leg, True, mode="down")
                self.set_link(n["name"], leg, True, mode="drop")
        deadline_poll("the fabric to apply the initial routes", self._fabric_settled, timeout)

    def hanatd_request(self, nat, request, timeout=2.0):
        """One JSON request line to NAT `nat`'s hanatd status socket (the one write_config
        puts in <dir>/<nat>/hanatd.sock); returns the decoded reply line."""
        import socket as socketmod
        path = os.path.join(self.nat(nat)["dir"], "hanatd.sock")
        with socketmod.socket(socketmod.AF_UNIX, socketmod.SOCK_STREAM) as c:
            c.settimeout(timeout)
            c.connect(path)
            c.sendall((json.dumps(request) + "\n").encode())
            data = b""
            end = time.monotonic() + timeout
            while not data.endswith(b"\n") and time.monotonic() < end and len(data) < 1 << 22:
                chunk = c.recv(65536)
                if not chunk:
                    break
                data += chunk
        try:
            return json.loads(data)
        except ValueError as e:
            raise LabError(f"hanatd of {nat} answered {data[:200]!r} to {request}") from e

    def hanatd_status(self, nat, timeout=2.0):
        return self.hanatd_request(nat, {"cmd": "status"}, timeout)

    # -- hanatd config -------------------------------------------------------------------

    def write_config(self, nat, overrides=None, path=None, credentials="static"):
        """Writes hanat.toml for NAT `nat` (default <dir>/<nat>/hanat.toml, status socket
        <dir>/<nat>/hanatd.sock) and returns its path. credentials: "static" (lab user's
        keys) or "instance-role" (from the NAT's fake IMDS)."""
        n = self.nat(nat)
        path = path or os.path.join(n["dir"], "hanat.toml")
        text = cfgmod.render(cfgmod.nat_sections(
            self.desc, n, os.path.join(n["dir"], "hanatd.sock"), overrides, credentials))
        # 0600 as a real deployment has it: hanatd warns about static keys others can read.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        return path
