// SPDX-License-Identifier: GPL-2.0-or-later
#pragma once
// Typed EC2 calls: one request struct per action (its Query API parameters, its throttling
// bucket, the resource it writes) and one result struct parsed from the XML reply.
//
// Each request type R provides
//   static constexpr std::string_view kAction;      // EC2 action name
//   using Ok = ...;                                  // parsed success reply
//   Params params() const;                           // Query API parameters
//   Bucket bucket() const;                           // which EC2 throttling bucket it draws on
//   std::string write_key() const;                   // resource a mutating call writes ("" = none)
//   static core::Result<Ok, Ec2Error> parse(std::string_view xml);
// Describe requests also carry next_token/max_results and their Ok has next_token and
// append(), which the client uses to follow NextToken pagination.

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/base/result.h"
#include "ec2/error.h"
#include "ec2/form.h"

namespace hanat::ec2 {

// EC2 meters API calls in token buckets per account and region; these mirror its categories
// (https://docs.aws.amazon.com/ec2/latest/devguide/ec2-api-throttling.html).
enum class Bucket { Mutating, NonMutating, UnfilteredDescribe };

struct Tag {
  std::string key;
  std::string value;
  bool operator==(const Tag&) const = default;
};

// ---------------------------------------------------------------- replies

// Shared by actions whose reply carries only a request id (and sometimes <return>true</return>).
struct SimpleOk {
  std::string request_id;
};

struct InstanceNetworkInterface {
  std::string network_interface_id;
  std::string attachment_id;
  int device_index = -1;
  std::string private_ip;
  std::string mac;
};

struct Instance {
  std::string instance_id;
  std::string state;  // pending | running | shutting-down | terminated | stopping | stopped
  std::string instance_type;
  std::string availability_zone;
  std::string subnet_id;
  std::string vpc_id;
  std::string private_ip;
  std::string public_ip;
  std::string launch_time;
  std::optional<bool> source_dest_check;
  std::vector<InstanceNetworkInterface> network_interfaces;
  std::vector<Tag> tags;
};

struct DescribeInstancesOk {
  std::string request_id;
  std::vector<Instance> instances;  // flattened over reservations
  std::string next_token;
  void append(DescribeInstancesOk&& more);
};

struct InstanceStatus {
  std::string instance_id;
  std::string availability_zone;
  std::string state;            // instanceState/name
  std::string system_status;    // systemStatus/status: ok | impaired | initializing | ...
  std::string instance_status;  // instanceStatus/status
};

struct DescribeInstanceStatusOk {
  std::string request_id;
  std::vector<InstanceStatus> statuses;
  std::string next_token;
  void append(DescribeInstanceStatusOk&& more);
};

// One route as DescribeRouteTables returns it. Every target element of the EC2 API's Route
// type has its field: hanat must recognise each, since a route pointing anywhere but at its
// members, its fallback, a blackhole or nowhere is an operator's and never written.
struct Route {
  std::string destination_cidr;
  std::string gateway_id;  // igw-, vgw-, vpce- (gateway endpoints), or "local"
  std::string instance_id;
  std::string network_interface_id;
  std::string nat_gateway_id;
  std::string state;   // active | blackhole
  std::string origin;  // CreateRouteTable | CreateRoute | EnableVgwRoutePropagation
  std::string transit_gateway_id;
  std::string vpc_peering_connection_id;
  std::string egress_only_internet_gateway_id;
  std::string local_gateway_id;
  std::string carrier_gateway_id;
  std::string core_network_arn;
};

struct RouteTableAssociation {
  std::string association_id;
  std::string subnet_id;
  bool main = false;
};

struct RouteTable {
  std::string route_table_id;
  std::string vpc_id;
  std::vector<Route> routes;
  std::vector<RouteTableAssociation> associations;
  std::vector<Tag> tags;
  [[nodiscard]] const Route* route(std::string_view destination_cidr) const;
};

struct DescribeRouteTablesOk {
  std::string request_id;
  std::vector<RouteTable> route_tables;
  std::string next_token;
  void append(DescribeRouteTablesOk&& more);
};

struct Subnet {
  std::string subnet_id;
  std::string vpc_id;
  std::string cidr_block;
  std::string availability_zone;
  std::string state;
  std::vector<Tag> tags;
};

struct DescribeSubnetsOk {
  std::string request_id;
  std::vector<Subnet> subnets;
  std::string next_token;
  void append(DescribeSubnetsOk&& more);
};

struct NetworkInterface {
  std::string network_interface_id;
  std::string subnet_id;
  std::string vpc_id;
  std::string availability_zone;
  std::string mac;
  std::string status;  // available | in-use | attaching | detaching
  std::string private_ip;
  std::vector<std::string> private_ips;
  std::optional<bool> source_dest_check;
  std::string attachment_id;
  std::string attached_instance_id;
  int device_index = -1;
  std::string attachment_status;
  std::string public_ip;
  std::vector<Tag> tags;
};

struct DescribeNetworkInterfacesOk {
  std::string request_id;
  std::vector<NetworkInterface> network_interfaces;
  std::string next_token;
  void append(DescribeNetworkInterfacesOk&& more);
};

struct Address {
  std::string allocation_id;
  std::string public_ip;
  std::string association_id;
  std::string instance_id;
  std::string network_interface_id;
  std::string private_ip;
  std::string domain;
  std::vector<Tag> tags;
};

struct DescribeAddressesOk {
  std::string request_id;
  std::vector<Address> addresses;
  std::string next_token;
  void append(DescribeAddressesOk&& more);
};

struct AssociateAddressOk {
  std::string request_id;
  std::string association_id;
};

struct AssignPrivateIpAddressesOk {
  std::string request_id;
  // The addresses this call assigned (EC2). moto lists every private IP of the ENI here:
  // callers pick the one that was not there before.
  std::vector<std::string> assigned;
};

struct AttachNetworkInterfaceOk {
  std::string request_id;
  std::string attachment_id;
};

struct InstanceStateChange {
  std::string instance_id;
  std::string previous_state;
  std::string current_state;
};

struct InstanceStateChangesOk {
  std::string request_id;
  std::vector<InstanceStateChange> changes;
};

// ---------------------------------------------------------------- requests

// Common to the Describe* calls. Ids and filters are ANDed by EC2.
struct DescribeBase {
  std::vector<Filter> filters;
  std::string next_token;
  int max_results = 0;  // 0: not sent
 protected:
  [[nodiscard]] Bucket describe_bucket(bool has_ids) const;
  // MaxResults is left out when `has_ids`: EC2 refuses DescribeInstances and
  // DescribeInstanceStatus calls that combine it with instance ids.
  void add_common(Params& p, bool has_ids = false) const;
};

struct DescribeInstancesRequest : DescribeBase {
  static constexpr std::string_view kAction = "DescribeInstances";
  using Ok = DescribeInstancesOk;
  std::vector<std::string> instance_ids;
  [[nodiscard]] Params params() const;
  [[nodiscard]] Bucket bucket() const { return describe_bucket(!instance_ids.empty()); }
  [[nodiscard]] std::string write_key() const { return {}; }
  static core::Result<Ok, Ec2Error> parse(std::string_view xml);
};

struct DescribeInstanceStatusRequest : DescribeBase {
  static constexpr std::string_view kAction = "DescribeInstanceStatus";
  using Ok = DescribeInstanceStatusOk;
  std::vector<std::string> instance_ids;
  bool include_all_instances = true;  // also report stopped instances
  [[nodiscard]] Params params() const;
  [[nodiscard]] Bucket bucket() const { return describe_bucket(!instance_ids.empty()); }
  [[nodiscard]] std::string write_key() const { return {}; }
  static core::Result<Ok, Ec2Error> parse(std::string_view xml);
};

struct DescribeRouteTablesRequest : DescribeBase {
  static constexpr std::string_view kAction = "DescribeRouteTables";
  using Ok = DescribeRouteTablesOk;
  std::vector<std::string> route_table_ids;
  [[nodiscard]] Params params() const;
  [[nodiscard]] Bucket bucket() const { return describe_bucket(!route_table_ids.empty()); }
  [[nodiscard]] std::string write_key() const { return {}; }
  static core::Result<Ok, Ec2Error> parse(std::string_view xml);
};

struct DescribeSubnetsRequest : DescribeBase {
  static constexpr std::string_view kAction = "DescribeSubnets";
  using Ok = DescribeSubnetsOk;
  std::vector<std::string> subnet_ids;
  [[nodiscard]] Params params() const;
  [[nodiscard]] Bucket bucket() const { return describe_bucket(!subnet_ids.empty()); }
  [[nodiscard]] std::string write_key() const { return {}; }
  static core::Result<Ok, Ec2Error> parse(std::string_view xml);
};

struct DescribeNetworkInterfacesRequest : DescribeBase {
  static constexpr std::string_view kAction = "DescribeNetworkInterfaces";
  using Ok = DescribeNetworkInterfacesOk;
  std::vector<std::string> network_interface_ids;
  [[nodiscard]] Params params() const;
  [[nodiscard]] Bucket bucket() const { return describe_bucket(!network_interface_ids.empty()); }
  [[nodiscard]] std::string write_key() const { return {}; }
  static core::Result<Ok, Ec2Error> parse(std::string_view xml);
};

// DescribeAddresses has no MaxResults in EC2's API; NextToken is followed if a reply has one.
struct DescribeAddressesRequest : DescribeBase {
  static constexpr std::string_view kAction = "DescribeAddresses";
  using Ok = DescribeAddressesOk;
  std::vector<std::string> allocation_ids;
  std::vector<std::string> public_ips;
  [[nodiscard]] Params params() const;
  [[nodiscard]] Bucket bucket() const {
    return describe_bucket(!allocation_ids.empty() || !public_ips.empty());
  }
  [[nodiscard]] std::string write_key() const { return {}; }
  static core::Result<Ok, Ec2Error> parse(std::string_view xml);
};

struct RouteTarget {
  enum class Kind { NetworkInterface, Instance, NatGateway, Gateway };
  Kind kind = Kind::NetworkInterface;
  std::string id;
  static RouteTarget eni(std::string id) { return {Kind::NetworkInterface, std::move(id)}; }
  static RouteTarget instance(std::string id) { return {Kind::Instance, std::move(id)}; }
  static RouteTarget nat_gateway(std::string id) { return {Kind::NatGateway, std::move(id)}; }
  static RouteTarget gateway(std::string id) { return {Kind::Gateway, std::move(id)}; }
};

struct CreateRouteRequest {
  static constexpr std::string_view kAction = "CreateRoute";
  using Ok = SimpleOk;
  std::string route_table_id;
  std::string destination_cidr = "0.0.0.0/0";
  RouteTarget target;
  [[nodiscard]] Params params() const;
  [[nodiscard]] Bucket bucket() const { return Bucket::Mutating; }
  [[nodiscard]] std::string write_key() const;
  static core::Result<Ok, Ec2Error> parse(std::string_view xml);
};

// Idempotent: replacing a route with the target it already has succeeds and changes nothing.
struct ReplaceRouteRequest {
  static constexpr std::string_view kAction = "ReplaceRoute";
  using Ok = SimpleOk;
  std::string route_table_id;
  std::string destination_cidr = "0.0.0.0/0";
  RouteTarget target;
  [[nodiscard]] Params params() const;
  [[nodiscard]] Bucket bucket() const { return Bucket::Mutating; }
  [[nodiscard]] std::string write_key() const;
  static core::Result<Ok, Ec2Error> parse(std::string_view xml);
};

struct DeleteRouteRequest {
  static constexpr std::string_view kAction = "DeleteRoute";
  using Ok = SimpleOk;
  std::string route_table_id;
  std::string destination_cidr = "0.0.0.0/0";
  [[nodiscard]] Params params() const;
  [[nodiscard]] Bucket bucket() const { return Bucket::Mutating; }
  [[nodiscard]] std::string write_key() const;
  static core::Result<Ok, Ec2Error> parse(std::string_view xml);
};

struct AssociateAddressRequest {
  static constexpr std::string_view kAction = "AssociateAddress";
  using Ok = AssociateAddressOk;
  std::string allocation_id;
  std::string instance_id;           // either this ...
  std::string network_interface_id;  // ... or this
  std::string private_ip;            // optional
  bool allow_reassociation = true;
  [[nodiscard]] Params params() const;
  [[nodiscard]] Bucket bucket() const { return Bucket::Mutating; }
  [[nodiscard]] std::string write_key() const { return "eip:" + allocation_id; }
  static core::Result<Ok, Ec2Error> parse(std::string_view xml);
};

struct DisassociateAddressRequest {
  static constexpr std::string_view kAction = "DisassociateAddress";
  using Ok = SimpleOk;
  std::string association_id;
  std::string allocation_id;  // optional: only used to order it with AssociateAddress
  [[nodiscard]] Params params() const;
  [[nodiscard]] Bucket bucket() const { return Bucket::Mutating; }
  [[nodiscard]] std::string write_key() const {
    return allocation_id.empty() ? "eipassoc:" + association_id : "eip:" + allocation_id;
  }
  static core::Result<Ok, Ec2Error> parse(std::string_view xml);
};

// One more secondary private IP on an ENI, chosen by EC2 from the ENI's subnet
// (SecondaryPrivateIpAddressCount=1), for an Elastic IP of another zone to map to.
struct AssignPrivateIpAddressesRequest {
  static constexpr std::string_view kAction = "AssignPrivateIpAddresses";
  using Ok = AssignPrivateIpAddressesOk;
  std::string network_interface_id;
  int secondary_count = 1;
  [[nodiscard]] Params params() const;
  [[nodiscard]] Bucket bucket() const { return Bucket::Mutating; }
  [[nodiscard]] std::string write_key() const { return "eni-ips:" + network_interface_id; }
  static core::Result<Ok, Ec2Error> parse(std::string_view xml);
};

// Gives secondary private IPs back. An Elastic IP still associated with one of them is
// disassociated by EC2 (EC2 API reference, UnassignPrivateIpAddresses).
struct UnassignPrivateIpAddressesRequest {
  static constexpr std::string_view kAction = "UnassignPrivateIpAddresses";
  using Ok = SimpleOk;
  std::string network_interface_id;
  std::vector<std::string> private_ips;
  [[nodiscard]] Params params() const;
  [[nodiscard]] Bucket bucket() const { return Bucket::Mutating; }
  [[nodiscard]] std::string write_key() const { return "eni-ips:" + network_interface_id; }
  static core::Result<Ok, Ec2Error> parse(std::string_view xml);
};

struct AttachNetworkInterfaceRequest {
  static constexpr std::string_view kAction = "AttachNetworkInterface";
  using Ok = AttachNetworkInterfaceOk;
  std::string network_interface_id;
  std::string instance_id;
  int device_index = 1;
  [[nodiscard]] Params params() const;
  [[nodiscard]] Bucket bucket() const { return Bucket::Mutating; }
  [[nodiscard]] std::string write_key() const { return "eni:" + network_interface_id; }
  static core::Result<Ok, Ec2Error> parse(std::string_view xml);
};

struct DetachNetworkInterfaceRequest {
  static constexpr std::string_view kAction = "DetachNetworkInterface";
  using Ok = SimpleOk;
  std::string attachment_id;
  bool force = false;
  std::string network_interface_id;  // optional: orders it with AttachNetworkInterface
  [[nodiscard]] Params params() const;
  [[nodiscard]] Bucket bucket() const { return Bucket::Mutating; }
  [[nodiscard]] std::string write_key() const {
    return network_interface_id.empty() ? "eniattach:" + attachment_id
                                        : "eni:" + network_interface_id;
  }
  static core::Result<Ok, Ec2Error> parse(std::string_view xml);
};

struct ModifyInstanceAttributeRequest {
  static constexpr std::string_view kAction = "ModifyInstanceAttribute";
  using Ok = SimpleOk;
  std::string instance_id;
  bool source_dest_check = false;
  [[nodiscard]] Params params() const;
  [[nodiscard]] Bucket bucket() const { return Bucket::Mutating; }
  [[nodiscard]] std::string write_key() const { return "sdc:" + instance_id; }
  static core::Result<Ok, Ec2Error> parse(std::string_view xml);
};

struct ModifyNetworkInterfaceAttributeRequest {
  static constexpr std::string_view kAction = "ModifyNetworkInterfaceAttribute";
  using Ok = SimpleOk;
  std::string network_interface_id;
  bool source_dest_check = false;
  [[nodiscard]] Params params() const;
  [[nodiscard]] Bucket bucket() const { return Bucket::Mutating; }
  [[nodiscard]] std::string write_key() const { return "sdc:" + network_interface_id; }
  static core::Result<Ok, Ec2Error> parse(std::string_view xml);
};

struct RebootInstancesRequest {
  static constexpr std::string_view kAction = "RebootInstances";
  using Ok = SimpleOk;
  std::vector<std::string> instance_ids;
  [[nodiscard]] Params params() const;
  [[nodiscard]] Bucket bucket() const { return Bucket::Mutating; }
  [[nodiscard]] std::string write_key() const;
  static core::Result<Ok, Ec2Error> parse(std::string_view xml);
};

struct StopInstancesRequest {
  static constexpr std::string_view kAction = "StopInstances";
  using Ok = InstanceStateChangesOk;
  std::vector<std::string> instance_ids;
  bool force = false;
  [[nodiscard]] Params params() const;
  [[nodiscard]] Bucket bucket() const { return Bucket::Mutating; }
  [[nodiscard]] std::string write_key() const;
  static core::Result<Ok, Ec2Error> parse(std::string_view xml);
};

struct StartInstancesRequest {
  static constexpr std::string_view kAction = "StartInstances";
  using Ok = InstanceStateChangesOk;
  std::vector<std::string> instance_ids;
  [[nodiscard]] Params params() const;
  [[nodiscard]] Bucket bucket() const { return Bucket::Mutating; }
  [[nodiscard]] std::string write_key() const;
  static core::Result<Ok, Ec2Error> parse(std::string_view xml);
};

struct TerminateInstancesRequest {
  static constexpr std::string_view kAction = "TerminateInstances";
  using Ok = InstanceStateChangesOk;
  std::vector<std::string> instance_ids;
  [[nodiscard]] Params params() const;
  [[nodiscard]] Bucket bucket() const { return Bucket::Mutating; }
  [[nodiscard]] std::string write_key() const;
  static core::Result<Ok, Ec2Error> parse(std::string_view xml);
};

// Every EC2 action the client can call, for the least-privilege IAM policy check.
[[nodiscard]] inline const std::vector<std::string_view>& all_actions() {
  static const std::vector<std::string_view> kActions = {
      DescribeInstancesRequest::kAction,
      DescribeInstanceStatusRequest::kAction,
      DescribeRouteTablesRequest::kAction,
      DescribeSubnetsRequest::kAction,
      DescribeNetworkInterfacesRequest::kAction,
      DescribeAddressesRequest::kAction,
      CreateRouteRequest::kAction,
      ReplaceRouteRequest::kAction,
      DeleteRouteRequest::kAction,
      AssociateAddressRequest::kAction,
      DisassociateAddressRequest::kAction,
      AssignPrivateIpAddressesRequest::kAction,
      UnassignPrivateIpAddressesRequest::kAction,
      AttachNetworkInterfaceRequest::kAction,
      DetachNetworkInterfaceRequest::kAction,
      ModifyInstanceAttributeRequest::kAction,
      ModifyNetworkInterfaceAttributeRequest::kAction,
      RebootInstancesRequest::kAction,
      StopInstancesRequest::kAction,
      StartInstancesRequest::kAction,
      TerminateInstancesRequest::kAction,
  };
  return kActions;
}

// Turns a non-2xx reply into an error value: EC2's <Response><Errors><Error> and the
// <ErrorResponse> shape are both read; anything else becomes ErrorKind::Http.
[[nodiscard]] Ec2Error parse_error(long http_status, std::string_view body);

}  // namespace hanat::ec2
