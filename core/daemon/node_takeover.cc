// SPDX-License-Identifier: GPL-2.0-or-later
// DOC: core/daemon/node_takeover.cc — stateful failover's taking side (DESIGN.md,
// "Connection survival"; issue #21, `[failover] stateful`).
//
//   replicas   on_replica_batch(): each peer's replication stream, decoded by the member
//              channel, kept in memory (replica_store.h). Nothing reaches the kernel here.
//   takeover   write_route() asks takeover_write() first: a claim of a route that points at
//              a member that died (DOWN and silent: not a drain or a planned handover,
//              which keep their connections their own way) while the store holds its flows
//              is held (takeover.h has why the entries must exist before the route moves);
//              the flows are installed into this host's conntrack table in chunks of
//              takeover::kChunk, one chunk per loop turn, translated to the address the
//              flow's zone leaves with here: the primary private IP for this host's own
//              zone, else the secondary private IP reserved for the zone (node_eips.cc,
//              reserve_addresses(): assigned ahead of time, so that a failover never waits
//              on AssignPrivateIpAddresses). The zone's Elastic IP is moved onto that
//              address at the same time (early_associate(): the engine's AssociateAddress
//              after the route write is answered by it). When the last chunk is in, or at
//              takeover::kHoldBound, the claims go to EC2, and the far end's answers reach
//              the installed entries as soon as the route moved.
//   the end    once every flow was tried and the claims went out, the outcome is logged
//              and counted (status `takeover`, hanat_takeover_flows_total) and the member's
//              replica is dropped: its flows live in this host's kernel now.
//   failback   the same installation for a claim of a table of this host's own zone from
//              a live peer (failback_write(), called by node_eips.cc's early_home_eip()):
//              the flows the peer opened for the zone while it held the table, replicated
//              here because replica_targets() counts a table routed to the peer as the
//              peer's, go in first (after a resync of the peer's stream that began once
//              this host was back, at most kFailbackSyncWait), on the address this host's
//              masquerade gives the zone; then the zone's EIP, then the route. The job runs
//              under the key "failback of <peer>" and keeps the peer's replica.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <set>
#include <string_view>

#include "core/base/ipv4.h"
#include "core/daemon/node.h"
#include "core/daemon/node_util.h"
#include "core/log/log.h"
#include "netfilter/ct_install.h"

