// SPDX-License-Identifier: GPL-2.0-or-later
// DOC: core/daemon/node_members.cc keeps the group's membership live (DESIGN rule 9).
// describe_members() reads the members from EC2, scoped to this host's VPC, at start-up and
// then every [group] refresh_interval, and at once when a managed route points at an
// instance or ENI that is not a known member (an Auto Scaling replacement that claimed its
// home table before this host re-read the group). apply_members() hands a changed list to
// the engine (MembersChanged) and restarts the peer probes with it. Explicit `members` and
// `route_tables` lists are described by filter, so that one terminated instance or deleted
// table is reported and the rest is managed.

#include <algorithm>
#include <ctime>
#include <utility>

#include "core/daemon/node.h"
#include "core/daemon/node_util.h"
#include "core/log/log.h"

namespace hanat::daemon {

using node_util::err_of;
using node_util::now;
using std::chrono::milliseconds;

namespace {

// EC2 LaunchTime "2026-11-22T05:00:00.000Z" -> seconds since the epoch (0 if unparsable).
std::int64_t launch_seconds(const std::string& s) {
  std::tm tm{};
  if (strptime(s.c_str(), "%Y-%m-%dT%H:%M:%S", &tm) == nullptr) return 0;
  return static_cast<std::int64_t>(timegm(&tm));
}

std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : ", ") + s;
  return out;
}

bool same_members(const std::vector<engine::Member>& a, const std::vector<engine::Member>& b) {
  if (a.size() != b.size()) return false;
  for (const auto& m : a) {
    auto it = std::find_if(b.begin(), b.end(),
                           [&](const engine::Member& o) { return o.instance_id == m.instance_id; });
    if (it == b.end() || it->eni_id != m.eni_id || it->zone != m.zone ||
        it->launch_time != m.launch_time || it->public_path != m.public_path)
      return false;
  }
  return true;
}

}  // namespace

void Node::warn_once(const std::string& key, const std::string& message) {
  if (warned_.insert(key).second) log::warning(message);
}

void Node::describe_members(std::function<void(core::Result<MemberList, std::string>)> done) {
  const auto& g = cfg_->group;
  ec2::DescribeInstancesRequest ir;
  std::vector<std::string> listed;
  if (g.discovery == config::Discovery::Explicit) {
    listed = g.members;
    if (std::find(listed.begin(), listed.end(), id_.instance_id) == listed.end())
      listed.push_back(id_.instance_id);
    // By filter, not by InstanceId: with ids, one id that no longer exists fails the whole
    // call (InvalidInstanceID.NotFound, EC2 API reference "DescribeInstances"); a filter
    // simply leaves it out, and the rest of the group is still managed.
    ir.filters.push_back({"instance-id", listed});
  } else {
    ir.filters.push_back({"tag:hanat:group", {g.name}});
  }
  // Stopping, stopped, shutting-down and terminated instances have left the group.
  ir.filters.push_back({"instance-state-name", {"pending", "running"}});
  // The same group name in two VPCs of a region (an IaC module's default) is two groups.
  if (!id_.vpc_id.empty()) ir.filters.push_back({"vpc-id", {id_.vpc_id}});
  ec2_->describe_instances(
      ir, {ec2::Priority::Read, milliseconds(0)},
      [this, listed, done = std::move(done)](ec2::Ec2Result<ec2::DescribeInstancesOk> ri) {
        count_call("DescribeInstances", err_of(ri));
        if (!ri) return done(core::Unexpected(ri.error().describe()));
        MemberList l;
        for (const auto& inst : ri->instances) {
          if (!id_.vpc_id.empty() && !inst.vpc_id.empty() && inst.vpc_id != id_.vpc_id) {
            warn_once("vpc:" + inst.instance_id, "member " + inst.instance_id + " is in " +
                                                     inst.vpc_id + ", not in " + id_.vpc_id +
                                                     " (this host's VPC), ignoring it");
            continue;
          }
          engine::Member m;
          m.instance_id = inst.instance_id;
          m.zone = inst.availability_zone;
          m.launch_time = launch_seconds(inst.launch_time);
          std::string addr = inst.private_ip;
          for (const auto& ni : inst.network_interfaces) {
            if (ni.device_index == 0) {
              m.eni_id = ni.network_interface_id;
              if (!ni.private_ip.empty()) addr = ni.private_ip;
            }
          }
          if (inst.instance_id == id_.instance_id && !id_.eni_id.empty()) m.eni_id = id_.eni_id;
          l.addresses[m.instance_id] = addr;
          // The instance's public IP or Elastic IP (ipAddress in DescribeInstances): a second
          // path to probe it on, reached through the internet gateway (DESIGN rule 4).
          std::string pub = inst.public_ip;
          if (pub.rfind("127.", 0) == 0 || pub.rfind("0.", 0) == 0) {
            // Not a path to the peer: probes of a loopback address are answered by this host
            // itself, and would keep a dead peer "up" forever. (EC2 emulators hand out such
            // addresses as Elastic IPs.)
            warn_once("public-loopback:" + inst.instance_id,
                      "member " + inst.instance_id + ": public address " + pub +
                          " is not routable, probing its private address only");
            pub.clear();
          }
          for (const auto& [eip_zone, eip] : eips_) {
            if (pub.empty() || pub != eip.public_ip) continue;
            // A zone's Elastic IP follows the zone's tables (failover.move_eip): it may be
            // on this host by now, which would answer the peer's probes for it.
            warn_once("public-eip:" + inst.instance_id,
                      "member " + inst.instance_id + ": public address " + pub + " is zone " +
                          log::quote(eip_zone) +
                          "'s Elastic IP, which moves; probing its private address only");
            pub.clear();
          }
          const auto& paths = cfg_->probe.paths;
          m.public_path = !pub.empty() && std::find(paths.begin(), paths.end(),
                                                    engine::ProbePath::Public) != paths.end();
          if (m.public_path) l.public_addresses[m.instance_id] = pub;
          l.members.push_back(std::move(m));
        }
        for (const auto& id : listed) {
          if (l.addresses.count(id) == 0) l.missing.push_back(id);
        }
        done(std::move(l));
      });
}

