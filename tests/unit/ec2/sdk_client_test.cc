// SPDX-License-Identifier: GPL-2.0-or-later
// Where ec2::Client and ImdsClient behave like the AWS SDKs: clock-skew correction from the
// Date header, per-API token buckets, MaxResults paging with a per-page deadline, proxies
// (IMDS never, EC2 as curl's environment says), IMDS retries of 5xx/429 without falling back
// to IMDSv1, environment credentials re-read before they expire, partition endpoints.

#include <gtest/gtest.h>

#include <cstdlib>

#include "ec2/client.h"
#include "ec2/imds.h"
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

std::string action_of(const StubRequest& r) {
  const size_t a = r.body.find("Action=");
  if (a == std::string::npos) return "";
  const size_t e = r.body.find('&', a);
  return r.body.substr(a + 7, e == std::string::npos ? std::string::npos : e - a - 7);
}

std::string param_of(const StubRequest& r, const std::string& name) {
  const std::string key = name + "=";
  size_t a = 0;
  while ((a = r.body.find(key, a)) != std::string::npos) {
    if (a == 0 || r.body[a - 1] == '&') break;
    ++a;
  }
  if (a == std::string::npos) return "";
  const size_t e = r.body.find('&', a);
  return r.body.substr(a + key.size(),
                       e == std::string::npos ? std::string::npos : e - a - key.size());
}

std::string ok_reply(const std::string& action) {
  return "<" + action + "Response><requestId>r</requestId><return>true</return></" + action +
         "Response>";
}

ClientOptions options(const StubServer& srv) {
  ClientOptions o;
  o.region = "eu-west-1";
  o.endpoint = srv.url();
  o.attempt_timeout = 500ms;
  o.default_deadline = 4000ms;
  o.backoff.base = 5ms;
  o.backoff.throttle_base = 10ms;
  o.backoff.cap = 40ms;
  o.jitter_seed = 7;
  return o;
}

std::shared_ptr<const CredentialSource> creds() {
  return std::make_shared<StaticCredentials>(Credentials{"AKIDTEST", "secret", "", std::nullopt});
}

ReplaceRouteRequest replace(const std::string& rtb) {
  ReplaceRouteRequest r;
  r.route_table_id = rtb;
  r.target = RouteTarget::eni("eni-1");
  return r;
}

std::string http_date(WallTime t) {
  const std::time_t tt = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S GMT", &tm);
  return buf;
}

// X-Amz-Date (20261202T195135Z) of a signed request, as a time point.
WallTime amz_date_of(const StubRequest& r) {
  std::tm tm{};
  const std::string d = r.header("x-amz-date");
  EXPECT_NE(strptime(d.c_str(), "%Y%m%dT%H%M%SZ", &tm), nullptr) << d;
  return std::chrono::system_clock::from_time_t(timegm(&tm));
}

const std::string kExpired =
    "<Response><Errors><Error><Code>RequestExpired</Code><Message>Request has expired."
    "</Message></Error></Errors><RequestID>r</RequestID></Response>";

// Sets an environment variable for one scope and restores the previous value.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const std::string& value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    setenv(name, value.c_str(), 1);
  }
  ~ScopedEnv() {
    if (old_) {
      setenv(name_, old_->c_str(), 1);
    } else {
      unsetenv(name_);
    }
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  const char* name_;
  std::optional<std::string> old_;
};

// ---------------------------------------------------------------- clock skew

TEST(ClockSkew, HttpDateParses) {
  auto t = parse_http_date("Wed, 02 Dec 2026 19:51:35 GMT");
  ASSERT_TRUE(t.has_value());
  EXPECT_EQ(std::chrono::system_clock::to_time_t(*t), 1796241095);
  EXPECT_FALSE(parse_http_date("").has_value());
  EXPECT_FALSE(parse_http_date("Wed, 02 Dec 2026 19:51:35").has_value());
  EXPECT_FALSE(parse_http_date("2026-12-02T19:51:35Z").has_value());
}

