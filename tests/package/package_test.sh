#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# The Debian package as an admin uses it: build it (scripts/package, lintian errors
# fail) into a temporary directory (never the shared dist/), install it with dpkg -i, check
# what it installed, validate the shipped config with hanatd --check-config, verify the
# systemd unit with systemd-analyze, then purge it and check that none of its files are left
# behind. Needs root (dpkg); exits 77 (skip) without it.
#
# Where hanat is already installed, that install is left alone: the same checks run on the
# .deb unpacked into a temporary root (dpkg-deb -x / -e) instead, and the ones that need an
# install (the hanat group made by postinst, purge) are printed as not checked.
# HANAT_PKGTEST_UNPACK_ONLY=1 asks for that mode anywhere (a machine dpkg -i must not touch).
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top"

if [[ $(id -u) -ne 0 ]]; then
  echo "SKIP: the package test needs root (dpkg -i / --purge)"
  exit 77
fi
installed=0
if [[ "${HANAT_PKGTEST_UNPACK_ONLY:-0}" == 1 ]]; then
  installed=1
  echo "NOTE: HANAT_PKGTEST_UNPACK_ONLY=1: checking the .deb unpacked into a temporary root"
elif dpkg-query -W -f='${Status}' hanat 2>/dev/null | grep -q "install ok"; then
  installed=1
  echo "NOTE: hanat $(dpkg-query -W -f='${Version}' hanat) is installed on this machine; not" \
    "touching it: checking the .deb unpacked into a temporary root instead of installing it"
fi

work=$(mktemp -d /tmp/hanat-pkgtest.XXXXXX)
cleanup() {
  ((installed)) || dpkg --purge hanat >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

fail=0
check() {  # check "what" command...
  local what=$1
  shift
  if "$@" >"$work/check.out" 2>&1; then
    echo "ok:   $what"
  else
    echo "FAIL: $what"
    sed 's/^/      /' "$work/check.out"
    fail=1
  fi
}
not_checked() {
  echo "NOT CHECKED (not installed, only unpacked): $1"
}

scripts/package --out "$work/dist" || { echo "FAIL: scripts/package"; exit 1; }
deb=$(ls "$work"/dist/hanat_*_*.deb | head -1)
files=$(dpkg-deb -c "$deb" | awk '{print $6}' | sed 's#^\./#/#' | grep -v '/$')

# R is the root the package's files are checked under: / once installed, else the unpacked
# tree. conffiles is dpkg's list of the package's configuration files.
if ((installed)); then
  R="$work/root"
  conffiles="$work/control/conffiles"
  check "dpkg-deb -x $deb (unpacked, not installed)" dpkg-deb -x "$deb" "$R"
  check "dpkg-deb -e $deb" dpkg-deb -e "$deb" "$work/control"
else
  R=""
  conffiles=/var/lib/dpkg/info/hanat.conffiles
  check "dpkg -i $deb" dpkg -i "$deb"
fi
for f in /usr/sbin/hanatd /usr/bin/hanatctl /etc/hanat/hanat.toml /lib/systemd/system/hanat.service \
         /usr/share/bash-completion/completions/hanatctl /usr/share/bash-completion/completions/hanatd \
         /usr/share/man/man8/hanatd.8.gz /usr/share/man/man8/hanatctl.8.gz \
         /usr/share/man/man5/hanat.toml.5.gz /usr/share/doc/hanat/copyright; do
  check "installed $f" test -e "$R$f"
done
# The shipped examples: the IAM policy must still be valid JSON after packaging (dh_compress
# may gzip examples above 4 KiB; then the check reads the .gz).
ex="$R/usr/share/doc/hanat/examples"
for f in iam-policy.json cloud-init.yaml; do
  check "installed example $f" sh -c "test -e '$ex/$f' || test -e '$ex/$f.gz'"
done
check "installed iam-policy.json is valid JSON" sh -c \
  "f='$ex/iam-policy.json'; { [ -e \"\$f\" ] && cat \"\$f\" || zcat \"\$f.gz\"; } | python3 -m json.tool >/dev/null"
check "/etc/hanat/hanat.toml is a conffile" grep -qx /etc/hanat/hanat.toml "$conffiles"
if ((installed)); then
  not_checked "group hanat exists (made by postinst)"
else
  check "group hanat exists" getent group hanat
fi
# The shipped config is a template that names no group: refused, and the unit's
# ExecCondition (run here as the unit states it) skips the service; with the group named
# the file is valid and the condition holds.
check "hanatd --check-config refuses the template, naming group.name" sh -c \
  "! '$R/usr/sbin/hanatd' --check-config '$R/etc/hanat/hanat.toml' 2>'$work/cc.err' && grep -q group.name '$work/cc.err'"
cond=$(sed -n 's/^ExecCondition=//p' "$R/lib/systemd/system/hanat.service")
check "the unit's ExecCondition skips the template" sh -c "! ${cond//\/etc\/hanat\/hanat.toml/$R/etc/hanat/hanat.toml}"
sed 's/^# name = "egress-prod"$/name = "egress-prod"/' "$R/etc/hanat/hanat.toml" >"$work/named.toml"
check "the template with its group named passes --check-config" "$R/usr/sbin/hanatd" --check-config "$work/named.toml"
check "the unit's ExecCondition holds once the group is named" sh -c "${cond//\/etc\/hanat\/hanat.toml/$work/named.toml}"
check "hanatd --version" "$R/usr/sbin/hanatd" --version
# verify only warns (exit 0) on a misspelled directive: any output at all is a failure.
if ((installed)); then
  # verify looks at the real root: the unit's man pages and ExecStart are the installed
  # package's, if any. So: no man lookup, and a missing /usr/sbin/hanatd is not this .deb's.
  not_checked "hanat.service's Documentation= man pages resolve"
  check "systemd-analyze verify hanat.service prints nothing (unpacked unit)" \
    sh -c "out=\$(systemd-analyze verify --man=no '$R/lib/systemd/system/hanat.service' 2>&1 |
                grep -v 'Command /usr/sbin/hanatd is not executable'); echo \"\$out\"; test -z \"\$out\""
