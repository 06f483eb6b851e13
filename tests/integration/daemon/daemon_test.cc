// SPDX-License-Identifier: GPL-2.0-or-later
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
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>

#include "core/metrics/prometheus.h"
#include "tests/support/closed_port.h"
#include "tests/support/process.h"

namespace hanat {
namespace {

using testing::eventually;
using ::testing::HasSubstr;
using ::testing::Not;
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

// How long a hanatd gets to exit after SIGTERM at the end of a test: generous, because under
// valgrind (scripts/valgrind) it runs ~20x slower and memcheck then writes its report.
constexpr auto kStopDeadline = std::chrono::seconds(60);

// Ends a test's hanatd the way systemd does, with SIGTERM, so that its shutdown runs and
// memcheck writes the report scripts/valgrind reads; SIGKILL (a failure) only past the deadline.
struct StopDaemon {
  void operator()(Process* p) const {
    EXPECT_TRUE(p->stop(kStopDeadline).has_value())
        << "hanatd did not exit within " << kStopDeadline.count() << "s of SIGTERM; killed";
    delete p;
  }
};
using Daemon = std::unique_ptr<Process, StopDaemon>;

class DaemonTest : public ::testing::Test {
 protected:
  void SetUp() override {
    sock_ = dir_.file("hanatd.sock");
    conf_ = dir_.file("hanat.toml");
    write_config("info");
  }
  void write_config(const std::string& level, const std::string& extra = "",
                    const std::string& nat_extra = "") {
    // The daemon runs in the root namespace here: its metadata endpoint must never be the
    // real 169.254.169.254, so it points at a loopback port held closed (the node keeps retrying
    // its identity phase, which these shell tests do not need). The egress interface must
    // exist: lo is everywhere. The node applies its NAT table and forwarding from this
    // config at start, so the daemon runs in a network namespace of its own (start()).
    write_file(conf_, "[group]\nname = \"lab\"\n[status]\nsocket = \"" + sock_ +
                          "\"\nmode = \"0600\"\n[log]\nlevel = \"" + level + "\"\n" + extra +
                          "[ec2]\nmetadata_endpoint = \"" + imds_.url() +
                          "\"\n[nat]\negress_interface = \"lo\"\n" + nat_extra);
  }
  Daemon start(std::vector<std::string> env = {}) {
    // Under scripts/valgrind, names hanatd's memcheck log after the test
    // (hanatd.<suite>.<test>.<pid>.log), so the script can tell that every test's daemon
    // wrote its report.
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    env.push_back(std::string("HANAT_VG_NAME=hanatd.") + info->test_suite_name() + "." +
                  info->name());
    Daemon p(new Process(std::vector<std::string>{HANATD_BIN, "--config", conf_},
                         dir_.file("hanatd.out"), dir_.file("hanatd.err"), std::move(env),
                         /*own_netns=*/true));
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
  testing::ClosedPort imds_;  // the metadata endpoint: refuses at once, never 169.254.169.254
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

// The counters of issue #23 reach both status forms. This daemon never gets as far as
// installing its table (no metadata service), so both read zero; the values themselves are
// covered by the netfilter namespace tests and the ruleset_flush lab test.
TEST_F(DaemonTest, StatusShowsUnNattedFlowsPurgedAndPacketsLeaked) {
  auto d = start();
  auto r = ctl({"status"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("un-NATed:    0 flows purged, 0 packets left without NAT\n"));
  json_t* j = status_json();
  ASSERT_NE(j, nullptr);
  const json_t* c = json_object_get(json_object_get(j, "node"), "counters");
  EXPECT_TRUE(json_is_integer(json_object_get(c, "unnatted_flows_purged")));
  EXPECT_TRUE(json_is_integer(json_object_get(c, "unnatted_packets_leaked")));
  json_decref(j);

  // With the forward check off, only the purge count remains.
  write_config("info", "[forward]\ncheck = false\n");
  const long long before = generation();
  ASSERT_EQ(::kill(d->pid(), SIGHUP), 0);
  ASSERT_TRUE(eventually([&] { return generation() > before; }));
  r = ctl({"status"});
  EXPECT_THAT(r.out, HasSubstr("un-NATed:    0 flows purged\n"));
}

// The connection-keeping handover's taking side (issue #20) is in status from the start:
// its steering opened (the start-up cleanup ran first) and nothing steered. The member
// channel listens only once the engine runs, which this daemon (no metadata service) never
// reaches.
TEST_F(DaemonTest, StatusShowsTheHandoverSectionBeforeTheEngineRuns) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root (steering's netlink in the daemon's namespace)";
  auto d = start();
  json_t* j = status_json();
  ASSERT_NE(j, nullptr);
  const json_t* h = json_object_get(json_object_get(j, "node"), "handover");
  ASSERT_TRUE(json_is_object(h)) << d->err();
  EXPECT_TRUE(json_is_true(json_object_get(h, "steering_ready"))) << d->err();
  EXPECT_EQ(json_object_get(h, "error"), nullptr);
  EXPECT_EQ(json_object_get(h, "channel"), nullptr);
  ASSERT_TRUE(json_is_array(json_object_get(h, "steering")));
  EXPECT_EQ(json_array_size(json_object_get(h, "steering")), 0u);
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

TEST_F(DaemonTest, HanatctlReloadExitsZeroWithTheNewGeneration) {
  auto d = start();
  write_config("debug");
  auto r = ctl({"reload"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("reloaded, generation 2"));
  EXPECT_EQ(generation(), 2);
  EXPECT_THAT(ctl({"status"}).out, HasSubstr("last reload: ok"));
}

TEST_F(DaemonTest, HanatctlReloadOfABadFileExitsTwoWithTheError) {
  auto d = start();
  write_config("info", "", "table = \"nat\"\n");
  auto r = ctl({"reload"});
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr("reload refused, still running generation 1"));
  EXPECT_THAT(r.err, HasSubstr(conf_ + ":12:9: nat.table: \"nat\" is a table of iptables-nft"));
  EXPECT_EQ(generation(), 1);
}

// A key that only a restart applies refuses the whole file, by name: nothing of it runs
// (here the log level, which alone would apply, stays "info").
TEST_F(DaemonTest, ReloadThatNeedsARestartIsRefusedWholeNamingTheKey) {
  auto d = start();
  write_file(conf_, "[group]\nname = \"other\"\n[status]\nsocket = \"" + sock_ +
                        "\"\nmode = \"0600\"\n[log]\nlevel = \"debug\"\n[ec2]\n"
                        "metadata_endpoint = \"" +
                        imds_.url() + "\"\n[nat]\negress_interface = \"lo\"\n");
  auto r = ctl({"reload"});
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr(conf_ + ": group.name: needs a restart"));
  EXPECT_EQ(generation(), 1);
  auto s = ctl({"status"});
  EXPECT_THAT(s.out, HasSubstr("group:       lab"));
  EXPECT_THAT(s.out, HasSubstr("group.name: needs a restart"));
  EXPECT_THAT(d->err(), HasSubstr("reload failed, keeping generation 1"));
  // SIGHUP takes the same path: the status socket path is the daemon's identity.
  write_config("info", "");
  write_file(conf_, "[group]\nname = \"lab\"\n[status]\nsocket = \"" + sock_ +
                        "2\"\n[ec2]\nmetadata_endpoint = \"" + imds_.url() +
                        "\"\n[nat]\negress_interface = \"lo\"\n");
  d->signal(SIGHUP);
  EXPECT_TRUE(eventually([&] {
    return ctl({"status"}).out.find("status.socket: needs a restart") != std::string::npos;
  }));
  EXPECT_EQ(generation(), 1);
}

// An interface that does not exist here: hanatd refuses to start, a reload that names
// one is refused (every apply would fail and hand the routes away), and --check-config,
// which may check a file meant for another machine, warns and exits 0.
TEST_F(DaemonTest, MissingInterfaceStopsAStartAndAReloadAndWarnsInCheckConfig) {
  const std::string missing = "[group]\nname = \"lab\"\n[status]\nsocket = \"" + sock_ +
                              "\"\n[ec2]\nmetadata_endpoint = \"" + imds_.url() +
                              "\"\n[nat]\negress_interface = \"nosuch9\"\n";
  write_file(conf_, missing);
  auto r = run({HANATD_BIN, "--config", conf_}, dir_);
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr("nat.egress_interface: interface \"nosuch9\" does not exist"));
  EXPECT_THAT(r.err, HasSubstr("not starting"));
  auto c = run({HANATD_BIN, "--check-config", conf_}, dir_);
  EXPECT_EQ(c.code, 0) << c.err;
  EXPECT_THAT(c.err, HasSubstr("warning: nat.egress_interface: interface \"nosuch9\""));

  write_config("info");
  auto d = start();
  write_file(conf_, missing);
  auto rl = ctl({"reload"});
  EXPECT_EQ(rl.code, 2);
  EXPECT_THAT(rl.err, HasSubstr("nat.egress_interface: interface \"nosuch9\" does not exist"));
  EXPECT_EQ(generation(), 1);
}

// Without nat.egress_interface, hanatd takes the interface of the default route of its
// own network namespace. A namespace of the test's (unshare -n, gone with its last
// process): a veth with an address in 198.18.0.0/15 and a default route through it.
TEST_F(DaemonTest, EgressInterfaceDefaultsToTheDefaultRoutesInterface) {
  if (::geteuid() != 0 || ::access("/usr/bin/unshare", X_OK) != 0)
    GTEST_SKIP() << "needs root and unshare(1) for a network namespace";
  write_file(conf_, "[group]\nname = \"lab\"\n[status]\nsocket = \"" + sock_ +
                        "\"\n[ec2]\nmetadata_endpoint = \"" + imds_.url() + "\"\n");
  const std::string setup =
      "set -e; ip link set lo up; ip link add vh0 type veth peer name vh1; "
      "ip link set vh0 up; ip link set vh1 up; ip addr add 198.18.7.1/24 dev vh0; "
      "ip route add default via 198.18.7.2 dev vh0; ";
  auto c = run({"/usr/bin/unshare", "-n", "/bin/sh", "-c",
                setup + "exec \"$0\" --check-config \"$1\"", HANATD_BIN, conf_},
               dir_);
  ASSERT_EQ(c.code, 0) << c.out << c.err;
  EXPECT_THAT(c.out, HasSubstr("nat.egress_interface: \"vh0\" (the interface of the default "
                               "route)"));
  // No default route in a namespace of only lo: a warning for --check-config, and a
  // daemon that would run there refuses to start, saying what to set.
  auto none = run({"/usr/bin/unshare", "-n", HANATD_BIN, "--check-config", conf_}, dir_);
  EXPECT_EQ(none.code, 0) << none.err;
  EXPECT_THAT(none.err, HasSubstr("warning: nat.egress_interface is not set and this host has "
                                  "no IPv4 default route"));
  auto start = run({"/usr/bin/unshare", "-n", HANATD_BIN, "--config", conf_}, dir_);
  EXPECT_EQ(start.code, 2);
  EXPECT_THAT(start.err, HasSubstr("set it to the interface facing the internet gateway"));
  EXPECT_THAT(start.err, HasSubstr("not starting"));
}

TEST_F(DaemonTest, ReloadRefusesAHookThatCannotRun) {
  auto d = start();
  write_config("info", "[hooks]\non_transition = [\"" + dir_.file("no-such-hook") + "\"]\n");
  auto rl = ctl({"reload"});
  EXPECT_EQ(rl.code, 2);
  EXPECT_THAT(rl.err, HasSubstr("hooks.on_transition: \"" + dir_.file("no-such-hook") +
                                "\": No such file or directory"));
  EXPECT_EQ(generation(), 1);
  write_file(dir_.file("hook.sh"), "#!/bin/sh\nexit 0\n");
  ASSERT_EQ(::chmod(dir_.file("hook.sh").c_str(), 0755), 0);
  write_config("info", "[hooks]\non_transition = [\"" + dir_.file("hook.sh") + "\"]\n");
  EXPECT_EQ(ctl({"reload"}).code, 0);
  EXPECT_EQ(generation(), 2);
}

TEST_F(DaemonTest, StaticKeysInAFileOthersCanReadAreAWarning) {
  write_file(conf_, "[group]\nname = \"lab\"\n[status]\nsocket = \"" + sock_ +
                        "\"\n[ec2]\nmetadata_endpoint = \"" + imds_.url() +
                        "\"\ncredentials = \"static\"\naccess_key_id = \"AKIDEXAMPLE\"\n"
                        "secret_access_key = \"wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY\"\n"
                        "[nat]\negress_interface = \"lo\"\n");
  ASSERT_EQ(::chmod(conf_.c_str(), 0644), 0);
  auto c = run({HANATD_BIN, "--check-config", conf_}, dir_);
  EXPECT_EQ(c.code, 0) << c.err;
  EXPECT_THAT(c.err, HasSubstr("holds static keys and is readable by other users (mode 0644)"));
  EXPECT_THAT(c.err, Not(HasSubstr("wJalrXUtnFEMI")));
  ASSERT_EQ(::chmod(conf_.c_str(), 0600), 0);
  c = run({HANATD_BIN, "--check-config", conf_}, dir_);
  EXPECT_EQ(c.code, 0) << c.err;
  EXPECT_THAT(c.err, Not(HasSubstr("readable by other users")));
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

// `hanatctl prepare-restart` (what the package runs before restarting hanatd on upgrade)
// turns the next SIGTERM into a restart: hanatd exits without the handover and says so.
TEST_F(DaemonTest, PrepareRestartMakesTheNextSigtermARestart) {
  auto d = start();
  auto r = ctl({"prepare-restart", "30"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("restart prepared"));
  d->signal(SIGTERM);
  auto code = d->wait(std::chrono::seconds(5));
  ASSERT_TRUE(code.has_value()) << "hanatd did not exit on SIGTERM";
  EXPECT_EQ(*code, 0) << d->err();
  EXPECT_THAT(d->err(), HasSubstr("hanatd restarting (SIGTERM, prepared by hanatctl "
                                  "prepare-restart): exiting without moving routes"));
  EXPECT_THAT(d->err(), Not(HasSubstr("hanatd stopping")));
}

// `prepare-restart 0` cancels; a SIGTERM is a stop again. Under a systemd-looking
// environment (INVOCATION_ID) with no system bus, the job cannot be read: a stop, and the
// log says why.
TEST_F(DaemonTest, CancelledPrepareRestartAndAnUnreadableJobAreStops) {
  auto d = start({"INVOCATION_ID=0123456789abcdef0123456789abcdef",
                  "DBUS_SYSTEM_BUS_ADDRESS=unix:path=" + dir_.file("no-bus")});
  ASSERT_EQ(ctl({"prepare-restart"}).code, 0);
  auto r = ctl({"prepare-restart", "0"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("cancelled"));
  d->signal(SIGTERM);
  auto code = d->wait(std::chrono::seconds(5));
  ASSERT_TRUE(code.has_value()) << "hanatd did not exit on SIGTERM";
  EXPECT_EQ(*code, 0) << d->err();
  EXPECT_THAT(d->err(), HasSubstr("hanatd stopping (SIGTERM)"));
  EXPECT_THAT(d->err(), HasSubstr("cannot read systemd's job for this unit"));
}

TEST_F(DaemonTest, PrepareRestartRejectsABadDuration) {
  auto d = start();
  for (const char* bad : {"soon", "3601", "5s", ""}) {
    auto r = ctl({"prepare-restart", bad});
    EXPECT_EQ(r.code, 2) << bad;
    EXPECT_THAT(r.err, HasSubstr("not a number of seconds from 0 to 3600")) << bad;
  }
}

// `hanatctl events` on a daemon that has decided nothing yet; a bad count is refused.
TEST_F(DaemonTest, HanatctlEventsWithNoDecisionsAndBadCounts) {
  auto d = start();
  auto r = ctl({"events"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "no events yet\n");
  auto j = ctl({"events", "5", "--json"});
  ASSERT_EQ(j.code, 0) << j.err;
  EXPECT_THAT(j.out, HasSubstr("\"events\":[]"));
  for (const char* bad : {"0", "-", "many"}) {
    auto b = ctl({"events", bad});
    EXPECT_EQ(b.code, 2) << bad;
  }
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
  Process second({HANATD_BIN, "--config", conf_}, dir_.file("2.out"), dir_.file("2.err"), {},
                 /*own_netns=*/true);
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

// ---- metrics: hanatctl metrics and the node_exporter text file ------------------------

std::string metrics_section(const std::string& path, const std::string& interval = "1s") {
  return "[metrics]\ntextfile = \"" + path + "\"\ninterval = \"" + interval + "\"\n";
}

ino_t inode_of(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 ? st.st_ino : 0;
}

TEST_F(DaemonTest, HanatctlMetricsPrintsValidExposition) {
  auto d = start();
  auto r = ctl({"metrics"});
  ASSERT_EQ(r.code, 0) << r.err;
  auto ok = metrics::check_exposition(r.out);
  ASSERT_TRUE(ok) << ok.error() << "\n" << r.out;
  EXPECT_GT(*ok, 10u);
  EXPECT_THAT(r.out,
              HasSubstr("# TYPE hanat_config_generation gauge\nhanat_config_generation 1\n"));
  EXPECT_THAT(r.out,
              HasSubstr("hanat_build_info{version=\"" HANAT_VERSION "\",group=\"lab\"} 1\n"));
  // Still looking for its identity (no metadata service here): the phase says so.
  EXPECT_THAT(r.out, HasSubstr("hanat_node_phase{phase=\"identity\"} 1\n"));
  EXPECT_THAT(r.out, HasSubstr("hanat_node_phase{phase=\"running\"} 0\n"));
}

TEST_F(DaemonTest, TextfileIsWrittenAtomicallyFollowsReloadAndIsRemovedOnExit) {
  const std::string prom = dir_.file("hanat.prom");
  write_config("info", metrics_section(prom));
  auto d = start();
  ASSERT_TRUE(eventually([&] { return ::access(prom.c_str(), F_OK) == 0; }))
      << "no text file; hanatd said:\n"
      << d->err();
  struct stat st {};
  ASSERT_EQ(::stat(prom.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0644u) << "node_exporter runs as its own user";

  // Read it over and over while hanatd rewrites it every second: every read is a whole,
  // valid document (never empty or cut), and the file is replaced by rename (new inode),
  // not rewritten in place.
  const ino_t first = inode_of(prom);
  size_t reads = 0;
  bool replaced = eventually(
      [&] {
        std::string doc = testing::read_file(prom);
        auto ok = metrics::check_exposition(doc);
        EXPECT_TRUE(ok && *ok > 10) << (ok ? "few samples" : ok.error()) << "\n" << doc;
        EXPECT_THAT(doc, HasSubstr("\nhanat_config_generation 1\n"));
        ++reads;
        return inode_of(prom) != first && inode_of(prom) != 0;
      },
      std::chrono::seconds(5));
  EXPECT_TRUE(replaced) << "the file was not rewritten within 5 s (" << reads << " reads)";
  EXPECT_GT(reads, 10u);
  // No temporary file left behind beside it.
  size_t others = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir_.path()))
    if (e.path().filename().string().rfind(".hanat.prom", 0) == 0) ++others;
  EXPECT_LE(others, 1u);  // at most the one being written right now

  json_t* j = status_json();
  ASSERT_NE(j, nullptr);
  json_t* m = json_object_get(j, "metrics");
  EXPECT_STREQ(json_string_value(json_object_get(m, "textfile")), prom.c_str());
  EXPECT_GE(json_integer_value(json_object_get(m, "writes")), 2);
  EXPECT_EQ(json_object_get(m, "error"), nullptr);
  json_decref(j);

  // A reload that moves the file: the new path is written (with the new generation), the
  // old one removed, so node_exporter does not export two copies.
  const std::string moved = dir_.file("moved.prom");
  write_config("info", metrics_section(moved));
  d->signal(SIGHUP);
  EXPECT_TRUE(eventually([&] {
    return testing::read_file(moved).find("\nhanat_config_generation 2\n") != std::string::npos;
  }));
  EXPECT_NE(::access(prom.c_str(), F_OK), 0) << "the old text file was left behind";
  EXPECT_THAT(ctl({"status"}).out, HasSubstr("metrics:     " + moved + " every 1.0s"));

  // A reload that removes [metrics] textfile stops the writer and removes the file.
  write_config("info");
  d->signal(SIGHUP);
  EXPECT_TRUE(eventually([&] { return generation() == 3; }));
  EXPECT_TRUE(eventually([&] { return ::access(moved.c_str(), F_OK) != 0; }));
  EXPECT_THAT(ctl({"status"}).out, Not(HasSubstr("metrics:")));

  // Back on, then a clean exit removes it: stale values must not outlive the daemon.
  write_config("info", metrics_section(prom));
  d->signal(SIGHUP);
  EXPECT_TRUE(eventually([&] { return ::access(prom.c_str(), F_OK) == 0; }));
  d->signal(SIGTERM);
  ASSERT_EQ(d->wait(std::chrono::seconds(5)), 0) << d->err();
  EXPECT_NE(::access(prom.c_str(), F_OK), 0) << "the text file outlived the daemon";
}

// `hanatctl drain` leaves a drain mark in [status] state_directory; a hanatd started
// while it exists starts drained and says so (log and status), and `undrain` removes it.
// (This daemon never reaches its engine: no metadata service. The routes moving away and
// staying away across a restart are asserted in the lab, tests/e2e/daemon_e2e.py.)
TEST_F(DaemonTest, DrainIsKeptAcrossARestartUntilUndrain) {
  const std::string state = dir_.file("state");
  write_file(conf_, "[group]\nname = \"lab\"\n[status]\nsocket = \"" + sock_ +
                        "\"\nmode = \"0600\"\nstate_directory = \"" + state +
                        "\"\n[ec2]\nmetadata_endpoint = \"" + imds_.url() +
                        "\"\n[nat]\negress_interface = \"lo\"\n");
  const std::string mark = state + "/drained";
  auto started_drained = [&] {
    json_t* j = status_json();
    bool v = json_is_true(json_object_get(json_object_get(j, "drain_mark"), "started_drained"));
    json_decref(j);
    return v;
  };
  {
    auto d = start();
    EXPECT_FALSE(started_drained());
    auto r = ctl({"drain"});
    EXPECT_EQ(r.code, 0) << r.err;
    EXPECT_THAT(r.out, HasSubstr("draining"));
    EXPECT_EQ(r.err, "");  // no "not kept across a restart" warning
    EXPECT_TRUE(std::filesystem::exists(mark));
    EXPECT_THAT(d->err(), Not(HasSubstr("starting drained")));
  }
  {
    auto d = start();
    EXPECT_TRUE(started_drained());
    EXPECT_THAT(d->err(), HasSubstr("drain mark \"" + mark +
                                    "\" exists: starting drained (hanatctl undrain removes it)"));
    auto r = ctl({"undrain"});
    EXPECT_EQ(r.code, 0) << r.err;
    EXPECT_FALSE(std::filesystem::exists(mark));
    EXPECT_FALSE(started_drained());
  }
  {
    auto d = start();
    EXPECT_FALSE(started_drained());
  }
}

// A drain mark that cannot be written is reported to the operator, not silently lost.
TEST_F(DaemonTest, DrainWarnsWhenTheMarkCannotBeKept) {
  const std::string blocker = dir_.file("not-a-dir");
  write_file(blocker, "x");
  write_file(conf_, "[group]\nname = \"lab\"\n[status]\nsocket = \"" + sock_ +
                        "\"\nmode = \"0600\"\nstate_directory = \"" + blocker +
                        "\"\n[ec2]\nmetadata_endpoint = \"" + imds_.url() +
                        "\"\n[nat]\negress_interface = \"lo\"\n");
  auto d = start();
  auto r = ctl({"drain"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.err, HasSubstr("warning: not kept across a restart:"));
  EXPECT_THAT(r.err, HasSubstr(blocker));
  json_t* j = status_json();
  EXPECT_THAT(json_string_value(json_object_get(json_object_get(j, "drain_mark"), "error")),
              HasSubstr(blocker));
  json_decref(j);
}

// Without an engine yet, `drain --wait` cannot finish: it gives up at its timeout with
// exit 3, and says why.
TEST_F(DaemonTest, DrainWaitTimesOutWithExitThree) {
  const std::string state = dir_.file("state");
  write_file(conf_, "[group]\nname = \"lab\"\n[status]\nsocket = \"" + sock_ +
                        "\"\nmode = \"0600\"\nstate_directory = \"" + state +
                        "\"\n[ec2]\nmetadata_endpoint = \"" + imds_.url() +
                        "\"\n[nat]\negress_interface = \"lo\"\n");
  auto d = start();
  const auto t0 = std::chrono::steady_clock::now();
  auto r = ctl({"drain", "--wait", "--timeout", "1"});
  const auto took = std::chrono::steady_clock::now() - t0;
  EXPECT_EQ(r.code, 3) << r.out << r.err;
  EXPECT_THAT(r.err, HasSubstr("drain --wait: not drained after 1 s"));
  EXPECT_GE(took, std::chrono::seconds(1));
  EXPECT_LT(took, std::chrono::seconds(10));
}

TEST_F(DaemonTest, TextfileErrorIsLoggedOncePerChangeAndShownInStatus) {
  const std::string prom = dir_.file("later/hanat.prom");
  write_config("info", metrics_section(prom));
  auto d = start();
  auto failures = [&]() -> long long {
    json_t* j = status_json();
    if (j == nullptr) return -1;
    long long n = json_integer_value(json_object_get(json_object_get(j, "metrics"), "failures"));
    json_decref(j);
    return n;
  };
  ASSERT_TRUE(eventually([&] { return failures() >= 3; }, std::chrono::seconds(10)));
  auto text = ctl({"status"}).out;
  EXPECT_THAT(text,
              HasSubstr("FAILING: metrics textfile " + prom + ": cannot create temporary file"));
  auto count = [](const std::string& hay, const std::string& needle) {
    size_t n = 0;
    for (size_t p = hay.find(needle); p != std::string::npos; p = hay.find(needle, p + 1)) ++n;
    return n;
  };
  EXPECT_EQ(count(d->err(), "cannot create temporary file"), 1u) << "logged every interval:\n"
                                                                 << d->err();
  // The directory appears (node_exporter installed later): the next write succeeds, once
  // logged.
  std::filesystem::create_directory(dir_.file("later"));
  EXPECT_TRUE(eventually([&] { return ::access(prom.c_str(), F_OK) == 0; }));
  EXPECT_TRUE(eventually([&] { return d->err().find("written again") != std::string::npos; }));
  EXPECT_THAT(ctl({"status"}).out, Not(HasSubstr("FAILING")));
}

// The shipped file is a template: refused until it names the group, then valid.
TEST(HanatdCli, CheckConfigOfTheExampleNeedsOnlyTheGroupName) {
  TempDir dir;
  auto t = run({HANATD_BIN, "--check-config", HANAT_SOURCE_DIR "/conf/hanat.toml"}, dir);
  EXPECT_EQ(t.code, 2) << t.err;
  EXPECT_THAT(t.err, HasSubstr("group.name"));
  std::ifstream in(HANAT_SOURCE_DIR "/conf/hanat.toml");
  std::stringstream text;
  text << in.rdbuf();
  std::string body = text.str();
  const std::string commented = "\n# name = \"egress-prod\"\n";
  auto at = body.find(commented);
  ASSERT_NE(at, std::string::npos);
  body.replace(at, commented.size(), "\nname = \"egress-prod\"\n");
  write_file(dir.file("hanat.toml"), body);
  auto r = run({HANATD_BIN, "--check-config", dir.file("hanat.toml")}, dir);
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

TEST(HanatctlCli, AdoptTakesExactlyOneRouteTableId) {
  // Checked before anything is sent: only an id is ever spliced into the request.
  TempDir dir;
  for (std::vector<std::string> args :
       std::vector<std::vector<std::string>>{{"adopt"},
                                             {"adopt", "rtb-0123", "rtb-0456"},
                                             {"adopt", "igw-0123"},
                                             {"adopt", "rtb-"},
                                             {"adopt", "rtb-01\",\"cmd\":\"drain"}}) {
    std::vector<std::string> argv{HANATCTL_BIN, "--socket", dir.file("nobody.sock")};
    argv.insert(argv.end(), args.begin(), args.end());
    auto r = run(argv, dir);
    EXPECT_EQ(r.code, 2) << args.back();
    EXPECT_THAT(r.err, HasSubstr("adopt needs one route table id (rtb-...)")) << args.back();
  }
  // A well-formed id goes to the daemon (here: none, so the usual connect error).
  auto ok = run({HANATCTL_BIN, "--socket", dir.file("nobody.sock"), "adopt", "rtb-0a1b2c3d"}, dir);
  EXPECT_EQ(ok.code, 1);
  EXPECT_THAT(ok.err, HasSubstr("cannot connect to"));
}

// getopt_long: options before or after the command; a word a command does not take, an
// unknown option or an option of another command is exit 2 with a message naming it, and
// nothing is sent.
TEST(HanatctlCli, ArgumentsBeforeOrAfterTheCommandAndClearErrors) {
  TempDir dir;
  const std::string sock = dir.file("nobody.sock");
  struct Bad {
    std::vector<std::string> args;
    std::string message;
  };
  for (const Bad& b : std::vector<Bad>{
           {{"status", "foo"}, "status: unexpected argument \"foo\" (status takes none)"},
           {{"peers", "i-1"}, "peers: unexpected argument \"i-1\""},
           {{"events", "5", "6"}, "events: unexpected argument \"6\""},
           {{"status", "--frobnicate"}, "unknown option \"--frobnicate\""},
           {{"-x", "status"}, "unknown option \"-x\""},
           {{"peers", "--wait"}, "--wait and --timeout belong to drain, not \"peers\""},
           {{"drain", "--timeout", "5"}, "drain: --timeout needs --wait"},
           {{"drain", "--wait", "--timeout", "0"}, "--timeout: \"0\" is not a number of seconds"},
           {{"drain", "--wait", "--timeout"}, "--timeout needs a value"},
           {{"frobnicate"}, "unknown command \"frobnicate\""}}) {
    std::vector<std::string> argv{HANATCTL_BIN, "--socket", sock};
    argv.insert(argv.end(), b.args.begin(), b.args.end());
    auto r = run(argv, dir);
    EXPECT_EQ(r.code, 2) << b.args[0];
    EXPECT_THAT(r.err, HasSubstr("hanatctl: " + b.message)) << b.args[0];
    EXPECT_THAT(r.err, Not(HasSubstr("cannot connect"))) << b.args[0];
  }
  // Well-formed in any order: they reach the (absent) daemon.
  for (std::vector<std::string> args :
       std::vector<std::vector<std::string>>{{"--socket", sock, "status", "--json"},
                                             {"status", "--json", "--socket", sock},
                                             {"-j", "routes", "-s", sock},
                                             {"peers", "--socket=" + sock},
                                             {"drain", "-w", "-t", "5", "-s", sock}}) {
    std::vector<std::string> argv{HANATCTL_BIN};
    argv.insert(argv.end(), args.begin(), args.end());
    auto r = run(argv, dir);
    EXPECT_EQ(r.code, 1) << args[0] << " " << args[1];
    EXPECT_THAT(r.err, HasSubstr("cannot connect to " + sock)) << args[0];
  }
}

TEST(HanatdCli, PlanMayFollowItsOptionsAndExtraWordsAreNamed) {
  TempDir dir;
  const std::string missing = dir.file("missing.toml");
  // Both orders read the file (and fail on it being absent), not on the arguments.
  for (std::vector<std::string> args : std::vector<std::vector<std::string>>{
           {"--config", missing, "plan"}, {"plan", "--config", missing}, {"plan", "-c", missing}}) {
    std::vector<std::string> argv{HANATD_BIN};
    argv.insert(argv.end(), args.begin(), args.end());
    auto r = run(argv, dir);
    EXPECT_EQ(r.code, 2) << args[0];
    EXPECT_THAT(r.err, HasSubstr(missing + ":0:0: cannot read the file")) << args[0];
    EXPECT_THAT(r.err, Not(HasSubstr("unknown argument"))) << args[0];
  }
  auto extra = run({HANATD_BIN, "plan", "extra"}, dir);
  EXPECT_EQ(extra.code, 2);
  EXPECT_THAT(extra.err, HasSubstr("hanatd: plan: unexpected argument \"extra\""));
  auto word = run({HANATD_BIN, "frobnicate"}, dir);
  EXPECT_EQ(word.code, 2);
  EXPECT_THAT(word.err, HasSubstr("hanatd: unknown argument \"frobnicate\""));
  auto two = run({HANATD_BIN, "--check-config", "a.toml", "b.toml"}, dir);
  EXPECT_EQ(two.code, 2);
  EXPECT_THAT(two.err, HasSubstr("--check-config takes one file"));
  auto needs = run({HANATD_BIN, "--config"}, dir);
  EXPECT_EQ(needs.code, 2);
  EXPECT_THAT(needs.err, HasSubstr("hanatd: --config needs a file name"));
}

TEST(HanatctlCli, AFullBacklogIsAClearErrorAfterFiveSeconds) {
  // A listener that never accepts, its backlog (0: one connection) taken: hanatctl's
  // connect waits, as it would on a hanatd resting its listener under a connection storm.
  TempDir dir;
  const std::string path = dir.file("busy.sock");
  int lfd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strncpy(a.sun_path, path.c_str(), sizeof(a.sun_path) - 1);
  ASSERT_EQ(::bind(lfd, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
  ASSERT_EQ(::listen(lfd, 0), 0);
  int held = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  ASSERT_EQ(::connect(held, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
  auto r = run({HANATCTL_BIN, "--socket", path, "status"}, dir);
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, HasSubstr(path + " did not take the connection within 5 s: its backlog is "
                                      "full (too many clients connecting?)"));
  ::close(held);
  ::close(lfd);
}

// Data plane first: forwarding and the masquerade table come from the config alone, so they
// are in place while the node is still looking for its identity (the metadata endpoint here
// refuses every connection, as IMDS does on a host booting without it).
TEST_F(DaemonTest, AppliesTheDataPlaneBeforeItsIdentity) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root (the daemon's own network namespace)";
  auto d = start();
  std::string phase;
  bool nat_ok = false;
  long long applies = 0;
  EXPECT_TRUE(eventually([&] {
    json_t* j = status_json();
    if (j == nullptr) return false;
    json_t* node = json_object_get(j, "node");
    const char* p = json_string_value(json_object_get(node, "phase"));
    phase = p != nullptr ? p : "";
    nat_ok = json_is_true(json_object_get(json_object_get(node, "self"), "nat_ok"));
    applies = json_integer_value(json_object_get(json_object_get(node, "counters"), "nat_applies"));
    json_decref(j);
    return nat_ok;
  })) << d->err();
  EXPECT_EQ(phase, "identity");
  EXPECT_GE(applies, 1);
  EXPECT_THAT(d->err(), HasSubstr("data plane: masquerade table and forwarding verified"));
  EXPECT_THAT(d->err(), HasSubstr("instance metadata"));
}

}  // namespace
}  // namespace hanat