// The local clock is 10 minutes behind EC2's (a host at boot before chrony synced). EC2
// refuses the first signature with RequestExpired and a Date header; the client corrects its
// offset from that header and the one re-signed retry is accepted.
TEST(ClockSkew, RequestExpiredIsResignedOnceWithEc2sClock) {
  uv::Loop loop;
  {
    const auto skew = 10min;
    std::vector<StubRequest> seen;
    StubServer srv(loop, [&](const StubRequest& r) {
      seen.push_back(r);
      const WallTime ec2_now = std::chrono::system_clock::now() + skew;
      const auto signed_at = amz_date_of(r);
      StubReply rep = (ec2_now - signed_at > 5min || signed_at - ec2_now > 5min)
                          ? StubReply::status_body(400, kExpired)
                          : StubReply::ok(ok_reply("ReplaceRoute"));
      rep.headers.push_back("Date: " + http_date(ec2_now));
      return rep;
    });
    Client c(loop, options(srv), creds());
    std::optional<Ec2Result<SimpleOk>> got;
    c.replace_route(replace("rtb-1"), {Priority::RouteWrite},
                    [&](Ec2Result<SimpleOk> r) { got = std::move(r); });
    ASSERT_TRUE(run_until(loop, [&] { return got.has_value(); }));
    EXPECT_TRUE(got->has_value()) << got->error().describe();
    ASSERT_EQ(seen.size(), 2u);
    EXPECT_LT(amz_date_of(seen[0]), std::chrono::system_clock::now() + 1min);
    EXPECT_GT(amz_date_of(seen[1]), std::chrono::system_clock::now() + 9min);
    EXPECT_GT(c.clock_offset(), 9min);
    EXPECT_LT(c.clock_offset(), 11min);
    // Later calls are signed with the corrected clock from the start: no refusal.
    got.reset();
    c.replace_route(replace("rtb-2"), {Priority::RouteWrite},
                    [&](Ec2Result<SimpleOk> r) { got = std::move(r); });
    ASSERT_TRUE(run_until(loop, [&] { return got.has_value(); }));
    EXPECT_TRUE(got->has_value());
    EXPECT_EQ(seen.size(), 3u);
  }
  expect_clean_close(loop);
}

TEST(ClockSkew, SecondRefusalIsFinal) {
  uv::Loop loop;
  {
    StubServer srv(loop, [&](const StubRequest&) { return StubReply::status_body(400, kExpired); });
    Client c(loop, options(srv), creds());
    std::optional<Ec2Result<SimpleOk>> got;
    c.replace_route(replace("rtb-1"), {Priority::RouteWrite},
                    [&](Ec2Result<SimpleOk> r) { got = std::move(r); });
    ASSERT_TRUE(run_until(loop, [&] { return got.has_value(); }));
    ASSERT_FALSE(got->has_value());
    EXPECT_EQ(got->error().code, "RequestExpired");
    EXPECT_EQ(srv.requests().size(), 2u);
  }
  expect_clean_close(loop);
}

// ---------------------------------------------------------------- per-API buckets

TEST(RateLimits, SetNamesWhatIsWrong) {
  BucketLimits b;
  EXPECT_FALSE(b.set("ReplaceRoute", {100, 10}).has_value());
  EXPECT_FALSE(b.set("mutating", {40, 4}).has_value());
  EXPECT_EQ(b.of("ReplaceRoute", Bucket::Mutating).burst, 100);
  EXPECT_EQ(b.of("CreateRoute", Bucket::Mutating).burst, 40);
  auto bad = b.set("ReplaceRoutes", {1, 1});
  ASSERT_TRUE(bad.has_value());
  EXPECT_NE(bad->find("'ReplaceRoutes'"), std::string::npos) << *bad;
  EXPECT_NE(bad->find("ReplaceRoute,"), std::string::npos) << *bad;
  auto zero = b.set("CreateRoute", {0, 1});
  ASSERT_TRUE(zero.has_value());
  EXPECT_NE(zero->find("burst >= 1"), std::string::npos);
  EXPECT_TRUE(b.set("mutating", {5, 0}).has_value());
}

