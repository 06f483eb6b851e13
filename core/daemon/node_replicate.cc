// SPDX-License-Identifier: GPL-2.0-or-later
// DOC: core/daemon/node_replicate.cc wires stateful failover's replication (DESIGN.md,
// "Connection survival"; issue #21), active only with `[failover] stateful = true`.
//
//   targets     every second (and at engine start) replica::replica_targets() over the
//               engine's view: the members healthy and allocatable now, the route tables,
//               their zones and whether they route here. A member that becomes a target gets a
//               link; one that is no longer a target loses it (its receiver keeps the last replicas
//               until their timeouts, or until this member's next stream replaces them).
//   a link      a ChannelClient from this member's private address to the target's channel
//               port (the member channel; the target admits members by address), with the
//               handover's pre-shared key. Closed: connect again after a backoff (0.5 s,
//               doubling to 30 s; reset by a connection that got its hello).
//   the stream  one CtEvents with UPDATE events for the union of the targets' sources
//               (keep::handover_sources() of the tables each would take); each link's
//               replica::Stream picks its own. A resync (a ReplicatedDumper read in 10 ms
//               steps across loop turns, bounded by [handover] max_flows; the links waiting
//               for it hold their events until it is sent) on connect and every
//               replica::kResyncEvery; events in 50 ms batches between, the event socket
//               read every 25 ms at most (kReadEvery).
//               Lost events (the socket overran) force a resync of every link.
//   received    the channel's Replica frames from other members end in on_replica_batch():
//               counted per member for status; the replica store is connected there.

#include <arpa/inet.h>
#include <jansson.h>
#include <netinet/in.h>

#include <algorithm>

#include "core/base/ipv4.h"
#include "core/daemon/keep_plan.h"
#include "core/daemon/node.h"
#include "core/daemon/node_util.h"
#include "core/handover/psk.h"
#include "core/log/log.h"
#include "netfilter/conntrack.h"
#include "netfilter/ct_events.h"

