// SPDX-License-Identifier: GPL-2.0-or-later
#include "ec2/api.h"

#include <charconv>

#include "ec2/reply.h"
#include "ec2/xml.h"

namespace hanat::ec2 {

using core::Result;
using core::Unexpected;

Ec2Error bad_reply(std::string_view action, std::string msg) {
  Ec2Error e;
  e.kind = ErrorKind::BadReply;
  e.message = std::string(action) + " reply: " + std::move(msg);
  return e;
}

Result<XmlNode, Ec2Error> parse_response(std::string_view action, std::string_view xml) {
  auto doc = parse_xml(xml);
  if (!doc) return Unexpected(bad_reply(action, doc.error()));
  const std::string expected = std::string(action) + "Response";
  if (doc->name != expected) {
    if (doc->find("Code") != nullptr) return Unexpected(parse_error(200, xml));
    return Unexpected(
        bad_reply(action, "root element is <" + doc->name + ">, expected <" + expected + ">"));
  }
  return std::move(doc).value();
}

namespace {

std::optional<bool> parse_bool(const XmlNode& n, std::string_view name) {
  const XmlNode* c = n.child(name);
  if (c == nullptr) return std::nullopt;
  if (c->text == "true") return true;
  if (c->text == "false") return false;
  return std::nullopt;
}

int parse_int(const std::string& s, int def) {
  int v = def;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size()) return def;
  return v;
}

std::vector<Tag> parse_tags(const XmlNode& n) {
  std::vector<Tag> tags;
  for (const XmlNode* t : n.items("tagSet"))
    tags.push_back({t->text_of("key"), t->text_of("value")});
  return tags;
}

const std::string& nested(const XmlNode& n, std::string_view a, std::string_view b) {
  static const std::string kEmpty;
  const XmlNode* c = n.child(a);
  return c != nullptr ? c->text_of(b) : kEmpty;
}

template <class Ok>
Result<Ok, Ec2Error> simple(std::string_view action, std::string_view xml) {
  auto root = parse_response(action, xml);
  if (!root) return Unexpected(std::move(root).error());
  Ok ok;
  ok.request_id = root->text_of("requestId");
  return ok;
}

template <class T>
void move_append(std::vector<T>& to, std::vector<T>&& from) {
  to.insert(to.end(), std::make_move_iterator(from.begin()), std::make_move_iterator(from.end()));
}

std::string join_ids(const std::vector<std::string>& ids) {
  std::string s;
  for (const auto& id : ids) s += (s.empty() ? "" : ",") + id;
  return s;
}

void add_target(Params& p, const RouteTarget& t) {
  switch (t.kind) {
    case RouteTarget::Kind::NetworkInterface:
      p.add("NetworkInterfaceId", t.id);
      break;
    case RouteTarget::Kind::Instance:
      p.add("InstanceId", t.id);
      break;
    case RouteTarget::Kind::NatGateway:
      p.add("NatGatewayId", t.id);
      break;
    case RouteTarget::Kind::Gateway:
      p.add("GatewayId", t.id);
      break;
  }
}

Result<InstanceStateChangesOk, Ec2Error> parse_state_changes(std::string_view action,
                                                             std::string_view xml) {
  auto root = parse_response(action, xml);
  if (!root) return Unexpected(std::move(root).error());
  InstanceStateChangesOk ok;
  ok.request_id = root->text_of("requestId");
  for (const XmlNode* i : root->items("instancesSet")) {
    ok.changes.push_back({i->text_of("instanceId"), nested(*i, "previousState", "name"),
                          nested(*i, "currentState", "name")});
  }
  return ok;
}

}  // namespace

// ---------------------------------------------------------------- errors