// EC2 meters each API on its own: ReplaceRoute, CreateRoute and AssociateAddress do not wait
// for each other's tokens, while a third ReplaceRoute beyond its burst does.
TEST(RateLimits, EachActionHasItsOwnBucket) {
  uv::Loop loop;
  {
    std::map<std::string, std::vector<Millis>> at;
    StubServer srv(loop, [&](const StubRequest& r) {
      at[action_of(r)].push_back(loop.now());
      return StubReply::ok(ok_reply(action_of(r)));
    });
    ClientOptions o = options(srv);
    // burst 2, then one per second: a call behind the burst waits a whole second, which no
    // loaded machine mistakes for the few milliseconds a call with tokens takes.
    o.buckets.mutating = {2, 1};
    Client c(loop, o, creds());
    const Millis start = loop.now();
    int done = 0;
    auto count = [&](auto r) {
      EXPECT_TRUE(r.has_value()) << r.error().describe();
      ++done;
    };
    for (int i = 0; i < 3; ++i) {
      c.replace_route(replace("rtb-r" + std::to_string(i)), {Priority::RouteWrite}, count);
    }
    for (int i = 0; i < 2; ++i) {
      CreateRouteRequest cr;
      cr.route_table_id = "rtb-c" + std::to_string(i);
      cr.target = RouteTarget::eni("eni-1");
      c.create_route(cr, {Priority::RouteWrite}, count);
      AssociateAddressRequest aa;
      aa.allocation_id = "eipalloc-" + std::to_string(i);
      aa.network_interface_id = "eni-1";
      c.associate_address(aa, {Priority::Write}, count);
    }
    ASSERT_TRUE(run_until(loop, [&] { return done == 7; }));
    ASSERT_EQ(at["ReplaceRoute"].size(), 3u);
    ASSERT_EQ(at["CreateRoute"].size(), 2u);
    ASSERT_EQ(at["AssociateAddress"].size(), 2u);
    EXPECT_LT(at["CreateRoute"][1] - start, 500ms) << "not behind the ReplaceRoute burst";
    EXPECT_LT(at["AssociateAddress"][1] - start, 500ms);
    EXPECT_GE(at["ReplaceRoute"][2] - start, 1000ms) << "the 3rd ReplaceRoute waits a refill";
    // The buckets a caller can read are the ones the calls drew on.
    EXPECT_LT(c.bucket("ReplaceRoute", Bucket::Mutating).tokens(loop.now()), 1.5);
  }
  expect_clean_close(loop);
}

TEST(RateLimits, PerActionOverrideAndPrepaidCalls) {
  uv::Loop loop;
  {
    std::vector<Millis> at;
    StubServer srv(loop, [&](const StubRequest&) {
      at.push_back(loop.now());
      return StubReply::ok(ok_reply("ReplaceRoute"));
    });
    ClientOptions o = options(srv);
    o.buckets.mutating = {1, 2};
    ASSERT_FALSE(o.buckets.set("ReplaceRoute", {3, 2}).has_value());
    Client c(loop, o, creds());
    const Millis start = loop.now();
    int done = 0;
    // A caller that paces itself takes the token from the client's own bucket first.
    TokenBucket& b = c.bucket("ReplaceRoute", Bucket::Mutating);
    ASSERT_TRUE(b.try_take(loop.now()));
    c.replace_route(replace("rtb-0"), {Priority::RouteWrite, 0ms, true}, [&](auto) { ++done; });
    for (int i = 1; i < 4; ++i) {
      c.replace_route(replace("rtb-" + std::to_string(i)), {Priority::RouteWrite},
                      [&](auto) { ++done; });
    }
    ASSERT_TRUE(run_until(loop, [&] { return done == 4; }));
    ASSERT_EQ(at.size(), 4u);
    // Burst 3 (override): the prepaid call and two more at once, the 4th after one refill.
    EXPECT_LT(at[2] - start, 400ms);
    EXPECT_GE(at[3] - start, 500ms);
  }
  expect_clean_close(loop);
}