namespace hanat::daemon {

using node_util::now;
using std::chrono::milliseconds;

namespace {

replica::ms store_time(engine::Time t) {
  return std::chrono::duration_cast<replica::ms>(t.time_since_epoch());
}

// "198.19.1.0/24" -> net and prefix; nullopt when it is not an IPv4 CIDR.
std::optional<takeover::AddressRoute> route_of(const std::string& cidr, uint32_t address) {
  const auto slash = cidr.find('/');
  auto net = core::parse_ipv4(cidr.substr(0, slash));
  if (!net) return std::nullopt;
  int prefix = 32;
  if (slash != std::string::npos) {
    const char* first = cidr.data() + slash + 1;
    const char* last = cidr.data() + cidr.size();
    auto [end, ec] = std::from_chars(first, last, prefix);
    if (ec != std::errc() || end != last || first == last) return std::nullopt;
  }
  if (prefix < 0 || prefix > 32) return std::nullopt;
  return takeover::AddressRoute{*net, static_cast<uint8_t>(prefix), address};
}

void set_count(json_t* o, const char* key, std::uint64_t v) {
  json_object_set_new(o, key, json_integer(static_cast<json_int_t>(v)));
}

}  // namespace

void Node::on_replica_batch(const std::string& member,
                            std::vector<netfilter::ReplicatedFlow> upserts,
                            std::vector<netfilter::Flow> destroys, bool resync_begin,
                            bool resync_complete) {
  if (!cfg_->failover.stateful) {
    // A peer replicating to a member that does not take state: kept nowhere.
    ++replica_ignored_;
    return;
  }
  replica::Limits l = replicas_.limits();
  l.max_entries = static_cast<size_t>(std::max(cfg_->handover.max_flows, 1));
  replicas_.set_limits(l);
  replica::Batch b;
  b.resync_begin = resync_begin;
  b.upserts = std::move(upserts);
  b.destroys = std::move(destroys);
  b.resync_complete = resync_complete;
  const auto before = replicas_.refused(member);
  const auto t = now();
  replicas_.apply(member, b, store_time(t));
  forget_departed(t);
  if (resync_complete) {
    replica_synced_at_[member] = t;
    if (failback_waits_.count(member) != 0) failback_sync_check();
  }
  const auto after = replicas_.refused(member);
  replica_refused_ += after - before;
  if (after > before && before == 0)
    log::warning("stateful failover: flows replicated by " + member + " refused, " +
                 std::to_string(replicas_.size()) + " held ([handover] max_flows " +
                 std::to_string(cfg_->handover.max_flows) +
                 "): those connections are reset if it dies");
}

void Node::forget_departed(engine::Time t) {
  // A member that left the group (terminated, stopped, untagged) without dying first handed
  // its tables over or had them taken at once (member_of() finds its flows for that): after
  // a grace its replica only costs memory — a TCP flow's timeout may be days.
  constexpr auto kGrace = std::chrono::seconds(60);
  std::vector<std::string> gone;
  for (const auto& [m, v] : replicas_.origins()) {
    if (discovered_.addresses.count(m) != 0 || takeovers_.count(m) != 0) {
      departed_since_.erase(m);
      continue;
    }
    auto it = departed_since_.emplace(m, t).first;
    if (t - it->second >= kGrace) gone.push_back(m);
  }
  for (const auto& m : gone) {
    departed_since_.erase(m);
    log::info("stateful failover: " + m + " left the group, its " +
              std::to_string(replicas_.drop(m)) + " replicated flows dropped");
  }
}

std::string Node::member_of(const engine::Target& t) const {
  for (const auto& m : discovered_.engine.members) {
    if (t.kind == engine::TargetKind::Instance && t.id == m.instance_id) return m.instance_id;
    if (t.kind == engine::TargetKind::Eni && !m.eni_id.empty() && t.id == m.eni_id)
      return m.instance_id;
  }
  // A member that left the group (terminated or stopped without handing over) whose flows
  // are still held: it is gone as surely as a silent one.
  if (t.kind == engine::TargetKind::Instance && replicas_.size(t.id) > 0) return t.id;
  return "";
}

std::string Node::holder_of(const engine::Snapshot& snap, const engine::WriteRoute& w) const {
  for (const auto& t : snap.tables) {
    if (t.id != w.table) continue;
    for (const auto& r : t.routes)
      if (r.destination == w.destination) return member_of(r.current);
  }
  return "";
}

std::optional<uint32_t> Node::zone_address(const std::string& zone) const {
  auto e = eips_.find(zone);
  if (e == eips_.end()) return std::nullopt;  // no Elastic IP: no public address to keep
  if (zone == id_.zone) return core::parse_ipv4(id_.private_ip);
  if (!e->second.secondary_ip.empty()) return core::parse_ipv4(e->second.secondary_ip);
  if (!e->second.reserved_ip.empty()) return core::parse_ipv4(e->second.reserved_ip);
  return std::nullopt;
}

bool Node::takeover_write(const engine::WriteRoute& w) {
  if (!machine_ || !cfg_->failover.stateful) return false;
  if (w.target.id != id_.instance_id && w.target.id != id_.eni_id) return false;  // not a claim
  const auto snap = machine_->snapshot();
  const std::string previous = holder_of(snap, w);
  if (previous.empty() || previous == id_.instance_id) return false;
  const auto t = now();
  if (auto it = takeovers_.find(previous); it != takeovers_.end()) {
    release_claims(previous, it->second->hold(w, t));
    takeover_kick();
    return true;
  }
  takeover::ClaimView v;
  v.stateful = true;
  v.previous = previous;
  const bool member = discovered_.addresses.count(previous) != 0;
  // The engine's view after the step that emitted this write: its PeerChanged may come
  // after the write in the same batch of actions, so peer_down_ may not know yet.
  v.previous_down = !member;
  v.previous_silent = !member;
  for (const auto& m : snap.members) {
    if (m.instance_id != previous) continue;
    v.previous_down = m.health == engine::Health::Down;
    v.previous_silent = m.silent;
  }
  v.previous_steered = keeper_ && keeper_->peers().count(previous) != 0;
  v.replicated = replicas_.size(previous);
  const auto verdict = takeover::judge(v);
  if (verdict != takeover::Verdict::Stateful) {
    // A retried claim after this member's takeover of it completed finds nothing left.
    if (verdict == takeover::Verdict::NoReplica && last_takeover_.count(previous) == 0)
      warn_once("takeover-no-replica-" + previous,
                "stateful failover: taking the tables of " + previous +
                    " without state: no flow of it was replicated here (is [failover] stateful "
                    "on there, and does its replication reach this member?)");
    return false;
  }
  // The zones of the tables this member takes from `previous`, and where each leaves here.
  std::set<std::string> zones;
  for (const auto& tb : snap.tables) {
    const bool mine = tb.allocated.id == id_.instance_id ||
                      (!id_.eni_id.empty() && tb.allocated.id == id_.eni_id);
    if (!mine) continue;
    for (const auto& r : tb.routes)
      if (member_of(r.current) == previous) zones.insert(tb.zone);
  }
  std::vector<takeover::AddressRoute> routes;
  std::vector<std::pair<std::string, uint32_t>> addresses;  // zone -> its address here
  std::string where;
  for (const auto& zone : zones) {
    auto addr = zone_address(zone);
    if (!addr) {
      log::warning("stateful failover: zone " + log::quote(zone) +
                   " has no address here to continue on (no Elastic IP, or no secondary private "
                   "IP reserved yet): its flows of " +
                   previous + " are reset");
      continue;
    }
    auto c = zone_cidrs_.find(zone);
    if (c == zone_cidrs_.end()) continue;
    for (const auto& cidr : c->second)
      if (auto r = route_of(cidr, *addr)) routes.push_back(*r);
    addresses.emplace_back(zone, *addr);
    where += (where.empty() ? "" : ", ") + log::quote(zone) + " on " + core::ipv4_text(*addr);
  }
  auto flows = replicas_.take(previous, store_time(t));
  auto split = takeover::split_by_address(flows, routes);
  auto job = std::make_unique<takeover::Install>(previous, std::move(split), t,
                                                 takeover::Install::Settings{});
  log::notice("stateful failover: taking the tables of " + previous + " with its " +
              std::to_string(flows.size()) + " replicated flows (" +
              (where.empty() ? std::string("no zone with an address here") : where) +
              "): installing them before the route writes (at most " +
              std::to_string(takeover::kHoldBound.count()) + " ms)");
  // The zones' Elastic IPs move now, beside the installation: the far end's answers can
  // reach the installed entries as soon as the route moved, not one more EC2 round trip
  // after it (the engine's AssociateAddress after the route write is answered by this one).
  // A dead member cannot object, and its address serves nobody while it is dead.
  for (const auto& [zone, addr] : addresses) early_associate(zone, core::ipv4_text(addr));
  auto* raw = job.get();
  takeovers_.emplace(previous, std::move(job));
  release_claims(previous, raw->hold(w, t));
  takeover_kick();
  return true;
}

void Node::release_claims(const std::string& member, takeover::Install::Release r) {
  if (r.writes.empty()) return;
  if (!r.why.empty())
    log::warning("stateful failover (" + member + "): " + r.why +
                 ": writing the routes, flows not installed yet are reset");
  for (const auto& w : r.writes) {
    // A failback's write waits for the zone's Elastic IP next.
    if (is_failback(member) && hold_for_home_eip(w)) continue;
    send_route(w);
  }
}

void Node::takeover_cancel(engine::OpId op) {
  for (auto& [m, job] : takeovers_) (void)job->cancel(op);
}

void Node::takeover_kick() {
  (void)takeover_timer_.start(milliseconds(0), milliseconds(0), [this] { takeover_service(); });
}

void Node::takeover_service() {
  // One chunk per loop turn over all takeovers: the loop is never blocked much longer than
  // one install_flows() of takeover::kChunk flows (takeover.h).
  for (auto& [member, job] : takeovers_) {
    if (job->finished()) continue;
    auto c = job->next_chunk();
    if (!c) continue;
    if (c->first_of_address) {
      auto used = netfilter::own_ports(c->address);
      if (!used) {
        release_claims(member, job->chunk_failed(used.error().message, now()));
        break;
      }
      takeover_used_[member] = std::move(*used);
    }
    const auto began = std::chrono::steady_clock::now();
    auto r = netfilter::install_flows(c->flows, c->address, takeover_used_[member]);
    log::debug("takeover", member + ": " + std::to_string(c->flows.size()) + " flows to " +
                               core::ipv4_text(c->address) + " in " +
                               std::to_string(std::chrono::duration_cast<std::chrono::microseconds>(
                                                  std::chrono::steady_clock::now() - began)
                                                  .count()) +
                               " us");
    if (!r) {
      release_claims(member, job->chunk_failed(r.error().message, now()));
    } else {
      release_claims(member, job->chunk_done(r->installed, r->collided, r->failed, now()));
    }
    break;
  }
  const auto t = now();
  std::optional<engine::Time> next;
  bool more = false;
  for (auto it = takeovers_.begin(); it != takeovers_.end();) {
    auto& job = *it->second;
    release_claims(it->first, job.tick(t));
    if (!job.finished()) {
      more = true;
    } else if (job.released() || job.held() == 0) {
      finish_takeover(job, t);
      takeover_used_.erase(it->first);
      it = takeovers_.erase(it);
      continue;
    }
    if (auto d = job.deadline(); d && (!next || *d < *next)) next = d;
    ++it;
  }
  if (more) return takeover_kick();
  if (next) {
    auto in = std::chrono::ceil<milliseconds>(*next - t);
    (void)takeover_timer_.start(std::max(in, milliseconds(1)), milliseconds(0),
                                [this] { takeover_service(); });
  }
}

void Node::finish_takeover(const takeover::Install& job, engine::Time t) {
  const auto& c = job.counters();
  takeover_flows_["installed"] += c.installed;
  takeover_flows_["collided"] += c.collided;
  takeover_flows_["failed"] += c.failed;
  takeover_flows_["unroutable"] += c.unroutable;
  TakeoverResult res;
  res.counters = c;
  res.at = std::chrono::system_clock::now();
  res.took =
      std::chrono::duration_cast<milliseconds>(job.finished_at().value_or(t) - job.started());
  res.error = job.error();
  last_takeover_[job.member()] = res;
  // A failback's holder is alive: its replica stays (it still translates other tables, and
  // its stream replaces the zone's flows at its next resync).
  const bool failback = is_failback(job.member());
  const size_t dropped = failback ? 0 : replicas_.drop(job.member());
  const std::string line =
      "stateful failover (" + job.member() + "): " + std::to_string(c.installed) +
      " flows installed, " + std::to_string(c.collided) + " collided with this host's ports, " +
      std::to_string(c.failed) + " failed, " + std::to_string(c.unroutable) +
      " without an address here, in " + std::to_string(res.took.count()) + " ms" +
      (job.error().empty() ? "" : " (" + job.error() + ")") +
      (failback ? std::string() : "; its replica (" + std::to_string(dropped) + " flows) dropped");
  if (c.failed > 0 || !job.error().empty()) {
    log::warning(line);
  } else {
    log::notice(line);
  }
}

namespace {
constexpr std::string_view kFailbackOf = "failback of ";
// How long a failback waits for a completed resync of the holder's stream since this host
// became healthy (serving_since_): the holder resyncs as soon as its share changes
// (replica_sender.h), when it sees this host healthy, about `rise` probes later; the
// engine's failback_delay (30 s by default) usually covers it. Past the wait, what the
// replica holds is installed: the holder's events since its last resync are in it.
constexpr milliseconds kFailbackSyncWait{3000};
}  // namespace

bool Node::is_failback(const std::string& key) {
  return key.starts_with(kFailbackOf);
}

uint32_t Node::masquerade_source() const {
  const auto fallback = core::parse_ipv4(id_.private_ip).value_or(0);
  if (cfg_->egress.targets.empty()) return fallback;
  auto dst = core::parse_ipv4(cfg_->egress.targets.front().address);
  if (!dst) return fallback;
  // connect() on a UDP socket sends nothing: the kernel picks the route and its source
  // address, the one masquerade gives a flow leaving that way (nf_nat_masquerade_ipv4()
  // takes the preferred source of the route's device for the next hop).
  const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return fallback;
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port =
      htons(cfg_->egress.targets.front().port == 0 ? 9 : cfg_->egress.targets.front().port);
  to.sin_addr.s_addr = htonl(*dst);
  sockaddr_in me{};
  socklen_t len = sizeof me;
  uint32_t out = fallback;
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&to), sizeof to) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&me), &len) == 0 && me.sin_addr.s_addr != 0)
    out = ntohl(me.sin_addr.s_addr);
  ::close(fd);
  return out;
}

