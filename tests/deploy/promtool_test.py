#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""promtool on deploy/prometheus/hanat.rules.yml and the dashboard's queries.

1. `promtool check rules` on the alert rules (syntax, PromQL, templates).
2. `promtool test rules tests/deploy/hanat.rules.test.yml`: the alerts fire, stay quiet
   and carry the labels and annotations the test file expects, on series shaped as hanatd
   writes them.
3. Every PromQL query of deploy/grafana/hanat.json (panels, annotations, variables),
   with Grafana's variables replaced by values, parses: each becomes a recording rule of
   a temporary file that `promtool check rules` reads.

promtool comes from Debian's `prometheus` package (scripts/deps installs it).
Usage: promtool_test.py     Exit 0 pass, 1 fail, 77 skipped (no promtool).
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
RULES = os.path.join(ROOT, "deploy", "prometheus", "hanat.rules.yml")
RULES_TEST = os.path.join(HERE, "hanat.rules.test.yml")
DASHBOARD = os.path.join(ROOT, "deploy", "grafana", "hanat.json")

# What Grafana puts in for its variables, for a syntax check only.
GRAFANA_VARS = {"$__rate_interval": "1m", "$__interval": "1m", "$__range": "1h",
                "$instance": ".*", "$group": "g", "${datasource}": "prometheus"}

failures = []


def check(what, ok, detail=""):
    print(("ok:   " if ok else "FAIL: ") + what + ("" if ok else "\n      " +
                                                  str(detail).replace("\n", "\n      ")))
    if not ok:
        failures.append(what)
    return ok


def run(args):
    r = subprocess.run(args, capture_output=True, text=True, timeout=120)
    return r.returncode, r.stdout + r.stderr


def dashboard_queries(d):
    out = []
    for p in d.get("panels", []):
        for t in p.get("targets", []):
            out.append((f"panel {p.get('title')!r} {t.get('refId')}", t.get("expr", "")))
    for a in d.get("annotations", {}).get("list", []):
        if "expr" in a:
            out.append((f"annotation {a.get('name')!r}", a["expr"]))
    for v in d.get("templating", {}).get("list", []):
        if v.get("type") == "query":
            m = re.fullmatch(r"\s*label_values\((.*),\s*[a-zA-Z_]\w*\s*\)\s*",
                             v.get("definition", ""))
            out.append((f"variable {v['name']}", m.group(1) if m else v.get("definition", "")))
    return out


def main():
    promtool = shutil.which("promtool")
    if not promtool:
        print("SKIP: promtool is missing (Debian package prometheus; scripts/deps installs it)")
        return 77
    rc, out = run([promtool, "check", "rules", RULES])
    check("promtool check rules deploy/prometheus/hanat.rules.yml", rc == 0, out)
    m = re.search(r"SUCCESS: (\d+) rules found", out)
    check("the file holds the alert rules", m is not None and int(m.group(1)) >= 10, out)
    rc, out = run([promtool, "test", "rules", RULES_TEST])
    check("promtool test rules tests/deploy/hanat.rules.test.yml", rc == 0, out)

    d = json.load(open(DASHBOARD, encoding="utf-8"))
    queries = dashboard_queries(d)
    rules = []
    for i, (where, q) in enumerate(queries):
        for k, v in GRAFANA_VARS.items():
            q = q.replace(k, v)
        rules.append({"record": f"dashboard:query_{i}", "expr": q})
    leftover = [q for _, q in queries if re.search(r"\$(?!(__rate_interval|__interval|__range|"
                                                   r"instance|group|\{datasource\}))", q)]
    check("the dashboard's queries use only the variables it defines", not leftover, leftover)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "dashboard-queries.yml")
        with open(path, "w") as f:
            json.dump({"groups": [{"name": "dashboard", "rules": rules}]}, f)  # JSON is YAML
        rc, out = run([promtool, "check", "rules", path])
    check(f"every dashboard query parses ({len(rules)} queries)",
          rc == 0 and len(rules) >= 15, out)
    print(f"{len(failures)} failure(s)" if failures else "all checks passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
