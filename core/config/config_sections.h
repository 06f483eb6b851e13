// SPDX-License-Identifier: GPL-2.0-or-later
#pragma once
// Internal to core/config: the two halves of parse() after the TOML is read. Both report
// into the Reader's error list.

#include <toml++/toml.h>

#include "core/config/config.h"
#include "core/config/toml_reader.h"

namespace hanat::config::detail {

// Rejects unknown sections and reads every known [section] field by field
// (config_sections.cc).
void read_sections(Reader& r, const toml::table& root, Config& c);

// The rules that span fields or sections, reported at the section (or the file start when
// it is absent); fills the defaults that depend on other fields (config_rules.cc).
void check_rules(Reader& r, const toml::table& root, Config& c);

}  // namespace hanat::config::detail
