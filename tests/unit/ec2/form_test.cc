// SPDX-License-Identifier: GPL-2.0-or-later
// Query parameters, their form encoding, and the throttling bucket each request draws on.

#include <gtest/gtest.h>

#include "ec2/api.h"
#include "ec2/form.h"

namespace hanat::ec2 {
namespace {

TEST(Form, EncodesLikePythonUrlencode) {
  EXPECT_EQ(form_encode("AZaz09-_.~"), "AZaz09-_.~");
  EXPECT_EQ(form_encode("a b"), "a+b");
  EXPECT_EQ(form_encode("0.0.0.0/0"), "0.0.0.0%2F0");
  EXPECT_EQ(form_encode("k=v&x+y*"), "k%3Dv%26x%2By%2A");
  EXPECT_EQ(form_encode("\xc3\xa9\xff"), "%C3%A9%FF");
}

TEST(Form, ReplaceRouteBody) {
  ReplaceRouteRequest r;
  r.route_table_id = "rtb-1";
  r.target = RouteTarget::eni("eni-2");
  EXPECT_EQ(r.params().encode(),
            "Action=ReplaceRoute&Version=2016-11-15&RouteTableId=rtb-1&"
            "DestinationCidrBlock=0.0.0.0%2F0&NetworkInterfaceId=eni-2");
  r.target = RouteTarget::nat_gateway("nat-3");
  EXPECT_NE(r.params().encode().find("&NatGatewayId=nat-3"), std::string::npos);
  r.target = RouteTarget::instance("i-4");
  EXPECT_NE(r.params().encode().find("&InstanceId=i-4"), std::string::npos);
  EXPECT_EQ(r.bucket(), Bucket::Mutating);
  EXPECT_EQ(r.write_key(), "route:rtb-1|0.0.0.0/0");
}

TEST(Form, DescribeFiltersIdsAndPagination) {
  DescribeRouteTablesRequest d;
  d.filters = {{"vpc-id", {"vpc-1"}}, {"tag:hanat:group", {"a b", "c"}}};
  d.max_results = 100;
  d.next_token = "tok/=";
  EXPECT_EQ(d.params().encode(),
            "Action=DescribeRouteTables&Version=2016-11-15&Filter.1.Name=vpc-id&"
            "Filter.1.Value.1=vpc-1&Filter.2.Name=tag%3Ahanat%3Agroup&Filter.2.Value.1=a+b&"
            "Filter.2.Value.2=c&MaxResults=100&NextToken=tok%2F%3D");
  EXPECT_EQ(d.bucket(), Bucket::NonMutating);
  DescribeRouteTablesRequest bare;
  EXPECT_EQ(bare.bucket(), Bucket::UnfilteredDescribe);
  bare.route_table_ids = {"rtb-1", "rtb-2"};
  EXPECT_EQ(bare.bucket(), Bucket::NonMutating);
  EXPECT_NE(bare.params().encode().find("RouteTableId.1=rtb-1&RouteTableId.2=rtb-2"),
            std::string::npos);
}

TEST(Form, OtherWrites) {
  AssociateAddressRequest a;
  a.allocation_id = "eipalloc-1";
  a.network_interface_id = "eni-1";
  EXPECT_EQ(a.params().encode(),
            "Action=AssociateAddress&Version=2016-11-15&AllocationId=eipalloc-1&"
            "NetworkInterfaceId=eni-1&AllowReassociation=true");
  DetachNetworkInterfaceRequest d;
  d.attachment_id = "eni-attach-1";
  d.force = true;
  EXPECT_EQ(
      d.params().encode(),
      "Action=DetachNetworkInterface&Version=2016-11-15&AttachmentId=eni-attach-1&Force=true");
  ModifyInstanceAttributeRequest m;
  m.instance_id = "i-1";
  EXPECT_EQ(m.params().encode(),
            "Action=ModifyInstanceAttribute&Version=2016-11-15&InstanceId=i-1&"
            "SourceDestCheck.Value=false");
  StopInstancesRequest s;
  s.instance_ids = {"i-1", "i-2"};
  EXPECT_EQ(s.params().encode(),
            "Action=StopInstances&Version=2016-11-15&InstanceId.1=i-1&InstanceId.2=i-2");
  Params p("X");
  p.set("NextToken", "a").set("NextToken", "b");
  EXPECT_EQ(p.encode(), "Action=X&Version=2016-11-15&NextToken=b");
}

}  // namespace
}  // namespace hanat::ec2

namespace hanat::ec2 {
namespace {

TEST(Form, MaxResultsIsDroppedWithInstanceIds) {
  DescribeInstancesRequest d;
  d.max_results = 50;
  EXPECT_NE(d.params().encode().find("MaxResults=50"), std::string::npos);
  d.instance_ids = {"i-1"};
  EXPECT_EQ(d.params().encode(), "Action=DescribeInstances&Version=2016-11-15&InstanceId.1=i-1");
  DescribeInstanceStatusRequest s;
  s.instance_ids = {"i-1"};
  s.max_results = 50;
  EXPECT_EQ(s.params().encode().find("MaxResults"), std::string::npos);
}

}  // namespace
}  // namespace hanat::ec2
