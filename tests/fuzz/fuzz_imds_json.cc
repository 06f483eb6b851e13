// SPDX-License-Identifier: GPL-2.0-or-later
// fuzz_imds_json: the JSON IMDS serves for instance-role credentials
// (iam/security-credentials/<role>) and its ISO 8601 Expiration timestamps.
// Invariants: accepted credentials have all three secrets and an expiration; a parsed
// timestamp printed back in the same format parses to the same instant.
#include <time.h>

#include <cstdio>

#include "ec2/imds.h"
#include "tests/fuzz/fuzz_check.h"

namespace hanat::fuzz {
namespace {

void timestamp(std::string_view s) {
  auto t = ec2::parse_iso8601(s);
  if (!t) return;
  const std::time_t secs = std::chrono::system_clock::to_time_t(*t);
  std::tm tm{};
  FUZZ_CHECK(gmtime_r(&secs, &tm) != nullptr, "parsed time has no calendar date");
  if (tm.tm_year + 1900 < 0 || tm.tm_year + 1900 > 9999) return;  // not printable as %Y
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
  auto again = ec2::parse_iso8601(buf);
  FUZZ_CHECK(again.has_value(), "'" + std::string(buf) + "' printed from a parsed time is refused");
  // Fractional seconds are skipped by the parser, so whole seconds must agree.
  FUZZ_CHECK(std::chrono::system_clock::to_time_t(*again) == secs,
             "'" + std::string(s) + "' and '" + std::string(buf) + "' differ");
}

}  // namespace

int imds_json(const std::uint8_t* data, std::size_t size) {
  const std::string_view text = as_view(data, size);
  auto c = ec2::parse_role_credentials(text);
  if (c) {
    FUZZ_CHECK(
        !c->access_key_id.empty() && !c->secret_access_key.empty() && !c->session_token.empty(),
        "credentials accepted with an empty field");
    FUZZ_CHECK(c->expiration.has_value(), "role credentials accepted without an expiration");
  } else {
    FUZZ_CHECK(!c.error().empty(), "credentials error without a message");
  }
  timestamp(text);
  return 0;
}

}  // namespace hanat::fuzz

HANAT_FUZZ_ENTRY(imds_json)
