// Errors at ringlib's boundary: an errno-style code and a message that says
// what was wrong, returned in an Expected<T> (C++20 has no std::expected).
// Exceptions are left to programs that cannot go on.
#pragma once

#include <cerrno>
#include <string>
#include <system_error>
#include <utility>
#include <variant>

#include <fmt/format.h>

namespace sring {

struct Error {
  int code = 0;         // positive errno value (EINVAL, EPROTO, ...)
  std::string message;  // complete sentence for a human
};

template <typename... Args>
Error make_error(int code, fmt::format_string<Args...> format, Args&&... args) {
  return Error{code, fmt::format(format, std::forward<Args>(args)...)};
}

// An error that carries the current errno and its text.
template <typename... Args>
Error errno_error(fmt::format_string<Args...> format, Args&&... args) {
  const int saved = errno;
  return Error{saved, fmt::format("{}: {}", fmt::format(format, std::forward<Args>(args)...),
                                  std::system_category().message(saved))};
}

template <typename T>
class [[nodiscard]] Expected {
 public:
  Expected(T value) : state_(std::move(value)) {}
  Expected(Error error) : state_(std::move(error)) {}

  bool has_value() const { return state_.index() == 0; }
  explicit operator bool() const { return has_value(); }

  T& value() & { return std::get<0>(state_); }
  const T& value() const& { return std::get<0>(state_); }
  T&& value() && { return std::get<0>(std::move(state_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  const Error& error() const { return std::get<1>(state_); }

 private:
  std::variant<T, Error> state_;
};

// Expected<void>: success or an Error.
struct Ok {};
using Status = Expected<Ok>;
inline Status ok() { return Ok{}; }

}  // namespace sring