Ec2Error parse_error(long http_status, std::string_view body) {
  Ec2Error e;
  e.http_status = http_status;
  auto doc = parse_xml(body);
  const XmlNode* error = nullptr;
  if (doc) {
    // <Response><Errors><Error>... (EC2) and <ErrorResponse>[<Errors>]<Error>... (IAM/STS
    // style, which moto also uses for auth failures): take the first <Error> with a <Code>.
    const XmlNode* errors = doc->find("Errors");
    const XmlNode* scope = errors != nullptr ? errors : &doc.value();
    for (const auto& c : scope->children) {
      if (c.name == "Error" && c.child("Code") != nullptr) {
        error = &c;
        break;
      }
    }
    if (error == nullptr) {
      const XmlNode* code = doc->find("Code");
      if (code != nullptr && doc->find("Error") != nullptr) error = doc->find("Error");
    }
  }
  if (error == nullptr) {
    e.kind = ErrorKind::Http;
    e.code = "HTTP" + std::to_string(http_status);
    std::string snippet(body.substr(0, 120));
    for (auto& ch : snippet) {
      if (ch == '\n' || ch == '\r') ch = ' ';
    }
    e.message = body.empty() ? "empty reply" : "reply is not an EC2 error document: " + snippet;
    return e;
  }
  e.kind = ErrorKind::Api;
  e.code = error->text_of("Code");
  e.message = error->text_of("Message");
  for (std::string_view id_name : {"RequestID", "RequestId", "requestId"}) {
    if (const XmlNode* id = doc->find(id_name); id != nullptr && !id->text.empty()) {
      e.request_id = id->text;
      break;
    }
  }
  return e;
}

// ---------------------------------------------------------------- describe

Bucket DescribeBase::describe_bucket(bool has_ids) const {
  // EC2 charges Describe calls with neither filters nor ids nor pagination to the smaller
  // "unfiltered and unpaginated" bucket.
  if (filters.empty() && !has_ids && max_results == 0) return Bucket::UnfilteredDescribe;
  return Bucket::NonMutating;
}

void DescribeBase::add_common(Params& p, bool has_ids) const {
  p.add_filters(filters);
  if (max_results > 0 && !has_ids) p.add("MaxResults", std::to_string(max_results));
  if (!next_token.empty()) p.add("NextToken", next_token);
}

Params DescribeInstancesRequest::params() const {
  Params p(kAction);
  p.add_list("InstanceId", instance_ids);
  add_common(p, !instance_ids.empty());
  return p;
}

Result<DescribeInstancesOk, Ec2Error> DescribeInstancesRequest::parse(std::string_view xml) {
  auto root = parse_response(kAction, xml);
  if (!root) return Unexpected(std::move(root).error());
  DescribeInstancesOk ok;
  ok.request_id = root->text_of("requestId");
  ok.next_token = root->text_of("nextToken");
  for (const XmlNode* r : root->items("reservationSet")) {
    for (const XmlNode* i : r->items("instancesSet")) {
      Instance in;
      in.instance_id = i->text_of("instanceId");
      in.state = nested(*i, "instanceState", "name");
      in.instance_type = i->text_of("instanceType");
      in.availability_zone = nested(*i, "placement", "availabilityZone");
      in.subnet_id = i->text_of("subnetId");
      in.vpc_id = i->text_of("vpcId");
      in.private_ip = i->text_of("privateIpAddress");
      in.public_ip = i->text_of("ipAddress");
      in.launch_time = i->text_of("launchTime");
      in.source_dest_check = parse_bool(*i, "sourceDestCheck");
      for (const XmlNode* n : i->items("networkInterfaceSet")) {
        InstanceNetworkInterface ni;
        ni.network_interface_id = n->text_of("networkInterfaceId");
        ni.attachment_id = nested(*n, "attachment", "attachmentId");
        ni.device_index = parse_int(nested(*n, "attachment", "deviceIndex"), -1);
        ni.private_ip = n->text_of("privateIpAddress");
        ni.mac = n->text_of("macAddress");
        in.network_interfaces.push_back(std::move(ni));
      }
      in.tags = parse_tags(*i);
      ok.instances.push_back(std::move(in));
    }
  }
  return ok;
}

