// DOC: core/daemon/node_routes.cc reads the group's route tables back from EC2. When the
// engine asks (DescribeRoutes), describe_routes() describes the tables and hands the managed
// routes to the engine as RoutesObserved; tag() and target_of() turn EC2's tables and
// routes into the engine's terms for it and for discovery (node_startup.cc).

#include <algorithm>

#include "core/daemon/node.h"
#include "core/daemon/node_util.h"
#include "core/log/log.h"

namespace hanat::daemon {

using node_util::err_of;
using node_util::now;
using std::chrono::milliseconds;

namespace node_util {

std::string tag(const std::vector<ec2::Tag>& tags, std::string_view key) {
  for (const auto& t : tags)
    if (t.key == key) return t.value;
  return "";
}

engine::Target target_of(const ec2::Route& r) {
  // A route whose target is gone (instance terminated, ENI deleted) stays in the table with
  // State=blackhole (EC2 API reference, Route): it carries no traffic.
  if (r.state == "blackhole") return {engine::TargetKind::Blackhole, ""};
  if (!r.network_interface_id.empty()) return {engine::TargetKind::Eni, r.network_interface_id};
  if (!r.instance_id.empty()) return {engine::TargetKind::Instance, r.instance_id};
  if (!r.nat_gateway_id.empty()) return {engine::TargetKind::NatGateway, r.nat_gateway_id};
  return {engine::TargetKind::Other, r.gateway_id};
}

}  // namespace node_util

using node_util::tag;
using node_util::target_of;

void Node::describe_routes(engine::OpId op) {
  ec2::DescribeRouteTablesRequest rr;
  if (cfg_->group.discovery == config::Discovery::Explicit) {
    rr.route_table_ids = cfg_->group.route_tables;
  } else {
    rr.filters.push_back({"tag:hanat:group", {cfg_->group.name}});
    rr.max_results = node_util::kRouteTablePage;
  }
  auto sent = now();
  ec2_->describe_route_tables(
      rr, {ec2::Priority::Read, milliseconds(0)},
      [this, op, sent](ec2::Ec2Result<ec2::DescribeRouteTablesOk> r) {
        count_call("DescribeRouteTables", err_of(r));
        if (!r) {
          log::warning("describing route tables: " + r.error().describe() + ", retrying later");
          // No observation: the engine asks again at its next describe interval.
          return;
        }
        engine::RoutesObserved o;
        o.op = op;
        o.at = sent;
        for (const auto& t : r->route_tables) {
          engine::ObservedTable ot;
          ot.id = t.route_table_id;
          std::string zone = tag(t.tags, "hanat:zone");
          if (zone.empty()) zone = discovered_.table_zones[t.route_table_id];
          ot.zone = zone;
          for (const auto& rt : t.routes) {
            if (std::find(discovered_.engine.destinations.begin(),
                          discovered_.engine.destinations.end(),
                          rt.destination_cidr) == discovered_.engine.destinations.end())
              continue;
            ot.routes.push_back({rt.destination_cidr, target_of(rt)});
          }
          o.tables.push_back(std::move(ot));
        }
        post(std::move(o));
      });
}

}  // namespace hanat::daemon
