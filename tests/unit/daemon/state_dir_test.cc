// SPDX-License-Identifier: GPL-2.0-or-later
// The state directory: files replaced whole, absent files are not errors, and failures
// name the path.

#include "core/daemon/state_dir.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

namespace hanat::daemon {
namespace {

using ::testing::HasSubstr;

struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "/tmp/hanat-state-XXXXXX";
    const char* p = ::mkdtemp(tmpl);
    EXPECT_NE(p, nullptr);
    path = p != nullptr ? p : "";
  }
  ~TempDir() { std::filesystem::remove_all(path); }
};

TEST(StateDir, AbsentFileReadsAsNothing) {
  TempDir t;
  StateDir d(t.path + "/not-created-yet");
  auto r = d.read("drained");
  ASSERT_TRUE(r) << r.error();
  EXPECT_FALSE(r.value().has_value());
  EXPECT_EQ(d.remove("drained"), "");  // nothing to remove is fine
}

TEST(StateDir, WriteCreatesTheDirectoryAndReplacesWhole) {
  TempDir t;
  StateDir d(t.path + "/hanat");
  ASSERT_EQ(d.write("drained", "first, a longer line\n"), "");
  ASSERT_EQ(d.write("drained", "second\n"), "");
  auto r = d.read("drained");
  ASSERT_TRUE(r) << r.error();
  EXPECT_EQ(r.value(), std::optional<std::string>("second\n"));
  // The temporary file was renamed, not left behind.
  EXPECT_FALSE(std::filesystem::exists(t.path + "/hanat/drained.tmp"));
  EXPECT_EQ(d.file("drained"), t.path + "/hanat/drained");
  ASSERT_EQ(d.remove("drained"), "");
  auto gone = d.read("drained");
  ASSERT_TRUE(gone);
  EXPECT_FALSE(gone.value().has_value());
}

TEST(StateDir, FailuresNameThePath) {
  TempDir t;
  // The "directory" is a regular file: nothing can be created in it.
  const std::string file = t.path + "/plain";
  std::ofstream(file) << "x";
  StateDir d(file);
  EXPECT_THAT(d.write("drained", "x"), HasSubstr(file));
  auto r = d.read("drained");
  ASSERT_FALSE(r);
  EXPECT_THAT(r.error(), HasSubstr(file + "/drained"));
  // A directory where the file should be cannot be read as one.
  TempDir t2;
  std::filesystem::create_directory(t2.path + "/drained");
  StateDir d2(t2.path);
  auto r2 = d2.read("drained");
  ASSERT_FALSE(r2);
  EXPECT_THAT(r2.error(), HasSubstr(t2.path + "/drained"));
}

}  // namespace
}  // namespace hanat::daemon
