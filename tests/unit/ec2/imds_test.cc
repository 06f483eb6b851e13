// SPDX-License-Identifier: GPL-2.0-or-later
// IMDSv2 client and role credentials against a fake metadata server (in-process, 127.0.0.1
// port 0) that requires the session token and answers 401 to a missing or stale one.

#include "ec2/imds.h"

#include "ec2/client.h"

#include <gtest/gtest.h>

#include <ctime>

#include "tests/support/uv_test_util.h"
#include "tests/unit/ec2/stub_server.h"

namespace hanat::ec2 {
namespace {

using hanat::testing::expect_clean_close;
using hanat::testing::run_until;
using testing::StubReply;
using testing::StubRequest;
using testing::StubServer;
using namespace std::chrono_literals;

std::string iso(WallTime t) {
  std::time_t tt = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// The fake IMDS: tokens are "tok-N"; revoke() makes every issued token stale (401).
class FakeImds {
 public:
  explicit FakeImds(uv::Loop& loop)
      : srv_(loop, [this](const StubRequest& r) { return handle(r); }) {
    const std::string mac = "02:11:22:33:44:55";
    const std::string m = "/latest/meta-data/network/interfaces/macs/" + mac + "/";
    data_ = {
        {"/latest/meta-data/instance-id", "i-0aaa1111bbbb2222c"},
        {"/latest/meta-data/placement/region", "eu-west-1"},
        {"/latest/meta-data/placement/availability-zone", "eu-west-1a"},
        {"/latest/meta-data/mac", mac},
        {m + "interface-id", "eni-0fff1111eeee2222d"},
        {m + "subnet-id", "subnet-0aaa0000bbbb1111c"},
        {m + "vpc-id", "vpc-0123456789abcdef0"},
        {m + "local-ipv4s", "198.18.1.10\n198.18.1.11"},
        {"/latest/meta-data/iam/security-credentials/", "hanat-role"},
    };
    set_credentials("ASIAFIRST", 3600s);
  }

  void set(const std::string& path, const std::string& v) {
    data_["/latest/meta-data/" + path] = v;
  }
  void set_credentials(const std::string& key, std::chrono::seconds valid) {
    data_["/latest/meta-data/iam/security-credentials/hanat-role"] =
        R"({"Code":"Success","LastUpdated":"2026-11-22T00:00:00Z","Type":"AWS-HMAC",)"
        R"("AccessKeyId":")" +
        key + R"(","SecretAccessKey":"s3cr3t","Token":"tok)" + key + R"(","Expiration":")" +
        iso(std::chrono::system_clock::now() + valid) + R"("})";
  }
  void revoke() { valid_.clear(); }
  void v1_only() { v1_only_ = true; }
  void fail_next(int n) { fail_ = n; }

  [[nodiscard]] int token_puts() const { return puts_; }
  [[nodiscard]] int unauthorized() const { return unauthorized_; }
  [[nodiscard]] std::string url() const { return srv_.url(""); }
  [[nodiscard]] const std::vector<StubRequest>& requests() const { return srv_.requests(); }
  StubServer& server() { return srv_; }

 private:
  StubReply handle(const StubRequest& r) {
    if (r.method == "PUT" && r.target == "/latest/api/token") {
      if (v1_only_) return StubReply::status_body(403, "");
      const std::string ttl = r.header("x-aws-ec2-metadata-token-ttl-seconds");
      if (ttl.empty()) return StubReply::status_body(400, "missing TTL");
      ttls_.push_back(ttl);
      ++puts_;
      const std::string tok = "tok-" + std::to_string(puts_);
      valid_.push_back(tok);
      return StubReply::ok(tok);
    }
    if (!v1_only_) {
      const std::string tok = r.header("x-aws-ec2-metadata-token");
      if (std::find(valid_.begin(), valid_.end(), tok) == valid_.end()) {
        ++unauthorized_;
        return StubReply::status_body(401, "");
      }
    }
    if (fail_ > 0) {
      --fail_;
      return StubReply::status_body(500, "");
    }
    auto it = data_.find(r.target);
    if (it == data_.end()) return StubReply::status_body(404, "Not Found");
    return StubReply::ok(it->second);
  }

  StubServer srv_;
  std::map<std::string, std::string> data_;
  std::vector<std::string> valid_;
  std::vector<std::string> ttls_;
  int puts_ = 0;
  int unauthorized_ = 0;
  int fail_ = 0;
  bool v1_only_ = false;
};

template <class T>
core::Result<T, Ec2Error> wait(uv::Loop& loop, std::optional<core::Result<T, Ec2Error>>& slot) {
  EXPECT_TRUE(run_until(
      loop, [&] { return slot.has_value(); }, 5s));
  if (!slot) return core::Unexpected(Ec2Error{ErrorKind::Timeout, "TestTimeout", "", "", 0, 0});
  return std::move(*slot);
}

