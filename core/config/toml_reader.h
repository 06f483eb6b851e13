// SPDX-License-Identifier: GPL-2.0-or-later
#pragma once
// Internal to core/config: the TOML helpers that parse() is built from. Reader reads one
// [section] at a time, checks each value and collects every error with file, line, column
// and key; the free functions are the value checks the sections share.

#include <toml++/toml.h>

#include <algorithm>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/config/config.h"

namespace hanat::config::detail {

using Node = toml::node;

struct Field {
  std::string_view name;
  std::function<void(const Node&, const std::string& key)> read;
};

// " (did you mean ...?)" for the known name closest to `unknown`, or "".
std::string suggestion(std::string_view unknown, const std::vector<std::string_view>& known);
bool is_interface_name(std::string_view s);
bool is_ipv4(std::string_view s);
bool is_region(std::string_view s);
// "" when `s` is an EC2 id with `prefix`, else the error text.
std::string check_id(std::string_view s, std::string_view prefix);
// "" and `out` set when `s` is a CIDR, else the error text.
std::string convert_cidr(std::string_view s, Cidr& out);

class Reader {
 public:
  explicit Reader(std::string file) : file_(std::move(file)) {}

  void error(const toml::source_region& where, std::string key, std::string message) {
    errors_.push_back(Error{file_, static_cast<int>(where.begin.line),
                            static_cast<int>(where.begin.column), std::move(key),
                            std::move(message)});
  }
  void error(const Node& n, std::string key, std::string message) {
    error(n.source(), std::move(key), std::move(message));
  }

  // Reads one [section]: rejects unknown keys, runs each known field's reader.
  void section(const toml::table& root, std::string_view name, const std::vector<Field>& fields) {
    const Node* n = root.get(name);
    if (n == nullptr) return;
    const toml::table* t = n->as_table();
    if (t == nullptr) {
      error(*n, std::string(name), "expected a table ([" + std::string(name) + "])");
      return;
    }
    std::vector<std::string_view> known;
    for (const Field& f : fields) known.push_back(f.name);
    for (const auto& [k, v] : *t) {
      std::string key = std::string(name) + "." + std::string(k.str());
      // Named copy: clang before 16 cannot capture a structured binding in a lambda.
      const std::string_view k_str = k.str();
      auto it = std::find_if(fields.begin(), fields.end(),
                             [&](const Field& f) { return f.name == k_str; });
      if (it == fields.end()) {
        error(k.source(), key, "unknown key" + suggestion(k.str(), known));
        continue;
      }
      it->read(v, key);
    }
  }

  // --- typed field readers

  Field str(std::string_view name, std::string& out,
            std::function<std::string(std::string_view)> check = {}) {
    return {name, [this, &out, check](const Node& n, const std::string& key) {
              const auto* s = n.as_string();
              if (s == nullptr) return error(n, key, "expected a string");
              if (check) {
                std::string why = check(s->get());
                if (!why.empty()) return error(n, key, why);
              }
              out = s->get();
            }};
  }

  Field boolean(std::string_view name, bool& out) {
    return {name, [this, &out](const Node& n, const std::string& key) {
              const auto* b = n.as_boolean();
              if (b == nullptr) return error(n, key, "expected true or false");
              out = b->get();
            }};
  }

  template <class Int>
  Field integer(std::string_view name, Int& out, std::int64_t min, std::int64_t max) {
    return {name, [this, &out, min, max](const Node& n, const std::string& key) {
              std::int64_t v = 0;
              if (!int_value(n, key, min, max, v)) return;
              out = static_cast<Int>(v);
            }};
  }

  Field opt_integer(std::string_view name, std::optional<std::int64_t>& out, std::int64_t min,
                    std::int64_t max) {
    return {name, [this, &out, min, max](const Node& n, const std::string& key) {
              std::int64_t v = 0;
              if (int_value(n, key, min, max, v)) out = v;
            }};
  }

  Field duration(std::string_view name, milliseconds& out, milliseconds min, milliseconds max) {
    return {name, [this, &out, min, max](const Node& n, const std::string& key) {
              if (auto d = duration_value(n, key, min, max)) out = *d;
            }};
  }

