#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""conf/cloud-init.yaml as cloud-init and the daemon would read it.

Checks: the file is YAML user data (starts with #cloud-config, parses to a mapping), it
writes /etc/hanat/hanat.toml and that embedded TOML passes `hanatd --check-config`, the
runcmd script is valid sh that installs the package keeping that config
(--force-confold) and enables and starts hanat.service.

Parses with PyYAML (python3-yaml), as cloud-init does; without it the test fails: there is no
stand-in parse. Broken copies in tests/fixtures/cloud-init/ check that it fails when it should.

Usage: cloud_init_test.py HANATD [CLOUD_INIT_YAML]
"""
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT = os.path.join(HERE, "..", "..", "conf", "cloud-init.yaml")

failures = []


def check(what, ok, detail=""):
    print(("ok:   " if ok else "FAIL: ") + what + ("" if ok else "\n      " + detail))
    if not ok:
        failures.append(what)


def load(path):
    """The file's text and what PyYAML (cloud-init's own parser) makes of it, or None if the
    YAML does not parse (recorded as a failure)."""
    try:
        import yaml  # PyYAML, Debian package python3-yaml
    except ImportError:
        # No stand-in: a hand-made parse would pass whatever the YAML says.
        print("FAIL: PyYAML is missing; this test parses the file with it, as cloud-init "
              "does, and has no fallback. Install python3-yaml (apt-get install python3-yaml).")
        sys.exit(1)
    text = open(path, encoding="utf-8").read()
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as e:
        check("parses as YAML", False, str(e).replace("\n", "\n      "))
        return text, None
    check("parses as YAML", True)
    return text, doc


def main():
    if len(sys.argv) < 2:
        print("usage: cloud_init_test.py HANATD [CLOUD_INIT_YAML]")
        return 2
    hanatd = sys.argv[1]
    path = sys.argv[2] if len(sys.argv) > 2 else DEFAULT
    text, doc = load(path)
    if doc is None:
        return 1
    check("first line is #cloud-config", text.splitlines()[0] == "#cloud-config",
          repr(text.splitlines()[0]))
    check("parses to a mapping", isinstance(doc, dict), repr(type(doc)))
    if not isinstance(doc, dict):
        return 1
    check("package_update: true (apt resolves the .deb's dependencies)",
          doc.get("package_update") is True, repr(doc.get("package_update")))
    files = [f for f in doc.get("write_files", []) if f.get("path") == "/etc/hanat/hanat.toml"]
    check("writes /etc/hanat/hanat.toml", len(files) == 1, repr(doc.get("write_files")))
    if not files:
        return 1
    check("config mode 0644", str(files[0].get("permissions")) == "0644",
          repr(files[0].get("permissions")))
    with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as f:
        f.write(files[0]["content"])
        toml_path = f.name
    try:
        r = subprocess.run([hanatd, "--check-config", toml_path], capture_output=True,
                           text=True, timeout=30)
        check("embedded hanat.toml passes hanatd --check-config", r.returncode == 0,
              r.stdout + r.stderr)
    finally:
        os.unlink(toml_path)
    check("config names a group", "[group]" in files[0]["content"]
          and "\nname = " in files[0]["content"], files[0]["content"])

    scripts = [c for c in doc.get("runcmd", []) if isinstance(c, list) and c[:2] == ["sh", "-ec"]]
    check("runcmd has one sh -ec script", len(scripts) == 1, repr(doc.get("runcmd")))
    if not scripts:
        return 1
    script = scripts[0][2]
    r = subprocess.run(["sh", "-n"], input=script, capture_output=True, text=True, timeout=30)
    check("runcmd script is valid sh (sh -n)", r.returncode == 0, r.stderr)
    check("installs the .deb keeping the written config",
          "apt-get install" in script and "--force-confold" in script, script)
    check("enables and starts hanat.service",
          "systemctl enable --now hanat.service" in script, script)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
