// SPDX-License-Identifier: GPL-2.0-or-later
#include "core/daemon/keep_sender.h"

#include <algorithm>
#include <utility>

namespace hanat::daemon::keep {

using netfilter::Flow;

Sender::Sender(std::string peer, std::unique_ptr<SenderPort> port, Settings s)
    : peer_(std::move(peer)), port_(std::move(port)), settings_(s) {}

Sender::~Sender() {
  // The process goes (a restart, --no-handover, a stop cut short) while the drain lasts: B
  // must stop steering now, or it would send the flows into a tunnel that no longer exists
  // until each flow's timeout; reset they are lost no worse than without the handover.
  if (phase_ != Phase::Ended) end(DrainVerdict::Forced);
}

Sender::Release Sender::hold(engine::WriteRoute w, Time now) {
  if (phase_ == Phase::Ended) return {{std::move(w)}, "the handover to " + peer_ + " has ended"};
  if (tables_.empty() && held_.empty() && !handed_at_) {
    if (std::string why = port_->open(); !why.empty()) {
      problem_ = why;
      end(DrainVerdict::NoFlows);
      return {{std::move(w)}, why};
    }
  }
  if (std::find(tables_.begin(), tables_.end(), w.table) == tables_.end())
    tables_.push_back(w.table);
  held_.push_back(std::move(w));
  if (!hold_until_) hold_until_ = now + settings_.ack_wait;
  // A table added after the snapshot went out: B must hold its sources' flows too before
  // its write goes. The snapshot of every table so far replaces what B holds.
  if (channel_up_ && phase_ != Phase::Opening) return send_snapshot(now);
  return {};
}

Sender::Release Sender::reclaim(const std::vector<std::string>& tables, Time now) {
  if (phase_ == Phase::Ended) {
    problem_ = "the handover to " + peer_ + " has ended";
    return {};
  }
  if (tables_.empty() && held_.empty() && !handed_at_) {
    if (std::string why = port_->open(); !why.empty()) {
      problem_ = why;
      end(DrainVerdict::NoFlows);
      return {};
    }
  }
  bool added = false;
  for (const auto& t : tables) {
    if (std::find(tables_.begin(), tables_.end(), t) != tables_.end()) continue;
    tables_.push_back(t);
    added = true;
  }
  if (!added) return {};
  // The taker writes its routes at its own bound (engine reclaim_wait, kAckWait too); this
  // one only decides when to give up waiting for its ack (tick()).
  if (!hold_until_) hold_until_ = now + settings_.ack_wait;
  if (channel_up_ && phase_ != Phase::Opening) return send_snapshot(now);
  return {};
}

Sender::Release Sender::on_ready(Time now) {
  channel_up_ = true;
  // First connection, or a new one after the channel closed while streaming.
  if (phase_ == Phase::Opening || phase_ == Phase::Streaming) return send_snapshot(now);
  return {};
}

Sender::Release Sender::send_snapshot(Time now) {
  auto r = port_->snapshot(tables_);
  if (!r) {
    // Without the flows B can steer nothing: the writes go, and the flows are reset as
    // without the handover.
    problem_ = "conntrack dump: " + r.error();
    Release out = release(problem_, now);
    end(DrainVerdict::NoFlows);
    return out;
  }
  flows_.clear();
  for (const Flow& f : *r) flows_.insert(key(f));
  port_->send_flows(*r, true, true);
  phase_ = Phase::Acking;
  return {};
}

Sender::Release Sender::on_ack(Time now) {
  if (phase_ != Phase::Acking) return {};
  reconnect_at_.reset();
  phase_ = Phase::Streaming;
  acked_ = static_cast<uint32_t>(flows_.size());
  return release("", now);
}

Sender::Release Sender::on_closed(const std::string& why, Time now) {
  channel_up_ = false;
  if (phase_ == Phase::Ended) return {};
  problem_ = "member channel to " + peer_ + ": " + why;
  if (handed_at_) {
    // The routes are handed over. B keeps steering the flows it holds (keep::steer_verdict
    // keeps a peer whose channel closed with flows held), unless it restarted: its start-up
    // removed the steering. So this member goes on translating them, connects again and
    // sends a fresh snapshot, which B installs anew (or which replaces what it holds). A
    // write held for a table added meanwhile goes now.
    Release r = release(problem_, now);
    phase_ = Phase::Streaming;
    reconnect_at_ = now + settings_.reconnect_every;
    return r;
  }
  Release r = release(problem_, now);
  end(DrainVerdict::NoFlows);
  return r;
}

void Sender::on_events(const netfilter::FlowEvents& ev) {
  if (phase_ != Phase::Acking && phase_ != Phase::Streaming) return;
  if (ev.resync) {
    flows_.clear();
    for (const Flow& f : *ev.resync) flows_.insert(key(f));
    if (channel_up_) port_->send_flows(*ev.resync, true, false);
  }
  // Runs of the same kind go in one frame; the order between runs is kept (a flow may be
  // destroyed and created again under the same tuple).
  std::vector<Flow> run;
  bool destroyed = false;
  auto flush = [&] {
    if (run.empty()) return;
    if (channel_up_) {
      if (destroyed) {
        port_->send_destroyed(run);
      } else {
        port_->send_flows(run, false, false);
      }
    }
    run.clear();
  };
  if (ev.resync) open_.reset();
  for (const auto& e : ev.events) {
    if (!e.destroyed) open_.reset();  // a new flow: open until the next recount says not
    if (e.destroyed != destroyed) flush();
    destroyed = e.destroyed;
    run.push_back(e.flow);
    if (e.destroyed) {
      flows_.erase(key(e.flow));
    } else {
      flows_.insert(key(e.flow));
    }
  }
  flush();
}

Sender::Release Sender::tick(Time now) {
  if (phase_ == Phase::Streaming && !channel_up_ && reconnect_at_ && now >= *reconnect_at_) {
    ++reconnects_;
    reconnect_at_ = now + settings_.reconnect_every;  // again, unless this one comes up
    if (std::string why = port_->reconnect(); !why.empty()) problem_ = why;
  }
  if (phase_ == Phase::Streaming && handed_at_ && (!recount_at_ || now >= *recount_at_)) {
    recount_at_ = now + settings_.recount_every;
    auto n = port_->count_open();
    if (n) {
      open_ = *n;
    } else {
      open_.reset();
      problem_ = "recount: " + n.error();
    }
  }
  // Writes held (hold()), or a failback's snapshot waiting for its ack (reclaim()).
  if (!hold_until_ || now < *hold_until_) return {};
  problem_ = "no acknowledgement from " + peer_ + " within " +
             std::to_string(settings_.ack_wait.count()) + " ms" +
             (channel_up_ ? "" : " (channel not connected)");
  Release r = release(problem_, now);
  // Never connected: nothing will be steered, the handover gives up (the flows are reset as
  // without it). Snapshot sent: what B installs when it gets to it still keeps the flows
  // that have not sent a packet through B meanwhile, so the drain goes on.
  if (phase_ == Phase::Opening) end(DrainVerdict::NoFlows);
  return r;
}

Sender::Release Sender::force(Time now) {
  forced_ = true;
  if (held_.empty()) return {};
  return release("stop forced", now);
}

Sender::Release Sender::release(std::string why, Time now) {
  Release r{std::move(held_), std::move(why)};
  held_.clear();
  hold_until_.reset();
  if (!handed_at_) handed_at_ = now;
  return r;
}

DrainVerdict Sender::review(Time now) {
  if (phase_ == Phase::Ended) return verdict_;
  if (!forced_ && (!handed_at_ || !held_.empty())) return DrainVerdict::Wait;
  DrainView d;
  d.flows_left = flows_left();
  const Time from = handed_at_.value_or(now);
  d.elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(now - from);
  d.flow_drain = settings_.flow_drain;
  if (deadline_)
    d.deadline = std::max(std::chrono::milliseconds(0),
                          std::chrono::duration_cast<std::chrono::milliseconds>(*deadline_ - from));
  d.forced = forced_;
  const DrainVerdict v = drain_verdict(d);
  if (v != DrainVerdict::Wait) end(v);
  return v;
}

void Sender::end(DrainVerdict v) {
  if (phase_ == Phase::Ended) return;
  if (channel_up_) port_->send_end();
  port_->close();
  phase_ = Phase::Ended;
  verdict_ = v;
  hold_until_.reset();
}

std::optional<Time> Sender::next_deadline() const {
  if (phase_ == Phase::Ended) return std::nullopt;
  if (hold_until_) return hold_until_;
  if (!handed_at_) return std::nullopt;
  Time t = *handed_at_ + settings_.flow_drain;
  if (deadline_) t = std::min(t, *deadline_);
  if (reconnect_at_ && !channel_up_) t = std::min(t, *reconnect_at_);
  if (phase_ == Phase::Streaming) t = std::min(t, recount_at_.value_or(*handed_at_));
  return t;
}

const char* to_string(Sender::Phase p) {
  switch (p) {
    case Sender::Phase::Opening:
      return "connecting";
    case Sender::Phase::Acking:
      return "waiting for the ack";
    case Sender::Phase::Streaming:
      return "streaming";
    case Sender::Phase::Ended:
      return "ended";
  }
  return "?";
}

}  // namespace hanat::daemon::keep
