// SPDX-License-Identifier: GPL-2.0-or-later
// ec2::Client against the in-process stub: signing on the wire, retries of throttling, 5xx,
// stalls, resets, truncated and invalid bodies, no retry of client errors, pagination,
// priorities, token-bucket pacing, superseded writes, cancellation and clean shutdown.

#include "ec2/client.h"

#include <gtest/gtest.h>

#include "ec2/autoscaling.h"
#include "tests/support/uv_test_util.h"
#include "tests/unit/ec2/fixture.h"
#include "tests/unit/ec2/stub_server.h"

namespace hanat::ec2 {
namespace {

using hanat::testing::expect_clean_close;
using hanat::testing::run_until;
using testing::fixture;
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

std::string ok_reply(const std::string& action) {
  return "<" + action +
         "Response xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\">"
         "<requestId>req-1</requestId><return>true</return></" +
         action + "Response>";
}

ClientOptions options(const StubServer& srv) {
  ClientOptions o;
  o.region = "eu-west-1";
  o.endpoint = srv.url();
  o.attempt_timeout = 300ms;
  o.default_deadline = 4000ms;
  o.backoff.base = 5ms;
  o.backoff.throttle_base = 10ms;
  o.backoff.cap = 40ms;
  o.jitter_seed = 42;
  return o;
}

std::shared_ptr<const CredentialSource> creds() {
  return std::make_shared<StaticCredentials>(
      Credentials{"AKIDTEST", "secret", "session-token", std::nullopt});
}

ReplaceRouteRequest replace(const std::string& rtb, const std::string& eni) {
  ReplaceRouteRequest r;
  r.route_table_id = rtb;
  r.target = RouteTarget::eni(eni);
  return r;
}

// Runs one ReplaceRoute through a stub whose replies are given in order (the last repeats).
struct Outcome {
  std::optional<Ec2Result<SimpleOk>> result;
  size_t requests = 0;
  std::chrono::milliseconds took{0};
};

Outcome run_replace(std::vector<StubReply> replies, ClientOptions* tweak = nullptr,
                    Millis deadline = 0ms) {
  uv::Loop loop;
  Outcome out;
  {
    size_t n = 0;
    StubServer srv(loop,
                   [&](const StubRequest&) { return replies[std::min(n++, replies.size() - 1)]; });
    ClientOptions o = options(srv);
    if (tweak != nullptr) {
      o.attempt_timeout = tweak->attempt_timeout;
      o.backoff = tweak->backoff;
    }
    Client c(loop, o, creds());
    const auto start = std::chrono::steady_clock::now();
    c.replace_route(replace("rtb-1", "eni-1"), {Priority::RouteWrite, deadline},
                    [&](Ec2Result<SimpleOk> r) { out.result = std::move(r); });
    EXPECT_TRUE(run_until(
        loop, [&] { return out.result.has_value(); }, 8s));
    out.took = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::steady_clock::now() - start);
    out.requests = srv.requests().size();
    EXPECT_EQ(c.pending(), 0u);
  }
  expect_clean_close(loop);
  return out;
}

// The Auto Scaling calls (ec2/autoscaling.h) go through the same client with the service
// name in the SigV4 scope and Auto Scaling's API version in the form.
TEST(Client, SignsForAnotherService) {
  uv::Loop loop;
  {
    StubServer srv(loop, [](const StubRequest&) {
      return StubReply::ok(
          "<CompleteLifecycleActionResponse><CompleteLifecycleActionResult/><ResponseMetadata>"
          "<RequestId>r-1</RequestId></ResponseMetadata></CompleteLifecycleActionResponse>");
    });
    ClientOptions o = options(srv);
    o.service = std::string(kAutoScalingService);
    Client c(loop, o, creds());
    CompleteLifecycleActionRequest req;
    req.group_name = "g";
    req.hook_name = "h";
    req.instance_id = "i-1";
    std::optional<Ec2Result<SimpleOk>> got;
    c.call(req, {Priority::Write, 0ms},
           std::function<void(Ec2Result<SimpleOk>)>(
               [&](Ec2Result<SimpleOk> r) { got = std::move(r); }));
    ASSERT_TRUE(run_until(loop, [&] { return got.has_value(); }));
    ASSERT_TRUE(got->has_value()) << got->error().describe();
    EXPECT_EQ((*got)->request_id, "r-1");
    ASSERT_EQ(srv.requests().size(), 1u);
    const StubRequest& r0 = srv.requests()[0];
    EXPECT_NE(r0.header("authorization").find("/eu-west-1/autoscaling/aws4_request, "),
              std::string::npos)
        << r0.header("authorization");
    EXPECT_EQ(r0.body.rfind("Action=CompleteLifecycleAction&Version=2011-01-01&", 0), 0u)
        << r0.body;
  }
  expect_clean_close(loop);
}

TEST(Client, SignsAndParses) {
  uv::Loop loop;
  {
    StubServer srv(loop, [](const StubRequest&) {
      return StubReply::ok(
          fixture("describe_route_tables.xml")
              .replace(fixture("describe_route_tables.xml").find("<nextToken>"), 0, ""));
    });
    Client c(loop, options(srv), creds());
    std::optional<Ec2Result<DescribeRouteTablesOk>> got;
    DescribeRouteTablesRequest req;
    req.filters = {{"vpc-id", {"vpc-0123456789abcdef0"}}};
    int pages = 0;
    srv.set_handler([&](const StubRequest& r) {
      ++pages;
      std::string body = fixture("describe_route_tables.xml");
      if (r.body.find("NextToken=") != std::string::npos) {
        // Second page: no nextToken, different table id.
        const size_t a = body.find("<nextToken>");
        const size_t b = body.find("</nextToken>") + 12;
        body.erase(a, b - a);
        const size_t id = body.find("rtb-0a1b2c3d4e5f60001");
        body.replace(id, 21, "rtb-0a1b2c3d4e5f60009");
      }
      return StubReply::ok(body);
    });
    c.describe_route_tables(req, {},
                            [&](Ec2Result<DescribeRouteTablesOk> r) { got = std::move(r); });
    ASSERT_TRUE(run_until(loop, [&] { return got.has_value(); }));
    ASSERT_TRUE(got->has_value()) << got->error().describe();
    // Two pages, concatenated.
    EXPECT_EQ(pages, 2);
    ASSERT_EQ((*got)->route_tables.size(), 4u);
    EXPECT_EQ((*got)->route_tables[2].route_table_id, "rtb-0a1b2c3d4e5f60009");
    EXPECT_TRUE((*got)->next_token.empty());
    ASSERT_EQ(srv.requests().size(), 2u);
    const StubRequest& r0 = srv.requests()[0];
    EXPECT_EQ(r0.method, "POST");
    EXPECT_EQ(r0.header("content-type"), "application/x-www-form-urlencoded; charset=utf-8");
    EXPECT_EQ(r0.header("x-amz-security-token"), "session-token");
    EXPECT_NE(r0.header("authorization").find("AWS4-HMAC-SHA256 Credential=AKIDTEST/"),
              std::string::npos);
    EXPECT_NE(r0.header("authorization")
                  .find("/eu-west-1/ec2/aws4_request, SignedHeaders="
                        "content-type;host;x-amz-date;x-amz-security-token,"),
              std::string::npos);
    EXPECT_EQ(r0.body,
              "Action=DescribeRouteTables&Version=2016-11-15&Filter.1.Name=vpc-id&"
              "Filter.1.Value.1=vpc-0123456789abcdef0");
    EXPECT_NE(srv.requests()[1].body.find("&NextToken=eyJ2IjoiMiIsImMiOiJwYWdlMiJ9"),
              std::string::npos);
    // The server verifies the signature the way EC2 does: recompute it from what arrived.
    HttpRequest hr;
    hr.host = r0.header("host");
    hr.headers = {{"Content-Type", r0.header("content-type")}};
    hr.body = r0.body;
    Credentials cr{"AKIDTEST", "secret", "session-token", std::nullopt};
    SigningParams sp;
    sp.region = "eu-west-1";
    std::tm tm{};
    strptime(r0.header("x-amz-date").c_str(), "%Y%m%dT%H%M%SZ", &tm);
    const auto when = std::chrono::system_clock::from_time_t(timegm(&tm));
    EXPECT_EQ(sign(hr, cr, sp, when).back().second, r0.header("authorization"));
  }
  expect_clean_close(loop);
}

TEST(ClientFaults, ThrottlingIsRetriedUntilSuccess) {
  auto o = run_replace({StubReply::status_body(503, fixture("throttling.xml")),
                        StubReply::status_body(503, fixture("throttling.xml")),
                        StubReply::ok(ok_reply("ReplaceRoute"))});
  ASSERT_TRUE(o.result->has_value()) << o.result->error().describe();
  EXPECT_EQ(o.requests, 3u);
}

// The latency observer (hanat_ec2_request_duration_seconds) sees every HTTP attempt, a
// retried one too, with its action, and a stalled attempt with the time it took to fail.
TEST(ClientLatency, ObserverSeesEachAttemptWithItsAction) {
  uv::Loop loop;
  {
    size_t n = 0;
    std::vector<StubReply> replies{StubReply::stall(),
                                   StubReply::status_body(503, fixture("throttling.xml")),
                                   StubReply::ok(ok_reply("ReplaceRoute"))};
    StubServer srv(loop,
                   [&](const StubRequest&) { return replies[std::min(n++, replies.size() - 1)]; });
    Client c(loop, options(srv), creds());
    std::vector<std::pair<std::string, std::chrono::steady_clock::duration>> seen;
    c.set_attempt_observer([&](const std::string& action, std::chrono::steady_clock::duration d) {
      seen.emplace_back(action, d);
    });
    std::optional<Ec2Result<SimpleOk>> got;
    c.replace_route(replace("rtb-1", "eni-1"), {Priority::RouteWrite, 0ms},
                    [&](Ec2Result<SimpleOk> r) { got = std::move(r); });
    ASSERT_TRUE(run_until(
        loop, [&] { return got.has_value(); }, 8s));
    ASSERT_TRUE(got->has_value()) << got->error().describe();
    ASSERT_EQ(seen.size(), 3u);
    for (const auto& [action, d] : seen) EXPECT_EQ(action, "ReplaceRoute");
    // The first attempt stalled until the 300 ms attempt timeout; the others answered.
    EXPECT_GE(seen[0].second, 290ms);
    EXPECT_LT(seen[2].second, 290ms);
  }
  expect_clean_close(loop);
}

TEST(ClientFaults, ServerErrorsAreRetried) {
  auto o = run_replace({StubReply::status_body(500, fixture("html_500.html")),
                        StubReply::status_body(503, ""), StubReply::ok(ok_reply("ReplaceRoute"))});
  ASSERT_TRUE(o.result->has_value()) << o.result->error().describe();
  EXPECT_EQ(o.requests, 3u);
}

TEST(ClientFaults, StalledResponseTimesOutAndIsRetried) {
  auto o = run_replace({StubReply::stall(), StubReply::ok(ok_reply("ReplaceRoute"))});
  ASSERT_TRUE(o.result->has_value()) << o.result->error().describe();
  EXPECT_EQ(o.requests, 2u);
  EXPECT_GE(o.took, 290ms);  // one attempt timeout
}

TEST(ClientFaults, ResetAndTruncatedRepliesAreRetried) {
  auto o = run_replace({StubReply::reset(), StubReply::truncate(ok_reply("ReplaceRoute")),
                        StubReply::ok(ok_reply("ReplaceRoute"))});
  ASSERT_TRUE(o.result->has_value()) << o.result->error().describe();
  EXPECT_EQ(o.requests, 3u);
}

TEST(ClientFaults, AlwaysStallingFailsWithTimeoutWithinDeadline) {
  auto o = run_replace({StubReply::stall()}, nullptr, 700ms);
  ASSERT_FALSE(o.result->has_value());
  EXPECT_EQ(o.result->error().kind, ErrorKind::Timeout);
  EXPECT_GE(o.result->error().attempts, 2);
  EXPECT_LT(o.took, 1500ms) << "the call's deadline bounds all attempts";
}

TEST(ClientFaults, InvalidXmlGivesUpAfterMaxAttempts) {
  ClientOptions t;
  t.attempt_timeout = 300ms;
  t.backoff.base = 2ms;
  t.backoff.cap = 10ms;
  t.backoff.max_attempts = 3;
  auto o = run_replace({StubReply::ok("<ReplaceRouteResponse><oops")}, &t);
  ASSERT_FALSE(o.result->has_value());
  EXPECT_EQ(o.result->error().kind, ErrorKind::BadReply);
  EXPECT_NE(o.result->error().message.find("invalid XML"), std::string::npos);
  EXPECT_EQ(o.result->error().attempts, 3);
  EXPECT_EQ(o.requests, 3u);
}

TEST(ClientFaults, ClientErrorsAreNeverRetried) {
  auto o = run_replace({StubReply::status_body(400, fixture("error_not_found.xml")),
                        StubReply::ok(ok_reply("ReplaceRoute"))});
  ASSERT_FALSE(o.result->has_value());
  EXPECT_EQ(o.result->error().code, "InvalidRouteTableID.NotFound");
  EXPECT_EQ(o.result->error().request_id, "ea966190-f9aa-478e-9ede-example");
  EXPECT_EQ(o.requests, 1u);
  auto a = run_replace({StubReply::status_body(401, fixture("error_auth.xml")),
                        StubReply::ok(ok_reply("ReplaceRoute"))});
  ASSERT_FALSE(a.result->has_value());
  EXPECT_EQ(a.result->error().code, "AuthFailure");
  EXPECT_EQ(a.requests, 1u);
}

TEST(ClientPacing, RouteWritesGoFirst) {
  uv::Loop loop;
  {
    std::vector<std::string> order;
    StubServer srv(loop, [&](const StubRequest& r) {
      order.push_back(action_of(r));
      return StubReply::ok(action_of(r) == "DescribeSubnets" ? fixture("describe_subnets.xml")
                           : action_of(r) == "ModifyInstanceAttribute"
                               ? ok_reply("ModifyInstanceAttribute")
                               : ok_reply("ReplaceRoute"));
    });
    ClientOptions o = options(srv);
    o.max_in_flight = 1;
    Client c(loop, o, creds());
    int done = 0;
    auto count = [&](auto r) {
      EXPECT_TRUE(r.has_value()) << r.error().describe();
      ++done;
    };
    c.describe_subnets({}, {Priority::Read}, count);
    c.describe_subnets({}, {Priority::Read}, count);
    ModifyInstanceAttributeRequest m;
    m.instance_id = "i-1";
    c.modify_instance_attribute(m, {Priority::Write}, count);
    c.replace_route(replace("rtb-1", "eni-1"), {Priority::RouteWrite}, count);
    ASSERT_TRUE(run_until(loop, [&] { return done == 4; }));
    EXPECT_EQ(order, (std::vector<std::string>{"ReplaceRoute", "ModifyInstanceAttribute",
                                               "DescribeSubnets", "DescribeSubnets"}));
  }
  expect_clean_close(loop);
}

TEST(ClientPacing, TokenBucketSpacesWritesAfterTheBurst) {
  uv::Loop loop;
  {
    std::vector<Millis> at;
    StubServer srv(loop, [&](const StubRequest&) {
      at.push_back(loop.now());
      return StubReply::ok(ok_reply("ReplaceRoute"));
    });
    ClientOptions o = options(srv);
    o.buckets.mutating = {2, 10};  // burst 2, then one per 100 ms
    Client c(loop, o, creds());
    // Bounds are taken against the loop time the bucket started at: a request is received no
    // earlier than it was released (server-side gaps would also contain connect latency).
    const Millis start = loop.now();
    int done = 0;
    for (int i = 0; i < 5; ++i) {
      c.replace_route(replace("rtb-" + std::to_string(i), "eni-1"), {Priority::RouteWrite},
                      [&](Ec2Result<SimpleOk> r) {
                        EXPECT_TRUE(r.has_value());
                        ++done;
                      });
    }
    ASSERT_TRUE(run_until(loop, [&] { return done == 5; }));
    ASSERT_EQ(at.size(), 5u);
    EXPECT_GE(at[2] - start, 100ms) << "the 3rd write waits for one refill";
    EXPECT_GE(at[3] - start, 200ms);
    EXPECT_GE(at[4] - start, 300ms) << "3 writes beyond the burst need 300 ms of refill";
  }
  expect_clean_close(loop);
}

TEST(ClientPacing, ThrottlingDrainsTheLocalBucket) {
  uv::Loop loop;
  {
    std::vector<Millis> at;
    int n = 0;
    StubServer srv(loop, [&](const StubRequest&) {
      at.push_back(loop.now());
      return n++ == 0 ? StubReply::status_body(503, fixture("throttling.xml"))
                      : StubReply::ok(ok_reply("ReplaceRoute"));
    });
    ClientOptions o = options(srv);
    o.buckets.mutating = {50, 10};
    o.max_in_flight = 1;
    Client c(loop, o, creds());
    int done = 0;
    for (int i = 0; i < 3; ++i) {
      c.replace_route(replace("rtb-" + std::to_string(i), "eni-1"), {Priority::RouteWrite},
                      [&](Ec2Result<SimpleOk> r) {
                        EXPECT_TRUE(r.has_value());
                        ++done;
                      });
    }
    ASSERT_TRUE(run_until(loop, [&] { return done == 3; }));
    ASSERT_EQ(at.size(), 4u);
    // After RequestLimitExceeded (sent at at[0], drained when it arrived, later) the burst is
    // gone: the retry and the next call each wait for one refill (100 ms).
    EXPECT_GE(at[2] - at[0], 200ms);
  }
  expect_clean_close(loop);
}

TEST(ClientWrites, NewerWriteSupersedesOlderOnes) {
  uv::Loop loop;
  {
    std::vector<std::string> bodies;
    StubServer srv(loop, [&](const StubRequest& r) {
      bodies.push_back(r.body);
      // The first write hangs (an ambiguous failure: it may or may not have been applied).
      return bodies.size() == 1 ? StubReply::stall() : StubReply::ok(ok_reply("ReplaceRoute"));
    });
    ClientOptions o = options(srv);
    Client c(loop, o, creds());
    std::vector<std::pair<std::string, Ec2Result<SimpleOk>>> results;
    auto record = [&](std::string name) {
      return [&results, name](Ec2Result<SimpleOk> r) { results.emplace_back(name, std::move(r)); };
    };
    c.replace_route(replace("rtb-1", "eni-A"), {Priority::RouteWrite}, record("A"));
    ASSERT_TRUE(run_until(loop, [&] { return bodies.size() == 1; }));
    c.replace_route(replace("rtb-1", "eni-B"), {Priority::RouteWrite}, record("B"));
    c.replace_route(replace("rtb-1", "eni-C"), {Priority::RouteWrite}, record("C"));
    ASSERT_TRUE(run_until(loop, [&] { return results.size() == 3; }));
    // B never went out (C replaced it), A timed out and was not retried, C was applied last.
    ASSERT_EQ(bodies.size(), 2u);
    EXPECT_NE(bodies[0].find("eni-A"), std::string::npos);
    EXPECT_NE(bodies[1].find("eni-C"), std::string::npos);
    std::map<std::string, const Ec2Result<SimpleOk>*> by;
    for (auto& [n, r] : results) by[n] = &r;
    ASSERT_FALSE(by["A"]->has_value());
    EXPECT_EQ(by["A"]->error().kind, ErrorKind::Superseded);
    ASSERT_FALSE(by["B"]->has_value());
    EXPECT_EQ(by["B"]->error().kind, ErrorKind::Superseded);
    EXPECT_TRUE(by["C"]->has_value());
    EXPECT_EQ(results.back().first, "C");
  }
  expect_clean_close(loop);
}

TEST(ClientLifecycle, CancelCancelAllAndDestroy) {
  uv::Loop loop;
  {
    StubServer srv(loop, [](const StubRequest&) { return StubReply::stall(); });
    auto c = std::make_unique<Client>(loop, options(srv), creds());
    int cancelled_called = 0;
    auto id = c->replace_route(replace("rtb-1", "eni-1"), {},
                               [&](Ec2Result<SimpleOk>) { ++cancelled_called; });
    std::optional<Ec2Result<SimpleOk>> second;
    c->replace_route(replace("rtb-2", "eni-1"), {},
                     [&](Ec2Result<SimpleOk> r) { second = std::move(r); });
    c->replace_route(replace("rtb-3", "eni-1"), {}, [](Ec2Result<SimpleOk>) {});
    ASSERT_TRUE(run_until(loop, [&] { return srv.requests().size() == 3; }));
    c->cancel(id);
    EXPECT_EQ(c->pending(), 2u);
    c->cancel_all();
    ASSERT_TRUE(second.has_value());
    ASSERT_FALSE(second->has_value());
    EXPECT_EQ(second->error().kind, ErrorKind::Cancelled);
    EXPECT_EQ(c->pending(), 0u);
    // Destroying with calls in flight calls nothing and leaves no handle open.
    c->replace_route(replace("rtb-4", "eni-1"), {},
                     [&](Ec2Result<SimpleOk>) { ++cancelled_called; });
    ASSERT_TRUE(run_until(loop, [&] { return srv.requests().size() == 4; }));
    c.reset();
    srv.close();
    loop.run(UV_RUN_NOWAIT);
    EXPECT_EQ(cancelled_called, 0);
  }
  expect_clean_close(loop);
}

TEST(ClientLifecycle, MissingCredentialsFailClearlyAtTheDeadline) {
  uv::Loop loop;
  {
    StubServer srv(loop, [](const StubRequest&) { return StubReply::ok(""); });
    Client c(loop, options(srv), std::make_shared<StaticCredentials>(Credentials{}));
    std::optional<Ec2Result<SimpleOk>> got;
    c.replace_route(replace("rtb-1", "eni-1"), {Priority::RouteWrite, 200ms},
                    [&](Ec2Result<SimpleOk> r) { got = std::move(r); });
    ASSERT_TRUE(run_until(loop, [&] { return got.has_value(); }));
    ASSERT_FALSE(got->has_value());
    EXPECT_EQ(got->error().kind, ErrorKind::Credentials);
    EXPECT_NE(got->error().message.find("no usable AWS credentials"), std::string::npos);
    EXPECT_TRUE(srv.requests().empty());
  }
  expect_clean_close(loop);
}

TEST(ClientOptionsCheck, NamesWhatIsWrong) {
  ClientOptions o;
  EXPECT_EQ(validate(o).value_or(""), "ec2 client: region is empty");
  o.region = "eu-west-1";
  EXPECT_FALSE(validate(o).has_value());
  o.endpoint = "ftp://x";
  EXPECT_NE(validate(o).value_or("").find("'ftp://x' must start with http://"), std::string::npos);
  o.endpoint = "";
  o.region = "eu west";
  EXPECT_NE(validate(o).value_or("").find("region 'eu west'"), std::string::npos);
  o.region = "eu-west-1";
  o.buckets.mutating.refill_per_s = 0;
  EXPECT_TRUE(validate(o).has_value());
}

TEST(ClientPacing, CallStuckBehindTheBucketFailsAtItsDeadline) {
  uv::Loop loop;
  {
    StubServer srv(loop,
                   [](const StubRequest&) { return StubReply::ok(ok_reply("ReplaceRoute")); });
    ClientOptions o = options(srv);
    o.buckets.mutating = {1, 0.1};  // one write, then one per 10 s
    Client c(loop, o, creds());
    std::optional<Ec2Result<SimpleOk>> first, second;
    c.replace_route(replace("rtb-1", "eni-1"), {Priority::RouteWrite},
                    [&](Ec2Result<SimpleOk> r) { first = std::move(r); });
    c.replace_route(replace("rtb-2", "eni-1"), {Priority::RouteWrite, 200ms},
                    [&](Ec2Result<SimpleOk> r) { second = std::move(r); });
    ASSERT_TRUE(run_until(loop, [&] { return first && second; }));
    EXPECT_TRUE(first->has_value());
    ASSERT_FALSE(second->has_value());
    EXPECT_EQ(second->error().code, "DeadlineExceeded");
    EXPECT_NE(second->error().message.find("client-side pacing"), std::string::npos);
    EXPECT_EQ(srv.requests().size(), 1u);
  }
  expect_clean_close(loop);
}

TEST(ClientFaults, ErrorOnALaterPageFailsTheWholeDescribe) {
  uv::Loop loop;
  {
    StubServer srv(loop, [](const StubRequest& r) {
      if (r.body.find("NextToken=") != std::string::npos) {
        return StubReply::status_body(400, fixture("error_not_found.xml"));
      }
      return StubReply::ok(fixture("describe_route_tables.xml"));
    });
    Client c(loop, options(srv), creds());
    std::optional<Ec2Result<DescribeRouteTablesOk>> got;
    c.describe_route_tables({}, {},
                            [&](Ec2Result<DescribeRouteTablesOk> r) { got = std::move(r); });
    ASSERT_TRUE(run_until(loop, [&] { return got.has_value(); }));
    ASSERT_FALSE(got->has_value());
    EXPECT_EQ(got->error().code, "InvalidRouteTableID.NotFound");
    EXPECT_EQ(srv.requests().size(), 2u);
  }
  expect_clean_close(loop);
}

}  // namespace
}  // namespace hanat::ec2
