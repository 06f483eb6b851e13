#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Builds a man page from a program's --help and a template, so that the options and
commands the page lists are the ones the binary has (as toml2man.py does for
hanat.toml(5) from conf/hanat.toml).

Usage: help2man.py BINARY TEMPLATE > page.8

The template is roff with two markers on lines of their own:
  @SYNOPSIS@  the "Usage:" lines of --help, one per line, in bold
  @OPTIONS@   every "  term   text" entry of --help as a .TP paragraph, under the heading
              the help gives them ("Options:", "Commands:") or OPTIONS, and the help's
              other paragraphs after them
--help's layout: a "Usage:" block (continuation lines indented), then entries: a line
starting with two spaces, a term, two or more spaces, the text; a deeper-indented line
continues the text. Any other non-blank line is a plain paragraph.
"""
import re
import subprocess
import sys

ENTRY = re.compile(r"^ {2,8}(\S.*?)\s{2,}(\S.*)$")
HEADING = re.compile(r"^([A-Z][A-Za-z ]*):$")


def esc(text):
    text = text.replace("\\", "\\e").replace("-", "\\-")
    if text.startswith((".", "'")):
        text = "\\&" + text
    return text


def parse(help_text):
    """(usage lines, [(heading, [(term, text)])], [paragraph])."""
    lines = help_text.splitlines()
    usage, groups, paras = [], [], []
    i = 0
    while i < len(lines) and not lines[i].startswith("Usage:"):
        i += 1
    while i < len(lines) and lines[i].strip():
        line = lines[i]
        usage.append(line[len("Usage:"):].strip() if line.startswith("Usage:") else line.strip())
        i += 1
    heading, entries, para = "OPTIONS", None, []
    for line in lines[i:]:
        if not line.strip():
            if para:
                paras.append(" ".join(para))
                para = []
            continue
        m = HEADING.match(line)
        if m:
            heading, entries = m.group(1).upper(), None
            continue
        m = ENTRY.match(line)
        if m and not para:
            if entries is None:
                entries = []
                groups.append((heading, entries))
            entries.append([m.group(1), m.group(2)])
            continue
        if entries and line.startswith(" " * 9) and not para:
            entries[-1][1] += " " + line.strip()
            continue
        para.append(line.strip())
    if para:
        paras.append(" ".join(para))
    # A usage line may wrap: a line that does not start with the program's name
    # continues the one before (e.g. "writing nothing" under "hanatd plan ...").
    # A usage line may carry a description after two or more spaces ("hanatd plan
    # [--config FILE]     print what ..."), which may wrap onto lines that do not start
    # with the program's name.
    merged = []
    prog = usage[0].split()[0] if usage else ""
    for u in usage:
        if merged and not u.startswith(prog):
            merged[-1][1] += " " + u
            continue
        cmd, _, desc = u.partition("  ")
        merged.append([cmd.strip(), desc.strip()])
    return merged, groups, paras


def render(help_text, template):
    usage, groups, paras = parse(help_text)
    syn = []
    for cmd, _ in usage:
        syn += [".B " + esc(cmd), ".br"]
    opts = []
    if any(desc for _, desc in usage):
        opts.append(".SH MODES")
        for cmd, desc in usage:
            if desc:
                opts += [".TP", ".B " + esc(cmd), esc(desc)]
    for heading, entries in groups:
        opts.append(".SH " + heading)
        for term, text in entries:
            opts += [".TP", ".B " + esc(term), esc(text)]
    for p in paras:
        opts += [".PP", esc(p)]
    out = template.replace("@SYNOPSIS@\n", "\n".join(syn) + "\n")
    return out.replace("@OPTIONS@\n", "\n".join(opts) + "\n")


def main(argv):
    if len(argv) != 3:
        sys.stderr.write(__doc__)
        return 2
    help_text = subprocess.run([argv[1], "--help"], check=True, capture_output=True,
                               text=True).stdout
    template = open(argv[2], encoding="utf-8").read()
    for marker in ("@SYNOPSIS@\n", "@OPTIONS@\n"):
        if marker not in template:
            sys.stderr.write(f"help2man.py: {argv[2]}: no {marker.strip()} line\n")
            return 2
    sys.stdout.write(render(help_text, template))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
