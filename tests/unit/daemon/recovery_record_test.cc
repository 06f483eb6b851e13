// SPDX-License-Identifier: GPL-2.0-or-later
// The state directory's "recovery" file: what a restarted hanatd reads back to keep the
// recovery cool-down (DESIGN rule 8).
#include "core/daemon/recovery_record.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace hanat::daemon {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::SizeIs;

TEST(RecoveryRecord, RoundTrips) {
  std::vector<RecoveryEntry> in{{"i-0b1", "stop-start", 1796277896213, "ok"},
                                {"i-0c2", "reboot", 5, "failed: UnauthorizedOperation (no)"}};
  auto p = parse_recoveries(format_recoveries(in));
  EXPECT_THAT(p.errors, IsEmpty());
  ASSERT_THAT(p.entries, SizeIs(2));
  EXPECT_EQ(p.entries[0].peer, "i-0b1");
  EXPECT_EQ(p.entries[0].action, "stop-start");
  EXPECT_EQ(p.entries[0].at_unix_ms, 1796277896213);
  EXPECT_EQ(p.entries[0].result, "ok");
  EXPECT_EQ(p.entries[1].result, "failed: UnauthorizedOperation (no)");
}

TEST(RecoveryRecord, AResultWithTabsOrNewlinesStaysOneLine) {
  auto text = format_recoveries({{"i-1", "terminate", 1, "failed: a\tb\nc"}});
  auto p = parse_recoveries(text);
  ASSERT_THAT(p.entries, SizeIs(1));
  EXPECT_EQ(p.entries[0].result, "failed: a b c");
}

TEST(RecoveryRecord, BadLinesAreNamedAndSkipped) {
  auto p = parse_recoveries(
      "# comment\n"
      "i-ok\tstop-start\t10\tok\n"
      "garbage\n"
      "x-1\treboot\t1\tok\n"
      "i-2\tpoweroff\t1\tok\n"
      "i-3\treboot\t12ab\tok\n"
      "i-4\treboot\t-5\tok\n"
      "\n"
      "i-5\tterminate\t7\t");
  ASSERT_THAT(p.entries, SizeIs(2));
  EXPECT_EQ(p.entries[0].peer, "i-ok");
  EXPECT_EQ(p.entries[1].peer, "i-5");
  EXPECT_EQ(p.entries[1].result, "");
  ASSERT_THAT(p.errors, SizeIs(5));
  EXPECT_THAT(p.errors[0], HasSubstr("line 3: not"));
  EXPECT_THAT(p.errors[1], HasSubstr("line 4: \"x-1\" is not an instance id"));
  EXPECT_THAT(p.errors[2], HasSubstr("line 5: action \"poweroff\""));
  EXPECT_THAT(p.errors[3], HasSubstr("line 6: time \"12ab\""));
  EXPECT_THAT(p.errors[4], HasSubstr("line 7: time \"-5\""));
}

TEST(RecoveryRecord, EmptyFileHasNothing) {
  auto p = parse_recoveries("");
  EXPECT_THAT(p.entries, IsEmpty());
  EXPECT_THAT(p.errors, IsEmpty());
}

}  // namespace
}  // namespace hanat::daemon
