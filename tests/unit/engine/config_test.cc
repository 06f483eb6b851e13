// SPDX-License-Identifier: GPL-2.0-or-later
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "core/engine/types.h"
#include "tests/unit/engine/harness.h"

namespace hanat::engine::testing {
namespace {

using ::testing::Contains;
using ::testing::IsEmpty;

TEST(EngineConfig, BaseConfigIsValid) {
  EXPECT_THAT(validate(base_config()), IsEmpty());
}

TEST(EngineConfig, NamesEachProblem) {
  Config c = base_config("i-z");
  c.members.push_back({"i-a", "", "", 0});
  c.peer_thresholds.fall = 0;
  c.hold_down_max = c.hold_down_base / 2;
  c.destinations = {"0.0.0.0/0", "0.0.0.0/0"};
  c.fallback_nat_gateway = "igw-123";
  c.write_refill_per_s = 0;
  auto errors = validate(c);
  EXPECT_THAT(errors, Contains("self \"i-z\" is not one of members"));
  EXPECT_THAT(errors, Contains("members[2].zone is empty"));
  EXPECT_THAT(errors, Contains("members[2].instance_id \"i-a\" is listed twice"));
  EXPECT_THAT(errors, Contains("peer_thresholds.fall must be at least 1"));
  EXPECT_THAT(errors, Contains("hold_down_max is below hold_down_base"));
  EXPECT_THAT(errors, Contains("destination \"0.0.0.0/0\" is listed twice"));
  EXPECT_THAT(errors,
              Contains("fallback_nat_gateway \"igw-123\" is not a NAT Gateway id (nat-...)"));
  EXPECT_THAT(errors, Contains("write_refill_per_s must be positive"));
}

TEST(EngineConfig, ObservationListingATableTwiceKeepsTheFirst) {
  Harness h{base_config()};
  h.start({});
  h.take();
  auto a = h.observe({{"rtb-a", "a", inst("i-a")}, {"rtb-a", "a", blackhole()}});
  EXPECT_THAT(only<WriteRoute>(a), IsEmpty());
  ASSERT_EQ(h.snap().tables.size(), 1u);
  EXPECT_EQ(h.snap().tables[0].routes[0].current, inst("i-a"));
}

TEST(EngineConfig, ProbesOfUnknownPeersAndOfSelfAreIgnored) {
  Harness h{base_config()};
  h.start({{"rtb-a", "a", inst("i-a")}});
  h.take();
  auto a = h.probes("i-nobody", false, 5);
  auto b = h.probes("i-a", false, 5);
  EXPECT_THAT(only<PeerChanged>(a), IsEmpty());
  EXPECT_THAT(only<PeerChanged>(b), IsEmpty());
  EXPECT_EQ(h.state(), State::Active);
}

}  // namespace
}  // namespace hanat::engine::testing
