// SPDX-License-Identifier: GPL-2.0-or-later
#include "ec2/client.h"

#include <algorithm>
#include <cmath>
#include <ctime>

namespace hanat::ec2 {

struct Client::Op {
  CallId id = 0;
  std::string action;
  Params params;
  Bucket bucket = Bucket::NonMutating;
  std::string write_key;
  Priority priority = Priority::Read;
  uint64_t seq = 0;
  Millis deadline_at{0};
  Millis not_before{0};
  int attempts = 0;
  int pages = 0;
  Millis page_deadline{0};
  bool superseded = false;
  bool prepaid = false;
  bool resigned = false;  // the one re-signed retry after a clock-skew error was made
  bool queued = false;
  HttpClient::RequestId http_id = 0;              // non-zero while on the wire
  std::chrono::steady_clock::time_point sent_at;  // of the attempt on the wire
  std::optional<Ec2Error> last_error;
  std::unique_ptr<Handler> handler;
};

namespace {

struct Endpoint {
  std::string url;
  std::string host;  // as curl sends it in Host: (default ports omitted)
  std::string path;
};

Endpoint parse_endpoint(const std::string& endpoint, const std::string& region,
                        const std::string& service) {
  Endpoint ep;
  ep.url = endpoint.empty() ? default_endpoint(region, service) : endpoint;
  const size_t scheme_end = ep.url.find("://");
  const std::string scheme =
      scheme_end == std::string::npos ? "https" : ep.url.substr(0, scheme_end);
  const size_t host_start = scheme_end == std::string::npos ? 0 : scheme_end + 3;
  const size_t path_start = ep.url.find('/', host_start);
  ep.host = ep.url.substr(
      host_start, path_start == std::string::npos ? std::string::npos : path_start - host_start);
  ep.path = path_start == std::string::npos ? "/" : ep.url.substr(path_start);
  if (path_start == std::string::npos) ep.url += "/";
  // curl leaves the scheme's default port out of the Host header; the signature must match.
  const std::string default_port = scheme == "http" ? ":80" : ":443";
  if (ep.host.size() > default_port.size() && ep.host.ends_with(default_port) &&
      ep.host.find(']') == std::string::npos) {
    ep.host.resize(ep.host.size() - default_port.size());
  }
  return ep;
}

bool is_clock_skew_code(std::string_view code) {
  // RequestExpired: EC2's "the request reached the service more than 15 minutes after the
  // date stamp or more than 15 minutes before" (EC2 API Reference, common client errors);
  // RequestTimeTooSkewed / SignatureExpired / RequestInTheFuture: the same from other AWS
  // front ends, retried after a clock correction by botocore and the Java SDK.
  return code == "RequestExpired" || code == "RequestTimeTooSkewed" || code == "SignatureExpired" ||
         code == "RequestInTheFuture";
}

// The bucket the client spends: EC2's, less a tenth of its burst. Our requests reach EC2
// some milliseconds after we take their tokens, and not always in the same order or with
// the same delay, so a client that spent exactly EC2's bucket would see EC2's run dry a few
// milliseconds before its own now and then (and any other tool of the account spending one
// token would throttle us). The headroom absorbs that; the refill rate, which decides how
// long a large failover takes, is kept.
BucketSpec with_headroom(BucketSpec s) {
  s.burst = std::max(1.0, s.burst - std::floor(s.burst / 10));
  return s;
}

}  // namespace

std::string default_endpoint(std::string_view region, std::string_view service) {
  const std::string r(region);
  const std::string s = "https://" + std::string(service) + ".";
  if (r.starts_with("cn-")) return s + r + ".amazonaws.com.cn/";
  if (r.starts_with("us-isob-")) return s + r + ".sc2s.sgov.gov/";
  if (r.starts_with("us-iso-")) return s + r + ".c2s.ic.gov/";
  return s + r + ".amazonaws.com/";
}

std::optional<WallTime> parse_http_date(std::string_view s) {
  // IMF-fixdate only: AWS endpoints send nothing else (RFC 7231 7.1.1.1 obsoletes the other
  // two formats for senders).
  std::tm tm{};
  const std::string str(s);
  const char* end = strptime(str.c_str(), "%a, %d %b %Y %H:%M:%S GMT", &tm);
  if (end == nullptr || *end != '\0') return std::nullopt;
  const std::time_t t = timegm(&tm);
  if (t < 0 || t > 253402300799) return std::nullopt;  // 1970 .. 9999
  return std::chrono::system_clock::from_time_t(t);
}

std::optional<std::string> validate(const ClientOptions& o) {
  if (o.region.empty()) return "ec2 client: region is empty";
  for (char c : o.region) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) {
      return "ec2 client: region '" + o.region + "' has characters other than a-z, 0-9 and '-'";
    }
  }
  if (!o.endpoint.empty() && !o.endpoint.starts_with("http://") &&
      !o.endpoint.starts_with("https://")) {
    return "ec2 client: endpoint '" + o.endpoint + "' must start with http:// or https://";
  }
  if (o.connect_timeout.count() <= 0 || o.attempt_timeout.count() <= 0 ||
      o.default_deadline.count() <= 0) {
    return "ec2 client: connect_timeout, attempt_timeout and default_deadline must be positive";
  }
  if (o.backoff.max_attempts < 1) return "ec2 client: backoff.max_attempts must be at least 1";
  if (o.max_in_flight < 1) return "ec2 client: max_in_flight must be at least 1";
  for (Bucket b : {Bucket::Mutating, Bucket::NonMutating, Bucket::UnfilteredDescribe}) {
    if (o.buckets.of(b).burst < 1 || o.buckets.of(b).refill_per_s <= 0) {
      return "ec2 client: every token bucket needs burst >= 1 and refill > 0";
    }
  }
  for (const auto& [action, spec] : o.buckets.per_action) {
    if (spec.burst < 1 || spec.refill_per_s <= 0) {
      return "ec2 client: rate limit of " + action + " needs burst >= 1 and refill > 0";
    }
  }
  return std::nullopt;
}