TEST(Imds, ReadsIdentityAndInterfaceWithOneToken) {
  uv::Loop loop;
  {
    FakeImds fake(loop);
    ImdsClient imds(loop, {fake.url(), 21600s, 1000ms, false});
    std::optional<core::Result<std::string, Ec2Error>> id, region, zone, mac;
    imds.instance_id([&](auto r) { id = std::move(r); });
    imds.region([&](auto r) { region = std::move(r); });
    imds.availability_zone([&](auto r) { zone = std::move(r); });
    imds.mac([&](auto r) { mac = std::move(r); });
    EXPECT_EQ(wait(loop, id).value(), "i-0aaa1111bbbb2222c");
    EXPECT_EQ(wait(loop, region).value(), "eu-west-1");
    EXPECT_EQ(wait(loop, zone).value(), "eu-west-1a");
    auto m = wait(loop, mac);
    ASSERT_EQ(m.value(), "02:11:22:33:44:55");
    std::optional<core::Result<ImdsInterface, Ec2Error>> ifc;
    imds.interface(m.value(), [&](auto r) { ifc = std::move(r); });
    auto i = wait(loop, ifc);
    ASSERT_TRUE(i.has_value()) << i.error().describe();
    EXPECT_EQ(i->interface_id, "eni-0fff1111eeee2222d");
    EXPECT_EQ(i->subnet_id, "subnet-0aaa0000bbbb1111c");
    EXPECT_EQ(i->vpc_id, "vpc-0123456789abcdef0");
    EXPECT_EQ(i->private_ips, (std::vector<std::string>{"198.18.1.10", "198.18.1.11"}));
    EXPECT_EQ(fake.token_puts(), 1) << "one token serves every request";
    EXPECT_EQ(fake.unauthorized(), 0);
    EXPECT_EQ(fake.requests()[0].header("x-aws-ec2-metadata-token-ttl-seconds"), "21600");
  }
  expect_clean_close(loop);
}

TEST(Imds, StaleTokenIsRefetchedOn401) {
  uv::Loop loop;
  {
    FakeImds fake(loop);
    ImdsClient imds(loop, {fake.url(), 21600s, 1000ms, false});
    std::optional<core::Result<std::string, Ec2Error>> a, b;
    imds.instance_id([&](auto r) { a = std::move(r); });
    ASSERT_TRUE(wait(loop, a).has_value());
    fake.revoke();  // e.g. IMDS restarted
    imds.instance_id([&](auto r) { b = std::move(r); });
    auto rb = wait(loop, b);
    ASSERT_TRUE(rb.has_value()) << rb.error().describe();
    EXPECT_EQ(fake.token_puts(), 2);
    EXPECT_EQ(fake.unauthorized(), 1);
  }
  expect_clean_close(loop);
}

TEST(Imds, TokenIsRefreshedBeforeItExpires) {
  uv::Loop loop;
  {
    FakeImds fake(loop);
    // TTL 1 s: refreshed after half of it.
    ImdsClient imds(loop, {fake.url(), 1s, 1000ms, false});
    std::optional<core::Result<std::string, Ec2Error>> a, b;
    imds.region([&](auto r) { a = std::move(r); });
    ASSERT_TRUE(wait(loop, a).has_value());
    bool waited = false;
    uv::Timer t(loop);
    ASSERT_FALSE(t.start(600ms, 0ms, [&] { waited = true; }));
    ASSERT_TRUE(run_until(loop, [&] { return waited; }));
    imds.region([&](auto r) { b = std::move(r); });
    ASSERT_TRUE(wait(loop, b).has_value());
    EXPECT_EQ(fake.token_puts(), 2);
    EXPECT_EQ(fake.unauthorized(), 0) << "the refresh happens before IMDS would refuse it";
  }
  expect_clean_close(loop);
}

TEST(Imds, SpotNoticeAndLifecycleState) {
  uv::Loop loop;
  {
    FakeImds fake(loop);
    ImdsClient imds(loop, {fake.url(), 21600s, 1000ms, false});
    std::optional<core::Result<std::optional<SpotAction>, Ec2Error>> s1, s2;
    std::optional<core::Result<std::optional<std::string>, Ec2Error>> l1, l2;
    imds.spot_instance_action([&](auto r) { s1 = std::move(r); });
    imds.target_lifecycle_state([&](auto r) { l1 = std::move(r); });
    auto r1 = wait(loop, s1);
    ASSERT_TRUE(r1.has_value()) << r1.error().describe();
    EXPECT_FALSE(r1->has_value()) << "404 means no notice";
    auto rl1 = wait(loop, l1);
    ASSERT_TRUE(rl1.has_value());
    EXPECT_FALSE(rl1->has_value());
    fake.set("spot/instance-action", R"({"action": "terminate", "time": "2026-11-22T06:40:00Z"})");
    fake.set("autoscaling/target-lifecycle-state", "Terminated");
    imds.spot_instance_action([&](auto r) { s2 = std::move(r); });
    imds.target_lifecycle_state([&](auto r) { l2 = std::move(r); });
    auto r2 = wait(loop, s2);
    ASSERT_TRUE(r2.has_value() && r2->has_value());
    EXPECT_EQ((*r2)->action, "terminate");
    EXPECT_EQ((*r2)->time, "2026-11-22T06:40:00Z");
    EXPECT_EQ(*wait(loop, l2).value(), "Terminated");
  }
  expect_clean_close(loop);
}

