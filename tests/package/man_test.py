#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""hanatd(8), hanatctl(8) and the bash completion offer what the binaries' --help lists
(the completion is checked last). The pages are generated
by packaging/man/help2man.py (as the package build does), rendered with man(1), and every
option and command of --help must appear in the rendered page, with the verbs and modes an
operator looks for (plan, --no-handover, metrics, drain, prepare-restart).

Usage: man_test.py HANATD HANATCTL
"""
import os
import re
import subprocess
import sys
import tempfile

TOP = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
GEN = os.path.join(TOP, "packaging", "man", "help2man.py")
failures = []


def check(what, ok, detail=""):
    print(("ok:   " if ok else "FAIL: ") + what + ("" if ok else f"\n      {detail}"))
    if not ok:
        failures.append(what)


def render(binary, template, tmp):
    page = os.path.join(tmp, os.path.basename(template)[:-3])
    with open(page, "w") as f:
        subprocess.run([sys.executable, GEN, binary, template], check=True, stdout=f)
    env = dict(os.environ, MANWIDTH="200", MAN_KEEP_FORMATTING="0")
    out = subprocess.run(["man", "-l", page], capture_output=True, text=True, env=env,
                         check=True).stdout
    # Undo man's backspace overstriking (bold/underline) if any survived.
    return re.sub(r".\x08", "", out)


def open_help(binary):
    return subprocess.run([binary, "--help"], capture_output=True, text=True,
                          check=True).stdout


def help_terms(binary):
    """Every option (-x, --long) and every command word of --help's entries and usage."""
    text = subprocess.run([binary, "--help"], capture_output=True, text=True,
                          check=True).stdout
    terms = set(re.findall(r"(?<![\w-])(--?[a-zA-Z][\w-]*)", text))
    for line in text.splitlines():
        m = re.match(r"^ {2,8}([a-z][\w-]*)\s{2,}", line)
        if m:
            terms.add(m.group(1))
    return terms


def main(argv):
    if len(argv) != 3:
        print(__doc__)
        return 2
    hanatd, hanatctl = argv[1], argv[2]
    with tempfile.TemporaryDirectory() as tmp:
        for binary, name, must in (
                (hanatd, "hanatd.8.in", ["hanatd plan", "--no-handover", "--check-config",
                                         "SIGTERM", "prepare-restart", "remove_on_exit",
                                         "MESSAGE_ID"]),
                (hanatctl, "hanatctl.8.in", ["status", "metrics", "drain", "undrain",
                                             "prepare-restart", "--socket", "peers", "routes",
                                             "--wait", "--timeout", "/var/lib/hanat/drained"])):
            page = render(binary, os.path.join(TOP, "packaging", "man", name), tmp)
            terms = help_terms(binary)
            check(f"{name[:-3]}: --help lists options and commands ({len(terms)})",
                  len(terms) >= 5, sorted(terms))
            missing = sorted(t for t in terms if t not in page)
            check(f"{name[:-3]}: every option and command of --help is in the page",
                  not missing, f"missing: {missing}")
            # Each entry of --help is a paragraph of its own: its term starts a line.
            starts = [ln.strip() for ln in page.splitlines()]
            entries = re.findall(r"^ {2,8}(\S.*?)\s{2,}\S", open_help(binary), re.M)
            lost = [e for e in entries if not any(ln.startswith(e) for ln in starts)]
            check(f"{name[:-3]}: each of the {len(entries)} entries of --help starts a line",
                  entries and not lost, f"not starting a line: {lost}")
            absent = [m for m in must if m not in page]
            check(f"{name[:-3]}: shows {', '.join(must)}", not absent, f"absent: {absent}")
        # bash completion (packaging/bash-completion/hanatctl, both programs): every
        # option and command of --help is offered for an empty word.
        comp = os.path.join(TOP, "packaging", "bash-completion", "hanatctl")
        for binary, fn in ((hanatd, "_hanatd"), (hanatctl, "_hanatctl")):
            script = (f'source "{comp}"; COMP_WORDS=("{binary}" ""); COMP_CWORD=1; {fn}; '
                      'printf "%s\\n" "${COMPREPLY[@]}"')
            r = subprocess.run(["bash", "-c", script], capture_output=True, text=True)
            offered = set(r.stdout.split())
            want = {t for t in help_terms(binary) if t.startswith("--") or t[0].isalpha()}
            check(f"bash completion of {os.path.basename(binary)} offers every command and "
                  f"long option of --help ({len(want)})",
                  r.returncode == 0 and want and want <= offered,
                  f"missing {sorted(want - offered)}; stderr {r.stderr[:200]}")
        # A template without its markers is refused, not turned into a page without options.
        bad = os.path.join(tmp, "bad.8.in")
        with open(bad, "w") as f:
            f.write(".TH X 8\n.SH NAME\nx\n")
        r = subprocess.run([sys.executable, GEN, hanatd, bad], capture_output=True, text=True)
        check("help2man.py refuses a template without @SYNOPSIS@ (exit 2, names it)",
              r.returncode == 2 and "@SYNOPSIS@" in r.stderr, r.stderr)
    if failures:
        print(f"FAILED: {len(failures)} check(s)")
        return 1
    print("PASSED: man pages match --help")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
