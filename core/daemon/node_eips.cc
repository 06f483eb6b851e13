// SPDX-License-Identifier: GPL-2.0-or-later
// DOC: core/daemon/node_eips.cc — the stable egress IP per zone (failover.move_eip).
//
// Each zone has one Elastic IP, listed in failover.eips or found by tag (hanat:group and
// hanat:zone on the allocation). The engine decides when this host must carry a zone's EIP
// (AssociateAddress, emitted only after this host's write of the zone's anchor route
// succeeded) and when it no longer does (ReleaseEip). This file carries those out:
//
//   own zone     AssociateAddress onto the primary private IP of the primary ENI. The
//                masquerade rules already translate to that address, which EC2 maps 1:1
//                to the EIP (EC2 User Guide, "Elastic IP addresses": an EIP is associated
//                with one private IPv4 address of an ENI).
//   other zone   AssignPrivateIpAddresses (one secondary private IP, chosen by EC2 from the
//                ENI's subnet), an nftables `snat to` that IP for the zone's source CIDRs
//                (the CIDRs of the subnets associated with the zone's route tables), then
//                AssociateAddress onto that IP. Released: the snat rule goes and
//                UnassignPrivateIpAddresses gives the IP back (an EIP still on it is
//                disassociated by EC2, so a release never strands the address).
//
// [failover] stateful changes three things: reserve_addresses() assigns the secondary
// private IP of every other zone with an EIP at engine start (kept in the state directory,
// file reserved_ips, so a restart reuses it), a release keeps it reserved instead of
// unassigning it, and a stateful takeover moves the zone's EIP at once (early_associate(),
// before the route write: node_takeover.cc), whose outcome answers the engine's
// AssociateAddress that follows the write.
//
// AllowReassociation is always set: the member that serves the zone now takes the EIP from
// the one that served it before, which may be dead. Every outcome goes back to the engine as
// Ec2Done and is counted in hanat_eip_moves_total. A missing allocation is an error in the
// log and in status; routes still move without it.

#include <algorithm>
#include <sstream>
#include <string>

#include "core/base/ipv4.h"
#include "core/daemon/node.h"
#include "core/daemon/node_util.h"
#include "core/daemon/state_dir.h"
#include "core/log/log.h"
#include "netfilter/conntrack.h"