Client::Client(uv::Loop& loop, ClientOptions opts, std::shared_ptr<const CredentialSource> creds)
    : loop_(loop),
      opts_(std::move(opts)),
      creds_(std::move(creds)),
      http_(loop, HttpClientOptions{opts_.connect_timeout, opts_.attempt_timeout, 64u << 20,
                                    opts_.ca_file}),
      wake_(loop),
      rng_(opts_.jitter_seed != 0 ? opts_.jitter_seed : std::random_device{}()) {
  Endpoint ep = parse_endpoint(opts_.endpoint, opts_.region, opts_.service);
  url_ = std::move(ep.url);
  host_ = std::move(ep.host);
  path_ = std::move(ep.path);
}

Client::~Client() = default;

TokenBucket& Client::bucket(std::string_view action, Bucket category) {
  std::string key(action);
  if (category == Bucket::UnfilteredDescribe) key += "/unfiltered";
  auto it = buckets_.find(key);
  if (it == buckets_.end()) {
    it = buckets_
             .emplace(key,
                      TokenBucket(with_headroom(opts_.buckets.of(action, category)), loop_.now()))
             .first;
  }
  return it->second;
}

Client::CallId Client::submit(std::string_view action, Params params, Bucket bucket,
                              std::string write_key, CallOptions co,
                              std::unique_ptr<Handler> handler) {
  auto op = std::make_unique<Op>();
  op->id = next_id_++;
  op->action = std::string(action);
  op->params = std::move(params);
  op->bucket = bucket;
  op->write_key = std::move(write_key);
  op->priority = co.priority;
  op->seq = seq_++;
  op->page_deadline = co.deadline.count() > 0 ? co.deadline : opts_.default_deadline;
  op->deadline_at = loop_.now() + op->page_deadline;
  op->prepaid = co.prepaid;
  op->handler = std::move(handler);

  // A newer write to the same resource supersedes older ones: those still waiting are
  // dropped now, one on the wire is not retried (see the class comment).
  std::vector<CallId> dropped;
  if (!op->write_key.empty()) {
    for (auto& [id, other] : ops_) {
      if (other->write_key != op->write_key) continue;
      other->superseded = true;
      if (other->http_id == 0) dropped.push_back(id);
    }
  }
  const CallId id = op->id;
  queue_.emplace(static_cast<int>(op->priority), op->seq, id);
  op->queued = true;
  ops_.emplace(id, std::move(op));
  for (CallId d : dropped) {
    Ec2Error e;
    e.kind = ErrorKind::Superseded;
    e.code = "Superseded";
    e.message = "a newer write to the same resource replaced this call before it was sent";
    // Completing from inside call() would re-enter the caller; defer through the loop.
    ops_[d]->last_error = std::move(e);
    ops_[d]->not_before = Millis{0};
  }
  arm_wake(loop_.now());
  return id;
}

