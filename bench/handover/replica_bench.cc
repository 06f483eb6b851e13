// SPDX-License-Identifier: GPL-2.0-or-later
// Benchmarks of stateful failover's replication stream, sending side and wire (issue #21):
// what one member spends to ship its conntrack events and resyncs to a target.
//
//   BM_ShipEvents    1,000 conntrack events (NEW/UPDATE of TCP flows with protoinfo, every
//                    fourth a DESTROY) through replica::Stream::add(), one flush() and
//                    handover::encode() of the frames with a MAC (a psk configured): the
//                    sender's work per event after the ctnetlink parse (bench_ct_install's
//                    BM_ParseReplicate measures that)
//   BM_ReceiveEvents the receiver's Decoder (MAC check and decode) of those frames
//   BM_Resync50k     a resync of 50,000 flows: Stream::resync() and encode() of its frames
//
// items_per_second is events (or flows) per second of one core.
#include <netinet/in.h>

#include <chrono>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>

#include "core/daemon/replica_sender.h"
#include "core/handover/codec.h"

namespace {

using namespace hanat;

netfilter::ReplicatedFlow flow(uint32_t i) {
  netfilter::ReplicatedFlow r;
  r.flow.proto = IPPROTO_TCP;
  r.flow.src = 0xC6120000 | (i >> 16);  // 198.18.x.y
  r.flow.dst = 0xC6130001;
  r.flow.sport = static_cast<uint16_t>(i);
  r.flow.dport = 443;
  r.flow.timeout_s = 432000;
  r.public_port = static_cast<uint16_t>(i + 1024);
  r.status = 0x1be;
  r.tcp = netfilter::TcpInfo{3, 7, 7, 0x23, 0x23};
  return r;
}

std::vector<netfilter::FlowEvent> events(size_t n) {
  std::vector<netfilter::FlowEvent> out;
  for (uint32_t i = 0; i < n; ++i) {
    const auto r = flow(i);
    netfilter::FlowEvent e(i % 4 == 3, r.flow);
    if (!e.destroyed) e.replicated = r;
    out.push_back(e);
  }
  return out;
}

const handover::MacKey kKey{"0123456789abcdef0123456789abcdef", handover::Nonce{7}};

std::vector<std::string> ship(daemon::replica::Stream& s,
                              const std::vector<netfilter::FlowEvent>& ev, daemon::replica::Time t,
                              uint64_t& seq) {
  for (const auto& e : ev) (void)s.add(e, t);
  std::vector<std::string> wire;
  for (const auto& b : s.flush(t + std::chrono::seconds(1), 0))
    wire.push_back(handover::encode(b, &kKey, seq++));
  return wire;
}

void BM_ShipEvents(benchmark::State& state) {
  const auto ev = events(1000);
  daemon::replica::Stream s;
  const auto t = daemon::replica::Time{} + std::chrono::hours(1);
  s.connected(t);
  (void)s.resync({}, t);
  uint64_t seq = 0;
  size_t bytes = 0;
  for (auto _ : state) {
    auto wire = ship(s, ev, t, seq);
    for (const auto& w : wire) bytes += w.size();
    benchmark::DoNotOptimize(wire);
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * ev.size()));
  state.counters["wire_bytes_per_event"] =
      static_cast<double>(bytes) / static_cast<double>(state.iterations() * ev.size());
}
BENCHMARK(BM_ShipEvents)->Unit(benchmark::kMicrosecond);

void BM_ReceiveEvents(benchmark::State& state) {
  const auto ev = events(1000);
  daemon::replica::Stream s;
  const auto t = daemon::replica::Time{} + std::chrono::hours(1);
  s.connected(t);
  (void)s.resync({}, t);
  uint64_t seq = 0;
  std::string all;
  for (const auto& w : ship(s, ev, t, seq)) all += w;
  for (auto _ : state) {
    handover::Decoder d;
    d.set_key(kKey);
    d.feed(all);
    size_t n = 0;
    for (;;) {
      auto f = d.next();
      if (!f || !*f) break;
      const auto& b = std::get<handover::ReplicaBatch>(**f);
      n += b.upserts.size() + b.destroys.size();
    }
    if (n != ev.size()) state.SkipWithError("decoded a different number of events");
    benchmark::DoNotOptimize(n);
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * ev.size()));
}
BENCHMARK(BM_ReceiveEvents)->Unit(benchmark::kMicrosecond);

void BM_Resync50k(benchmark::State& state) {
  std::vector<netfilter::ReplicatedFlow> flows;
  for (uint32_t i = 0; i < 50000; ++i) flows.push_back(flow(i));
  daemon::replica::Stream s;
  const auto t = daemon::replica::Time{} + std::chrono::hours(1);
  s.connected(t);
  uint64_t seq = 0;
  size_t bytes = 0;
  for (auto _ : state) {
    for (const auto& b : s.resync(flows, t)) {
      auto w = handover::encode(b, &kKey, seq++);
      bytes += w.size();
      benchmark::DoNotOptimize(w);
    }
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * flows.size()));
  state.counters["wire_bytes"] =
      static_cast<double>(bytes) / static_cast<double>(state.iterations());
}
BENCHMARK(BM_Resync50k)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
