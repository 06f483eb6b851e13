// SPDX-License-Identifier: GPL-2.0-or-later
#include "core/config/config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

namespace hanat::config {
namespace {

using std::chrono::milliseconds;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

constexpr const char* kMinimal = "[group]\nname = \"g\"\n";

// Parses `text`, expects exactly one error, returns it.
Error one_error(const std::string& text) {
  auto r = parse(text, "t.toml");
  EXPECT_FALSE(r.has_value()) << "expected an error for:\n" << text;
  if (r.has_value()) return {};
  if (r.error().size() != 1) {
    for (const auto& e : r.error()) ADD_FAILURE() << "expected one error, got: " << e.to_string();
  }
  return r.error().front();
}

Config ok(const std::string& text) {
  auto r = parse(text, "t.toml");
  if (!r.has_value()) {
    for (const auto& e : r.error()) ADD_FAILURE() << e.to_string();
    return {};
  }
  return r.value();
}

TEST(Config, DefaultsFollowTheDesign) {
  Config c = ok(kMinimal);
  EXPECT_EQ(c.group.name, "g");
  EXPECT_EQ(c.group.discovery, Discovery::Tags);
  ASSERT_EQ(c.group.destinations.size(), 1u);
  EXPECT_EQ(c.group.destinations[0].text, "0.0.0.0/0");
  EXPECT_EQ(c.probe.interval, milliseconds(200));
  EXPECT_EQ(c.probe.timeout, milliseconds(200));
  EXPECT_EQ(c.probe.fall, 3);
  EXPECT_EQ(c.probe.rise, 5);
  EXPECT_EQ(c.failover.failback_delay, milliseconds(30000));
  EXPECT_TRUE(c.failover.preempt);
  EXPECT_EQ(c.nat.table, "hanat");
  EXPECT_FALSE(c.nat.remove_on_exit);
  EXPECT_EQ(c.nat.drift_check_interval, milliseconds(5000));
  EXPECT_EQ(c.status.socket, "/run/hanat/hanatd.sock");
  EXPECT_EQ(c.status.mode, 0660u);
  EXPECT_EQ(c.ec2.metadata_endpoint, "http://169.254.169.254");
  EXPECT_FALSE(c.ec2.allow_imdsv1);
  EXPECT_EQ(c.ec2.route_refresh_interval, milliseconds(15000));
  EXPECT_EQ(c.ec2.notice_interval, milliseconds(5000));
  EXPECT_EQ(c.log.level, LogLevel::Info);
}

// The shipped example is a template: refused as it is (no group named), and with its
// commented-out name filled in it documents exactly the defaults.
TEST(Config, ExampleConfigIsATemplateThatNamesNoGroup) {
  auto r = load(std::string(HANAT_SOURCE_DIR) + "/conf/hanat.toml");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().front().key, "group.name");
}

TEST(Config, ExampleConfigValidatesAndMatchesDefaults) {
  std::ifstream in(std::string(HANAT_SOURCE_DIR) + "/conf/hanat.toml");
  std::stringstream text;
  text << in.rdbuf();
  std::string body = text.str();
  const std::string commented = "\n# name = \"egress-prod\"\n";
  auto at = body.find(commented);
  ASSERT_NE(at, std::string::npos) << "the template's commented-out group name";
  body.replace(at, commented.size(), "\nname = \"egress-prod\"\n");
  auto r = parse(body, "hanat.toml");
  ASSERT_TRUE(r.has_value()) << r.error().front().to_string();
  Config defaults = ok("[group]\nname = \"egress-prod\"\n");
  // The example documents the defaults: parsing it must give exactly them.
  EXPECT_EQ(r.value(), defaults);
}

TEST(Config, ParsesEveryFieldKind) {
  Config c = ok(R"(
[group]
name = "g"
discovery = "explicit"
members = ["i-0123456789abcdef0", "i-1234abcd"]
route_tables = ["rtb-0123456789abcdef0"]
destinations = ["0.0.0.0/0", "198.18.0.0/15"]
[probe]
interval = "50ms"
timeout = "40ms"
rise = 2
fall = 3
kinds = ["icmp", "tcp", "agent"]
[agent]
port = 0
[egress]
targets = ["198.18.5.1", "198.18.5.2:443"]
required = 2
[nat]
egress_interface = "ens5"
source_cidrs = ["10.0.0.0/16"]
fully_random = true
conntrack_max = 262144
tcp_established_timeout = "350s"
[ec2]
region = "eu-west-1"
endpoint = "http://127.0.0.1:5000"
credentials = "static"
access_key_id = "AKID"
secret_access_key = "SECRET"
[failover]
preempt = false
failback_delay = "1m30s"
fallback_target = "nat-0123456789abcdef0"
recovery_action = "stop-start"
[status]
mode = 0o600
[log]
level = "debug"
debug = ["ec2"]
)");
  EXPECT_EQ(c.group.discovery, Discovery::Explicit);
  EXPECT_EQ(c.group.members.size(), 2u);
  EXPECT_EQ(c.group.destinations[1].prefix, 15);
  EXPECT_EQ(c.probe.interval, milliseconds(50));
  EXPECT_EQ(c.probe.kinds.size(), 3u);
  EXPECT_EQ(c.agent.port, 0);
  EXPECT_EQ(c.egress.targets[1], (EgressTarget{"198.18.5.2", 443}));
  EXPECT_EQ(c.egress.targets[0].port, 0);
  EXPECT_EQ(c.nat.source_cidrs[0].address, 0x0a000000u);
  EXPECT_EQ(c.nat.conntrack_max, 262144);
  EXPECT_EQ(c.nat.tcp_established_timeout, milliseconds(350000));
  EXPECT_EQ(c.ec2.credentials, CredentialsSource::Static);
  EXPECT_FALSE(c.failover.preempt);
  EXPECT_EQ(c.failover.failback_delay, milliseconds(90000));
  EXPECT_EQ(c.failover.recovery_action, RecoveryAction::StopStart);
  EXPECT_EQ(c.status.mode, 0600u);
  EXPECT_EQ(c.log.level, LogLevel::Debug);
}

// Regression (tests/fuzz/crashes/fuzz_config/duration_sum_overflow): a duration of many
// huge terms overflowed int64 while summing; it is now refused as not a duration.
TEST(ConfigErrors, DurationWhoseTermsOverflowIsRefused) {
  std::string huge;
  for (int i = 0; i < 30; ++i) huge += "99999999999h";
  EXPECT_FALSE(parse_duration(huge).has_value());
  EXPECT_EQ(parse_duration("99999999999h"), milliseconds(99999999999LL * 3'600'000));
  Error e = one_error(std::string(kMinimal) + "[probe]\ninterval = \"" + huge + "\"\n");
  EXPECT_EQ(e.key, "probe.interval");
  EXPECT_THAT(e.message, HasSubstr("is not a duration"));
}

TEST(ConfigErrors, SyntaxErrorNamesLineAndColumn) {
  Error e = one_error("[group]\nname = \"g\"\n[probe\n");
  EXPECT_EQ(e.file, "t.toml");
  EXPECT_EQ(e.line, 3);
  EXPECT_GT(e.column, 1);
  EXPECT_THAT(e.to_string(), HasSubstr("t.toml:3:"));
}

TEST(ConfigErrors, UnknownKeySuggestsTheNearestOne) {
  Error e = one_error(std::string(kMinimal) + "[probe]\nintervall = \"1s\"\n");
  EXPECT_EQ(e.line, 4);
  EXPECT_EQ(e.column, 1);
  EXPECT_EQ(e.key, "probe.intervall");
  EXPECT_THAT(e.message, HasSubstr("unknown key"));
  EXPECT_THAT(e.message, HasSubstr("did you mean \"interval\""));
}

TEST(ConfigErrors, UnknownSectionSuggestsTheNearestOne) {
  Error e = one_error(std::string(kMinimal) + "[failvoer]\npreempt = true\n");
  EXPECT_EQ(e.line, 3);
  EXPECT_THAT(e.message, HasSubstr("did you mean \"failover\""));
}

TEST(ConfigErrors, UnrelatedUnknownKeyGetsNoSuggestion) {
  Error e = one_error(std::string(kMinimal) + "[probe]\nzzzzzzzzzz = 1\n");
  EXPECT_THAT(e.message, ::testing::Not(HasSubstr("did you mean")));
}

TEST(Config, ProbePathsDefaultToBothAndCanBePrivateOnly) {
  EXPECT_EQ(ok(std::string(kMinimal)).probe.paths,
            (std::vector<ProbePath>{ProbePath::Private, ProbePath::Public}));
  EXPECT_EQ(ok(std::string(kMinimal) + "[probe]\npaths = [\"private\"]\n").probe.paths,
            (std::vector<ProbePath>{ProbePath::Private}));
}

TEST(ConfigErrors, ProbePathsAreChecked) {
  Error e = one_error(std::string(kMinimal) + "[probe]\npaths = [\"private\", \"publc\"]\n");
  EXPECT_EQ(e.key, "probe.paths[1]");
  EXPECT_THAT(e.message, HasSubstr("\"publc\" is not a probe path"));
  EXPECT_THAT(e.message, HasSubstr("did you mean \"public\""));
  e = one_error(std::string(kMinimal) + "[probe]\npaths = [\"public\"]\n");
  EXPECT_EQ(e.key, "probe.paths");
  EXPECT_THAT(e.message, HasSubstr("must name \"private\""));
}

TEST(ConfigErrors, WrongType) {
  EXPECT_THAT(one_error(std::string(kMinimal) + "[probe]\nrise = \"5\"\n").message,
              HasSubstr("expected an integer"));
  EXPECT_THAT(one_error(std::string(kMinimal) + "[failover]\npreempt = 1\n").message,
              HasSubstr("expected true or false"));
  EXPECT_THAT(one_error(std::string(kMinimal) + "[nat]\negress_interface = 3\n").message,
              HasSubstr("expected a string"));
  EXPECT_THAT(one_error("probe = 1\n[group]\nname = \"g\"\n").message,
              HasSubstr("expected a table"));
}

TEST(ConfigErrors, IntegerOutOfRange) {
  Error e = one_error(std::string(kMinimal) + "[probe]\nfall = 0\n");
  EXPECT_EQ(e.key, "probe.fall");
  EXPECT_EQ(e.line, 4);
  EXPECT_EQ(e.column, 8);
  EXPECT_THAT(e.message, HasSubstr("out of range [1, 100]"));
}

TEST(Config, ForwardCheckIsOnByDefaultAndTunable) {
  Config d = ok(kMinimal);
  EXPECT_TRUE(d.forward.check);
  EXPECT_EQ(d.forward.interval, milliseconds(200));
  EXPECT_EQ(d.forward.min_packets, 10);
  EXPECT_EQ(d.forward.fall, 3);
  EXPECT_EQ(d.forward.rise, 3);
  EXPECT_EQ(d.forward.recheck, milliseconds(60000));
  Config c = ok(std::string(kMinimal) +
                "[forward]\ncheck = false\ninterval = \"50ms\"\nmin_packets = 40\nfall = 4\n"
                "rise = 2\nrecheck = \"2m\"\n");
  EXPECT_FALSE(c.forward.check);
  EXPECT_EQ(c.forward.interval, milliseconds(50));
  EXPECT_EQ(c.forward.min_packets, 40);
  EXPECT_EQ(c.forward.fall, 4);
  EXPECT_EQ(c.forward.rise, 2);
  EXPECT_EQ(c.forward.recheck, milliseconds(120000));
}

TEST(ConfigErrors, ForwardCheckValuesAreChecked) {
  Error e = one_error(std::string(kMinimal) + "[forward]\nmin_packets = 0\n");
  EXPECT_EQ(e.key, "forward.min_packets");
  EXPECT_EQ(e.line, 4);
  EXPECT_THAT(e.message, HasSubstr("out of range [1, 1000000]"));
  EXPECT_THAT(one_error(std::string(kMinimal) + "[forward]\nrecheck = \"10ms\"\n").message,
              HasSubstr("out of range [1s, 1h]"));
  EXPECT_EQ(one_error(std::string(kMinimal) + "[forward]\nchek = true\n").key, "forward.chek");
}

// The metadata notice poll: at least a second (local calls, but every second is plenty for
// a two-minute warning), at most a minute (a spot notice must leave time to hand over).
TEST(ConfigErrors, NoticeIntervalIsBounded) {
  Error e = one_error(std::string(kMinimal) + "[ec2]\nnotice_interval = \"500ms\"\n");
  EXPECT_EQ(e.key, "ec2.notice_interval");
  EXPECT_EQ(e.line, 4);
  EXPECT_THAT(e.message, HasSubstr("out of range [1s, 1m]"));
  EXPECT_THAT(one_error(std::string(kMinimal) + "[ec2]\nnotice_interval = \"2m\"\n").message,
              HasSubstr("out of range [1s, 1m]"));
  EXPECT_EQ(ok(std::string(kMinimal) + "[ec2]\nnotice_interval = \"1s\"\n").ec2.notice_interval,
            milliseconds(1000));
}

TEST(ConfigErrors, Durations) {
  EXPECT_THAT(one_error(std::string(kMinimal) + "[probe]\ninterval = 200\n").message,
              HasSubstr("a bare number has no unit"));
  EXPECT_THAT(one_error(std::string(kMinimal) + "[probe]\ninterval = \"fast\"\n").message,
              HasSubstr("is not a duration"));
  EXPECT_THAT(one_error(std::string(kMinimal) + "[probe]\ninterval = \"5ms\"\n").message,
              HasSubstr("out of range [10ms, 1m]"));
}

TEST(ConfigErrors, CidrsAreValidated) {
  EXPECT_THAT(
      one_error(std::string(kMinimal) + "[nat]\nsource_cidrs = [\"10.0.0.1/16\"]\n").message,
      HasSubstr("did you mean \"10.0.0.0/16\""));
  Error e =
      one_error(std::string(kMinimal) + "[nat]\nsource_cidrs = [\"10.0.0.0/8\", \"10.0.0/8\"]\n");
  EXPECT_EQ(e.key, "nat.source_cidrs[1]");
  EXPECT_THAT(e.message, HasSubstr("not an IPv4 address"));
}

TEST(ConfigErrors, Ec2IdsAreValidated) {
  std::string base = "[group]\nname=\"g\"\ndiscovery=\"explicit\"\n";
  EXPECT_THAT(one_error(base + "route_tables = [\"rtb-1234abcd\", \"rtb-XYZ\"]\n").message,
              HasSubstr("\"rtb-XYZ\" is not a valid id"));
  EXPECT_THAT(
      one_error(base + "route_tables=[\"rtb-1234abcd\"]\nmembers = [\"eni-1234abcd\"]\n").message,
      HasSubstr("expected i-"));
  EXPECT_THAT(
      one_error(std::string(kMinimal) + "[failover]\nfallback_target = \"igw-1234abcd\"\n").message,
      HasSubstr("expected nat-"));
  EXPECT_THAT(
      one_error(std::string(kMinimal) + "[failover]\nfloating_eni = \"eni-1234abc\"\n").message,
      HasSubstr("is not a valid id"));
}

TEST(ConfigErrors, EnumsListTheirValues) {
  Error e = one_error(std::string(kMinimal) + "[failover]\nrecovery_action = \"rebot\"\n");
  EXPECT_THAT(e.message, HasSubstr("\"none\", \"reboot\""));
  EXPECT_THAT(e.message, HasSubstr("did you mean \"reboot\""));
  EXPECT_THAT(one_error(std::string(kMinimal) + "[probe]\nkinds = [\"agent\", \"icpm\"]\n").message,
              HasSubstr("did you mean \"icmp\""));
}

TEST(ConfigErrors, DuplicatesInLists) {
  EXPECT_THAT(one_error(std::string(kMinimal) + "[probe]\nkinds = [\"icmp\", \"icmp\"]\n").message,
              HasSubstr("listed twice"));
}

TEST(ConfigErrors, CrossFieldRules) {
  EXPECT_THAT(one_error("[probe]\nrise = 2\n").key, "group.name");
  EXPECT_THAT(one_error("[group]\nname=\"g\"\ndiscovery=\"explicit\"\n").key, "group.route_tables");
  EXPECT_THAT(
      one_error(std::string(kMinimal) + "[probe]\ninterval=\"100ms\"\ntimeout=\"150ms\"\n").message,
      HasSubstr("would overlap"));
  EXPECT_THAT(one_error(std::string(kMinimal) + "[ec2]\ncredentials = \"static\"\n").message,
              HasSubstr("needs access_key_id"));
  EXPECT_THAT(
      one_error(std::string(kMinimal) + "[failover]\nhold_down=\"1m\"\nhold_down_max=\"30s\"\n")
          .key,
      "failover.hold_down_max");
  EXPECT_THAT(
      one_error(std::string(kMinimal) + "[egress]\ntargets=[\"198.18.0.1\"]\nrequired=2\n").key,
      "egress.required");
}

TEST(ConfigErrors, ValuesOfStringsAreChecked) {
  EXPECT_THAT(one_error(std::string(kMinimal) + "[nat]\negress_interface = \"a/b\"\n").message,
              HasSubstr("not a valid interface name"));
  EXPECT_THAT(one_error(std::string(kMinimal) + "[ec2]\nregion = \"moon\"\n").message,
              HasSubstr("not an AWS region"));
  EXPECT_THAT(one_error(std::string(kMinimal) + "[ec2]\nendpoint = \"ftp://x\"\n").message,
              HasSubstr("not an http:// or https:// URL"));
  EXPECT_THAT(one_error(std::string(kMinimal) + "[status]\nsocket = \"rel/path\"\n").message,
              HasSubstr("absolute path"));
  EXPECT_THAT(one_error(std::string(kMinimal) + "[status]\nmode = \"0999\"\n").message,
              HasSubstr("octal mode"));
  EXPECT_THAT(
      one_error(std::string(kMinimal) + "[status]\nstate_directory = \"var/lib/hanat\"\n").message,
      HasSubstr("must be an absolute path"));
  EXPECT_THAT(one_error(std::string(kMinimal) + "[egress]\ntargets = [\"example.com\"]\n").message,
              HasSubstr("numeric IPv4"));
  EXPECT_THAT(one_error(std::string(kMinimal) + "[log]\ndebug = [\"ec3\"]\n").message,
              HasSubstr("did you mean \"ec2\""));
}

TEST(ConfigErrors, AllErrorsAreReportedInFileOrder) {
  auto r = parse("[probe]\nfall = 0\nrise = 0\n[nat]\nbogus = 1\n", "t.toml");
  ASSERT_FALSE(r.has_value());
  ASSERT_EQ(r.error().size(), 4u);            // fall, rise, bogus, missing group.name
  EXPECT_EQ(r.error()[0].key, "group.name");  // reported at 1:1
  EXPECT_EQ(r.error()[1].key, "probe.fall");
  EXPECT_EQ(r.error()[2].key, "probe.rise");
  EXPECT_EQ(r.error()[3].key, "nat.bogus");
}

TEST(ConfigErrors, UnreadableFileIsOneErrorNamingIt) {
  auto r = load("/nonexistent/hanat.toml");
  ASSERT_FALSE(r.has_value());
  EXPECT_THAT(r.error().front().to_string(), HasSubstr("/nonexistent/hanat.toml"));
  EXPECT_THAT(r.error().front().message, HasSubstr("cannot read"));
}

TEST(ConfigHelpers, Durations) {
  EXPECT_EQ(parse_duration("200ms"), milliseconds(200));
  EXPECT_EQ(parse_duration("1m30s"), milliseconds(90000));
  EXPECT_EQ(parse_duration("2h"), milliseconds(7200000));
  EXPECT_EQ(parse_duration("0s"), milliseconds(0));
  EXPECT_EQ(parse_duration(""), std::nullopt);
  EXPECT_EQ(parse_duration("5"), std::nullopt);
  EXPECT_EQ(parse_duration("ms"), std::nullopt);
  EXPECT_EQ(parse_duration("1.5s"), std::nullopt);
  EXPECT_EQ(format_duration(milliseconds(90000)), "90s");
  EXPECT_EQ(format_duration(milliseconds(60000)), "1m");
  EXPECT_EQ(format_duration(milliseconds(250)), "250ms");
}

TEST(ConfigHelpers, Ec2Ids) {
  EXPECT_TRUE(is_ec2_id("i-0123456789abcdef0", "i"));
  EXPECT_TRUE(is_ec2_id("rtb-1234abcd", "rtb"));
  EXPECT_FALSE(is_ec2_id("rtb-1234ABCD", "rtb"));
  EXPECT_FALSE(is_ec2_id("rtb1234abcd", "rtb"));
  EXPECT_FALSE(is_ec2_id("i-123", "i"));
}

TEST(Config, GroupRefreshIntervalDefaultsTo30sAndIsBounded) {
  EXPECT_EQ(ok(kMinimal).group.refresh_interval, milliseconds(30000));
  EXPECT_EQ(ok(std::string(kMinimal) + "refresh_interval = \"5s\"\n").group.refresh_interval,
            milliseconds(5000));
  Error e = one_error(std::string(kMinimal) + "refresh_interval = \"100ms\"\n");
  EXPECT_EQ(e.key, "group.refresh_interval");
  EXPECT_THAT(e.message, HasSubstr("out of range [1s, 1h]"));
}

TEST(Config, Ec2RateLimits) {
  Config c = ok(std::string(kMinimal) +
                "[ec2]\nrate_limits = { ReplaceRoute = \"100/10\", mutating = \"40/0.5\" }\n");
  ASSERT_EQ(c.ec2.rate_limits.size(), 2u);
  EXPECT_EQ(c.ec2.rate_limits.at("ReplaceRoute"), (RateLimit{100, 10}));
  EXPECT_EQ(c.ec2.rate_limits.at("mutating"), (RateLimit{40, 0.5}));
  EXPECT_TRUE(ok(kMinimal).ec2.rate_limits.empty()) << "EC2's defaults unless configured";
}

TEST(ConfigErrors, Ec2RateLimitsNameTheBadKeyOrValue) {
  Error e = one_error(std::string(kMinimal) + "[ec2]\nrate_limits = { ReplaceRoutes = \"5/1\" }\n");
  EXPECT_EQ(e.key, "ec2.rate_limits.ReplaceRoutes");
  EXPECT_THAT(e.message, HasSubstr("ReplaceRoute,"));
  for (const char* bad : {"\"50\"", "\"0/5\"", "\"50/0\"", "\"2.5/1\"", "\"a/b\"", "50"}) {
    Error v =
        one_error(std::string(kMinimal) + "[ec2]\nrate_limits = { CreateRoute = " + bad + " }\n");
    EXPECT_EQ(v.key, "ec2.rate_limits.CreateRoute") << bad;
    EXPECT_THAT(v.message, HasSubstr("burst/refill")) << bad;
  }
  EXPECT_THAT(one_error(std::string(kMinimal) + "[ec2]\nrate_limits = \"50/5\"\n").message,
              HasSubstr("expected a table"));
}

TEST(Config, ElasticIpsPerZone) {
  Config c =
      ok(std::string(kMinimal) +
         "[failover]\nmove_eip = true\neips = { \"eu-west-1a\" = \"eipalloc-0123456789abcdef0\","
         " \"eu-west-1b\" = \"eipalloc-12345678\" }\n");
  EXPECT_TRUE(c.failover.move_eip);
  ASSERT_EQ(c.failover.eips.size(), 2u);
  EXPECT_EQ(c.failover.eips.at("eu-west-1a"), "eipalloc-0123456789abcdef0");
  EXPECT_EQ(c.failover.eips.at("eu-west-1b"), "eipalloc-12345678");
  EXPECT_TRUE(ok(std::string(kMinimal) + "[failover]\nmove_eip = true\n").failover.eips.empty())
      << "no list: found by tag";
}

TEST(Config, StatefulFailoverIsOffByDefaultAndNeedsMoveEip) {
  EXPECT_FALSE(ok(kMinimal).failover.stateful);
  EXPECT_TRUE(ok(std::string(kMinimal) + "[failover]\nmove_eip = true\nstateful = true\n")
                  .failover.stateful);
  Error e = one_error(std::string(kMinimal) + "[failover]\nstateful = true\n");
  EXPECT_EQ(e.key, "failover.stateful");
  EXPECT_THAT(e.message, HasSubstr("move_eip = true"));
}

TEST(ConfigErrors, ElasticIpsNameTheBadZoneOrId) {
  Error e =
      one_error(std::string(kMinimal) +
                "[failover]\nmove_eip = true\neips = { \"eu-west-1a\" = \"eip-1234abcd\" }\n");
  EXPECT_EQ(e.key, "failover.eips.eu-west-1a");
  EXPECT_THAT(e.message, HasSubstr("eipalloc-"));
  EXPECT_THAT(
      one_error(std::string(kMinimal) + "[failover]\nmove_eip = true\neips = \"x\"\n").message,
      HasSubstr("expected a table of zone"));
  Error off = one_error(std::string(kMinimal) +
                        "[failover]\neips = { \"eu-west-1a\" = \"eipalloc-12345678\" }\n");
  EXPECT_EQ(off.key, "failover.eips");
  EXPECT_THAT(off.message, HasSubstr("move_eip = false"));
  EXPECT_THAT(
      restart_keys(ok(kMinimal), ok(std::string(kMinimal) + "[failover]\nmove_eip = true\n")),
      ElementsAre("failover.move_eip"));
}

TEST(ConfigErrors, TablesOfIptablesNftAreRefusedWithTheLine) {
  for (const char* name : {"filter", "nat", "mangle", "raw", "security"}) {
    auto r = parse(std::string(kMinimal) + "[nat]\ntable = \"" + name + "\"\n", "h.toml");
    ASSERT_FALSE(r.has_value()) << name;
    ASSERT_EQ(r.error().size(), 1u) << name;
    const auto& e = r.error().front();
    EXPECT_EQ(e.key, "nat.table");
    EXPECT_GT(e.line, 0);
    EXPECT_THAT(e.to_string(), HasSubstr("h.toml:" + std::to_string(e.line) + ":"));
    EXPECT_THAT(e.message, HasSubstr("iptables-nft"));
  }
  // Names are case-sensitive in nftables: "NAT" is not iptables-nft's table.
  EXPECT_EQ(ok(std::string(kMinimal) + "[nat]\ntable = \"NAT\"\n").nat.table, "NAT");
}

TEST(Config, AgentListensOnThePrivateAddressByDefault) {
  // Empty means "this instance's private IP from instance metadata" (resolved by hanatd).
  EXPECT_EQ(ok(kMinimal).agent.listen_address, "");
  EXPECT_EQ(
      ok(std::string(kMinimal) + "[agent]\nlisten_address = \"198.18.1.5\"\n").agent.listen_address,
      "198.18.1.5");
  EXPECT_THAT(one_error(std::string(kMinimal) + "[agent]\nlisten_address = \"eth0\"\n").message,
              HasSubstr("not an IPv4 address"));
}

TEST(ConfigReload, RestartKeysNameEveryKeyAReloadCannotApply) {
  const Config base = ok(kMinimal);
  EXPECT_THAT(restart_keys(base, base), IsEmpty());
  auto with = [&](const std::string& extra) { return ok(std::string(kMinimal) + extra); };
  // Keys a reload applies: none of them needs a restart.
  EXPECT_THAT(restart_keys(base, with("[probe]\nkinds = [\"icmp\", \"tcp\"]\ninterval = "
                                      "\"300ms\"\ntimeout = \"100ms\"\ntcp_port = 2222\n"
                                      "[agent]\nlisten_address = \"198.18.0.9\"\nport = 4791\n"
                                      "[egress]\ntargets = [\"198.18.0.1\"]\n"
                                      "[nat]\ntable = \"hanat2\"\negress_interface = \"ens6\"\n"
                                      "[ec2]\nroute_refresh_interval = \"30s\"\n"
                                      "[forward]\nmin_packets = 20\n")),
              IsEmpty());
  EXPECT_THAT(restart_keys(ok("[group]\nname = \"g\"\n"), ok("[group]\nname = \"h\"\n")),
              ElementsAre("group.name"));
  EXPECT_THAT(restart_keys(base, with("[ec2]\nendpoint = \"https://198.18.0.1\"\n")),
              ElementsAre("ec2.endpoint"));
  EXPECT_THAT(restart_keys(base, with("[status]\nsocket = \"/tmp/x.sock\"\nmode = \"0600\"\n"
                                      "[failover]\nfloating_eni = \"eni-12345678\"\n")),
              ElementsAre("failover.floating_eni", "status.socket", "status.mode"));
  EXPECT_THAT(restart_keys(base, with("[nat]\ndrift_check_interval = \"1s\"\n")),
              ElementsAre("nat.drift_check_interval"));
  EXPECT_THAT(restart_keys(base, with("[ec2]\nnotice_interval = \"1s\"\n")),
              ElementsAre("ec2.notice_interval"));
  // The drain mark was read from the old directory at start.
  EXPECT_THAT(restart_keys(base, with("[status]\nstate_directory = \"/srv/hanat\"\n")),
              ElementsAre("status.state_directory"));
}

}  // namespace
}  // namespace hanat::config

