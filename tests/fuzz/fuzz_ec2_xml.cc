// SPDX-License-Identifier: GPL-2.0-or-later
// fuzz_ec2_xml: EC2 Query API replies. The first byte picks the parser (every typed reply
// parser in ec2/api.h, parse_error, and the raw XML tree builder); the rest is the body.
// Invariants: a typed parse succeeds only on well-formed XML whose root is
// <ActionResponse>; its failures are BadReply or Api errors; parse_error always yields an
// Api or Http error that keeps the HTTP status; the XML tree never holds text beside
// children and never exceeds the depth limit.
#include <array>
#include <functional>

#include "ec2/api.h"
#include "ec2/xml.h"
#include "tests/fuzz/fuzz_check.h"

namespace hanat::fuzz {
namespace {

using ec2::Ec2Error;
using ec2::ErrorKind;

void check_tree(const ec2::XmlNode& n, std::size_t depth) {
  FUZZ_CHECK(depth <= 64, "XML tree deeper than the parser's limit");
  FUZZ_CHECK(!n.name.empty(), "XML element without a name");
  FUZZ_CHECK(n.children.empty() || n.text.empty(),
             "element <" + n.name + "> has both children and text");
  for (const auto& c : n.children) check_tree(c, depth + 1);
}

template <class Req>
void typed(std::string_view body) {
  auto r = Req::parse(body);
  auto doc = ec2::parse_xml(body);
  if (r) {
    FUZZ_CHECK(doc.has_value(), std::string(Req::kAction) + " accepted malformed XML");
    FUZZ_CHECK(doc->name == std::string(Req::kAction) + "Response",
               std::string(Req::kAction) + " accepted root <" + doc->name + ">");
    return;
  }
  const Ec2Error& e = r.error();
  // An error document in a 2xx reply goes through parse_error(200, ...), which may find no
  // <Error> in it and report an Http error for status 200.
  FUZZ_CHECK(e.kind == ErrorKind::BadReply || e.kind == ErrorKind::Api ||
                 (e.kind == ErrorKind::Http && e.http_status == 200),
             "unexpected error kind " + std::string(ec2::to_string(e.kind)));
  if (!doc) FUZZ_CHECK(e.kind == ErrorKind::BadReply, "malformed XML not reported as BadReply");
  FUZZ_CHECK(!e.describe().empty(), "empty error description");
}

void error_doc(std::uint8_t selector, std::string_view body) {
  const long status = 400 + static_cast<long>(selector % 200);
  Ec2Error e = ec2::parse_error(status, body);
  FUZZ_CHECK(e.http_status == status, "parse_error lost the HTTP status");
  FUZZ_CHECK(e.kind == ErrorKind::Api || e.kind == ErrorKind::Http,
             "parse_error gave kind " + std::string(ec2::to_string(e.kind)));
  if (e.kind == ErrorKind::Http) {
    FUZZ_CHECK(e.code == "HTTP" + std::to_string(status), "Http error code is " + e.code);
    FUZZ_CHECK(e.message.find('\n') == std::string::npos, "Http error message spans lines");
  }
  (void)ec2::is_retryable(e);
  FUZZ_CHECK(!e.describe().empty(), "empty error description");
}

void tree(std::string_view body) {
  auto doc = ec2::parse_xml(body);
  if (doc) {
    check_tree(*doc, 1);
  } else {
    FUZZ_CHECK(!doc.error().empty(), "XML error without a message");
  }
}

using Parser = void (*)(std::string_view);
constexpr std::array<Parser, 20> kParsers{
    typed<ec2::DescribeInstancesRequest>,
    typed<ec2::DescribeInstanceStatusRequest>,
    typed<ec2::DescribeRouteTablesRequest>,
    typed<ec2::DescribeSubnetsRequest>,
    typed<ec2::DescribeNetworkInterfacesRequest>,
    typed<ec2::DescribeAddressesRequest>,
    typed<ec2::CreateRouteRequest>,
    typed<ec2::ReplaceRouteRequest>,
    typed<ec2::DeleteRouteRequest>,
    typed<ec2::AssociateAddressRequest>,
    typed<ec2::DisassociateAddressRequest>,
    typed<ec2::AttachNetworkInterfaceRequest>,
    typed<ec2::DetachNetworkInterfaceRequest>,
    typed<ec2::ModifyInstanceAttributeRequest>,
    typed<ec2::ModifyNetworkInterfaceAttributeRequest>,
    typed<ec2::RebootInstancesRequest>,
    typed<ec2::StopInstancesRequest>,
    typed<ec2::StartInstancesRequest>,
    typed<ec2::TerminateInstancesRequest>,
    tree,
};

}  // namespace

// Selector byte: 0..19 picks kParsers[n]; 20 and above (mod 21 == 20) is parse_error.
int ec2_xml(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::uint8_t selector = data[0];
  const std::string_view body = as_view(data + 1, size - 1);
  const std::size_t pick = selector % (kParsers.size() + 1);
  if (pick == kParsers.size()) {
    error_doc(selector, body);
  } else {
    kParsers[pick](body);
  }
  return 0;
}

}  // namespace hanat::fuzz

HANAT_FUZZ_ENTRY(ec2_xml)
