#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""A package upgrade on a serving NAT, in the lab: both NATs run the INSTALLED hanatd
(/usr/sbin/hanatd from the .deb), a private host streams through nat1, and `dpkg -i` of a
newer version of the package is run. dpkg's postinst tells the running hanatd over
/run/hanat/hanatd.sock that the coming stop is a restart (`hanatctl prepare-restart`), then
asks systemd to restart the unit; where systemd is not PID 1 (CI containers) this test plays
that part — SIGTERM, then the new /usr/sbin/hanatd — exactly what the unit's restart does.

What the operator must see: the package at the new version, hanatd back and serving, no
route write at the EC2 API (the proxy's log) and no gap in the stream (the NAT's kernel keeps
forwarding while the controller restarts).

The newer version is the given .deb repacked with a higher version number: the same files,
but dpkg runs the real upgrade path (the old prerm `upgrade`, the new postinst `configure
<old version>`).

Run by tests/package/package_test.sh once it has installed the package (needs root and the
lab's tools). Usage: upgrade_e2e.py --deb FILE. Exit 0 pass, 1 fail, 77 skipped.
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from hanatlab import Lab, LabUnavailable  # noqa: E402
from hanatlab import scenarios as sc  # noqa: E402
from scenarios_e2e import bounds  # noqa: E402

INSTALLED = "/usr/sbin/hanatd"
SOCKET = "/run/hanat/hanatd.sock"  # where postinst's `hanatctl prepare-restart` looks


def installed_version():
    r = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "hanat"], capture_output=True,
                       text=True)
    return r.stdout.strip() if r.returncode == 0 else None


def repack_newer(deb, work):
    """The .deb with its version raised ("+labupgrade1" sorts after the version itself)."""
    tree = os.path.join(work, "tree")
    subprocess.run(["dpkg-deb", "-R", deb, tree], check=True)
    control = os.path.join(tree, "DEBIAN", "control")
    lines = open(control).read().splitlines()
    old = next(x.split(":", 1)[1].strip() for x in lines if x.startswith("Version:"))
    new = old + "+labupgrade1"
    with open(control, "w") as f:
        f.write("\n".join(f"Version: {new}" if x.startswith("Version:") else x
                          for x in lines) + "\n")
    out = os.path.join(work, "hanat_newer.deb")
    subprocess.run(["dpkg-deb", "-b", tree, out], check=True, capture_output=True)
    return old, new, out


class InstalledController(sc.HanatController):
    """hanatd from the package on both NATs; nat1's status socket is the package's default
    path, so that the package's maintainer scripts reach it."""

    def __init__(self, lab, newer_deb):
        super().__init__(lab, INSTALLED, "default")
        self.newer_deb = newer_deb
        self.dpkg_output = ""
        nat1 = lab.nat(1)
        # lab.hanatd_request() talks to <dir>/<nat>/hanatd.sock: point that at the real one.
        link = os.path.join(nat1["dir"], "hanatd.sock")
        if not os.path.lexists(link):
            os.symlink(SOCKET, link)

    def start(self, nat):
        n = self.lab.nat(nat)
        if n["name"] != self.lab.nat(1)["name"]:
            return super().start(nat)
        ov = {k: dict(v) for k, v in self.overrides.items()}
        ov.setdefault("status", {}).update(
            {"socket": SOCKET, "state_directory": os.path.join(n["dir"], "state")})
        p, _ = self.lab.start_hanatd(n["name"], self.binary, ov)
        self.procs[n["name"]] = p
        return p

    def prepare_restart(self, nat, within_s=30):
        """The upgrade: dpkg -i of the newer package, whose postinst prepares the restart of
        the running hanatd (the part of the unit's restart that systemd does follows in
        sc_restart: SIGTERM and a new process)."""
        r = subprocess.run(["dpkg", "-i", self.newer_deb], capture_output=True, text=True,
                           timeout=120)
        self.dpkg_output = r.stdout + r.stderr
        log = os.path.join(self.lab.dir, f"hanatd-{self.lab.nat(nat)['name']}.log")
        ok = r.returncode == 0 and sc.wait_for(
            lambda: "restart prepared over the status socket" in open(log).read(), 5.0)
        return {"result": "restart prepared" if ok else f"dpkg exit {r.returncode}"}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--deb", required=True, help="the package (installed already or not)")
    a = ap.parse_args()
    if os.geteuid() != 0:
        print("SKIPPED: needs root (dpkg -i, network namespaces)")
        return 77
    t0 = time.monotonic()
    work = tempfile.mkdtemp(prefix="hanat-upgrade-")
    created_run = not os.path.isdir("/run/hanat")
    os.makedirs("/run/hanat", exist_ok=True)
    failures = []
    lab_cm = None
    try:
        old, new, newer = repack_newer(a.deb, work)
        if installed_version() != old:
            subprocess.run(["dpkg", "-i", a.deb], check=True, capture_output=True)
        try:
            lab_cm = Lab(nats=2, hosts_per_zone=1, name="upg")
            lab = lab_cm.__enter__()
        except LabUnavailable as e:
            print(f"SKIPPED: {e}")
            return 77
        ctl = InstalledController(lab, newer)
        r = sc.run_scenario(lab, ctl, "restart", mode="ci")
        print(f"upgrade {old} -> {new}: outage {r['outage_ms']:.0f} ms, route writes "
              f"{r['route_writes']}, flips {r['flips']}, notes {r['notes']}", flush=True)
        checks = [(f"dpkg -i of the newer package succeeded and left hanat at {new} "
                   f"(installed: {installed_version()})", installed_version() == new)]
        checks += bounds("restart", r, lab)
        # After the restart the new process serves: active, the peer up (wait_ready in
        # sc_restart), and nat1 still the target of zone a's route.
        checks.append((f"zone a still egresses through nat1 ({lab.default_route('a1')})",
                       lab.default_route("a1") == sc.via(lab, 1)))
        for what, ok in checks:
            print(f"  {'ok:  ' if ok else 'FAIL:'} {what}", flush=True)
            if not ok:
                failures.append(what)
        if failures:
            print("--- dpkg -i output ---\n" + ctl.dpkg_output[-2000:])
            try:
                log = os.path.join(lab.dir, f"hanatd-{lab.nat(1)['name']}.log")
                print("--- nat1 log (tail) ---\n" + open(log).read()[-2500:])
            except OSError:
                pass
        sc.cleanup(lab, ctl)
    finally:
        if lab_cm is not None:
            lab_cm.__exit__(None, None, None)
        shutil.rmtree(work, ignore_errors=True)
        if created_run:
            shutil.rmtree("/run/hanat", ignore_errors=True)
    took = time.monotonic() - t0
    if failures:
        print(f"FAILED: {len(failures)} check(s) in {took:.0f} s")
        return 1
    print(f"PASSED: upgrade with no route write and no gap in {took:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
