// SPDX-License-Identifier: GPL-2.0-or-later
#pragma once
// AWS Signature Version 4 (header signing), pure: no clock reads, no I/O.
//
// The canonical request follows the published SigV4 rules: method, canonical URI (each
// segment URI-encoded once, optional RFC 3986 dot-segment removal), canonical query (keys and
// values decoded then re-encoded, sorted by key then value), lower-cased header names with
// trimmed, space-collapsed values (duplicates joined with ','), the signed-header list and
// the hex SHA-256 of the body. Checked against AWS's own test suite (aws-c-auth
// aws-signing-test-suite/v4) in tests/unit/ec2/sigv4_test.cc.

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace hanat::ec2 {

using Headers = std::vector<std::pair<std::string, std::string>>;
using WallTime = std::chrono::system_clock::time_point;

struct Credentials {
  std::string access_key_id;
  std::string secret_access_key;
  std::string session_token;           // empty for long-term keys
  std::optional<WallTime> expiration;  // set for role (temporary) credentials
};

// One HTTP request as the signer sees it. `path` is the raw (unencoded) path, `query` the
// raw query string after '?', possibly percent-encoded.
struct HttpRequest {
  std::string method = "POST";
  std::string host;  // value of the Host header (host[:port])
  std::string path = "/";
  std::string query;
  Headers headers;  // extra headers to sign (Content-Type, ...); Host is added from `host`
  std::string body;
};

struct SigningParams {
  std::string region;
  std::string service = "ec2";
  bool sign_body = false;           // add x-amz-content-sha256 (S3 style); EC2 does not need it
  bool normalize_path = true;       // remove dot segments and duplicate slashes
  bool omit_session_token = false;  // add the token after signing (old STS style)
};

// Lower-case hex SHA-256 of `data`.
[[nodiscard]] std::string sha256_hex(std::string_view data);
// Raw HMAC-SHA256.
[[nodiscard]] std::string hmac_sha256(std::string_view key, std::string_view data);
// "20150830T123600Z" for the given time (UTC).
[[nodiscard]] std::string amz_date(WallTime t);

// URI-encode per SigV4: unreserved characters (A-Z a-z 0-9 - _ . ~) literal, every other byte
// %XX with upper-case hex; '/' kept when `keep_slash`.
[[nodiscard]] std::string uri_encode(std::string_view s, bool keep_slash = false);
// Decode %XX sequences (invalid ones are kept literally); '+' is kept as '+'.
[[nodiscard]] std::string uri_decode(std::string_view s);

// The intermediate products, exposed so tests can compare each step with the vectors.
struct SigningSteps {
  std::string canonical_request;
  std::string string_to_sign;
  std::string signature;
  Headers
      added_headers;  // X-Amz-Date, [X-Amz-Security-Token], [x-amz-content-sha256], Authorization
};

[[nodiscard]] SigningSteps sign_steps(const HttpRequest& req, const Credentials& creds,
                                      const SigningParams& params, WallTime now);

// The headers to add to `req` so that AWS accepts it: X-Amz-Date, X-Amz-Security-Token (role
// credentials), x-amz-content-sha256 (when params.sign_body) and Authorization.
[[nodiscard]] Headers sign(const HttpRequest& req, const Credentials& creds,
                           const SigningParams& params, WallTime now);

}  // namespace hanat::ec2
