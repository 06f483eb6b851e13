#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""The hanat e2e lab for humans (and scripts/demo):

  lab.py up [--nats N] [--hosts-per-zone N] [--name NAME] [--forwarding] [--masquerade]
            [--foreground]
      builds a lab and prints its description's path (lab.json). Without --foreground the
      lab stays up after this command returns; with it, Ctrl-C tears it down.
  lab.py status [ID...]     labs on this machine: namespaces, processes, fabric routes
  lab.py down ID... | --all tears labs down (--all: labs made by `up` and labs whose
                            creating process is gone; never a running test's lab)
  lab.py config ID NAT      writes hanat.toml for NAT (e.g. nat1) and prints its path

Labs are found through their state files, $HANAT_LAB_ROOT (default /tmp)/hanat-lab-*/.
"""

import argparse
import glob
import json
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from hanatlab import lab as labmod  # noqa: E402
from hanatlab import netns  # noqa: E402


def find_labs():
    labs = []
    for path in sorted(glob.glob(os.path.join(labmod.STATE_ROOT, "hanat-lab-*", "state.json"))):
        try:
            with open(path) as f:
                st = json.load(f)
        except (OSError, ValueError):
            continue
        st["_state_path"] = path
        desc = os.path.join(os.path.dirname(path), "lab.json")
        st["_desc_path"] = desc if os.path.exists(desc) else None
        st["_creator_alive"] = netns.alive({"pid": st.get("creator_pid", 0),
                                            "start": st.get("creator_start")})
        labs.append(st)
    return labs


def select(labs, ids):
    chosen = [st for st in labs if st["id"] in ids]
    missing = set(ids) - {st["id"] for st in chosen}
    if missing:
        known = ", ".join(st["id"] for st in labs) or "none"
        raise SystemExit(f"lab.py: no lab {', '.join(sorted(missing))} (labs here: {known})")
    return chosen


def cmd_up(a):
    lab = labmod.Lab(nats=a.nats, hosts_per_zone=a.hosts_per_zone, name=a.name,
                     forwarding=a.forwarding, masquerade=a.masquerade,
                     nat_zones=a.nat_zones.split(",") if a.nat_zones else None,
                     tables_per_zone=a.tables_per_zone, tag_everything=a.tag_everything)
    lab.up()
    d = lab.desc
    print(f"lab {lab.id} up in {d['build_seconds']} s")
    print(f"  description  {lab.desc_path}")
    print(f"  moto         {d['api']['endpoint']} (in {d['api']['ns']})")
    for n in d["nats"]:
        print(f"  {n['name']:<12} ns {n['ns']}  private {n['private_address']}  public "
              f"{n['public_address']}  {n['instance_id']} {n['eni_id']}")
    for h in d["hosts"]:
        print(f"  host {h['name']:<7} ns {h['ns']}  {h['address']}  table {h['route_table']}")
    print(f"  fabric log   {d['fabric']['log']}")
    if not a.foreground:
        lab.detach()
        print(f"detached; tear down with: {sys.argv[0]} down {lab.id}")
        return 0
    print("Ctrl-C tears the lab down", flush=True)
    try:
        end = time.monotonic() + a.max_hours * 3600
        while time.monotonic() < end:
            signal.pause() if hasattr(signal, "pause") else time.sleep(1)
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        probs = lab.down()
        print("torn down" + ("" if not probs else ": " + "; ".join(probs)))
    return 0


def cmd_down(a):
    labs = find_labs()
    if a.all:
        chosen = [st for st in labs if st.get("detached") or not st["_creator_alive"]]
    else:
        if not a.ids:
            raise SystemExit("lab.py down: name the labs (lab.py status lists them) or --all")
        chosen = select(labs, a.ids)
    rc = 0
    for st in chosen:
        probs = labmod.teardown_state(st)
        left = labmod.leftovers(st)
        print(f"{st['id']}: " + ("down" if not probs and not left else
                                 "problems: " + "; ".join(probs + left)))
        rc |= bool(probs or left)
    if not chosen:
        print("no lab to tear down")
    return rc


def cmd_status(a):
    labs = find_labs()
    if a.ids:
        labs = select(labs, a.ids)
    for st in labs:
        ns_up = sum(netns.netns_exists(n) for n in st["namespaces"])
        procs = [p for p in st["processes"] if netns.alive(p)]
        how = "detached" if st.get("detached") else (
            f"owned by pid {st['creator_pid']}" if st["_creator_alive"] else "ORPHANED")
        print(f"{st['id']}: {how}; {ns_up}/{len(st['namespaces'])} namespaces, "
              f"{len(procs)}/{len(st['processes'])} processes alive; dir {st['dir']}")
        if st["_desc_path"]:
            d = json.load(open(st["_desc_path"]))
            print(f"  moto {d['api']['endpoint']} (ns {d['api']['ns']})")
            try:
                fs = json.load(open(d["fabric"]["status"]))
                age = time.time() * 1000 - fs["last_poll_ms"]
                print(f"  fabric: {fs['polls']} polls, last {age:.0f} ms ago, routes "
                      f"{fs['routes']}" + (f", error {fs['last_error']}" if fs["last_error"]
                                          else ""))
            except (OSError, ValueError, KeyError):
                print("  fabric: no status")
    if not labs:
        print("no labs")
    return 0


def cmd_config(a):
    st = select(find_labs(), [a.id])[0]
    if not st["_desc_path"]:
        raise SystemExit(f"lab.py: lab {a.id} has no description (still building or failed)")
    lab = labmod.Lab.attach(st["_desc_path"])
    print(lab.write_config(a.nat))
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    u = sub.add_parser("up")
    u.add_argument("--nats", type=int, default=2)
    u.add_argument("--hosts-per-zone", type=int, default=1)
    u.add_argument("--nat-zones", help="zone letter of each NAT, e.g. a,a,b")
    u.add_argument("--tables-per-zone", type=int, default=1)
    u.add_argument("--tag-everything", action="store_true",
                   help="the group tag on every resource of the VPC (hosts as instances)")
    u.add_argument("--name", default="lab")
    u.add_argument("--forwarding", action="store_true", help="ip_forward=1 in NAT namespaces")
    u.add_argument("--masquerade", action="store_true",
                   help="a plain nft masquerade in each NAT (stands in for hanatd)")
    u.add_argument("--foreground", action="store_true")
    u.add_argument("--max-hours", type=float, default=24.0)
    d = sub.add_parser("down")
    d.add_argument("ids", nargs="*")
    d.add_argument("--all", action="store_true")
    s = sub.add_parser("status")
    s.add_argument("ids", nargs="*")
    c = sub.add_parser("config")
    c.add_argument("id")
    c.add_argument("nat")
    a = ap.parse_args()
    try:
        return {"up": cmd_up, "down": cmd_down, "status": cmd_status,
                "config": cmd_config}[a.cmd](a)
    except labmod.LabUnavailable as e:
        print(f"lab.py: {e}", file=sys.stderr)
        return 2
    except (labmod.LabError, ValueError, KeyError) as e:
        print(f"lab.py: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
