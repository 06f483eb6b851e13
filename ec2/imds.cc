// SPDX-License-Identifier: GPL-2.0-or-later
#include "ec2/imds.h"

#include <jansson.h>

#include <algorithm>
#include <ctime>

namespace hanat::ec2 {
namespace {

using Millis = std::chrono::milliseconds;

Ec2Error imds_error(const std::string& what, const HttpResponse& r) {
  Ec2Error e;
  if (!r.transport_ok()) {
    e.kind = r.curl_code == CURLE_OPERATION_TIMEDOUT ? ErrorKind::Timeout : ErrorKind::Transport;
    e.code = e.kind == ErrorKind::Timeout ? "Timeout" : "Transport";
    e.message = what + ": " + r.error;
  } else {
    e.kind = ErrorKind::Http;
    e.code = "HTTP" + std::to_string(r.status);
    e.message = what + " failed";
  }
  e.http_status = r.status;
  return e;
}

// IMDS busy, throttling or restarting: worth another try after a pause.
bool busy(const HttpResponse& r) {
  return r.transport_ok() && (r.status >= 500 || r.status == 429);
}

// The token PUT refused in the ways the AWS SDKs read as "this IMDS has no IMDSv2" (botocore
// and the Java SDK fall back to v1 on 403, 404 and 405, never on a 5xx).
bool v2_unsupported(const HttpResponse& r) {
  return r.transport_ok() && (r.status == 403 || r.status == 404 || r.status == 405);
}

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  size_t i = 0;
  while (i < s.size() && (s[i] == ' ' || s[i] == '\n')) ++i;
  return s.substr(i);
}

}  // namespace

ImdsClient::ImdsClient(uv::Loop& loop, ImdsOptions opts)
    : loop_(loop),
      opts_(std::move(opts)),
      http_(loop, HttpClientOptions{opts_.timeout, opts_.timeout, 1u << 20, {}, true}) {
  while (!opts_.endpoint.empty() && opts_.endpoint.back() == '/') opts_.endpoint.pop_back();
}

ImdsClient::~ImdsClient() = default;

Millis ImdsClient::retry_delay(int retry) const {
  Millis d = opts_.retry_base;
  for (int i = 1; i < retry && d < opts_.retry_cap; ++i) d *= 2;
  return std::min(d, opts_.retry_cap);
}

void ImdsClient::later(Millis in, std::function<void()> f) {
  const uint64_t key = next_timer_++;
  auto t = std::make_unique<uv::Timer>(loop_);
  uv::Timer* raw = t.get();
  timers_.emplace(key, std::move(t));
  const std::error_code ec = raw->start(in, Millis{0}, [this, key, f = std::move(f)] {
    auto fn = f;  // the timer (and this lambda) is destroyed next
    timers_.erase(key);
    fn();
  });
  if (ec) {
    timers_.erase(key);
    f();
  }
}

void ImdsClient::get(std::string path, Done<std::string> done) {
  Pending p{std::move(path), std::move(done), false};
  if (v1_mode_ || (!token_.empty() && loop_.now() < token_refresh_at_)) {
    send(std::move(p));
    return;
  }
  waiting_.push_back(std::move(p));
  if (!token_in_flight_) fetch_token();
}

