#!/bin/sh
# Regenerates steer_rules.txt and steer_elements.txt from nft itself (see regen.sh): the
# steering table's rules and one set element, as `nft --debug=netlink` builds them for the
# same text, so the unit tests prove that netfilter/steer_batch.cc builds the same
# expressions and key layout. Needs root; runs nft only inside a throwaway namespace.
set -eu
cd "$(dirname "$0")"
ns="hanat-golden-steer-$$"
ip netns add "$ns"
trap 'ip netns del "$ns"; rm -f "/tmp/$ns.nft"' EXIT
cat > "/tmp/$ns.nft" <<'NFT'
table ip hanat_steer_c6120202 {
 set flows { typeof ip saddr . ip daddr . meta l4proto . th sport . th dport; size 1000; flags timeout; }
 chain catch_unknown {
  meta l4proto tcp tcp flags & syn == 0 ct state new,invalid fib daddr type unicast meta mark set 0x48000001
 }
 chain prerouting {
  type filter hook prerouting priority mangle;
  ip saddr . ip daddr . meta l4proto . th sport . th dport @flows meta mark set 0x48000001
  jump catch_unknown
 }
 chain forward {
  type filter hook forward priority mangle;
  meta mark 0x48000001 meta mark set 0
 }
}
NFT
ip netns exec "$ns" nft --debug=netlink -f "/tmp/$ns.nft" | grep -v '^ip (null)' |
  grep -v '^flows ' > steer_rules.txt
ip netns exec "$ns" nft --debug=netlink add element ip hanat_steer_c6120202 flows \
  '{ 198.18.1.2 . 198.19.0.1 . tcp . 40000 . 443 timeout 30s }' > steer_elements.txt
