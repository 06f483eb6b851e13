// SPDX-License-Identifier: GPL-2.0-or-later
#pragma once
// Programming errors: HANAT_CHECK always aborts with the failed condition and place;
// HANAT_ASSERT only in debug builds. Expected failures are values, never checks
// (STYLE.md C5). Not for core/engine, which may not do I/O.

#include <cstdio>
#include <cstdlib>

#define HANAT_CHECK(cond, msg)                                                               \
  do {                                                                                       \
    if (!(cond)) {                                                                           \
      std::fprintf(stderr, "<2>hanat: check failed at %s:%d: %s (%s)\n", __FILE__, __LINE__, \
                   #cond, msg);                                                              \
      std::abort();                                                                          \
    }                                                                                        \
  } while (0)

#ifdef NDEBUG
#define HANAT_ASSERT(cond, msg) \
  do {                          \
  } while (0)
#else
#define HANAT_ASSERT(cond, msg) HANAT_CHECK(cond, msg)
#endif