namespace hanat::daemon {

using node_util::now;
using node_util::sockaddr_of;
using std::chrono::milliseconds;

namespace {

constexpr milliseconds kReviewEvery{1000};
constexpr milliseconds kBackoffFirst{500};
constexpr milliseconds kBackoffMax{30000};
// The event socket is read at most this often (CtEvents' `batch`): one wake-up per event
// cost the sender most of its replication CPU (docs/benchmarks.md, "Replication cost").
// Half the flush interval: an event waits at most 25 ms more before its batch goes out
// (a flow that began within 75 ms of a crash may not have reached the target).
constexpr milliseconds kReadEvery = replica::kFlushEvery / 2;
// A resync's conntrack dump reads this long per loop turn: a dump of 50,000 entries took
// 260 ms on the loop in one piece (docs/benchmarks.md), long enough to delay probes.
constexpr std::chrono::microseconds kDumpStep{10000};

std::vector<netfilter::Ipv4Prefix> prefixes(const std::vector<std::string>& cidrs) {
  std::vector<netfilter::Ipv4Prefix> out;
  for (const auto& c : cidrs)
    if (auto p = netfilter::parse_ipv4_prefix(c)) out.push_back(*p);
  return out;
}

}  // namespace

void Node::start_replication() {
  if (!cfg_->failover.stateful || plan_only_ || repl_review_timer_.active()) return;
  log::info(
      "stateful failover: replicating this member's flows to the members that would take "
      "its tables");
  replicate_review();
  (void)repl_review_timer_.start(kReviewEvery, kReviewEvery, [this] { replicate_review(); });
}

void Node::replicate_review() {
  if (!machine_) return;
  const auto snap = machine_->snapshot();
  std::vector<replica::TargetMember> members;
  for (const auto& m : snap.members) {
    replica::TargetMember tm;
    tm.id = m.instance_id;
    tm.zone = m.zone;
    // The engine allocates only to these (recompute_allocation, DESIGN rule 9).
    tm.healthy = m.self || (m.health == engine::Health::Up && m.agent_answered && !m.agent_silent &&
                            !m.no_agent && !m.reports_down);
    for (const auto& dm : discovered_.engine.members)
      if (dm.instance_id == m.instance_id) tm.launch_time = dm.launch_time;
    members.push_back(std::move(tm));
  }
  std::vector<replica::TargetTable> tables;
  for (const auto& t : snap.tables) {
    bool here = false;
    for (const auto& r : t.routes)
      here = here || r.current.id == id_.instance_id ||
             (!id_.eni_id.empty() && r.current.id == id_.eni_id);
    tables.push_back({t.id, t.zone, here});
  }
  auto targets = replica::replica_targets(id_.instance_id, members, tables);

  std::vector<std::string> nat;
  for (const auto& c : cfg_->nat.source_cidrs) nat.push_back(c.text);
  std::set<std::string> wanted;
  std::vector<std::vector<std::string>> all_sources;
  for (auto& t : targets) {
    if (discovered_.addresses.count(t.member) == 0) continue;  // no address to reach it
    wanted.insert(t.member);
    auto src = keep::handover_sources(t.tables, discovered_.table_cidrs, nat).cidrs;
    all_sources.push_back(src);
    auto& link = repl_links_[t.member];
    if (!link) {
      link = std::make_unique<ReplicaLink>();
      log::notice("stateful failover: replicating to " + t.member + " (it would take " +
                  std::to_string(t.tables.size()) + " tables of this member)");
    }
    if (link->sources != src) {
      link->sources = src;
      link->stream.set_sources(prefixes(src));
      // A target's share changed: the receiver gets the new set at once.
      link->stream.force_resync();
    }
    link->tables = std::move(t.tables);
  }
  for (auto it = repl_links_.begin(); it != repl_links_.end();) {
    if (wanted.count(it->first) != 0) {
      ++it;
      continue;
    }
    log::notice("stateful failover: no longer replicating to " + it->first +
                " (the allocation without this member gives it nothing)");
    const auto& c = it->second->stream.counters();
    repl_retired_.events[it->first] += c.events;
    repl_retired_.bytes[it->first] += it->second->wire_bytes;
    repl_retired_.drops += c.drops;
    repl_retired_.resyncs += c.resyncs;
    if (it->second->client) repl_graveyard_.add(std::move(it->second->client));
    it = repl_links_.erase(it);
  }

  // The event stream follows the union of the targets' sources.
  if (repl_links_.empty()) {
    if (repl_events_) repl_graveyard_.add(std::move(repl_events_));
    repl_filter_.reset();
  } else {
    const auto sources = replica::union_sources(all_sources);
    if (!repl_events_ || repl_filter_ != sources) {
      auto filter = netfilter::flow_filter(sources);
      if (!filter) {
        repl_error_ = "stateful failover: " + filter.error().message;
      } else {
        if (repl_events_) repl_graveyard_.add(std::move(repl_events_));
        auto ev = netfilter::CtEvents::open(
            loop_, *filter, static_cast<size_t>(std::max(cfg_->handover.max_flows, 1)),
            [this](const netfilter::FlowEvents& e) { replicate_events(e); },
            netfilter::CtEvents::kDefaultRcvBuf, true, kReadEvery,
            /*dump_on_loss=*/false);
        if (!ev) {
          const std::string why = "stateful failover: conntrack events: " + ev.error().message;
          if (why != repl_error_) log::warning(why + ", retrying in 1s");
          repl_error_ = why;
        } else {
          repl_events_ = std::move(*ev);
          repl_filter_ = sources;
          repl_error_.clear();
          // Events from before the stream opened are unknown: every link resyncs.
          for (auto& [m, l] : repl_links_) l->stream.force_resync();
        }
      }
    }
  }
  const auto t = now();
  for (auto& [member, l] : repl_links_)
    if (!l->client && (!l->reconnect_at || t >= *l->reconnect_at)) replicate_connect(member, *l);
  replicate_kick();
}

void Node::replicate_connect(const std::string& member, ReplicaLink& l) {
  auto addr = discovered_.addresses.find(member);
  auto local = core::parse_ipv4(id_.private_ip);
  const uint16_t port = config::effective_channel_port(*cfg_);
  if (addr == discovered_.addresses.end() || !local || port == 0) return;
  auto remote = core::parse_ipv4(addr->second);
  if (!remote) return;
  handover::Identity self{cfg_->group.name, id_.instance_id, std::nullopt};
  if (!cfg_->handover.psk_file.empty()) {
    auto k = handover::load_psk(cfg_->handover.psk_file);
    if (!k) {
      repl_error_ = "stateful failover: " + k.error() + ": flows are not replicated";
      return;
    }
    self.psk = std::move(*k);
  }
  handover::ChannelClient::Callbacks cb;
  cb.on_ready = [this, member] {
    auto it = repl_links_.find(member);
    if (it == repl_links_.end()) return;
    it->second->backoff = milliseconds(0);
    it->second->last_error.clear();
    it->second->stream.connected(now());
    replicate_kick();
  };
  cb.on_closed = [this, member](const std::string& why) {
    auto it = repl_links_.find(member);
    if (it == repl_links_.end()) return;
    ReplicaLink& link = *it->second;
    // Parked, not destroyed: this runs inside the client's own callback.
    if (link.client) repl_graveyard_.add(std::move(link.client));
    link.stream.disconnected();
    link.backoff = std::clamp(link.backoff * 2, kBackoffFirst, kBackoffMax);
    link.reconnect_at = now() + link.backoff;
    if (link.last_error != why)
      log::warning("stateful failover: replication to " + member + ": " + why +
                   ", connecting again in " + std::to_string(link.backoff.count()) + " ms");
    link.last_error = why;
    replicate_kick();
  };
  l.client = std::make_unique<handover::ChannelClient>(loop_, std::move(self), std::move(cb));
  ++l.connects;
  if (auto ec = l.client->connect(sockaddr_of(*remote, port), sockaddr_of(*local, 0))) {
    repl_graveyard_.add(std::move(l.client));
    l.backoff = std::clamp(l.backoff * 2, kBackoffFirst, kBackoffMax);
    l.reconnect_at = now() + l.backoff;
    l.last_error = "connect: " + ec.message();
  }
}

void Node::replicate_events(const netfilter::FlowEvents& ev) {
  const auto t = now();
  bool flush = false;
  if (ev.lost || ev.resync) {
    // Events were lost: only a dump tells the current set (the resync's own, in steps: the
    // stream does not dump on the loop itself).
    for (auto& [m, l] : repl_links_) l->stream.force_resync();
    flush = true;
  }
  for (const auto& e : ev.events)
    for (auto& [m, l] : repl_links_) flush = l->stream.add(e, t) || flush;
  if (flush) return replicate_kick();
  // The first event of a batch brings the flush forward.
  for (auto& [m, l] : repl_links_)
    if (auto d = l->stream.next_deadline()) replicate_arm(*d, t);
}

void Node::replicate_kick() {
  repl_timer_at_ = now();
  (void)repl_timer_.start(milliseconds(0), milliseconds(0), [this] { replicate_service(); });
}

void Node::replicate_arm(replica::Time at, replica::Time t) {
  if (repl_timer_.active() && repl_timer_at_ && *repl_timer_at_ <= at) return;
  repl_timer_at_ = at;
  const auto in = std::max(std::chrono::ceil<milliseconds>(at - t), milliseconds(1));
  (void)repl_timer_.start(in, milliseconds(0), [this] { replicate_service(); });
}

void Node::replicate_service() {
  const auto t = now();
  repl_timer_at_.reset();
  auto send = [](ReplicaLink& l, const std::vector<handover::ReplicaBatch>& frames) {
    // A send may fail and park the client (on_closed): check before each frame.
    for (const auto& b : frames) {
      if (!l.client) return;
      // A client that failed is parked in the graveyard, alive until the next loop turn.
      const handover::ChannelClient* c = l.client.get();
      const uint64_t before = c->counters().bytes_sent;
      l.client->send_replica(b);
      l.wire_bytes += c->counters().bytes_sent - before;
    }
  };
  // One dump serves every link whose resync is due. It is read in steps on later loop turns
  // (replicate_dump_step); the links waiting for it hold their events meanwhile, so that
  // none reaches the target before the resync that would otherwise sweep it.
  auto due = [&](const ReplicaLink& l) {
    return l.client && l.client->ready() && l.stream.resync_due(t, l.client->backlog());
  };
  if (repl_dump_ready_) {
    for (auto& [member, l] : repl_links_)
      if (due(*l)) send(*l, l->stream.resync(*repl_dump_ready_, t, /*drop_queued=*/false));
    repl_dump_ready_.reset();
  }
  bool dump_failed = false;
  if (!repl_dumper_ && std::any_of(repl_links_.begin(), repl_links_.end(),
                                   [&](const auto& kv) { return due(*kv.second); })) {
    if (repl_dump_retry_at_ && t < *repl_dump_retry_at_) {
      dump_failed = true;
    } else {
      // The sources were parsed when the stream opened: they parse again.
      auto filter = netfilter::flow_filter(repl_filter_.value_or(std::vector<std::string>{}));
      auto d = filter
                   ? netfilter::ReplicatedDumper::start(
                         *filter, static_cast<size_t>(std::max(cfg_->handover.max_flows, 1)))
                   : core::Result<std::unique_ptr<netfilter::ReplicatedDumper>, netfilter::Error>(
                         core::Unexpected(filter.error()));
      if (!d) {
        ++repl_dump_errors_;
        log::warning("stateful failover: conntrack dump: " + d.error().message +
                     ", retrying in 1s");
        repl_dump_retry_at_ = t + milliseconds(1000);
        dump_failed = true;
      } else {
        repl_dumper_ = std::move(*d);
        repl_dump_retry_at_.reset();
        repl_dump_now_ = DumpStats{std::chrono::steady_clock::now()};
        // What is queued now is older than the dump: the resync replaces it.
        for (auto& [member, l] : repl_links_)
          if (due(*l)) l->stream.drop_pending();
        (void)repl_dump_timer_.start(milliseconds(0), milliseconds(1),
                                     [this] { replicate_dump_step(); });
      }
    }
  }
  std::optional<replica::Time> next;
  for (auto& [member, l] : repl_links_) {
    const bool waits_for_dump = repl_dumper_ && due(*l);
    if (l->client && l->client->ready() && !waits_for_dump)
      send(*l, l->stream.flush(t, l->client->backlog()));
    auto d = l->stream.next_deadline();
    if (d && (!next || *d < *next)) next = d;
  }
  if (!next) return;
  // Due already yet not done (the socket's backlog holds it, or the dump failed): again in
  // 100 ms, or 1 s after a failed dump.
  if (*next <= t) next = t + (dump_failed ? milliseconds(1000) : milliseconds(100));
  replicate_arm(*next, t);
}

void Node::replicate_dump_step() {
  if (!repl_dumper_) {
    (void)repl_dump_timer_.stop();
    return;
  }
  const auto started = std::chrono::steady_clock::now();
  auto r = repl_dumper_->step(kDumpStep);
  const auto took = std::chrono::duration_cast<std::chrono::microseconds>(
      std::chrono::steady_clock::now() - started);
  repl_dump_now_.busy += took;
  repl_dump_now_.longest_step = std::max(repl_dump_now_.longest_step, took);
  if (r && !*r) return;  // on the next loop turn
  (void)repl_dump_timer_.stop();
  if (!r) {
    ++repl_dump_errors_;
    log::warning("stateful failover: conntrack dump: " + r.error().message + ", retrying in 1s");
    repl_dump_retry_at_ = now() + milliseconds(1000);
  } else {
    auto& d = repl_dumper_->result();
    if (d.skipped > 0)
      log::debug("replicate", std::to_string(d.skipped) +
                                  " flows beyond [handover] max_flows are not replicated");
    repl_dump_now_.wall = std::chrono::duration_cast<std::chrono::microseconds>(
        std::chrono::steady_clock::now() - repl_dump_now_.started);
    repl_dump_now_.seen = d.seen;
    repl_dump_now_.flows = d.flows.size();
    repl_last_dump_ = repl_dump_now_;
    repl_dump_ready_ = std::move(d.flows);
  }
  repl_dumper_.reset();
  replicate_kick();
}

void Node::on_replica_batch(const std::string& member, const handover::ReplicaBatch& b) {
  auto& r = repl_received_[member];
  ++r.frames;
  r.upserts += b.upserts.size();
  r.destroys += b.destroys.size();
  if ((b.flags & handover::ReplicaBatch::kResyncComplete) != 0) ++r.resyncs;
  r.last = now();
  // Kept for a takeover (node_takeover.cc: the replica store).
  on_replica_batch(member, b.upserts, b.destroys,
                   (b.flags & handover::ReplicaBatch::kResyncBegin) != 0,
                   (b.flags & handover::ReplicaBatch::kResyncComplete) != 0);
}

json_t* Node::replication_json() const {
  json_t* o = json_object();
  auto set = [](json_t* j, const char* k, uint64_t v) {
    json_object_set_new(j, k, json_integer(static_cast<json_int_t>(v)));
  };
  const auto t = now();
  auto ago_ms = [&](replica::Time at) {
    return static_cast<uint64_t>(
        std::max<int64_t>(0, std::chrono::duration_cast<milliseconds>(t - at).count()));
  };
  json_object_set_new(o, "enabled", json_boolean(cfg_->failover.stateful));
  if (!repl_error_.empty()) json_object_set_new(o, "error", json_string(repl_error_.c_str()));
  json_t* targets = json_array();
  uint64_t drops = 0;
  for (const auto& [member, l] : repl_links_) {
    const auto& c = l->stream.counters();
    json_t* j = json_object();
    json_object_set_new(j, "member", json_string(member.c_str()));
    json_object_set_new(j, "connected", json_boolean(l->client && l->client->ready()));
    json_t* tabs = json_array();
    for (const auto& tb : l->tables) json_array_append_new(tabs, json_string(tb.c_str()));
    json_object_set_new(j, "tables", tabs);
    set(j, "flows_sent", c.flows_sent);
    set(j, "events_sent", c.events);
    set(j, "events_per_s", l->stream.events_per_second(t));
    set(j, "coalesced", c.coalesced);
    set(j, "drops", c.drops);
    set(j, "resyncs", c.resyncs);
    set(j, "frames", c.frames);
    set(j, "bytes", c.bytes);
    set(j, "wire_bytes", l->wire_bytes);
    set(j, "pending", l->stream.pending());
    set(j, "connects", l->connects);
    if (auto lr = l->stream.last_resync()) set(j, "last_resync_ms_ago", ago_ms(*lr));
    if (!l->last_error.empty())
      json_object_set_new(j, "last_error", json_string(l->last_error.c_str()));
    json_array_append_new(targets, j);
    drops += c.drops;
  }
  json_object_set_new(o, "targets", targets);
  set(o, "drops", drops);
  set(o, "dump_errors", repl_dump_errors_);
  if (repl_last_dump_) {
    json_t* d = json_object();
    // The loop was busy with it `busy_us` in all, at most `longest_step_us` at a time.
    set(d, "busy_us", static_cast<uint64_t>(repl_last_dump_->busy.count()));
    set(d, "longest_step_us", static_cast<uint64_t>(repl_last_dump_->longest_step.count()));
    set(d, "wall_us", static_cast<uint64_t>(repl_last_dump_->wall.count()));
    set(d, "seen", repl_last_dump_->seen);
    set(d, "flows", repl_last_dump_->flows);
    json_object_set_new(o, "last_dump", d);
  }
  if (repl_events_) {
    const auto& ec = repl_events_->counters();
    set(o, "overruns", ec.overruns);
  }
  json_t* received = json_object();
  for (const auto& [member, r] : repl_received_) {
    json_t* j = json_object();
    set(j, "frames", r.frames);
    set(j, "upserts", r.upserts);
    set(j, "destroys", r.destroys);
    set(j, "resyncs", r.resyncs);
    set(j, "last_ms_ago", ago_ms(r.last));
    json_object_set_new(received, member.c_str(), j);
  }
  json_object_set_new(o, "received", received);
  return o;
}

}  // namespace hanat::daemon
