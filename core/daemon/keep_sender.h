// SPDX-License-Identifier: GPL-2.0-or-later
#pragma once
// DOC: core/daemon/keep_sender — the leaving member's side of the connection-keeping
// handover (DESIGN.md, "Connection survival"; issue #20), one Sender per taking peer.
//
// A planned handover (drain, a stop that is not a restart, a spot notice, an Auto Scaling
// termination) hands this member's tables to peer B with route writes. Before EC2 sees a
// write that points a table at B, B must steer the flows this member translates for that
// table's sources back here — else their next packet reaches B without a conntrack entry, is
// masqueraded with B's address and the far end answers with a RST. So the Sender:
//
//   hold()      keeps the write back and opens the way (Port::open: the VXLAN link that
//               accepts steered packets, the channel's connection to B);
//   on_ready()  the channel is up: the snapshot (Port::snapshot: the event stream opened,
//               then the conntrack dump, so that no flow falls between the two) goes out as
//               one complete batch, which B acknowledges once its steering holds it;
//   on_ack()    releases the held writes (also at keep::kAckWait after the first hold, or
//               when the channel fails: then the write goes anyway, and the flows not yet
//               installed are reset, as without the handover);
//   on_events() streams the conntrack NEW/DESTROY events to B and counts the flows left;
//   review()    asks keep::drain_verdict() whether the drain is over; if so it sends End and
//               closes everything (Port::close: stop_accepting(), channel, events).
//
// Failback runs the same sequence with no write of this member's: the home member B, about to
// point its tables back at itself, asks for their flows (a Reclaim frame on the member channel;
// channel.h) and writes the routes itself once it holds them. reclaim() opens the way and
// sends the snapshot like hold(); B's ack starts the drain (handed_at); this member keeps
// serving its own tables and does not exit, the Sender just ends (End) when the flows have.
//
// Writes to other peers, and every unplanned write, never pass through here. Pure apart from
// the Port: time comes in as arguments, so the whole sequence is unit-tested with a fake
// (tests/unit/daemon/keep_sender_test.cc).

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "core/base/result.h"
#include "core/daemon/keep_plan.h"
#include "core/engine/types.h"
#include "netfilter/ct_events.h"
#include "netfilter/flow.h"

namespace hanat::daemon::keep {

using Time = std::chrono::steady_clock::time_point;

// What the Sender asks of the kernel and the channel.
class SenderPort {
 public:
  virtual ~SenderPort() = default;
  // accept_steered() towards the peer and the channel's connect. "" or why not.
  virtual std::string open() = 0;
  // A new connection after the channel closed (the old one is dropped). "" or why not.
  virtual std::string reconnect() = 0;
  // The carried flows still open: a fresh dump without the TCP flows already closed
  // (netfilter::tcp_closed: TIME_WAIT and CLOSE entries announce their end only when
  // conntrack drops them, 120 s later).
  virtual core::Result<size_t, std::string> count_open() = 0;
  // Opens the event stream for the sources of `tables`, then dumps the flows it carries.
  virtual core::Result<std::vector<netfilter::Flow>, std::string> snapshot(
      const std::vector<std::string>& tables) = 0;
  virtual void send_flows(const std::vector<netfilter::Flow>& flows, bool replace,
                          bool complete) = 0;
  virtual void send_destroyed(const std::vector<netfilter::Flow>& flows) = 0;
  virtual void send_end() = 0;
  // stop_accepting(), the channel and the event stream closed. Idempotent.
  virtual void close() = 0;
};

class Sender {
 public:
  enum class Phase {
    Opening,    // waiting for the channel's hellos
    Acking,     // the snapshot is sent, waiting for B's ack
    Streaming,  // B holds the flows: events follow until the drain ends
    Ended,      // End sent (or the handover failed before anything was sent), all closed
  };
  struct Settings {
    std::chrono::milliseconds flow_drain{300000};
    std::chrono::milliseconds ack_wait = kAckWait;
    // After the channel closed mid-drain (the taker restarted: its start-up removed the
    // steering), a new connection and snapshot this often.
    std::chrono::milliseconds reconnect_every{1000};
    // While streaming, the flows still open are recounted this often (count_open()).
    std::chrono::milliseconds recount_every{2000};
  };
  // Writes released, and why (empty: acknowledged in time).
  struct Release {
    std::vector<engine::WriteRoute> writes;
    std::string why;
  };

