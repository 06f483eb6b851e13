// SPDX-License-Identifier: GPL-2.0-or-later
#include "ec2/form.h"

namespace hanat::ec2 {

Params::Params(std::string_view action) {
  add("Action", std::string(action));
  add("Version", std::string(kApiVersion));
}

Params& Params::add(std::string key, std::string value) {
  items_.emplace_back(std::move(key), std::move(value));
  return *this;
}

Params& Params::set(std::string_view key, std::string value) {
  for (auto& [k, v] : items_) {
    if (k == key) {
      v = std::move(value);
      return *this;
    }
  }
  return add(std::string(key), std::move(value));
}

Params& Params::add_list(std::string_view key, const std::vector<std::string>& values) {
  for (size_t i = 0; i < values.size(); ++i) {
    add(std::string(key) + "." + std::to_string(i + 1), values[i]);
  }
  return *this;
}

Params& Params::add_filters(const std::vector<Filter>& filters) {
  for (size_t i = 0; i < filters.size(); ++i) {
    const std::string prefix = "Filter." + std::to_string(i + 1);
    add(prefix + ".Name", filters[i].name);
    add_list(prefix + ".Value", filters[i].values);
  }
  return *this;
}

const std::string* Params::find(std::string_view key) const {
  for (const auto& [k, v] : items_) {
    if (k == key) return &v;
  }
  return nullptr;
}

std::string form_encode(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size() + s.size() / 4);
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
        c == '_' || c == '.' || c == '~') {
      out.push_back(ch);
    } else if (c == ' ') {
      out.push_back('+');
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 0x0f]);
    }
  }
  return out;
}

std::string Params::encode() const {
  std::string out;
  for (const auto& [k, v] : items_) {
    if (!out.empty()) out.push_back('&');
    out += form_encode(k);
    out.push_back('=');
    out += form_encode(v);
  }
  return out;
}

}  // namespace hanat::ec2