void Client::cancel(CallId id) {
  auto it = ops_.find(id);
  if (it == ops_.end()) return;
  if (it->second->http_id != 0) http_.cancel(it->second->http_id);
  queue_.erase({static_cast<int>(it->second->priority), it->second->seq, id});
  ops_.erase(it);
  arm_wake(loop_.now());
}

void Client::cancel_all() {
  // Completions may queue new calls; those are cancelled too, in later rounds.
  for (int round = 0; round < 16 && !ops_.empty(); ++round) {
    std::vector<CallId> ids;
    for (const auto& [id, op] : ops_) ids.push_back(id);
    for (CallId id : ids) {
      auto it = ops_.find(id);
      if (it == ops_.end()) continue;
      if (it->second->http_id != 0) http_.cancel(it->second->http_id);
      Ec2Error e;
      e.kind = ErrorKind::Cancelled;
      e.code = "Cancelled";
      e.message = "the EC2 client is shutting down";
      finish(id, std::move(e));
    }
  }
  (void)wake_.stop();
}

bool Client::key_busy(const std::string& key, CallId except) const {
  if (key.empty()) return false;
  for (const auto& [id, op] : ops_) {
    if (id != except && op->write_key == key && op->http_id != 0) return true;
  }
  return false;
}

void Client::arm_wake(Millis at) {
  const Millis now = loop_.now();
  const Millis delay = at > now ? at - now : Millis{0};
  (void)wake_.start(delay, Millis{0}, [this] { pump(); });
}

void Client::pump() {
  if (pumping_) return;
  pumping_ = true;
  const Millis now = loop_.now();
  std::optional<Millis> next_wake;
  auto want_wake = [&](Millis at) {
    if (!next_wake || at < *next_wake) next_wake = at;
  };
  std::vector<std::pair<CallId, Ec2Error>> to_finish;
  std::vector<CallId> to_dispatch;
  size_t slots =
      opts_.max_in_flight > http_.in_flight() ? opts_.max_in_flight - http_.in_flight() : 0;
  std::set<std::string> keys_taken;
  for (const auto& [prio, seq, id] : queue_) {
    Op& op = *ops_.at(id);
    if (op.superseded && op.last_error && op.last_error->kind == ErrorKind::Superseded) {
      to_finish.emplace_back(id, *op.last_error);
      continue;
    }
    if (now >= op.deadline_at) {
      Ec2Error e = op.last_error.value_or(Ec2Error{});
      if (!op.last_error) {
        e.kind = ErrorKind::Timeout;
        e.code = "DeadlineExceeded";
        e.message = op.action + " was not sent before its deadline (client-side pacing)";
      } else {
        e.message += " (deadline reached, no more retries)";
      }
      to_finish.emplace_back(id, std::move(e));
      continue;
    }
    if (op.not_before > now) {
      want_wake(op.not_before);
      continue;
    }
    if (!op.write_key.empty() &&
        (keys_taken.count(op.write_key) != 0 || key_busy(op.write_key, id))) {
      continue;  // woken again when the write on the wire completes
    }
    if (slots == 0) break;
    if (opts_.pace && !(op.prepaid && op.attempts == 0 && op.pages == 0)) {
      TokenBucket& b = bucket(op.action, op.bucket);
      if (!b.try_take(now)) {
        want_wake(now + std::max(Millis{1}, b.wait_time(now)));
        continue;
      }
    }
    --slots;
    if (!op.write_key.empty()) keys_taken.insert(op.write_key);
    to_dispatch.push_back(id);
  }
  for (CallId id : to_dispatch) {
    Op& op = *ops_.at(id);
    queue_.erase({static_cast<int>(op.priority), op.seq, id});
    op.queued = false;
    dispatch(op);
  }
  pumping_ = false;
  for (auto& [id, err] : to_finish) finish(id, std::move(err));
  // Backoff ends and deadlines of queued calls wake the pump too.
  const Millis after = loop_.now();
  for (const auto& [prio, seq, id] : queue_) {
    auto it = ops_.find(id);
    if (it == ops_.end()) continue;
    want_wake(it->second->deadline_at);
    if (it->second->not_before > after) want_wake(it->second->not_before);
  }
  if (next_wake) {
    arm_wake(*next_wake);
  } else {
    (void)wake_.stop();
  }
}

