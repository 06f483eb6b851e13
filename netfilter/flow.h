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
#include <optional>

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

// TCP protocol state of a conntrack entry, as ctnetlink reports and accepts it
// (CTA_PROTOINFO_TCP; nf_conntrack_proto_tcp.c, tcp_to_nlattr / nlattr_to_tcp).
struct TcpInfo {
  uint8_t state = 0;         // enum tcp_conntrack: 3 = TCP_CONNTRACK_ESTABLISHED
  uint8_t wscale_orig = 0;   // window scale the original sender announced in its SYN
  uint8_t wscale_reply = 0;  // window scale of the reply sender (SYN-ACK)
  uint8_t flags_orig = 0;    // IP_CT_TCP_FLAG_* of the original direction
  uint8_t flags_reply = 0;   // ... of the reply direction

  friend bool operator==(const TcpInfo&, const TcpInfo&) = default;
};

// One translated connection as stateful failover replicates it (DESIGN.md, "Connection
// survival"): everything a survivor needs to recreate the entry in its own conntrack table
// with the same public port, on its own public address (install_flows(), ct_install.h).
//
// The public port is the reply tuple's destination port: the port the translating NAT chose
// for the private host's source port (for ICMP the echo id it chose).
struct ReplicatedFlow {
  Flow flow;                   // the original tuple as the private host sent it; timeout_s
  uint16_t public_port = 0;    // host byte order
  uint32_t status = 0;         // IPS_* bits of the entry when read
  std::optional<TcpInfo> tcp;  // TCP only

  friend bool operator==(const ReplicatedFlow& a, const ReplicatedFlow& b) {
    return a.flow == b.flow && a.flow.timeout_s == b.flow.timeout_s &&
           a.public_port == b.public_port && a.status == b.status && a.tcp == b.tcp;
  }
};

}  // namespace hanat::netfilter
