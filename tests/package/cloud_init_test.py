#!/usr/bin/env python3
"""conf/cloud-init.yaml as cloud-init and the daemon would read it.

Checks: the file is YAML user data (starts with #cloud-config, parses to a mapping), it
writes /etc/hanat/hanat.toml and that embedded TOML passes `hanatd --check-config`, the
runcmd script is valid sh that installs the package keeping that config
(--force-confold) and enables and starts hanat.service.

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
    text = open(path, encoding="utf-8").read()
    try:
        import yaml  # PyYAML (python3-yaml); the image's python3 has it
    except ImportError:
        yaml = None
    if yaml is not None:
        return text, yaml.safe_load(text)
    # Minimal fallback without PyYAML: pull the one literal block we need by indentation.
    lines = text.splitlines()
    start = next(i for i, l in enumerate(lines) if l.strip() == "content: |")
    indent = len(lines[start + 1]) - len(lines[start + 1].lstrip())
    block = []
    for l in lines[start + 1:]:
        if l.strip() and len(l) - len(l.lstrip()) < indent:
            break
        block.append(l[indent:])
    script_at = next(i for i, l in enumerate(lines) if l.strip() == "- |")
    s_indent = len(lines[script_at + 1]) - len(lines[script_at + 1].lstrip())
    script = [l[s_indent:] for l in lines[script_at + 1:]]
    return text, {"package_update": "\npackage_update: true\n" in text,
                  "write_files": [{"path": "/etc/hanat/hanat.toml", "permissions": "0644",
                                   "content": "\n".join(block) + "\n"}],
                  "runcmd": [["sh", "-ec", "\n".join(script) + "\n"]]}


def main():
    if len(sys.argv) < 2:
        print("usage: cloud_init_test.py HANATD [CLOUD_INIT_YAML]")
        return 2
    hanatd = sys.argv[1]
    path = sys.argv[2] if len(sys.argv) > 2 else DEFAULT
    text, doc = load(path)
    check("first line is #cloud-config", text.splitlines()[0] == "#cloud-config",
          repr(text.splitlines()[0]))
    check("parses to a mapping", isinstance(doc, dict), repr(type(doc)))
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