namespace hanat::daemon {

using node_util::done_of;
using node_util::err_of;
using node_util::now;
using node_util::outcome_of;
using node_util::tag;
using std::chrono::milliseconds;

namespace {
// How long an early association (a stateful takeover's, early_associate()) answers the
// engine's AssociateAddress for the zone: the engine asks right after the route write
// succeeds, seconds later at most (write retries); an older answer may be stale, the EIP
// moved since by another member.
constexpr std::chrono::seconds kEarlyEipValid{30};
// How long a zone's sources keep leaving from its secondary IP after its EIP left this host
// (release_eip()). EC2 documents no bound for a route change to take effect; in practice it
// is about a second or two, and the lab's VPC router applies one within its poll interval.
// Long enough for a failback's route write and its propagation, short enough that a zone
// whose route stays here (a move that failed) is masqueraded again soon.
constexpr milliseconds kReleaseGrace{5000};
}  // namespace

void Node::discover_eips(std::shared_ptr<Discovered> d, std::function<void()> next) {
  ec2::DescribeAddressesRequest req;
  const auto& listed = cfg_->failover.eips;
  if (!listed.empty()) {
    // By filter, not by AllocationId.N: one unknown id would fail the whole call (EC2
    // answers InvalidAllocationID.NotFound), and the zones whose ids exist must still work.
    ec2::Filter f{"allocation-id", {}};
    for (const auto& [zone, alloc] : listed) f.values.push_back(alloc);
    req.filters.push_back(std::move(f));
  } else {
    req.filters.push_back({"tag:hanat:group", {cfg_->group.name}});
    req.filters.push_back({"domain", {"vpc"}});
  }
  ec2_->describe_addresses(
      req, {ec2::Priority::Read, milliseconds(0)},
      [this, d, next](ec2::Ec2Result<ec2::DescribeAddressesOk> r) {
        count_call("DescribeAddresses", err_of(r));
        eip_problems_.clear();
        eips_.clear();
        auto problem = [this](const std::string& p) {
          eip_problems_.push_back(p);
          log::error("elastic IP: " + p + "; routes move without it");
        };
        if (!r) {
          problem("DescribeAddresses: " + r.error().describe());
          return next();
        }
        const auto& listed_eips = cfg_->failover.eips;
        if (!listed_eips.empty()) {
          // Not a structured binding: clang (the sanitizer build) cannot capture one.
          for (const auto& entry : listed_eips) {
            const std::string& zone = entry.first;
            const std::string& alloc = entry.second;
            auto a = std::find_if(r->addresses.begin(), r->addresses.end(),
                                  [&](const ec2::Address& x) { return x.allocation_id == alloc; });
            if (a == r->addresses.end()) {
              problem("failover.eips." + zone + " = " + log::quote(alloc) +
                      ": no such Elastic IP in " + id_.region + " (InvalidAllocationID.NotFound)");
              continue;
            }
            eips_[zone] = ZoneEipShell{zone,          alloc, a->public_ip, a->network_interface_id,
                                       a->private_ip, "",    "",           {}};
          }
        } else {
          std::vector<const ec2::Address*> sorted;
          for (const auto& a : r->addresses) sorted.push_back(&a);
          std::sort(sorted.begin(), sorted.end(), [](const auto* x, const auto* y) {
            return x->allocation_id < y->allocation_id;
          });
          for (const ec2::Address* a : sorted) {
            std::string zone = tag(a->tags, "hanat:zone");
            if (zone.empty()) {
              problem(a->allocation_id + " (" + a->public_ip +
                      ") carries hanat:group but no hanat:zone tag naming its zone");
              continue;
            }
            if (auto prev = eips_.find(zone); prev != eips_.end()) {
              problem(a->allocation_id + " is a second Elastic IP tagged for zone " +
                      log::quote(zone) + " (" + prev->second.allocation_id + " is used)");
              continue;
            }
            eips_[zone] = ZoneEipShell{zone,
                                       a->allocation_id,
                                       a->public_ip,
                                       a->network_interface_id,
                                       a->private_ip,
                                       "",
                                       "",
                                       {}};
          }
        }
        bool restored = false;
        for (auto& [zone, e] : eips_) {
          // Associated with a secondary IP of this ENI by an earlier run of hanatd: that IP
          // is the zone's again (its snat rule comes back now, the engine re-associates).
          if (e.eni_id == id_.eni_id && !e.private_ip.empty() && e.private_ip != id_.private_ip) {
            e.secondary_ip = e.private_ip;
            restored = true;
          }
        }
        zone_cidrs_ = d->zone_cidrs;
        if (restored) apply_nat();
        for (const auto& [zone, e] : eips_) {
          bool has_table = false;
          for (const auto& [rtb, z] : d->table_zones) has_table = has_table || z == zone;
          if (!has_table) {
            warn_once("eip-zone-" + zone, "elastic IP " + e.allocation_id + " is for zone " +
                                              log::quote(zone) +
                                              ", which has no managed route table: never moved");
          }
          log::info("elastic IP " + e.allocation_id + " (" + e.public_ip + ") serves zone " +
                    log::quote(zone));
        }
        next();
      });
}

std::vector<engine::ZoneEip> Node::engine_eips() const {
  std::vector<engine::ZoneEip> out;
  for (const auto& [zone, e] : eips_) out.push_back({zone, e.allocation_id});
  return out;
}

std::vector<netfilter::SnatRule> Node::snat_rules() const {
  std::vector<netfilter::SnatRule> out;
  for (const auto& [zone, e] : eips_) {
    if (e.secondary_ip.empty()) continue;
    auto c = zone_cidrs_.find(zone);
    if (c == zone_cidrs_.end() || c->second.empty()) continue;
    out.push_back({c->second, e.secondary_ip});
  }
  return out;
}

void Node::associate_eip(const engine::AssociateAddress& x) {
  auto it = eips_.find(x.zone);
  if (it == eips_.end()) {
    post(done_of(x.op, x.epoch, nullptr));  // cannot happen: the engine's list is ours
    return;
  }
  if (auto early = early_eips_.find(x.zone);
      early != early_eips_.end() && early->second.done && now() - early->second.at > kEarlyEipValid)
    early_eips_.erase(early);  // too old: the EIP may have moved since, associate again
  if (auto early = early_eips_.find(x.zone); early != early_eips_.end()) {
    // A stateful takeover associated it already (early_associate()): its outcome answers.
    if (!early->second.done) {
      early->second.waiting.emplace_back(x.op, x.epoch);
      return;
    }
    const bool ok = early->second.error.empty();
    early_eips_.erase(early);
    if (ok) {
      post(done_of(x.op, x.epoch, nullptr));
      return;
    }
    // It failed: the engine's own attempt goes as without state.
  }
  auto associate = [this, op = x.op, epoch = x.epoch, zone = x.zone](const std::string& ip) {
    ec2::AssociateAddressRequest r;
    r.allocation_id = eips_[zone].allocation_id;
    r.network_interface_id = id_.eni_id;
    r.private_ip = ip;
    r.allow_reassociation = true;
    // The engine took this write's token from the client's bucket (node_execute.cc).
    ec2_->associate_address(
        r, {ec2::Priority::Write, milliseconds(0), /*prepaid=*/true},
        [this, op, epoch, zone, ip](ec2::Ec2Result<ec2::AssociateAddressOk> res) {
          const ec2::Ec2Error* err = err_of(res);
          record_association(zone, ip, err);
          const auto& e = eips_[zone];
          if (err == nullptr) {
            log::notice("elastic IP " + e.allocation_id + " (" + e.public_ip + ") of zone " +
                        log::quote(zone) + " associated with " + ip + " on " + id_.eni_id);
          } else {
            log::error("elastic IP " + e.allocation_id + " of zone " + log::quote(zone) +
                       ": AssociateAddress: " + err->describe());
          }
          post(done_of(op, epoch, err));
        });
  };
  if (x.home) return associate(id_.private_ip);
  ZoneEipShell& e = it->second;
  auto cidrs = zone_cidrs_.find(x.zone);
  if (cidrs == zone_cidrs_.end() || cidrs->second.empty()) {
    // Without the zone's source CIDRs no snat rule can pick its sources out: the EIP would
    // sit on an address nothing leaves with.
    ec2::Ec2Error err;
    err.kind = ec2::ErrorKind::Api;
    err.code = "hanat.NoZoneSubnets";
    err.message = "zone " + x.zone + " has no subnet associated with its route tables";
    ++eip_moves_[err.code];
    log::error("elastic IP " + e.allocation_id + " of zone " + log::quote(x.zone) + ": " +
               err.message + ", not moved");
    post(done_of(x.op, x.epoch, &err));
    return;
  }
  e.leaving_until.reset();  // back before its release finished: the address stays in use
  if (!e.secondary_ip.empty()) return associate(e.secondary_ip);
  if (!e.reserved_ip.empty()) {
    // Assigned ahead of time (reserve_addresses()): a stateful takeover may have installed
    // the zone's flows on it already. The zone's sources leave with it from now on.
    e.secondary_ip = e.reserved_ip;
    e.reserved_ip.clear();
    apply_nat();
    return associate(e.secondary_ip);
  }
  ec2::AssignPrivateIpAddressesRequest a;
  a.network_interface_id = id_.eni_id;
  std::vector<std::string> before = known_private_ips_;
  before.push_back(id_.private_ip);
  ec2_->assign_private_ip_addresses(
      a, {ec2::Priority::Write, milliseconds(0)},
      [this, op = x.op, epoch = x.epoch, zone = x.zone, before,
       associate](ec2::Ec2Result<ec2::AssignPrivateIpAddressesOk> res) {
        count_call("AssignPrivateIpAddresses", err_of(res));
        std::string ip;
        if (res) {
          for (const auto& cand : res->assigned) {
            if (std::find(before.begin(), before.end(), cand) == before.end()) ip = cand;
          }
        }
        if (ip.empty()) {
          ec2::Ec2Error none;
          none.kind = ec2::ErrorKind::Api;
          none.code = "hanat.NoAddressAssigned";
          none.message = "AssignPrivateIpAddresses returned no new address";
          const ec2::Ec2Error* err = res ? &none : &res.error();
          ++eip_moves_[outcome_of(err)];
          log::error("elastic IP of zone " + log::quote(zone) +
                     ": no secondary private IP: " + err->describe());
          post(done_of(op, epoch, err));
          return;
        }
        known_private_ips_.push_back(ip);
        eips_[zone].secondary_ip = ip;
        log::notice("secondary private IP " + ip + " assigned to " + id_.eni_id + " for zone " +
                    log::quote(zone));
        // The zone's sources leave with this IP from now on; then the EIP follows it.
        apply_nat();
        associate(ip);
      });
}

void Node::release_eip(const engine::ReleaseEip& x) {
  early_eips_.erase(x.zone);
  auto it = eips_.find(x.zone);
  if (it == eips_.end()) return;
  ZoneEipShell& e = it->second;
  log::notice("elastic IP " + e.allocation_id + " of zone " + log::quote(x.zone) +
              ": this host no longer serves the zone, its new server takes it");
  if (e.eni_id == id_.eni_id) {
    e.eni_id.clear();
    e.private_ip.clear();
  }
  if (x.home || e.secondary_ip.empty() || e.leaving_until) return;
  // The zone's packets keep arriving here until its route table's move reaches the VPC
  // router (EC2 applies a ReplaceRoute within seconds, not at once; a failback may also move
  // the EIP before the route). Were the zone's sources masqueraded again at once, those
  // packets would reach the far end from this host's own public address as segments of a
  // connection it never saw, and it would reset the connection. For kReleaseGrace they
  // keep their snat rule and entries: they leave from the secondary IP, which has no public
  // address any more, and EC2's internet gateway drops them; TCP retransmits them through
  // the table's new NAT.
  e.leaving_until = now() + kReleaseGrace;
  log::info("zone " + log::quote(x.zone) + ": its sources keep leaving from " + e.secondary_ip +
            " for " + std::to_string(kReleaseGrace.count()) +
            " ms (packets still routed here are dropped at the internet gateway, not reset)");
  if (!release_grace_timer_.active())
    (void)release_grace_timer_.start(kReleaseGrace, milliseconds(0), [this] { finish_releases(); });
}

void Node::finish_releases() {
  const auto t = now();
  std::optional<engine::Time> next;
  std::vector<std::string> due;
  for (const auto& [zone, e] : eips_) {
    if (!e.leaving_until) continue;
    if (*e.leaving_until <= t)
      due.push_back(zone);
    else if (!next || *e.leaving_until < *next)
      next = e.leaving_until;
  }
  for (const auto& zone : due) finish_release(zone);
  if (next)
    (void)release_grace_timer_.start(std::chrono::ceil<milliseconds>(*next - t), milliseconds(0),
                                     [this] { finish_releases(); });
}

void Node::finish_release(const std::string& zone) {
  auto it = eips_.find(zone);
  if (it == eips_.end()) return;
  ZoneEipShell& e = it->second;
  e.leaving_until.reset();
  // Back here meanwhile (a takeover of the zone again): its address is in use.
  if (e.secondary_ip.empty() || (e.eni_id == id_.eni_id && e.private_ip == e.secondary_ip) ||
      early_eips_.count(zone) != 0)
    return;
  const std::string ip = e.secondary_ip;
  e.secondary_ip.clear();
  apply_nat();  // the zone's sources (if any still come) masquerade again
  purge_address(ip, "zone " + log::quote(zone) + " left this host");
  if (cfg_->failover.stateful) {
    // Kept for the next takeover of the zone (reserve_addresses()): no EC2 call.
    e.reserved_ip = ip;
    return;
  }
  ec2::UnassignPrivateIpAddressesRequest u;
  u.network_interface_id = id_.eni_id;
  u.private_ips = {ip};
  ec2_->unassign_private_ip_addresses(
      u, {ec2::Priority::Write, milliseconds(0)}, [this, ip](ec2::Ec2Result<ec2::SimpleOk> res) {
        count_call("UnassignPrivateIpAddresses", err_of(res));
        if (!res) {
          log::warning("secondary private IP " + ip + " on " + id_.eni_id +
                       ": UnassignPrivateIpAddresses: " + res.error().describe() +
                       ", leaving it assigned");
          return;
        }
        std::erase(known_private_ips_, ip);
      });
}

void Node::abandon_early_eips() {
  // Like the route claims it went with (Machine::abandon_claims): a member whose own data
  // plane failed may have judged a live peer dead only because it could reach nobody, and
  // its request may still sit in the kernel's send queue. Delivered once the path returns,
  // it would take the zone's Elastic IP from the member serving the zone, which believes it
  // still holds it (its engine associated it) and would never move it back: the zone's
  // traffic would leave without its public address. Cancelled, it is never sent (or its
  // connection is reset: ec2/http_client.cc).
  std::vector<std::pair<std::string, EarlyEip>> gone;
  for (auto it = early_eips_.begin(); it != early_eips_.end();) {
    if (it->second.done) {
      ++it;
      continue;
    }
    ec2_->cancel(it->second.call);
    gone.emplace_back(it->first, std::move(it->second));
    it = early_eips_.erase(it);
  }
  for (auto& [zone, early] : gone) {
    auto e = eips_.find(zone);
    if (e == eips_.end()) continue;
    log::notice("elastic IP " + e->second.allocation_id + " of zone " + log::quote(zone) +
                ": association ahead of the route write abandoned with the claim");
    ec2::Ec2Error err;
    err.kind = ec2::ErrorKind::Cancelled;
    err.message = "abandoned with the claim: this host's own data plane failed";
    for (const auto& [op, epoch] : early.waiting) post(done_of(op, epoch, &err));
    // The zone's sources go back to the masquerade, the address back to reserve.
    if (zone != id_.zone && !e->second.secondary_ip.empty())
      release_eip(engine::ReleaseEip{e->second.allocation_id, zone, false});
  }
}

void Node::release_stray_eips() {
  // The engine releases a zone's EIP it associated itself (ReleaseEip). One this host moved
  // here without the engine taking it over never gets one: a stateful takeover's early
  // association (early_associate()) whose route write then failed or was abandoned while the
  // zone went elsewhere, or an association found on a secondary IP at start-up
  // (discover_eips()) of a zone this host no longer serves. Its snat rule and the entries on
  // its address would stay: released here once the engine is settled, holds no association
  // of the zone (done or in flight), and neither allocates nor points any of the zone's
  // tables at this host, with no write of them in flight.
  bool any = false;
  for (const auto& [zone, e] : eips_)
    any = any || (zone != id_.zone && !e.secondary_ip.empty() && !e.leaving_until);
  if (!any || !machine_) return;
  const auto snap = machine_->snapshot();
  if (snap.state != engine::State::Standby && snap.state != engine::State::Active) return;
  auto self = [this](const engine::Target& t) {
    return (!t.id.empty() && t.id == id_.instance_id) ||
           (!id_.eni_id.empty() && t.id == id_.eni_id);
  };
  std::vector<engine::ReleaseEip> stray;
  for (const auto& [zone, e] : eips_) {
    if (zone == id_.zone || e.secondary_ip.empty() || e.leaving_until) continue;
    if (auto early = early_eips_.find(zone); early != early_eips_.end() && !early->second.done)
      continue;
    bool engine_has = false;
    for (const auto& es : snap.eips)
      engine_has = engine_has || (es.zone == zone && (es.held || es.in_flight));
    for (const auto& t : snap.tables) {
      if (t.zone != zone) continue;
      engine_has = engine_has || self(t.allocated);
      for (const auto& r : t.routes) engine_has = engine_has || self(r.current) || r.in_flight;
    }
    if (!engine_has) stray.push_back(engine::ReleaseEip{e.allocation_id, zone, false});
  }
  for (const auto& r : stray) {
    log::notice("elastic IP " + r.allocation_id + " of zone " + log::quote(r.zone) +
                " was moved here (" + eips_[r.zone].secondary_ip +
                ") but this host does not serve the zone: releasing it");
    release_eip(r);
  }
}

void Node::bound_stale_entries(const std::string& why) {
  // A peer took this host's tables, with their flows when stateful; those connections went
  // on (and maybe ended) there, and nothing here sees their end: the kernel keeps an
  // ESTABLISHED entry 5 days after its last packet (nf_conntrack_tcp_timeout_established).
  // netfilter/ct_install.h, bound_timeouts(). A connection still alive, here or back here
  // with a failback, refreshes its entry with its next packet.
  if (!cfg_->failover.stateful) return;
  auto r = netfilter::bound_timeouts(netfilter::kInstallTimeoutMaxS);
  if (!r) {
    log::warning("stateful failover: timeouts of this host's connections not bounded (" + why +
                 "): " + r.error().message);
    return;
  }
  stale_bounded_ += *r;
  if (*r > 0)
    log::notice("stateful failover: " + std::to_string(*r) + " ESTABLISHED entries (" + why +
                ") expire in " + std::to_string(netfilter::kInstallTimeoutMaxS) +
                " s unless their connections send again through here");
}

// Why: core/daemon/takeover.h, ServedTables.
void Node::note_tables_served(const engine::RoutesObserved& o) {
  std::set<std::string> self{id_.instance_id};
  if (!id_.eni_id.empty()) self.insert(id_.eni_id);
  const std::string moved = served_tables_.observe(o.tables, self);
  if (!moved.empty()) bound_stale_entries("route table " + moved + " routes elsewhere now");
}

void Node::note_claimed(const std::string& table) {
  if (served_tables_.claimed_own(table, id_.zone))
    bound_stale_entries("route table " + table + " came back here");
}

void Node::purge_address(const std::string& ip, const std::string& why) {
  // Why: netfilter/conntrack.h, purge_answering(). Only a secondary private IP whose zone's
  // EIP is elsewhere comes here, never the primary (this host's own flows answer to it).
  auto addr = core::parse_ipv4(ip);
  if (!addr) return;
  auto r = netfilter::purge_answering(*addr);
  if (!r) {
    log::warning("conntrack entries translated to " + ip + " (" + why +
                 ") not deleted: " + r.error().message + "; they expire by their timeouts");
    return;
  }
  purged_on_release_ += r->purged;
  if (r->purged > 0)
    log::notice(std::to_string(r->purged) + " conntrack entries translated to " + ip +
                " deleted (" + why +
                "): no answer reaches that address without the zone's Elastic IP");
}

void Node::record_association(const std::string& zone, const std::string& ip,
                              const ec2::Ec2Error* err) {
  count_call("AssociateAddress", err);
  ++eip_moves_[outcome_of(err)];
  if (err != nullptr) return;
  auto& e = eips_[zone];
  e.eni_id = id_.eni_id;
  e.private_ip = ip;
}

bool Node::early_home_eip(const engine::WriteRoute& w) {
  // The failback of a zone whose Elastic IP a peer holds on its secondary IP: the engine
  // associates it back only after the route write, and in between this host's packets of
  // the zone leave without it (with the instance's public address, if it has one), which
  // the far end answers with a RST. Associated first, the route write held for EC2's answer
  // (at most takeover::kHoldBound), the peer's packets on its secondary IP are dropped
  // instead (EC2's internet gateway drops a private source without a public address) until
  // the route moves, and TCP retransmits them.
  if (!cfg_->failover.stateful) return false;
  if (w.target.id != id_.instance_id && w.target.id != id_.eni_id) return false;
  if (!served_tables_.claimed_own(w.table, id_.zone)) return false;
  if (eips_.find(id_.zone) == eips_.end()) return false;
  // The connections the holder opened for the zone meanwhile go first (node_takeover.cc).
  if (failback_write(w)) return true;
  return hold_for_home_eip(w);
}

bool Node::hold_for_home_eip(const engine::WriteRoute& w) {
  early_associate(id_.zone, id_.private_ip);  // returns at once when it is here already
  auto early = early_eips_.find(id_.zone);
  if (early == early_eips_.end() || early->second.done) return false;
  failback_held_.push_back(w);
  if (failback_held_.size() == 1)
    (void)failback_timer_.start(takeover::kHoldBound, milliseconds(0), [this] {
      release_failback_writes("no answer to AssociateAddress within " +
                              std::to_string(takeover::kHoldBound.count()) + " ms");
    });
  return true;
}

void Node::release_failback_writes(const std::string& why) {
  (void)failback_timer_.stop();
  auto held = std::move(failback_held_);
  failback_held_.clear();
  if (held.empty()) return;
  if (!why.empty())
    log::warning("failback: " + why + ": writing the routes, the zone's Elastic IP follows");
  for (const auto& w : held) send_route(w);
}

void Node::early_associate(const std::string& zone, const std::string& ip) {
  auto it = eips_.find(zone);
  if (it == eips_.end()) return;
  if (auto early = early_eips_.find(zone); early != early_eips_.end()) {
    if (!early->second.done) return;  // one in flight already
    early_eips_.erase(early);
  }
  ZoneEipShell& e = it->second;
  e.leaving_until.reset();  // back before its release finished: the address stays in use
  if (e.eni_id == id_.eni_id && e.private_ip == ip) return;  // here already
  if (zone != id_.zone && e.secondary_ip.empty() && e.reserved_ip == ip) {
    // The zone's sources leave with it from now on (the snat rule), as associate_eip()
    // does; the flows being installed use it already.
    e.secondary_ip = e.reserved_ip;
    e.reserved_ip.clear();
    apply_nat();
  }
  early_eips_[zone] = EarlyEip{now(), false, "", {}, {}};
  ec2::AssociateAddressRequest r;
  r.allocation_id = e.allocation_id;
  r.network_interface_id = id_.eni_id;
  r.private_ip = ip;
  r.allow_reassociation = true;
  early_eips_[zone].call = ec2_->associate_address(
      r, {ec2::Priority::Write, milliseconds(0)},
      [this, zone, ip](ec2::Ec2Result<ec2::AssociateAddressOk> res) {
        const ec2::Ec2Error* err = err_of(res);
        record_association(zone, ip, err);
        const auto& z = eips_[zone];
        if (err == nullptr) {
          log::notice("elastic IP " + z.allocation_id + " (" + z.public_ip + ") of zone " +
                      log::quote(zone) + " associated with " + ip + " on " + id_.eni_id +
                      " (stateful takeover: before the route write)");
        } else {
          log::warning("elastic IP " + z.allocation_id + " of zone " + log::quote(zone) +
                       ": AssociateAddress ahead of the route write: " + err->describe() +
                       ", retried after it");
        }
        if (zone == id_.zone) release_failback_writes("");
        auto early = early_eips_.find(zone);
        if (early == early_eips_.end()) return;  // released meanwhile
        early->second.done = true;
        early->second.error = err == nullptr ? "" : outcome_of(err);
        auto waiting = std::move(early->second.waiting);
        early->second.waiting.clear();
        if (waiting.empty()) return;  // the engine's AssociateAddress comes later
        const bool ok = err == nullptr;
        const std::string alloc = z.allocation_id;
        early_eips_.erase(early);
        for (const auto& [op, epoch] : waiting) {
          if (ok) {
            post(done_of(op, epoch, nullptr));
          } else {
            engine::AssociateAddress again{op, epoch, alloc, zone, zone == id_.zone};
            associate_eip(again);
          }
        }
      });
}

namespace {
// [status] state_directory file of the reserved addresses, one "zone ip eni" per line: a
// restarted hanatd finds them again instead of assigning another address per zone (an ENI
// has a small limit of private IPs per instance type).
constexpr char kReservedFile[] = "reserved_ips";
}  // namespace

void Node::reserve_addresses() {
  if (!cfg_->failover.stateful || !cfg_->failover.move_eip || !ec2_) return;
  // Why ahead of time: a stateful takeover installs the dead member's flows on the address
  // the zone will leave with before its route writes go out (node_takeover.cc). Assigning it
  // then would add an AssignPrivateIpAddresses round trip (100-300 ms on EC2) to every
  // failover's outage; assigned now, an idle address costs nothing (EC2 charges for none)
  // and one of the ENI's private IPs per other zone.
  StateDir dir(cfg_->status.state_directory);
  std::map<std::string, std::string> saved;  // zone -> ip, this ENI's
  if (auto r = dir.read(kReservedFile); r && *r) {
    std::istringstream in(**r);
    std::string zone, ip, eni;
    while (in >> zone >> ip >> eni) {
      if (eni == id_.eni_id && std::find(known_private_ips_.begin(), known_private_ips_.end(),
                                         ip) != known_private_ips_.end())
        saved[zone] = ip;
    }
  }
  auto save = [this] {
    std::string text;
    for (const auto& [zone, e] : eips_) {
      const std::string& ip = e.reserved_ip.empty() ? e.secondary_ip : e.reserved_ip;
      if (!ip.empty()) text += zone + " " + ip + " " + id_.eni_id + "\n";
    }
    if (auto err = StateDir(cfg_->status.state_directory).write(kReservedFile, text); !err.empty())
      log::warning("stateful failover: " + err + ": a restart assigns new addresses, ignoring");
  };
  // Not a structured binding: clang (the sanitizer build) cannot capture one.
  for (auto& entry : eips_) {
    const std::string zone = entry.first;
    ZoneEipShell& e = entry.second;
    if (zone == id_.zone || !e.secondary_ip.empty() || !e.reserved_ip.empty()) continue;
    if (auto s = saved.find(zone); s != saved.end()) {
      e.reserved_ip = s->second;
      log::info("stateful failover: secondary private IP " + e.reserved_ip + " reserved for zone " +
                log::quote(zone) + " (kept from an earlier run)");
      // The zone's EIP is not on it (discover_eips() made it secondary_ip then): whatever
      // an earlier run left translated to it is unreachable.
      purge_address(e.reserved_ip, "reserved for zone " + log::quote(zone) + ", not in use");
      continue;
    }
    ec2::AssignPrivateIpAddressesRequest a;
    a.network_interface_id = id_.eni_id;
    std::vector<std::string> before = known_private_ips_;
    before.push_back(id_.private_ip);
    ec2_->assign_private_ip_addresses(
        a, {ec2::Priority::Write, milliseconds(0)},
        [this, zone, before, save](ec2::Ec2Result<ec2::AssignPrivateIpAddressesOk> res) {
          count_call("AssignPrivateIpAddresses", err_of(res));
          std::string ip;
          if (res)
            for (const auto& cand : res->assigned)
              if (std::find(before.begin(), before.end(), cand) == before.end()) ip = cand;
          auto found = eips_.find(zone);
          if (ip.empty() || found == eips_.end()) {
            log::warning("stateful failover: no secondary private IP reserved for zone " +
                         log::quote(zone) + ": " +
                         (res ? std::string("AssignPrivateIpAddresses returned no new address")
                              : res.error().describe()) +
                         "; a takeover of the zone resets its connections");
            return;
          }
          known_private_ips_.push_back(ip);
          if (!found->second.secondary_ip.empty()) return;  // a move assigned one meanwhile
          found->second.reserved_ip = ip;
          log::notice("stateful failover: secondary private IP " + ip + " reserved on " +
                      id_.eni_id + " for zone " + log::quote(zone));
          save();
        });
  }
}

json_t* Node::eips_json() const {
  json_t* out = json_object();
  json_t* zones = json_array();
  std::map<std::string, const engine::EipSnapshot*> snap;
  engine::Snapshot s;
  if (machine_) s = machine_->snapshot();
  for (const auto& es : s.eips) snap[es.zone] = &es;
  for (const auto& [zone, e] : eips_) {
    json_t* j = json_object();
    json_object_set_new(j, "zone", json_string(zone.c_str()));
    json_object_set_new(j, "allocation_id", json_string(e.allocation_id.c_str()));
    json_object_set_new(j, "public_ip", json_string(e.public_ip.c_str()));
    const bool here = !e.eni_id.empty() && e.eni_id == id_.eni_id;
    json_object_set_new(j, "here", json_boolean(here));
    if (!e.private_ip.empty())
      json_object_set_new(j, "private_ip", json_string(e.private_ip.c_str()));
    if (!e.eni_id.empty())
      json_object_set_new(j, "network_interface_id", json_string(e.eni_id.c_str()));
    if (!e.secondary_ip.empty())
      json_object_set_new(j, "secondary_ip", json_string(e.secondary_ip.c_str()));
    // Released, its sources still leaving from secondary_ip (release_eip()'s grace).
    if (e.leaving_until) json_object_set_new(j, "leaving", json_true());
    if (!e.reserved_ip.empty())
      json_object_set_new(j, "reserved_ip", json_string(e.reserved_ip.c_str()));
    if (auto p = snap.find(zone); p != snap.end()) {
      json_object_set_new(j, "held", json_boolean(p->second->held));
      json_object_set_new(j, "home", json_boolean(p->second->home));
      json_object_set_new(j, "in_flight", json_boolean(p->second->in_flight.has_value()));
      if (!p->second->last_error.empty())
        json_object_set_new(j, "last_error", json_string(p->second->last_error.c_str()));
    }
    json_array_append_new(zones, j);
  }
  json_object_set_new(out, "zones", zones);
  json_t* problems = json_array();
  for (const auto& p : eip_problems_) json_array_append_new(problems, json_string(p.c_str()));
  json_object_set_new(out, "problems", problems);
  json_t* moves = json_object();
  for (const auto& [k, v] : eip_moves_)
    json_object_set_new(moves, k.c_str(), json_integer(static_cast<json_int_t>(v)));
  json_object_set_new(out, "moves", moves);
  return out;
}

}  // namespace hanat::daemon
