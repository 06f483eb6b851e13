// SPDX-License-Identifier: GPL-2.0-or-later
// EgressCheck: the self-check must leave through the configured interface.
//   a: hea<pid> 198.18.1.1/24  <->  c ("internet"): hec<pid> 198.18.1.2/24, targets
//      198.19.0.1 and 198.19.0.2 on its loopback, TCP listener on 198.19.0.1.
// a routes 198.19.0.0/24 via the peer b (metric 10, b does not forward: dead end) and via c
// (metric 20). Unbound probes take the dead end; probes bound to hea reach the targets.
#include "tests/integration/probes/fixture.h"

namespace hanat::probes {
namespace {

class EgressTest : public NetnsTest {
 protected:
  void SetUp() override {
    NetnsTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    std::string pid = std::to_string(getpid());
    c_ = std::make_unique<Netns>("hanat-pr-" + pid + "-c");
    ASSERT_TRUE(c_->ok());
    ea_ = "hea" + pid;
    ec_ = "hec" + pid;
    std::string A = "ip -n " + a_->name() + " ", C = "ip -n " + c_->name() + " ";
    ASSERT_EQ(sh(A + "link add " + ea_ + " type veth peer name " + ec_ + " netns " + c_->name()),
              0);
    ASSERT_EQ(sh(A + "addr add 198.18.1.1/24 dev " + ea_), 0);
    ASSERT_EQ(sh(C + "addr add 198.18.1.2/24 dev " + ec_), 0);
    ASSERT_EQ(sh(C + "addr add 198.19.0.1/32 dev lo"), 0);
    ASSERT_EQ(sh(C + "addr add 198.19.0.2/32 dev lo"), 0);
    ASSERT_EQ(sh(A + "link set " + ea_ + " up"), 0);
    ASSERT_EQ(sh(C + "link set " + ec_ + " up"), 0);
    ASSERT_EQ(sh(A + "route add 198.19.0.0/24 via 198.18.0.2 dev " + pa_ + " metric 10"), 0);
    ASSERT_EQ(sh(A + "route add 198.19.0.0/24 via 198.18.1.2 dev " + ea_ + " metric 20"), 0);

    InNetns in_c(c_->name());
    ASSERT_TRUE(in_c.ok());
    web_ = std::make_unique<uv::Tcp>(loop_);
    auto la = addr("198.19.0.1");
    ASSERT_FALSE(web_->bind(reinterpret_cast<sockaddr*>(&la)));
    ASSERT_FALSE(web_->listen(64, [this](std::error_code) {
      auto conn = std::make_unique<uv::Tcp>(loop_);
      if (!web_->accept(*conn)) extra_.push_back(std::move(conn));
    }));
    sockaddr_storage ss{};
    ASSERT_FALSE(web_->sockname(ss));
    web_port_ = ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
  }
  void TearDown() override {
    egress2_.reset();
    web_.reset();
    NetnsTest::TearDown();
  }

  ProbeOptions timing() const {
    ProbeOptions o;
    o.interval = 50ms;
    o.timeout = 50ms;
    o.fall = 3;
    return o;
  }
  std::unique_ptr<EgressCheck> make(std::vector<EgressTarget> targets, int k, std::string interface,
                                    std::vector<Health>* changes) {
    EgressSpec spec{.targets = std::move(targets),
                    .interface = std::move(interface),
                    .source_address = {},
                    .k = k};
    auto r = EgressCheck::create(
        loop_, spec, timing(),
        {{}, [changes](const EgressWindow::Verdict& v) { changes->push_back(v.state); }});
    EXPECT_TRUE(r) << r.error();
    if (!r) return nullptr;
    auto c = std::move(r).value();
    EXPECT_FALSE(c->start());
    return c;
  }
  std::vector<EgressTarget> targets() const {
    return {{"198.19.0.1", 0}, {"198.19.0.2", 0}, {"198.19.0.1", web_port_}};
  }

