// SPDX-License-Identifier: GPL-2.0-or-later
// HttpClient in a network namespace of its own, whose path to the server can be cut
// silently (nftables drops every segment towards the server, the link stays up: a stalled
// host or ENI). A request abandoned on its timeout while the path was cut must never reach
// the server when the path returns: EC2 would apply a ReplaceRoute the daemon gave up on.

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <optional>
#include <string>

#include "ec2/http_client.h"
#include "tests/integration/probes/netns.h"
#include "tests/support/uv_test_util.h"
#include "tests/unit/ec2/stub_server.h"

namespace hanat::ec2 {
namespace {

using hanat::testing::expect_clean_close;
using hanat::testing::InNetns;
using hanat::testing::Netns;
using hanat::testing::run_until;
using hanat::testing::sh;
using testing::StubReply;
using testing::StubRequest;
using testing::StubServer;
using namespace std::chrono_literals;

class HttpNetns : public ::testing::Test {
 protected:
  void SetUp() override {
    if (std::string why = hanat::testing::netns_unavailable(); !why.empty()) {
      GTEST_SKIP() << why;
    }
    if (sh("nft --version") != 0) GTEST_SKIP() << "nft (nftables) is not installed";
    hanat::testing::reap_stale_netns();
    ns_ = std::make_unique<Netns>("hanat-pr-" + std::to_string(getpid()) + "-http");
    ASSERT_TRUE(ns_->ok()) << "ip netns add " << ns_->name() << " failed";
  }
  void TearDown() override { ns_.reset(); }

  // Drops (or lets through again) every TCP segment to `port` in the namespace: the client's
  // side of the path stalls, the link stays up.
  [[nodiscard]] bool cut(int port) const {
    return ns_->run("nft add table ip hanat_cut") &&
           ns_->run("nft add chain ip hanat_cut out '{ type filter hook output priority 0; }'") &&
           ns_->run("nft add rule ip hanat_cut out tcp dport " + std::to_string(port) + " drop");
  }
  [[nodiscard]] bool restore() const { return ns_->run("nft delete table ip hanat_cut"); }

  std::unique_ptr<Netns> ns_;
};

size_t count_body(const StubServer& srv, const std::string& body) {
  size_t n = 0;
  for (const auto& r : srv.requests()) n += r.body == body ? 1 : 0;
  return n;
}

// Sends one POST and runs the loop until its completion.
std::optional<HttpResponse> post(uv::Loop& loop, HttpClient& http, const StubServer& srv,
                                 const std::string& body, std::chrono::milliseconds timeout) {
  std::optional<HttpResponse> got;
  auto id = http.send({"POST", srv.url("/"), {}, body, timeout},
                      [&](HttpResponse r) { got = std::move(r); });
  if (!id.has_value()) return std::nullopt;
  (void)run_until(
      loop, [&] { return got.has_value(); }, timeout + 5s);
  return got;
}

TEST_F(HttpNetns, RequestAbandonedWhileThePathStalledNeverArrivesLater) {
  InNetns in(ns_->name());
  ASSERT_TRUE(in.ok()) << "setns into " << ns_->name() << " failed";
  uv::Loop loop;
  {
    StubServer srv(loop, [](const StubRequest&) { return StubReply::ok("<ok/>"); });
    ASSERT_TRUE(srv.ok());
    HttpClient http(loop);

    // Positive control: with the path working a request arrives, once, and its connection
    // stays open for the next request (keep-alive), as EC2's do.
    auto first = post(loop, http, srv, "Action=ReplaceRoute&n=1", 2s);
    ASSERT_TRUE(first.has_value());
    ASSERT_TRUE(first->transport_ok()) << first->error;
    EXPECT_EQ(first->status, 200);
    EXPECT_EQ(count_body(srv, "Action=ReplaceRoute&n=1"), 1u);
    ASSERT_EQ(srv.connections(), 1);

    // The path stalls. The next request goes out on the kept connection (its bytes queue in
    // the kernel, retransmitted on every RTO) and is abandoned on its timeout.
    ASSERT_TRUE(cut(srv.port())) << "nft rule in " << ns_->name() << " failed";
    auto lost = post(loop, http, srv, "Action=ReplaceRoute&n=2", 300ms);
    ASSERT_TRUE(lost.has_value()) << "the stalled request never completed";
    // curl's timeout, or the kernel's TCP_USER_TIMEOUT if its RTO timer gets there first.
    EXPECT_FALSE(lost->transport_ok());
    EXPECT_EQ(lost->status, 0) << "no reply can have arrived";
    EXPECT_EQ(srv.connections(), 1) << "the stalled request must have used the kept connection";
    EXPECT_EQ(http.in_flight(), 0u);

    // The path returns. An orphaned socket would retransmit the queued request on its next
    // RTO (200 ms minimum on loopback, doubling: 0.2, 0.6, 1.4, 3.0 s after it was first sent,
    // so within 3 s of the restore); watch that long and fail the moment it arrives.
    ASSERT_TRUE(restore());
    EXPECT_FALSE(run_until(
        loop, [&] { return count_body(srv, "Action=ReplaceRoute&n=2") > 0; }, 3500ms))
        << "the abandoned request reached the server after the path returned";

    // And the client works again, on a fresh connection: the stalled one was not reused.
    auto third = post(loop, http, srv, "Action=ReplaceRoute&n=3", 2s);
    ASSERT_TRUE(third.has_value());
    ASSERT_TRUE(third->transport_ok()) << third->error;
    EXPECT_EQ(count_body(srv, "Action=ReplaceRoute&n=3"), 1u);
    EXPECT_EQ(srv.connections(), 2);
    EXPECT_EQ(count_body(srv, "Action=ReplaceRoute&n=2"), 0u);
    srv.close();
  }
  expect_clean_close(loop);
}

}  // namespace
}  // namespace hanat::ec2
