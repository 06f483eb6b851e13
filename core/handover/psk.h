// SPDX-License-Identifier: GPL-2.0-or-later
#pragma once
// The member channel's pre-shared key (`[handover] psk_file`).

#include <string>

#include "core/base/result.h"

namespace hanat::handover {

inline constexpr size_t kMinPskBytes = 16;
inline constexpr size_t kMaxPskBytes = 1024;

// Reads the key: the file's bytes without one trailing newline, 16 to 1024 bytes, from a
// regular file that others cannot read (a key every local user can read authenticates
// nothing). Errors name the file and what is wrong.
[[nodiscard]] core::Result<std::string, std::string> load_psk(const std::string& path);

}  // namespace hanat::handover
