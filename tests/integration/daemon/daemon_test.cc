// hanatd and hanatctl as a user runs them: real processes, a config file in a temp
// directory, signals, the status socket, and systemd's notify protocol.

#include <jansson.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <csignal>
#include <cstring>
#include <string>

#include "tests/support/process.h"

namespace hanat {
namespace {

using testing::eventually;
using ::testing::HasSubstr;
using testing::Process;
using testing::run;
using testing::TempDir;
using testing::write_file;

// Receives sd_notify datagrams, as systemd does on NOTIFY_SOCKET.
class NotifySocket {
 public:
  explicit NotifySocket(const std::string& path) : path_(path) {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strncpy(a.sun_path, path.c_str(), sizeof(a.sun_path) - 1);
    bound_ = ::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0;
  }
  ~NotifySocket() {
    ::close(fd_);
    ::unlink(path_.c_str());
  }
  // All messages so far, joined with "|".
  const std::string& messages() {
    char buf[4096];
    ssize_t n;
    while ((n = ::recv(fd_, buf, sizeof(buf), 0)) > 0) {
      log_ += std::string(buf, static_cast<size_t>(n)) + "|";
    }
    return log_;
  }
  [[nodiscard]] bool bound() const { return bound_; }

 private:
  std::string path_, log_;
  int fd_ = -1;
  bool bound_ = false;
};

class DaemonTest : public ::testing::Test {
 protected:
  void SetUp() override {
    sock_ = dir_.file("hanatd.sock");
    conf_ = dir_.file("hanat.toml");
    write_config("info");
  }
  void write_config(const std::string& level, const std::string& extra = "") {
    // The daemon runs in the root namespace here: its metadata endpoint must never be the
    // real 169.254.169.254, so it points at a closed loopback port (the node keeps retrying
    // its identity phase, which these shell tests do not need).
    write_file(conf_, "[group]\nname = \"lab\"\n[status]\nsocket = \"" + sock_ +
                          "\"\nmode = \"0600\"\n[log]\nlevel = \"" + level + "\"\n" + extra +
                          "[ec2]\nmetadata_endpoint = \"http://127.0.0.1:9\"\n");
  }
  std::unique_ptr<Process> start(std::vector<std::string> env = {}) {
    auto p =
        std::make_unique<Process>(std::vector<std::string>{HANATD_BIN, "--config", conf_},
                                  dir_.file("hanatd.out"), dir_.file("hanatd.err"), std::move(env));
    bool up = eventually([&] { return ctl({"status"}).code == 0; });
    EXPECT_TRUE(up) << "hanatd did not come up:\n" << p->err();
    return p;
  }
  testing::RunResult ctl(std::vector<std::string> args) {
    std::vector<std::string> argv{HANATCTL_BIN, "--socket", sock_};
    argv.insert(argv.end(), args.begin(), args.end());
    return run(argv, dir_);
  }
  // The generation and reload state from `hanatctl status --json`.
  json_t* status_json() {
    auto r = ctl({"status", "--json"});
    json_error_t e;
    return r.code == 0 ? json_loads(r.out.c_str(), 0, &e) : nullptr;
  }
  long long generation() {
    json_t* j = status_json();
    if (j == nullptr) return -1;
    long long g = json_integer_value(json_object_get(json_object_get(j, "config"), "generation"));
    json_decref(j);
    return g;
  }

