// SPDX-License-Identifier: GPL-2.0-or-later
// hanatd's status socket abused by its clients, without the lab: hanatd runs as a real
// process as in tests/integration/daemon (its metadata endpoint is a closed loopback port,
// so only the shell runs: status socket, signals), fast enough for the sanitizer and
// valgrind runs. The lab version with probes and a failover is tests/e2e/abuse_e2e.py.

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <string>
#include <vector>

#include "tests/support/closed_port.h"
#include "tests/support/process.h"

namespace hanat {
namespace {

using testing::eventually;
using ::testing::HasSubstr;
using testing::Process;
using testing::TempDir;
using testing::write_file;

// A blocking client connection to the status socket; -1 when the connect failed.
int connect_to(const std::string& path) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strncpy(a.sun_path, path.c_str(), sizeof(a.sun_path) - 1);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
    ::close(fd);
    return -1;
  }
  timeval tv{2, 0};  // a read never hangs the test
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  return fd;
}

// Sends as much of `s` as the socket takes without blocking (MSG_NOSIGNAL: a closed peer
// must not kill the test).
size_t send_some(int fd, const std::string& s) {
  ssize_t n = ::send(fd, s.data(), s.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
  return n > 0 ? static_cast<size_t>(n) : 0;
}

// Reads until a newline, EOF or the 2 s receive timeout.
std::string read_line(int fd) {
  std::string out;
  char c = 0;
  while (::recv(fd, &c, 1, 0) == 1) {
    if (c == '\n') break;
    out.push_back(c);
  }
  return out;
}

class StatusAbuseTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // hanatd inherits the dispositions of this process: SIGPIPE must have its default
    // action (terminate) for the test to see what a daemon started by systemd would.
    std::signal(SIGPIPE, SIG_DFL);
    sock_ = dir_.file("hanatd.sock");
    write_file(dir_.file("hanat.toml"),
               "[group]\nname = \"lab\"\n[status]\nsocket = \"" + sock_ +
                   "\"\nmode = \"0600\"\nmax_clients = 16\nmax_request_bytes = 4096\n"
                   "idle_timeout = \"300ms\"\n[log]\nlevel = \"info\"\n"
                   "[ec2]\nmetadata_endpoint = \"" +
                   imds_.url() + "\"\n[nat]\negress_interface = \"lo\"\n");
    hanatd_ = std::make_unique<Process>(
        std::vector<std::string>{HANATD_BIN, "--config", dir_.file("hanat.toml")},
        dir_.file("hanatd.out"), dir_.file("hanatd.err"));
    ASSERT_TRUE(eventually([&] { return status_ok(); })) << hanatd_->err();
  }
  void TearDown() override {
    hanatd_->signal(SIGTERM);
    auto rc = hanatd_->wait(std::chrono::seconds(30));
    EXPECT_EQ(rc.value_or(-1), 0) << "hanatd did not exit cleanly:\n" << hanatd_->err();
  }
  // A normal client: one status request, one {"ok":true,...} reply.
  bool status_ok() {
    int fd = connect_to(sock_);
    if (fd < 0) return false;
    send_some(fd, "{\"cmd\":\"status\"}\n");
    std::string line = read_line(fd);
    ::close(fd);
    return line.find("\"ok\": true") != std::string::npos ||
           line.find("\"ok\":true") != std::string::npos;
  }
  bool alive() { return !hanatd_->wait(std::chrono::milliseconds(0)).has_value(); }

  TempDir dir_;
  testing::ClosedPort imds_;  // the metadata endpoint: refuses at once, never 169.254.169.254
  std::string sock_;
  std::unique_ptr<Process> hanatd_;
};

TEST_F(StatusAbuseTest, ClientsThatCloseBeforeReadingTheirRepliesDoNotKillHanatd) {
  // Regression: hanatd died of SIGPIPE when it wrote a reply to a client that had already
  // closed (found by tests/e2e/abuse_e2e.py).
  std::string burst;
  for (int i = 0; i < 200; ++i) burst += "{\"cmd\":\"status\"}\n";
  for (int round = 0; round < 30 && alive(); ++round) {
    int fd = connect_to(sock_);
    ASSERT_GE(fd, 0);
    send_some(fd, burst);
    ::close(fd);
  }
  EXPECT_TRUE(eventually([&] { return status_ok(); })) << hanatd_->err();
  EXPECT_TRUE(alive()) << hanatd_->err();
}

