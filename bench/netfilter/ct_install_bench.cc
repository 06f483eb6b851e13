// SPDX-License-Identifier: GPL-2.0-or-later
// Benchmarks of stateful failover's kernel side (netfilter/ct_install.h), per 1,000 flows.
//
//   BM_ParseReplicate  pure: 1,000 ctnetlink dump replies / events (TCP with protoinfo)
//                      -> parse_ct_message() -> replicated_flow()
//   BM_BuildInstall    pure: 1,000 ReplicatedFlows -> their IPCTNL_MSG_CT_NEW requests
//   BM_InstallFlows    kernel: install_flows() of 1,000 and of 50,000 flows (collision
//                      dump, 64 requests per datagram, ACKs) and remove_flows() of them;
//                      only the install is timed. Runs only as root, in a private network namespace
//                      that main() unshares first (hanat's masquerade table is committed there so
//                      nf_nat is in use as on a NAT instance).
//   BM_DumpReplicated  kernel: the replication's resync dump of 50,000 flows in one piece
//                      (/0) and in 10 ms steps (/10000, ReplicatedDumper), with the longest
//                      step: how long the daemon's loop waits for it at once.
//
// Each reports the median of single passes over its flows (p50_us) next to the mean.
#include <arpa/inet.h>
#include <libmnl/libmnl.h>
#include <linux/netfilter/nf_conntrack_common.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <netinet/in.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <vector>

#include <benchmark/benchmark.h>

#include "netfilter/batch.h"
#include "netfilter/conntrack.h"
#include "netfilter/ct_install.h"
#include "netfilter/netlink.h"

namespace {

using namespace hanat::netfilter;

constexpr size_t kFlows = 1000;
bool g_in_private_netns = false;

// `n` ESTABLISHED TCP flows from 198.18.0.0/16 (200 per host) to 198.19.0.1:443, public
// ports 1024 on (n <= 64,000).
std::vector<ReplicatedFlow> flows(size_t n = kFlows) {
  std::vector<ReplicatedFlow> out;
  for (size_t i = 0; i < n; ++i) {
    ReplicatedFlow r;
    r.flow.proto = IPPROTO_TCP;
    r.flow.src = 0xc6120000U + static_cast<uint32_t>(i / 200 + 2);
    r.flow.dst = 0xc6130001U;
    r.flow.sport = static_cast<uint16_t>(32768 + i % 200);
    r.flow.dport = 443;
    r.flow.timeout_s = 432000;
    r.public_port = static_cast<uint16_t>(1024 + i);
    r.status = IPS_CONFIRMED | IPS_SEEN_REPLY | IPS_ASSURED | IPS_SRC_NAT | IPS_SRC_NAT_DONE;
    r.tcp = TcpInfo{3, 7, 7, 0x03, 0x03};
    out.push_back(r);
  }
  return out;
}

// The same flows as the kernel dumps them from the NAT that translated them (reply tuple
// to the public address and port, TCP protoinfo with flags of mask 0).
std::vector<std::vector<uint8_t>> dump_messages(const std::vector<ReplicatedFlow>& in) {
  std::vector<std::vector<uint8_t>> out;
  std::vector<uint8_t> buf(MNL_SOCKET_BUFFER_SIZE);
  for (const auto& r : in) {
    nlmsghdr* nlh = mnl_nlmsg_put_header(buf.data());
    nlh->nlmsg_type = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_NEW;
    nlh->nlmsg_flags = NLM_F_MULTI;
    auto* nfg = static_cast<nfgenmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(nfgenmsg)));
    nfg->nfgen_family = AF_INET;
    auto tuple = [&](uint16_t type, uint32_t src, uint32_t dst, uint16_t sp, uint16_t dp) {
      nlattr* t = mnl_attr_nest_start(nlh, type);
      nlattr* ip = mnl_attr_nest_start(nlh, CTA_TUPLE_IP);
      mnl_attr_put_u32(nlh, CTA_IP_V4_SRC, htonl(src));
      mnl_attr_put_u32(nlh, CTA_IP_V4_DST, htonl(dst));
      mnl_attr_nest_end(nlh, ip);
      nlattr* p = mnl_attr_nest_start(nlh, CTA_TUPLE_PROTO);
      mnl_attr_put_u8(nlh, CTA_PROTO_NUM, IPPROTO_TCP);
      mnl_attr_put_u16(nlh, CTA_PROTO_SRC_PORT, htons(sp));
      mnl_attr_put_u16(nlh, CTA_PROTO_DST_PORT, htons(dp));
      mnl_attr_nest_end(nlh, p);
      mnl_attr_nest_end(nlh, t);
    };
    tuple(CTA_TUPLE_ORIG, r.flow.src, r.flow.dst, r.flow.sport, r.flow.dport);
    tuple(CTA_TUPLE_REPLY, r.flow.dst, 0xc6130101U, r.flow.dport, r.public_port);
    mnl_attr_put_u32(nlh, CTA_STATUS, htonl(r.status));
    mnl_attr_put_u32(nlh, CTA_TIMEOUT, htonl(r.flow.timeout_s));
    nlattr* info = mnl_attr_nest_start(nlh, CTA_PROTOINFO);
    nlattr* tcp = mnl_attr_nest_start(nlh, CTA_PROTOINFO_TCP);
    mnl_attr_put_u8(nlh, CTA_PROTOINFO_TCP_STATE, 3);
    mnl_attr_put_u8(nlh, CTA_PROTOINFO_TCP_WSCALE_ORIGINAL, 7);
    mnl_attr_put_u8(nlh, CTA_PROTOINFO_TCP_WSCALE_REPLY, 7);
    const uint8_t flags[2] = {0x03, 0};
    mnl_attr_put(nlh, CTA_PROTOINFO_TCP_FLAGS_ORIGINAL, sizeof flags, flags);
    mnl_attr_put(nlh, CTA_PROTOINFO_TCP_FLAGS_REPLY, sizeof flags, flags);
    mnl_attr_nest_end(nlh, tcp);
    mnl_attr_nest_end(nlh, info);
    out.emplace_back(buf.data(), buf.data() + nlh->nlmsg_len);
  }
  return out;
}

