// SPDX-License-Identifier: GPL-2.0-or-later
#pragma once
// One translated connection as the connection-keeping handover moves it between members
// (DESIGN.md, "Connection survival"): the leaving NAT reads these from its conntrack table
// (ctnetlink) and sends them over the member channel; the taking NAT steers packets that match
// one back to the leaving NAT, which still holds the translation.
//
// Only the original direction is carried — as the private host sent it — because that is all
// the taking NAT sees of the flow: the packets that reach it after the route moved.

#include <compare>
#include <cstdint>

namespace hanat::netfilter {

struct Flow {
  uint8_t proto = 0;       // IPPROTO_TCP, IPPROTO_UDP or IPPROTO_ICMP
  uint32_t src = 0;        // original source (the private host), host byte order
  uint32_t dst = 0;        // original destination, host byte order
  uint16_t sport = 0;      // host byte order; the ICMP echo id for ICMP
  uint16_t dport = 0;      // host byte order; 0 for ICMP
  uint32_t timeout_s = 0;  // the kernel's remaining timeout when read (0 = unknown)

  // Identity is the 5-tuple; the timeout is not part of it.
  friend bool operator==(const Flow& a, const Flow& b) {
    return a.proto == b.proto && a.src == b.src && a.dst == b.dst && a.sport == b.sport &&
           a.dport == b.dport;
  }
};

}  // namespace hanat::netfilter