void ImdsClient::fetch_token() {
  token_in_flight_ = true;
  token_.clear();
  HttpRequestSpec spec;
  spec.method = "PUT";
  spec.url = opts_.endpoint + "/latest/api/token";
  spec.headers = {"X-aws-ec2-metadata-token-ttl-seconds: " +
                  std::to_string(opts_.token_ttl.count())};
  auto sent = http_.send(std::move(spec), [this](HttpResponse r) {
    if (busy(r) && token_retries_ < opts_.max_retries) {
      // Waiting requests stay queued; the token request stays "in flight" until retried.
      ++token_retries_;
      later(retry_delay(token_retries_), [this] { fetch_token(); });
      return;
    }
    token_in_flight_ = false;
    token_retries_ = 0;
    std::deque<Pending> waiting = std::move(waiting_);
    waiting_.clear();
    if (r.transport_ok() && r.status == 200 && !trim(r.body).empty()) {
      token_ = trim(r.body);
      // Refresh ahead of expiry: a minute early, or halfway for very short TTLs.
      const Millis ttl = std::chrono::duration_cast<Millis>(opts_.token_ttl);
      token_refresh_at_ = loop_.now() + ttl - std::min<Millis>(std::chrono::minutes(1), ttl / 2);
      for (auto& p : waiting) send(std::move(p));
      return;
    }
    if (opts_.allow_imdsv1 && v2_unsupported(r)) {
      // IMDS answered but has no IMDSv2 (an IMDSv1-only service): config allows v1.
      v1_mode_ = true;
      for (auto& p : waiting) send(std::move(p));
      return;
    }
    Ec2Error e = imds_error("IMDSv2 token request (PUT /latest/api/token)", r);
    if (!opts_.allow_imdsv1 && v2_unsupported(r)) e.message += "; IMDSv1 fallback is disabled";
    if (busy(r)) e.message += " (after " + std::to_string(opts_.max_retries) + " retries)";
    for (auto& p : waiting) p.done(core::Unexpected(e));
  });
  if (!sent) {
    token_in_flight_ = false;
    Ec2Error e;
    e.kind = ErrorKind::Transport;
    e.code = "HttpSetup";
    e.message = sent.error();
    std::deque<Pending> waiting = std::move(waiting_);
    waiting_.clear();
    for (auto& p : waiting) p.done(core::Unexpected(e));
  }
}

void ImdsClient::send(Pending p) {
  HttpRequestSpec spec;
  spec.method = "GET";
  spec.url = opts_.endpoint + "/latest/" + p.path;
  if (!v1_mode_) spec.headers = {"X-aws-ec2-metadata-token: " + token_};
  auto shared = std::make_shared<Pending>(std::move(p));
  auto sent = http_.send(std::move(spec), [this, shared](HttpResponse r) {
    if (r.transport_ok() && r.status == 401 && !v1_mode_ && !shared->retried_401) {
      // Token expired or IMDS restarted: get a new one and try once more.
      shared->retried_401 = true;
      token_.clear();
      token_refresh_at_ = Millis{0};
      waiting_.push_back(std::move(*shared));
      if (!token_in_flight_) fetch_token();
      return;
    }
    if (r.transport_ok() && r.status == 200) {
      shared->done(std::move(r.body));
      return;
    }
    if (busy(r) && shared->retries < opts_.max_retries) {
      ++shared->retries;
      later(retry_delay(shared->retries), [this, shared] { send(std::move(*shared)); });
      return;
    }
    shared->done(core::Unexpected(imds_error("IMDS GET /latest/" + shared->path, r)));
  });
  if (!sent) {
    Ec2Error e;
    e.kind = ErrorKind::Transport;
    e.code = "HttpSetup";
    e.message = sent.error();
    shared->done(core::Unexpected(e));
  }
}

void ImdsClient::instance_id(Done<std::string> done) {
  get("meta-data/instance-id", [done = std::move(done)](core::Result<std::string, Ec2Error> r) {
    if (r) r.value() = trim(std::move(r).value());
    done(std::move(r));
  });
}

void ImdsClient::region(Done<std::string> done) {
  get("meta-data/placement/region",
      [done = std::move(done)](core::Result<std::string, Ec2Error> r) {
        if (r) r.value() = trim(std::move(r).value());
        done(std::move(r));
      });
}

void ImdsClient::availability_zone(Done<std::string> done) {
  get("meta-data/placement/availability-zone",
      [done = std::move(done)](core::Result<std::string, Ec2Error> r) {
        if (r) r.value() = trim(std::move(r).value());
        done(std::move(r));
      });
}

void ImdsClient::mac(Done<std::string> done) {
  get("meta-data/mac", [done = std::move(done)](core::Result<std::string, Ec2Error> r) {
    if (r) r.value() = trim(std::move(r).value());
    done(std::move(r));
  });
}