TEST(Imds, NoV1FallbackUnlessAllowed) {
  uv::Loop loop;
  {
    FakeImds fake(loop);
    fake.v1_only();
    ImdsClient strict(loop, {fake.url(), 21600s, 1000ms, false});
    std::optional<core::Result<std::string, Ec2Error>> a, b;
    strict.instance_id([&](auto r) { a = std::move(r); });
    auto ra = wait(loop, a);
    ASSERT_FALSE(ra.has_value());
    EXPECT_NE(ra.error().message.find("IMDSv2 token request"), std::string::npos);
    EXPECT_NE(ra.error().message.find("IMDSv1 fallback is disabled"), std::string::npos);
    EXPECT_EQ(fake.requests().size(), 1u) << "no GET without a token";

    ImdsClient lax(loop, {fake.url(), 21600s, 1000ms, true});
    lax.instance_id([&](auto r) { b = std::move(r); });
    auto rb = wait(loop, b);
    ASSERT_TRUE(rb.has_value()) << rb.error().describe();
    EXPECT_EQ(rb.value(), "i-0aaa1111bbbb2222c");
  }
  expect_clean_close(loop);
}

TEST(Imds, UnreachableOrStalledImdsFailsWithinTimeout) {
  uv::Loop loop;
  {
    StubServer stall(loop, [](const StubRequest&) { return StubReply::stall(); });
    ImdsClient imds(loop, {stall.url(""), 21600s, 200ms, false});
    std::optional<core::Result<std::string, Ec2Error>> a;
    const auto start = std::chrono::steady_clock::now();
    imds.instance_id([&](auto r) { a = std::move(r); });
    auto ra = wait(loop, a);
    ASSERT_FALSE(ra.has_value());
    EXPECT_EQ(ra.error().kind, ErrorKind::Timeout);
    EXPECT_LT(std::chrono::steady_clock::now() - start, 1500ms);
  }
  expect_clean_close(loop);
}

TEST(RoleCredentialsParse, ValidAndInvalid) {
  auto c = parse_role_credentials(
      R"({"Code":"Success","AccessKeyId":"ASIA1","SecretAccessKey":"s","Token":"t",)"
      R"("Expiration":"2026-11-22T06:30:00Z"})");
  ASSERT_TRUE(c.has_value()) << c.error();
  EXPECT_EQ(c->access_key_id, "ASIA1");
  EXPECT_EQ(c->session_token, "t");
  EXPECT_EQ(c->expiration, parse_iso8601("2026-11-22T06:30:00Z"));
  EXPECT_EQ(std::chrono::system_clock::to_time_t(*c->expiration), 1795329000);
  EXPECT_FALSE(parse_role_credentials("{").has_value());
  auto bad = parse_role_credentials(R"({"Code":"AssumeRoleUnauthorizedAccess","Message":"no"})");
  ASSERT_FALSE(bad.has_value());
  EXPECT_NE(bad.error().find("AssumeRoleUnauthorizedAccess"), std::string::npos);
  EXPECT_FALSE(parse_role_credentials(
                   R"({"AccessKeyId":"A","SecretAccessKey":"s","Token":"t","Expiration":"soon"})")
                   .has_value());
}

// Regression (tests/fuzz/crashes/fuzz_imds_json/expiration_after_2262): a year past what
// system_clock holds overflowed a signed integer in from_time_t; it is now refused.
TEST(RoleCredentialsParse, ExpirationBeyondTheClockRangeIsRefused) {
  EXPECT_FALSE(parse_iso8601("2326-11-22T06:30:00Z").has_value());
  EXPECT_FALSE(parse_iso8601("9999-12-31T23:59:59Z").has_value());
  auto last = parse_iso8601("2262-04-11T00:00:00Z");
  ASSERT_TRUE(last.has_value());
  EXPECT_EQ(std::chrono::system_clock::to_time_t(*last), 9223286400);
  auto c = parse_role_credentials(
      R"({"AccessKeyId":"A","SecretAccessKey":"s","Token":"t","Expiration":"2326-11-22T06:30:00Z"})");
  ASSERT_FALSE(c.has_value());
  EXPECT_EQ(c.error(), "bad Expiration '2326-11-22T06:30:00Z'");
}