// Requests reach EC2 some milliseconds after their token is taken, not always in order: a
// client spending EC2's whole burst would find EC2's bucket empty a moment before its own.
// The client keeps a tenth of each burst unused.
TEST(RateLimits, ATenthOfTheBurstIsKeptAsHeadroom) {
  uv::Loop loop;
  {
    std::vector<Millis> at;
    StubServer srv(loop, [&](const StubRequest&) {
      at.push_back(loop.now());
      return StubReply::ok(ok_reply("ReplaceRoute"));
    });
    ClientOptions o = options(srv);
    // EC2 allows 20 at once; the client sends 18, the 19th after a refill (one per 2 s: far
    // beyond how late a loaded machine delivers the first 18).
    o.buckets.mutating = {20, 0.5};
    Client c(loop, o, creds());
    const Millis start = loop.now();
    int done = 0;
    for (int i = 0; i < 19; ++i) {
      c.replace_route(replace("rtb-" + std::to_string(i)), {Priority::RouteWrite},
                      [&](auto) { ++done; });
    }
    ASSERT_TRUE(run_until(loop, [&] { return done == 19; }));
    ASSERT_EQ(at.size(), 19u);
    EXPECT_LT(at[17] - start, 1000ms);
    EXPECT_GE(at[18] - start, 2000ms) << "the 19th waits for a refill";
  }
  expect_clean_close(loop);
}

// ---------------------------------------------------------------- paging

// 500 route tables, MaxResults=100: five pages, each within the per-page deadline although
// the whole describe (paced at one page per 200 ms) takes longer than one deadline.
TEST(Paging, FiveHundredTablesArriveInPagesWithAPerPageDeadline) {
  uv::Loop loop;
  {
    std::vector<std::string> max_results;
    std::vector<std::string> tokens;
    StubServer srv(loop, [&](const StubRequest& r) {
      max_results.push_back(param_of(r, "MaxResults"));
      const std::string tok = param_of(r, "NextToken");
      tokens.push_back(tok);
      const int page = tok.empty() ? 0 : std::stoi(tok.substr(4));
      const int per = std::stoi(max_results.back());
      std::string body = "<DescribeRouteTablesResponse><requestId>r</requestId><routeTableSet>";
      for (int i = page * per; i < std::min(500, (page + 1) * per); ++i) {
        body += "<item><routeTableId>rtb-" + std::to_string(i) +
                "</routeTableId><vpcId>vpc-1</vpcId><routeSet/><associationSet/><tagSet/></item>";
      }
      body += "</routeTableSet>";
      if ((page + 1) * per < 500) {
        body += "<nextToken>page" + std::to_string(page + 1) + "</nextToken>";
      }
      body += "</DescribeRouteTablesResponse>";
      return StubReply::ok(body);
    });
    ClientOptions o = options(srv);
    o.buckets.non_mutating = {1, 5};  // one page per 200 ms after the first
    Client c(loop, o, creds());
    DescribeRouteTablesRequest req;
    req.filters.push_back({"tag:hanat:group", {"g"}});
    req.max_results = 100;
    std::optional<Ec2Result<DescribeRouteTablesOk>> got;
    const auto start = std::chrono::steady_clock::now();
    c.describe_route_tables(req, {Priority::Read, 400ms},
                            [&](Ec2Result<DescribeRouteTablesOk> r) { got = std::move(r); });
    ASSERT_TRUE(run_until(
        loop, [&] { return got.has_value(); }, 5s));
    ASSERT_TRUE(got->has_value()) << got->error().describe();
    EXPECT_GT(std::chrono::steady_clock::now() - start, 700ms);
    ASSERT_EQ((*got)->route_tables.size(), 500u);
    EXPECT_EQ((*got)->route_tables[499].route_table_id, "rtb-499");
    EXPECT_EQ(max_results, std::vector<std::string>(5, "100"));
    EXPECT_EQ(tokens, (std::vector<std::string>{"", "page1", "page2", "page3", "page4"}));
  }
  expect_clean_close(loop);
}

// ---------------------------------------------------------------- proxies

