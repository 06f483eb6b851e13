// SPDX-License-Identifier: GPL-2.0-or-later
#pragma once
// The error value of every EC2 call: what EC2 said (code, message, request id) or what went
// wrong on the way (transport, timeout, unreadable reply, ...).

#include <string>
#include <string_view>

namespace hanat::ec2 {

enum class ErrorKind {
  Api,          // EC2 answered with an error document (code/message/request id)
  Http,         // non-2xx reply without an EC2 error document (e.g. an HTML 500 page)
  Transport,    // connection refused/reset, DNS, TLS, ... (curl error)
  Timeout,      // the attempt or the call's deadline ran out
  BadReply,     // 2xx reply that is not the expected XML
  Credentials,  // no usable credentials
  Cancelled,    // the client shut down while the call was pending
  Superseded,   // a newer write to the same resource replaced this one (not applied/retried)
};

[[nodiscard]] std::string_view to_string(ErrorKind k);

struct Ec2Error {
  ErrorKind kind = ErrorKind::Api;
  std::string code;        // EC2 error code, e.g. "InvalidRouteTableID.NotFound"
  std::string message;     // EC2's message or our description
  std::string request_id;  // EC2's RequestID when it sent one
  long http_status = 0;    // 0 when no HTTP reply arrived
  int attempts = 0;        // attempts made (filled in by the client)

  // One line for logs: `InvalidRouteTableID.NotFound: The routeTable ID 'rtb-1' does not
  // exist (HTTP 400, request 5f1...)`.
  [[nodiscard]] std::string describe() const;
};

// Throttling codes EC2 and the AWS SDKs treat as "slow down" (EC2 sends RequestLimitExceeded
// with HTTP 503; the others come from shared AWS front ends).
[[nodiscard]] bool is_throttling_code(std::string_view code);
// Whether retrying the same request may succeed: throttling, 5xx, transient server codes,
// transport failures and attempt timeouts. Client errors (4xx codes such as
// InvalidRouteTableID.NotFound or AuthFailure) are final.
[[nodiscard]] bool is_retryable(const Ec2Error& e);

}  // namespace hanat::ec2