bool Node::failback_write(const engine::WriteRoute& w) {
  if (!machine_) return false;
  const std::string holder = holder_of(machine_->snapshot(), w);
  if (holder.empty() || holder == id_.instance_id) return false;
  const std::string key = std::string(kFailbackOf) + holder;
  const auto t = now();
  if (auto it = takeovers_.find(key); it != takeovers_.end()) {
    release_claims(key, it->second->hold(w, t));
    takeover_kick();
    return true;
  }
  if (auto it = failback_waits_.find(holder); it != failback_waits_.end()) {
    it->second.writes.push_back(w);
    return true;
  }
  failback_waits_[holder] = FailbackWait{serving_since_, t + kFailbackSyncWait, {w}};
  failback_sync_check();
  return true;
}

void Node::failback_sync_check() {
  const auto t = now();
  std::optional<engine::Time> next;
  std::vector<std::string> ready;
  for (const auto& [holder, wait] : failback_waits_) {
    auto synced = replica_synced_at_.find(holder);
    const bool fresh = synced != replica_synced_at_.end() && synced->second >= wait.since;
    if (fresh || t >= wait.until) {
      if (!fresh)
        log::warning("failback: no complete resync of " + holder + "'s flows within " +
                     std::to_string(kFailbackSyncWait.count()) +
                     " ms: installing the ones held (connections it opened since its last "
                     "resync may be reset)");
      ready.push_back(holder);
    } else if (!next || wait.until < *next) {
      next = wait.until;
    }
  }
  for (const auto& h : ready) failback_proceed(h);
  if (next) {
    (void)failback_wait_timer_.start(std::chrono::ceil<milliseconds>(*next - t) + milliseconds(1),
                                     milliseconds(0), [this] { failback_sync_check(); });
  } else {
    (void)failback_wait_timer_.stop();
  }
}

