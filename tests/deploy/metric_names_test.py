#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Every metric that deploy/prometheus/hanat.rules.yml and deploy/grafana/hanat.json name
exists in what a running hanatd prints for `hanatctl metrics`.

Two hanatd runs:
- idle, unprivileged: a status socket in a temporary directory and the metadata endpoint
  on a loopback port that is bound but never listens (connections are refused at once, so
  it stays in its identity phase; it never reaches 169.254.169.254). Every metric family is
  printed from start (a HELP and a TYPE line even without samples): the names.
- running, as root, inside a network namespace of its own (`unshare -n`, only lo and a
  veth eth0 whose peer stays there too, so no probe leaves it): moto_server with two tagged NAT instances and two
  tagged route tables, the fake IMDS (tests/e2e/hanatlab/imds.py) answering as the first.
  hanatd discovers the group, writes its route, probes its (unreachable) peer: the member,
  route table, EC2 call and probe families get samples, so their label names and values
  are checked too. Without root or unshare this run is skipped with a note, and matchers
  on families without samples are listed as not checked.

Checked: every hanat_* token anywhere in the two files (expressions, legends,
descriptions) is a family of the output; every other metric an expression selects is one
of the node_exporter/Prometheus series listed in EXTERNAL; label matchers on families
with samples name labels they have and values they take. The dashboard is JSON with
unique panel ids and every panel has a Prometheus query. The check itself is tried on a
copy with one metric renamed, which must fail.

Usage: metric_names_test.py HANATD HANATCTL
"""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
RULES = os.path.join(ROOT, "deploy", "prometheus", "hanat.rules.yml")
DASHBOARD = os.path.join(ROOT, "deploy", "grafana", "hanat.json")

# Series the files use that hanatd does not write: node_exporter's target health and its
# text file collector's modification time.
EXTERNAL = {"up", "node_textfile_mtime_seconds"}
# Labels the scrape adds to every series hanatd writes.
SCRAPE_LABELS = {"instance", "job"}

def die_with_parent():
    """preexec_fn: the child gets SIGKILL if this process dies first (PR_SET_PDEATHSIG,
    prctl(2)), so no emulator outlives a test that was killed before its cleanup ran."""
    import ctypes
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG


failures = []


def check(what, ok, detail=""):
    print(("ok:   " if ok else "FAIL: ") + what + ("" if ok else "\n      " +
                                                  str(detail).replace("\n", "\n      ")))
    if not ok:
        failures.append(what)
    return ok


def parse_exposition(text):
    """{family: [labels dict, ...]} from the text format (every family has a TYPE line; a
    histogram's _bucket, _sum and _count series count as families of their own)."""
    fams = {}
    for line in text.splitlines():
        m = re.match(r"# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (\w+)", line)
        if m:
            fams.setdefault(m.group(1), [])
            if m.group(2) == "histogram":
                # What a query selects of a histogram: its _bucket, _sum and _count series.
                for suffix in ("_bucket", "_sum", "_count"):
                    fams.setdefault(m.group(1) + suffix, [])
            continue
        if not line or line.startswith("#"):
            continue
        m = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? ", line)
        if m:
            labels = dict(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"',
                                     m.group(3) or ""))
            fams.setdefault(m.group(1), []).append(labels)
    return fams


def metrics_from_hanatd(hanatd, hanatctl):
    d = tempfile.mkdtemp(prefix="hanat-metrics-")
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))  # bound, never listening: connection refused
    sock = os.path.join(d, "hanatd.sock")
    conf = os.path.join(d, "hanat.toml")
    with open(conf, "w") as f:
        f.write(f'[group]\nname = "metrics-test"\n[status]\nsocket = "{sock}"\n'
                f'[ec2]\nmetadata_endpoint = "http://127.0.0.1:{closed.getsockname()[1]}"\n'
                '[nat]\negress_interface = "lo"\n')
    err = open(os.path.join(d, "hanatd.err"), "w")
    # hanatd applies forwarding and its masquerade table from the config at start, before
    # it looks for its identity: as root, it runs in a network namespace of its own so the
    # host's stay untouched (its metadata endpoint is then unreachable, which is all this
    # run needs). Without root it cannot change them and runs here.
    argv = [hanatd, "--config", conf]
    if os.geteuid() == 0:
        argv = ["unshare", "-n"] + argv
    p = subprocess.Popen(argv, stdout=err, stderr=err)
    try:
        end = time.monotonic() + 30
        while time.monotonic() < end:
            if p.poll() is not None:
                break
            r = subprocess.run([hanatctl, "--socket", sock, "metrics"], capture_output=True,
                               text=True, timeout=10)
            if r.returncode == 0:
                return r.stdout
            time.sleep(0.1)
        err.flush()
        raise RuntimeError("hanatctl metrics did not answer within 30 s; hanatd said:\n" +
                           open(os.path.join(d, "hanatd.err")).read())
    finally:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        closed.close()
        err.close()
        shutil.rmtree(d, ignore_errors=True)


