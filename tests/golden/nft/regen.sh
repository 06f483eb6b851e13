#!/bin/sh
# Regenerates the golden rule files from nft itself (`nft --debug=netlink` prints each rule's
# expressions as libnftnl's nftnl_rule_snprintf does), so the tests prove that hanat builds
# exactly the expressions nft would build for the same rule. Needs root; runs nft only inside
# a throwaway network namespace, never in the caller's.
set -eu
cd "$(dirname "$0")"
ns="hanat-golden-$$"
ip netns add "$ns"
trap 'ip netns del "$ns"' EXIT
gen() {
  name=$1; shift
  {
    echo "table ip hanat {"
    echo " chain postrouting {"
    echo "  type nat hook postrouting priority srcnat;"
    for r in "$@"; do echo "  $r"; done
    echo " }"
    echo "}"
    # Leave the namespace empty for the next case.
    echo "delete table ip hanat"
  } > "/tmp/$ns.nft"
  ip netns exec "$ns" nft --debug=netlink -f "/tmp/$ns.nft" | grep -v '^ip (null)' > "$name.txt"
  rm -f "/tmp/$ns.nft"
}
gen any_source 'oifname "eth0" masquerade'
gen cidrs_fully_random \
  'oifname "ens5" ip saddr 198.18.0.0/15 masquerade fully-random' \
  'oifname "ens5" ip saddr 198.19.1.0/24 masquerade fully-random' \
  'oifname "ens5" ip saddr 198.0.0.0/8 masquerade fully-random'
gen host_and_odd_prefix_persistent \
  'oifname "eth1" ip saddr 198.18.1.7/32 masquerade fully-random,persistent' \
  'oifname "eth1" ip saddr 198.18.1.64/26 masquerade fully-random,persistent' \
  'oifname "eth1" ip saddr 198.19.255.255 masquerade fully-random,persistent'
gen persistent_long_ifname 'oifname "averyveryverylo" ip saddr 198.18.0.0/16 masquerade persistent'

# The masquerade chain with the forward-path counting chains (NatSpec::forward_counters).
cat > "/tmp/$ns.nft" <<'NFT'
table ip hanat {
 chain postrouting {
  type nat hook postrouting priority srcnat;
  oifname "eth0" masquerade
 }
 chain forward_in {
  type filter hook prerouting priority mangle;
  ct direction original ip ttl > 1 fib daddr type unicast counter
 }
 chain forward_out {
  type filter hook postrouting priority mangle;
  ct direction original fib saddr type unicast counter
 }
}
delete table ip hanat
NFT
ip netns exec "$ns" nft --debug=netlink -f "/tmp/$ns.nft" | grep -v '^ip (null)' > forward_counters.txt
rm -f "/tmp/$ns.nft"

# The masquerade chain with the post-NAT leak counter (NatSpec::leak_counter).
cat > "/tmp/$ns.nft" <<'NFT'
table ip hanat {
 chain postrouting {
  type nat hook postrouting priority srcnat;
  oifname "eth0" ip saddr 198.18.0.0/15 masquerade
  oifname "eth0" ip saddr 198.19.1.64/26 masquerade
 }
 chain leak_out {
  type filter hook postrouting priority srcnat + 1;
  oifname "eth0" ip saddr 198.18.0.0/15 ct direction original fib saddr type unicast counter
  oifname "eth0" ip saddr 198.19.1.64/26 ct direction original fib saddr type unicast counter
 }
}
delete table ip hanat
NFT
ip netns exec "$ns" nft --debug=netlink -f "/tmp/$ns.nft" | grep -v '^ip (null)' > leak_counter.txt
rm -f "/tmp/$ns.nft"

# A zone's sources SNATed to the secondary private IP that carries its Elastic IP, ahead of
# the masquerade rules, with the leak counter that must not count them (NatSpec::snat).
cat > "/tmp/$ns.nft" <<'NFT'
table ip hanat {
 chain postrouting {
  type nat hook postrouting priority srcnat;
  oifname "eth0" ip saddr 198.18.2.0/24 snat to 198.18.0.20
  oifname "eth0" ip saddr 198.18.3.0/25 snat to 198.18.0.20
  oifname "eth0" ip saddr 198.18.0.0/15 masquerade
 }
 chain leak_out {
  type filter hook postrouting priority srcnat + 1;
  oifname "eth0" ip saddr 198.18.0.20 accept
  oifname "eth0" ip saddr 198.18.0.0/15 ct direction original fib saddr type unicast counter
 }
}
NFT
ip netns exec "$ns" nft --debug=netlink -f "/tmp/$ns.nft" | grep -v '^ip (null)' > snat_zone.txt
# The same rules as the kernel dumps them back (nft_nat_dump adds addr_max and the
# MAP_IPS flag that nft_nat_init set): what the read-back comparison expects.
ip netns exec "$ns" nft --debug=netlink list table ip hanat | sed -n '/^ip hanat/,/^$/p' |
  sed 's/^\(ip hanat [a-z_]*\) [0-9 ]*$/\1/' > snat_zone_dumped.txt
ip netns exec "$ns" nft delete table ip hanat
rm -f "/tmp/$ns.nft"

# What `nft -j list table ip hanat` prints for the table the namespace tests install, as
# written by nft itself from the rule text. The tests drop "handle" and "metainfo" before
# comparing (handles are assigned by the kernel).
cat > "/tmp/$ns.nft" <<'NFT'
table ip hanat {
 chain postrouting {
  type nat hook postrouting priority srcnat;
  oifname "wan0" ip saddr 198.18.0.0/15 masquerade fully-random
  oifname "wan0" ip saddr 198.19.1.0/24 masquerade fully-random
 }
}
NFT
ip netns exec "$ns" nft -f "/tmp/$ns.nft"
ip netns exec "$ns" nft -j list table ip hanat > table_wan0.json
rm -f "/tmp/$ns.nft"
