// SPDX-License-Identifier: GPL-2.0-or-later
// [hooks] on_transition with real scripts on a real loop: the environment a hook sees, a
// hanging hook killed at the timeout while the loop keeps running, max_in_flight drops,
// exit statuses counted; and the config check that refuses a command that cannot run.

#include "core/daemon/hooks.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "core/config/config.h"
#include "tests/support/uv_test_util.h"

namespace hanat::daemon {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using hanat::testing::expect_clean_close;
using hanat::testing::run_until;
using ::testing::HasSubstr;
using ::testing::Not;

class HookTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/hanat-hooks-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string script(const std::string& name, const std::string& body) {
    fs::path p = dir_ / name;
    std::ofstream(p) << "#!/bin/sh\n" << body << "\n";
    fs::permissions(p, fs::perms::owner_all);
    return p.string();
  }
  static std::string slurp(const fs::path& p) {
    std::ifstream in(p);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  static std::uint64_t count(const HookRunner& h, const std::string& outcome) {
    auto it = h.counts().find(outcome);
    return it == h.counts().end() ? 0 : it->second;
  }

  fs::path dir_;
};

TEST_F(HookTest, HookSeesTheTransitionInItsEnvironment) {
  uv::Loop loop;
  const fs::path out = dir_ / "env.out";
  {
    HookRunner hooks(loop);
    config::HooksConfig cfg;
    // Written to a temporary name and renamed: the test never reads a half-written file.
    cfg.on_transition = {script("env.sh", "env | sort > \"$1.tmp\" && mv \"$1.tmp\" \"$1\""),
                         out.string()};
    hooks.fire(cfg, {{"HANAT_EVENT", "peer"},
                     {"HANAT_PEER", "i-0abc"},
                     {"HANAT_STATE", "down"},
                     {"HANAT_PREVIOUS", "up"},
                     {"HANAT_REASON", "3 icmp probes failed, fall=3"}});
    EXPECT_EQ(hooks.in_flight(), 1u);
    ASSERT_TRUE(run_until(
        loop, [&] { return count(hooks, "ok") == 1; }, 5s));
    EXPECT_EQ(hooks.in_flight(), 0u);
  }
  const std::string env = slurp(out);
  EXPECT_THAT(env, HasSubstr("HANAT_EVENT=peer\n"));
  EXPECT_THAT(env, HasSubstr("HANAT_PEER=i-0abc\n"));
  EXPECT_THAT(env, HasSubstr("HANAT_STATE=down\n"));
  EXPECT_THAT(env, HasSubstr("HANAT_PREVIOUS=up\n"));
  EXPECT_THAT(env, HasSubstr("HANAT_REASON=3 icmp probes failed, fall=3\n"));
  EXPECT_THAT(env, HasSubstr("PATH=/usr/local/sbin:"));
  // Only PATH and the transition: nothing of the daemon's own environment leaks in.
  EXPECT_THAT(env, Not(HasSubstr("HOME=")));
  expect_clean_close(loop);
}

TEST_F(HookTest, HangingHookIsKilledAtTheTimeoutAndTheLoopKeepsServing) {
  uv::Loop loop;
  {
    HookRunner hooks(loop);
    config::HooksConfig cfg;
    cfg.on_transition = {script("hang.sh", "exec sleep 30")};
    cfg.timeout = 300ms;
    const auto start = std::chrono::steady_clock::now();
    hooks.fire(cfg, {{"HANAT_EVENT", "state"}});
    // A timer on the same loop keeps firing while the hook hangs: fire() did not block.
    int ticks = 0;
    uv::Timer tick(loop);
    ASSERT_FALSE(tick.start(10ms, 10ms, [&] { ++ticks; }));
    ASSERT_TRUE(run_until(
        loop, [&] { return count(hooks, "timeout") == 1; }, 5s));
    const auto took = std::chrono::steady_clock::now() - start;
    // The timer starts from the loop's clock refreshed at the spawn (uv_update_time), in
    // whole milliseconds: the kill may come up to 1 ms before 300 ms on steady_clock.
    EXPECT_GE(took, 299ms);
    EXPECT_LT(took, 3s);  // killed, not waited for (the script would sleep 30 s)
    // A 10 ms timer ticked while the hook hung (a blocked loop would show none; a loaded
    // machine shows fewer than 30).
    EXPECT_GE(ticks, 5);
    EXPECT_EQ(hooks.in_flight(), 0u);
  }
  expect_clean_close(loop);
}

TEST_F(HookTest, BeyondMaxInFlightTransitionsAreDroppedAndCounted) {
  uv::Loop loop;
  {
    HookRunner hooks(loop);
    config::HooksConfig cfg;
    cfg.on_transition = {script("slow.sh", "exec sleep 30")};
    cfg.timeout = 200ms;
    cfg.max_in_flight = 2;
    for (int i = 0; i < 3; ++i) hooks.fire(cfg, {{"HANAT_EVENT", "peer"}});
    EXPECT_EQ(hooks.in_flight(), 2u);
    EXPECT_EQ(count(hooks, "dropped"), 1u);
    ASSERT_TRUE(run_until(
        loop, [&] { return count(hooks, "timeout") == 2; }, 5s));
  }
  expect_clean_close(loop);
}

TEST_F(HookTest, NonZeroExitAndVanishedCommandAreCounted) {
  uv::Loop loop;
  {
    HookRunner hooks(loop);
    config::HooksConfig cfg;
    cfg.on_transition = {script("fail.sh", "exit 3")};
    hooks.fire(cfg, {});
    ASSERT_TRUE(run_until(
        loop, [&] { return count(hooks, "failed") == 1; }, 5s));
    // Valid when the config was read, gone since: counted, no crash, nothing in flight.
    cfg.on_transition = {(dir_ / "gone.sh").string()};
    hooks.fire(cfg, {});
    EXPECT_EQ(count(hooks, "spawn_error"), 1u);
    EXPECT_EQ(hooks.in_flight(), 0u);
    // No command configured: nothing runs.
    hooks.fire(config::HooksConfig{}, {});
    EXPECT_EQ(hooks.in_flight(), 0u);
  }
  expect_clean_close(loop);
}

std::string config_error(const std::string& hooks_section) {
  auto r = config::parse("[group]\nname = \"g\"\n" + hooks_section, "hanat.toml");
  if (r) return "accepted";
  std::string all;
  for (const auto& e : r.error()) all += e.to_string() + "\n";
  return all;
}

TEST_F(HookTest, ConfigCheckRefusesACommandThatCannotRun) {
  EXPECT_THAT(config_error("[hooks]\non_transition = [\"" + (dir_ / "missing").string() + "\"]\n"),
              HasSubstr("hooks.on_transition: \"" + (dir_ / "missing").string() +
                        "\": No such file or directory"));
  EXPECT_THAT(config_error("[hooks]\non_transition = [\"notify.sh\"]\n"),
              HasSubstr("hooks.on_transition: \"notify.sh\": must be an absolute path"));
  const fs::path plain = dir_ / "plain";
  std::ofstream(plain) << "not a program\n";
  fs::permissions(plain, fs::perms::owner_read | fs::perms::owner_write);
  if (geteuid() != 0) {  // root may execute anything with any x bit; 0600 has none
    EXPECT_THAT(config_error("[hooks]\non_transition = [\"" + plain.string() + "\"]\n"),
                HasSubstr("not executable"));
  }
  EXPECT_THAT(config_error("[hooks]\non_transition = [\"" + dir_.string() + "\"]\n"),
              HasSubstr("not a regular file"));
  const std::string ok = script("ok.sh", "exit 0");
  EXPECT_EQ(config_error("[hooks]\non_transition = [\"" + ok +
                         "\", \"--flag\"]\ntimeout = \"2s\"\nmax_in_flight = 8\n"),
            "accepted");
  EXPECT_THAT(config_error("[hooks]\nmax_in_flight = 0\n"), HasSubstr("hooks.max_in_flight"));
  EXPECT_THAT(config_error("[hooks]\ntimeout = \"10ms\"\n"), HasSubstr("hooks.timeout"));
}

}  // namespace
}  // namespace hanat::daemon
