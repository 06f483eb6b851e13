// SPDX-License-Identifier: GPL-2.0-or-later
// ec2 micro benchmarks: SigV4 signing of one EC2 request, and parsing a DescribeRouteTables
// reply with 200 route tables (the size of a large failover's read).

#include <benchmark/benchmark.h>

#include "ec2/api.h"
#include "ec2/sigv4.h"

namespace hanat::ec2 {
namespace {

void BM_SignReplaceRoute(benchmark::State& state) {
  ReplaceRouteRequest r;
  r.route_table_id = "rtb-0a1b2c3d4e5f60001";
  r.target = RouteTarget::eni("eni-0fff1111eeee2222d");
  HttpRequest hr;
  hr.host = "ec2.eu-west-1.amazonaws.com";
  hr.headers = {{"Content-Type", "application/x-www-form-urlencoded; charset=utf-8"}};
  hr.body = r.params().encode();
  const Credentials c{"ASIAEXAMPLEEXAMPLE00", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
                      std::string(600, 'T'), std::nullopt};
  SigningParams p;
  p.region = "eu-west-1";
  const auto now = std::chrono::system_clock::now();
  for (auto _ : state) {
    Headers h = sign(hr, c, p, now);
    benchmark::DoNotOptimize(h);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * hr.body.size()));
}
BENCHMARK(BM_SignReplaceRoute);

std::string route_tables_xml(int n) {
  std::string x =
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<DescribeRouteTablesResponse "
      "xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\">\n<requestId>6f570b0b-9c18-4b07-bdec-"
      "73740dcf861a</requestId>\n<routeTableSet>\n";
  for (int i = 0; i < n; ++i) {
    const std::string id = std::to_string(100000 + i);
    x += "<item><routeTableId>rtb-0a1b2c3d4e5" + id +
         "</routeTableId><vpcId>vpc-0123456789abcdef0"
         "</vpcId><ownerId>111122223333</ownerId><routeSet>"
         "<item><destinationCidrBlock>198.18.0.0/16</destinationCidrBlock><gatewayId>local"
         "</gatewayId><state>active</state><origin>CreateRouteTable</origin></item>"
         "<item><destinationCidrBlock>0.0.0.0/0</destinationCidrBlock><instanceId>i-0aaa1111bbbb" +
         id +
         "</instanceId><instanceOwnerId>111122223333</instanceOwnerId><networkInterfaceId>"
         "eni-0fff1111eeee" +
         id +
         "</networkInterfaceId><state>active</state><origin>CreateRoute"
         "</origin></item>"
         "<item><destinationCidrBlock>198.19.0.0/16</destinationCidrBlock><natGatewayId>"
         "nat-0abc1234def5" +
         id +
         "</natGatewayId><state>active</state><origin>CreateRoute"
         "</origin></item></routeSet><associationSet><item><routeTableAssociationId>"
         "rtbassoc-00112233445" +
         id + "</routeTableAssociationId><routeTableId>rtb-0a1b2c3d4e5" + id +
         "</routeTableId><subnetId>subnet-0aaa0000bbb" + id +
         "</subnetId><main>false</main>"
         "<associationState><state>associated</state></associationState></item></associationSet>"
         "<propagatingVgwSet/><tagSet><item><key>hanat:zone</key><value>eu-west-1a</value></item>"
         "<item><key>Name</key><value>private-" +
         id + "</value></item></tagSet></item>\n";
  }
  x += "</routeTableSet>\n</DescribeRouteTablesResponse>\n";
  return x;
}

void BM_ParseDescribeRouteTables200(benchmark::State& state) {
  const std::string xml = route_tables_xml(200);
  for (auto _ : state) {
    auto r = DescribeRouteTablesRequest::parse(xml);
    if (!r || r->route_tables.size() != 200) state.SkipWithError("parse failed");
    benchmark::DoNotOptimize(r);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * xml.size()));
  state.counters["reply_bytes"] = static_cast<double>(xml.size());
}
BENCHMARK(BM_ParseDescribeRouteTables200);

}  // namespace
}  // namespace hanat::ec2