  Field opt_duration(std::string_view name, std::optional<milliseconds>& out, milliseconds min,
                     milliseconds max) {
    return {name, [this, &out, min, max](const Node& n, const std::string& key) {
              if (auto d = duration_value(n, key, min, max)) out = *d;
            }};
  }

  // A list of strings, each turned into T by `convert`, which returns an error text or "".
  template <class T>
  Field list(std::string_view name, std::vector<T>& out,
             std::function<std::string(std::string_view, T&)> convert, bool unique = true) {
    return {name, [this, &out, convert, unique](const Node& n, const std::string& key) {
              const auto* arr = n.as_array();
              if (arr == nullptr) return error(n, key, "expected a list of strings");
              std::vector<T> result;
              std::vector<std::string> seen;
              for (size_t i = 0; i < arr->size(); ++i) {
                const Node& e = *arr->get(i);
                std::string ekey = key + "[" + std::to_string(i) + "]";
                const auto* s = e.as_string();
                if (s == nullptr) {
                  error(e, ekey, "expected a string");
                  continue;
                }
                if (unique && std::find(seen.begin(), seen.end(), s->get()) != seen.end()) {
                  error(e, ekey, "\"" + s->get() + "\" is listed twice");
                  continue;
                }
                seen.push_back(s->get());
                T value{};
                std::string why = convert(s->get(), value);
                if (!why.empty()) {
                  error(e, ekey, why);
                  continue;
                }
                result.push_back(std::move(value));
              }
              // Keep the valid elements even when some are bad (the parse fails anyway),
              // so cross-field rules do not add a misleading "is required" error.
              out = std::move(result);
            }};
  }

  template <class E>
  Field enumeration(std::string_view name, E& out,
                    std::vector<std::pair<std::string_view, E>> values) {
    return {name, [this, &out, values](const Node& n, const std::string& key) {
              const auto* s = n.as_string();
              std::string allowed;
              std::vector<std::string_view> names;
              for (const auto& [k, v] : values) {
                allowed +=
                    (allowed.empty() ? "" : ", ") + std::string("\"") + std::string(k) + "\"";
                names.push_back(k);
              }
              if (s == nullptr) return error(n, key, "expected one of " + allowed);
              for (const auto& [k, v] : values) {
                if (k == s->get()) {
                  out = v;
                  return;
                }
              }
              error(n, key,
                    "\"" + s->get() + "\" is not one of " + allowed + suggestion(s->get(), names));
            }};
  }

  Errors take_errors() { return std::move(errors_); }
  [[nodiscard]] bool ok() const { return errors_.empty(); }
  [[nodiscard]] const std::string& file() const { return file_; }

 private:
  bool int_value(const Node& n, const std::string& key, std::int64_t min, std::int64_t max,
                 std::int64_t& v) {
    const auto* i = n.as_integer();
    if (i == nullptr) {
      error(n, key, "expected an integer");
      return false;
    }
    v = i->get();
    if (v < min || v > max) {
      error(n, key,
            std::to_string(v) + " is out of range [" + std::to_string(min) + ", " +
                std::to_string(max) + "]");
      return false;
    }
    return true;
  }

  std::optional<milliseconds> duration_value(const Node& n, const std::string& key,
                                             milliseconds min, milliseconds max) {
    const auto* s = n.as_string();
    if (s == nullptr) {
      error(n, key,
            n.is_integer() ? "expected a duration string such as \"200ms\" or \"5s\" (a bare "
                             "number has no unit)"
                           : "expected a duration string such as \"200ms\" or \"5s\"");
      return std::nullopt;
    }
    auto d = parse_duration(s->get());
    if (!d) {
      error(
          n, key,
          "\"" + s->get() + "\" is not a duration (use ms, s, m or h, e.g. \"200ms\", \"1m30s\")");
      return std::nullopt;
    }
    if (*d < min || *d > max) {
      error(n, key,
            "\"" + s->get() + "\" is out of range [" + format_duration(min) + ", " +
                format_duration(max) + "]");
      return std::nullopt;
    }
    return d;
  }

  std::string file_;
  Errors errors_;
};

}  // namespace hanat::config::detail
