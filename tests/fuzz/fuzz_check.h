// SPDX-License-Identifier: GPL-2.0-or-later
#pragma once
// Shared by the fuzz targets: an invariant check that reports what broke and aborts, so
// libFuzzer (or the fuzz_regress runner under ctest) records the input as a crash.

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#define FUZZ_CHECK(cond, what)                                                               \
  do {                                                                                       \
    if (!(cond)) {                                                                           \
      std::fprintf(stderr, "%s:%d: invariant broken: %s\n  %s\n", __FILE__, __LINE__, #cond, \
                   std::string(what).c_str());                                               \
      std::abort();                                                                          \
    }                                                                                        \
  } while (0)

namespace hanat::fuzz {

inline std::string_view as_view(const std::uint8_t* data, std::size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

// The targets, one per parser. Each returns 0 (libFuzzer's convention) and aborts when an
// invariant breaks. fuzz_regress calls them directly; each libFuzzer binary wraps one.
int ec2_xml(const std::uint8_t* data, std::size_t size);
int imds_json(const std::uint8_t* data, std::size_t size);
int config_toml(const std::uint8_t* data, std::size_t size);
int status_request(const std::uint8_t* data, std::size_t size);
int agent_line(const std::uint8_t* data, std::size_t size);
int ct_message(const std::uint8_t* data, std::size_t size);
int handover_frame(const std::uint8_t* data, std::size_t size);

}  // namespace hanat::fuzz

// In a libFuzzer build each target file defines the entry point for its own function.
#ifdef HANAT_LIBFUZZER
#define HANAT_FUZZ_ENTRY(fn)                                                          \
  extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) { \
    return hanat::fuzz::fn(data, size);                                               \
  }
#else
#define HANAT_FUZZ_ENTRY(fn)
#endif
