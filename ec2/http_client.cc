// SPDX-License-Identifier: GPL-2.0-or-later
#include "ec2/http_client.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <algorithm>
#include <cctype>
#include <string_view>

namespace hanat::ec2 {

struct HttpClient::Request {
  RequestId id = 0;
  std::unique_ptr<CURL, decltype(&curl_easy_cleanup)> easy{nullptr, &curl_easy_cleanup};
  std::unique_ptr<curl_slist, decltype(&curl_slist_free_all)> headers{nullptr,
                                                                      &curl_slist_free_all};
  HttpRequestSpec spec;
  std::string body;
  std::string date;
  size_t max_body = 0;
  bool too_large = false;
  std::chrono::milliseconds timeout{0};     // the transfer's whole budget (CURLOPT_TIMEOUT_MS)
  curl_socket_t bounded = CURL_SOCKET_BAD;  // the socket given this timeout (on_socket)
  char errbuf[CURL_ERROR_SIZE] = {};
  Completion done;
};

struct HttpClient::SocketWatch {
  SocketWatch(uv::Loop& loop, curl_socket_t fd) : poll(loop, fd) {}
  uv::Poll poll;
};

namespace {

size_t on_write(char* data, size_t size, size_t n, void* userp) {
  auto* body = static_cast<std::string*>(userp);
  body->append(data, size * n);
  return size * n;
}

// Keeps the Date header of the final reply (curl passes every header line of every reply,
// interim 1xx and redirects included; the last Date seen wins).
size_t on_header(char* data, size_t size, size_t n, void* userp) {
  const size_t len = size * n;
  std::string_view line(data, len);
  constexpr std::string_view kName = "date:";
  if (line.size() > kName.size()) {
    bool match = true;
    for (size_t i = 0; i < kName.size() && match; ++i) {
      match = std::tolower(static_cast<unsigned char>(line[i])) == kName[i];
    }
    if (match) {
      line.remove_prefix(kName.size());
      while (!line.empty() && (line.front() == ' ' || line.front() == '\t')) line.remove_prefix(1);
      while (!line.empty() && (line.back() == '\r' || line.back() == '\n' || line.back() == ' ')) {
        line.remove_suffix(1);
      }
      static_cast<std::string*>(userp)->assign(line);
    }
  }
  return len;
}

// Every socket curl opens (CURLOPT_SOCKOPTFUNCTION runs after socket(), before connect()).
//
// A request we gave up on must never reach the server later. EC2 applies whatever complete
// request it receives, whenever it receives it: a ReplaceRoute sent while our network stalls
// silently (frames dropped, carrier up) sits in the socket's send queue, and when curl times
// the transfer out and closes the socket, an ordinary close() keeps that queue: the kernel
// goes on retransmitting the orphaned data (tcp(7), tcp_orphan_retries) and, once the path
// returns, delivers a write the daemon has long since abandoned and decided against.
//  - SO_LINGER {on, 0}: close() is abortive: the unsent data is discarded and an RST is sent
//    instead of a FIN (socket(7) SO_LINGER; tcp(7)). curl never returns the connection of a
//    transfer that failed, timed out or was removed before its end (cancel()) to its cache:
//    it disconnects a connection ended prematurely (multi_done(), libcurl 7.88), so such a
//    close() happens at once (pinned by ec2_http_netns_test). A connection that completed
//    its reply goes back to the cache and is reused as before; an RST when it is finally
//    closed costs nothing, both sides having read everything.
//  - TCP_USER_TIMEOUT = the transfer's timeout: data left unacknowledged longer than that is
//    not retransmitted any more and the kernel fails the connection (ETIMEDOUT; tcp(7),
//    RFC 5482), whatever curl does with the socket meanwhile. It bounds SYN retransmissions
//    too, and takes the place of the keep-alive probe count on an idle cached connection, so
//    a connection whose path died is dropped, not reused for the next request. Set when
//    the socket is opened (its SYNs) and again for each request that uses it (on_socket):
//    the EC2 client gives each attempt what is left of the call's deadline, so requests on
//    one kept connection have different budgets.
bool set_user_timeout(curl_socket_t fd, std::chrono::milliseconds timeout) {
  const auto ms = static_cast<unsigned int>(std::max<std::chrono::milliseconds::rep>(
      1, std::min<std::chrono::milliseconds::rep>(timeout.count(), 0x7fffffff)));
  int domain = 0;
  socklen_t len = sizeof domain;
  // TCP only (a Unix socket has no retransmission); SO_DOMAIN is Linux's, as is the option.
  if (::getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) != 0 ||
      (domain != AF_INET && domain != AF_INET6)) {
    return true;
  }
  return ::setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &ms, sizeof ms) == 0;
}