TEST_F(StatusAbuseTest, OversizedMalformedIdleAndExcessClientsGetClearAnswers) {
  // Oversized: more than max_request_bytes without a newline.
  int big = connect_to(sock_);
  ASSERT_GE(big, 0);
  send_some(big, std::string(6000, 'x'));
  EXPECT_THAT(read_line(big), HasSubstr("request too large"));
  ::close(big);

  // Malformed lines: each answered with ok=false and an error, the client kept.
  int bad = connect_to(sock_);
  ASSERT_GE(bad, 0);
  for (std::string line : {"{", "null", "{\"cmd\":42}", "\xff\xfe", "{\"cmd\":\"nope\"}"}) {
    send_some(bad, line + "\n");
    std::string reply = read_line(bad);
    EXPECT_THAT(reply, HasSubstr("\"ok\":false")) << line;
    EXPECT_THAT(reply, HasSubstr("\"error\"")) << line;
  }
  ::close(bad);

  // More clients than max_clients (16): the excess are told why and closed.
  std::vector<int> held;
  for (int i = 0; i < 16; ++i) held.push_back(connect_to(sock_));
  int extra = connect_to(sock_);
  ASSERT_GE(extra, 0);
  EXPECT_THAT(read_line(extra), HasSubstr("too many clients"));
  ::close(extra);

  // The idle clients are cut off after idle_timeout (EOF), after which a normal client
  // is served again.
  for (int fd : held) {
    ASSERT_GE(fd, 0);
    char c = 0;
    EXPECT_EQ(::recv(fd, &c, 1, 0), 0) << "an idle client was not disconnected";
    ::close(fd);
  }
  EXPECT_TRUE(status_ok());
  EXPECT_TRUE(alive()) << hanatd_->err();
}

TEST_F(StatusAbuseTest, PipeliningMoreThanSixteenRequestsAtOnceIsAnsweredThenCutOff) {
  // One read of pipelined requests is bounded: 16 replies, then an error and the close, so
  // a single client cannot keep the loop (and the probe timers) busy for long.
  int fd = connect_to(sock_);
  ASSERT_GE(fd, 0);
  std::string burst;
  for (int i = 0; i < 100; ++i) burst += "{\"cmd\":\"status\"}\n";
  ASSERT_EQ(send_some(fd, burst), burst.size());
  int ok = 0;
  std::string line;
  while (!(line = read_line(fd)).empty() && line.find("\"ok\":true") != std::string::npos) ++ok;
  EXPECT_GE(ok, 1);
  EXPECT_LE(ok, 16);
  EXPECT_THAT(line, HasSubstr("too many requests at once"));
  EXPECT_EQ(read_line(fd), "") << "the connection was not closed";
  ::close(fd);
  EXPECT_TRUE(status_ok());
}

TEST_F(StatusAbuseTest, MoreRequestsThanOneLoopTurnServesAreAllAnsweredLater) {
  // 12 clients x 10 pipelined requests = 120, over the 64 answered per loop turn: the rest
  // wait for the next turn (reading paused), none is lost or answered twice.
  std::vector<int> fds;
  std::string burst;
  for (int i = 0; i < 10; ++i) burst += "{\"cmd\":\"status\"}\n";
  for (int i = 0; i < 12; ++i) {
    fds.push_back(connect_to(sock_));
    ASSERT_GE(fds.back(), 0);
  }
  for (int fd : fds) ASSERT_EQ(send_some(fd, burst), burst.size());
  for (int fd : fds) {
    for (int i = 0; i < 10; ++i) EXPECT_THAT(read_line(fd), HasSubstr("\"ok\":true")) << i;
    ::close(fd);
  }
  EXPECT_TRUE(status_ok());
}

TEST_F(StatusAbuseTest, AClientThatNeverReadsIsCutOffAndOthersAreServed) {
  int flood = connect_to(sock_);
  ASSERT_GE(flood, 0);
  std::string burst;
  for (int i = 0; i < 500; ++i) burst += "{\"cmd\":\"status\"}\n";
  // Keep sending without reading until hanatd closes the connection (bounded in time).
  bool cut = eventually(
      [&] {
        ssize_t n = ::send(flood, burst.data(), burst.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
        return (n < 0 && errno != EAGAIN) || !alive();  // EPIPE / ECONNRESET: cut off
      },
      std::chrono::seconds(20));
  EXPECT_TRUE(cut) << "a client that never reads was never disconnected";
  ::close(flood);
  EXPECT_TRUE(status_ok());
  EXPECT_TRUE(alive()) << hanatd_->err();
}

}  // namespace
}  // namespace hanat
