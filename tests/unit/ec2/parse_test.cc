// SPDX-License-Identifier: GPL-2.0-or-later
// XML replies (tests/fixtures/ec2) parsed into typed results and error values.

#include <gtest/gtest.h>

#include "ec2/api.h"
#include "ec2/xml.h"
#include "tests/unit/ec2/fixture.h"

namespace hanat::ec2 {
namespace {

using testing::fixture;

TEST(Parse, DescribeRouteTables) {
  auto r = DescribeRouteTablesRequest::parse(fixture("describe_route_tables.xml"));
  ASSERT_TRUE(r.has_value()) << r.error().describe();
  EXPECT_EQ(r->request_id, "6f570b0b-9c18-4b07-bdec-73740dcf861a");
  EXPECT_EQ(r->next_token, "eyJ2IjoiMiIsImMiOiJwYWdlMiJ9");
  ASSERT_EQ(r->route_tables.size(), 2u);
  const RouteTable& t = r->route_tables[0];
  EXPECT_EQ(t.route_table_id, "rtb-0a1b2c3d4e5f60001");
  EXPECT_EQ(t.vpc_id, "vpc-0123456789abcdef0");
  ASSERT_EQ(t.routes.size(), 3u);
  const Route* def = t.route("0.0.0.0/0");
  ASSERT_NE(def, nullptr);
  EXPECT_EQ(def->instance_id, "i-0aaa1111bbbb2222c");
  EXPECT_EQ(def->network_interface_id, "eni-0fff1111eeee2222d");
  EXPECT_EQ(def->state, "active");
  EXPECT_EQ(def->origin, "CreateRoute");
  EXPECT_EQ(t.route("198.19.0.0/16")->nat_gateway_id, "nat-0abc1234def567890");
  EXPECT_EQ(t.route("198.19.0.0/16")->state, "blackhole");
  EXPECT_EQ(t.route("198.18.0.0/16")->gateway_id, "local");
  ASSERT_EQ(t.associations.size(), 1u);
  EXPECT_EQ(t.associations[0].subnet_id, "subnet-0aaa0000bbbb1111c");
  EXPECT_FALSE(t.associations[0].main);
  EXPECT_EQ(t.tags, (std::vector<Tag>{{"hanat:zone", "eu-west-1a"}, {"Name", "private & a"}}));
  EXPECT_TRUE(r->route_tables[1].associations[0].main);
  EXPECT_EQ(r->route_tables[1].route("0.0.0.0/0")->gateway_id, "igw-0123abcd4567ef890");
}

TEST(Parse, DescribeRouteTablesEveryTargetKind) {
  auto r = DescribeRouteTablesRequest::parse(fixture("describe_route_tables_targets.xml"));
  ASSERT_TRUE(r.has_value()) << r.error().describe();
  ASSERT_EQ(r->route_tables.size(), 1u);
  const RouteTable& t = r->route_tables[0];
  ASSERT_EQ(t.routes.size(), 8u);
  EXPECT_EQ(t.route("0.0.0.0/0")->transit_gateway_id, "tgw-0123456789abcdef0");
  EXPECT_EQ(t.route("198.18.10.0/24")->vpc_peering_connection_id, "pcx-0123456789abcdef0");
  EXPECT_EQ(t.route("198.18.11.0/24")->gateway_id, "vgw-0123456789abcdef0");
  EXPECT_EQ(t.route("198.18.11.0/24")->origin, "EnableVgwRoutePropagation");
  EXPECT_EQ(t.route("198.18.12.0/24")->gateway_id, "vpce-0123456789abcdef0");
  EXPECT_EQ(t.route("198.18.13.0/24")->egress_only_internet_gateway_id, "eigw-0123456789abcdef0");
  EXPECT_EQ(t.route("198.18.14.0/24")->local_gateway_id, "lgw-0123456789abcdef0");
  EXPECT_EQ(t.route("198.18.15.0/24")->carrier_gateway_id, "cagw-0123456789abcdef0");
  EXPECT_EQ(t.route("198.18.16.0/24")->core_network_arn,
            "arn:aws:networkmanager::111122223333:core-network/core-network-0123456789abcdef0");
  for (const Route& route : t.routes) {
    EXPECT_TRUE(route.instance_id.empty() && route.network_interface_id.empty() &&
                route.nat_gateway_id.empty())
        << route.destination_cidr;
  }
}

TEST(Parse, DescribeInstances) {
  auto r = DescribeInstancesRequest::parse(fixture("describe_instances.xml"));
  ASSERT_TRUE(r.has_value()) << r.error().describe();
  ASSERT_EQ(r->instances.size(), 2u);
  const Instance& a = r->instances[0];
  EXPECT_EQ(a.instance_id, "i-0aaa1111bbbb2222c");
  EXPECT_EQ(a.state, "running");
  EXPECT_EQ(a.availability_zone, "eu-west-1a");
  EXPECT_EQ(a.subnet_id, "subnet-0aaa0000bbbb1111c");
  EXPECT_EQ(a.private_ip, "198.18.1.10");
  EXPECT_EQ(a.public_ip, "198.19.200.1");
  EXPECT_EQ(a.launch_time, "2026-11-01T10:00:00.000Z");
  EXPECT_EQ(a.source_dest_check, false);
  ASSERT_EQ(a.network_interfaces.size(), 1u);
  EXPECT_EQ(a.network_interfaces[0].network_interface_id, "eni-0fff1111eeee2222d");
  EXPECT_EQ(a.network_interfaces[0].device_index, 0);
  EXPECT_EQ(a.network_interfaces[0].mac, "02:11:22:33:44:55");
  EXPECT_EQ(a.tags, (std::vector<Tag>{{"hanat:group", "prod"}}));
  EXPECT_EQ(r->instances[1].state, "stopped");
  EXPECT_EQ(r->instances[1].source_dest_check, true);
  EXPECT_TRUE(r->next_token.empty());
}

TEST(Parse, DescribeInstanceStatus) {
  auto r = DescribeInstanceStatusRequest::parse(fixture("describe_instance_status.xml"));
  ASSERT_TRUE(r.has_value());
  ASSERT_EQ(r->statuses.size(), 1u);
  EXPECT_EQ(r->statuses[0].state, "running");
  EXPECT_EQ(r->statuses[0].system_status, "ok");
  EXPECT_EQ(r->statuses[0].instance_status, "impaired");
  EXPECT_EQ(r->next_token, "next-1");
}

TEST(Parse, DescribeSubnetsInterfacesAddresses) {
  auto s = DescribeSubnetsRequest::parse(fixture("describe_subnets.xml"));
  ASSERT_TRUE(s.has_value());
  ASSERT_EQ(s->subnets.size(), 1u);
  EXPECT_EQ(s->subnets[0].cidr_block, "198.18.1.0/24");
  EXPECT_EQ(s->subnets[0].availability_zone, "eu-west-1a");

  auto n = DescribeNetworkInterfacesRequest::parse(fixture("describe_network_interfaces.xml"));
  ASSERT_TRUE(n.has_value());
  ASSERT_EQ(n->network_interfaces.size(), 1u);
  const NetworkInterface& ni = n->network_interfaces[0];
  EXPECT_EQ(ni.attached_instance_id, "i-0aaa1111bbbb2222c");
  EXPECT_EQ(ni.attachment_id, "eni-attach-0123456789abcdef0");
  EXPECT_EQ(ni.device_index, 1);
  EXPECT_EQ(ni.private_ips, (std::vector<std::string>{"198.18.1.10", "198.18.1.11"}));
  EXPECT_EQ(ni.source_dest_check, false);
  EXPECT_EQ(ni.public_ip, "198.19.200.1");

  auto a = DescribeAddressesRequest::parse(fixture("describe_addresses.xml"));
  ASSERT_TRUE(a.has_value());
  ASSERT_EQ(a->addresses.size(), 2u);
  EXPECT_EQ(a->addresses[0].association_id, "eipassoc-f0229899");
  EXPECT_EQ(a->addresses[0].network_interface_id, "eni-0fff1111eeee2222d");
  EXPECT_EQ(a->addresses[1].association_id, "");
}

TEST(Parse, WriteReplies) {
  auto rr = ReplaceRouteRequest::parse(fixture("replace_route.xml"));
  ASSERT_TRUE(rr.has_value());
  EXPECT_EQ(rr->request_id, "59dbff89-35bd-4eac-99ed-be587EXAMPLE");
  // moto's replies lack <return> and use another namespace: still fine.
  EXPECT_TRUE(ReplaceRouteRequest::parse(
                  "<ReplaceRouteResponse xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15\">"
                  "<requestId>request-id</requestId></ReplaceRouteResponse>")
                  .has_value());
  auto aa = AssociateAddressRequest::parse(fixture("associate_address.xml"));
  ASSERT_TRUE(aa.has_value());
  EXPECT_EQ(aa->association_id, "eipassoc-fc5ca095");
  auto an = AttachNetworkInterfaceRequest::parse(fixture("attach_network_interface.xml"));
  ASSERT_TRUE(an.has_value());
  EXPECT_EQ(an->attachment_id, "eni-attach-d94b09b0");
  auto st = StopInstancesRequest::parse(fixture("stop_instances.xml"));
  ASSERT_TRUE(st.has_value());
  ASSERT_EQ(st->changes.size(), 1u);
  EXPECT_EQ(st->changes[0].previous_state, "running");
  EXPECT_EQ(st->changes[0].current_state, "stopping");
}

TEST(Parse, WrongRootTruncatedAndInvalidBodiesAreBadReplies) {
  auto wrong = ReplaceRouteRequest::parse(fixture("describe_subnets.xml"));
  ASSERT_FALSE(wrong.has_value());
  EXPECT_EQ(wrong.error().kind, ErrorKind::BadReply);
  EXPECT_NE(wrong.error().message.find("<DescribeSubnetsResponse>"), std::string::npos);

  std::string full = fixture("describe_route_tables.xml");
  auto trunc = DescribeRouteTablesRequest::parse(full.substr(0, full.size() / 2));
  ASSERT_FALSE(trunc.has_value());
  EXPECT_EQ(trunc.error().kind, ErrorKind::BadReply);
  EXPECT_NE(trunc.error().message.find("DescribeRouteTables reply: invalid XML"), std::string::npos)
      << trunc.error().message;
  EXPECT_TRUE(is_retryable(trunc.error()));

  auto empty = DescribeSubnetsRequest::parse("");
  ASSERT_FALSE(empty.has_value());
  EXPECT_EQ(empty.error().kind, ErrorKind::BadReply);

  std::string deep;
  for (int i = 0; i < 100; ++i) deep += "<a>";
  auto d = parse_xml(deep);
  ASSERT_FALSE(d.has_value());
  EXPECT_NE(d.error().find("nested deeper"), std::string::npos);
}

TEST(ParseError, Ec2ResponseShape) {
  Ec2Error e = parse_error(400, fixture("error_not_found.xml"));
  EXPECT_EQ(e.kind, ErrorKind::Api);
  EXPECT_EQ(e.code, "InvalidRouteTableID.NotFound");
  EXPECT_EQ(e.message, "The routeTable ID 'rtb-00000000' does not exist");
  EXPECT_EQ(e.request_id, "ea966190-f9aa-478e-9ede-example");
  EXPECT_EQ(e.http_status, 400);
  EXPECT_FALSE(is_retryable(e));
  EXPECT_EQ(e.describe(),
            "InvalidRouteTableID.NotFound: The routeTable ID 'rtb-00000000' does not exist "
            "(HTTP 400, request ea966190-f9aa-478e-9ede-example)");
}

TEST(ParseError, ErrorResponseShapes) {
  Ec2Error auth = parse_error(401, fixture("error_auth.xml"));
  EXPECT_EQ(auth.kind, ErrorKind::Api);
  EXPECT_EQ(auth.code, "AuthFailure");
  EXPECT_EQ(auth.request_id, "");
  EXPECT_FALSE(is_retryable(auth));
  Ec2Error sts = parse_error(403, fixture("error_sts_shape.xml"));
  EXPECT_EQ(sts.code, "SignatureDoesNotMatch");
  EXPECT_EQ(sts.request_id, "4a6ddc2b-0000-example");
  EXPECT_FALSE(is_retryable(sts));
}

TEST(ParseError, ThrottlingAndServerErrorsAreRetryable) {
  Ec2Error t = parse_error(503, fixture("throttling.xml"));
  EXPECT_EQ(t.code, "RequestLimitExceeded");
  EXPECT_TRUE(is_throttling_code(t.code));
  EXPECT_TRUE(is_retryable(t));
  // Even if a front end sent it with 400, the code decides.
  EXPECT_TRUE(is_retryable(parse_error(400, fixture("throttling.xml"))));
  Ec2Error html = parse_error(500, fixture("html_500.html"));
  EXPECT_EQ(html.kind, ErrorKind::Http);
  EXPECT_EQ(html.code, "HTTP500");
  EXPECT_NE(html.message.find("not an EC2 error document"), std::string::npos);
  EXPECT_TRUE(is_retryable(html));
  EXPECT_FALSE(is_retryable(parse_error(404, "")));
  Ec2Error internal;
  internal.code = "InternalError";
  internal.http_status = 500;
  EXPECT_TRUE(is_retryable(internal));
  // An error document inside a 2xx reply is still an error.
  auto in200 = ReplaceRouteRequest::parse(fixture("error_not_found.xml"));
  ASSERT_FALSE(in200.has_value());
  EXPECT_EQ(in200.error().code, "InvalidRouteTableID.NotFound");
}

TEST(Parse, AssignPrivateIpAddressesListsTheNewAddress) {
  auto r = AssignPrivateIpAddressesRequest::parse(fixture("assign_private_ip_addresses.xml"));
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->assigned, std::vector<std::string>{"10.0.2.187"});
  AssignPrivateIpAddressesRequest a;
  a.network_interface_id = "eni-1";
  EXPECT_EQ(a.params().encode(),
            "Action=AssignPrivateIpAddresses&Version=2016-11-15&NetworkInterfaceId=eni-1&"
            "SecondaryPrivateIpAddressCount=1");
  UnassignPrivateIpAddressesRequest u;
  u.network_interface_id = "eni-1";
  u.private_ips = {"10.0.2.187"};
  EXPECT_EQ(u.params().encode(),
            "Action=UnassignPrivateIpAddresses&Version=2016-11-15&NetworkInterfaceId=eni-1&"
            "PrivateIpAddress.1=10.0.2.187");
}

TEST(Actions, ListsEveryCallableAction) {
  const auto& a = all_actions();
  EXPECT_EQ(a.size(), 21u);
  EXPECT_NE(std::find(a.begin(), a.end(), "ReplaceRoute"), a.end());
  EXPECT_NE(std::find(a.begin(), a.end(), "ModifyNetworkInterfaceAttribute"), a.end());
}

}  // namespace
}  // namespace hanat::ec2