else
  check "systemd-analyze verify hanat.service prints nothing" \
    sh -c "out=\$(systemd-analyze verify /lib/systemd/system/hanat.service 2>&1); echo \"\$out\"; test -z \"\$out\""
fi
check "man page hanat.toml(5) renders" sh -c "man -l '$R/usr/share/man/man5/hanat.toml.5.gz' | grep -q failback_delay"
check "man page hanatd(8) shows plan" sh -c "man -l '$R/usr/share/man/man8/hanatd.8.gz' | grep -q 'hanatd plan'"
check "man page hanatctl(8) shows prepare-restart" sh -c "man -l '$R/usr/share/man/man8/hanatctl.8.gz' | grep -q prepare-restart"

# Maintainer scripts: an upgrade restarts hanatd after telling it the stop is a restart (so
# it keeps its routes); a removal stops it. The systemd half of these (deb-systemd-invoke
# restart/stop) runs only where systemd is PID 1: here the scripts' text is checked, and the
# prepare-restart half runs for real below.
scripts_dir="$work/control"
[[ -d "$scripts_dir" ]] || check "dpkg-deb -e $deb" dpkg-deb -e "$deb" "$scripts_dir"
check "postinst: prepare-restart comes before the restart on upgrade" python3 - "$scripts_dir/postinst" <<'PY'
import re, sys
s = open(sys.argv[1]).read()
p, r = s.find("hanatctl prepare-restart"), s.find("deb-systemd-invoke $_dh_action")
assert p >= 0, "no hanatctl prepare-restart in postinst"
assert r > p, "no deb-systemd-invoke restart after prepare-restart"
assert re.search(r"_dh_action=restart", s), "upgrades do not restart the unit"
PY
check "prerm: removal stops the unit" grep -q "deb-systemd-invoke stop" "$scripts_dir/prerm"