void Node::failback_proceed(const std::string& holder) {
  auto wait = failback_waits_.find(holder);
  if (wait == failback_waits_.end()) return;
  auto writes = std::move(wait->second.writes);
  failback_waits_.erase(wait);
  if (writes.empty()) return;  // abandoned meanwhile
  const auto t = now();
  const uint32_t address = masquerade_source();
  std::vector<takeover::AddressRoute> routes;
  if (auto c = zone_cidrs_.find(id_.zone); c != zone_cidrs_.end())
    for (const auto& cidr : c->second)
      if (auto r = route_of(cidr, address)) routes.push_back(*r);
  // Only the zone's flows: the holder's others (its own zone, tables it still holds) stay
  // its own, and stay in the replica for a takeover.
  auto split = takeover::split_by_address(replicas_.take(holder, store_time(t)), routes);
  split.unroutable = 0;
  size_t n = 0;
  for (const auto& g : split.groups) n += g.flows.size();
  const std::string key = std::string(kFailbackOf) + holder;
  if (n == 0) return release_claims(key, {std::move(writes), ""});  // on to the EIP
  log::notice("failback: installing the " + std::to_string(n) + " flows " + holder +
              " translated for zone " + log::quote(id_.zone) + " meanwhile (replicated here), on " +
              core::ipv4_text(address) + ", before the route writes (at most " +
              std::to_string(takeover::kHoldBound.count()) + " ms)");
  auto job =
      std::make_unique<takeover::Install>(key, std::move(split), t, takeover::Install::Settings{});
  auto* raw = job.get();
  takeovers_.emplace(key, std::move(job));
  for (const auto& w : writes) release_claims(key, raw->hold(w, t));
  takeover_kick();
}

