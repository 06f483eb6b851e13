// SPDX-License-Identifier: GPL-2.0-or-later
#pragma once
// What every Query-API reply parser needs (EC2 and Auto Scaling speak the same protocol:
// <ActionResponse> on success, an error document otherwise). Defined in api.cc.

#include <string>
#include <string_view>

#include "core/base/result.h"
#include "ec2/error.h"
#include "ec2/xml.h"

namespace hanat::ec2 {

// A BadReply error: "<action> reply: <msg>".
[[nodiscard]] Ec2Error bad_reply(std::string_view action, std::string msg);

// Parses `xml` and checks that its root is <ActionResponse>. An error document in a 2xx reply
// becomes that error.
[[nodiscard]] core::Result<XmlNode, Ec2Error> parse_response(std::string_view action,
                                                             std::string_view xml);

}  // namespace hanat::ec2
