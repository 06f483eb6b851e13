// SPDX-License-Identifier: GPL-2.0-or-later
#include "core/daemon/stop_kind.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

namespace hanat::daemon {
namespace {

// The job types systemd reports (org.freedesktop.systemd1.Job.JobType): only the ones
// whose stop is followed by a start of the same unit keep the routes.
TEST(StopKind, OnlyRestartJobsAreRestarts) {
  EXPECT_TRUE(job_type_is_restart("restart"));
  EXPECT_TRUE(job_type_is_restart("try-restart"));
  for (const char* t : {"stop", "start", "reload", "verify-active", "nop", "", "Restart"}) {
    EXPECT_FALSE(job_type_is_restart(t)) << t;
  }
}

// Without a reachable systemd (no bus socket at the address given), the query fails with
// a reason instead of hanging or throwing, and reports no job.
TEST(StopKind, NoSystemBusIsAnEmptyJobWithAReason) {
  const char* old = std::getenv("DBUS_SYSTEM_BUS_ADDRESS");
  std::string saved = old != nullptr ? old : "";
  ::setenv("DBUS_SYSTEM_BUS_ADDRESS", "unix:path=/nonexistent/hanat-test-bus", 1);
  std::string why;
  EXPECT_EQ(systemd_unit_job_type(&why), "");
  EXPECT_NE(why.find("system bus"), std::string::npos) << why;
  if (old != nullptr) {
    ::setenv("DBUS_SYSTEM_BUS_ADDRESS", saved.c_str(), 1);
  } else {
    ::unsetenv("DBUS_SYSTEM_BUS_ADDRESS");
  }
}

}  // namespace
}  // namespace hanat::daemon