TEST(RoleCredentials, RefreshesBeforeExpirationAndKeepsValidOnesOnFailure) {
  uv::Loop loop;
  {
    FakeImds fake(loop);
    fake.set_credentials("ASIAFIRST", 3s);
    ImdsOptions io{fake.url(), 21600s, 1000ms, false};
    io.retry_base = 5ms;  // IMDS retries each 500 three times (1 + 3 requests) first
    ImdsClient imds(loop, io);
    // Refresh 2.5 s before the 3 s expiry, i.e. after ~0.5 s; retry failures every 100 ms.
    RoleCredentials role(loop, imds, {2500ms, 100ms});
    std::vector<std::string> events;
    role.start([&](const Ec2Error* e) { events.push_back(e == nullptr ? "ok" : e->code); });
    EXPECT_FALSE(role.current(std::chrono::system_clock::now()).has_value());
    ASSERT_TRUE(run_until(loop, [&] { return events.size() == 1; }));
    auto first = role.current(std::chrono::system_clock::now());
    ASSERT_TRUE(first.has_value()) << role.status();
    EXPECT_EQ(first->access_key_id, "ASIAFIRST");
    EXPECT_EQ(first->session_token, "tokASIAFIRST");
    // The next two refreshes fail (IMDS 500 on every retry); the old credentials stay in use
    // meanwhile.
    fake.fail_next(8);
    fake.set_credentials("ASIASECOND", 3600s);
    ASSERT_TRUE(run_until(loop, [&] { return events.size() == 2; }));
    EXPECT_EQ(events[1], "HTTP500");
    auto during = role.current(std::chrono::system_clock::now());
    ASSERT_TRUE(during.has_value());
    EXPECT_EQ(during->access_key_id, "ASIAFIRST");
    ASSERT_TRUE(run_until(loop, [&] { return events.size() == 4; }));
    EXPECT_EQ(events, (std::vector<std::string>{"ok", "HTTP500", "HTTP500", "ok"}));
    EXPECT_EQ(role.current(std::chrono::system_clock::now())->access_key_id, "ASIASECOND");
    // Expired credentials are never handed out.
    EXPECT_FALSE(role.current(std::chrono::system_clock::now() + 7200s).has_value());
  }
  expect_clean_close(loop);
}

// The daemon's wiring: a Client signing with instance-role credentials from IMDS. The call is
// queued before the credentials arrive and goes out once they do.
TEST(RoleCredentials, ClientSignsWithRoleCredentialsOnceTheyArrive) {
  uv::Loop loop;
  {
    FakeImds fake(loop);
    StubServer ec2(loop, [](const StubRequest&) {
      return StubReply::ok(
          "<DescribeSubnetsResponse><requestId>r</requestId><subnetSet/></"
          "DescribeSubnetsResponse>");
    });
    ImdsClient imds(loop, {fake.url(), 21600s, 1000ms, false});
    auto role = std::make_shared<RoleCredentials>(loop, imds);
    ClientOptions o;
    o.region = "eu-west-1";
    o.endpoint = ec2.url();
    o.backoff.base = 5ms;
    Client client(loop, o, role);
    std::optional<Ec2Result<DescribeSubnetsOk>> got;
    client.describe_subnets({}, {}, [&](Ec2Result<DescribeSubnetsOk> r) { got = std::move(r); });
    role->start();
    ASSERT_TRUE(run_until(loop, [&] { return got.has_value(); }));
    ASSERT_TRUE(got->has_value()) << got->error().describe();
    ASSERT_EQ(ec2.requests().size(), 1u);
    EXPECT_EQ(ec2.requests()[0].header("x-amz-security-token"), "tokASIAFIRST");
    EXPECT_NE(ec2.requests()[0].header("authorization").find("Credential=ASIAFIRST/"),
              std::string::npos);
  }
  expect_clean_close(loop);
}

TEST(Credentials, StaticAndEnvironment) {
  StaticCredentials empty(Credentials{});
  EXPECT_FALSE(empty.current(std::chrono::system_clock::now()).has_value());
  EXPECT_NE(empty.status().find("lack"), std::string::npos);
  setenv("AWS_ACCESS_KEY_ID", "AKIDENV", 1);
  setenv("AWS_SECRET_ACCESS_KEY", "envsecret", 1);
  setenv("AWS_SESSION_TOKEN", "envtok", 1);
  auto c = credentials_from_env();
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->access_key_id, "AKIDENV");
  EXPECT_EQ(c->session_token, "envtok");
  unsetenv("AWS_SECRET_ACCESS_KEY");
  EXPECT_FALSE(credentials_from_env().has_value());
  unsetenv("AWS_ACCESS_KEY_ID");
  unsetenv("AWS_SESSION_TOKEN");
}

}  // namespace
}  // namespace hanat::ec2
