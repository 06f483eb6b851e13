// SPDX-License-Identifier: GPL-2.0-or-later
// fuzz_ct_message: netfilter::parse_ct_message() on arbitrary bytes, as a ctnetlink event or
// dump reply might arrive (and should_carry() on whatever parses); a flow replicated_flow()
// yields is turned into its install request (append_install_message()) and parsed back.
// Invariants: no read outside the input (ASan), an error is prefixed "conntrack message: ",
// a parsed IPv4 message's flow carries the original tuple's addresses, ICMP flows have
// dport 0, and an install request parses to the same flow (its timeout within the install
// bound) and TCP state.
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <vector>

#include "netfilter/conntrack.h"
#include "netfilter/ct_install.h"
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
  auto r = netfilter::replicated_flow(*m);
  if (!r || netfilter::install_problem(*r)) return 0;
  FUZZ_CHECK(r->public_port != 0, "replicated flow without public port");
  std::vector<std::uint8_t> req;
  netfilter::append_install_message(req, *r, 0xc6130909U, 1);
  auto back = netfilter::parse_ct_message(req.data(), req.size());
  FUZZ_CHECK(back.has_value(), "install request does not parse: " + (back ? "" : back.error()));
  FUZZ_CHECK(back->kind == netfilter::CtKind::New, "install request is not a NEW message");
  // The same flow, its timeout within [1, kInstallTimeoutMaxS] (ct_install.h).
  netfilter::Flow want = r->flow;
  want.timeout_s = std::clamp<std::uint32_t>(r->flow.timeout_s, 1, netfilter::kInstallTimeoutMaxS);
  FUZZ_CHECK(back->flow.timeout_s == want.timeout_s, "install request with another timeout");
  FUZZ_CHECK(back->flow == want, "install request names another flow");
  FUZZ_CHECK((back->tcp ? back->tcp->state : 0xff) == (r->tcp ? r->tcp->state : 0xff),
             "install request with another TCP state");
  return 0;
}

}  // namespace hanat::fuzz

HANAT_FUZZ_ENTRY(ct_message)
