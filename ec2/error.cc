// SPDX-License-Identifier: GPL-2.0-or-later
#include "ec2/error.h"

#include <array>

namespace hanat::ec2 {

std::string_view to_string(ErrorKind k) {
  switch (k) {
    case ErrorKind::Api:
      return "api";
    case ErrorKind::Http:
      return "http";
    case ErrorKind::Transport:
      return "transport";
    case ErrorKind::Timeout:
      return "timeout";
    case ErrorKind::BadReply:
      return "bad-reply";
    case ErrorKind::Credentials:
      return "credentials";
    case ErrorKind::Cancelled:
      return "cancelled";
    case ErrorKind::Superseded:
      return "superseded";
  }
  return "unknown";
}

std::string Ec2Error::describe() const {
  std::string s = code.empty() ? std::string(to_string(kind)) : code;
  if (!message.empty()) s += ": " + message;
  std::string extra;
  if (http_status != 0) extra = "HTTP " + std::to_string(http_status);
  if (!request_id.empty())
    extra += (extra.empty() ? "" : ", ") + std::string("request ") + request_id;
  if (attempts > 1) extra += (extra.empty() ? "" : ", ") + std::to_string(attempts) + " attempts";
  if (!extra.empty()) s += " (" + extra + ")";
  return s;
}

bool is_throttling_code(std::string_view code) {
  // The list the AWS SDKs share (botocore's retry handlers, aws-sdk-cpp's CoreErrors).
  static constexpr std::array<std::string_view, 13> kCodes = {
      "RequestLimitExceeded",
      "Throttling",
      "ThrottlingException",
      "ThrottledException",
      "RequestThrottled",
      "RequestThrottledException",
      "TooManyRequestsException",
      "ProvisionedThroughputExceededException",
      "TransactionInProgressException",
      "BandwidthLimitExceeded",
      "SlowDown",
      "EC2ThrottledException",
      "PriorRequestNotComplete"};
  for (auto c : kCodes) {
    if (c == code) return true;
  }
  return false;
}

bool is_retryable(const Ec2Error& e) {
  switch (e.kind) {
    case ErrorKind::Transport:
      return e.code != "TlsVerification";
    case ErrorKind::Timeout:
      return true;
    case ErrorKind::Credentials:
    case ErrorKind::Cancelled:
    case ErrorKind::Superseded:
      return false;
    case ErrorKind::BadReply:
      // A 2xx reply we could not read (truncated body): the write may or may not have been
      // applied; repeating it is safe because our writes are idempotent.
      return true;
    case ErrorKind::Http:
      return e.http_status >= 500 || e.http_status == 429;
    case ErrorKind::Api:
      break;
  }
  if (is_throttling_code(e.code)) return true;
  static constexpr std::array<std::string_view, 7> kTransient = {
      "InternalError",  "InternalFailure",         "ServiceUnavailable",   "Unavailable",
      "RequestTimeout", "RequestTimeoutException", "IDPCommunicationError"};
  for (auto c : kTransient) {
    if (c == e.code) return true;
  }
  return e.http_status >= 500 && e.http_status != 501;
}

}  // namespace hanat::ec2
