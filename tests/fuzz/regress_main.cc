// SPDX-License-Identifier: GPL-2.0-or-later
// fuzz_regress: replays the seed corpora and every crash input ever found through the fuzz
// targets without libFuzzer, so a plain (g++) or sanitizer build keeps them fixed in each
// ctest run. A broken invariant or a sanitizer report aborts with the input named above.
//   fuzz_regress <target> <file-or-directory>...
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "tests/fuzz/fuzz_check.h"

namespace {

namespace fs = std::filesystem;
using Target = int (*)(const std::uint8_t*, std::size_t);

struct Named {
  const char* name;
  Target fn;
};
constexpr Named kTargets[] = {
    {"fuzz_ec2_xml", hanat::fuzz::ec2_xml},
    {"fuzz_imds_json", hanat::fuzz::imds_json},
    {"fuzz_config", hanat::fuzz::config_toml},
    {"fuzz_status_request", hanat::fuzz::status_request},
    {"fuzz_agent_line", hanat::fuzz::agent_line},
    {"fuzz_ct_message", hanat::fuzz::ct_message},
    {"fuzz_handover_frame", hanat::fuzz::handover_frame},
};

bool read_file(const fs::path& p, std::string& out) {
  std::ifstream in(p, std::ios::binary);
  if (!in) return false;
  out.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: fuzz_regress <target> <file-or-directory>...\n");
    return 2;
  }
  const std::string name = argv[1];
  const auto* it = std::find_if(std::begin(kTargets), std::end(kTargets),
                                [&](const Named& t) { return name == t.name; });
  if (it == std::end(kTargets)) {
    std::fprintf(stderr, "fuzz_regress: unknown target '%s'\n", name.c_str());
    return 2;
  }
  std::vector<fs::path> inputs;
  for (int i = 2; i < argc; ++i) {
    const fs::path p = argv[i];
    std::error_code ec;
    if (fs::is_directory(p, ec)) {
      for (const auto& e : fs::recursive_directory_iterator(p)) {
        if (e.is_regular_file() && e.path().filename().string().front() != '.')
          inputs.push_back(e.path());
      }
    } else if (fs::is_regular_file(p, ec)) {
      inputs.push_back(p);
    } else {
      std::fprintf(stderr, "fuzz_regress: '%s' is neither a file nor a directory\n", argv[i]);
      return 2;
    }
  }
  if (inputs.empty()) {
    std::fprintf(stderr, "fuzz_regress: no inputs for %s\n", name.c_str());
    return 2;
  }
  std::sort(inputs.begin(), inputs.end());
  std::string data;
  for (const auto& p : inputs) {
    if (!read_file(p, data)) {
      std::fprintf(stderr, "fuzz_regress: cannot read '%s'\n", p.c_str());
      return 2;
    }
    // Named before it runs: if it aborts, this is the last line of the output.
    std::printf("%s: %s (%zu bytes)\n", name.c_str(), p.c_str(), data.size());
    std::fflush(stdout);
    it->fn(reinterpret_cast<const std::uint8_t*>(data.data()), data.size());
  }
  std::printf("fuzz_regress: %s: %zu inputs passed\n", name.c_str(), inputs.size());
  return 0;
}