void Client::dispatch(Op& op) {
  const CallId id = op.id;
  ++op.attempts;
  const Millis now = loop_.now();
  auto fail_later = [&](Ec2Error e) {
    // Treated like any failed attempt: retried with backoff until the deadline.
    op.last_error = std::move(e);
    op.not_before = now + backoff_delay(opts_.backoff, op.attempts, false, rng_());
    queue_.emplace(static_cast<int>(op.priority), op.seq, id);
    op.queued = true;
  };
  const std::optional<Credentials> creds =
      creds_ ? creds_->current(std::chrono::system_clock::now()) : std::nullopt;
  if (!creds) {
    Ec2Error e;
    e.kind = ErrorKind::Credentials;
    e.code = "NoCredentials";
    e.message = "no usable AWS credentials: " + (creds_ ? creds_->status() : "no source");
    fail_later(std::move(e));
    return;
  }
  HttpRequest hr;
  hr.method = "POST";
  hr.host = host_;
  hr.path = path_;
  hr.headers = {{"Content-Type", "application/x-www-form-urlencoded; charset=utf-8"}};
  hr.body = op.params.encode();
  SigningParams sp;
  sp.region = opts_.region;
  sp.service = opts_.service;
  HttpRequestSpec spec;
  spec.method = "POST";
  spec.url = url_;
  spec.headers.push_back("Content-Type: application/x-www-form-urlencoded; charset=utf-8");
  spec.headers.push_back("User-Agent: " + opts_.user_agent);
  const WallTime signing_time = std::chrono::system_clock::now() + clock_offset_;
  for (auto& [k, v] : sign(hr, *creds, sp, signing_time)) {
    spec.headers.push_back(k + ": " + v);
  }
  spec.body = std::move(hr.body);
  const Millis remaining = op.deadline_at - now;
  spec.timeout = std::max(Millis{1}, std::min(opts_.attempt_timeout, remaining));
  auto sent =
      http_.send(std::move(spec), [this, id](HttpResponse resp) { on_reply(id, std::move(resp)); });
  if (!sent) {
    Ec2Error e;
    e.kind = ErrorKind::Transport;
    e.code = "HttpSetup";
    e.message = sent.error();
    fail_later(std::move(e));
    return;
  }
  op.http_id = sent.value();
  op.sent_at = std::chrono::steady_clock::now();
}

