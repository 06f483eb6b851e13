// SPDX-License-Identifier: GPL-2.0-or-later
#pragma once
// A small value-or-error type shaped like C++23 std::expected, so switching to it later
// is a rename. Expected failures (network, EC2, netlink, config) are values, never
// exceptions (STYLE.md C5).

#include <type_traits>
#include <utility>
#include <variant>

namespace hanat::core {

template <class E>
class Unexpected {
 public:
  explicit Unexpected(E e) : error_(std::move(e)) {}
  [[nodiscard]] const E& error() const& { return error_; }
  [[nodiscard]] E&& error() && { return std::move(error_); }

 private:
  E error_;
};

template <class E>
Unexpected(E) -> Unexpected<E>;

template <class T, class E>
class [[nodiscard]] Result {
 public:
  using value_type = T;
  using error_type = E;

  Result(T value) : v_(std::in_place_index<0>, std::move(value)) {}  // NOLINT: implicit
  template <class G>
  Result(Unexpected<G> u)  // NOLINT: implicit, like std::expected
      : v_(std::in_place_index<1>, E(std::move(u).error())) {}

  [[nodiscard]] bool has_value() const { return v_.index() == 0; }
  explicit operator bool() const { return has_value(); }

  [[nodiscard]] T& value() & { return std::get<0>(v_); }
  [[nodiscard]] const T& value() const& { return std::get<0>(v_); }
  [[nodiscard]] T&& value() && { return std::get<0>(std::move(v_)); }
  [[nodiscard]] const E& error() const& { return std::get<1>(v_); }
  [[nodiscard]] E& error() & { return std::get<1>(v_); }
  [[nodiscard]] E&& error() && { return std::get<1>(std::move(v_)); }

  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  std::variant<T, E> v_;
};

}  // namespace hanat::core