// IMDS with http_proxy/all_proxy pointing at a proxy that would break it: the requests go
// straight to IMDS. The EC2 client, on the contrary, uses the proxy unless no_proxy names
// the endpoint's host, as curl and the AWS SDKs do.
TEST(Proxy, ImdsNeverUsesOneAndEc2HonoursTheEnvironment) {
  uv::Loop loop;
  {
    int proxied = 0;
    StubServer proxy(loop, [&](const StubRequest& r) {
      ++proxied;
      if (r.target.starts_with("http://") && r.body.find("Action=") != std::string::npos) {
        return StubReply::ok(ok_reply("ReplaceRoute"));
      }
      return StubReply::status_body(502, "proxy says no");
    });
    StubServer imds_srv(loop, [&](const StubRequest& r) {
      if (r.method == "PUT") return StubReply::ok("tok");
      if (!r.header("x-forwarded-for").empty()) return StubReply::status_body(403, "");
      return StubReply::ok("i-0123");
    });
    StubServer ec2(loop,
                   [&](const StubRequest&) { return StubReply::ok(ok_reply("ReplaceRoute")); });
    ScopedEnv e1("http_proxy", proxy.url(""));
    ScopedEnv e2("HTTPS_PROXY", proxy.url(""));
    ScopedEnv e3("ALL_PROXY", proxy.url(""));
    ScopedEnv e4("no_proxy", "");
    ScopedEnv e5("NO_PROXY", "");

    ImdsClient imds(loop, {imds_srv.url(""), 21600s, 1000ms, false});
    std::optional<core::Result<std::string, Ec2Error>> id;
    imds.instance_id([&](auto r) { id = std::move(r); });
    ASSERT_TRUE(run_until(loop, [&] { return id.has_value(); }));
    ASSERT_TRUE(id->has_value()) << id->error().describe();
    EXPECT_EQ(id->value(), "i-0123");
    EXPECT_EQ(proxied, 0);
    EXPECT_EQ(imds_srv.requests().size(), 2u);

    {
      Client c(loop, options(ec2), creds());
      std::optional<Ec2Result<SimpleOk>> got;
      c.replace_route(replace("rtb-1"), {Priority::RouteWrite},
                      [&](Ec2Result<SimpleOk> r) { got = std::move(r); });
      ASSERT_TRUE(run_until(loop, [&] { return got.has_value(); }));
      EXPECT_TRUE(got->has_value()) << got->error().describe();
      EXPECT_EQ(proxied, 1) << "the EC2 endpoint goes through http_proxy";
      EXPECT_EQ(ec2.requests().size(), 0u);
    }
    {
      ScopedEnv np("no_proxy", "127.0.0.1");
      Client c(loop, options(ec2), creds());
      std::optional<Ec2Result<SimpleOk>> got;
      c.replace_route(replace("rtb-1"), {Priority::RouteWrite},
                      [&](Ec2Result<SimpleOk> r) { got = std::move(r); });
      ASSERT_TRUE(run_until(loop, [&] { return got.has_value(); }));
      EXPECT_TRUE(got->has_value()) << got->error().describe();
      EXPECT_EQ(proxied, 1) << "no_proxy names the endpoint: direct";
      EXPECT_EQ(ec2.requests().size(), 1u);
    }
  }
  expect_clean_close(loop);
}

// ---------------------------------------------------------------- IMDS retries

TEST(ImdsRetry, ServerErrorsAndThrottlingAreRetriedAndNeverSwitchToV1) {
  uv::Loop loop;
  {
    int puts = 0;
    int gets = 0;
    StubServer srv(loop, [&](const StubRequest& r) {
      if (r.method == "PUT") {
        // IMDS restarting: two 503s before the token.
        return ++puts <= 2 ? StubReply::status_body(503, "") : StubReply::ok("tok");
      }
      if (r.header("x-aws-ec2-metadata-token") != "tok") return StubReply::status_body(401, "");
      return ++gets == 1 ? StubReply::status_body(429, "") : StubReply::ok("i-0123");
    });
    ImdsOptions io{srv.url(""), 21600s, 1000ms, true};
    io.retry_base = 10ms;
    ImdsClient imds(loop, io);
    std::optional<core::Result<std::string, Ec2Error>> id;
    imds.instance_id([&](auto r) { id = std::move(r); });
    ASSERT_TRUE(run_until(loop, [&] { return id.has_value(); }));
    ASSERT_TRUE(id->has_value()) << id->error().describe();
    EXPECT_EQ(id->value(), "i-0123");
    EXPECT_TRUE(imds.has_token()) << "a 5xx is not a reason to use IMDSv1";
    EXPECT_EQ(puts, 3);
    EXPECT_EQ(gets, 2);
  }
  expect_clean_close(loop);
}

