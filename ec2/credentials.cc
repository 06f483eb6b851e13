// SPDX-License-Identifier: GPL-2.0-or-later
#include "ec2/credentials.h"

#include <cstdlib>

#include "ec2/imds.h"  // parse_iso8601

namespace hanat::ec2 {

std::optional<Credentials> StaticCredentials::current(WallTime now) const {
  if (creds_.access_key_id.empty() || creds_.secret_access_key.empty()) return std::nullopt;
  if (creds_.expiration && *creds_.expiration <= now) return std::nullopt;
  return creds_;
}

std::string StaticCredentials::status() const {
  if (creds_.access_key_id.empty() || creds_.secret_access_key.empty()) {
    return "static credentials lack an access key id or secret";
  }
  return "static credentials";
}

std::optional<Credentials> credentials_from_env() {
  const char* id = std::getenv("AWS_ACCESS_KEY_ID");
  const char* secret = std::getenv("AWS_SECRET_ACCESS_KEY");
  if (id == nullptr || secret == nullptr || *id == '\0' || *secret == '\0') return std::nullopt;
  Credentials c;
  c.access_key_id = id;
  c.secret_access_key = secret;
  if (const char* tok = std::getenv("AWS_SESSION_TOKEN")) c.session_token = tok;
  if (const char* exp = std::getenv("AWS_CREDENTIAL_EXPIRATION"); exp != nullptr && *exp != '\0') {
    auto t = parse_iso8601(exp);
    if (!t) return std::nullopt;
    c.expiration = *t;
  }
  return c;
}

EnvCredentials::EnvCredentials(std::chrono::seconds refresh_before)
    : refresh_before_(refresh_before) {}

std::optional<Credentials> EnvCredentials::current(WallTime now) const {
  const bool stale = !held_ || (held_->expiration && *held_->expiration - refresh_before_ <= now);
  if (stale) {
    ++reads_;
    if (auto fresh = credentials_from_env()) held_ = std::move(fresh);
  }
  if (!held_ || (held_->expiration && *held_->expiration <= now)) return std::nullopt;
  return held_;
}

std::string EnvCredentials::status() const {
  const char* exp = std::getenv("AWS_CREDENTIAL_EXPIRATION");
  if (exp != nullptr && *exp != '\0' && !parse_iso8601(exp)) {
    return std::string("AWS_CREDENTIAL_EXPIRATION '") + exp + "' is not an ISO 8601 UTC time";
  }
  if (!held_) return "AWS_ACCESS_KEY_ID or AWS_SECRET_ACCESS_KEY is not set";
  return "environment credentials expired (AWS_CREDENTIAL_EXPIRATION) and the environment "
         "holds no newer ones";
}

}  // namespace hanat::ec2
