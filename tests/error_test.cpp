// sring::Expected / sring::Status (sring/error.hpp): the std::expected-style
// surface every ringlib caller relies on. Misuse must say what was wrong
// (an ExpectedAccessError with the error's code and message), and the
// combinators must run f exactly when the expected says so.
#include <gtest/gtest.h>

#include <cerrno>
#include <string>
#include <system_error>

#include "sring/error.hpp"

namespace {

using sring::Error;
using sring::Expected;
using sring::ExpectedAccessError;

Expected<int> fails(int code, const char* message) { return Error{code, message}; }

TEST(Expected, ValueOnAnErrorThrowsItsCodeAndMessage) {
  const auto bad = fails(EPROTO, "corrupt producer page: head 7 is not within one ring of tail 0");
  ASSERT_FALSE(bad.has_value());
  try {
    (void)bad.value();  // the throw is what is tested, not the value
    FAIL() << "value() on an error returned instead of throwing";
  } catch (const ExpectedAccessError& e) {
    EXPECT_EQ(e.code(), std::errc::protocol_error);
    EXPECT_EQ(e.code().value(), EPROTO);
    EXPECT_NE(std::string(e.what()).find("head 7 is not within one ring"), std::string::npos) << e.what();
    EXPECT_EQ(e.error().code, EPROTO);
    EXPECT_EQ(e.error().message, "corrupt producer page: head 7 is not within one ring of tail 0");
  }
  // It is a std::system_error, so generic handlers see the code too.
  EXPECT_THROW((void)*fails(EINVAL, "x"), std::system_error);
  // And the rvalue overload throws as well (nothing was moved out).
  EXPECT_THROW((void)fails(ENODEV, "gone").value(), ExpectedAccessError);
}

TEST(Expected, ErrorOnAValueIsTheEmptyError) {
  const Expected<int> good = 42;
  ASSERT_TRUE(good.has_value());
  EXPECT_TRUE(static_cast<bool>(good));
  EXPECT_EQ(good.value(), 42);
  EXPECT_EQ(good.error().code, 0);
  EXPECT_TRUE(good.error().message.empty());
  EXPECT_FALSE(static_cast<bool>(good.error()));
  EXPECT_FALSE(good.error_code()) << "no error: an empty std::error_code";
}

TEST(Expected, ValueOrTakesTheFallbackOnlyOnError) {
  EXPECT_EQ(Expected<int>(5).value_or(-1), 5);
  EXPECT_EQ(fails(EIO, "io").value_or(-1), -1);
  const Expected<std::string> name = std::string("sring0");
  EXPECT_EQ(name.value_or("none"), "sring0");
  EXPECT_EQ(Expected<std::string>(Error{ENOENT, "no"}).value_or("none"), "none");
}

TEST(Expected, AndThenChainsAndShortCircuitsOnTheFirstError) {
  int calls = 0;
  auto half = [&calls](int v) -> Expected<int> {
    ++calls;
    if (v % 2 != 0) return Error{EINVAL, "odd: " + std::to_string(v)};
    return v / 2;
  };

  auto chained = Expected<int>(12).and_then(half).and_then(half);
  ASSERT_TRUE(chained.has_value()) << chained.error().message;
  EXPECT_EQ(*chained, 3);
  EXPECT_EQ(calls, 2);

  // 12 -> 6 -> 3 -> error "odd: 3"; the fourth step must not run.
  calls = 0;
  auto stopped = Expected<int>(12).and_then(half).and_then(half).and_then(half).and_then(half);
  ASSERT_FALSE(stopped.has_value());
  EXPECT_EQ(stopped.error().code, EINVAL);
  EXPECT_EQ(stopped.error().message, "odd: 3") << "the first error, untouched";
  EXPECT_EQ(calls, 3);

  // An error going in: f is never called, the error comes out as it was.
  calls = 0;
  auto passed = fails(ENODEV, "device gone").and_then(half);
  EXPECT_EQ(calls, 0);
  ASSERT_FALSE(passed.has_value());
  EXPECT_EQ(passed.error().code, ENODEV);
  EXPECT_EQ(passed.error().message, "device gone");

  // The lvalue overload does the same.
  const auto input = fails(EBUSY, "busy");
  auto from_lvalue = input.and_then(half);
  EXPECT_EQ(calls, 0);
  EXPECT_EQ(from_lvalue.error().code, EBUSY);
}

TEST(Expected, TransformMapsTheValueAndPassesAnError) {
  int calls = 0;
  auto describe = [&calls](int v) {
    ++calls;
    return "block " + std::to_string(v);
  };
  const Expected<int> seven = 7;
  const Expected<std::string> text = seven.transform(describe);
  ASSERT_TRUE(text.has_value());
  EXPECT_EQ(*text, "block 7");
  EXPECT_EQ(calls, 1);

  const auto bad = fails(EPROTO, "torn header");
  const Expected<std::string> none = bad.transform(describe);
  EXPECT_EQ(calls, 1) << "transform must not call f on an error";
  ASSERT_FALSE(none.has_value());
  EXPECT_EQ(none.error().code, EPROTO);
  EXPECT_EQ(none.error().message, "torn header");
}

TEST(Expected, OrElseRecoversOrReplacesTheError) {
  int calls = 0;
  auto recover = [&calls](const Error& error) -> Expected<int> {
    ++calls;
    if (error.code == EAGAIN) return 0;  // nothing yet: an empty result
    return Error{error.code, "while polling: " + error.message};
  };
  const auto again = fails(EAGAIN, "try again");
  const auto recovered = again.or_else(recover);
  ASSERT_TRUE(recovered.has_value());
  EXPECT_EQ(*recovered, 0);
  EXPECT_EQ(calls, 1);

  const auto io = fails(EIO, "read failed");
  const auto replaced = io.or_else(recover);
  ASSERT_FALSE(replaced.has_value());
  EXPECT_EQ(replaced.error().code, EIO);
  EXPECT_EQ(replaced.error().message, "while polling: read failed");
  EXPECT_EQ(calls, 2);

  const Expected<int> fine = 9;
  const auto kept = fine.or_else(recover);
  EXPECT_EQ(calls, 2) << "or_else must not call f on a value";
  ASSERT_TRUE(kept.has_value());
  EXPECT_EQ(*kept, 9);
}

TEST(Expected, ErrorCodeComparesWithStdErrc) {
  const auto bad = fails(EINVAL, "max_blocks is 0");
  EXPECT_EQ(bad.error_code(), std::errc::invalid_argument);
  EXPECT_NE(bad.error_code(), std::errc::no_such_device);
  EXPECT_EQ(bad.error_code().category(), std::generic_category());
  EXPECT_EQ(bad.error().error_code(), std::errc::invalid_argument);
  EXPECT_TRUE(static_cast<bool>(bad.error()));
}

TEST(Status, OkIsSuccessAndAnErrorIsNot) {
  const sring::Status good = sring::ok();
  EXPECT_TRUE(good.has_value());
  EXPECT_TRUE(static_cast<bool>(good));
  EXPECT_FALSE(good.error_code());
  EXPECT_NO_THROW((void)good.value());

  const sring::Status bad = Error{EBUSY, "device is running"};
  EXPECT_FALSE(bad.has_value());
  EXPECT_FALSE(static_cast<bool>(bad));
  EXPECT_EQ(bad.error_code(), std::errc::device_or_resource_busy);
  EXPECT_EQ(bad.error().message, "device is running");
  EXPECT_THROW((void)bad.value(), ExpectedAccessError);
}

}  // namespace