TEST(ImdsRetry, RetriesAreBounded) {
  uv::Loop loop;
  {
    StubServer srv(loop, [&](const StubRequest&) { return StubReply::status_body(500, ""); });
    ImdsOptions io{srv.url(""), 21600s, 1000ms, true};
    io.retry_base = 10ms;
    io.max_retries = 2;
    ImdsClient imds(loop, io);
    std::optional<core::Result<std::string, Ec2Error>> id;
    imds.instance_id([&](auto r) { id = std::move(r); });
    ASSERT_TRUE(run_until(loop, [&] { return id.has_value(); }));
    ASSERT_FALSE(id->has_value());
    EXPECT_EQ(id->error().http_status, 500);
    EXPECT_NE(id->error().message.find("after 2 retries"), std::string::npos)
        << id->error().message;
    EXPECT_EQ(srv.requests().size(), 3u) << "no GET without a token, no v1 after a 500";
    EXPECT_FALSE(imds.has_token());
  }
  expect_clean_close(loop);
}

// ---------------------------------------------------------------- credentials, endpoints

TEST(EnvCredentials, ReReadBeforeExpiration) {
  const auto now = std::chrono::system_clock::now();
  auto iso = [](WallTime t) {
    const std::time_t tt = std::chrono::system_clock::to_time_t(t);
    std::tm tm{};
    gmtime_r(&tt, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return std::string(buf);
  };
  ScopedEnv id("AWS_ACCESS_KEY_ID", "ASIAONE");
  ScopedEnv secret("AWS_SECRET_ACCESS_KEY", "s1");
  ScopedEnv tok("AWS_SESSION_TOKEN", "t1");
  ScopedEnv exp("AWS_CREDENTIAL_EXPIRATION", iso(now + 10min));
  EnvCredentials env(std::chrono::minutes(5));
  auto c = env.current(now);
  ASSERT_TRUE(c.has_value()) << env.status();
  EXPECT_EQ(c->access_key_id, "ASIAONE");
  // The environment gets newer session credentials (e.g. a reload re-read an environment
  // file); the held ones are kept while far from expiry...
  setenv("AWS_ACCESS_KEY_ID", "ASIATWO", 1);
  setenv("AWS_CREDENTIAL_EXPIRATION", (iso(now + 60min).substr(0, 19) + "+00:00").c_str(), 1);
  EXPECT_EQ(env.current(now + 1min)->access_key_id, "ASIAONE");
  // ... and replaced within 5 minutes of their expiration.
  EXPECT_EQ(env.current(now + 6min)->access_key_id, "ASIATWO");
  // Expired and nothing newer: none, and the status says why.
  EXPECT_FALSE(env.current(now + 61min).has_value());
  EXPECT_NE(env.status().find("expired"), std::string::npos) << env.status();
  setenv("AWS_CREDENTIAL_EXPIRATION", "tomorrow", 1);
  EXPECT_FALSE(credentials_from_env().has_value());
  EXPECT_NE(env.status().find("'tomorrow'"), std::string::npos) << env.status();
}

TEST(Endpoints, PartitionAwareDefaults) {
  EXPECT_EQ(default_endpoint("eu-west-1"), "https://ec2.eu-west-1.amazonaws.com/");
  EXPECT_EQ(default_endpoint("cn-north-1"), "https://ec2.cn-north-1.amazonaws.com.cn/");
  EXPECT_EQ(default_endpoint("cn-northwest-1"), "https://ec2.cn-northwest-1.amazonaws.com.cn/");
  EXPECT_EQ(default_endpoint("us-gov-west-1"), "https://ec2.us-gov-west-1.amazonaws.com/");
  EXPECT_EQ(default_endpoint("us-iso-east-1"), "https://ec2.us-iso-east-1.c2s.ic.gov/");
  EXPECT_EQ(default_endpoint("us-isob-east-1"), "https://ec2.us-isob-east-1.sc2s.sgov.gov/");
  uv::Loop loop;
  {
    ClientOptions o;
    o.region = "cn-north-1";
    Client c(loop, o, creds());
    EXPECT_EQ(c.endpoint_url(), "https://ec2.cn-north-1.amazonaws.com.cn/");
  }
  expect_clean_close(loop);
}

}  // namespace
}  // namespace hanat::ec2
