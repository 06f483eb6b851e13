#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Builds hanat.toml(5) from conf/hanat.toml, the commented reference configuration.

The example file is the single source of the configuration's documentation: a comment
block before a key (or before a commented-out "# key = value" line) describes that key;
a comment block right after a [section] header describes the section; the file's
leading comment block becomes the DESCRIPTION. Usage: toml2man.py conf/hanat.toml > out.5
"""
import re
import sys

KEY = re.compile(r'^(#\s*)?([a-z_0-9]+)\s*=\s*(.*)$')
SECTION = re.compile(r'^\[([a-z_0-9.]+)\]\s*$')


def esc(text):
    text = text.replace('\\', '\\e')
    # A line starting with a dot or quote would be read as a roff request.
    if text.startswith(('.', "'")):
        text = '\\&' + text
    return text.replace('-', '\\-')


def main(path):
    lines = open(path, encoding='utf-8').read().splitlines()
    out = ['.TH HANAT.TOML 5 "2026-11-22" "hanat 0.1.0" "File Formats"',
           '.SH NAME', 'hanat.toml \\- configuration of the hanat NAT-instance daemon',
           '.SH SYNOPSIS', '.I /etc/hanat/hanat.toml', '.SH DESCRIPTION']
    comments = []
    in_header = True
    seen_keys = set()
    for raw in lines:
        line = raw.strip()
        m_sec = SECTION.match(line)
        if in_header and not line.startswith('#'):
            for c in comments:
                out.append(esc(c) if c else '.PP')
            comments = []
            in_header = False
        if in_header:
            comments.append(line.lstrip('#').strip())
            continue
        if m_sec:
            out += ['.SH "[%s]"' % m_sec.group(1)]
            comments = []
            continue
        m_key = KEY.match(line)
        if m_key:
            key, value = m_key.group(2), m_key.group(3)
            commented = m_key.group(1) is not None
            # A commented-out key that repeats a documented one (an alternative value)
            # is an example for that key, not a new entry.
            if commented and key in seen_keys:
                out.append('Example: \\fB%s = %s\\fR' % (esc(key), esc(value)))
                out.append('.br')
                continue
            seen_keys.add(key)
            out.append('.TP')
            if commented:
                out.append('\\fB%s\\fR (unset by default; example: \\fB%s\\fR)' % (esc(key), esc(value)))
            else:
                out.append('\\fB%s\\fR = \\fB%s\\fR' % (esc(key), esc(value)))
            out += [esc(c) for c in comments if c]
            comments = []
            continue
        if line.startswith('#'):
            comments.append(line.lstrip('#').strip())
        elif not line:
            pass
        else:
            comments = []
    out += ['.SH FILES', '.TP', '.I /usr/share/doc/hanat/examples/hanat.toml',
            'The commented reference this page is built from.',
            '.SH SEE ALSO', '.BR hanatd (8),', '.BR hanatctl (8)']
    sys.stdout.write('\n'.join(out) + '\n')


if __name__ == '__main__':
    main(sys.argv[1])
