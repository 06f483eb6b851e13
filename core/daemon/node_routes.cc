// SPDX-License-Identifier: GPL-2.0-or-later
// DOC: core/daemon/node_routes.cc reads the group's route tables back from EC2. When the
// engine asks (DescribeRoutes), describe_routes() describes the tables and hands the managed
// routes to the engine as RoutesObserved, and verify_source_dest_check() re-reads this
// host's source/destination check with it, repairing it when found on; tag() and target_of() turn
// EC2's tables and routes into the engine's terms for it and for discovery (node_startup.cc).

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
  using engine::TargetKind;
  // Routes that a virtual private gateway propagates (Origin=EnableVgwRoutePropagation) are
  // not anyone's CreateRoute: they belong to the VPN or Direct Connect set-up, never to hanat.
  const bool propagated = r.origin == "EnableVgwRoutePropagation";
  auto make = [&](TargetKind k, const std::string& id) {
    return engine::Target{k, id, propagated};
  };
  // A route whose target is gone (instance terminated, ENI deleted) stays in the table with
  // State=blackhole (EC2 API reference, Route): it carries no traffic.
  if (r.state == "blackhole" && !propagated) return {TargetKind::Blackhole, ""};
  // An instance route also names the instance's ENI; the ENI is what is routed to.
  if (!r.network_interface_id.empty()) return make(TargetKind::Eni, r.network_interface_id);
  if (!r.instance_id.empty()) return make(TargetKind::Instance, r.instance_id);
  if (!r.nat_gateway_id.empty()) return make(TargetKind::NatGateway, r.nat_gateway_id);
  if (!r.transit_gateway_id.empty()) return make(TargetKind::TransitGateway, r.transit_gateway_id);
  if (!r.vpc_peering_connection_id.empty())
    return make(TargetKind::Peering, r.vpc_peering_connection_id);
  if (!r.egress_only_internet_gateway_id.empty())
    return make(TargetKind::EgressOnlyGateway, r.egress_only_internet_gateway_id);
  if (!r.local_gateway_id.empty()) return make(TargetKind::LocalGateway, r.local_gateway_id);
  if (!r.carrier_gateway_id.empty()) return make(TargetKind::CarrierGateway, r.carrier_gateway_id);
  if (!r.core_network_arn.empty()) return make(TargetKind::CoreNetwork, r.core_network_arn);
  if (!r.gateway_id.empty()) return make(TargetKind::Gateway, r.gateway_id);
  // A target element this version does not know: still someone's route, never ours.
  return make(TargetKind::Other, "");
}

}  // namespace node_util

using node_util::tag;
using node_util::target_of;

void Node::describe_routes(engine::OpId op) {
  verify_source_dest_check();
  auto sent = now();
  ec2_->describe_route_tables(
      route_tables_request(), {ec2::Priority::Read, milliseconds(0)},
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
        for (const ec2::RouteTable* tp : scoped_tables(r->route_tables)) {
          const ec2::RouteTable& t = *tp;
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
            check_unknown_targets(ot.routes.back().target, t.route_table_id);
          }
          o.tables.push_back(std::move(ot));
        }
        note_tables_served(o);
        post(std::move(o));
      });
}

void Node::verify_source_dest_check() {
  // DESIGN rule 6: the check that start-up turned off (phase_source_dest_check) is read
  // again at every route read-back, because anyone with ec2:ModifyNetworkInterfaceAttribute
  // (an IaC apply that declares source_dest_check = true, a console click) can turn it back
  // on, and EC2 then silently drops every forwarded packet of this NAT (EC2 User Guide, "NAT
  // instances"). One filtered read per refresh; a write only when it is found on.
  if (sdc_in_flight_ || !ec2_ || id_.eni_id.empty()) return;
  sdc_in_flight_ = true;
  ec2::DescribeNetworkInterfacesRequest req;
  req.network_interface_ids = {id_.eni_id};
  ec2_->describe_network_interfaces(
      req, {ec2::Priority::Read, milliseconds(0)},
      [this](ec2::Ec2Result<ec2::DescribeNetworkInterfacesOk> r) {
        count_call("DescribeNetworkInterfaces", err_of(r));
        if (!r || r->network_interfaces.empty() ||
            !r->network_interfaces.front().source_dest_check.value_or(false)) {
          // Off, or not known this time: the next refresh reads it again.
          sdc_in_flight_ = false;
          return;
        }
        ++sdc_repairs_;
        log::warning("source/destination check found enabled on " + id_.eni_id +
                     " (changed outside hanat): EC2 drops forwarded packets, disabling it");
        ec2::ModifyNetworkInterfaceAttributeRequest m;
        m.network_interface_id = id_.eni_id;
        m.source_dest_check = false;
        ec2_->modify_network_interface_attribute(
            m, {ec2::Priority::Write, milliseconds(0)}, [this](ec2::Ec2Result<ec2::SimpleOk> w) {
              count_call("ModifyNetworkInterfaceAttribute", err_of(w));
              sdc_in_flight_ = false;
              if (!w) {
                log::warning("disabling the source/destination check on " + id_.eni_id + ": " +
                             w.error().describe() + ", retrying at the next route refresh");
                return;
              }
              log::notice("source/destination check disabled again on " + id_.eni_id);
            });
      });
}

}  // namespace hanat::daemon
