// SPDX-License-Identifier: GPL-2.0-or-later
// Probe load benchmarks, in network namespaces this process creates (needs root).
//   BM_Icmp500TargetsAt10Hz: 500 ICMP targets, 100 ms interval, for 10 s (HANAT_BENCH_SECONDS
//     overrides). Reports CPU seconds per 1,000 probes (user+sys of this process, which also
//     pays the kernel's softirq work of both namespaces on this host) and the scheduling
//     jitter: p50/p99 of (actual send time - planned send time).
//   BM_TwoPeersAt5Hz: the default deployment shape, 2 peers x (ICMP + TCP + agent) at 200 ms,
//     the peers' agent servers running in this same process; reports % of one core.
//   BM_ParseAgentLine / BM_ScheduleDue: the pure per-probe costs.
#include <benchmark/benchmark.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "probes/agent_line.h"
#include "probes/agent_server.h"
#include "probes/monitor.h"
#include "probes/schedule.h"
#include "tests/integration/probes/netns.h"

namespace hanat::probes {
namespace {

using namespace std::chrono_literals;
using hanat::testing::InNetns;
using hanat::testing::Netns;
using hanat::testing::sh;

double cpu_seconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

std::chrono::seconds bench_duration() {
  const char* s = std::getenv("HANAT_BENCH_SECONDS");
  int n = s ? std::atoi(s) : 10;
  return std::chrono::seconds(n > 0 ? n : 10);
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  auto i = static_cast<std::size_t>(p * static_cast<double>(v.size() - 1));
  return v[i];
}

// a (prober, 198.18.0.1) <-> b (198.18.0.2, targets 198.18.4.0/22 on its loopback).
struct Lab {
  Lab() {
    std::string pid = std::to_string(getpid());
    a = std::make_unique<Netns>("hanat-pr-" + pid + "-ba");
    b = std::make_unique<Netns>("hanat-pr-" + pid + "-bb");
    std::string A = "ip -n " + a->name() + " ", B = "ip -n " + b->name() + " ";
    ok = a->ok() && b->ok() &&
         sh(A + "link add hba" + pid + " type veth peer name hbb" + pid + " netns " + b->name()) ==
             0 &&
         sh(A + "addr add 198.18.0.1/24 dev hba" + pid) == 0 &&
         sh(B + "addr add 198.18.0.2/24 dev hbb" + pid) == 0 &&
         sh(A + "link set hba" + pid + " up") == 0 && sh(B + "link set hbb" + pid + " up") == 0 &&
         sh(A + "route add 198.18.4.0/22 via 198.18.0.2") == 0;
    if (!ok) return;
    std::string batch = "/tmp/hanat-pr-" + pid + "-addrs";
    {
      std::ofstream f(batch);
      for (int i = 0; i < 512; ++i) {
        f << "addr add 198.18." << 4 + i / 250 << "." << 1 + i % 250 << "/32 dev lo\n";
      }
    }
    ok = sh(B + "-batch " + batch) == 0;
    std::remove(batch.c_str());
  }
  std::string target(int i) const {
    return "198.18." + std::to_string(4 + i / 250) + "." + std::to_string(1 + i % 250);
  }
  std::unique_ptr<Netns> a, b;
  bool ok = false;
};

struct Measured {
  std::size_t probes = 0, failed = 0;
  double cpu = 0, wall = 0;
  std::vector<double> jitter_ms;
};

Measured run_monitor(uv::Loop& loop, std::vector<PeerSpec> peers, ProbeOptions o,
                     std::chrono::seconds for_) {
  Measured m;
  MonitorCallbacks cb;
  cb.on_result = [&m](const ProbeResult& r) {
    ++m.probes;
    m.failed += r.outcome.ok ? 0 : 1;
    m.jitter_ms.push_back(std::chrono::duration<double, std::milli>(r.sent - r.planned).count());
  };
  auto mon = PeerMonitor::create(loop, std::move(peers), o, cb);
  if (!mon) {
    std::fprintf(stderr, "bench: %s\n", mon.error().c_str());
    return m;
  }
  double cpu0 = cpu_seconds();
  auto t0 = Clock::now();
  (void)(*mon)->start();
  uv::Timer stop(loop);
  (void)stop.start(std::chrono::duration_cast<std::chrono::milliseconds>(for_), 0ms, [&] {
    (*mon)->stop();
    loop.stop();
  });
  loop.run();
  m.cpu = cpu_seconds() - cpu0;
  m.wall = std::chrono::duration<double>(Clock::now() - t0).count();
  return m;
}

void report(benchmark::State& state, const Measured& m) {
  state.counters["probes"] = static_cast<double>(m.probes);
  state.counters["failed"] = static_cast<double>(m.failed);
  state.counters["cpu_s_per_1000_probes"] =
      m.probes ? m.cpu * 1000.0 / static_cast<double>(m.probes) : 0;
  state.counters["core_pct"] = m.wall > 0 ? 100.0 * m.cpu / m.wall : 0;
  state.counters["jitter_p50_ms"] = percentile(m.jitter_ms, 0.50);
  state.counters["jitter_p99_ms"] = percentile(m.jitter_ms, 0.99);
  state.counters["jitter_max_ms"] = percentile(m.jitter_ms, 1.0);
}

void BM_Icmp500TargetsAt10Hz(benchmark::State& state) {
  if (geteuid() != 0) return state.SkipWithError("needs root to create network namespaces");
  Lab lab;
  if (!lab.ok) return state.SkipWithError("namespace setup failed");
  InNetns in_a(lab.a->name());
  uv::Loop loop;
  std::vector<PeerSpec> peers;
  for (int i = 0; i < 500; ++i) {
    peers.push_back({.id = "t" + std::to_string(i),
                     .address = lab.target(i),
                     .kinds = {ProbeKind::Icmp},
                     .tcp_port = 0,
                     .agent_port = 0,
                     .public_address = {}});
  }
  ProbeOptions o;
  o.interval = 100ms;
  o.timeout = 100ms;
  Measured m;
  for (auto _ : state) m = run_monitor(loop, peers, o, bench_duration());
  report(state, m);
  (void)loop.close();
}
BENCHMARK(BM_Icmp500TargetsAt10Hz)->Iterations(1)->Unit(benchmark::kSecond);

void BM_TwoPeersAt5Hz(benchmark::State& state) {
  if (geteuid() != 0) return state.SkipWithError("needs root to create network namespaces");
  Lab lab;
  if (!lab.ok) return state.SkipWithError("namespace setup failed");
  InNetns in_a(lab.a->name());
  uv::Loop loop;
  std::vector<std::unique_ptr<AgentServer>> agents;
  std::vector<std::unique_ptr<uv::Tcp>> conns;
  std::vector<PeerSpec> peers;
  for (int i = 0; i < 2; ++i) {
    InNetns in_b(lab.b->name());
    std::string id = "i-peer" + std::to_string(i);
    agents.push_back(std::make_unique<AgentServer>(loop, [id] {
      return reply_for({.forwarding = true,
                        .masquerade = true,
                        .egress_ok = true,
                        .draining = false,
                        .egress_detail = {},
                        .forwarding_detail = {}},
                       id);
    }));
    sockaddr_in a{};
    a.sin_family = AF_INET;
    inet_pton(AF_INET, lab.target(i).c_str(), &a.sin_addr);
    if (agents.back()->listen(a)) return state.SkipWithError("agent listen failed");
    // The agent port doubles as the TCP check's port.
    peers.push_back({.id = id,
                     .address = lab.target(i),
                     .kinds = {ProbeKind::Icmp, ProbeKind::Tcp, ProbeKind::Agent},
                     .tcp_port = agents.back()->port(),
                     .agent_port = agents.back()->port(),
                     .public_address = {}});
  }
  ProbeOptions o;  // defaults: 200 ms interval and timeout
  Measured m;
  for (auto _ : state) m = run_monitor(loop, peers, o, bench_duration());
  report(state, m);
  agents.clear();
  loop.run(UV_RUN_NOWAIT);
  (void)loop.close();
}
BENCHMARK(BM_TwoPeersAt5Hz)->Iterations(1)->Unit(benchmark::kSecond);

void BM_ParseAgentLine(benchmark::State& state) {
  std::string line = "up i-0123456789abcdef0 forwarding=1 masquerade=1 egress=1 draining=0\n";
  for (auto _ : state) {
    auto r = parse_agent_line(line);
    benchmark::DoNotOptimize(r);
  }
}
BENCHMARK(BM_ParseAgentLine);

void BM_ScheduleDue(benchmark::State& state) {
  Schedule s(100ms);
  for (int i = 0; i < 500; ++i) (void)s.add();
  Time now{};
  s.start(now);
  for (auto _ : state) {
    now += 200us;  // one due slot per step at 500 targets / 100 ms
    for (const auto& l : s.due(now)) (void)s.complete(l.slot, now);
  }
}
BENCHMARK(BM_ScheduleDue);

}  // namespace
}  // namespace hanat::probes

BENCHMARK_MAIN();
