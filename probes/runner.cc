// SPDX-License-Identifier: GPL-2.0-or-later
#include "probes/runner.h"

namespace hanat::probes {

Runner::Runner(uv::Loop& loop, std::vector<Target> targets, std::chrono::milliseconds interval,
               std::chrono::milliseconds timeout, IcmpProber* icmp, TcpProber* tcp,
               OnResult on_result)
    : loop_(loop),
      targets_(std::move(targets)),
      timeout_(timeout),
      icmp_(icmp),
      tcp_(tcp),
      on_result_(std::move(on_result)),
      schedule_(interval),
      timer_(loop) {
  for (const Target& t : targets_) (void)schedule_.add(t.same_phase_as);
}

Runner::~Runner() {
  *alive_ = false;
}

std::error_code Runner::start() {
  if (auto e = timer_.init_error(); e) return e;
  running_ = true;
  schedule_.start(Clock::now());
  arm();
  return {};
}

void Runner::stop() {
  running_ = false;
  (void)timer_.stop();
}

void Runner::arm() {
  if (!running_) return;
  auto next = schedule_.next_deadline();
  if (!next) {
    (void)timer_.stop();
    return;
  }
  // libuv timers have millisecond resolution against a loop time that can lag the clock by
  // up to 1 ms, so a timer may fire just before the due time; on_timer() then re-arms.
  auto ms = std::chrono::ceil<std::chrono::milliseconds>(*next - Clock::now());
  if (ms.count() < 0) ms = std::chrono::milliseconds(0);
  uv_update_time(loop_.raw());  // timeouts count from the cached loop time
  (void)timer_.start(ms, std::chrono::milliseconds(0), [this] { on_timer(); });
}

void Runner::on_timer() {
  auto alive = alive_;
  for (const Schedule::Launch& l : schedule_.due(Clock::now())) {
    launch(l);
    if (!*alive || !running_) return;
  }
  arm();
}

void Runner::launch(Schedule::Launch l) {
  const Target& t = targets_[l.slot];
  Time sent = Clock::now();
  std::size_t slot = l.slot;
  Time planned = l.planned;
  auto done = [this, slot, planned, sent, alive = alive_](Outcome o) {
    if (*alive) on_done(slot, planned, sent, std::move(o));
  };
  switch (t.kind) {
    case ProbeKind::Icmp:
      icmp_->probe(t.addr, timeout_, std::move(done));
      break;
    case ProbeKind::Tcp:
      tcp_->connect(t.addr, timeout_, std::move(done));
      break;
    case ProbeKind::Agent:
      tcp_->agent(t.addr, timeout_, t.expect_id, std::move(done));
      break;
  }
}

void Runner::on_done(std::size_t slot, Time planned, Time sent, Outcome o) {
  auto alive = alive_;
  Time now = Clock::now();
  std::optional<Schedule::Launch> again = schedule_.complete(slot, now);
  ProbeResult r{.peer = targets_[slot].name,
                .kind = targets_[slot].kind,
                .outcome = std::move(o),
                .planned = planned,
                .sent = sent,
                .at = now};
  if (on_result_) on_result_(slot, r);
  if (!*alive) return;
  if (!again) return;
  if (!running_) {
    // Stopped (possibly by on_result): the schedule marked the deferred launch in flight;
    // release it so a later start() does not wait forever for a probe that was never sent.
    (void)schedule_.complete(again->slot, now);
    return;
  }
  launch(*again);
  if (!*alive || !running_) return;
  arm();
}

}  // namespace hanat::probes