void ImdsClient::interface(std::string mac_addr, Done<ImdsInterface> done) {
  // Four reads, one after the other; the first failure ends the chain.
  struct State {
    ImdsInterface out;
    Done<ImdsInterface> done;
    std::string base;
  };
  auto st = std::make_shared<State>();
  st->out.mac = mac_addr;
  st->done = std::move(done);
  st->base = "meta-data/network/interfaces/macs/" + mac_addr + "/";
  auto step = [this, st](const char* leaf, std::function<void(std::string)> store,
                         std::function<void()> next) {
    get(st->base + leaf, [st, store = std::move(store),
                          next = std::move(next)](core::Result<std::string, Ec2Error> r) {
      if (!r) {
        st->done(core::Unexpected(std::move(r).error()));
        return;
      }
      store(trim(std::move(r).value()));
      next();
    });
  };
  step(
      "interface-id", [st](std::string v) { st->out.interface_id = std::move(v); },
      [this, st, step] {
        step(
            "subnet-id", [st](std::string v) { st->out.subnet_id = std::move(v); },
            [this, st, step] {
              step(
                  "vpc-id", [st](std::string v) { st->out.vpc_id = std::move(v); },
                  [this, st, step] {
                    (void)this;
                    step(
                        "local-ipv4s",
                        [st](std::string v) {
                          size_t pos = 0;
                          while (pos < v.size()) {
                            size_t nl = v.find('\n', pos);
                            if (nl == std::string::npos) nl = v.size();
                            std::string ip = trim(v.substr(pos, nl - pos));
                            if (!ip.empty()) st->out.private_ips.push_back(ip);
                            pos = nl + 1;
                          }
                        },
                        [st] { st->done(std::move(st->out)); });
                  });
            });
      });
}

void ImdsClient::optional_get(std::string path, Done<std::optional<std::string>> done) {
  get(std::move(path), [done = std::move(done)](core::Result<std::string, Ec2Error> r) {
    if (r) {
      done(std::optional<std::string>(trim(std::move(r).value())));
    } else if (r.error().kind == ErrorKind::Http && r.error().http_status == 404) {
      done(std::optional<std::string>());
    } else {
      done(core::Unexpected(std::move(r).error()));
    }
  });
}

void ImdsClient::spot_instance_action(Done<std::optional<SpotAction>> done) {
  optional_get("meta-data/spot/instance-action",
               [done = std::move(done)](core::Result<std::optional<std::string>, Ec2Error> r) {
                 if (!r) {
                   done(core::Unexpected(std::move(r).error()));
                   return;
                 }
                 if (!r.value()) {
                   done(std::optional<SpotAction>());
                   return;
                 }
                 json_error_t err;
                 json_t* j = json_loads(r.value()->c_str(), 0, &err);
                 const char* action = json_string_value(json_object_get(j, "action"));
                 const char* time = json_string_value(json_object_get(j, "time"));
                 if (j == nullptr || action == nullptr) {
                   if (j != nullptr) json_decref(j);
                   Ec2Error e;
                   e.kind = ErrorKind::BadReply;
                   e.code = "BadJson";
                   e.message = "IMDS spot/instance-action is not {\"action\":..}: " + *r.value();
                   done(core::Unexpected(e));
                   return;
                 }
                 SpotAction a{action, time != nullptr ? time : ""};
                 json_decref(j);
                 done(std::optional<SpotAction>(std::move(a)));
               });
}

void ImdsClient::target_lifecycle_state(Done<std::optional<std::string>> done) {
  optional_get("meta-data/autoscaling/target-lifecycle-state", std::move(done));
}

void ImdsClient::role_credentials(Done<Credentials> done) {
  const std::string base = "meta-data/iam/security-credentials/";
  get(base, [this, base, done = std::move(done)](core::Result<std::string, Ec2Error> r) mutable {
    if (!r) {
      done(core::Unexpected(std::move(r).error()));
      return;
    }
    std::string role = trim(r.value().substr(0, r.value().find('\n')));
    if (role.empty()) {
      Ec2Error e;
      e.kind = ErrorKind::Credentials;
      e.code = "NoInstanceRole";
      e.message = "IMDS lists no instance role (attach an instance profile)";
      done(core::Unexpected(e));
      return;
    }
    get(base + role, [role, done = std::move(done)](core::Result<std::string, Ec2Error> body) {
      if (!body) {
        done(core::Unexpected(std::move(body).error()));
        return;
      }
      auto c = parse_role_credentials(body.value());
      if (!c) {
        Ec2Error e;
        e.kind = ErrorKind::Credentials;
        e.code = "BadRoleCredentials";
        e.message = "role '" + role + "': " + c.error();
        done(core::Unexpected(e));
        return;
      }
      done(std::move(c).value());
    });
  });
}

