// SPDX-License-Identifier: GPL-2.0-or-later
// load_psk() (handover/psk.h) on files made here.
#include "core/handover/psk.h"

#include <sys/stat.h>
#include <unistd.h>

#include <fstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace hanat::handover {
namespace {

using ::testing::HasSubstr;

std::string write_key(const std::string& name, const std::string& body, mode_t mode) {
  const std::string path = ::testing::TempDir() + "/hanat-psk-" + std::to_string(::getpid()) + name;
  std::ofstream(path, std::ios::binary) << body;
  ::chmod(path.c_str(), mode);
  return path;
}

TEST(Psk, KeyWithoutItsTrailingNewline) {
  const auto p = write_key("ok", "0123456789abcdef-key\n", 0600);
  auto k = load_psk(p);
  ASSERT_TRUE(k) << k.error();
  EXPECT_EQ(*k, "0123456789abcdef-key");
  ::unlink(p.c_str());
}

TEST(Psk, BadFilesAreNamedWithTheReason) {
  const auto shorty = write_key("short", "tooshort\n", 0600);
  EXPECT_THAT(load_psk(shorty).error(), HasSubstr("8 bytes; a key needs at least 16"));
  const auto open = write_key("open", "0123456789abcdef-key\n", 0644);
  EXPECT_THAT(load_psk(open).error(), HasSubstr("others may access it"));
  EXPECT_THAT(load_psk(open).error(), HasSubstr("handover.psk_file \"" + open + "\""));
  const auto big = write_key("big", std::string(2000, 'k'), 0600);
  EXPECT_THAT(load_psk(big).error(), HasSubstr("longer than 1024"));
  EXPECT_THAT(load_psk("/nonexistent/psk").error(), HasSubstr("No such file"));
  EXPECT_THAT(load_psk(::testing::TempDir()).error(), HasSubstr("not a regular file"));
  for (const auto& p : {shorty, open, big}) ::unlink(p.c_str());
}

}  // namespace
}  // namespace hanat::handover