void Node::note_missing_members(const std::vector<std::string>& missing) {
  missing_members_ = missing;
  for (const auto& id : missing) {
    warn_once("missing:" + id, "group.members: " + id + " is not a running instance in " +
                                   (id_.vpc_id.empty() ? "this VPC" : id_.vpc_id) +
                                   " (terminated, stopped, deleted or in another VPC), "
                                   "managing the rest without it");
  }
  // A member that comes back may be reported again if it goes missing a second time.
  std::erase_if(warned_, [&](const std::string& k) {
    return k.rfind("missing:i-", 0) == 0 &&
           std::find(missing.begin(), missing.end(), k.substr(8)) == missing.end();
  });
}

ec2::DescribeRouteTablesRequest Node::route_tables_request() const {
  ec2::DescribeRouteTablesRequest rr;
  if (cfg_->group.discovery == config::Discovery::Explicit) {
    // By filter for the same reason as the members: RouteTableId fails the whole call with
    // InvalidRouteTableID.NotFound when one listed table was deleted.
    rr.filters.push_back({"route-table-id", cfg_->group.route_tables});
  } else {
    rr.filters.push_back({"tag:hanat:group", {cfg_->group.name}});
  }
  if (!id_.vpc_id.empty()) rr.filters.push_back({"vpc-id", {id_.vpc_id}});
  // Pages of kRouteTablePage (EC2 refuses MaxResults only beside RouteTableId, which is
  // never sent: explicit lists go by filter too), each with its own deadline.
  rr.max_results = node_util::kRouteTablePage;
  return rr;
}

std::vector<const ec2::RouteTable*> Node::scoped_tables(const std::vector<ec2::RouteTable>& got) {
  std::vector<const ec2::RouteTable*> out;
  for (const auto& t : got) {
    if (!id_.vpc_id.empty() && !t.vpc_id.empty() && t.vpc_id != id_.vpc_id) {
      warn_once("vpc:" + t.route_table_id, "route table " + t.route_table_id + " is in " +
                                               t.vpc_id + ", not in " + id_.vpc_id +
                                               " (this host's VPC), ignoring it");
      continue;
    }
    out.push_back(&t);
  }
  if (cfg_->group.discovery == config::Discovery::Explicit) {
    std::vector<std::string> missing;
    for (const auto& id : cfg_->group.route_tables) {
      if (std::none_of(out.begin(), out.end(),
                       [&](const ec2::RouteTable* t) { return t->route_table_id == id; }))
        missing.push_back(id);
    }
    for (const auto& id : missing) {
      warn_once("missing:" + id, "group.route_tables: " + id + " does not exist in " +
                                     (id_.vpc_id.empty() ? "this VPC" : id_.vpc_id) +
                                     " (deleted or in another VPC), managing the rest without it");
    }
    std::erase_if(warned_, [&](const std::string& k) {
      return k.rfind("missing:rtb-", 0) == 0 &&
             std::find(missing.begin(), missing.end(), k.substr(8)) == missing.end();
    });
    missing_tables_ = std::move(missing);
  }
  return out;
}

void Node::start_refresh() {
  auto every = cfg_->group.refresh_interval;
  (void)refresh_timer_.start(every, every, [this] { refresh_members("refresh interval"); });
}

