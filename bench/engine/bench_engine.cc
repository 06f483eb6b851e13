// SPDX-License-Identifier: GPL-2.0-or-later
// Cost of one Machine::handle() for a 4-member group (two zones) with 200 route tables.
//   BM_SteadyProbe       a successful probe of a healthy peer: the common case, every 200 ms
//                        per peer and probe kind
//   BM_SteadyDescribe    a DescribeRouteTables result with nothing to do (200 tables)
//   BM_PeerDownFailover  the probe that takes the other zone-a peer down: allocation
//                        recomputed and its 50 tables claimed (50 WriteRoute actions)
#include <benchmark/benchmark.h>

#include <memory>
#include <string>

#include "core/engine/allocation.h"
#include "core/engine/machine.h"

namespace hanat::engine {
namespace {

using namespace std::chrono_literals;

constexpr int kTables = 200;
const Time kT0 = Time{} + std::chrono::hours(1);

std::shared_ptr<const Config> config() {
  auto c = std::make_shared<Config>();
  c->self = "i-0";
  c->members = {{"i-0", "", "a", 1}, {"i-1", "", "a", 2}, {"i-2", "", "b", 3}, {"i-3", "", "b", 4}};
  c->peer_thresholds = {.rise = 1, .fall = 1};
  c->write_burst = 1'000'000;
  return c;
}

std::string member_for(int i) {
  return "i-" + std::to_string(i % 4);
}

// The 200 tables, alternating between zones a and b, each pointing at the member the
// allocation gives it, so a healthy group has nothing to write.
RoutesObserved observation(Time at) {
  std::vector<std::string> ids;
  std::vector<AllocTable> tables;
  for (int i = 0; i < kTables; ++i) ids.push_back("rtb-" + std::to_string(i));
  for (int i = 0; i < kTables; ++i)
    tables.push_back({ids[static_cast<std::size_t>(i)], i % 2 == 0 ? "a" : "b"});
  auto cfg = config();
  std::vector<AllocMember> members;
  for (const auto& m : cfg->members) members.push_back({m.instance_id, m.zone, m.launch_time});
  std::vector<int> alloc = allocate(members, tables, false);
  RoutesObserved o;
  o.at = at;
  for (int i = 0; i < kTables; ++i) {
    auto idx = static_cast<std::size_t>(i);
    Target t{TargetKind::Instance, cfg->members[static_cast<std::size_t>(alloc[idx])].instance_id};
    o.tables.push_back({ids[idx], std::string(tables[idx].zone), i % 7, {{"0.0.0.0/0", t}}});
  }
  return o;
}

// A started machine whose peers are all up and whose tables all point where the allocation
// wants them: nothing to write.
std::unique_ptr<Machine> steady(Time& now) {
  auto m = std::make_unique<Machine>(config(), now);
  ApplyNat nat;
  for (const auto& a : m->handle(Tick{now})) {
    if (const auto* n = std::get_if<ApplyNat>(&a)) nat = *n;
  }
  for (int p = 1; p < 4; ++p) {
    (void)m->handle(ProbeResult{member_for(p), ProbeKind::Icmp, true, now});
  }
  (void)m->handle(NatApplied{nat.op, nat.epoch, true, "", now});
  (void)m->handle(observation(now));
  return m;
}

void BM_SteadyProbe(benchmark::State& state) {
  Time now = kT0;
  auto m = steady(now);
  for (auto _ : state) {
    now += 1ms;
    auto out = m->handle(ProbeResult{"i-1", ProbeKind::Icmp, true, now});
    benchmark::DoNotOptimize(out);
  }
}
BENCHMARK(BM_SteadyProbe);

void BM_SteadyDescribe(benchmark::State& state) {
  Time now = kT0;
  auto m = steady(now);
  RoutesObserved o = observation(now);
  for (auto _ : state) {
    now += 1ms;
    o.at = now;
    auto out = m->handle(o);
    benchmark::DoNotOptimize(out);
  }
}
BENCHMARK(BM_SteadyDescribe);

void BM_PeerDownFailover(benchmark::State& state) {
  std::size_t writes = 0;
  for (auto _ : state) {
    state.PauseTiming();
    Time now = kT0;
    auto m = steady(now);
    now += 1ms;
    state.ResumeTiming();
    auto out = m->handle(ProbeResult{"i-1", ProbeKind::Icmp, false, now});
    state.PauseTiming();
    for (const auto& a : out) writes += std::holds_alternative<WriteRoute>(a) ? 1 : 0;
    m.reset();
    state.ResumeTiming();
  }
  state.counters["writes_per_step"] =
      benchmark::Counter(static_cast<double>(writes), benchmark::Counter::kAvgIterations);
}
BENCHMARK(BM_PeerDownFailover)->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace hanat::engine

BENCHMARK_MAIN();
