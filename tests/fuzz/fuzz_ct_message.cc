// SPDX-License-Identifier: GPL-2.0-or-later
// fuzz_ct_message: netfilter::parse_ct_message() on arbitrary bytes, as a ctnetlink event or
// dump reply might arrive (and should_carry() on whatever parses).
// Invariants: no read outside the input (ASan), an error is prefixed "conntrack message: ",
// a parsed IPv4 message's flow carries the original tuple's addresses, and ICMP flows have
// dport 0.
#include <netinet/in.h>
#include <sys/socket.h>

#include <vector>

#include "netfilter/conntrack.h"
#include "tests/fuzz/fuzz_check.h"

namespace hanat::fuzz {

int ct_message(const std::uint8_t* data, std::size_t size) {
  // Exactly `size` bytes on the heap, so ASan sees a read one past the end.
  std::vector<std::uint8_t> copy(data, data + size);
  auto m = netfilter::parse_ct_message(copy.data(), copy.size());
  if (!m) {
    FUZZ_CHECK(m.error().rfind("conntrack message: ", 0) == 0, "error not prefixed: " + m.error());
    return 0;
  }
  if (m->family == AF_INET) {
    FUZZ_CHECK(m->flow.src == m->entry.orig.src && m->flow.dst == m->entry.orig.dst,
               "flow and original tuple disagree");
    if (m->flow.proto == IPPROTO_ICMP) FUZZ_CHECK(m->flow.dport == 0, "ICMP flow with a dport");
  }
  netfilter::FlowFilter any;
  (void)netfilter::should_carry(*m, any);
  return 0;
}

}  // namespace hanat::fuzz

HANAT_FUZZ_ENTRY(ct_message)
