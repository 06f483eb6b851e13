// SPDX-License-Identifier: GPL-2.0-or-later
// Optional EIP move: a zone's Elastic IP follows the zone's anchor table (its first by id).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/unit/engine/harness.h"

namespace hanat::engine::testing {
namespace {

using ::testing::IsEmpty;
using ::testing::SizeIs;

Config with_eips() {
  auto c = base_config();
  c.eips = {{"a", "eipalloc-a"}, {"b", "eipalloc-b"}};
  return c;
}

TEST(EipMove, ZoneEipMovesInTheSameStepAsTheTakeover) {
  Harness h{with_eips()};
  h.start(
      {{"rtb-a", "a", inst("i-a")}, {"rtb-b1", "b", inst("i-b")}, {"rtb-b2", "b", inst("i-b")}});
  // a already serves zone a: it associates zone a's EIP once at start.
  auto start = only<AssociateAddress>(h.take());
  ASSERT_THAT(start, SizeIs(1));
  EXPECT_EQ(start[0].allocation_id, "eipalloc-a");
  h.send(Ec2Done{start[0].op, start[0].epoch, Ec2Outcome::Ok, "", h.now()});
  h.advance(1min);
  EXPECT_THAT(only<AssociateAddress>(h.take()), IsEmpty()) << "held: not associated again";

  auto a = h.probes("i-b", false, 3);
  EXPECT_THAT(only<WriteRoute>(a), SizeIs(2));
  auto eip = only<AssociateAddress>(a);
  ASSERT_THAT(eip, SizeIs(1));
  EXPECT_EQ(eip[0].allocation_id, "eipalloc-b");
  EXPECT_EQ(eip[0].zone, "b");
}

TEST(EipMove, ThrottledAssociationIsRetriedWithBackoff) {
  Harness h{with_eips()};
  h.start({{"rtb-a", "a", inst("i-a")}});
  auto first = only<AssociateAddress>(h.take());
  ASSERT_THAT(first, SizeIs(1));
  h.send(
      Ec2Done{first[0].op, first[0].epoch, Ec2Outcome::Throttled, "RequestLimitExceeded", h.now()});
  h.advance(199ms);
  EXPECT_THAT(only<AssociateAddress>(h.take()), IsEmpty());
  h.advance(1ms);
  EXPECT_THAT(only<AssociateAddress>(h.take()), SizeIs(1));
}

TEST(EipMove, LosingTheAnchorTableForgetsTheEipAndRegainingItMovesItBack) {
  Harness h{with_eips()};
  h.start({{"rtb-a", "a", inst("i-a")}});
  auto first = only<AssociateAddress>(h.take());
  ASSERT_THAT(first, SizeIs(1));
  h.send(Ec2Done{first[0].op, first[0].epoch, Ec2Outcome::Ok, "", h.now()});
  h.send(Drain{true, h.now()});
  h.complete_writes();
  EXPECT_FALSE(h.snap().eips[0].held);
  EXPECT_THAT(only<AssociateAddress>(h.take()), IsEmpty()) << "the receiver moves it, not us";
  h.send(Drain{false, h.now()});
  h.take();
  h.advance(30s);  // failback
  auto log = h.take();
  EXPECT_THAT(only<WriteRoute>(log), SizeIs(1));
  EXPECT_THAT(only<AssociateAddress>(log), SizeIs(1));
}

TEST(EipMove, NothingToMoveWithoutTheZonesTables) {
  Harness h{with_eips()};
  h.start({{"rtb-b", "b", inst("i-b")}});
  h.advance(5min);
  EXPECT_THAT(only<AssociateAddress>(h.take()), IsEmpty());
}

}  // namespace
}  // namespace hanat::engine::testing
