// SPDX-License-Identifier: GPL-2.0-or-later
// EC2 routes as the engine's targets (node_util::target_of): every target element of the EC2
// API's Route type maps to its own kind, so that the engine can tell an operator's route
// (foreign, never written) from one of the group's.
#include <gtest/gtest.h>

#include "core/daemon/node_util.h"

namespace hanat::daemon {
namespace {

using engine::Target;
using engine::TargetKind;
using node_util::target_of;

ec2::Route route() {
  ec2::Route r;
  r.destination_cidr = "0.0.0.0/0";
  r.state = "active";
  r.origin = "CreateRoute";
  return r;
}

TEST(TargetOf, EveryTargetElementHasItsKind) {
  struct Case {
    std::string ec2::Route::*field;
    const char* id;
    TargetKind kind;
  };
  const Case cases[] = {
      {&ec2::Route::network_interface_id, "eni-0a", TargetKind::Eni},
      {&ec2::Route::instance_id, "i-0a", TargetKind::Instance},
      {&ec2::Route::nat_gateway_id, "nat-0a", TargetKind::NatGateway},
      {&ec2::Route::transit_gateway_id, "tgw-0a", TargetKind::TransitGateway},
      {&ec2::Route::vpc_peering_connection_id, "pcx-0a", TargetKind::Peering},
      {&ec2::Route::gateway_id, "igw-0a", TargetKind::Gateway},
      {&ec2::Route::gateway_id, "vpce-0a", TargetKind::Gateway},
      {&ec2::Route::egress_only_internet_gateway_id, "eigw-0a", TargetKind::EgressOnlyGateway},
      {&ec2::Route::local_gateway_id, "lgw-0a", TargetKind::LocalGateway},
      {&ec2::Route::carrier_gateway_id, "cagw-0a", TargetKind::CarrierGateway},
      {&ec2::Route::core_network_arn, "arn:aws:networkmanager::1:core-network/core-network-0a",
       TargetKind::CoreNetwork},
  };
  for (const Case& c : cases) {
    ec2::Route r = route();
    r.*(c.field) = c.id;
    EXPECT_EQ(target_of(r), (Target{c.kind, c.id, false})) << c.id;
  }
}

TEST(TargetOf, AnInstanceRouteIsItsEni) {
  ec2::Route r = route();
  r.instance_id = "i-0a";
  r.network_interface_id = "eni-0a";
  EXPECT_EQ(target_of(r), (Target{TargetKind::Eni, "eni-0a", false}));
}

TEST(TargetOf, BlackholeUnlessPropagated) {
  ec2::Route r = route();
  r.network_interface_id = "eni-0gone";
  r.state = "blackhole";
  EXPECT_EQ(target_of(r).kind, TargetKind::Blackhole);
  ec2::Route p = route();
  p.gateway_id = "vgw-0a";
  p.origin = "EnableVgwRoutePropagation";
  EXPECT_EQ(target_of(p), (Target{TargetKind::Gateway, "vgw-0a", true}));
  p.state = "blackhole";  // a VPN that is down: still the VPN's route, never hanat's
  EXPECT_TRUE(target_of(p).propagated);
}

TEST(TargetOf, AnUnknownTargetIsOther) {
  EXPECT_EQ(target_of(route()), (Target{TargetKind::Other, "", false}));
}

}  // namespace
}  // namespace hanat::daemon