RICH_FAMILIES = ("hanat_member_up", "hanat_route_table_on_allocated_target",
                 "hanat_ec2_calls_total", "hanat_probe_send_delay_seconds",
                 "hanat_route_table_writes_total")


def inner_running_hanatd(hanatd, hanatctl, out_path):
    """Runs inside `unshare -n` (root): moto, the fake IMDS and hanatd on this namespace's
    loopback; writes `hanatctl metrics` to out_path once the rich families have samples."""
    import boto3
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    # eth0, the egress interface: one end of a veth pair whose both ends stay here.
    subprocess.run(["ip", "link", "add", "eth0", "type", "veth", "peer", "name", "eth0p"],
                   check=True)
    subprocess.run(["ip", "link", "set", "eth0", "up"], check=True)
    d = tempfile.mkdtemp(prefix="hanat-metrics-ns-")
    procs = []
    try:
        moto_log = os.path.join(d, "moto.log")
        procs.append(subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1",
                                       "-p", "0"], stdout=open(moto_log, "w"),
                                      stderr=subprocess.STDOUT, preexec_fn=die_with_parent))
        port = poll("moto_server to listen", lambda: (re.search(
            r"Running on http://127\.0\.0\.1:(\d+)", open(moto_log).read()) or [None, None])[1],
            30, procs[-1])
        endpoint = f"http://127.0.0.1:{port}"
        kw = dict(endpoint_url=endpoint, region_name="eu-west-1",
                  aws_access_key_id="AKIDHANATTEST", aws_secret_access_key="x")
        ec2 = boto3.client("ec2", **kw)
        vpc = ec2.create_vpc(CidrBlock="198.18.0.0/16")["Vpc"]["VpcId"]
        ami = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
        tag = [{"Key": "hanat:group", "Value": "metrics-test"}]
        nats = []
        for i, z in enumerate("ab"):
            sub = ec2.create_subnet(VpcId=vpc, CidrBlock=f"198.18.{i}.0/24",
                                    AvailabilityZone="eu-west-1" + z)["Subnet"]["SubnetId"]
            inst = ec2.run_instances(ImageId=ami, MinCount=1, MaxCount=1, SubnetId=sub,
                                     TagSpecifications=[{"ResourceType": "instance",
                                                         "Tags": tag}])["Instances"][0]
            rt = ec2.create_route_table(VpcId=vpc, TagSpecifications=[{
                "ResourceType": "route-table",
                "Tags": tag + [{"Key": "hanat:zone", "Value": "eu-west-1" + z}]}])
            nats.append((inst, sub, "eu-west-1" + z))
        me, sub, zone = nats[0]
        eni = me["NetworkInterfaces"][0]
        info = {"address": "127.0.0.1", "port": 0, "instance_id": me["InstanceId"],
                "availability_zone": zone, "region": "eu-west-1", "mac": eni["MacAddress"],
                "eni_id": eni["NetworkInterfaceId"], "subnet_id": sub,
                "subnet_cidr": "198.18.0.0/24", "vpc_id": vpc, "vpc_cidr": "198.18.0.0/16",
                "local_ipv4": me["PrivateIpAddress"], "role": "hanat-nat",
                "credentials": {"AccessKeyId": "ASIAHANATTEST", "SecretAccessKey": "x",
                                "Token": "t", "Expiration": "2099-01-01T00:00:00Z"},
                "control": os.path.join(d, "imds-control.json"),
                "log": os.path.join(d, "imds.log")}
        with open(os.path.join(d, "imds.json"), "w") as f:
            json.dump(info, f)
        procs.append(subprocess.Popen([sys.executable, "-m", "hanatlab.imds", "--info",
                                       os.path.join(d, "imds.json")],
                                      cwd=os.path.join(ROOT, "tests", "e2e"),
                                      preexec_fn=die_with_parent))

        def imds_port():
            if not os.path.exists(info["log"]):
                return None
            for line in open(info["log"]):
                if '"listening"' in line:
                    return json.loads(line)["port"]
            return None
        iport = poll("the fake IMDS to listen", imds_port, 10, procs[-1])
        sock = os.path.join(d, "hanatd.sock")
        conf = os.path.join(d, "hanat.toml")
        with open(conf, "w") as f:
            # The agent on loopback: moto's private IP for the instance is on no interface
            # of this namespace, and hanatd refuses to run without its agent port.
            f.write(f'[group]\nname = "metrics-test"\n[nat]\negress_interface = "eth0"\n'
                    f'[agent]\nlisten_address = "127.0.0.1"\n'
                    f'[status]\nsocket = "{sock}"\n[ec2]\nendpoint = "{endpoint}"\n'
                    f'metadata_endpoint = "http://127.0.0.1:{iport}"\n')
        err = open(os.path.join(d, "hanatd.err"), "w")
        procs.append(subprocess.Popen([hanatd, "--config", conf], stdout=err, stderr=err,
                                      preexec_fn=die_with_parent))

        def rich():
            r = subprocess.run([hanatctl, "--socket", sock, "metrics"], capture_output=True,
                               text=True, timeout=10)
            ok = r.returncode == 0 and all(f"\n{f}{{" in r.stdout for f in RICH_FAMILIES)
            return r.stdout if ok else None
        text = poll("hanatd to report members, tables, EC2 calls and probes", rich, 60,
                    procs[-1], lambda: open(os.path.join(d, "hanatd.err")).read())
        with open(out_path, "w") as f:
            f.write(text)
        return 0
    finally:
        # A second signal must not cut the cleanup short.
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, signal.SIG_IGN)
        for p in reversed(procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(30)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        shutil.rmtree(d, ignore_errors=True)


def poll(what, fn, seconds, proc=None, why=None):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what}: the process exited ({proc.returncode})" +
                               (":\n" + why() if why else ""))
        v = fn()
        if v:
            return v
        time.sleep(0.1)
    raise RuntimeError(f"{what}: not within {seconds} s" + (":\n" + why() if why else ""))


