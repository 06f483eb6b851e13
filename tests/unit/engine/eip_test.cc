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

TEST(EipMove, ZoneEipMovesOnlyAfterTheRouteWriteSucceeded) {
  Harness h{with_eips()};
  h.start(
      {{"rtb-a", "a", inst("i-a")}, {"rtb-b1", "b", inst("i-b")}, {"rtb-b2", "b", inst("i-b")}});
  // a already serves zone a: it associates zone a's EIP once at start, on its primary IP.
  auto start = only<AssociateAddress>(h.take());
  ASSERT_THAT(start, SizeIs(1));
  EXPECT_EQ(start[0].allocation_id, "eipalloc-a");
  EXPECT_TRUE(start[0].home);
  h.send(Ec2Done{start[0].op, start[0].epoch, Ec2Outcome::Ok, "", h.now()});
  h.advance(1min);
  EXPECT_THAT(only<AssociateAddress>(h.take()), IsEmpty()) << "held: not associated again";

  auto a = h.probes("i-b", false, 3);
  EXPECT_THAT(only<WriteRoute>(a), SizeIs(2));
  EXPECT_THAT(only<AssociateAddress>(a), IsEmpty()) << "not before the route write succeeded";
  auto done = h.complete_writes();
  auto eip = only<AssociateAddress>(done);
  ASSERT_THAT(eip, SizeIs(1));
  EXPECT_EQ(eip[0].allocation_id, "eipalloc-b");
  EXPECT_EQ(eip[0].zone, "b");
  EXPECT_FALSE(eip[0].home) << "zone b is not a's own: a secondary private IP";
  h.send(Ec2Done{eip[0].op, eip[0].epoch, Ec2Outcome::Ok, "", h.now()});
  auto snap = h.snap();
  ASSERT_THAT(snap.eips, SizeIs(2));
  EXPECT_TRUE(snap.eips[0].held);
  EXPECT_TRUE(snap.eips[1].held) << "one member serving both zones holds both EIPs";
}

TEST(EipMove, AFailedRouteWriteMovesNoEip) {
  Harness h{with_eips()};
  h.start({{"rtb-a", "a", inst("i-a")}, {"rtb-b", "b", inst("i-b")}});
  auto start = only<AssociateAddress>(h.take());
  ASSERT_THAT(start, SizeIs(1));
  h.send(Ec2Done{start[0].op, start[0].epoch, Ec2Outcome::Ok, "", h.now()});
  h.probes("i-b", false, 3);
  auto failed = h.complete_writes(Ec2Outcome::Fatal, "UnauthorizedOperation");
  EXPECT_THAT(only<AssociateAddress>(failed), IsEmpty());
  EXPECT_FALSE(h.snap().eips[1].held);
}

TEST(EipMove, AMissingAllocationIsReportedAndRoutesStillMove) {
  Harness h{with_eips()};
  h.start({{"rtb-a", "a", inst("i-a")}, {"rtb-b", "b", inst("i-b")}});
  auto start = only<AssociateAddress>(h.take());
  ASSERT_THAT(start, SizeIs(1));
  h.send(Ec2Done{start[0].op, start[0].epoch, Ec2Outcome::Fatal, "InvalidAllocationID.NotFound",
                 h.now()});
  auto snap = h.snap();
  EXPECT_EQ(snap.eips[0].last_error, "InvalidAllocationID.NotFound");
  EXPECT_EQ(snap.eips[0].attempts, 1);
  EXPECT_FALSE(snap.eips[0].held);
  EXPECT_THAT(only<WriteRoute>(h.probes("i-b", false, 3)), SizeIs(1)) << "routes still move";
}

TEST(EipMove, HandingTheZoneAwayReleasesItsSecondaryAddress) {
  Harness h{with_eips()};
  h.start({{"rtb-a", "a", inst("i-a")}, {"rtb-b", "b", inst("i-b")}});
  auto start = only<AssociateAddress>(h.take());
  h.send(Ec2Done{start[0].op, start[0].epoch, Ec2Outcome::Ok, "", h.now()});
  h.probes("i-b", false, 3);
  auto eip = only<AssociateAddress>(h.complete_writes());
  ASSERT_THAT(eip, SizeIs(1));
  h.send(Ec2Done{eip[0].op, eip[0].epoch, Ec2Outcome::Ok, "", h.now()});
  h.take();
  // b returns; after failback_delay it reclaims rtb-b, which a sees on the next Describe.
  h.probes("i-b", true, 5);
  h.advance(31s);
  auto rel =
      only<ReleaseEip>(h.observe({{"rtb-a", "a", inst("i-a")}, {"rtb-b", "b", inst("i-b")}}));
  ASSERT_THAT(rel, SizeIs(1));
  EXPECT_EQ(rel[0].zone, "b");
  EXPECT_FALSE(rel[0].home);
  EXPECT_FALSE(h.snap().eips[1].held);
  EXPECT_TRUE(h.snap().eips[0].held) << "its own zone's EIP stays";
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
  auto released = only<ReleaseEip>(h.complete_writes());
  ASSERT_THAT(released, SizeIs(1));
  EXPECT_TRUE(released[0].home);
  EXPECT_FALSE(h.snap().eips[0].held);
  EXPECT_THAT(only<AssociateAddress>(h.take()), IsEmpty()) << "the receiver moves it, not us";
  h.send(Drain{false, h.now()});
  h.take();
  h.advance(30s);  // failback
  auto log = h.take();
  EXPECT_THAT(only<WriteRoute>(log), SizeIs(1));
  EXPECT_THAT(only<AssociateAddress>(log), IsEmpty()) << "not before the write succeeded";
  EXPECT_THAT(only<AssociateAddress>(h.complete_writes()), SizeIs(1));
}

TEST(EipMove, NothingToMoveWithoutTheZonesTables) {
  Harness h{with_eips()};
  h.start({{"rtb-b", "b", inst("i-b")}});
  h.advance(5min);
  EXPECT_THAT(only<AssociateAddress>(h.take()), IsEmpty());
}

}  // namespace
}  // namespace hanat::engine::testing
