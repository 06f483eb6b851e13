// SPDX-License-Identifier: GPL-2.0-or-later
#pragma once
// EC2 Query API parameters and their form encoding.
//
// The body is encoded exactly as the AWS SDKs (and Python's urlencode, which moto uses to
// re-derive the signed payload) do: A-Z a-z 0-9 - _ . ~ literal, space as '+', every other
// byte %XX with upper-case hex, keys in insertion order, no repeated keys.

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace hanat::ec2 {

// EC2 API version the client speaks (the current and only Query API version since 2016).
inline constexpr std::string_view kApiVersion = "2016-11-15";

struct Filter {
  std::string name;
  std::vector<std::string> values;
};

// Ordered key/value list of one Query API call.
class Params {
 public:
  Params() = default;
  explicit Params(std::string_view action);  // adds Action and Version

  Params& add(std::string key, std::string value);
  // Replaces the value of `key`, or appends it when absent.
  Params& set(std::string_view key, std::string value);
  // key.1, key.2, ... (EC2's list notation, e.g. InstanceId.1).
  Params& add_list(std::string_view key, const std::vector<std::string>& values);
  // Filter.N.Name / Filter.N.Value.M
  Params& add_filters(const std::vector<Filter>& filters);

  [[nodiscard]] const std::vector<std::pair<std::string, std::string>>& items() const {
    return items_;
  }
  [[nodiscard]] const std::string* find(std::string_view key) const;
  // The x-www-form-urlencoded body.
  [[nodiscard]] std::string encode() const;

 private:
  std::vector<std::pair<std::string, std::string>> items_;
};

// One key or value encoded as above.
[[nodiscard]] std::string form_encode(std::string_view s);

}  // namespace hanat::ec2
