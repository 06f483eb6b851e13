# SPDX-License-Identifier: GPL-2.0-or-later
"""The keepalived baseline: what users run today instead of hanat, in the lab.

The classic NAT-instance HA setup of the 2013–2020 blog posts: Debian's keepalived on each
NAT host, VRRP between the NAT hosts over their private legs, one VRRP instance per zone
(each NAT is MASTER, with the higher priority, for its home zone's route table and BACKUP
for the others), and a `notify_master` script that calls the AWS CLI to point that zone's
route table at its own ENI:

    aws ec2 replace-route --route-table-id rtb-.. --destination-cidr-block 0.0.0.0/0 \\
        --network-interface-id eni-<own>

VRRP runs unicast (`unicast_src_ip` / `unicast_peer` on the private-leg addresses): a VPC
has no multicast, so unicast is what this setup needs on AWS (the lab's bridge would carry
multicast, but that would not be the baseline users can run). The advert interval is
keepalived's default, 1 s: a BACKUP declares the MASTER dead after 3 missed adverts plus a
skew of (256 - priority)/256 s (RFC 3768 section 6.1, Master_Down_Interval), ≈ 3.6 s at
the backups' priorities (100 - NAT index; the home NAT has 150), and only then starts the
CLI, a Python program that takes seconds to start (1.8–4 s per ReplaceRoute on this
project's loaded 2-core test machine).

Neither keepalived nor the CLI configures the NAT itself (forwarding, masquerade): on a NAT
AMI that is baked into the image. Unless the lab was made with masquerade=True, start_all()
installs the same stand-in the lab uses (`ip_forward=1`, an nftables masquerade table
"kad_masq" on the public leg) in each NAT namespace; stop_all() removes it.

    kad = Keepalived(lab)
    kad.start_all()
    kad.wait_ready()              # every table on its home NAT, MASTER/BACKUP as configured
    lab.set_link(1, "private", False, mode="drop")
    ...
    kad.state("nat2")            # {"a": "MASTER", "b": "MASTER"}
    kad.events()                 # state changes and notify_master runs, in time order

Files (per NAT, in <lab dir>/<nat>/keepalived/): keepalived.conf, fifo.sh (keepalived's
vrrp_notify_fifo_script: appends "<t_ns> INSTANCE "VI_a" MASTER 150" to states.log for every
state change, in keepalived's order), master-<zone>.sh (notify_master: the CLI call;
appends "<t_ns_start> <instance>" to runs-started.log, then "<t_ns_start> <t_ns_end>
<instance> <rc>" to runs.log, the CLI's output to cli.log), pid files. keepalived's own
output is <lab dir>/keepalived-<nat>.log. Times are wall-clock ns, comparable with the
stream's and the fabric's stamps.
"""

import os
import re
import shlex
import signal
import subprocess
import time

from hanatlab import netns
from hanatlab.lab import deadline_poll
from hanatlab.netns import LabError, run

KEEPALIVED = "/usr/sbin/keepalived"
HOME_PRIORITY = 150
BACKUP_PRIORITY = 100
MASQ_TABLE = "kad_masq"
# VRRP router ids: one per zone's instance. They only need to be unique on the lab's own
# private segment (a bridge inside the lab's switch namespace).
VRID_BASE = 51


def _instance(zone_letter):
    return f"VI_{zone_letter}"


def _zone_of(instance):
    m = re.fullmatch(r"VI_([a-z])", instance)
    return m.group(1) if m else None