void DescribeInstancesOk::append(DescribeInstancesOk&& more) {
  move_append(instances, std::move(more.instances));
  next_token = std::move(more.next_token);
}

Params DescribeInstanceStatusRequest::params() const {
  Params p(kAction);
  p.add_list("InstanceId", instance_ids);
  if (include_all_instances) p.add("IncludeAllInstances", "true");
  add_common(p, !instance_ids.empty());
  return p;
}

Result<DescribeInstanceStatusOk, Ec2Error> DescribeInstanceStatusRequest::parse(
    std::string_view xml) {
  auto root = parse_response(kAction, xml);
  if (!root) return Unexpected(std::move(root).error());
  DescribeInstanceStatusOk ok;
  ok.request_id = root->text_of("requestId");
  ok.next_token = root->text_of("nextToken");
  for (const XmlNode* i : root->items("instanceStatusSet")) {
    ok.statuses.push_back({i->text_of("instanceId"), i->text_of("availabilityZone"),
                           nested(*i, "instanceState", "name"),
                           nested(*i, "systemStatus", "status"),
                           nested(*i, "instanceStatus", "status")});
  }
  return ok;
}

void DescribeInstanceStatusOk::append(DescribeInstanceStatusOk&& more) {
  move_append(statuses, std::move(more.statuses));
  next_token = std::move(more.next_token);
}

const Route* RouteTable::route(std::string_view destination_cidr) const {
  for (const auto& r : routes) {
    if (r.destination_cidr == destination_cidr) return &r;
  }
  return nullptr;
}

Params DescribeRouteTablesRequest::params() const {
  Params p(kAction);
  p.add_list("RouteTableId", route_table_ids);
  add_common(p);
  return p;
}

Result<DescribeRouteTablesOk, Ec2Error> DescribeRouteTablesRequest::parse(std::string_view xml) {
  auto root = parse_response(kAction, xml);
  if (!root) return Unexpected(std::move(root).error());
  DescribeRouteTablesOk ok;
  ok.request_id = root->text_of("requestId");
  ok.next_token = root->text_of("nextToken");
  for (const XmlNode* t : root->items("routeTableSet")) {
    RouteTable rt;
    rt.route_table_id = t->text_of("routeTableId");
    rt.vpc_id = t->text_of("vpcId");
    for (const XmlNode* r : t->items("routeSet")) {
      Route route;
      route.destination_cidr = r->text_of("destinationCidrBlock");
      route.gateway_id = r->text_of("gatewayId");
      route.instance_id = r->text_of("instanceId");
      route.network_interface_id = r->text_of("networkInterfaceId");
      route.nat_gateway_id = r->text_of("natGatewayId");
      route.state = r->text_of("state");
      route.origin = r->text_of("origin");
      route.transit_gateway_id = r->text_of("transitGatewayId");
      route.vpc_peering_connection_id = r->text_of("vpcPeeringConnectionId");
      route.egress_only_internet_gateway_id = r->text_of("egressOnlyInternetGatewayId");
      route.local_gateway_id = r->text_of("localGatewayId");
      route.carrier_gateway_id = r->text_of("carrierGatewayId");
      route.core_network_arn = r->text_of("coreNetworkArn");
      rt.routes.push_back(std::move(route));
    }
    for (const XmlNode* a : t->items("associationSet")) {
      rt.associations.push_back({a->text_of("routeTableAssociationId"), a->text_of("subnetId"),
                                 parse_bool(*a, "main").value_or(false)});
    }
    rt.tags = parse_tags(*t);
    ok.route_tables.push_back(std::move(rt));
  }
  return ok;
}

void DescribeRouteTablesOk::append(DescribeRouteTablesOk&& more) {
  move_append(route_tables, std::move(more.route_tables));
  next_token = std::move(more.next_token);
}