double median_us(std::vector<int64_t> ns) {
  if (ns.empty()) return 0;
  std::sort(ns.begin(), ns.end());
  return static_cast<double>(ns[ns.size() / 2]) / 1000.0;
}

void BM_ParseReplicate(benchmark::State& state) {
  const auto msgs = dump_messages(flows());
  std::vector<int64_t> ns;
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    size_t n = 0;
    for (const auto& m : msgs) {
      auto parsed = parse_ct_message(m.data(), m.size());
      if (parsed && replicated_flow(*parsed)) ++n;
    }
    ns.push_back((std::chrono::steady_clock::now() - t0).count());
    if (n != kFlows) state.SkipWithError("a dump message did not yield its flow");
    benchmark::DoNotOptimize(n);
  }
  state.counters["p50_us"] = median_us(ns);
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * kFlows));
}
BENCHMARK(BM_ParseReplicate)->Unit(benchmark::kMicrosecond);

void BM_BuildInstall(benchmark::State& state) {
  const auto in = flows();
  std::vector<uint8_t> out;
  std::vector<int64_t> ns;
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    out.clear();
    for (size_t i = 0; i < in.size(); ++i) {
      append_install_message(out, in[i], 0xc6130201U, static_cast<uint32_t>(i + 1));
    }
    ns.push_back((std::chrono::steady_clock::now() - t0).count());
    benchmark::DoNotOptimize(out.data());
  }
  state.counters["p50_us"] = median_us(ns);
  state.counters["bytes_per_flow"] = static_cast<double>(out.size()) / kFlows;
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * kFlows));
}
BENCHMARK(BM_BuildInstall)->Unit(benchmark::kMicrosecond);

void BM_InstallFlows(benchmark::State& state) {
  if (!g_in_private_netns) {
    state.SkipWithError("needs root (a private network namespace)");
    return;
  }
  const auto n = static_cast<size_t>(state.range(0));
  const auto in = flows(n);
  std::vector<int64_t> ns;
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    auto r = install_flows(in, 0xc6130201U);
    ns.push_back((std::chrono::steady_clock::now() - t0).count());
    if (!r || r->installed != n) {
      state.SkipWithError("not every flow was installed");
      break;
    }
    state.PauseTiming();
    auto removed = remove_flows(in);
    state.ResumeTiming();
    if (!removed || *removed != n) {
      state.SkipWithError("not every flow was removed");
      break;
    }
  }
  state.counters["p50_us"] = median_us(ns);
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * n));
}
// 1,000 flows, and a NAT at 50,000 concurrent flows taken over at once.
BENCHMARK(BM_InstallFlows)->Arg(1000)->Arg(50000)->Unit(benchmark::kMillisecond);

// The replication's resync dump at 50,000 flows: in one piece (budget 0) or read in steps
// of `budget` µs as the daemon reads it (ReplicatedDumper). Reports the longest step.
void BM_DumpReplicated(benchmark::State& state) {
  if (!g_in_private_netns) {
    state.SkipWithError("needs root (a private network namespace)");
    return;
  }
  constexpr size_t n = 50000;
  const auto budget = std::chrono::microseconds(state.range(0));
  const auto in = flows(n);
  auto r = install_flows(in, 0xc6130201U);
  if (!r || r->installed != n) {
    state.SkipWithError("not every flow was installed");
    return;
  }
  auto filter = flow_filter({});
  int64_t longest = 0;
  int64_t steps = 0;
  for (auto _ : state) {
    size_t got = 0;
    if (budget.count() == 0) {
      const auto t0 = std::chrono::steady_clock::now();
      auto d = dump_replicated_flows(*filter, 100000);
      longest = std::max<int64_t>(longest, (std::chrono::steady_clock::now() - t0).count());
      got = d ? d->flows.size() : 0;
      ++steps;
    } else {
      auto d = ReplicatedDumper::start(*filter, 100000);
      if (!d) break;
      for (bool done = false; !done;) {
        const auto t0 = std::chrono::steady_clock::now();
        auto s = (*d)->step(budget);
        longest = std::max<int64_t>(longest, (std::chrono::steady_clock::now() - t0).count());
        ++steps;
        if (!s) break;
        done = *s;
      }
      got = (*d)->result().flows.size();
    }
    if (got != n) {
      state.SkipWithError("the dump did not return every flow");
      break;
    }
  }
  state.counters["longest_step_ms"] = static_cast<double>(longest) / 1e6;
  state.counters["steps"] =
      static_cast<double>(steps) / static_cast<double>(std::max<int64_t>(state.iterations(), 1));
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * n));
  (void)remove_flows(in);
}
BENCHMARK(BM_DumpReplicated)->Arg(0)->Arg(10000)->Unit(benchmark::kMillisecond);

}  // namespace

int main(int argc, char** argv) {
  // A private network namespace for this process: the entries below exist only there.
  if (geteuid() == 0 && unshare(CLONE_NEWNET) == 0 &&
      std::system("ip link add wan0 type veth peer name wan0p && ip link set wan0 up") == 0) {
    NatSpec spec;
    spec.egress_interface = "wan0";
    auto nl = Netlink::open();
    if (nl) {
      auto batch = build_batch(spec, nl->next_seq());
      g_in_private_netns = batch && nl->commit(*batch);
    }
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