if ((installed)); then
  not_checked "an upgrade (dpkg -i over itself) prepares the running hanatd's restart"
else
  # A hanatd running from the installed package (outside systemd, nothing restarts it), then
  # dpkg -i of the same .deb: dpkg runs postinst configure with the old version, the upgrade
  # path, which must reach the running daemon over /run/hanat/hanatd.sock.
  upgrade_check() {
    local port_file="$work/closed-port" cfg="$work/upgrade.toml" log="$work/hanatd.log"
    local created_run=0 holder hd rc=1
    # The metadata endpoint: a loopback port held bound and never listening (refuses at
    # once), never the real 169.254.169.254.
    python3 -c 'import socket,signal,sys
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1], flush=True)
signal.pause()' >"$port_file" &
    holder=$!
    for _ in $(seq 100); do [[ -s "$port_file" ]] && break; sleep 0.05; done
    [[ -d /run/hanat ]] || { mkdir -p /run/hanat && created_run=1; }
    printf '[group]\nname = "pkgtest"\n[status]\nsocket = "/run/hanat/hanatd.sock"\nmode = "0600"\n[ec2]\nmetadata_endpoint = "http://127.0.0.1:%s"\n[nat]\negress_interface = "lo"\n' \
      "$(cat "$port_file")" >"$cfg"
    # hanatd applies forwarding and its masquerade table from the config at start: in a
    # network namespace of its own, so this host's stay untouched (unshare execs hanatd,
    # $! is its pid; the metadata port is then unreachable, which is all this needs).
    unshare -n /usr/sbin/hanatd --config "$cfg" 2>"$log" &
    hd=$!
    for _ in $(seq 200); do hanatctl status >/dev/null 2>&1 && break; sleep 0.05; done
    if dpkg -i "$deb" >"$work/upgrade.out" 2>&1 &&
      grep -q "restart prepared over the status socket" "$log"; then
      kill -TERM "$hd"
      for _ in $(seq 200); do kill -0 "$hd" 2>/dev/null || break; sleep 0.05; done
      grep -q "hanatd restarting (SIGTERM, prepared by hanatctl prepare-restart)" "$log" && rc=0
    fi
    kill -KILL "$hd" "$holder" 2>/dev/null
    wait "$hd" "$holder" 2>/dev/null
    ((created_run)) && rm -rf /run/hanat
    cat "$work/upgrade.out" "$log"
    return $rc
  }
  check "an upgrade (dpkg -i over itself) prepares the running hanatd's restart; its SIGTERM keeps the routes" upgrade_check

  # The same upgrade on a serving NAT of the lab: a newer version, the installed hanatd on
  # both NATs, a stream through nat1: no route write, no gap (tests/e2e/upgrade_e2e.py).
  lab_upgrade() {
    python3 tests/e2e/upgrade_e2e.py --deb "$deb"
    local rc=$?
    ((rc == 77)) && echo "the lab is unavailable here (see above)"
    return $rc
  }
  check "lab: dpkg -i of a newer version restarts the serving hanatd with no route write and no gap in the stream" lab_upgrade
fi

if ((installed)); then
  not_checked "unit is installed disabled"
  not_checked "dpkg --purge hanat leaves no file behind"
else
  check "unit is installed disabled" sh -c '! test -e /etc/systemd/system/multi-user.target.wants/hanat.service'
  check "dpkg --purge hanat" dpkg --purge hanat
  left=""
  for f in $files /etc/hanat; do
    [[ -e "$f" ]] && left="$left $f"
  done
  check "purge leaves no file behind${left:+ (left:$left)}" test -z "$left"
fi

if [[ $fail -ne 0 ]]; then
  echo "package test: FAILED"
  exit 1
fi
if ((installed)); then
  echo "package test: all checks of the unpacked .deb passed (install, group and purge not checked: not installed)"
else
  echo "package test: all checks passed"
fi
