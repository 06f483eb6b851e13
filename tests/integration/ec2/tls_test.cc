// SPDX-License-Identifier: GPL-2.0-or-later
// TLS verification is always on for https: a self-signed server is refused with the system
// CA bundle, and accepted when its certificate is the configured CA (ClientOptions::ca_file).

#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>

#include "ec2/client.h"
#include "ec2/http_client.h"
#include "tests/support/uv_test_util.h"

extern char** environ;

namespace hanat::ec2 {
namespace {

using namespace std::chrono_literals;
using hanat::testing::expect_clean_close;
using hanat::testing::run_until;

class TlsServer : public ::testing::Test {
 protected:
  void SetUp() override {
    if (std::system("command -v openssl >/dev/null 2>&1") != 0) {
      GTEST_SKIP() << "the openssl command (Debian package openssl) is needed to make a test "
                      "certificate";
    }
    dir_ = std::filesystem::temp_directory_path() / ("hanat_ec2_tls_" + std::to_string(getpid()));
    std::filesystem::create_directories(dir_);
    const std::string gen =
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 -subj "
        "/CN=hanat-test "
        "-addext subjectAltName=IP:127.0.0.1 -keyout " +
        (dir_ / "key.pem").string() + " -out " + (dir_ / "cert.pem").string() + " >/dev/null 2>&1";
    ASSERT_EQ(std::system(gen.c_str()), 0) << "openssl could not make a test certificate";
    int fds[2];
    ASSERT_EQ(pipe(fds), 0);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
    posix_spawn_file_actions_addclose(&fa, fds[0]);
    const std::string script = HANAT_SOURCE_DIR "/tests/integration/ec2/tls_server.py";
    const std::string cert = (dir_ / "cert.pem").string(), key = (dir_ / "key.pem").string();
    const char* argv[] = {"python3", script.c_str(), cert.c_str(), key.c_str(), nullptr};
    ASSERT_EQ(posix_spawnp(&pid_, "python3", &fa, nullptr, const_cast<char**>(argv), environ), 0);
    posix_spawn_file_actions_destroy(&fa);
    close(fds[1]);
    // The server prints its port once listening; read it with a deadline (generous: CI runs
    // this binary at nice 19 beside the lab, where an interpreter's start can take seconds;
    // a server that dies closes the pipe and ends the wait at once).
    std::string line;
    const auto end = std::chrono::steady_clock::now() + 60s;
    while (line.find('\n') == std::string::npos && std::chrono::steady_clock::now() < end) {
      fd_set rd;
      FD_ZERO(&rd);
      FD_SET(fds[0], &rd);
      timeval tv{0, 100000};
      if (select(fds[0] + 1, &rd, nullptr, nullptr, &tv) > 0) {
        char buf[64];
        const ssize_t n = read(fds[0], buf, sizeof buf);
        if (n <= 0) break;
        line.append(buf, static_cast<size_t>(n));
      }
    }
    close(fds[0]);
    port_ = std::atoi(line.c_str());
    ASSERT_GT(port_, 0) << "tls_server.py did not start";
  }

  void TearDown() override {
    if (pid_ > 0) {
      kill(pid_, SIGTERM);
      waitpid(pid_, nullptr, 0);
    }
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
    expect_clean_close(loop_);
  }

  HttpResponse get(const std::string& ca_file) {
    HttpClientOptions o;
    o.ca_file = ca_file;
    HttpClient http(loop_, o);
    std::optional<HttpResponse> got;
    (void)http.send({"GET", "https://127.0.0.1:" + std::to_string(port_) + "/", {}, {}, 5000ms},
                    [&](HttpResponse r) { got = std::move(r); });
    EXPECT_TRUE(run_until(
        loop_, [&] { return got.has_value(); }, 10s));
    return got.value_or(HttpResponse{});
  }

  uv::Loop loop_;
  std::filesystem::path dir_;
  pid_t pid_ = -1;
  int port_ = 0;
};

TEST_F(TlsServer, SelfSignedCertificateIsRefused) {
  HttpResponse r = get("");
  EXPECT_EQ(r.curl_code, CURLE_PEER_FAILED_VERIFICATION) << r.error;
  EXPECT_EQ(r.status, 0);
}

TEST_F(TlsServer, TrustedCertificateIsAccepted) {
  HttpResponse r = get((dir_ / "cert.pem").string());
  EXPECT_EQ(r.curl_code, CURLE_OK) << r.error;
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "ok");
}

TEST_F(TlsServer, ClientReportsVerificationFailureWithoutRetrying) {
  ClientOptions o;
  o.region = "us-east-1";
  o.endpoint = "https://127.0.0.1:" + std::to_string(port_) + "/";
  // Generous: the test is about the verdict, and a TLS handshake under ASan on a loaded
  // machine has taken over 5 s.
  o.default_deadline = 20000ms;
  std::optional<Ec2Result<DescribeSubnetsOk>> got;
  {
    Client c(loop_, o,
             std::make_shared<StaticCredentials>(Credentials{"AKID", "secret", "", std::nullopt}));
    c.describe_subnets({}, {}, [&](Ec2Result<DescribeSubnetsOk> r) { got = std::move(r); });
    ASSERT_TRUE(run_until(
        loop_, [&] { return got.has_value(); }, 30s));
  }
  ASSERT_FALSE(got->has_value());
  EXPECT_EQ(got->error().code, "TlsVerification");
  EXPECT_EQ(got->error().attempts, 1);
}

}  // namespace
}  // namespace hanat::ec2