namespace hanat::config {
namespace {

// /proc/net/route as Linux 6.1 prints it (net/ipv4/fib_trie.c): a DHCP default route
// on ens5 (metric 100), the subnet route, and a second default route on ens6 with a
// higher metric, as a second ENI's DHCP client adds it.
constexpr const char* kRoutes =
    "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
    "ens6\t00000000\t0110A8C0\t0003\t0\t0\t200\t00000000\t0\t0\t0\n"
    "ens5\t00000000\t0100A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n"
    "ens5\t0000A8C0\t00000000\t0001\t0\t0\t100\t00FFFFFF\t0\t0\t0\n";

TEST(HostDefaults, DefaultRouteWithTheLowestMetricWins) {
  auto r = default_route_interface(kRoutes);
  ASSERT_TRUE(r) << r.error();
  EXPECT_EQ(*r, "ens5");
}

TEST(HostDefaults, NoDefaultRouteOrOnlyOneThatIsDownIsAnError) {
  const std::string header =
      "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n";
  EXPECT_EQ(default_route_interface(header).error(), "no IPv4 default route");
  EXPECT_EQ(default_route_interface("").error(), "no IPv4 default route");
  // Flags without RTF_UP (0x1), and a /0 destination with a /8 mask: neither is a default.
  EXPECT_FALSE(default_route_interface(
      header + "eth0\t00000000\t0100A8C0\t0002\t0\t0\t0\t00000000\t0\t0\t0\n" +
      "eth1\t00000000\t0100A8C0\t0003\t0\t0\t0\t000000FF\t0\t0\t0\n"));
  // A truncated line is skipped, not a crash.
  EXPECT_FALSE(default_route_interface(header + "eth0\t00000000\n"));
}

TEST(HostDefaults, EmptyEgressInterfaceTakesTheDefaultRoutesAndSaysSo) {
  const std::string path = ::testing::TempDir() + "/hanat-route-" + std::to_string(::getpid());
  std::ofstream(path) << kRoutes;
  Config c = ok(kMinimal);
  EXPECT_EQ(c.nat.egress_interface, "");
  auto r = apply_host_defaults(c, path);
  ASSERT_TRUE(r) << r.error();
  EXPECT_EQ(*r, "nat.egress_interface: \"ens5\" (the interface of the default route)");
  EXPECT_EQ(c.nat.egress_interface, "ens5");
  // Named in the file: kept, nothing said.
  Config named = ok(std::string(kMinimal) + "[nat]\negress_interface = \"eth1\"\n");
  EXPECT_EQ(*apply_host_defaults(named, path), "");
  EXPECT_EQ(named.nat.egress_interface, "eth1");
  std::remove(path.c_str());
  auto missing = apply_host_defaults(c = ok(kMinimal), path);
  ASSERT_FALSE(missing);
  EXPECT_THAT(missing.error(), ::testing::HasSubstr("nat.egress_interface is not set and " + path +
                                                    " cannot be read"));
}

}  // namespace
}  // namespace hanat::config