  std::string ea_, ec_;
  std::unique_ptr<uv::Tcp> web_;
  std::uint16_t web_port_ = 0;
  std::unique_ptr<EgressCheck> egress2_;
};

TEST_F(EgressTest, HealthyOnlyWhenProbesLeaveThroughTheEgressInterface) {
  std::vector<Health> bound_changes, unbound_changes;
  egress_ = make(targets(), 2, ea_, &bound_changes);
  egress2_ = make(targets(), 2, "", &unbound_changes);
  ASSERT_TRUE(egress_ && egress2_);
  ASSERT_TRUE(run_until(
      loop_,
      [&] {
        // Wait for the notifications, not just the verdicts computed on demand.
        return !bound_changes.empty() && bound_changes.back() == Health::Up &&
               egress_->verdict().answered == 3 && !unbound_changes.empty();
      },
      2s))
      << egress_->verdict().detail << " / " << egress2_->verdict().detail;
  EXPECT_EQ(egress_->verdict().answered, 3u);
  EXPECT_EQ(egress_->verdict().detail, "3 of 3 egress targets answered within 150 ms (need 2)");
  // Normally just {Up}; a loop stalled past the first window on a loaded machine may add an
  // initial Down, but never a Down after the check became healthy.
  ASSERT_FALSE(bound_changes.empty());
  EXPECT_EQ(bound_changes.back(), Health::Up);
  EXPECT_LE(bound_changes.size(), 2u);
  EXPECT_EQ(unbound_changes, std::vector<Health>{Health::Down})
      << "the routing table's preferred path is a dead end";
}

TEST_F(EgressTest, UplinkCutFailsWithinWindowAndRecovers) {
  std::vector<Health> changes;
  egress_ = make(targets(), 1, ea_, &changes);
  ASSERT_TRUE(egress_);
  ASSERT_TRUE(run_until(
      loop_, [&] { return egress_->verdict().state == Health::Up; }, 2s));
  ASSERT_TRUE(hanat::testing::set_link(c_->name(), ec_, false));
  Time cut = Clock::now();
  ASSERT_TRUE(run_until(
      loop_, [&] { return !changes.empty() && changes.back() == Health::Down; }, 2s));
  auto took = Clock::now() - cut;
  // The newest success is at most the cut time; it ages out one window (fall x interval)
  // later. The slack is not 20 ms: this test also runs in the parallel ASan pass, where a
  // loaded loop lags by tens of ms. 100 ms still tells one window (150 ms) from two (300 ms).
  EXPECT_LE(took, timing().interval * timing().fall + 100ms)
      << std::chrono::duration_cast<std::chrono::milliseconds>(took).count() << " ms";
  EXPECT_EQ(egress_->verdict().detail, "0 of 3 egress targets answered within 150 ms (need 1)");
  ASSERT_TRUE(hanat::testing::set_link(c_->name(), ec_, true));
  ASSERT_TRUE(run_until(
      loop_, [&] { return changes.back() == Health::Up; }, 2s));
  EXPECT_EQ(changes, (std::vector<Health>{Health::Up, Health::Down, Health::Up}));
}

TEST_F(EgressTest, KOfNWithOneDeadTarget) {
  auto t = targets();
  t.push_back({"198.19.0.9", 0});  // c drops it: no such address, no forwarding
  std::vector<Health> k3, k4;
  egress_ = make(t, 3, ea_, &k3);
  egress2_ = make(t, 4, ea_, &k4);
  ASSERT_TRUE(egress_ && egress2_);
  ASSERT_TRUE(run_until(
      loop_,
      [&] {
        return egress_->verdict().state == Health::Up && egress2_->verdict().state == Health::Down;
      },
      2s));
  EXPECT_EQ(egress2_->verdict().answered, 3u);
}

TEST_F(EgressTest, BadSpecsAreRejectedWithClearErrors) {
  auto err = [&](EgressSpec s) {
    auto r = EgressCheck::create(loop_, std::move(s), timing(), {});
    return r ? std::string("accepted") : r.error();
  };
  EXPECT_EQ(err({.targets = {}, .interface = ea_, .source_address = {}, .k = 1}),
            "egress check: no targets");
  EXPECT_EQ(err({.targets = targets(), .interface = ea_, .source_address = {}, .k = 4}),
            "egress check: k = 4 must be between 1 and the 3 targets");
  EXPECT_EQ(err({.targets = {{"example.com", 0}}, .interface = ea_, .source_address = {}, .k = 1}),
            "egress check: egress target #1: 'example.com' is not a numeric IPv4 address");
  EXPECT_EQ(err({.targets = targets(), .interface = "no such if", .source_address = {}, .k = 1}),
            "egress check: interface: 'no such if' is not a valid interface name");
}

}  // namespace
}  // namespace hanat::probes