Params DescribeSubnetsRequest::params() const {
  Params p(kAction);
  p.add_list("SubnetId", subnet_ids);
  add_common(p);
  return p;
}

Result<DescribeSubnetsOk, Ec2Error> DescribeSubnetsRequest::parse(std::string_view xml) {
  auto root = parse_response(kAction, xml);
  if (!root) return Unexpected(std::move(root).error());
  DescribeSubnetsOk ok;
  ok.request_id = root->text_of("requestId");
  ok.next_token = root->text_of("nextToken");
  for (const XmlNode* s : root->items("subnetSet")) {
    ok.subnets.push_back({s->text_of("subnetId"), s->text_of("vpcId"), s->text_of("cidrBlock"),
                          s->text_of("availabilityZone"), s->text_of("state"), parse_tags(*s)});
  }
  return ok;
}

void DescribeSubnetsOk::append(DescribeSubnetsOk&& more) {
  move_append(subnets, std::move(more.subnets));
  next_token = std::move(more.next_token);
}

Params DescribeNetworkInterfacesRequest::params() const {
  Params p(kAction);
  p.add_list("NetworkInterfaceId", network_interface_ids);
  add_common(p);
  return p;
}

Result<DescribeNetworkInterfacesOk, Ec2Error> DescribeNetworkInterfacesRequest::parse(
    std::string_view xml) {
  auto root = parse_response(kAction, xml);
  if (!root) return Unexpected(std::move(root).error());
  DescribeNetworkInterfacesOk ok;
  ok.request_id = root->text_of("requestId");
  ok.next_token = root->text_of("nextToken");
  for (const XmlNode* n : root->items("networkInterfaceSet")) {
    NetworkInterface ni;
    ni.network_interface_id = n->text_of("networkInterfaceId");
    ni.subnet_id = n->text_of("subnetId");
    ni.vpc_id = n->text_of("vpcId");
    ni.availability_zone = n->text_of("availabilityZone");
    ni.mac = n->text_of("macAddress");
    ni.status = n->text_of("status");
    ni.private_ip = n->text_of("privateIpAddress");
    for (const XmlNode* ip : n->items("privateIpAddressesSet")) {
      ni.private_ips.push_back(ip->text_of("privateIpAddress"));
    }
    ni.source_dest_check = parse_bool(*n, "sourceDestCheck");
    if (const XmlNode* a = n->child("attachment")) {
      ni.attachment_id = a->text_of("attachmentId");
      ni.attached_instance_id = a->text_of("instanceId");
      ni.device_index = parse_int(a->text_of("deviceIndex"), -1);
      ni.attachment_status = a->text_of("status");
    }
    ni.public_ip = nested(*n, "association", "publicIp");
    ni.tags = parse_tags(*n);
    ok.network_interfaces.push_back(std::move(ni));
  }
  return ok;
}

void DescribeNetworkInterfacesOk::append(DescribeNetworkInterfacesOk&& more) {
  move_append(network_interfaces, std::move(more.network_interfaces));
  next_token = std::move(more.next_token);
}

Params DescribeAddressesRequest::params() const {
  Params p(kAction);
  p.add_list("AllocationId", allocation_ids);
  p.add_list("PublicIp", public_ips);
  p.add_filters(filters);
  if (!next_token.empty()) p.add("NextToken", next_token);
  return p;
}

Result<DescribeAddressesOk, Ec2Error> DescribeAddressesRequest::parse(std::string_view xml) {
  auto root = parse_response(kAction, xml);
  if (!root) return Unexpected(std::move(root).error());
  DescribeAddressesOk ok;
  ok.request_id = root->text_of("requestId");
  ok.next_token = root->text_of("nextToken");
  for (const XmlNode* a : root->items("addressesSet")) {
    ok.addresses.push_back({a->text_of("allocationId"), a->text_of("publicIp"),
                            a->text_of("associationId"), a->text_of("instanceId"),
                            a->text_of("networkInterfaceId"), a->text_of("privateIpAddress"),
                            a->text_of("domain"), parse_tags(*a)});
  }
  return ok;
}