def metrics_from_running_hanatd(hanatd, hanatctl):
    """The metrics of a hanatd that runs (see the docstring), or None with a note when
    this cannot run here (not root, no unshare, no moto)."""
    import importlib.util
    if os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("ip"):
        print("note: not root (or no unshare/ip): the running-hanatd check of label names "
              "and values did not run")
        return None
    if importlib.util.find_spec("moto") is None or importlib.util.find_spec("boto3") is None:
        print("note: moto or boto3 missing: the running-hanatd check did not run")
        return None
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "metrics.txt")
        p = subprocess.Popen(["unshare", "-n", sys.executable, os.path.abspath(__file__),
                              "--inner", hanatd, hanatctl, out], stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, preexec_fn=die_with_parent)
        try:
            said, _ = p.communicate(timeout=180)
        except BaseException:
            # SIGTERM, not SIGKILL: the inner run stops moto, the IMDS and hanatd first.
            p.terminate()
            try:
                p.wait(60)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
            raise
        if not check("a hanatd running in its own network namespace reports members, route "
                     "tables, EC2 calls and probes", p.returncode == 0 and os.path.exists(out),
                     said):
            return None
        return open(out).read()


def expressions(rules_text, dashboard):
    import yaml
    exprs = []
    for g in yaml.safe_load(rules_text)["groups"]:
        for r in g["rules"]:
            exprs.append((f"rule {r.get('alert') or r.get('record')}", r["expr"]))

    for i, p in enumerate(dashboard.get("panels", [])):
        for t in p.get("targets", []):
            exprs.append((f"panel {p.get('title')!r}", t.get("expr", "")))
    for a in dashboard.get("annotations", {}).get("list", []):
        if "expr" in a:
            exprs.append((f"annotation {a.get('name')!r}", a["expr"]))
    for v in dashboard.get("templating", {}).get("list", []):
        if v.get("type") == "query":
            # label_values(SELECTOR, LABEL): the selector is PromQL, the label is not.
            m = re.fullmatch(r"\s*label_values\((.*),\s*[a-zA-Z_][a-zA-Z0-9_]*\s*\)\s*",
                             v.get("definition", ""))
            if m:
                exprs.append((f"variable {v['name']}", m.group(1)))
            else:
                exprs.append((f"variable {v['name']}", v.get("definition", "")))
    return exprs