void Node::refresh_members(const std::string& why) {
  if (!machine_ || phase_ != Phase::Running || stopping_) return;
  if (refreshing_) {
    refresh_again_ = true;
    return;
  }
  refreshing_ = true;
  log::debug("members", "re-reading the group's members (" + why + ")");
  describe_members([this](core::Result<MemberList, std::string> r) {
    refreshing_ = false;
    if (!r) {
      log::warning("re-reading members: " + r.error() + ", retrying in " +
                   config::format_duration(cfg_->group.refresh_interval));
    } else {
      apply_members(std::move(r).value());
    }
    // Routes at instances or ENIs the re-read did not make members are foreign after all.
    for (const auto& f : std::exchange(foreign_pending_, {})) log_foreign(f);
    if (refresh_again_) {
      refresh_again_ = false;
      refresh_members("requested while a refresh was running");
    }
  });
}

void Node::apply_members(MemberList l) {
  keep_recovering(l);
  note_missing_members(l.missing);
  auto& current = discovered_.engine.members;
  if (l.addresses.count(id_.instance_id) == 0) {
    // This host no longer matches the group (untagged, or dropped from `members`): it keeps
    // running with itself as a member rather than give up routes it serves on a read that
    // may be eventually consistent; the operator stops or drains it.
    warn_once("self-missing", "this instance (" + id_.instance_id + ") no longer matches group " +
                                  log::quote(cfg_->group.name) +
                                  " in EC2, keeping itself as a member");
    for (const auto& m : current) {
      if (m.instance_id == id_.instance_id) {
        l.members.push_back(m);
        l.addresses[m.instance_id] = discovered_.addresses[m.instance_id];
        if (m.public_path)
          l.public_addresses[m.instance_id] = discovered_.public_addresses[m.instance_id];
      }
    }
  } else {
    warned_.erase("self-missing");
  }
  if (same_members(current, l.members)) return;
  engine::Config check = discovered_.engine;
  check.members = l.members;
  if (auto problems = engine::validate(check); !problems.empty()) {
    // The engine refuses such a list; say why here, where it can be logged.
    log::warning("re-read members rejected (" + join(problems) + "), keeping the current members");
    return;
  }
  for (const auto& m : l.members) {
    bool known = std::any_of(current.begin(), current.end(), [&](const engine::Member& o) {
      return o.instance_id == m.instance_id;
    });
    if (!known) {
      log::notice("member " + m.instance_id + " (" + m.zone + ", " + m.eni_id + ", " +
                  l.addresses[m.instance_id] +
                  ") joined the group: it is allocated tables once "
                  "it passes rise and its agent answers");
    }
  }
  for (const auto& m : current) {
    bool stays = std::any_of(l.members.begin(), l.members.end(), [&](const engine::Member& o) {
      return o.instance_id == m.instance_id;
    });
    if (!stays) {
      log::notice("member " + m.instance_id + " (" + m.zone +
                  ") left the group (terminated, stopped or untagged): the routes it holds are "
                  "taken at once");
    }
  }
  current = l.members;
  discovered_.addresses = std::move(l.addresses);
  discovered_.public_addresses = std::move(l.public_addresses);
  post(engine::MembersChanged{current, now()});
  review_steering();  // a member that left holds no translation any more
  // Probes follow the members: new peers are probed from now on, departed ones no more.
  peers_.reset();
  start_peer_probes();
}

void Node::check_unknown_targets(const engine::Target& t, const std::string& table) {
  if (t.kind != engine::TargetKind::Instance && t.kind != engine::TargetKind::Eni) return;
  const auto& ms = discovered_.engine.members;
  if (std::any_of(ms.begin(), ms.end(), [&](const engine::Member& m) {
        return m.instance_id == t.id || m.eni_id == t.id;
      }))
    return;
  // Once per id: an appliance ENI an operator routes to stays foreign and is not re-read
  // every describe interval.
  if (!unknown_checked_.insert(t.id).second) return;
  refresh_members("route table " + table + " points at " + t.id + ", not a known member");
}

std::string Node::adopt(const std::string& table) {
  if (!machine_) return "hanatd is still starting (discovery not finished)";
  auto s = machine_->snapshot();
  for (const auto& t : s.tables) {
    if (t.id != table) continue;
    std::vector<std::string> foreign;
    for (const auto& r : t.routes) {
      if (r.foreign) foreign.push_back(r.destination + " -> " + node_util::target_text(r.current));
    }
    if (foreign.empty()) return "route table " + table + " has no foreign route: nothing to adopt";
    log::notice("adopt " + table + " requested over the status socket: its foreign routes (" +
                join(foreign) + ") are managed again");
    post(engine::Adopt{table, now()});
    return "";
  }
  return "route table " + log::quote(table) + " is not one of the group's tables";
}

}  // namespace hanat::daemon
