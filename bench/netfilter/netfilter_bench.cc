// SPDX-License-Identifier: GPL-2.0-or-later
// Benchmarks of the netfilter module.
//
//   BM_BuildBatch     pure: NatSpec -> batch bytes (libnftnl), by number of source CIDRs
//   BM_Apply          commit + read-back + compare, the cost of one NatManager::apply
//   BM_DriftCheck     one NatManager::check with nothing to repair (interface lookup,
//                     ruleset generation, table/chain/rule dump, compare, sysctl reads)
//
// The kernel benchmarks run in a private network namespace: main() unshares one before
// anything else, so the host's ruleset and sysctls are never touched. Each reports the
// median and 99th percentile of single operations (p50_us, p99_us) next to the mean.
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <vector>

#include <benchmark/benchmark.h>

#include "core/uv/uv.h"
#include "netfilter/batch.h"
#include "netfilter/manager.h"
#include "netfilter/netlink.h"

namespace {

using namespace hanat::netfilter;

bool g_in_private_netns = false;

NatSpec spec_with(int cidrs) {
  NatSpec s;
  s.egress_interface = "wan0";
  for (int i = 0; i < cidrs; ++i) {
    s.source_cidrs.push_back("198." + std::to_string(18 + (i / 256) % 2) + "." +
                             std::to_string(i % 256) + ".0/24");
  }
  s.fully_random = true;
  return s;
}

// Records single-operation times and reports their median and p99 as counters.
class Latencies {
 public:
  void add(std::chrono::nanoseconds d) { samples_.push_back(d.count()); }
  void report(benchmark::State& state) {
    if (samples_.empty()) return;
    std::sort(samples_.begin(), samples_.end());
    auto at = [this](double q) {
      const size_t i = std::min(samples_.size() - 1,
                                static_cast<size_t>(q * static_cast<double>(samples_.size())));
      return static_cast<double>(samples_[i]) / 1000.0;
    };
    state.counters["p50_us"] = at(0.50);
    state.counters["p99_us"] = at(0.99);
  }

 private:
  std::vector<int64_t> samples_;
};

void BM_BuildBatch(benchmark::State& state) {
  const NatSpec spec = spec_with(static_cast<int>(state.range(0)));
  Latencies lat;
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    auto b = build_batch(spec, 1);
    lat.add(std::chrono::steady_clock::now() - t0);
    benchmark::DoNotOptimize(b);
  }
  lat.report(state);
}
BENCHMARK(BM_BuildBatch)->Arg(1)->Arg(16)->Arg(256);

void BM_Apply(benchmark::State& state) {
  if (!g_in_private_netns) {
    state.SkipWithError("needs root: runs only in a private network namespace");
    return;
  }
  const NatSpec spec = spec_with(static_cast<int>(state.range(0)));
  auto nl = Netlink::open();
  if (!nl) {
    state.SkipWithError(nl.error().message.c_str());
    return;
  }
  Latencies lat;
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    auto b = build_batch(spec, nl->next_seq());
    auto c = nl->commit(*b);
    auto v = nl->verify(spec);
    lat.add(std::chrono::steady_clock::now() - t0);
    if (!c || !v) {
      state.SkipWithError("apply failed");
      return;
    }
  }
  lat.report(state);
}
BENCHMARK(BM_Apply)->Arg(1)->Arg(16)->Arg(256)->Unit(benchmark::kMicrosecond);

void BM_DriftCheck(benchmark::State& state) {
  if (!g_in_private_netns) {
    state.SkipWithError("needs root: runs only in a private network namespace");
    return;
  }
  hanat::uv::Loop loop;
  {
    NatManager m(loop);
    if (auto a = m.apply(spec_with(static_cast<int>(state.range(0))), {}); !a) {
      state.SkipWithError(a.error().message.c_str());
    } else {
      Latencies lat;
      for (auto _ : state) {
        const auto t0 = std::chrono::steady_clock::now();
        auto c = m.check();
        lat.add(std::chrono::steady_clock::now() - t0);
        if (!c) {
          state.SkipWithError(c.error().message.c_str());
          break;
        }
      }
      lat.report(state);
      if (m.counters().table_repairs + m.counters().sysctl_repairs != 0) {
        state.SkipWithError("a drift check repaired something: not the steady state");
      }
    }
    m.stop();
  }
  (void)loop.run(UV_RUN_NOWAIT);  // let the timer's close callback run
  (void)loop.close();
}
BENCHMARK(BM_DriftCheck)->Arg(1)->Arg(16)->Arg(256)->Unit(benchmark::kMicrosecond);

}  // namespace

int main(int argc, char** argv) {
  // A private network namespace for this process: the commits below happen only there. The
  // egress interface is created inside it (child processes inherit the namespace).
  if (geteuid() == 0 && unshare(CLONE_NEWNET) == 0 &&
      std::system("ip link add wan0 type veth peer name wan0p && ip link set wan0 up") == 0) {
    g_in_private_netns = true;
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
