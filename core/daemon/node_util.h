// SPDX-License-Identifier: GPL-2.0-or-later
#pragma once
// DOC: core/daemon/node_util.h holds the few helpers that several of the node's files
// (see node.h) need: the clock, the error of an EC2 result, the translation between EC2
// routes and the engine's targets, and the member channels' socket addresses. Internal to
// core/daemon: only node*.cc include it.

#include <arpa/inet.h>
#include <netinet/in.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/engine/types.h"
#include "ec2/ec2.h"

namespace hanat::daemon::node_util {

using Clock = std::chrono::steady_clock;

inline engine::Time now() {
  return Clock::now();
}

// The IPv4 socket address of a host-order address and port: both ends of the member
// channels' connections (node_keep_send.cc, node_replicate.cc).
inline sockaddr_in sockaddr_of(std::uint32_t host_order, std::uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(host_order);
  a.sin_port = htons(port);
  return a;
}

// DescribeRouteTables by tag asks for pages of this many tables (EC2 accepts MaxResults 5 to
// 100, and refuses it together with RouteTableId, so explicit lists stay unpaged): hundreds
// of tables are then several small replies, each within the request timeout, instead of one
// large reply that must arrive whole within it.
inline constexpr int kRouteTablePage = 100;

// The error of a completed EC2 call, or nullptr when it succeeded (what count_call() takes).
template <class R>
const ec2::Ec2Error* err_of(const R& r) {
  return r ? nullptr : &r.error();
}

// Defined in node_routes.cc: EC2's route tables as the engine sees them.
// The value of tag `key`, or "" when the resource has no such tag.
std::string tag(const std::vector<ec2::Tag>& tags, std::string_view key);
// What a route points at: blackhole, ENI, instance, NAT gateway, or other.
engine::Target target_of(const ec2::Route& r);

// Defined in node_status.cc: a target as status and log lines show it ("missing",
// "blackhole", its id, or its kind when it has no id).
std::string target_text(const engine::Target& t);

// Defined in node_execute.cc: the engine's view of a finished EC2 write (throttled,
// retryable or fatal, with EC2's code), and its label for metrics: "ok", the EC2 error code,
// or the kind of failure when EC2 sent no code (timeout, transport, ...).
engine::Ec2Done done_of(engine::OpId op, engine::Epoch epoch, const ec2::Ec2Error* err);
std::string outcome_of(const ec2::Ec2Error* err);

}  // namespace hanat::daemon::node_util