  Sender(std::string peer, std::unique_ptr<SenderPort> port, Settings s);
  ~Sender();
  Sender(const Sender&) = delete;
  Sender& operator=(const Sender&) = delete;

  // A write handing w.table to this peer. Held until the ack (or the bound); returned at
  // once in the Release when the handover cannot keep anything (ended, or open() failed).
  [[nodiscard]] Release hold(engine::WriteRoute w, Time now);
  // The taker asked for the flows of `tables` before it reclaims them (failback): the snapshot
  // goes out as for hold(), without a write of this member's to hold. Returns what hold()
  // does (writes held earlier, when the handover cannot go on); problem() says why not.
  [[nodiscard]] Release reclaim(const std::vector<std::string>& tables, Time now);
  [[nodiscard]] Release on_ready(Time now);
  [[nodiscard]] Release on_ack(Time now);
  [[nodiscard]] Release on_closed(const std::string& why, Time now);
  void on_events(const netfilter::FlowEvents& ev);
  // The ack's bound and the reconnection after a closed channel; call at next_deadline().
  [[nodiscard]] Release tick(Time now);

  // An outer bound on the drain (spot notice, Auto Scaling hook), absolute.
  void set_deadline(Time at) { deadline_ = at; }
  // A second SIGTERM or a shutdown that cannot wait: the held writes go at once (returned),
  // and the next review() ends the drain.
  [[nodiscard]] Release force(Time now);
  // Ends the drain when keep::drain_verdict() says so: End, then Port::close(). Returns the
  // verdict (Wait: still draining). Ended senders answer with their final verdict.
  DrainVerdict review(Time now);

  [[nodiscard]] std::optional<Time> next_deadline() const;
  [[nodiscard]] Phase phase() const { return phase_; }
  [[nodiscard]] const std::string& peer() const { return peer_; }
  // The flows still open: the carried set, less those the last recount found closed (a
  // NEW since then waits for the next recount).
  [[nodiscard]] size_t flows_left() const {
    return open_ ? std::min(*open_, flows_.size()) : flows_.size();
  }
  [[nodiscard]] size_t flows_carried() const { return flows_.size(); }
  [[nodiscard]] size_t held() const { return held_.size(); }
  [[nodiscard]] const std::vector<std::string>& tables() const { return tables_; }
  [[nodiscard]] std::optional<Time> handed_at() const { return handed_at_; }
  [[nodiscard]] DrainVerdict verdict() const { return verdict_; }
  // The last problem (open, dump, channel, ack timeout), for status; "" when none.
  [[nodiscard]] const std::string& problem() const { return problem_; }
  [[nodiscard]] uint32_t acked_flows() const { return acked_; }
  [[nodiscard]] uint32_t reconnects() const { return reconnects_; }

 private:
  using Key = std::tuple<uint8_t, uint32_t, uint32_t, uint16_t, uint16_t>;
  static Key key(const netfilter::Flow& f) { return {f.proto, f.src, f.dst, f.sport, f.dport}; }
  Release send_snapshot(Time now);
  Release release(std::string why, Time now);
  void end(DrainVerdict v);

  std::string peer_;
  std::unique_ptr<SenderPort> port_;
  Settings settings_;
  Phase phase_ = Phase::Opening;
  bool channel_up_ = false;
  bool resend_ = false;  // tables were added after the snapshot went out
  std::vector<engine::WriteRoute> held_;
  std::vector<std::string> tables_;  // every table handed to this peer
  std::optional<Time> hold_until_;   // the ack's bound while writes are held
  std::optional<Time> handed_at_;    // when the writes were released: the drain counts from it
  std::optional<Time> deadline_;
  std::optional<Time> reconnect_at_;  // the channel closed while streaming
  std::optional<Time> recount_at_;
  std::optional<size_t> open_;  // the last count_open(), until a NEW event
  uint32_t reconnects_ = 0;
  bool forced_ = false;
  std::set<Key> flows_;
  uint32_t acked_ = 0;
  DrainVerdict verdict_ = DrainVerdict::Wait;
  std::string problem_;
};

[[nodiscard]] const char* to_string(Sender::Phase p);

}  // namespace hanat::daemon::keep
