// SPDX-License-Identifier: GPL-2.0-or-later
#include "core/handover/channel.h"

#include <arpa/inet.h>
#include <uv.h>

#include <utility>

#include "core/base/ipv4.h"

namespace hanat::handover {

namespace {

void apply(FlowTable& t, const FlowBatch& b, std::chrono::milliseconds now, FlowDelta& d) {
  if ((b.flags & FlowBatch::kReplace) != 0) {
    t.clear();
    d.replaced = true;
  }
  for (const Flow& f : b.flows) {
    if (t.add(f, now) == FlowTable::Added::New) d.added.push_back(f);
  }
}

}  // namespace

// ---- server ---------------------------------------------------------------------------------

struct ChannelServer::Session {
  uint64_t id = 0;
  uint32_t addr = 0;
  std::string member;  // the admitted member's id (from its address)
  std::unique_ptr<uv::Tcp> tcp;
  Decoder decoder;
  bool hello = false;
  enum class Kind { Unknown, Handover, Replica } kind = Kind::Unknown;
  std::optional<MacKey> send_key;
  uint64_t send_seq = 0;
  std::chrono::milliseconds opened{0};
  // Flows received in the current one-second window (the rate bound).
  std::chrono::milliseconds window{0};
  uint64_t window_flows = 0;
  uint64_t window_replicas = 0;  // replica entries in the same window
};

ChannelServer::ChannelServer(uv::Loop& loop, Identity self, FlowTable::Limits limits, Admit admit,
                             OnFlows on_flows, OnReject on_reject)
    : loop_(loop),
      self_(std::move(self)),
      limits_(limits),
      admit_(std::move(admit)),
      on_flows_(std::move(on_flows)),
      on_reject_(std::move(on_reject)),
      listener_(loop),
      accepts_(loop, {}, [this] { accept_one(); }),
      tick_(loop),
      graveyard_(loop) {}

ChannelServer::~ChannelServer() {
  sessions_.clear();
  graveyard_.flush();
}

std::error_code ChannelServer::listen(const sockaddr_in& addr, std::string* error) {
  auto report = [&](const char* what, std::error_code ec) {
    if (error) {
      *error = "handover channel " + core::ipv4_text(ntohl(addr.sin_addr.s_addr)) + ":" +
               std::to_string(ntohs(addr.sin_port)) + ": " + what + ": " + ec.message();
    }
    return ec;
  };
  if (auto e = listener_.init_error(); e) return report("uv_tcp_init", e);
  if (auto e = listener_.bind(reinterpret_cast<const sockaddr*>(&addr)); e) {
    return report("bind", e);
  }
  if (auto e = listener_.listen(64,
                                [this](std::error_code ec) {
                                  if (!ec) accepts_.offer();
                                });
      e) {
    return report("listen", e);
  }
  sockaddr_storage ss{};
  if (auto e = listener_.sockname(ss); e) return report("getsockname", e);
  port_ = ntohs(reinterpret_cast<const sockaddr_in*>(&ss)->sin_port);
  if (auto e = tick_.start(std::chrono::seconds(1), std::chrono::seconds(1), [this] { tick(); });
      e) {
    return report("timer", e);
  }
  return {};
}

void ChannelServer::accept_one() {
  auto conn = std::make_unique<uv::Tcp>(loop_);
  if (conn->init_error() || listener_.accept(*conn)) return;
  sockaddr_storage ss{};
  int len = sizeof ss;
  uint32_t peer = 0;
  if (uv_tcp_getpeername(conn->raw(), reinterpret_cast<sockaddr*>(&ss), &len) == 0 &&
      ss.ss_family == AF_INET) {
    peer = ntohl(reinterpret_cast<const sockaddr_in*>(&ss)->sin_addr.s_addr);
  }
  std::optional<std::string> member = peer != 0 && admit_ ? admit_(peer) : std::nullopt;
  if (!member) {
    // Closed at once (conn goes out of scope): nothing from a non-member is read.
    ++counters_.rejected_address;
    if (on_reject_) on_reject_(peer, "not a member's private address");
    return;
  }
  if (sessions_.size() >= kMaxConnections) {
    ++counters_.closed_bounds;
    if (on_reject_) on_reject_(peer, "too many channel connections");
    return;
  }
  auto s = std::make_unique<Session>();
  s->id = next_id_++;
  s->addr = peer;
  s->member = std::move(*member);
  s->tcp = std::move(conn);
  s->opened = loop_.now();
  const uint64_t id = s->id;
  if (s->tcp->read_start([this, id](std::error_code ec, std::string_view data) {
        auto it = sessions_.find(id);
        if (it == sessions_.end()) return;
        if (ec) {
          // The sender's flows stay until they expire, it reconnects, or it goes DOWN: a
          // broken connection alone says nothing about its translations.
          close(id, "connection closed: " + ec.message(), false);
          return;
        }
        on_data(*it->second, data);
      })) {
    return;
  }
  ++counters_.accepted;
  sessions_.emplace(id, std::move(s));
}

void ChannelServer::on_data(Session& s, std::string_view data) {
  s.decoder.feed(data);
  for (;;) {
    auto f = s.decoder.next();
    if (!f) {
      close(s.id, f.error(), true);
      return;
    }
    if (!*f) return;
    if (!on_frame(s, std::move(**f))) return;
  }
}

FlowTable& ChannelServer::table_for(const std::string& member) {
  auto it = tables_.find(member);
  if (it == tables_.end()) it = tables_.emplace(member, FlowTable(limits_)).first;
  return it->second;
}

bool ChannelServer::on_frame(Session& s, Frame&& frame) {
  if (!s.hello) {
    auto* h = std::get_if<Hello>(&frame);
    if (h == nullptr) {
      close(s.id, "first frame is not a hello", true);
      return false;
    }
    std::string why;
    if (h->group != self_.group) {
      why = "group \"" + h->group + "\" is not \"" + self_.group + "\"";
    } else if (h->member != s.member) {
      why = "hello names member \"" + h->member + "\" but the address is " + s.member + "'s";
    } else if (h->keyed != self_.psk.has_value()) {
      why = self_.psk ? "peer has no psk, this member has one" : "peer has a psk, this member not";
    }
    if (!why.empty()) {
      close(s.id, why, true);
      return false;
    }
    // One connection per member and kind: settle_kind() replaces an older one once this
    // session's first frame tells which kind it is.
    s.hello = true;
    Hello mine;
    mine.keyed = self_.psk.has_value();
    mine.group = self_.group;
    mine.member = self_.member;
    mine.nonce = random_nonce();
    if (self_.psk) {
      s.decoder.set_key(MacKey{*self_.psk, mine.nonce});
      s.send_key = MacKey{*self_.psk, h->nonce};
    }
    (void)s.tcp->write(encode(mine));
    return true;
  }
  if (auto* r = std::get_if<ReplicaBatch>(&frame)) {
    settle_kind(s, true);
    if (s.kind != Session::Kind::Replica) {
      close(s.id, "a replica frame on a handover connection", true);
      return false;
    }
    if (now_window(s)) s.window_replicas = 0;
    s.window_replicas += r->upserts.size() + r->destroys.size();
    // A member's resync (at most its max_flows) and its events: four times the table's bound
    // per second is far more than an honest sender needs, and bounds what the receiver's
    // callback must absorb.
    if (s.window_replicas > 4 * limits_.max_flows + kMaxFlowsPerFrame) {
      ++counters_.closed_bounds;
      close(s.id,
            "more than " + std::to_string(4 * limits_.max_flows) + " replica entries per second",
            false);
      return false;
    }
    ++counters_.replica_frames;
    counters_.replica_upserts += r->upserts.size();
    counters_.replica_destroys += r->destroys.size();
    if (on_replica_) on_replica_(s.member, *r);
    return true;
  }
  if (auto* rc = std::get_if<Reclaim>(&frame)) {
    // A request, not a stream: answered by the flows this member sends on a connection of
    // its own, so this one is done. Handled before the session's kind is settled: a request
    // must not replace the member's handover or replica stream to this server.
    const std::string member = s.member;
    const std::vector<std::string> tables = std::move(rc->tables);
    close(s.id, "reclaim received", false);
    if (on_reclaim_) on_reclaim_(member, tables);
    return false;
  }
  settle_kind(s, false);
  if (s.kind != Session::Kind::Handover) {
    close(s.id, "a handover frame on a replica connection", true);
    return false;
  }
  const auto now = loop_.now();
  FlowDelta delta;
  if (auto* b = std::get_if<FlowBatch>(&frame)) {
    if (now_window(s)) s.window_flows = 0;
    s.window_flows += b->flows.size();
    // A resync sends the whole set at once: twice the table's bound per second is the most
    // an honest sender needs.
    if (s.window_flows > 2 * limits_.max_flows + kMaxFlowsPerFrame) {
      ++counters_.closed_bounds;
      close(s.id, "more than " + std::to_string(2 * limits_.max_flows) + " flows per second",
            false);
      return false;
    }
    counters_.flows_received += b->flows.size();
    FlowTable& t = table_for(s.member);
    apply(t, *b, now, delta);
    if ((b->flags & FlowBatch::kComplete) != 0) {
      delta.complete = true;
      Ack a{static_cast<uint32_t>(t.size())};
      const MacKey* k = s.send_key ? &*s.send_key : nullptr;
      (void)s.tcp->write(encode(a, k, s.send_seq++));
    }
  } else if (auto* d = std::get_if<Destroyed>(&frame)) {
    FlowTable& t = table_for(s.member);
    for (const Flow& f : d->flows) {
      if (t.remove(f)) delta.removed.push_back(f);
    }
  } else if (std::holds_alternative<End>(frame)) {
    const std::string member = s.member;
    close(s.id, "handover ended", false);
    drop_member(member);
    return false;
  } else {
    close(s.id, "unexpected frame from the sender", true);
    return false;
  }
  if (on_flows_ &&
      (delta.replaced || delta.complete || !delta.added.empty() || !delta.removed.empty())) {
    on_flows_(s.member, table_for(s.member), delta);
  }
  return true;
}

bool ChannelServer::now_window(Session& s) {
  const auto now = loop_.now();
  if (now - s.window < std::chrono::seconds(1)) return false;
  s.window = now;
  return true;
}

void ChannelServer::settle_kind(Session& s, bool replica) {
  if (s.kind != Session::Kind::Unknown) return;
  s.kind = replica ? Session::Kind::Replica : Session::Kind::Handover;
  for (auto& [id, other] : sessions_) {
    if (id != s.id && other->hello && other->member == s.member && other->kind == s.kind) {
      close(id, "replaced by a new connection", false);
      break;
    }
  }
}

void ChannelServer::close(uint64_t id, const std::string& why, bool rejected_hello) {
  auto it = sessions_.find(id);
  if (it == sessions_.end()) return;
  if (rejected_hello) {
    ++counters_.rejected_hello;
    if (on_reject_) on_reject_(it->second->addr, why);
  }
  // Freed on the next loop turn: this may run inside the session's own read callback.
  graveyard_.add(std::move(it->second));
  sessions_.erase(it);
}

void ChannelServer::drop_member(const std::string& member) {
  for (auto it = sessions_.begin(); it != sessions_.end();) {
    auto next = std::next(it);
    // The member's replication stream stays: its replicas are not this table's.
    if (it->second->member == member && it->second->kind != Session::Kind::Replica)
      close(it->first, "member dropped", false);
    it = next;
  }
  auto t = tables_.find(member);
  if (t == tables_.end()) return;
  FlowDelta delta;
  delta.replaced = true;
  tables_.erase(t);
  if (on_flows_) {
    const FlowTable empty(limits_);
    on_flows_(member, empty, delta);
  }
}

void ChannelServer::tick() {
  const auto now = loop_.now();
  std::vector<uint64_t> late;
  for (auto& [id, s] : sessions_) {
    if (!s->hello && now - s->opened >= kHelloTimeout) late.push_back(id);
  }
  for (uint64_t id : late) close(id, "no hello within 2 s", true);
  for (auto& [member, t] : tables_) {
    FlowDelta delta;
    if (t.expire(now, &delta.removed) == 0) continue;
    if (on_flows_) on_flows_(member, t, delta);
  }
}

std::map<std::string, size_t> ChannelServer::held() const {
  std::map<std::string, size_t> out;
  for (const auto& [m, t] : tables_) out[m] = t.size();
  return out;
}

const FlowTable* ChannelServer::table(const std::string& member) const {
  auto it = tables_.find(member);
  return it == tables_.end() ? nullptr : &it->second;
}

// ---- client ---------------------------------------------------------------------------------

ChannelClient::ChannelClient(uv::Loop& loop, Identity self, Callbacks cb)
    : loop_(loop), self_(std::move(self)), cb_(std::move(cb)), graveyard_(loop) {}

ChannelClient::~ChannelClient() {
  tcp_.reset();
  graveyard_.flush();
}

std::error_code ChannelClient::connect(const sockaddr_in& server,
                                       const std::optional<sockaddr_in>& source) {
  tcp_ = std::make_unique<uv::Tcp>(loop_);
  if (auto e = tcp_->init_error(); e) return e;
  if (source) {
    if (auto e = tcp_->bind(reinterpret_cast<const sockaddr*>(&*source)); e) return e;
  }
  nonce_ = random_nonce();
  return tcp_->connect(reinterpret_cast<const sockaddr*>(&server), [this](std::error_code ec) {
    if (ec) {
      fail("connect: " + ec.message());
      return;
    }
    (void)tcp_->nodelay(true);
    Hello h;
    h.keyed = self_.psk.has_value();
    h.group = self_.group;
    h.member = self_.member;
    h.nonce = nonce_;
    if (auto e = tcp_->write(encode(h)); e) {
      fail("write: " + e.message());
      return;
    }
    (void)tcp_->read_start([this](std::error_code e, std::string_view data) {
      if (e) {
        fail(e.value() == UV_EOF ? "closed by the taker" : "read: " + e.message());
        return;
      }
      on_data(data);
    });
  });
}

void ChannelClient::on_data(std::string_view data) {
  decoder_.feed(data);
  for (;;) {
    auto f = decoder_.next();
    if (!f) {
      fail(f.error());
      return;
    }
    if (!*f) return;
    Frame& frame = **f;
    if (!ready_) {
      auto* h = std::get_if<Hello>(&frame);
      if (h == nullptr || h->group != self_.group || h->keyed != self_.psk.has_value()) {
        fail("the taker's hello does not match (group or psk setting)");
        return;
      }
      if (self_.psk) {
        decoder_.set_key(MacKey{*self_.psk, nonce_});
        send_key_ = MacKey{*self_.psk, h->nonce};
      }
      ready_ = true;
      flush();
      if (cb_.on_ready) cb_.on_ready();
      if (!tcp_) return;
      continue;
    }
    if (auto* a = std::get_if<Ack>(&frame)) {
      if (cb_.on_ack) cb_.on_ack(a->held);
      if (!tcp_) return;
    } else {
      fail("unexpected frame from the taker");
      return;
    }
  }
}

void ChannelClient::queue(Frame f) {
  if (!tcp_) return;
  pending_.push_back(std::move(f));
  if (ready_) flush();
}

void ChannelClient::flush() {
  for (Frame& f : pending_) {
    if (!tcp_) break;
    const MacKey* k = send_key_ ? &*send_key_ : nullptr;
    auto wire = encode(f, k, send_seq_++);
    const size_t n = wire.size();
    if (auto e = tcp_->write(std::move(wire)); e) {
      fail("write: " + e.message());
      break;
    }
    ++counters_.frames_sent;
    counters_.bytes_sent += n;
    if (tcp_->write_queue_size() > kMaxQueuedBytes) {
      fail("the taker does not read (" + std::to_string(kMaxQueuedBytes) + " bytes queued)");
      break;
    }
  }
  pending_.clear();
}

void ChannelClient::send_flows(const std::vector<Flow>& flows, bool replace, bool complete) {
  counters_.flows_sent += flows.size();
  for (auto& b : split(flows, replace, complete)) queue(std::move(b));
}

void ChannelClient::send_destroyed(const std::vector<Flow>& flows) {
  counters_.destroyed_sent += flows.size();
  for (size_t at = 0; at < flows.size() || at == 0; at += kMaxFlowsPerFrame) {
    Destroyed d;
    const size_t n = std::min(kMaxFlowsPerFrame, flows.size() - at);
    d.flows.assign(flows.begin() + static_cast<std::ptrdiff_t>(at),
                   flows.begin() + static_cast<std::ptrdiff_t>(at + n));
    queue(std::move(d));
    if (flows.empty()) break;
  }
}

void ChannelClient::send_end() {
  queue(End{});
}

void ChannelClient::send_replica(const ReplicaBatch& b) {
  if (!tcp_) return;
  ++counters_.replica_frames_sent;
  queue(b);
}

size_t ChannelClient::backlog() const {
  return tcp_ ? tcp_->write_queue_size() : 0;
}

void ChannelClient::send_reclaim(const std::vector<std::string>& tables) {
  queue(Reclaim{tables});
}

void ChannelClient::fail(const std::string& why) {
  if (!tcp_) return;
  graveyard_.add(std::move(tcp_));
  ready_ = false;
  pending_.clear();
  if (cb_.on_closed) cb_.on_closed(why);
}

}  // namespace hanat::handover