# PromQL words that look like metric names: functions, keywords, aggregations.
PROMQL_WORDS = {
    "and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right",
    "offset", "bool", "sum", "min", "max", "avg", "count", "stddev", "stdvar", "topk",
    "bottomk", "quantile", "count_values", "group", "rate", "irate", "increase", "delta",
    "idelta", "changes", "resets", "time", "vector", "scalar", "abs", "absent",
    "absent_over_time", "max_over_time", "min_over_time", "avg_over_time", "sum_over_time",
    "count_over_time", "last_over_time", "histogram_quantile", "label_replace",
    "label_join", "label_values", "clamp_min", "clamp_max", "round", "sort", "sort_desc",
    "inf", "nan"}


def selectors(expr):
    """(metric, matchers text or None) for each metric selector in a PromQL expression."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', lambda m: "\0" * len(m.group(0)), expr)
    out = []
    for m in re.finditer(r"(?<![\w$:.])([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\{)?", text):
        name = m.group(1)
        before = text[:m.start()].rstrip()
        after = text[m.end(1):].lstrip()
        if name in PROMQL_WORDS or after.startswith("("):
            continue  # a function or keyword
        if re.search(r"(by|without|on|ignoring|group_left|group_right)\s*\([^)]*$", before):
            continue  # a label name in a grouping clause
        if before.endswith(("{", ",")) and re.match(r"(=~|!~|!=|=)", after):
            continue  # a label name in a matcher
        if re.match(r"\d", name) or name.startswith("$"):
            continue
        matchers = None
        if m.group(2):
            close = expr.index("}", m.end())
            matchers = expr[m.end():close]
        out.append((name, matchers))
    return out


def check_files(rules_text, dashboard_text, fams, quiet=False):
    """Problems found, as a list of strings."""
    problems = []
    dashboard = json.loads(dashboard_text)
    # 1. Every hanat_* token anywhere is a family.
    tokens = set(re.findall(r"\bhanat_[a-zA-Z0-9_]+", rules_text + dashboard_text))
    for t in sorted(tokens - set(fams)):
        problems.append(f"{t}: named in the rules or dashboard, not in hanatctl metrics")
    # 2. Every selected metric is hanat's or listed external; matchers fit the samples.
    unverified = set()
    for where, e in expressions(rules_text, dashboard):
        for name, matchers in selectors(e):
            if name not in fams:
                if name not in EXTERNAL:
                    problems.append(f"{where}: {name} is neither in hanatctl metrics nor "
                                    "a listed node_exporter series")
                continue
            if not matchers:
                continue
            samples = fams[name]
            for lname, op, value in re.findall(
                    r'([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"', matchers):
                if lname in SCRAPE_LABELS or "$" in value:
                    continue
                if not samples:
                    unverified.add(f"{name}{{{lname}{op}\"{value}\"}}")
                    continue
                have = {s[lname] for s in samples if lname in s}
                if not have:
                    problems.append(f"{where}: {name} has no label {lname} "
                                    f"(labels: {sorted({k for s in samples for k in s})})")
                elif op == "=" and value not in have:
                    problems.append(f"{where}: {name}{{{lname}=\"{value}\"}}: hanatd writes "
                                    f"{lname} = {sorted(have)}")
                elif op == "=~":
                    rx = re.compile(value.encode().decode("unicode_escape"))
                    for alt in value.split("|"):
                        if alt.isidentifier() or re.fullmatch(r"[a-z0-9-]+", alt):
                            if alt not in have:
                                problems.append(f"{where}: {name}{{{lname}=~\"{value}\"}}: "
                                                f"{alt} is not a value of {lname} "
                                                f"({sorted(have)})")
                    if not any(rx.fullmatch(h) for h in have):
                        problems.append(f"{where}: {name}{{{lname}=~\"{value}\"}} matches "
                                        f"no value of {lname} ({sorted(have)})")
    if not quiet and unverified:
        print("note: matchers on families without samples in an idle hanatd (not checked): "
              + ", ".join(sorted(unverified)))
    return problems, tokens


def main():
    # ctest ends a test past its timeout with SIGTERM: leave through the finally blocks, so
    # that no hanatd, moto_server or IMDS outlives the test.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: sys.exit(1))
    if len(sys.argv) == 5 and sys.argv[1] == "--inner":
        return inner_running_hanatd(sys.argv[2], sys.argv[3], sys.argv[4])
    if len(sys.argv) != 3:
        print("usage: metric_names_test.py HANATD HANATCTL")
        return 2
    try:
        import yaml  # noqa: F401
    except ImportError:
        print("FAIL: PyYAML is missing (python3-yaml); the rules are YAML")
        return 1
    text = metrics_from_hanatd(sys.argv[1], sys.argv[2])
    fams = parse_exposition(text)
    check(f"hanatctl metrics lists metric families ({len(fams)})", len(fams) >= 20, text)
    running = metrics_from_running_hanatd(sys.argv[1], sys.argv[2])
    if running is not None:
        rich = parse_exposition(running)
        check("the running hanatd prints the same families as the idle one",
              set(rich) == set(fams), sorted(set(rich) ^ set(fams)))
        # Label checks on whichever run has samples of a family.
        fams = {f: (rich.get(f) or fams[f]) for f in fams}
    rules_text = open(RULES, encoding="utf-8").read()
    dashboard_text = open(DASHBOARD, encoding="utf-8").read()

    problems, tokens = check_files(rules_text, dashboard_text, fams)
    check("every metric the rules and the dashboard name is in hanatctl metrics",
          not problems, "\n".join(problems))
    check(f"the files name most of hanat's metrics ({len(tokens)} of {len(fams)})",
          len(tokens) >= 20, sorted(set(fams) - tokens))
    # A histogram is used when any of its series is (a quantile needs only _bucket).
    used = set(tokens)
    for t in tokens:
        for suffix in ("_bucket", "_sum", "_count"):
            if t.endswith(suffix) and t[:-len(suffix)] in fams:
                used |= {t[:-len(suffix)] + x for x in ("", "_bucket", "_sum", "_count")}
    unused = sorted(set(fams) - used - {
        # Timestamps that only make sense in hanatctl status, not on a graph or an alert.
        "hanat_config_loaded_timestamp_seconds", "hanat_config_last_reload_timestamp_seconds",
        "hanat_state_since_timestamp_seconds", "hanat_member_state_since_timestamp_seconds",
        "hanat_route_table_last_write_timestamp_seconds"})
    check("every other metric is on the dashboard or in a rule", not unused, unused)

    dashboard = json.loads(dashboard_text)
    panels = dashboard["panels"]
    ids = [p["id"] for p in panels]
    check("dashboard panel ids are unique", len(ids) == len(set(ids)), ids)
    empty = [p["title"] for p in panels
             if p["type"] != "row" and not any(t.get("expr") for t in p.get("targets", []))]
    check("every dashboard panel has a query", not empty, empty)

    # The check must catch a rename (in an expression) and a wrong label value.
    renamed = rules_text.replace("hanat_failovers_total", "hanat_failover_total")
    bad, _ = check_files(renamed, dashboard_text, fams, quiet=True)
    check("a renamed metric in the rules is caught",
          any("hanat_failover_total" in b for b in bad), bad)
    relabelled = rules_text.replace('phase=~"running|stopped"', 'phase=~"running|halted"')
    bad, _ = check_files(relabelled, dashboard_text, fams, quiet=True)
    check("a label value hanatd does not write is caught",
          relabelled != rules_text and any("halted" in b for b in bad), bad)
    if running is not None:
        relabelled = rules_text.replace('hanat_member_up{self="false"}',
                                        'hanat_member_up{self="no"}')
        bad, _ = check_files(relabelled, dashboard_text, fams, quiet=True)
        check("a wrong label value on a family only the running hanatd has samples of is "
              "caught", relabelled != rules_text and any('self="no"' in b for b in bad), bad)
    print(f"{len(failures)} failure(s)" if failures else "all checks passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