  TempDir dir_;
  std::string sock_, conf_;
};

TEST_F(DaemonTest, StatusShowsVersionConfigAndGeneration) {
  auto d = start();
  auto r = ctl({"status"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("hanatd " HANAT_VERSION " (pid " + std::to_string(d->pid()) + ")"));
  EXPECT_THAT(r.out, HasSubstr("group:       lab"));
  EXPECT_THAT(r.out, HasSubstr("config:      " + conf_ + " (generation 1"));
  EXPECT_THAT(r.out, HasSubstr("last reload: none"));
  struct stat st {};
  ASSERT_EQ(::stat(sock_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  json_t* j = status_json();
  ASSERT_NE(j, nullptr);
  EXPECT_TRUE(json_is_true(json_object_get(j, "ok")));
  EXPECT_STREQ(json_string_value(json_object_get(j, "version")), HANAT_VERSION);
  EXPECT_TRUE(json_is_integer(json_object_get(j, "uptime_ms")));
  json_decref(j);
}

TEST_F(DaemonTest, GoodReloadMakesANewGeneration) {
  auto d = start();
  write_config("debug");
  d->signal(SIGHUP);
  EXPECT_TRUE(eventually([&] { return generation() == 2; }));
  auto r = ctl({"status"});
  EXPECT_THAT(r.out, HasSubstr("last reload: ok"));
  EXPECT_THAT(d->err(), HasSubstr("reloaded, generation 2"));
}

TEST_F(DaemonTest, BadReloadKeepsTheOldConfigAndShowsTheError) {
  auto d = start();
  write_config("info", "[probe]\nintervall = \"1s\"\n");
  d->signal(SIGHUP);
  EXPECT_TRUE(eventually([&] { return ctl({"status"}).out.find("FAILED") != std::string::npos; }));
  EXPECT_EQ(generation(), 1);
  auto r = ctl({"status"});
  EXPECT_THAT(r.out, HasSubstr("last reload: FAILED"));
  EXPECT_THAT(r.out, HasSubstr("still running generation 1"));
  EXPECT_THAT(r.out,
              HasSubstr(conf_ + ":9:1: probe.intervall: unknown key; did you mean \"interval\"?"));
  EXPECT_THAT(d->err(), HasSubstr("reload failed, keeping generation 1"));

  // Fixing the file and reloading again recovers.
  write_config("info");
  d->signal(SIGHUP);
  EXPECT_TRUE(eventually([&] { return generation() == 2; }));
  EXPECT_THAT(ctl({"status"}).out, HasSubstr("last reload: ok"));
}

TEST_F(DaemonTest, SigtermExitsZeroAndRemovesTheSocket) {
  auto d = start();
  d->signal(SIGTERM);
  auto code = d->wait(std::chrono::seconds(5));
  ASSERT_TRUE(code.has_value()) << "hanatd did not exit on SIGTERM";
  EXPECT_EQ(*code, 0) << d->err();
  EXPECT_THAT(d->err(), HasSubstr("hanatd stopping (SIGTERM)"));
  EXPECT_NE(::access(sock_.c_str(), F_OK), 0);
}

TEST_F(DaemonTest, SigintExitsZero) {
  auto d = start();
  d->signal(SIGINT);
  EXPECT_EQ(d->wait(std::chrono::seconds(5)), 0);
}

TEST_F(DaemonTest, NotifiesSystemdOfReadyReloadAndStop) {
  NotifySocket ns(dir_.file("notify.sock"));
  ASSERT_TRUE(ns.bound());
  auto d = start({"NOTIFY_SOCKET=" + dir_.file("notify.sock")});
  EXPECT_TRUE(eventually([&] { return ns.messages().find("READY=1") != std::string::npos; }));
  // The one-line summary for `systemctl status`: here the node is still looking for its
  // identity (no metadata service on this loopback port), and says why.
  EXPECT_TRUE(eventually([&] {
    return ns.messages().find("STATUS=starting: instance metadata") != std::string::npos;
  })) << ns.messages();
  d->signal(SIGHUP);
  EXPECT_TRUE(eventually([&] { return generation() == 2; }));
  d->signal(SIGTERM);
  EXPECT_EQ(d->wait(std::chrono::seconds(5)), 0);
  const std::string& m = ns.messages();
  size_t ready = m.find("READY=1");
  size_t reloading = m.find("RELOADING=1");
  size_t ready2 = m.find("READY=1", reloading);
  size_t stopping = m.find("STOPPING=1");
  EXPECT_NE(ready, std::string::npos) << m;
  EXPECT_NE(reloading, std::string::npos) << m;
  EXPECT_NE(ready2, std::string::npos) << m;
  EXPECT_NE(stopping, std::string::npos) << m;
  EXPECT_LT(ready, reloading);
  EXPECT_LT(reloading, ready2);
  EXPECT_LT(ready2, stopping);
  EXPECT_EQ(m.find("WATCHDOG=1"), std::string::npos) << "watchdog pings without WATCHDOG_USEC";
}

TEST_F(DaemonTest, PingsTheSystemdWatchdogAtHalfTheInterval) {
  NotifySocket ns(dir_.file("notify.sock"));
  ASSERT_TRUE(ns.bound());
  // WatchdogSec=200ms: systemd expects a ping at least every 200 ms; hanatd pings every
  // 100 ms, so five pings arrive within a second or so.
  auto d = start({"NOTIFY_SOCKET=" + dir_.file("notify.sock"), "WATCHDOG_USEC=200000"});
  auto count = [&] {
    size_t n = 0, pos = 0;
    const std::string& m = ns.messages();
    while ((pos = m.find("WATCHDOG=1", pos)) != std::string::npos) {
      ++n;
      ++pos;
    }
    return n;
  };
  EXPECT_TRUE(eventually([&] { return count() >= 5; }, std::chrono::seconds(5)));
}

TEST_F(DaemonTest, SecondDaemonOnTheSameSocketRefusesToStart) {
  auto first = start();
  Process second({HANATD_BIN, "--config", conf_}, dir_.file("2.out"), dir_.file("2.err"));
  auto code = second.wait(std::chrono::seconds(5));
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(*code, 1);
  EXPECT_THAT(second.err(), HasSubstr("is hanatd already running?"));
  EXPECT_EQ(ctl({"status"}).code, 0);  // the first one is untouched
}

TEST_F(DaemonTest, InvalidConfigAtStartupExitsTwo) {
  write_config("loud");
  auto r = run({HANATD_BIN, "--config", conf_}, dir_);
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr(conf_ + ":7:9: log.level: \"loud\" is not one of"));
  EXPECT_THAT(r.err, HasSubstr("invalid configuration, not starting"));
}

TEST(HanatdCli, CheckConfigOfTheExampleIsZero) {
  TempDir dir;
  auto r = run({HANATD_BIN, "--check-config", HANAT_SOURCE_DIR "/conf/hanat.toml"}, dir);
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("ok"));
}

TEST(HanatdCli, CheckConfigWithATypoIsTwoWithLineAndSuggestion) {
  TempDir dir;
  write_file(dir.file("typo.toml"),
             "[group]\nname = \"g\"\n\n[failover]\nfailback_dealy = \"10s\"\n");
  auto r = run({HANATD_BIN, "--check-config", dir.file("typo.toml")}, dir);
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr(dir.file("typo.toml") +
                               ":5:1: failover.failback_dealy: unknown key; did you mean "
                               "\"failback_delay\"?"));
}

TEST(HanatdCli, VersionHelpAndBadArguments) {
  TempDir dir;
  auto v = run({HANATD_BIN, "--version"}, dir);
  EXPECT_EQ(v.code, 0);
  EXPECT_EQ(v.out, "hanatd " HANAT_VERSION "\n");
  auto h = run({HANATD_BIN, "--help"}, dir);
  EXPECT_EQ(h.code, 0);
  EXPECT_THAT(h.out, HasSubstr("--check-config"));
  auto bad = run({HANATD_BIN, "--frobnicate"}, dir);
  EXPECT_EQ(bad.code, 2);
  EXPECT_THAT(bad.err, HasSubstr("unknown argument \"--frobnicate\""));
}

TEST(HanatctlCli, MissingDaemonIsAClearErrorAndExitOne) {
  TempDir dir;
  auto r = run({HANATCTL_BIN, "--socket", dir.file("nobody.sock"), "status"}, dir);
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, HasSubstr("cannot connect to " + dir.file("nobody.sock")));
  EXPECT_THAT(r.err, HasSubstr("is hanatd running?"));
}

}  // namespace
}  // namespace hanat