json_t* Node::takeover_json() const {
  json_t* o = json_object();
  json_object_set_new(o, "stateful", json_boolean(cfg_->failover.stateful));
  set_count(o, "replicated_flows", replicas_.size());
  set_count(o, "max_flows", replicas_.limits().max_entries);
  set_count(o, "bytes_per_flow", replica::Store::kBytesPerEntry);
  set_count(o, "batches_ignored", replica_ignored_);
  // Entries on a secondary private IP deleted when its zone's Elastic IP left it.
  set_count(o, "purged_on_release", purged_on_release_);
  // This host's own ESTABLISHED entries whose timeout was bounded because their connections
  // had moved elsewhere (its own failure, or its tables taken).
  set_count(o, "stale_bounded", stale_bounded_);
  json_t* origins = json_object();
  const auto t = store_time(now());
  for (const auto& [m, v] : replicas_.origins()) {
    json_t* j = json_object();
    set_count(j, "flows", v.entries);
    set_count(j, "live", replicas_.live(m, t));
    json_object_set_new(j, "resyncing", json_boolean(v.resyncing));
    json_object_set_new(j, "synced", json_boolean(v.synced));
    set_count(j, "upserts", v.counters.upserts);
    set_count(j, "destroyed", v.counters.destroyed);
    set_count(j, "refused", v.counters.refused);
    set_count(j, "expired", v.counters.expired);
    set_count(j, "swept", v.counters.swept);
    set_count(j, "resyncs", v.counters.resyncs);
    json_object_set_new(origins, m.c_str(), j);
  }
  json_object_set_new(o, "replicas", origins);
  auto counters_json = [](const takeover::Counters& c) {
    json_t* j = json_object();
    set_count(j, "flows", c.flows);
    set_count(j, "installed", c.installed);
    set_count(j, "collided", c.collided);
    set_count(j, "failed", c.failed);
    set_count(j, "unroutable", c.unroutable);
    return j;
  };
  json_t* running = json_array();
  for (const auto& [m, job] : takeovers_) {
    json_t* j = counters_json(job->counters());
    json_object_set_new(j, "member", json_string(m.c_str()));
    set_count(j, "writes_held", job->held());
    json_object_set_new(j, "released", json_boolean(job->released()));
    json_array_append_new(running, j);
  }
  json_object_set_new(o, "running", running);
  json_t* last = json_object();
  for (const auto& [m, r] : last_takeover_) {
    json_t* j = counters_json(r.counters);
    json_object_set_new(
        j, "at_unix_ms",
        json_integer(static_cast<json_int_t>(
            std::chrono::duration_cast<milliseconds>(r.at.time_since_epoch()).count())));
    json_object_set_new(j, "took_ms", json_integer(static_cast<json_int_t>(r.took.count())));
    if (!r.error.empty()) json_object_set_new(j, "error", json_string(r.error.c_str()));
    json_object_set_new(last, m.c_str(), j);
  }
  json_object_set_new(o, "last", last);
  return o;
}

}  // namespace hanat::daemon
