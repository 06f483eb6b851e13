// SPDX-License-Identifier: GPL-2.0-or-later
// status::parse_request: the pure request-line parser behind the status socket (also the
// target of tests/fuzz/fuzz_status_request.cc).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include "core/status/status_server.h"

namespace hanat::status {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

TEST(ParseRequest, ObjectWithStringCmdIsARequest) {
  auto r = parse_request(R"({"cmd":"status","verbose":true})");
  ASSERT_TRUE(r.has_value()) << r.error();
  ASSERT_TRUE(r->has_value());
  EXPECT_EQ((*r)->cmd, "status");
  EXPECT_TRUE(json_is_true(json_object_get((*r)->body.get(), "verbose")));
}

TEST(ParseRequest, TrailingCarriageReturnIsDropped) {
  auto r = parse_request("{\"cmd\":\"status\"}\r");
  ASSERT_TRUE(r.has_value()) << r.error();
  ASSERT_TRUE(r->has_value());
  EXPECT_EQ((*r)->cmd, "status");
}

TEST(ParseRequest, BlankLinesAreIgnored) {
  for (const char* line : {"", " ", "\t \t", "\r", "  \r"}) {
    auto r = parse_request(line);
    ASSERT_TRUE(r.has_value()) << "line '" << line << "': " << r.error();
    EXPECT_FALSE(r->has_value()) << "line '" << line << "'";
  }
}

TEST(ParseRequest, MalformedJsonNamesTheColumn) {
  auto r = parse_request(R"({"cmd":)");
  ASSERT_FALSE(r.has_value());
  EXPECT_THAT(r.error(), StartsWith("malformed JSON at column "));
  EXPECT_THAT(parse_request("garbage").error(), StartsWith("malformed JSON at column 7:"));
}

TEST(ParseRequest, DuplicateKeysAreRefused) {
  auto r = parse_request(R"({"cmd":"status","cmd":"handover"})");
  ASSERT_FALSE(r.has_value());
  EXPECT_THAT(r.error(), HasSubstr("duplicate"));
}

// jansson decodes only arrays and objects at top level (no JSON_DECODE_ANY): a bare scalar
// is malformed JSON, an array is well-formed but not a request.
TEST(ParseRequest, BareScalarsAreMalformed) {
  for (const char* line : {R"("status")", "42", "null"}) {
    auto r = parse_request(line);
    ASSERT_FALSE(r.has_value()) << line;
    EXPECT_THAT(r.error(), StartsWith("malformed JSON at column ")) << line;
  }
}

TEST(ParseRequest, NonObjectsAndMissingOrNonStringCmdAreRefused) {
  for (const char* line : {R"(["cmd","status"])", R"({"command":"status"})", R"({"cmd":1})",
                           R"({"cmd":null})", R"({"cmd":["status"]})"}) {
    auto r = parse_request(line);
    ASSERT_FALSE(r.has_value()) << line;
    EXPECT_EQ(r.error(), "request must be a JSON object with a string \"cmd\"") << line;
  }
}

TEST(ParseRequest, TwoObjectsOnOneLineAreMalformed) {
  auto r = parse_request(R"({"cmd":"status"}{"cmd":"status"})");
  ASSERT_FALSE(r.has_value());
  EXPECT_THAT(r.error(), StartsWith("malformed JSON"));
}

}  // namespace
}  // namespace hanat::status
