#include "ec2/credentials.h"

#include <cstdlib>

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
  return c;
}

}  // namespace hanat::ec2
