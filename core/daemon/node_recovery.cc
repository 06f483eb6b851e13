// SPDX-License-Identifier: GPL-2.0-or-later
// DOC: core/daemon/node_recovery.cc carries out the engine's RecoverPeer (DESIGN rule 8):
// RebootInstances, TerminateInstances, or a stop-start - StopInstances, DescribeInstances
// polled until the peer is `stopped`, then StartInstances, retried while EC2 answers
// IncorrectInstanceState. While a stop-start runs, the peer stays a member (DOWN) although
// EC2 lists it stopping or stopped, so a group of two never silently becomes one. Each step
// is logged; a failure is logged with EC2's error code. The last action against each peer
// (action, time, result) is kept in [status] state_directory, file "recovery", and read
// back at start: the engine gets it as PastRecovery, so a restarted hanatd does not act
// again within the cool-down, and a stop-start cut short by the restart is finished.

#include <algorithm>

#include "core/daemon/daemon.h"
#include "core/daemon/node.h"
#include "core/daemon/node_util.h"
#include "core/daemon/recovery_record.h"
#include "core/daemon/state_dir.h"
#include "core/log/log.h"

namespace hanat::daemon {

using node_util::err_of;
using node_util::now;
using std::chrono::milliseconds;

namespace {

constexpr const char* kRecoveryFile = "recovery";
// A stop takes seconds to minutes; an instance stuck in `stopping` for longer than this
// needs an operator (or a forced stop, which hanat does not do: it can corrupt the file
// systems of a host that is merely slow). EC2 User Guide, "Troubleshoot stopping your
// instance".
constexpr auto kStopStartDeadline = std::chrono::minutes(10);
constexpr milliseconds kStopPoll{2000};
// StartInstances on an instance that EC2 still considers `stopping` answers
// IncorrectInstanceState (EC2 API reference, "Error codes"): retried with this backoff.
constexpr milliseconds kStartRetryBase{1000};
constexpr milliseconds kStartRetryMax{16000};

const char* action_name(engine::RecoveryAction a) {
  switch (a) {
    case engine::RecoveryAction::Reboot:
      return "reboot";
    case engine::RecoveryAction::StopStart:
      return "stop-start";
    case engine::RecoveryAction::Terminate:
      return "terminate";
    case engine::RecoveryAction::None:
      break;
  }
  return "none";
}

std::string error_text(const ec2::Ec2Error& e) {
  return e.code.empty() ? e.describe() : e.code + " (" + e.message + ")";
}

}  // namespace

void Node::note_recovery_step(const std::string& peer, const std::string& step) {
  auto& r = recoveries_[peer];
  r.result = "in progress: " + step;
  log::notice("peer " + peer + ": recovery (" + r.action + "): " + step);
  save_recoveries();
}

void Node::recover_peer(const engine::RecoverPeer& x) {
  RecoveryRecord rec;
  rec.action = action_name(x.what);
  rec.at = std::chrono::system_clock::now();
  rec.result = "in progress: sent";
  recoveries_[x.peer] = rec;
  log::event(log::Level::Notice, log::message_id::kRecovery,
             {{"HANAT_PEER", x.peer}, {"HANAT_RECOVERY", rec.action}},
             "peer " + x.peer + ": silent on every probe for failover.recovery_after, recovery " +
                 rec.action);
  fire_hook({{"HANAT_EVENT", "recovery"},
             {"HANAT_PEER", x.peer},
             {"HANAT_RECOVERY", rec.action},
             {"HANAT_RESULT", "started"}});
  // Written before the call goes out: a restart from here on still keeps the cool-down.
  save_recoveries();
  auto done = [this, op = x.op, epoch = x.epoch, peer = x.peer](const char* action,
                                                                const ec2::Ec2Error* err) {
    count_call(action, err);
    finish_recovery(peer, err, err ? "" : "ok");
    engine::Ec2Done d;
    d.op = op;
    d.epoch = epoch;
    d.at = now();
    if (err) {
      d.outcome = engine::Ec2Outcome::Fatal;
      d.code = err->code.empty() ? err->describe() : err->code;
    }
    post(d);
  };
  if (x.what == engine::RecoveryAction::Terminate) {
    ec2::TerminateInstancesRequest r;
    r.instance_ids = {x.peer};
    ec2_->terminate_instances(r, {ec2::Priority::Write, milliseconds(0)},
                              [done](ec2::Ec2Result<ec2::InstanceStateChangesOk> res) {
                                done("TerminateInstances", err_of(res));
                              });
  } else if (x.what == engine::RecoveryAction::Reboot) {
    ec2::RebootInstancesRequest r;
    r.instance_ids = {x.peer};
    ec2_->reboot_instances(
        r, {ec2::Priority::Write, milliseconds(0)},
        [done](ec2::Ec2Result<ec2::SimpleOk> res) { done("RebootInstances", err_of(res)); });
  } else if (x.what == engine::RecoveryAction::StopStart) {
    StopStart& run = stop_starting_[x.peer];
    run.op = x.op;
    run.epoch = x.epoch;
    run.deadline = std::chrono::steady_clock::now() + kStopStartDeadline;
    run.start_attempts = 0;
    for (const auto& m : discovered_.engine.members)
      if (m.instance_id == x.peer) recovering_members_[x.peer] = m;
    note_recovery_step(x.peer, "StopInstances");
    ec2::StopInstancesRequest r;
    r.instance_ids = {x.peer};
    ec2_->stop_instances(r, {ec2::Priority::Write, milliseconds(0)},
                         [this, peer = x.peer](ec2::Ec2Result<ec2::InstanceStateChangesOk> res) {
                           count_call("StopInstances", err_of(res));
                           if (!res) return finish_recovery(peer, &res.error(), "");
                           note_recovery_step(peer, "stop accepted, waiting for stopped");
                           stop_start_poll(peer);
                         });
  }
}

void Node::stop_start_poll(const std::string& peer) {
  auto it = stop_starting_.find(peer);
  if (it == stop_starting_.end()) return;
  StopStart& run = it->second;
  if (std::chrono::steady_clock::now() > run.deadline) {
    return finish_recovery(
        peer, nullptr,
        "failed: not stopped within " +
            std::to_string(
                std::chrono::duration_cast<std::chrono::minutes>(kStopStartDeadline).count()) +
            " min");
  }
  if (!run.timer) run.timer = std::make_unique<uv::Timer>(loop_);
  (void)run.timer->start(kStopPoll, milliseconds(0), [this, peer] {
    ec2::DescribeInstancesRequest r;
    r.instance_ids = {peer};
    ec2_->describe_instances(
        r, {ec2::Priority::Read, milliseconds(0)},
        [this, peer](ec2::Ec2Result<ec2::DescribeInstancesOk> res) {
          count_call("DescribeInstances", err_of(res));
          if (stop_starting_.count(peer) == 0) return;
          if (!res) {
            if (ec2::is_retryable(res.error())) return stop_start_poll(peer);
            return finish_recovery(peer, &res.error(), "");
          }
          std::string state = "gone";
          for (const auto& i : res->instances)
            if (i.instance_id == peer) state = i.state;
          if (state == "stopped") {
            note_recovery_step(peer, "stopped, StartInstances");
            return stop_start_start(peer);
          }
          if (state == "stopping" || state == "running" || state == "pending") {
            // running/pending: EC2 reads are eventually consistent, the stop may not show yet.
            log::debug("recovery", "peer " + peer + " is " + state + ", waiting for stopped");
            return stop_start_poll(peer);
          }
          finish_recovery(peer, nullptr, "failed: instance is " + state + ", not stopped");
        });
  });
}

void Node::stop_start_start(const std::string& peer) {
  auto it = stop_starting_.find(peer);
  if (it == stop_starting_.end()) return;
  ++it->second.start_attempts;
  ec2::StartInstancesRequest r;
  r.instance_ids = {peer};
  ec2_->start_instances(
      r, {ec2::Priority::Write, milliseconds(0)},
      [this, peer](ec2::Ec2Result<ec2::InstanceStateChangesOk> res) {
        count_call("StartInstances", err_of(res));
        auto run = stop_starting_.find(peer);
        if (run == stop_starting_.end()) return;
        if (res) return finish_recovery(peer, nullptr, "ok");
        const bool again =
            res.error().code == "IncorrectInstanceState" || ec2::is_retryable(res.error());
        if (!again || std::chrono::steady_clock::now() > run->second.deadline)
          return finish_recovery(peer, &res.error(), "");
        milliseconds wait = kStartRetryBase;
        for (int i = 1; i < run->second.start_attempts && wait < kStartRetryMax; ++i) wait *= 2;
        wait = std::min(wait, kStartRetryMax);
        log::notice("peer " + peer + ": StartInstances: " + error_text(res.error()) +
                    ", retrying in " + config::format_duration(wait));
        if (!run->second.timer) run->second.timer = std::make_unique<uv::Timer>(loop_);
        (void)run->second.timer->start(wait, milliseconds(0),
                                       [this, peer] { stop_start_start(peer); });
      });
}

void Node::finish_recovery(const std::string& peer, const ec2::Ec2Error* err,
                           const std::string& result) {
  auto& rec = recoveries_[peer];
  rec.result = err ? "failed: " + error_text(*err) : result;
  const bool ok = rec.result == "ok";
  if (ok) {
    log::event(log::Level::Notice, log::message_id::kRecovery,
               {{"HANAT_PEER", peer}, {"HANAT_RECOVERY", rec.action}},
               "peer " + peer + ": recovery (" + rec.action + ") done" +
                   (rec.action == "stop-start" ? ": StartInstances accepted" : ""));
  } else {
    log::event(log::Level::Error, log::message_id::kRecovery,
               {{"HANAT_PEER", peer},
                {"HANAT_RECOVERY", rec.action},
                {"HANAT_EC2_ERROR", err ? err->code : ""}},
               "peer " + peer + ": recovery (" + rec.action + ") " + rec.result);
  }
  fire_hook({{"HANAT_EVENT", "recovery"},
             {"HANAT_PEER", peer},
             {"HANAT_RECOVERY", rec.action},
             {"HANAT_RESULT", rec.result}});
  save_recoveries();
  auto it = stop_starting_.find(peer);
  if (it == stop_starting_.end()) return;
  const engine::OpId op = it->second.op;
  const engine::Epoch epoch = it->second.epoch;
  // The timer may be the one running this callback: its owner frees it only in close_cb.
  stop_starting_.erase(it);
  recovering_members_.erase(peer);
  // The member list follows EC2 again: a peer left stopped after a failure leaves it.
  refresh_members("stop-start of " + peer + " finished");
  if (op == 0) return;  // resumed after a restart: not the engine's operation
  engine::Ec2Done d;
  d.op = op;
  d.epoch = epoch;
  d.at = now();
  if (!ok) {
    d.outcome = engine::Ec2Outcome::Fatal;
    d.code = err ? err->code : rec.result;
  }
  post(d);
}

void Node::keep_recovering(MemberList& l) const {
  for (const auto& [peer, m] : recovering_members_) {
    if (l.addresses.count(peer) != 0) continue;
    l.members.push_back(m);
    if (auto a = discovered_.addresses.find(peer); a != discovered_.addresses.end())
      l.addresses[peer] = a->second;
    if (auto a = discovered_.public_addresses.find(peer);
        a != discovered_.public_addresses.end() && m.public_path)
      l.public_addresses[peer] = a->second;
    std::erase(l.missing, peer);
  }
}

void Node::save_recoveries() {
  std::vector<RecoveryEntry> entries;
  for (const auto& [peer, r] : recoveries_)
    entries.push_back({peer, r.action,
                       std::chrono::duration_cast<milliseconds>(r.at.time_since_epoch()).count(),
                       r.result});
  StateDir dir(cfg_->status.state_directory);
  if (auto err = dir.write(kRecoveryFile, format_recoveries(entries)); !err.empty())
    log::warning("recovery record: " + err +
                 ": a restarted hanatd will not know this cool-down, ignoring");
}

void Node::load_recoveries() {
  StateDir dir(cfg_->status.state_directory);
  auto text = dir.read(kRecoveryFile);
  if (!text) {
    log::warning("recovery record: " + text.error() + ", starting without one");
    return;
  }
  if (!text.value()) return;
  auto parsed = parse_recoveries(**text);
  for (const auto& e : parsed.errors)
    log::warning("recovery record " + dir.file(kRecoveryFile) + " " + e + ", ignoring it");
  const auto wall = std::chrono::system_clock::now();
  const auto steady = now();
  std::vector<std::string> resume;
  for (const auto& e : parsed.entries) {
    const std::string& peer = e.peer;
    const std::string& action = e.action;
    const std::string& result = e.result;
    RecoveryRecord r;
    r.action = action;
    r.at = std::chrono::system_clock::time_point(milliseconds(e.at_unix_ms));
    r.result = result;
    recoveries_[peer] = r;
    // Into the engine's clock; a time in the future (the wall clock stepped back) counts
    // as now, so the cool-down is never shortened by it.
    auto ago = std::max(wall - r.at, std::chrono::system_clock::duration::zero());
    post(engine::PastRecovery{peer, steady - std::chrono::duration_cast<engine::Millis>(ago)});
    log::notice("recovery record: " + action + " of " + peer + " at " + iso8601(r.at) + " (" +
                result + "): no further recovery of it within failover.recovery_cooldown");
    if (action == "stop-start" && result.rfind("in progress", 0) == 0 &&
        wall - r.at < kStopStartDeadline)
      resume.push_back(peer);
  }
  // hanatd restarted in the middle of a stop-start: finish it, or the peer stays stopped.
  // Not the engine's operation (op 0): its cool-down is already recorded. After the whole
  // file is read: each step rewrites it from recoveries_.
  for (const auto& peer : resume) {
    StopStart& run = stop_starting_[peer];
    run.deadline = std::chrono::steady_clock::now() + kStopStartDeadline;
    for (const auto& m : discovered_.engine.members)
      if (m.instance_id == peer) recovering_members_[peer] = m;
    note_recovery_step(peer, "resumed after a restart, waiting for stopped");
    stop_start_poll(peer);
  }
}

}  // namespace hanat::daemon