void DescribeAddressesOk::append(DescribeAddressesOk&& more) {
  move_append(addresses, std::move(more.addresses));
  next_token = std::move(more.next_token);
}

// ---------------------------------------------------------------- writes

Params CreateRouteRequest::params() const {
  Params p(kAction);
  p.add("RouteTableId", route_table_id);
  p.add("DestinationCidrBlock", destination_cidr);
  add_target(p, target);
  return p;
}
std::string CreateRouteRequest::write_key() const {
  return "route:" + route_table_id + "|" + destination_cidr;
}
Result<SimpleOk, Ec2Error> CreateRouteRequest::parse(std::string_view xml) {
  return simple<SimpleOk>(kAction, xml);
}

Params ReplaceRouteRequest::params() const {
  Params p(kAction);
  p.add("RouteTableId", route_table_id);
  p.add("DestinationCidrBlock", destination_cidr);
  add_target(p, target);
  return p;
}
std::string ReplaceRouteRequest::write_key() const {
  return "route:" + route_table_id + "|" + destination_cidr;
}
Result<SimpleOk, Ec2Error> ReplaceRouteRequest::parse(std::string_view xml) {
  return simple<SimpleOk>(kAction, xml);
}

Params DeleteRouteRequest::params() const {
  Params p(kAction);
  p.add("RouteTableId", route_table_id);
  p.add("DestinationCidrBlock", destination_cidr);
  return p;
}
std::string DeleteRouteRequest::write_key() const {
  return "route:" + route_table_id + "|" + destination_cidr;
}
Result<SimpleOk, Ec2Error> DeleteRouteRequest::parse(std::string_view xml) {
  return simple<SimpleOk>(kAction, xml);
}

Params AssociateAddressRequest::params() const {
  Params p(kAction);
  p.add("AllocationId", allocation_id);
  if (!instance_id.empty()) p.add("InstanceId", instance_id);
  if (!network_interface_id.empty()) p.add("NetworkInterfaceId", network_interface_id);
  if (!private_ip.empty()) p.add("PrivateIpAddress", private_ip);
  if (allow_reassociation) p.add("AllowReassociation", "true");
  return p;
}
Result<AssociateAddressOk, Ec2Error> AssociateAddressRequest::parse(std::string_view xml) {
  auto root = parse_response(kAction, xml);
  if (!root) return Unexpected(std::move(root).error());
  return AssociateAddressOk{root->text_of("requestId"), root->text_of("associationId")};
}

Params DisassociateAddressRequest::params() const {
  Params p(kAction);
  p.add("AssociationId", association_id);
  return p;
}
Result<SimpleOk, Ec2Error> DisassociateAddressRequest::parse(std::string_view xml) {
  return simple<SimpleOk>(kAction, xml);
}

Params AssignPrivateIpAddressesRequest::params() const {
  Params p(kAction);
  p.add("NetworkInterfaceId", network_interface_id);
  p.add("SecondaryPrivateIpAddressCount", std::to_string(secondary_count));
  return p;
}
Result<AssignPrivateIpAddressesOk, Ec2Error> AssignPrivateIpAddressesRequest::parse(
    std::string_view xml) {
  auto root = parse_response(kAction, xml);
  if (!root) return Unexpected(std::move(root).error());
  AssignPrivateIpAddressesOk ok;
  ok.request_id = root->text_of("requestId");
  for (const XmlNode* ip : root->items("assignedPrivateIpAddressesSet")) {
    ok.assigned.push_back(ip->text_of("privateIpAddress"));
  }
  return ok;
}

