// SPDX-License-Identifier: GPL-2.0-or-later
// HttpClient (curl multi on the libuv loop) against the in-process stub server.

#include "ec2/http_client.h"

#include <gtest/gtest.h>
#include <unistd.h>

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

TEST(HttpClient, PostRoundTripSendsBodyAndHeaders) {
  uv::Loop loop;
  {
    StubServer srv(loop, [](const StubRequest& r) { return StubReply::ok("echo:" + r.body); });
    ASSERT_TRUE(srv.ok());
    HttpClient http(loop);
    std::optional<HttpResponse> got;
    auto id = http.send({"POST", srv.url("/x"), {"X-Test: 1"}, std::string(3000, 'a'), 0ms},
                        [&](HttpResponse r) { got = std::move(r); });
    ASSERT_TRUE(id.has_value());
    EXPECT_FALSE(got) << "completion must not run inside send()";
    ASSERT_TRUE(run_until(loop, [&] { return got.has_value(); }));
    EXPECT_TRUE(got->transport_ok()) << got->error;
    EXPECT_EQ(got->status, 200);
    EXPECT_EQ(got->body, "echo:" + std::string(3000, 'a'));
    ASSERT_EQ(srv.requests().size(), 1u);
    EXPECT_EQ(srv.requests()[0].method, "POST");
    EXPECT_EQ(srv.requests()[0].target, "/x");
    EXPECT_EQ(srv.requests()[0].header("x-test"), "1");
    // A large body must not make curl wait for "100 Continue".
    EXPECT_EQ(srv.requests()[0].header("expect"), "");
    EXPECT_EQ(http.in_flight(), 0u);
  }
  expect_clean_close(loop);
}

TEST(HttpClient, ReusesKeepAliveConnection) {
  uv::Loop loop;
  {
    StubServer srv(loop, [](const StubRequest&) { return StubReply::ok("ok"); });
    HttpClient http(loop);
    int done = 0;
    std::function<void()> next = [&] {
      (void)http.send({"GET", srv.url(), {}, {}, 0ms}, [&](HttpResponse r) {
        EXPECT_EQ(r.status, 200);
        if (++done < 3) next();
      });
    };
    next();
    ASSERT_TRUE(run_until(loop, [&] { return done == 3; }));
    EXPECT_EQ(srv.requests().size(), 3u);
    EXPECT_EQ(srv.connections(), 1) << "three sequential requests should share one connection";
  }
  expect_clean_close(loop);
}

TEST(HttpClient, ConnectionRefusedIsATransportError) {
  uv::Loop loop;
  {
    int port = 0;
    {
      StubServer srv(loop, [](const StubRequest&) { return StubReply::ok(""); });
      port = srv.port();
    }
    loop.run(UV_RUN_NOWAIT);  // let the listener close
    HttpClient http(loop);
    std::optional<HttpResponse> got;
    (void)http.send({"GET", "http://127.0.0.1:" + std::to_string(port) + "/", {}, {}, 2000ms},
                    [&](HttpResponse r) { got = std::move(r); });
    ASSERT_TRUE(run_until(loop, [&] { return got.has_value(); }));
    EXPECT_EQ(got->curl_code, CURLE_COULDNT_CONNECT) << got->error;
    EXPECT_EQ(got->status, 0);
  }
  expect_clean_close(loop);
}

TEST(HttpClient, StalledResponseTimesOutWithinItsTimeout) {
  uv::Loop loop;
  {
    StubServer srv(loop, [](const StubRequest&) { return StubReply::stall(); });
    HttpClient http(loop);
    std::optional<HttpResponse> got;
    const auto start = std::chrono::steady_clock::now();
    (void)http.send({"GET", srv.url(), {}, {}, 150ms}, [&](HttpResponse r) { got = std::move(r); });
    ASSERT_TRUE(run_until(
        loop, [&] { return got.has_value(); }, 3s));
    const auto took = std::chrono::steady_clock::now() - start;
    EXPECT_EQ(got->curl_code, CURLE_OPERATION_TIMEDOUT);
    EXPECT_GE(took, 140ms);
    EXPECT_LT(took, 1500ms);
    EXPECT_EQ(http.watched_sockets(), 0u);
  }
  expect_clean_close(loop);
}

