#!/usr/bin/env bash
# The Debian package as an admin uses it: build it (scripts/package, lintian errors
# fail), install it with dpkg -i, check what it installed, validate the shipped config
# with hanatd --check-config, verify the systemd unit with systemd-analyze, then purge it
# and check that none of its files are left behind. Needs root (dpkg); exits 77 (skip)
# without it. Refuses to run where hanat is already installed, to leave a real install
# alone.
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top"

if [[ $(id -u) -ne 0 ]]; then
  echo "SKIP: the package test needs root (dpkg -i / --purge)"
  exit 77
fi
if dpkg-query -W -f='${Status}' hanat 2>/dev/null | grep -q "install ok"; then
  echo "SKIP: hanat is installed on this machine; not touching a real install"
  exit 77
fi

fail=0
check() {  # check "what" command...
  local what=$1
  shift
  if "$@" >/tmp/hanat-pkgtest.out 2>&1; then
    echo "ok:   $what"
  else
    echo "FAIL: $what"
    sed 's/^/      /' /tmp/hanat-pkgtest.out
    fail=1
  fi
}

scripts/package || { echo "FAIL: scripts/package"; exit 1; }
deb=$(ls dist/hanat_*_*.deb | head -1)
files=$(dpkg-deb -c "$deb" | awk '{print $6}' | sed 's#^\./#/#' | grep -v '/$')

trap 'dpkg --purge hanat >/dev/null 2>&1 || true' EXIT
check "dpkg -i $deb" dpkg -i "$deb"
for f in /usr/sbin/hanatd /usr/bin/hanatctl /etc/hanat/hanat.toml /lib/systemd/system/hanat.service \
         /usr/share/man/man8/hanatd.8.gz /usr/share/man/man8/hanatctl.8.gz \
         /usr/share/man/man5/hanat.toml.5.gz /usr/share/doc/hanat/copyright; do
  check "installed $f" test -e "$f"
done
# The shipped examples: the IAM policy must still be valid JSON after packaging (dh_compress
# may gzip examples above 4 KiB; then the check reads the .gz).
for f in iam-policy.json cloud-init.yaml; do
  check "installed example $f" sh -c "test -e /usr/share/doc/hanat/examples/$f || test -e /usr/share/doc/hanat/examples/$f.gz"
done
check "installed iam-policy.json is valid JSON" sh -c \
  'f=/usr/share/doc/hanat/examples/iam-policy.json; { [ -e "$f" ] && cat "$f" || zcat "$f.gz"; } | python3 -m json.tool >/dev/null'
check "/etc/hanat/hanat.toml is a conffile" grep -qx /etc/hanat/hanat.toml /var/lib/dpkg/info/hanat.conffiles
check "group hanat exists" getent group hanat
check "hanatd --check-config /etc/hanat/hanat.toml" /usr/sbin/hanatd --check-config /etc/hanat/hanat.toml
check "hanatd --version" /usr/sbin/hanatd --version
# verify only warns (exit 0) on a misspelled directive: any output at all is a failure.
check "systemd-analyze verify hanat.service prints nothing" \
  sh -c 'out=$(systemd-analyze verify /lib/systemd/system/hanat.service 2>&1); echo "$out"; test -z "$out"'
check "man page hanat.toml(5) renders" sh -c 'man -l /usr/share/man/man5/hanat.toml.5.gz | grep -q "failback_delay"'
check "unit is installed disabled" sh -c '! test -e /etc/systemd/system/multi-user.target.wants/hanat.service'

check "dpkg --purge hanat" dpkg --purge hanat
left=""
for f in $files /etc/hanat; do
  [[ -e "$f" ]] && left="$left $f"
done
check "purge leaves no file behind${left:+ (left:$left)}" test -z "$left"

if [[ $fail -ne 0 ]]; then
  echo "package test: FAILED"
  exit 1
fi
echo "package test: all checks passed"
