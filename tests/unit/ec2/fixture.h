// SPDX-License-Identifier: GPL-2.0-or-later
#pragma once
#include <fstream>
#include <sstream>
#include <string>

namespace hanat::ec2::testing {
inline std::string fixture(const std::string& name) {
  std::ifstream in(std::string(HANAT_SOURCE_DIR) + "/tests/fixtures/ec2/" + name, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}
}  // namespace hanat::ec2::testing
