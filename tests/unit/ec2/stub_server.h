// SPDX-License-Identifier: GPL-2.0-or-later
#pragma once
// An in-process HTTP/1.1 server on the test's libuv loop, 127.0.0.1 port 0. It answers each
// request through a handler that can also misbehave: stall, reset the connection, or send a
// truncated body. Used as the EC2 stub, the fault injector and the fake IMDS.

#include <netinet/in.h>
#include <sys/socket.h>

#include <cctype>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/uv/uv.h"

namespace hanat::ec2::testing {

struct StubRequest {
  std::string method;
  std::string target;                          // path and query
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
  [[nodiscard]] std::string header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? "" : it->second;
  }
};

struct StubReply {
  enum class Kind { Respond, Stall, Reset, Truncate };
  Kind kind = Kind::Respond;
  int status = 200;
  std::string body;
  std::vector<std::string> headers;  // extra "Name: value"
  bool close = false;                // Connection: close after this reply

  static StubReply ok(std::string body) { return {Kind::Respond, 200, std::move(body), {}, false}; }
  static StubReply status_body(int st, std::string body) {
    return {Kind::Respond, st, std::move(body), {}, false};
  }
  static StubReply stall() { return {Kind::Stall, 0, {}, {}, false}; }
  static StubReply reset() { return {Kind::Reset, 0, {}, {}, false}; }
  // Announces the full length, sends only the first half, then closes.
  static StubReply truncate(std::string body) {
    return {Kind::Truncate, 200, std::move(body), {}, false};
  }
};

class StubServer {
 public:
  using Handler = std::function<StubReply(const StubRequest&)>;

  StubServer(uv::Loop& loop, Handler h) : loop_(loop), handler_(std::move(h)), listener_(loop) {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    ok_ = !listener_.bind(reinterpret_cast<const sockaddr*>(&addr)) &&
          !listener_.listen(64, [this](std::error_code ec) { on_connection(ec); });
    sockaddr_storage ss{};
    if (ok_ && !listener_.sockname(ss)) {
      port_ = ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
    }
  }

  [[nodiscard]] bool ok() const { return ok_ && port_ != 0; }
  [[nodiscard]] int port() const { return port_; }
  [[nodiscard]] std::string url(const std::string& path = "/") const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }
  [[nodiscard]] int connections() const { return connections_; }
  [[nodiscard]] const std::vector<StubRequest>& requests() const { return requests_; }
  [[nodiscard]] size_t open_connections() const { return conns_.size(); }
  void set_handler(Handler h) { handler_ = std::move(h); }
  // Closes every connection (stalled ones included) and the listener.
  void close() {
    conns_.clear();
    listener_.reset();
  }

 private:
  struct Conn {
    explicit Conn(uv::Loop& l) : tcp(l) {}
    uv::Tcp tcp;
    std::string buf;
    bool stalled = false;
  };

  void on_connection(std::error_code ec) {
    if (ec) return;
    auto c = std::make_unique<Conn>(loop_);
    if (listener_.accept(c->tcp)) return;
    ++connections_;
    Conn* raw = c.get();
    conns_.emplace(raw, std::move(c));
    (void)raw->tcp.read_start([this, raw](std::error_code rec, std::string_view data) {
      if (rec) {
        conns_.erase(raw);
        return;
      }
      raw->buf.append(data);
      process(raw);
    });
  }

  void process(Conn* c) {
    while (!c->stalled) {
      const size_t end = c->buf.find("\r\n\r\n");
      if (end == std::string::npos) return;
      StubRequest req;
      size_t line_end = c->buf.find("\r\n");
      const std::string line = c->buf.substr(0, line_end);
      const size_t sp1 = line.find(' ');
      const size_t sp2 = line.rfind(' ');
      req.method = line.substr(0, sp1);
      req.target = line.substr(sp1 + 1, sp2 - sp1 - 1);
      size_t pos = line_end + 2;
      while (pos < end) {
        size_t e = c->buf.find("\r\n", pos);
        std::string h = c->buf.substr(pos, e - pos);
        size_t colon = h.find(':');
        if (colon != std::string::npos) {
          std::string name = h.substr(0, colon);
          for (auto& ch : name)
            ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
          size_t vs = h.find_first_not_of(' ', colon + 1);
          req.headers[name] = vs == std::string::npos ? "" : h.substr(vs);
        }
        pos = e + 2;
      }
      size_t len = 0;
      if (auto cl = req.header("content-length"); !cl.empty()) len = std::stoul(cl);
      if (c->buf.size() < end + 4 + len) return;
      req.body = c->buf.substr(end + 4, len);
      c->buf.erase(0, end + 4 + len);
      requests_.push_back(req);
      StubReply r = handler_(req);
      switch (r.kind) {
        case StubReply::Kind::Stall:
          c->stalled = true;
          return;
        case StubReply::Kind::Reset: {
          // SO_LINGER {1, 0}: close() sends RST instead of FIN.
          linger lg{1, 0};
          setsockopt(c->tcp.fd(), SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
          conns_.erase(c);
          return;
        }
        case StubReply::Kind::Truncate: {
          std::string out = head(r, r.body.size(), true) + r.body.substr(0, r.body.size() / 2);
          (void)c->tcp.write(std::move(out), [this, c](std::error_code) { conns_.erase(c); });
          c->stalled = true;
          return;
        }
        case StubReply::Kind::Respond: {
          std::string out = head(r, r.body.size(), r.close) + r.body;
          if (r.close) {
            (void)c->tcp.write(std::move(out), [this, c](std::error_code) { conns_.erase(c); });
            c->stalled = true;
            return;
          }
          (void)c->tcp.write(std::move(out));
          break;
        }
      }
    }
  }

  static std::string head(const StubReply& r, size_t len, bool close) {
    std::string s = "HTTP/1.1 " + std::to_string(r.status) + " X\r\n";
    s += "Content-Length: " + std::to_string(len) + "\r\n";
    s += "Content-Type: text/xml;charset=UTF-8\r\n";
    for (const auto& h : r.headers) s += h + "\r\n";
    if (close) s += "Connection: close\r\n";
    s += "\r\n";
    return s;
  }

  uv::Loop& loop_;
  Handler handler_;
  uv::Tcp listener_;
  bool ok_ = false;
  int port_ = 0;
  int connections_ = 0;
  std::vector<StubRequest> requests_;
  std::map<Conn*, std::unique_ptr<Conn>> conns_;
};

}  // namespace hanat::ec2::testing