void Client::on_reply(CallId id, HttpResponse resp) {
  auto it = ops_.find(id);
  if (it == ops_.end()) return;
  Op& op = *it->second;
  op.http_id = 0;
  if (on_attempt_) on_attempt_(op.action, std::chrono::steady_clock::now() - op.sent_at);
  if (!resp.date.empty()) {
    if (auto server = parse_http_date(resp.date)) {
      // Date has whole seconds: EC2's clock is somewhere in [date, date + 1 s), so take the
      // middle. An offset under 5 minutes would be accepted by EC2 anyway, but keeping the
      // signing time close to EC2's costs nothing and leaves the whole margin for drift.
      clock_offset_ = *server + std::chrono::milliseconds(500) - std::chrono::system_clock::now();
    }
  }
  std::optional<Ec2Error> err;
  if (!resp.transport_ok()) {
    Ec2Error e;
    e.kind = resp.curl_code == CURLE_OPERATION_TIMEDOUT ? ErrorKind::Timeout : ErrorKind::Transport;
    e.code = e.kind == ErrorKind::Timeout ? "Timeout" : "Transport";
    if (resp.curl_code == CURLE_PEER_FAILED_VERIFICATION ||
        resp.curl_code == CURLE_SSL_CACERT_BADFILE) {
      // A certificate that does not verify will not verify on the next attempt either.
      e.code = "TlsVerification";
    }
    e.message = op.action + ": " + resp.error;
    e.http_status = resp.status;
    err = std::move(e);
  } else if (resp.status >= 200 && resp.status < 300) {
    err = op.handler->on_body(resp.body);
    if (err) err->http_status = resp.status;
    if (!err) {
      std::string token = op.handler->next_token();
      if (!token.empty() && op.pages < 1000) {
        // Next page: a fresh request with its own attempts, same deadline.
        ++op.pages;
        op.deadline_at = loop_.now() + op.page_deadline;
        op.params.set("NextToken", std::move(token));
        op.attempts = 0;
        op.last_error.reset();
        op.not_before = Millis{0};
        queue_.emplace(static_cast<int>(op.priority), op.seq, id);
        op.queued = true;
        pump();
        return;
      }
    }
  } else {
    err = parse_error(resp.status, resp.body);
  }
  if (!err) {
    finish(id, std::nullopt);
    pump();
    return;
  }
  err->attempts = op.attempts;
  const Millis now = loop_.now();
  if (err->kind == ErrorKind::Api && is_clock_skew_code(err->code) && !op.resigned &&
      !op.superseded && now < op.deadline_at) {
    // The offset was just updated from this reply's Date header: sign again and resend at
    // once, once (the SDKs' clock-skew retry). A second refusal is final.
    op.resigned = true;
    op.last_error = std::move(err);
    op.not_before = Millis{0};
    queue_.emplace(static_cast<int>(op.priority), op.seq, id);
    op.queued = true;
    pump();
    return;
  }
  const bool throttled = err->kind == ErrorKind::Api && is_throttling_code(err->code);
  if (throttled && opts_.pace) {
    // EC2 says its bucket is empty: stop spending ours too, so queued calls wait for refill
    // instead of adding to the throttling.
    bucket(op.action, op.bucket).drain(now);
  }
  const Millis delay = backoff_delay(opts_.backoff, op.attempts, throttled, rng_());
  if (is_retryable(*err) && !op.superseded && op.attempts < opts_.backoff.max_attempts &&
      now + delay < op.deadline_at) {
    op.last_error = std::move(err);
    op.not_before = now + delay;
    queue_.emplace(static_cast<int>(op.priority), op.seq, id);
    op.queued = true;
    pump();
    return;
  }
  if (op.superseded && is_retryable(*err)) {
    err->message += " (not retried: a newer write to the same resource is queued)";
    err->kind = ErrorKind::Superseded;
  }
  finish(id, std::move(err));
  pump();
}

void Client::finish(CallId id, std::optional<Ec2Error> err) {
  auto it = ops_.find(id);
  if (it == ops_.end()) return;
  std::unique_ptr<Op> op = std::move(it->second);
  ops_.erase(it);
  queue_.erase({static_cast<int>(op->priority), op->seq, id});
  if (err && err->attempts == 0) err->attempts = op->attempts;
  op->handler->complete(std::move(err));
}

}  // namespace hanat::ec2
