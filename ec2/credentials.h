// SPDX-License-Identifier: GPL-2.0-or-later
#pragma once
// Where the client's AWS credentials come from: static (config, tests), the standard
// environment variables, or the instance role through IMDS (see imds.h: RoleCredentials).

#include <chrono>
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

// AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, optional AWS_SESSION_TOKEN and
// AWS_CREDENTIAL_EXPIRATION (ISO 8601, the names every AWS SDK and the CLI read; the last is
// what credential_process helpers and `aws configure export-credentials --format env` set).
// nullopt when either of the first two is missing or empty, or the expiration is unreadable.
[[nodiscard]] std::optional<Credentials> credentials_from_env();

// The environment variables above, read again whenever the credentials held are within
// `refresh_before` of AWS_CREDENTIAL_EXPIRATION (or expired, or absent), so that session
// credentials the process environment is given anew (a reload that re-reads an environment
// file, an embedding program calling setenv) replace the old ones before these expire,
// instead of being read once at start and signing with dead keys from then on.
class EnvCredentials final : public CredentialSource {
 public:
  explicit EnvCredentials(std::chrono::seconds refresh_before = std::chrono::minutes(5));
  [[nodiscard]] std::optional<Credentials> current(WallTime now) const override;
  [[nodiscard]] std::string status() const override;
  [[nodiscard]] int reads() const { return reads_; }

 private:
  std::chrono::seconds refresh_before_;
  mutable std::optional<Credentials> held_;
  mutable int reads_ = 0;
};

}  // namespace hanat::ec2