class Keepalived:
    """keepalived + AWS CLI notify scripts on every NAT of `lab` (see the module docstring).

    advert_int: VRRP advert interval in seconds (keepalived's default 1). A fractional value
    needs VRRP version 3 (centisecond intervals, RFC 5798), which is then configured.
    aws: the AWS CLI binary the notify scripts call. cli_args: extra arguments appended to
    every CLI call (default none: the CLI's own timeouts and retries, as users run it).
    prepare_nat: install forwarding + masquerade in the NAT namespaces when the lab has not.
    """

    name = "keepalived"

    def __init__(self, lab, advert_int=1.0, aws="/usr/bin/aws", binary=KEEPALIVED,
                 cli_args=(), prepare_nat=True):
        if not (0.01 <= float(advert_int) <= 255):
            raise ValueError(f"advert_int={advert_int}: must be 0.01 to 255 seconds")
        for what, path in (("keepalived", binary), ("AWS CLI", aws)):
            if not (os.path.isfile(path) and os.access(path, os.X_OK)):
                raise LabError(f"{what} not found at {path} (Debian packages keepalived, "
                               "awscli)")
        self.lab = lab
        self.advert_int = float(advert_int)
        self.aws = aws
        self.binary = binary
        self.cli_args = list(cli_args)
        self.prepare_nat = prepare_nat and not getattr(lab, "masquerade", False)
        self._procs = {}      # nat name -> (Popen, record)
        self._started = {}    # nat name -> wall-clock ns of the current start
        self._starts = {}     # nat name -> number of starts (log/process names)
        self._prepared = set()
        self._dirs = {}
        # Start-up races wait_ready() repaired: {"t_ns", "zone", "found", "nat", "rc"}.
        self.repairs = []
        for n in lab.desc["nats"]:
            self._write_files(n)

    # -- configuration -------------------------------------------------------------------

    def _dir(self, nat):
        return self._dirs[self.lab.nat(nat)["name"]]

    def homes(self):
        """zone letter -> name of the NAT whose home the zone's route table is (the lab's
        initial target: the first NAT of that zone, else nat1)."""
        return {rt["zone_letter"]: rt["initial_nat"] for rt in self.lab.desc["route_tables"]}

    def _priority(self, n, zone):
        if self.homes()[zone] == n["name"]:
            return HOME_PRIORITY
        # Distinct priorities among the backups (3 NATs): lower index, higher priority.
        return BACKUP_PRIORITY - n["index"]

    def _write_files(self, n):
        d = os.path.join(n["dir"], "keepalived")
        os.makedirs(d, exist_ok=True)
        self._dirs[n["name"]] = d
        states = os.path.join(d, "states.log")
        runs = os.path.join(d, "runs.log")
        started = os.path.join(d, "runs-started.log")
        cli_log = os.path.join(d, "cli.log")
        env = self.lab.aws_env()
        exports = "".join(f"export {k}={shlex.quote(v)}\n" for k, v in sorted(env.items())
                          if k.startswith("AWS_"))
        # State changes come through keepalived's notify FIFO, not a notify script: the
        # VRRP process writes one line per transition in order, while notify scripts are
        # forked per transition and can run (and stamp) out of order on a loaded host. The
        # FIFO script stamps each line as it reads it (bash's EPOCHREALTIME: no fork).
        self._script(os.path.join(d, "fifo.sh"), (
            "#!/bin/bash\n"
            "# keepalived's vrrp_notify_fifo_script: the FIFO is the last argument; each line\n"
            "# (INSTANCE \"VI_a\" MASTER 150) is appended with the time it was read.\n"
            "export LC_ALL=C\n"
            "while IFS= read -r line; do\n"
            "    t=${EPOCHREALTIME/./}\n"
            f"    echo \"${{t}}000 $line\" >> {shlex.quote(states)}\n"
            "done < \"${!#}\"\n"))
        version = 2 if self.advert_int == int(self.advert_int) else 3
        adv = (str(int(self.advert_int)) if version == 2 else f"{self.advert_int:g}")
        peers = [p["private_address"] for p in self.lab.desc["nats"] if p is not n]
        blocks = []
        for k, zone in enumerate(sorted(self.homes())):
            rt = self.lab.route_table(zone)
            master_sh = os.path.join(d, f"master-{zone}.sh")
            # --endpoint-url: Debian's CLI (2.9) predates AWS_ENDPOINT_URL and would go to
            # the real EC2 endpoint (a name lookup) without it.
            cmd = ([self.aws, "--endpoint-url", env["AWS_ENDPOINT_URL"], "ec2",
                    "replace-route", "--route-table-id", rt["id"],
                    "--destination-cidr-block", "0.0.0.0/0", "--network-interface-id",
                    n["eni_id"]] + self.cli_args)
            # Credentials and endpoint are the lab's (on AWS: the instance profile); HOME
            # keeps the CLI's cache out of root's home.
            self._script(master_sh, (
                "#!/bin/sh\n"
                f"# notify_master for {_instance(zone)}: route zone {zone}'s table via this "
                "NAT.\n"
                "start=$(/bin/date +%s%N)\n"
                f"echo \"$start {_instance(zone)}\" >> {shlex.quote(started)}\n"
                "export PATH=/usr/sbin:/usr/bin:/sbin:/bin\n"
                f"export HOME={shlex.quote(d)}\n" + exports +
                " ".join(shlex.quote(c) for c in cmd) + f" >> {shlex.quote(cli_log)} 2>&1\n"
                "rc=$?\n"
                f"echo \"$start $(/bin/date +%s%N) {_instance(zone)} $rc\" >> "
                f"{shlex.quote(runs)}\n"
                "exit $rc\n"))
            home = self.homes()[zone] == n["name"]
            blocks.append(
                f"vrrp_instance {_instance(zone)} {{\n"
                f"    state {'MASTER' if home else 'BACKUP'}\n"
                f"    interface {n['interfaces']['private']}\n"
                f"    virtual_router_id {VRID_BASE + k}\n"
                f"    priority {self._priority(n, zone)}\n"
                f"    advert_int {adv}\n"
                f"    version {version}\n"
                f"    unicast_src_ip {n['private_address']}\n"
                "    unicast_peer {\n" + "".join(f"        {p}\n" for p in peers) +
                "    }\n"
                f"    notify_master {master_sh}\n"
                "}\n")
        # script_user root: the notify scripts need the lab's files (without it keepalived
        # looks for a "keepalived_script" user); enable_script_security: keepalived then
        # refuses scripts that a non-root user could modify (ours are 0700, root's).
        # No virtual_ipaddress: on AWS the "VIP" is the route table entry itself.
        conf = ("# Generated by tests/e2e/hanatlab/keepalived.py: the VRRP + AWS CLI baseline.\n"
                "global_defs {\n"
                f"    router_id {n['name']}\n"
                "    script_user root\n"
                "    enable_script_security\n"
                f"    vrrp_notify_fifo {os.path.join(d, 'notify.fifo')}\n"
                f"    vrrp_notify_fifo_script {os.path.join(d, 'fifo.sh')}\n"
                "}\n\n" + "\n".join(blocks))
        with open(os.path.join(d, "keepalived.conf"), "w") as f:
            f.write(conf)

    @staticmethod
    def _script(path, text):
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, 0o700)

    def config_path(self, nat):
        return os.path.join(self._dir(nat), "keepalived.conf")

    # -- NAT data plane (what a NAT AMI has baked in) --------------------------------------

    def _prepare(self, n):
        if not self.prepare_nat or n["name"] in self._prepared:
            return
        self.lab.exec(n["ns"], ["sysctl", "-qw", "net.ipv4.ip_forward=1"])
        run(["ip", "netns", "exec", n["ns"], "nft", "-f", "-"], input_text=(
            f"table ip {MASQ_TABLE} {{}}\ndelete table ip {MASQ_TABLE}\n"
            f"table ip {MASQ_TABLE} {{\n chain post {{\n"
            "  type nat hook postrouting priority srcnat; policy accept;\n"
            f"  oifname \"{n['interfaces']['public']}\" masquerade\n }}\n}}\n"))
        self._prepared.add(n["name"])

    def _unprepare(self, n):
        if n["name"] not in self._prepared:
            return
        run(["ip", "netns", "exec", n["ns"], "nft", "delete", "table", "ip", MASQ_TABLE],
            check=False)
        self._prepared.discard(n["name"])

    # -- processes -----------------------------------------------------------------------

    def running(self, nat):
        name = self.lab.nat(nat)["name"]
        pr = self._procs.get(name)
        return pr is not None and pr[0].poll() is None

    def _leftover_runs(self, n):
        """Processes of notify_master runs (the script and its CLI) that a previous
        keepalived on NAT n left behind: [(pid, start time)]."""
        prefix = os.path.join(self._dir(n["name"]), "master-").encode()
        children = {}
        for pid in netns.netns_pids(n["ns"]):
            try:
                with open(f"/proc/{pid}/stat", "rb") as f:
                    ppid = int(f.read().rsplit(b")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(ppid, []).append(pid)
        roots = []
        for pid in netns.netns_pids(n["ns"]):
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    argv = f.read().split(b"\0")
            except OSError:
                continue
            if any(a.startswith(prefix) for a in argv):
                roots.append(pid)
        out, todo = [], list(roots)
        while todo and len(out) < 1000:
            pid = todo.pop()
            out.append((pid, netns.proc_starttime(pid)))
            todo.extend(children.get(pid, []))
        return out

    def start(self, nat):
        """Starts keepalived in NAT `nat`'s namespace (foreground, VRRP only). notify_master
        runs a previous keepalived on this NAT left behind, if any (2.2.7 takes its scripts
        with it, another version may not), are ended first: a CLI call stuck behind a cut
        link would otherwise write its route into the next run."""
        n = self.lab.nat(nat)
        if self.running(n["name"]):
            raise LabError(f"keepalived already runs on {n['name']}")
        left = self._leftover_runs(n)
        for pid, st in left:
            # By pid, and only while it is still the process found (same start time).
            if st is not None and netns.proc_starttime(pid) == st:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        if left:
            deadline_poll(f"leftover notify_master runs on {n['name']} to end",
                          lambda: not any(netns.proc_starttime(p) == st for p, st in left), 5)
        self._prepare(n)
        d = self._dir(n["name"])
        pids = {k: os.path.join(d, f"{k}.pid") for k in ("keepalived", "vrrp", "checkers")}
        for p in pids.values():
            # keepalived refuses to start while its pid file names a live process.
            if os.path.exists(p):
                os.unlink(p)
        k = self._starts[n["name"]] = self._starts.get(n["name"], 0) + 1
        pname = f"keepalived-{n['name']}" + (f"-{k}" if k > 1 else "")
        self._started[n["name"]] = time.time_ns()
        p = self.lab.spawn(n["ns"], [
            self.binary, "-n", "-l", "-D", "-G", "-P", "-f", self.config_path(n["name"]),
            "-p", pids["keepalived"], "-r", pids["vrrp"], "-c", pids["checkers"]], pname)
        self._procs[n["name"]] = (p, self.lab.state["processes"][-1])
        return p

    def start_all(self):
        for n in self.lab.desc["nats"]:
            self.start(n["name"])

    def _vrrp_pid(self, nat):
        try:
            with open(os.path.join(self._dir(nat), "vrrp.pid")) as f:
                return int(f.read().strip() or 0) or None
        except (OSError, ValueError):
            return None

    def stop(self, nat, sig=signal.SIGTERM, timeout=15.0):
        """Sends `sig` to NAT `nat`'s keepalived and returns once it (and its VRRP child)
        exited. SIGTERM is keepalived's graceful stop: a MASTER sends a priority-0 advert so
        its BACKUP takes over at once (RFC 3768 section 6.4.3). Raises LabError if it is
        still there after `timeout` seconds (it is SIGKILLed then)."""
        n = self.lab.nat(nat)
        pr = self._procs.get(n["name"])
        if pr is None or pr[0].poll() is not None:
            return
        p, rec = pr
        child = self._vrrp_pid(n["name"])
        child_rec = ({"pid": child, "start": netns.proc_starttime(child)} if child else None)
        if sig == signal.SIGKILL:
            # A crash of the whole daemon: parent and VRRP child at once (the child would
            # otherwise see its parent die and stop gracefully).
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        else:
            p.send_signal(sig)
        try:
            p.wait(timeout=timeout)
            deadline_poll(f"keepalived's VRRP child on {n['name']} to exit",
                          lambda: child_rec is None or not netns.alive(child_rec),
                          max(1.0, timeout / 3))
        except (subprocess.TimeoutExpired, LabError) as e:
            netns.stop_process(rec, 0.5)
            if child_rec:
                netns.stop_process(child_rec, 0.5)
            raise LabError(f"keepalived on {n['name']} did not exit within {timeout}s of "
                           f"signal {sig}") from e

    def kill(self, nat):
        """SIGKILL: keepalived crashes (no priority-0 advert; the BACKUP waits for
        Master_Down_Interval). Observed with Debian's 2.2.7: notify scripts in flight (their
        own process groups) die with it, on SIGKILL as on SIGTERM."""
        self.stop(nat, signal.SIGKILL)

    def stop_all(self):
        """Stops every keepalived and removes the masquerade stand-in start_all() added."""
        for n in self.lab.desc["nats"]:
            self.stop(n["name"])
        for n in self.lab.desc["nats"]:
            self._unprepare(n)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop_all()
        return False

    # -- observation ---------------------------------------------------------------------

    def _read(self, nat, fname):
        try:
            with open(os.path.join(self._dir(nat), fname)) as f:
                return [line.split() for line in f if line.endswith("\n")]
        except FileNotFoundError:
            return []

    def events(self):
        """Everything keepalived reported, in time order: state changes
        {"kind": "state", "t_ns", "nat", "instance", "zone", "state"} and notify_master
        runs {"kind": "notify", "t_ns", "t_ns_start", "t_ns_end", "rc", "nat", "instance",
        "zone"} (t_ns = t_ns_start)."""
        out = []
        for n in self.lab.desc["nats"]:
            for parts in self._read(n["name"], "states.log"):
                # <t_ns> INSTANCE "VI_a" MASTER 150
                if len(parts) >= 4 and parts[0].isdigit() and parts[1] == "INSTANCE":
                    inst = parts[2].strip('"')
                    out.append({"kind": "state", "t_ns": int(parts[0]), "nat": n["name"],
                                "instance": inst, "zone": _zone_of(inst), "state": parts[3]})
            for parts in self._read(n["name"], "runs.log"):
                if len(parts) == 4 and parts[0].isdigit() and parts[1].isdigit():
                    out.append({"kind": "notify", "t_ns": int(parts[0]),
                                "t_ns_start": int(parts[0]), "t_ns_end": int(parts[1]),
                                "rc": int(parts[3]) if parts[3].lstrip("-").isdigit()
                                else None, "nat": n["name"], "instance": parts[2],
                                "zone": _zone_of(parts[2])})
        out.sort(key=lambda e: e["t_ns"])
        return out

    def state(self, nat):
        """{zone letter: "MASTER"|"BACKUP"|"FAULT"} as keepalived on NAT `nat` last
        notified since its current start; {} when it is not running."""
        name = self.lab.nat(nat)["name"]
        if not self.running(name):
            return {}
        since = self._started.get(name, 0)
        st = {}
        for e in self.events():
            if e["kind"] == "state" and e["nat"] == name and e["t_ns"] >= since and e["zone"]:
                st[e["zone"]] = e["state"]
        return st

    def cli_log(self, nat):
        try:
            with open(os.path.join(self._dir(nat), "cli.log")) as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def routes(self):
        """zone letter -> ENI id of its route table's default route, as EC2 (moto) has it."""
        ids = {self.lab.route_table(z)["id"]: z for z in self.homes()}
        out = {}
        for t in self.lab.ec2().describe_route_tables(RouteTableIds=list(ids))["RouteTables"]:
            for r in t["Routes"]:
                if r.get("DestinationCidrBlock") == "0.0.0.0/0":
                    out[ids[t["RouteTableId"]]] = r.get("NetworkInterfaceId")
        return out

    def in_flight(self):
        """notify_master runs of the current keepalived processes that started but did not
        finish: [(nat, instance, t_ns_start)]."""
        out = []
        for n in self.lab.desc["nats"]:
            since = self._started.get(n["name"], 0)
            done = {(int(p[0]), p[2]) for p in self._read(n["name"], "runs.log") if len(p) == 4
                    and p[0].isdigit()}
            for p in self._read(n["name"], "runs-started.log"):
                if (len(p) == 2 and p[0].isdigit() and int(p[0]) >= since and
                        (int(p[0]), p[1]) not in done):
                    out.append((n["name"], p[1], int(p[0])))
        return out

    def _ready(self):
        """True when ready; False when not yet. Repairs a startup race (see wait_ready)."""
        homes = self.homes()
        evs = self.events()
        for n in self.lab.desc["nats"]:
            if not self.running(n["name"]):
                raise LabError(f"keepalived on {n['name']} exited; see "
                               f"{self.lab.dir}/keepalived-{n['name']}.log")
            st = self.state(n["name"])
            for z, home in homes.items():
                want = "MASTER" if home == n["name"] else "BACKUP"
                if st.get(z) != want:
                    return False
                if want == "MASTER":
                    # The MASTER's own notify_master run (a CLI call to a route that is
                    # already right) must be over, or it could land in the middle of a test.
                    since = self._started[n["name"]]
                    runs = [e for e in evs if e["kind"] == "notify" and e["nat"] == n["name"]
                            and e["zone"] == z and e["t_ns"] >= since]
                    if not runs:
                        return False
                    if runs[-1]["rc"] != 0:
                        raise LabError(f"notify_master of {_instance(z)} on {n['name']} "
                                       f"failed (rc {runs[-1]['rc']}): "
                                       f"{self.cli_log(n['name'])[-400:]}")
        if self.in_flight():
            return False
        routes = self.routes()
        eni = {n["name"]: n["eni_id"] for n in self.lab.desc["nats"]}
        wrong = {z: home for z, home in homes.items() if routes.get(z) != eni[home]}
        for z, home in wrong.items():
            # keepalived's start-up race: a BACKUP whose Master_Down timer expired before the
            # home NAT's first advert arrived was MASTER for a moment, and its CLI call
            # finished after the home NAT's. Nothing in keepalived corrects this (no view of
            # the route table); the home NAT's own notify_master, run once more, does.
            h = self.lab.nat(home)
            cp = self.lab.exec(h["ns"], [os.path.join(self._dir(home), f"master-{z}.sh")],
                               check=False, timeout=60)
            self.repairs.append({"t_ns": time.time_ns(), "zone": z, "found": routes.get(z),
                                 "nat": home, "rc": cp.returncode})
        return not wrong

    def _diagnosis(self):
        states = {n["name"]: self.state(n["name"]) for n in self.lab.desc["nats"]}
        runs = [(e["nat"], e["instance"], e["rc"]) for e in self.events()
                if e["kind"] == "notify"]
        try:
            routes = self.routes()
        except Exception as e:  # noqa: BLE001 - part of an error message
            routes = f"unreadable: {e}"
        clis = {n["name"]: self.cli_log(n["name"])[-300:] for n in self.lab.desc["nats"]}
        return (f"states {states}, homes {self.homes()}, notify_master runs finished "
                f"{runs}, in flight {self.in_flight()}, EC2 routes {routes}, repairs "
                f"{self.repairs}, CLI output {clis}")

    def wait_ready(self, timeout=30):
        """Waits until every VRRP instance is MASTER on its home NAT and BACKUP elsewhere
        (from keepalived's notifications), no notify_master run is in flight, and every
        zone's route table points at its home NAT in EC2. Raises LabError on timeout or
        when a keepalived exited / a notify run failed.

        keepalived has a start-up race: both NATs start every instance as BACKUP, and when
        a backup's Master_Down timer (3.6 s at priority 100) expires before the home NAT's
        first advert (3.4 s at 150) arrives — a loaded host, the peer started a little later
        — it is MASTER for a moment and its CLI call may land after the home NAT's, leaving
        the table on the wrong NAT while every instance shows the right state. When that
        happened, the home NAT's notify_master script is run once more (what an operator
        would do) and the repair is recorded in self.repairs."""
        end = time.monotonic() + timeout
        while True:
            if self._ready():
                return True
            if time.monotonic() >= end:
                raise LabError(f"keepalived not ready after {timeout}s: {self._diagnosis()}")
            time.sleep(0.05)  # polling interval of the deadline loop