Params UnassignPrivateIpAddressesRequest::params() const {
  Params p(kAction);
  p.add("NetworkInterfaceId", network_interface_id);
  p.add_list("PrivateIpAddress", private_ips);
  return p;
}
Result<SimpleOk, Ec2Error> UnassignPrivateIpAddressesRequest::parse(std::string_view xml) {
  return simple<SimpleOk>(kAction, xml);
}

Params AttachNetworkInterfaceRequest::params() const {
  Params p(kAction);
  p.add("NetworkInterfaceId", network_interface_id);
  p.add("InstanceId", instance_id);
  p.add("DeviceIndex", std::to_string(device_index));
  return p;
}
Result<AttachNetworkInterfaceOk, Ec2Error> AttachNetworkInterfaceRequest::parse(
    std::string_view xml) {
  auto root = parse_response(kAction, xml);
  if (!root) return Unexpected(std::move(root).error());
  return AttachNetworkInterfaceOk{root->text_of("requestId"), root->text_of("attachmentId")};
}

Params DetachNetworkInterfaceRequest::params() const {
  Params p(kAction);
  p.add("AttachmentId", attachment_id);
  if (force) p.add("Force", "true");
  return p;
}
Result<SimpleOk, Ec2Error> DetachNetworkInterfaceRequest::parse(std::string_view xml) {
  return simple<SimpleOk>(kAction, xml);
}

Params ModifyInstanceAttributeRequest::params() const {
  Params p(kAction);
  p.add("InstanceId", instance_id);
  p.add("SourceDestCheck.Value", source_dest_check ? "true" : "false");
  return p;
}
Result<SimpleOk, Ec2Error> ModifyInstanceAttributeRequest::parse(std::string_view xml) {
  return simple<SimpleOk>(kAction, xml);
}

Params ModifyNetworkInterfaceAttributeRequest::params() const {
  Params p(kAction);
  p.add("NetworkInterfaceId", network_interface_id);
  p.add("SourceDestCheck.Value", source_dest_check ? "true" : "false");
  return p;
}
Result<SimpleOk, Ec2Error> ModifyNetworkInterfaceAttributeRequest::parse(std::string_view xml) {
  return simple<SimpleOk>(kAction, xml);
}

Params RebootInstancesRequest::params() const {
  Params p(kAction);
  p.add_list("InstanceId", instance_ids);
  return p;
}
std::string RebootInstancesRequest::write_key() const {
  return "instance:" + join_ids(instance_ids);
}
Result<SimpleOk, Ec2Error> RebootInstancesRequest::parse(std::string_view xml) {
  return simple<SimpleOk>(kAction, xml);
}

Params StopInstancesRequest::params() const {
  Params p(kAction);
  p.add_list("InstanceId", instance_ids);
  if (force) p.add("Force", "true");
  return p;
}
std::string StopInstancesRequest::write_key() const {
  return "instance:" + join_ids(instance_ids);
}
Result<InstanceStateChangesOk, Ec2Error> StopInstancesRequest::parse(std::string_view xml) {
  return parse_state_changes(kAction, xml);
}

Params StartInstancesRequest::params() const {
  Params p(kAction);
  p.add_list("InstanceId", instance_ids);
  return p;
}
std::string StartInstancesRequest::write_key() const {
  return "instance:" + join_ids(instance_ids);
}
Result<InstanceStateChangesOk, Ec2Error> StartInstancesRequest::parse(std::string_view xml) {
  return parse_state_changes(kAction, xml);
}

Params TerminateInstancesRequest::params() const {
  Params p(kAction);
  p.add_list("InstanceId", instance_ids);
  return p;
}
std::string TerminateInstancesRequest::write_key() const {
  return "instance:" + join_ids(instance_ids);
}
Result<InstanceStateChangesOk, Ec2Error> TerminateInstancesRequest::parse(std::string_view xml) {
  return parse_state_changes(kAction, xml);
}

}  // namespace hanat::ec2
