// SPDX-License-Identifier: GPL-2.0-or-later
#include "core/daemon/lifecycle.h"

#include <gtest/gtest.h>

namespace hanat::daemon {
namespace {

TEST(LifecycleResponse, EveryDocumentedStateButInServiceHandsOver) {
  EXPECT_EQ(lifecycle_response("InService"), LifecycleResponse::Serve);
  EXPECT_EQ(lifecycle_response("Terminated"), LifecycleResponse::Leave);
  EXPECT_EQ(lifecycle_response("Warmed:Terminated"), LifecycleResponse::Leave);
  EXPECT_EQ(lifecycle_response("Detached"), LifecycleResponse::Leave);
  EXPECT_EQ(lifecycle_response("Standby"), LifecycleResponse::Drain);
  EXPECT_EQ(lifecycle_response("Warmed:Stopped"), LifecycleResponse::Drain);
  EXPECT_EQ(lifecycle_response("Warmed:Running"), LifecycleResponse::Drain);
  EXPECT_EQ(lifecycle_response("Warmed:Hibernated"), LifecycleResponse::Drain);
}

TEST(LifecycleResponse, NoStateMeansServe) {
  // Not in an Auto Scaling group: IMDS answers 404, the client reports no value.
  EXPECT_EQ(lifecycle_response(""), LifecycleResponse::Serve);
  EXPECT_EQ(lifecycle_response("Terminated\n"), LifecycleResponse::Leave);
}

TEST(LifecycleResponse, UnknownValuesChangeNothing) {
  // The old code matched the substring "Terminated": these must not start a handover.
  EXPECT_EQ(lifecycle_response("NotTerminatedYet"), LifecycleResponse::Unknown);
  EXPECT_EQ(lifecycle_response("terminated"), LifecycleResponse::Unknown);
  EXPECT_EQ(lifecycle_response("Pending:Wait"), LifecycleResponse::Unknown);
  EXPECT_STREQ(to_string(lifecycle_response("Standby")), "drain");
}

}  // namespace
}  // namespace hanat::daemon
