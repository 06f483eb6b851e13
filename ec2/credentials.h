#pragma once
// Where the client's AWS credentials come from: static (config, tests), the standard
// environment variables, or the instance role through IMDS (see imds.h: RoleCredentials).

#include <optional>
#include <string>

#include "ec2/sigv4.h"

namespace hanat::ec2 {

class CredentialSource {
 public:
  virtual ~CredentialSource() = default;
  // The credentials to sign with now, or nullopt while none are usable (role credentials
  // not fetched yet, or expired and every refresh failed so far).
  [[nodiscard]] virtual std::optional<Credentials> current(WallTime now) const = 0;
  // Why current() is empty, for error messages.
  [[nodiscard]] virtual std::string status() const = 0;
};

class StaticCredentials final : public CredentialSource {
 public:
  explicit StaticCredentials(Credentials c) : creds_(std::move(c)) {}
  [[nodiscard]] std::optional<Credentials> current(WallTime now) const override;
  [[nodiscard]] std::string status() const override;

 private:
  Credentials creds_;
};

// AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and optional AWS_SESSION_TOKEN (the names every
// AWS SDK and the CLI read). nullopt when either of the first two is missing or empty.
[[nodiscard]] std::optional<Credentials> credentials_from_env();

}  // namespace hanat::ec2
