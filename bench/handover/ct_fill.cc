// SPDX-License-Identifier: GPL-2.0-or-later
// bench_ct_fill: creates `count` established, source-NATed TCP conntrack entries in the calling
// namespace through ctnetlink (netfilter/ct_install.h, the takeover's own path), to model a
// NAT that holds that many concurrent flows without opening them (bench/handover/
// replica_50k.py). Each entry is a flow from `src_net` + 2 + i / 250 (source port 20000 +
// i % 250) to `dst`:443, translated to `public`:10000 + i, ESTABLISHED with a 5-day
// timeout (nf_conntrack_tcp_timeout_established), as the kernel would hold it.
//
//   bench_ct_fill COUNT SRC_NET DST PUBLIC      e.g. 50000 198.18.1.0 198.19.0.1 198.19.0.11
//
// Prints "installed N collided C failed F in T ms"; exit 1 on bad arguments or an error.
#include <linux/netfilter/nf_conntrack_common.h>
#include <netinet/in.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "core/base/ipv4.h"
#include "netfilter/ct_install.h"

namespace {

using namespace hanat::netfilter;

constexpr size_t kMaxCount = 55000;  // public ports 10000..64999

int usage(const char* why) {
  std::fprintf(stderr,
               "bench_ct_fill: %s\nusage: bench_ct_fill COUNT SRC_NET DST PUBLIC (COUNT 1..%zu, "
               "addresses dotted quads)\n",
               why, kMaxCount);
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 5) return usage("four arguments expected");
  char* end = nullptr;
  const unsigned long count = std::strtoul(argv[1], &end, 10);
  if (end == argv[1] || *end != '\0' || count == 0 || count > kMaxCount)
    return usage((std::string("COUNT \"") + argv[1] + "\" out of range").c_str());
  const auto src = hanat::core::parse_ipv4(argv[2]);
  const auto dst = hanat::core::parse_ipv4(argv[3]);
  const auto pub = hanat::core::parse_ipv4(argv[4]);
  if (!src || !dst || !pub) return usage("an address is not a dotted quad");
  std::vector<ReplicatedFlow> flows;
  flows.reserve(count);
  for (size_t i = 0; i < count; ++i) {
    ReplicatedFlow r;
    r.flow.proto = IPPROTO_TCP;
    r.flow.src = *src + 2 + static_cast<uint32_t>(i / 250);
    r.flow.dst = *dst;
    r.flow.sport = static_cast<uint16_t>(20000 + i % 250);
    r.flow.dport = 443;
    r.flow.timeout_s = 432000;
    r.public_port = static_cast<uint16_t>(10000 + i);
    r.status = IPS_CONFIRMED | IPS_SEEN_REPLY | IPS_ASSURED | IPS_SRC_NAT | IPS_SRC_NAT_DONE;
    r.tcp = TcpInfo{3, 7, 7, 0x03, 0x03};  // ESTABLISHED, window scale 7, SACK permitted
    flows.push_back(r);
  }
  const auto t0 = std::chrono::steady_clock::now();
  auto rep = install_flows(flows, *pub);
  const auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0)
          .count();
  if (!rep) {
    std::fprintf(stderr, "bench_ct_fill: %s\n", rep.error().message.c_str());
    return 1;
  }
  std::printf("installed %llu collided %llu failed %llu in %lld ms\n",
              static_cast<unsigned long long>(rep->installed),
              static_cast<unsigned long long>(rep->collided),
              static_cast<unsigned long long>(rep->failed), static_cast<long long>(ms));
  return 0;
}