std::optional<WallTime> parse_iso8601(std::string_view s) {
  std::tm tm{};
  const std::string str(s);
  const char* end = strptime(str.c_str(), "%Y-%m-%dT%H:%M:%S", &tm);
  if (end == nullptr) return std::nullopt;
  if (*end == '.') {  // fractional seconds
    ++end;
    while (*end >= '0' && *end <= '9') ++end;
  }
  // "Z", or the "+00:00" that `aws configure export-credentials` writes; other offsets are
  // not UTC and are refused rather than misread.
  const std::string_view rest(end);
  if (rest != "Z" && rest != "+00:00") return std::nullopt;
  // system_clock counts nanoseconds in a signed 64-bit integer (libstdc++), so it spans
  // 1677-09-21 to 2262-04-11: refuse a time outside that instead of overflowing (undefined
  // behaviour) in from_time_t. Found by tests/fuzz/fuzz_imds_json.
  constexpr auto kMax = std::chrono::duration_cast<std::chrono::seconds>(WallTime::duration::max());
  const std::time_t t = timegm(&tm);
  if (t >= kMax.count() || t <= -kMax.count()) return std::nullopt;
  return std::chrono::system_clock::from_time_t(t);
}

core::Result<Credentials, std::string> parse_role_credentials(std::string_view text) {
  json_error_t err;
  std::unique_ptr<json_t, decltype(&json_decref)> j(json_loadb(text.data(), text.size(), 0, &err),
                                                    &json_decref);
  if (!j) return core::Unexpected(std::string("invalid JSON: ") + err.text);
  auto str = [&](const char* k) -> std::string {
    const char* v = json_string_value(json_object_get(j.get(), k));
    return v != nullptr ? v : "";
  };
  if (const std::string code = str("Code"); !code.empty() && code != "Success") {
    return core::Unexpected("IMDS reports Code '" + code + "': " + str("Message"));
  }
  Credentials c;
  c.access_key_id = str("AccessKeyId");
  c.secret_access_key = str("SecretAccessKey");
  c.session_token = str("Token");
  if (c.access_key_id.empty() || c.secret_access_key.empty() || c.session_token.empty()) {
    return core::Unexpected(std::string("missing AccessKeyId, SecretAccessKey or Token"));
  }
  auto exp = parse_iso8601(str("Expiration"));
  if (!exp) return core::Unexpected("bad Expiration '" + str("Expiration") + "'");
  c.expiration = *exp;
  return c;
}

RoleCredentials::RoleCredentials(uv::Loop& loop, ImdsClient& imds, RoleCredentialsOptions opts)
    : imds_(imds), opts_(opts), timer_(loop), alive_(std::make_shared<bool>(true)) {}

void RoleCredentials::start(std::function<void(const Ec2Error*)> on_update) {
  on_update_ = std::move(on_update);
  refresh();
}

std::optional<Credentials> RoleCredentials::current(WallTime now) const {
  if (!creds_ || (creds_->expiration && *creds_->expiration <= now)) return std::nullopt;
  return creds_;
}

std::string RoleCredentials::status() const {
  if (!creds_) return last_error_;
  return "instance role credentials expired; last refresh: " + last_error_;
}

void RoleCredentials::schedule(std::chrono::milliseconds in) {
  (void)timer_.start(in, std::chrono::milliseconds(0), [this] { refresh(); });
}

void RoleCredentials::refresh() {
  std::weak_ptr<bool> alive = alive_;
  imds_.role_credentials([this, alive](core::Result<Credentials, Ec2Error> r) {
    if (alive.expired()) return;
    if (!r) {
      // Keep what we have; it stays valid until its Expiration.
      last_error_ = r.error().describe();
      schedule(opts_.retry_interval);
      if (on_update_) on_update_(&r.error());
      return;
    }
    creds_ = std::move(r).value();
    ++refreshes_;
    last_error_ = "ok";
    const auto now = std::chrono::system_clock::now();
    auto delay = std::chrono::duration_cast<std::chrono::milliseconds>(*creds_->expiration -
                                                                       opts_.refresh_before - now);
    if (delay.count() <= 0) delay = opts_.retry_interval;
    schedule(delay);
    if (on_update_) on_update_(nullptr);
  });
}

}  // namespace hanat::ec2
