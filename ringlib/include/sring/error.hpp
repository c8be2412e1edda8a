// Errors at ringlib's boundary: an errno-style code and a message that says
// what was wrong, returned in an Expected<T>, shaped like C++23's
// std::expected (value_or, and_then, transform, or_else) since C++20 has
// none. The code converts to std::error_code (generic category), so callers
// can compare with std::errc. Misuse never ends in std::bad_variant_access:
// value() on an error throws ExpectedAccessError, a std::system_error that
// carries the error's code and message; error() on a value is the empty
// Error (code 0).
#pragma once

#include <cerrno>
#include <functional>
#include <stdexcept>
#include <string>
#include <system_error>
#include <type_traits>
#include <utility>
#include <variant>

namespace sring {

struct Error {
  int code = 0;         // positive errno value (EINVAL, EPROTO, ...)
  std::string message;  // complete sentence for a human

  std::error_code error_code() const { return {code, std::generic_category()}; }
  explicit operator bool() const { return code != 0; }
};

// What value() throws when there is no value.
class ExpectedAccessError : public std::system_error {
 public:
  explicit ExpectedAccessError(const Error& error)
      : std::system_error(error.error_code(), error.message), error_(error) {}
  const Error& error() const { return error_; }
  // The message alone: it already says why (std::system_error would append
  // the errno text a second time).
  const char* what() const noexcept override { return error_.message.c_str(); }

 private:
  Error error_;
};

template <typename T>
class Expected;

namespace detail {
template <typename E>
struct is_expected : std::false_type {};
template <typename U>
struct is_expected<Expected<U>> : std::true_type {};
}  // namespace detail

template <typename T>
class [[nodiscard]] Expected {
  static_assert(!std::is_same_v<std::remove_cv_t<T>, Error>, "Expected<Error> is ambiguous");

 public:
  using value_type = T;

  Expected(T value) : state_(std::in_place_index<0>, std::move(value)) {}
  Expected(Error error) : state_(std::in_place_index<1>, std::move(error)) {}

  bool has_value() const noexcept { return state_.index() == 0; }
  explicit operator bool() const noexcept { return has_value(); }

  // The value; ExpectedAccessError (with the error's code and message) if
  // there is none.
  T& value() & {
    check();
    return *std::get_if<0>(&state_);
  }
  const T& value() const& {
    check();
    return *std::get_if<0>(&state_);
  }
  T&& value() && {
    check();
    return std::move(*std::get_if<0>(&state_));
  }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  // The error; an empty Error (code 0) if there is a value.
  const Error& error() const noexcept {
    static const Error kNone{};
    const Error* error = std::get_if<1>(&state_);
    return error != nullptr ? *error : kNone;
  }
  std::error_code error_code() const noexcept { return has_value() ? std::error_code{} : error().error_code(); }

  template <typename U>
  T value_or(U&& fallback) const& {
    return has_value() ? *std::get_if<0>(&state_) : static_cast<T>(std::forward<U>(fallback));
  }
  template <typename U>
  T value_or(U&& fallback) && {
    return has_value() ? std::move(*std::get_if<0>(&state_)) : static_cast<T>(std::forward<U>(fallback));
  }

  // f(value) -> Expected<U>; an error passes through untouched.
  template <typename F>
  auto and_then(F&& f) const& {
    using Result = std::remove_cvref_t<std::invoke_result_t<F, const T&>>;
    static_assert(detail::is_expected<Result>::value, "and_then(f): f must return an sring::Expected");
    if (!has_value()) return Result(error());
    return std::invoke(std::forward<F>(f), *std::get_if<0>(&state_));
  }
  template <typename F>
  auto and_then(F&& f) && {
    using Result = std::remove_cvref_t<std::invoke_result_t<F, T&&>>;
    static_assert(detail::is_expected<Result>::value, "and_then(f): f must return an sring::Expected");
    if (!has_value()) return Result(std::move(*std::get_if<1>(&state_)));
    return std::invoke(std::forward<F>(f), std::move(*std::get_if<0>(&state_)));
  }
  // f(value) -> U, wrapped as Expected<U>.
  template <typename F>
  auto transform(F&& f) const& {
    using U = std::remove_cvref_t<std::invoke_result_t<F, const T&>>;
    if (!has_value()) return Expected<U>(error());
    return Expected<U>(std::invoke(std::forward<F>(f), *std::get_if<0>(&state_)));
  }
  // f(error) -> Expected<T>: recover, or return another error.
  template <typename F>
  Expected or_else(F&& f) const& {
    if (has_value()) return *this;
    return std::invoke(std::forward<F>(f), error());
  }

 private:
  void check() const {
    if (const Error* error = std::get_if<1>(&state_)) throw ExpectedAccessError(*error);
  }

  std::variant<T, Error> state_;
};

// Expected<void>: success or an Error.
struct Ok {};
using Status = Expected<Ok>;
inline Status ok() { return Ok{}; }

}  // namespace sring
