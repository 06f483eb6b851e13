// SPDX-License-Identifier: GPL-2.0-or-later
// fuzz_config: hanat's TOML configuration (hanat::config::parse, toml++ underneath).
// Invariants: a Config that parse() returns satisfies the validation rules it promises
// (core/config/config.h: "A Config that parse() returns is valid"); a refusal carries at
// least one error, each naming the file and ordered by position; the duration and CIDR
// helpers round-trip what they accept.
#include <tuple>

#include "core/config/config.h"
#include "tests/fuzz/fuzz_check.h"

namespace hanat::fuzz {
namespace {

using namespace std::chrono_literals;

void check_valid(const config::Config& c) {
  FUZZ_CHECK(!c.group.name.empty() && c.group.name.size() <= 255, "group.name out of bounds");
  FUZZ_CHECK(!c.group.destinations.empty(), "no destination CIDR after defaults");
  FUZZ_CHECK(c.probe.interval >= 10ms && c.probe.interval <= 60s, "probe.interval out of range");
  FUZZ_CHECK(c.probe.timeout <= c.probe.interval, "probe.timeout longer than probe.interval");
  FUZZ_CHECK(c.probe.rise >= 1 && c.probe.rise <= 100, "probe.rise out of range");
  FUZZ_CHECK(c.probe.fall >= 1 && c.probe.fall <= 100, "probe.fall out of range");
  FUZZ_CHECK(!c.probe.kinds.empty(), "no probe kind");
  FUZZ_CHECK(c.egress.timeout <= c.egress.interval, "egress.timeout longer than interval");
  FUZZ_CHECK(c.failover.hold_down_max >= c.failover.hold_down, "hold_down_max < hold_down");
  FUZZ_CHECK(c.group.discovery != config::Discovery::Explicit || !c.group.route_tables.empty(),
             "explicit discovery without route tables");
  if (c.ec2.credentials == config::CredentialsSource::Static) {
    FUZZ_CHECK(!c.ec2.access_key_id.empty() && !c.ec2.secret_access_key.empty(),
               "static credentials without keys");
  } else {
    FUZZ_CHECK(c.ec2.access_key_id.empty() && c.ec2.secret_access_key.empty(),
               "keys set but credentials are not static");
  }
  for (const auto& d : c.group.destinations) {
    auto again = config::parse_cidr(d.text);
    FUZZ_CHECK(again.has_value() && *again == d, "destination '" + d.text + "' does not reparse");
  }
}

void helpers(std::string_view s) {
  // format_duration prints one number in the largest exact unit; parse_duration takes at
  // most 1e11 per term, so the round trip holds up to 1e11 ms (3 years, beyond every key's
  // range). Longer ones only appear in error messages, never parsed back.
  if (auto d = config::parse_duration(s); d && d->count() <= 100'000'000'000LL) {
    const std::string text = config::format_duration(*d);
    auto again = config::parse_duration(text);
    FUZZ_CHECK(again.has_value() && *again == *d, "duration '" + std::string(s) + "' formats as '" +
                                                      text + "', which does not reparse");
  }
  if (auto c = config::parse_cidr(s)) {
    auto again = config::parse_cidr(c->text);
    FUZZ_CHECK(again.has_value() && *again == *c,
               "CIDR '" + std::string(s) + "' normalises to '" + c->text + "', which differs");
    FUZZ_CHECK(c->prefix >= 0 && c->prefix <= 32, "CIDR prefix out of range");
  }
}

}  // namespace

int config_toml(const std::uint8_t* data, std::size_t size) {
  const std::string_view text = as_view(data, size);
  const std::string file = "fuzz.toml";
  auto r = config::parse(text, file);
  if (r) {
    check_valid(*r);
  } else {
    const config::Errors& errors = r.error();
    FUZZ_CHECK(!errors.empty(), "config refused without an error");
    for (std::size_t i = 0; i < errors.size(); ++i) {
      FUZZ_CHECK(errors[i].file == file, "error names file '" + errors[i].file + "'");
      FUZZ_CHECK(!errors[i].message.empty(), "error without a message: " + errors[i].to_string());
      if (i > 0) {
        FUZZ_CHECK(std::tie(errors[i - 1].line, errors[i - 1].column) <=
                       std::tie(errors[i].line, errors[i].column),
                   "errors out of order at " + errors[i].to_string());
      }
    }
  }
  if (size <= 64) helpers(text);
  return 0;
}

}  // namespace hanat::fuzz

HANAT_FUZZ_ENTRY(config_toml)