int on_sockopt(void* clientp, curl_socket_t fd, curlsocktype purpose) {
  if (purpose != CURLSOCKTYPE_IPCXN) return CURL_SOCKOPT_OK;
  const linger abortive{1, 0};
  if (::setsockopt(fd, SOL_SOCKET, SO_LINGER, &abortive, sizeof abortive) != 0 ||
      !set_user_timeout(fd, *static_cast<const std::chrono::milliseconds*>(clientp))) {
    return CURL_SOCKOPT_ERROR;  // the transfer fails ("setsockopt callback returned error")
  }
  return CURL_SOCKOPT_OK;
}

// curl reports socket readiness in CURL_CSELECT_* terms.
int to_curl_flags(int status, int events) {
  if (status < 0) return CURL_CSELECT_ERR;  // pass poll errors on (CCF's lesson)
  int flags = 0;
  if ((events & UV_READABLE) != 0) flags |= CURL_CSELECT_IN;
  if ((events & UV_WRITABLE) != 0) flags |= CURL_CSELECT_OUT;
  return flags;
}

}  // namespace

HttpClient::HttpClient(uv::Loop& loop, HttpClientOptions opts)
    : loop_(loop),
      opts_(std::move(opts)),
      multi_(curl_multi_init(), &curl_multi_cleanup),
      timer_(loop) {
  curl_multi_setopt(multi_.get(), CURLMOPT_SOCKETFUNCTION, &HttpClient::on_socket);
  curl_multi_setopt(multi_.get(), CURLMOPT_SOCKETDATA, this);
  curl_multi_setopt(multi_.get(), CURLMOPT_TIMERFUNCTION, &HttpClient::on_timer);
  curl_multi_setopt(multi_.get(), CURLMOPT_TIMERDATA, this);
}

HttpClient::~HttpClient() {
  for (auto& [id, req] : requests_) curl_multi_remove_handle(multi_.get(), req->easy.get());
  requests_.clear();
  // curl_multi_cleanup closes cached connections; its CURL_POLL_REMOVE callbacks destroy
  // their watches. Whatever remains is closed by the map's destructor.
  multi_.reset();
  sockets_.clear();
}

core::Result<HttpClient::RequestId, std::string> HttpClient::send(HttpRequestSpec spec,
                                                                  Completion done) {
  auto req = std::make_unique<Request>();
  req->id = next_id_++;
  req->easy.reset(curl_easy_init());
  if (!req->easy) return core::Unexpected(std::string("curl_easy_init failed"));
  req->spec = std::move(spec);
  req->done = std::move(done);
  req->max_body = opts_.max_body_bytes;
  CURL* e = req->easy.get();
  const auto timeout = req->spec.timeout.count() > 0 ? req->spec.timeout : opts_.total_timeout;
  req->timeout = timeout;
  curl_easy_setopt(e, CURLOPT_URL, req->spec.url.c_str());
  curl_easy_setopt(e, CURLOPT_PRIVATE, req.get());
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout.count()));
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
                   static_cast<long>(std::min(opts_.connect_timeout, timeout).count()));
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
  curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
  if (!opts_.ca_file.empty()) curl_easy_setopt(e, CURLOPT_CAINFO, opts_.ca_file.c_str());
  curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(e, CURLOPT_SOCKOPTFUNCTION, &on_sockopt);
  curl_easy_setopt(e, CURLOPT_SOCKOPTDATA, &req->timeout);
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, req->errbuf);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, &on_write);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, &req->body);
  curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, &on_header);
  curl_easy_setopt(e, CURLOPT_HEADERDATA, &req->date);
  // "" disables every proxy for this transfer, environment variables included (curl's
  // CURLOPT_PROXY: "Setting the proxy string to "" explicitly disables the use of a proxy").
  if (opts_.no_proxy) curl_easy_setopt(e, CURLOPT_PROXY, "");
  curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, static_cast<curl_off_t>(opts_.max_body_bytes));
  if (req->spec.method == "POST" || req->spec.method == "PUT") {
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, req->spec.body.c_str());
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE,
                     static_cast<curl_off_t>(req->spec.body.size()));
    if (req->spec.method == "PUT") curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, "PUT");
  } else if (req->spec.method != "GET") {
    curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, req->spec.method.c_str());
  }
  curl_slist* list = nullptr;
  // curl sends "Expect: 100-continue" for larger POST bodies and waits up to a second for
  // the interim reply; AWS endpoints do not need it.
  for (const char* h : {"Expect:"}) list = curl_slist_append(list, h);
  for (const auto& h : req->spec.headers) list = curl_slist_append(list, h.c_str());
  req->headers.reset(list);
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, list);

  const CURLMcode rc = curl_multi_add_handle(multi_.get(), e);
  if (rc != CURLM_OK) return core::Unexpected(std::string(curl_multi_strerror(rc)));
  const RequestId id = req->id;
  requests_.emplace(id, std::move(req));
  return id;
}

