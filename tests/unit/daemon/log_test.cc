// SPDX-License-Identifier: GPL-2.0-or-later
#include "core/log/log.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdlib>
#include <string>

namespace hanat::log {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// Restores an environment variable at the end of a test.
class EnvGuard {
 public:
  explicit EnvGuard(const char* name) : name_(name) {
    const char* v = std::getenv(name);
    had_ = v != nullptr;
    if (had_) old_ = v;
  }
  ~EnvGuard() {
    if (had_) {
      ::setenv(name_, old_.c_str(), 1);
    } else {
      ::unsetenv(name_);
    }
  }

 private:
  const char* name_;
  bool had_ = false;
  std::string old_;
};

// What `journalctl MESSAGE_ID=... HANAT_ROUTE_TABLE=...` filters on: the message, its
// priority as syslog numbers it, the identifier, the catalogue id, then the fields.
TEST(JournalEntry, CarriesMessagePriorityIdAndFields) {
  auto e = journal_entry(Level::Warning, message_id::kRouteWriteFailed,
                         {{"HANAT_ROUTE_TABLE", "rtb-1"}, {"HANAT_EC2_ACTION", "ReplaceRoute"}},
                         "route rtb-1: ReplaceRoute failed");
  EXPECT_THAT(e,
              ElementsAre("MESSAGE=route rtb-1: ReplaceRoute failed", "PRIORITY=4",
                          "SYSLOG_IDENTIFIER=hanatd", "MESSAGE_ID=25287c6bb61f436ebb5d822e82b91316",
                          "HANAT_ROUTE_TABLE=rtb-1", "HANAT_EC2_ACTION=ReplaceRoute"));
}

// A field journald would refuse (lower case, a trusted "_" field, a leading digit) is
// dropped rather than making the whole entry fail.
TEST(JournalEntry, InvalidFieldNamesAreDropped) {
  auto e = journal_entry(
      Level::Notice, "",
      {{"hanat_peer", "x"}, {"_PID", "1"}, {"1X", "y"}, {"", "z"}, {"HANAT_PEER", "i-1"}}, "m");
  EXPECT_THAT(e,
              ElementsAre("MESSAGE=m", "PRIORITY=5", "SYSLOG_IDENTIFIER=hanatd", "HANAT_PEER=i-1"));
}

TEST(StderrIsJournal, OnlyWhenJournalStreamNamesOurStderr) {
  EnvGuard g("JOURNAL_STREAM");
  ::unsetenv("JOURNAL_STREAM");
  EXPECT_FALSE(stderr_is_journal());
  struct stat st {};
  ASSERT_EQ(::fstat(2, &st), 0);
  const std::string mine = std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino);
  ::setenv("JOURNAL_STREAM", mine.c_str(), 1);
  EXPECT_TRUE(stderr_is_journal());
  // Inherited from a parent whose stderr was the journal, while ours is something else.
  const std::string other = std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino + 1);
  ::setenv("JOURNAL_STREAM", other.c_str(), 1);
  EXPECT_FALSE(stderr_is_journal());
  ::setenv("JOURNAL_STREAM", "garbage", 1);
  EXPECT_FALSE(stderr_is_journal());
}

// Outside the journal an event is the usual prefixed line on stderr.
TEST(Event, IsAStderrLineOutsideTheJournal) {
  EnvGuard g("JOURNAL_STREAM");
  ::unsetenv("JOURNAL_STREAM");
  configure(Level::Info, {});
  ::testing::internal::CaptureStderr();
  event(Level::Notice, message_id::kPeerChanged, {{"HANAT_PEER", "i-2"}}, "peer i-2: up -> down");
  event(Level::Debug, message_id::kPeerChanged, {}, "below the level");
  std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(err, "<5>peer i-2: up -> down\n");
}

// Every decision is kept for `hanatctl events`, whatever the log level, the newest
// kEventHistory of them.
TEST(Event, TheLastDecisionsAreKeptOldestFirst) {
  clear_events();
  configure(Level::Error, {});
  ::testing::internal::CaptureStderr();
  for (std::size_t i = 0; i < kEventHistory + 3; ++i) {
    event(Level::Notice, message_id::kRouteWrite, {{"HANAT_ROUTE_TABLE", "rtb-1"}},
          "write " + std::to_string(i));
  }
  EXPECT_EQ(::testing::internal::GetCapturedStderr(), "");  // below the level: no line
  const auto& ev = recent_events();
  ASSERT_EQ(ev.size(), kEventHistory);
  EXPECT_EQ(ev.front().message, "write 3");
  EXPECT_EQ(ev.back().message, "write " + std::to_string(kEventHistory + 2));
  EXPECT_EQ(ev.back().id, message_id::kRouteWrite);
  ASSERT_EQ(ev.back().fields.size(), 1u);
  EXPECT_EQ(ev.back().fields[0].value, "rtb-1");
  configure(Level::Info, {});
  clear_events();
}

}  // namespace
}  // namespace hanat::log
