// SPDX-License-Identifier: GPL-2.0-or-later
// LinkWatch against the kernel: the thread is inside namespace a (NetnsTest), whose veth pa_
// leads to b. Taking b's end down removes a's carrier (IFF_RUNNING clears), as a cut cable
// or a detached ENI would.
#include "probes/link_watch.h"

#include "tests/integration/probes/fixture.h"

namespace hanat::probes {
namespace {

class LinkWatchTest : public NetnsTest {};

TEST_F(LinkWatchTest, CarrierLossAndReturnAreReportedWithTheirTimes) {
  std::vector<std::pair<bool, Time>> changes;
  auto w = LinkWatch::create(loop_, pa_, [&](bool up, Time at) { changes.emplace_back(up, at); });
  ASSERT_TRUE(w) << w.error();
  auto& watch = *w.value();
  EXPECT_TRUE(watch.up());
  EXPECT_FALSE(watch.last_up());
  EXPECT_FALSE(watch.impaired(Clock::now(), 1s));

  const Time before_down = Clock::now();
  ASSERT_EQ(sh("ip -n " + b_->name() + " link set " + pb_ + " down"), 0);
  ASSERT_TRUE(run_until(
      loop_, [&] { return !watch.up(); }, 2s));
  ASSERT_EQ(changes.size(), 1U);
  EXPECT_FALSE(changes[0].first);
  EXPECT_GE(changes[0].second, before_down);
  EXPECT_TRUE(watch.impaired(Clock::now(), 0s));
  EXPECT_EQ(watch.downs(), 1U);

  ASSERT_EQ(sh("ip -n " + b_->name() + " link set " + pb_ + " up"), 0);
  ASSERT_TRUE(run_until(
      loop_, [&] { return watch.up(); }, 2s));
  ASSERT_EQ(changes.size(), 2U);
  ASSERT_TRUE(watch.last_up());
  EXPECT_EQ(*watch.last_up(), changes[1].second);
  // A probe failure just after the link returned may belong to the outage; a later one is
  // the peer's.
  EXPECT_TRUE(watch.impaired(*watch.last_up() + 100ms, 200ms));
  EXPECT_FALSE(watch.impaired(*watch.last_up() + 300ms, 200ms));
}

TEST_F(LinkWatchTest, OtherInterfacesDoNotCount) {
  std::vector<bool> changes;
  auto w = LinkWatch::create(loop_, "lo", [&](bool up, Time) { changes.push_back(up); });
  ASSERT_TRUE(w) << w.error();
  ASSERT_EQ(sh("ip -n " + b_->name() + " link set " + pb_ + " down"), 0);
  auto mine = LinkWatch::create(loop_, pa_, {});
  ASSERT_TRUE(mine);
  ASSERT_TRUE(run_until(
      loop_, [&] { return !mine.value()->up(); }, 2s));
  EXPECT_TRUE(changes.empty());
}

TEST_F(LinkWatchTest, InterfaceIsFoundByItsAddressAndErrorsNameWhatIsMissing) {
  auto name = interface_with_address(kA);
  ASSERT_TRUE(name) << name.error();
  EXPECT_EQ(*name, pa_);
  auto none = interface_with_address("198.18.77.77");
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error(), "no interface holds 198.18.77.77");
  EXPECT_EQ(interface_with_address("nat1").error(), "\"nat1\" is not a numeric IPv4 address");
  auto bad = LinkWatch::create(loop_, "nosuchif0", {});
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error(), "link watch on \"nosuchif0\": no such interface");
}

}  // namespace
}  // namespace hanat::probes