void HttpClient::cancel(RequestId id) {
  auto it = requests_.find(id);
  if (it == requests_.end()) return;
  curl_multi_remove_handle(multi_.get(), it->second->easy.get());
  requests_.erase(it);
}

int HttpClient::on_socket(CURL* easy, curl_socket_t s, int what, void* userp, void* /*socketp*/) {
  auto* self = static_cast<HttpClient*>(userp);
  if (what == CURL_POLL_REMOVE) {
    // Destroy at once: curl may close the fd right after this and its number be reused.
    self->sockets_.erase(s);
    return 0;
  }
  // The transfer that uses this socket now, on a new or a kept connection, bounds its
  // retransmissions (on_sockopt).
  Request* req = nullptr;
  if (easy != nullptr && curl_easy_getinfo(easy, CURLINFO_PRIVATE, &req) == CURLE_OK &&
      req != nullptr && req->bounded != s) {
    req->bounded = s;
    if (!set_user_timeout(s, req->timeout)) return -1;  // curl fails that transfer
  }
  auto& watch = self->sockets_[s];
  if (!watch) {
    watch = std::make_unique<SocketWatch>(self->loop_, s);
    if (watch->poll.init_error()) {
      self->sockets_.erase(s);
      return -1;  // curl fails the transfer that owns the socket
    }
  }
  int events = 0;
  if (what == CURL_POLL_IN || what == CURL_POLL_INOUT) events |= UV_READABLE;
  if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT) events |= UV_WRITABLE;
  const std::error_code ec = watch->poll.start(
      events, [self, s](int status, int ev) { self->socket_action(s, to_curl_flags(status, ev)); });
  return ec ? -1 : 0;
}

int HttpClient::on_timer(CURLM* /*multi*/, long timeout_ms, void* userp) {
  auto* self = static_cast<HttpClient*>(userp);
  if (timeout_ms < 0) {
    (void)self->timer_.stop();
    return 0;
  }
  // 0 means "as soon as possible"; we never call curl from inside its own callback, so the
  // loop runs it after 1 ms instead (curl's multi-uv example does the same).
  const auto ms = std::chrono::milliseconds(std::max(1L, timeout_ms));
  const std::error_code ec = self->timer_.start(
      ms, std::chrono::milliseconds(0), [self] { self->socket_action(CURL_SOCKET_TIMEOUT, 0); });
  return ec ? -1 : 0;
}

void HttpClient::socket_action(curl_socket_t s, int flags) {
  int running = 0;
  curl_multi_socket_action(multi_.get(), s, flags, &running);
  drain_done();
}

void HttpClient::drain_done() {
  int left = 0;
  while (CURLMsg* msg = curl_multi_info_read(multi_.get(), &left)) {
    if (msg->msg != CURLMSG_DONE) continue;
    CURL* easy = msg->easy_handle;
    const CURLcode code = msg->data.result;
    Request* raw = nullptr;
    curl_easy_getinfo(easy, CURLINFO_PRIVATE, &raw);
    curl_multi_remove_handle(multi_.get(), easy);  // invalidates msg
    if (raw == nullptr) continue;
    auto it = requests_.find(raw->id);
    if (it == requests_.end()) continue;
    std::unique_ptr<Request> req = std::move(it->second);
    requests_.erase(it);
    HttpResponse resp;
    resp.curl_code = code;
    if (code != CURLE_OK) {
      resp.error = req->errbuf[0] != '\0' ? std::string(req->errbuf) : curl_easy_strerror(code);
    }
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &resp.status);
    resp.body = std::move(req->body);
    resp.date = std::move(req->date);
    Completion done = std::move(req->done);
    req.reset();  // the easy handle goes before the callback can start another request
    if (done) done(std::move(resp));
  }
}

}  // namespace hanat::ec2
