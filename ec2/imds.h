// SPDX-License-Identifier: GPL-2.0-or-later
#pragma once
// DOC: IMDSv2 client and instance-role credentials, on the libuv loop.
//
// IMDSv2
// (https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/configuring-instance-metadata-service.html):
// a session token is fetched with `PUT /latest/api/token` and header
// `X-aws-ec2-metadata-token-ttl-seconds`, then sent as `X-aws-ec2-metadata-token` on every
// GET. We refresh it before it expires and fetch a new one when IMDS answers 401 (token
// expired or the service restarted). IMDSv1 (GETs without a token) is used only when the
// options allow it and the token PUT is refused as unsupported (403, 404 or 405, the replies
// the AWS SDKs take for "no IMDSv2") — many hardened instances disable v1. A 5xx or 429 is
// IMDS being busy or restarting, not a verdict on IMDSv2: it is retried with a bounded
// backoff and never switches to v1. IMDS requests never go through a proxy.

#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/base/result.h"
#include "core/uv/uv.h"
#include "ec2/credentials.h"
#include "ec2/error.h"
#include "ec2/http_client.h"

namespace hanat::ec2 {

struct ImdsOptions {
  std::string endpoint = "http://169.254.169.254";
  std::chrono::seconds token_ttl{21600};  // IMDS's maximum, 6 h
  std::chrono::milliseconds timeout{1000};
  bool allow_imdsv1 = false;
  // Retries of a 5xx or 429 reply (IMDS throttles per instance, EC2 User Guide "Query
  // throttling"): after retry_base, doubling, at most retry_cap apart.
  int max_retries = 3;
  std::chrono::milliseconds retry_base{100};
  std::chrono::milliseconds retry_cap{1000};
};

// What IMDS says about one network interface (network/interfaces/macs/<mac>/...).
struct ImdsInterface {
  std::string mac;
  std::string interface_id;
  std::string subnet_id;
  std::string vpc_id;
  std::vector<std::string> private_ips;  // local-ipv4s, primary first
};

// spot/instance-action: {"action": "terminate|stop|hibernate", "time": "2026-...Z"}.
struct SpotAction {
  std::string action;
  std::string time;
};

class ImdsClient {
 public:
  template <class T>
  using Done = std::function<void(core::Result<T, Ec2Error>)>;

  ImdsClient(uv::Loop& loop, ImdsOptions opts);
  ~ImdsClient();
  ImdsClient(const ImdsClient&) = delete;
  ImdsClient& operator=(const ImdsClient&) = delete;

  // GET /latest/<path>. 404 is an error with http_status 404 (see the optional helpers).
  void get(std::string path, Done<std::string> done);

  void instance_id(Done<std::string> done);
  void region(Done<std::string> done);
  void availability_zone(Done<std::string> done);
  void mac(Done<std::string> done);  // of the primary interface
  void interface(std::string mac, Done<ImdsInterface> done);
  // nullopt when there is no notice (IMDS answers 404 until one is issued).
  void spot_instance_action(Done<std::optional<SpotAction>> done);
  // "InService", "Terminated", ... ; nullopt when the instance is not in an Auto Scaling group.
  void target_lifecycle_state(Done<std::optional<std::string>> done);
  // The instance role's temporary credentials (iam/security-credentials/<role>).
  void role_credentials(Done<Credentials> done);

  [[nodiscard]] bool has_token() const { return !token_.empty(); }

 private:
  struct Pending {
    std::string path;
    Done<std::string> done;
    bool retried_401 = false;
    int retries = 0;
  };
  [[nodiscard]] std::chrono::milliseconds retry_delay(int retry) const;
  void later(std::chrono::milliseconds in, std::function<void()> f);
  void fetch_token();
  void send(Pending p);
  void optional_get(std::string path, Done<std::optional<std::string>> done);

  uv::Loop& loop_;
  ImdsOptions opts_;
  HttpClient http_;
  std::string token_;
  std::chrono::milliseconds token_refresh_at_{0};  // loop time
  bool token_in_flight_ = false;
  int token_retries_ = 0;
  std::map<uint64_t, std::unique_ptr<uv::Timer>> timers_;  // pending retries
  uint64_t next_timer_ = 1;
  bool v1_mode_ = false;
  std::deque<Pending> waiting_;
};

// Parses the JSON of iam/security-credentials/<role>.
[[nodiscard]] core::Result<Credentials, std::string> parse_role_credentials(std::string_view json);
// "2026-11-22T06:30:00Z" -> time point.
[[nodiscard]] std::optional<WallTime> parse_iso8601(std::string_view s);

struct RoleCredentialsOptions {
  // Refresh this long before Expiration (IMDS rotates role credentials at least 5 minutes
  // before they expire, and the AWS SDKs refresh in that window too).
  std::chrono::milliseconds refresh_before{std::chrono::minutes(5)};
  std::chrono::milliseconds retry_interval{std::chrono::seconds(10)};
};

// Instance-role credentials kept fresh from IMDS. A failed refresh is retried every
// retry_interval while the credentials already held stay in use until they expire.
class RoleCredentials final : public CredentialSource {
 public:
  RoleCredentials(uv::Loop& loop, ImdsClient& imds, RoleCredentialsOptions opts = {});
  // Fetches now and keeps refreshing. `on_update` (optional) runs after each attempt.
  void start(std::function<void(const Ec2Error*)> on_update = {});
  [[nodiscard]] std::optional<Credentials> current(WallTime now) const override;
  [[nodiscard]] std::string status() const override;
  [[nodiscard]] int refreshes() const { return refreshes_; }

 private:
  void refresh();
  void schedule(std::chrono::milliseconds in);

  ImdsClient& imds_;
  RoleCredentialsOptions opts_;
  uv::Timer timer_;
  std::optional<Credentials> creds_;
  std::string last_error_ = "role credentials not fetched yet";
  std::function<void(const Ec2Error*)> on_update_;
  int refreshes_ = 0;
  std::shared_ptr<bool> alive_;
};

}  // namespace hanat::ec2