namespace hanat::config {
namespace {

TEST(Config, HandoverDefaultsAndKeys) {
  const Config d = ok(kMinimal);
  EXPECT_EQ(d.handover.flow_drain, std::chrono::minutes(5));
  EXPECT_EQ(d.handover.max_flows, 100000);
  EXPECT_EQ(d.handover.psk_file, "");
  EXPECT_EQ(d.handover.channel_port, 0);
  EXPECT_EQ(effective_channel_port(d), 4791);
  EXPECT_EQ(effective_channel_port(ok(std::string(kMinimal) + "[agent]\nport = 4791\n")), 4792);
  const Config c = ok(std::string(kMinimal) +
                      "[handover]\nflow_drain = \"90s\"\nmax_flows = 500\n"
                      "psk_file = \"/etc/hanat/handover.psk\"\nchannel_port = 5000\n");
  EXPECT_EQ(c.handover.flow_drain, std::chrono::seconds(90));
  EXPECT_EQ(c.handover.max_flows, 500);
  EXPECT_EQ(c.handover.psk_file, "/etc/hanat/handover.psk");
  EXPECT_EQ(c.handover.channel_port, 5000);
  EXPECT_EQ(effective_channel_port(c), 5000);
}

TEST(ConfigErrors, HandoverValuesAreCheckedWithFileLineAndKey) {
  const Error e = one_error(std::string(kMinimal) + "[handover]\nmax_flows = 0\n");
  EXPECT_EQ(e.key, "handover.max_flows");
  EXPECT_EQ(e.line, 4);
  EXPECT_THAT(one_error(std::string(kMinimal) + "[handover]\nflow_drain = \"3h\"\n").key,
              "handover.flow_drain");
  EXPECT_THAT(one_error(std::string(kMinimal) + "[handover]\npsk_file = \"psk\"\n").message,
              HasSubstr("must be an absolute path"));
  EXPECT_THAT(one_error(std::string(kMinimal) + "[handover]\nchannel_port = 70000\n").key,
              "handover.channel_port");
  const Error same = one_error(std::string(kMinimal) + "[handover]\nchannel_port = 4790\n");
  EXPECT_EQ(same.key, "handover.channel_port");
  EXPECT_THAT(same.message, HasSubstr("is agent.port too"));
  EXPECT_THAT(one_error(std::string(kMinimal) + "[handover]\nflow_dran = \"1m\"\n").message,
              HasSubstr("did you mean \"flow_drain\""));
}

}  // namespace
}  // namespace hanat::config
