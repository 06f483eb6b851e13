// SPDX-License-Identifier: GPL-2.0-or-later
#pragma once
// HTTP on the libuv loop: curl multi driven by uv::Poll and uv::Timer (STYLE.md C3, the
// pattern of curl's docs/examples/multi-uv.c). curl reports which sockets to watch and when
// to time out; the loop does the waiting; completions run as ordinary loop callbacks.
//
// Keep-alive: the multi handle keeps curl's connection cache, so consecutive requests to one
// endpoint reuse a connection (EC2 keeps connections open; moto closes each one). A
// connection whose transfer failed, timed out or was cancelled is closed abortively: what
// it had not delivered never reaches the server later (http_client.cc, on_sockopt).
// TLS peer and host verification are always on for https URLs.

#include <curl/curl.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/base/result.h"
#include "core/uv/uv.h"

namespace hanat::ec2 {

struct HttpClientOptions {
  std::chrono::milliseconds connect_timeout{2000};
  std::chrono::milliseconds total_timeout{10000};  // default per request
  size_t max_body_bytes = 64u << 20;               // a larger reply is cut off as an error
  std::string ca_file;                             // empty: the system's CA bundle
  // Never use a proxy, whatever http_proxy/https_proxy/all_proxy say. IMDS sets this: a
  // proxy adds X-Forwarded-For, which IMDSv2 refuses by design (and an IMDSv1 read through a
  // proxy would return the proxy host's metadata). Otherwise curl honours the proxy
  // environment variables and no_proxy as the curl tool and the AWS SDKs do.
  bool no_proxy = false;
};

struct HttpRequestSpec {
  std::string method = "POST";  // GET, POST, PUT
  std::string url;
  std::vector<std::string> headers;  // "Name: value"
  std::string body;
  std::chrono::milliseconds timeout{0};  // 0: options' total_timeout
};

struct HttpResponse {
  CURLcode curl_code = CURLE_OK;
  std::string error;  // curl's message when curl_code != CURLE_OK
  long status = 0;    // HTTP status, 0 when none arrived
  std::string body;
  std::string date;  // the reply's Date header (RFC 7231 IMF-fixdate), "" when absent
  [[nodiscard]] bool transport_ok() const { return curl_code == CURLE_OK; }
};

class HttpClient {
 public:
  using RequestId = uint64_t;
  using Completion = std::function<void(HttpResponse)>;

  HttpClient(uv::Loop& loop, HttpClientOptions opts = {});
  // Drops every request in flight without calling its completion, then releases curl's
  // sockets (their polls are closed through uv_close) and the timer.
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // Starts a request. The completion runs later on the loop (never inside send()), exactly
  // once, unless the request is cancelled or the client destroyed first. Completions may
  // send() and cancel(), but must not destroy the client (use uv::DeferredDelete).
  [[nodiscard]] core::Result<RequestId, std::string> send(HttpRequestSpec spec, Completion done);
  // Aborts a request; its completion is not called. Unknown ids are ignored.
  void cancel(RequestId id);
  [[nodiscard]] size_t in_flight() const { return requests_.size(); }
  // Sockets curl currently asks us to watch (for tests of the close discipline).
  [[nodiscard]] size_t watched_sockets() const { return sockets_.size(); }

 private:
  struct Request;
  struct SocketWatch;
  static int on_socket(CURL* easy, curl_socket_t s, int what, void* userp, void* socketp);
  static int on_timer(CURLM* multi, long timeout_ms, void* userp);
  void socket_action(curl_socket_t s, int flags);
  void drain_done();

  uv::Loop& loop_;
  HttpClientOptions opts_;
  std::unique_ptr<CURLM, decltype(&curl_multi_cleanup)> multi_;
  uv::Timer timer_;
  std::unordered_map<curl_socket_t, std::unique_ptr<SocketWatch>> sockets_;
  std::map<RequestId, std::unique_ptr<Request>> requests_;
  RequestId next_id_ = 1;
};

}  // namespace hanat::ec2
