// SPDX-License-Identifier: GPL-2.0-or-later
// Sysctl against a directory laid out like /proc/sys: the pure mapping and the
// write-if-different / read-back logic, without touching the real /proc/sys.
#include "netfilter/sysctl.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace hanat::netfilter {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

class FakeProcSys : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/hanat-sysctl-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    root_ = tmpl;
    put("net.ipv4.ip_forward", "0\n");
    put("net.netfilter.nf_conntrack_tcp_timeout_established", "432000\n");
    put("net.netfilter.nf_conntrack_max", "262144\n");
  }
  void TearDown() override { fs::remove_all(root_); }
  void put(const std::string& name, const std::string& value) {
    fs::path p = root_;
    std::string rel = name;
    for (auto& c : rel) c = c == '.' ? '/' : c;
    p /= rel;
    fs::create_directories(p.parent_path());
    std::ofstream(p) << value;
  }
  std::string root_;
};

TEST(SysctlEntries, ForwardingAlwaysThenOptionalTuning) {
  EXPECT_THAT(sysctl_entries({}), ElementsAre(SysctlEntry{"net.ipv4.ip_forward", "1"}));
  SysctlSpec s;
  s.tcp_timeout_established_s = 350;
  s.conntrack_max = 1048576;
  s.udp_timeout_s = 30;
  s.udp_timeout_stream_s = 120;
  s.tcp_timeout_close_wait_s = 60;
  s.conntrack_events = 1;
  EXPECT_THAT(sysctl_entries(s),
              ElementsAre(SysctlEntry{"net.ipv4.ip_forward", "1"},
                          SysctlEntry{"net.netfilter.nf_conntrack_max", "1048576"},
                          SysctlEntry{"net.netfilter.nf_conntrack_tcp_timeout_established", "350"},
                          SysctlEntry{"net.netfilter.nf_conntrack_tcp_timeout_close_wait", "60"},
                          SysctlEntry{"net.netfilter.nf_conntrack_udp_timeout", "30"},
                          SysctlEntry{"net.netfilter.nf_conntrack_udp_timeout_stream", "120"},
                          SysctlEntry{"net.netfilter.nf_conntrack_events", "1"}));
}

TEST_F(FakeProcSys, AppliesOnlyWhatDiffersAndReadsBack) {
  Sysctl sc(root_);
  SysctlSpec s;
  s.tcp_timeout_established_s = 350;
  s.conntrack_max = 262144;  // already so: not rewritten
  const auto entries = sysctl_entries(s);
  auto diff = sc.check(entries);
  ASSERT_TRUE(diff);
  EXPECT_EQ(diff->value(), "sysctl net.ipv4.ip_forward is 0, want 1");
  auto changed = sc.apply(entries);
  ASSERT_TRUE(changed) << changed.error().message;
  EXPECT_EQ(*changed, 2U);
  EXPECT_EQ(sc.read("net.ipv4.ip_forward").value(), "1");
  EXPECT_EQ(sc.read("net.netfilter.nf_conntrack_tcp_timeout_established").value(), "350");
  EXPECT_EQ(sc.check(entries).value(), std::nullopt);
  EXPECT_EQ(sc.apply(entries).value(), 0U);  // second apply: nothing to do
}

TEST_F(FakeProcSys, MissingSysctlIsNamed) {
  Sysctl sc(root_);
  SysctlSpec s;
  s.udp_timeout_s = 30;
  auto r = sc.apply(sysctl_entries(s));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message,
            "sysctl net.netfilter.nf_conntrack_udp_timeout: No such file or directory");
}

// The read-only case (nf_conntrack_max outside the initial namespace) is covered by the
// namespace tests, with the real kernel; root ignores file modes here.
TEST_F(FakeProcSys, UnreadableSysctlIsNamed) {
  fs::remove(root_ + "/net/ipv4/ip_forward");
  fs::create_directories(root_ + "/net/ipv4/ip_forward");
  Sysctl sc(root_);
  auto r = sc.apply(sysctl_entries({}));
  ASSERT_FALSE(r);
  EXPECT_THAT(r.error().message, HasSubstr("sysctl net.ipv4.ip_forward: "));
}

}  // namespace
}  // namespace hanat::netfilter
