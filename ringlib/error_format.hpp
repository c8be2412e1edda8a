// Formatted errors for ringlib's sources and sring's own tools. Not
// installed: the public headers carry no fmt, so a user's translation units
// do not compile it (ringlib's archive has the fmt code it uses).
#pragma once

#include <cerrno>
#include <system_error>
#include <utility>

#include <fmt/format.h>

#include "sring/error.hpp"

namespace sring {

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

}  // namespace sring