TEST(HttpClient, ResetAndTruncatedRepliesAreErrors) {
  uv::Loop loop;
  {
    int n = 0;
    StubServer srv(loop, [&](const StubRequest&) {
      return n++ == 0 ? StubReply::reset() : StubReply::truncate(std::string(400, 'x'));
    });
    HttpClient http(loop);
    std::vector<HttpResponse> got;
    (void)http.send({"GET", srv.url(), {}, {}, 2000ms}, [&](HttpResponse r) {
      got.push_back(std::move(r));
      (void)http.send({"GET", srv.url(), {}, {}, 2000ms},
                      [&](HttpResponse r2) { got.push_back(std::move(r2)); });
    });
    ASSERT_TRUE(run_until(loop, [&] { return got.size() == 2; }));
    EXPECT_NE(got[0].curl_code, CURLE_OK);
    EXPECT_EQ(got[1].curl_code, CURLE_PARTIAL_FILE) << got[1].error;
  }
  expect_clean_close(loop);
}

TEST(HttpClient, CancelAndDestroyWithRequestsInFlightLeaveNothingOpen) {
  uv::Loop loop;
  {
    StubServer srv(loop, [](const StubRequest&) { return StubReply::stall(); });
    auto http = std::make_unique<HttpClient>(loop);
    int called = 0;
    auto a = http->send({"GET", srv.url(), {}, {}, 5000ms}, [&](HttpResponse) { ++called; });
    for (int i = 0; i < 5; ++i) {
      (void)http->send({"GET", srv.url(), {}, {}, 5000ms}, [&](HttpResponse) { ++called; });
    }
    ASSERT_TRUE(run_until(loop, [&] { return srv.requests().size() == 6; }));
    http->cancel(a.value());
    EXPECT_EQ(http->in_flight(), 5u);
    http.reset();
    srv.close();
    loop.run(UV_RUN_NOWAIT);
    EXPECT_EQ(called, 0);
  }
  expect_clean_close(loop);
}

TEST(HttpClient, ConnectTimeoutIsSeparateFromTheTotalTimeout) {
  // A listener with a full accept queue: Linux drops further SYNs, so a connect hangs.
  int lfd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  ASSERT_EQ(bind(lfd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ASSERT_EQ(listen(lfd, 0), 0);
  ASSERT_EQ(getsockname(lfd, reinterpret_cast<sockaddr*>(&a), &len), 0);
  std::vector<int> fillers;
  for (int i = 0; i < 4; ++i) {
    int f = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    (void)connect(f, reinterpret_cast<sockaddr*>(&a), sizeof a);
    fillers.push_back(f);
  }
  uv::Loop loop;
  {
    HttpClientOptions o;
    o.connect_timeout = 150ms;
    o.total_timeout = 5000ms;
    HttpClient http(loop, o);
    std::optional<HttpResponse> got;
    const auto start = std::chrono::steady_clock::now();
    (void)http.send(
        {"GET", "http://127.0.0.1:" + std::to_string(ntohs(a.sin_port)) + "/", {}, {}, 0ms},
        [&](HttpResponse r) { got = std::move(r); });
    ASSERT_TRUE(run_until(
        loop, [&] { return got.has_value(); }, 4s));
    const auto took = std::chrono::steady_clock::now() - start;
    EXPECT_EQ(got->curl_code, CURLE_OPERATION_TIMEDOUT) << got->error;
    EXPECT_NE(got->error.find("onnect"), std::string::npos) << got->error;
    EXPECT_LT(took, 1500ms);
  }
  expect_clean_close(loop);
  for (int f : fillers) close(f);
  close(lfd);
}

TEST(HttpClient, ManyConcurrentRequestsAllComplete) {
  uv::Loop loop;
  {
    StubServer srv(loop, [](const StubRequest& r) { return StubReply::ok(r.target); });
    HttpClient http(loop);
    std::map<std::string, std::string> got;
    for (int i = 0; i < 40; ++i) {
      const std::string path = "/r" + std::to_string(i);
      (void)http.send({"GET", srv.url(path), {}, {}, 3000ms},
                      [&, path](HttpResponse r) { got[path] = r.body; });
    }
    ASSERT_TRUE(run_until(loop, [&] { return got.size() == 40; }));
    for (const auto& [path, body] : got) EXPECT_EQ(path, body);
  }
  expect_clean_close(loop);
}

}  // namespace
}  // namespace hanat::ec2
