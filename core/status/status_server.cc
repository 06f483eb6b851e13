// SPDX-License-Identifier: GPL-2.0-or-later
#include "core/status/status_server.h"

#include <grp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "core/log/log.h"

namespace hanat::status {

struct StatusServer::Client {
  explicit Client(uv::Loop& loop) : pipe(loop), idle(loop) {}
  uv::Pipe pipe;
  uv::Timer idle;
  std::string buffer;
  bool closing = false;  // a final reply is on its way; ignore further input
  bool paused = false;   // reading stopped until the next loop turn (budget spent)
  // Requests answered since its buffer last ran out of complete lines. Kept across a pause
  // for the turn budget, so a burst is cut at max_requests_per_read however many turns
  // it took to answer.
  int pipelined = 0;
};

std::string dump(const json_t* j) {
  char* s = json_dumps(j, JSON_COMPACT | JSON_ENSURE_ASCII | JSON_PRESERVE_ORDER);
  if (s == nullptr) return "{\"ok\":false,\"error\":\"cannot serialise reply\"}";
  std::string out(s);
  free(s);
  return out;
}

namespace {

Json error_reply(const std::string& message) {
  return Json(json_pack("{s:b, s:s}", "ok", 0, "error", message.c_str()));
}

// The reply line a connection beyond max_clients gets before it is closed.
std::string refusal_line(int max_clients) {
  return dump(error_reply("too many clients (max_clients = " + std::to_string(max_clients) + ")")
                  .get()) +
         "\n";
}

// Checks what is at `path` before binding: nothing, a stale socket (removed), a live
// daemon (refused), or something that is not a socket (refused).
std::error_code prepare_path(const std::string& path, std::string* why) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return {};
    *why = "cannot stat " + log::quote(path) + ": " + std::strerror(errno);
    return {errno, std::generic_category()};
  }
  if (!S_ISSOCK(st.st_mode)) {
    *why = log::quote(path) + " exists and is not a socket";
    return std::make_error_code(std::errc::file_exists);
  }
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return {errno, std::generic_category()};
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  // A local unix connect completes or fails at once; it never blocks the loop.
  int rc = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  int err = errno;
  ::close(fd);
  if (rc == 0) {
    *why = "another process is serving " + log::quote(path) + " (is hanatd already running?)";
    return std::make_error_code(std::errc::address_in_use);
  }
  if (err == ECONNREFUSED) {
    ::unlink(path.c_str());  // left behind by a daemon that died
    return {};
  }
  *why = "cannot probe " + log::quote(path) + ": " + std::strerror(err);
  return {err, std::generic_category()};
}

}  // namespace

core::Result<std::optional<Request>, std::string> parse_request(std::string_view line) {
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  if (line.find_first_not_of(" \t") == std::string_view::npos) return std::optional<Request>{};
  json_error_t jerr;
  Json body(json_loadb(line.data(), line.size(), JSON_REJECT_DUPLICATES, &jerr));
  if (!body) {
    return core::Unexpected("malformed JSON at column " + std::to_string(jerr.column) + ": " +
                            jerr.text);
  }
  const json_t* cmd = json_object_get(body.get(), "cmd");
  if (!json_is_object(body.get()) || !json_is_string(cmd)) {
    return core::Unexpected(std::string("request must be a JSON object with a string \"cmd\""));
  }
  Request req;
  req.cmd = json_string_value(cmd);
  req.body = std::move(body);
  return std::optional<Request>(std::move(req));
}

StatusServer::StatusServer(uv::Loop& loop, ServerOptions options)
    : loop_(loop),
      opts_(std::move(options)),
      server_(loop),
      graveyard_(loop),
      turn_(loop),
      accepts_(loop, {opts_.max_accepts_per_turn, opts_.max_accepts_per_second},
               [this] { accept_one(); }),
      refusal_(refusal_line(opts_.max_clients)) {}

StatusServer::~StatusServer() {
  clients_.clear();
  closing_.clear();
  graveyard_.flush();
  if (bound_) ::unlink(opts_.path.c_str());
}

std::error_code StatusServer::start(std::string* why) {
  std::string ignored;
  if (why == nullptr) why = &ignored;
  if (std::error_code ec = prepare_path(opts_.path, why)) return ec;
  if (std::error_code ec = server_.bind(opts_.path)) {
    *why = "cannot bind " + log::quote(opts_.path) + ": " + ec.message();
    return ec;
  }
  bound_ = true;
  if (::chmod(opts_.path.c_str(), opts_.mode) != 0) {
    *why = "cannot chmod " + log::quote(opts_.path) + ": " + std::strerror(errno);
    return {errno, std::generic_category()};
  }
  if (!opts_.group.empty()) {
    // getgrnam reads the local group database (/etc/group); no network lookup on the
    // default NSS configuration of a NAT host.
    struct group* g = ::getgrnam(opts_.group.c_str());
    if (g == nullptr) {
      *why = "status group " + log::quote(opts_.group) + " does not exist";
      return std::make_error_code(std::errc::invalid_argument);
    }
    if (::chown(opts_.path.c_str(), static_cast<uid_t>(-1), g->gr_gid) != 0) {
      *why = "cannot give " + log::quote(opts_.path) + " to group " + log::quote(opts_.group) +
             ": " + std::strerror(errno);
      return {errno, std::generic_category()};
    }
  }
  if (std::error_code ec = server_.listen(128, [this](std::error_code e) {
        if (e) {
          log::warning("status socket: accept failed: " + e.message() + ", ignoring");
          return;
        }
        accepts_.offer();  // now, or held in the backlog until the budget allows
      })) {
    *why = "cannot listen on " + log::quote(opts_.path) + ": " + ec.message();
    return ec;
  }
  return {};
}

void StatusServer::on(const std::string& cmd, Handler handler) {
  handlers_[cmd] = std::move(handler);
}

void StatusServer::set_limits(int max_clients, std::size_t max_request_bytes,
                              std::chrono::milliseconds idle_timeout) {
  opts_.max_clients = max_clients;
  refusal_ = refusal_line(max_clients);
  opts_.max_request_bytes = max_request_bytes;
  opts_.idle_timeout = idle_timeout;
}

void StatusServer::start_turn() {
  if (turn_armed_) return;
  // The idle phase runs after the timers of each turn and before its I/O poll (whose
  // timeout it makes 0 while active), so the due probe timers run first every turn.
  turn_armed_ = !turn_.start([this] {
    bool used = served_this_turn_ > 0 || reads_this_turn_ > 0;
    resume_paused();
    if (!used && paused_.empty()) {
      (void)turn_.stop();
      turn_armed_ = false;
    }
  });
}

void StatusServer::accept_one() {
  start_turn();
  auto client = std::make_unique<Client>(loop_);
  if (server_.accept(client->pipe)) return;
  Client& c = *client;
  if (clients_.size() >= static_cast<std::size_t>(opts_.max_clients)) {
    // Accept and answer rather than leave the connection in the backlog, so the client
    // learns why; the connection is then closed and does not count. This is the path a
    // connection storm takes thousands of times a second (the abuse bench: ~4,000/s with
    // the default limit), so it is kept to accept, one write, close: the reply is built
    // once, written with a single non-queued write (a fresh connection's socket buffer
    // is empty, so it fits), and no idle timer or write request is involved.
    ++rejected_;
    (void)client->pipe.try_write(refusal_);
    client->closing = true;
    graveyard_.add(std::move(client));
    return;
  }
  clients_.emplace(&c, std::move(client));
  arm_idle(c);
  (void)c.pipe.read_start([this, &c](std::error_code ec, std::string_view data) {
    if (ec) {
      drop(c, nullptr);  // EOF or reset: the client went away
      return;
    }
    on_data(c, data);
  });
}

void StatusServer::arm_idle(Client& c) {
  (void)c.idle.start(opts_.idle_timeout, std::chrono::milliseconds(0), [this, &c] {
    log::debug("status", "client idle for " + config::format_duration(opts_.idle_timeout) +
                             ", disconnecting");
    drop(c, nullptr);
  });
}

void StatusServer::on_data(Client& c, std::string_view data) {
  if (c.closing) return;
  arm_idle(c);
  c.buffer.append(data);
  if (!data.empty()) {
    if (reads_this_turn_++ == 0) start_turn();
    if (reads_this_turn_ > opts_.max_reads_per_turn) {
      // Handled from its buffer on the next turn. Reading stops, so the buffer grows by
      // this one read at most; the length checks run then.
      pause(c);
      return;
    }
  }
  size_t start = 0;
  for (;;) {
    size_t nl = c.buffer.find('\n', start);
    if (nl == std::string::npos) {
      c.pipelined = 0;  // every request it sent is answered: it waits for us again
      break;
    }
    if (request_budget_spent()) {
      c.buffer.erase(0, start);
      pause(c);
      return;
    }
    std::string_view line(c.buffer.data() + start, nl - start);
    if (line.size() > opts_.max_request_bytes) {
      c.buffer.clear();
      drop(c, "request too large");
      return;
    }
    if (++c.pipelined > opts_.max_requests_per_read) {
      c.buffer.clear();
      drop(c, "too many requests at once (send one, read its reply)");
      return;
    }
    if (served_this_turn_++ == 0) start_turn();
    const auto began = std::chrono::steady_clock::now();
    handle_line(c, line);
    handler_time_this_turn_ += std::chrono::steady_clock::now() - began;
    if (c.closing) return;
    start = nl + 1;
  }
  c.buffer.erase(0, start);
  if (c.buffer.size() > opts_.max_request_bytes) {
    c.buffer.clear();
    drop(c, "request too large");
  }
}

void StatusServer::handle_line(Client& c, std::string_view line) {
  auto parsed = parse_request(line);
  if (!parsed) {
    reply(c, error_reply(parsed.error()).get());
    return;
  }
  if (!parsed->has_value()) return;  // blank line
  Request& req = **parsed;
  const std::string& name = req.cmd;
  auto it = handlers_.find(name);
  if (it == handlers_.end()) {
    std::string known;
    for (const auto& [k, v] : handlers_) known += (known.empty() ? "" : ", ") + k;
    reply(c, error_reply("unknown command " + log::quote(name) + " (known: " + known + ")").get());
    return;
  }
  Json answer = it->second(req.body.get());
  if (!answer) answer = error_reply("command " + log::quote(name) + " failed");
  if (json_object_get(answer.get(), "ok") == nullptr)
    json_object_set_new(answer.get(), "ok", json_true());
  reply(c, answer.get());
}

void StatusServer::reply(Client& c, const json_t* obj) {
  if (c.pipe.write_queue_size() > opts_.max_pending_reply_bytes) {
    // The client sends requests but does not read replies: cut it off before its queue
    // grows without bound.
    log::debug("status", "client does not read its replies, disconnecting");
    drop(c, nullptr);
    return;
  }
  if (c.pipe.write(dump(obj) + "\n")) drop(c, nullptr);
}

bool StatusServer::request_budget_spent() const {
  return served_this_turn_ >= opts_.max_requests_per_turn ||
         handler_time_this_turn_ >= opts_.max_handler_time_per_turn;
}

void StatusServer::pause(Client& c) {
  if (c.paused) return;
  c.paused = true;
  (void)c.pipe.read_stop();
  paused_.push_back(&c);
}

void StatusServer::resume_paused() {
  served_this_turn_ = 0;
  reads_this_turn_ = 0;
  handler_time_this_turn_ = std::chrono::nanoseconds(0);
  // The oldest waiters first, as many as one turn may read and only while the request
  // budget lasts; the others keep their place at the front. A client paused again goes to
  // the back, so clients are served in turn however many requests each has queued.
  int resumed = 0;
  while (!paused_.empty() && resumed < opts_.max_reads_per_turn && !request_budget_spent()) {
    Client* c = paused_.front();
    paused_.pop_front();
    if (clients_.find(c) == clients_.end() || !c->paused) continue;  // dropped meanwhile
    ++resumed;
    c->paused = false;
    on_data(*c, {});  // the buffered requests first; may pause it again
    if (c->paused || c->closing || clients_.find(c) == clients_.end()) continue;
    (void)c->pipe.read_start([this, c](std::error_code ec, std::string_view data) {
      if (ec) {
        drop(*c, nullptr);
        return;
      }
      on_data(*c, data);
    });
  }
}

void StatusServer::drop(Client& c, const char* why) {
  auto it = clients_.find(&c);
  if (it == clients_.end()) return;
  if (c.paused) std::erase(paused_, &c);
  std::unique_ptr<Client> owned = std::move(it->second);
  clients_.erase(it);
  owned->closing = true;
  (void)owned->idle.stop();
  (void)owned->pipe.read_stop();
  // A client whose replies are still queued is not reading: no farewell for it.
  if (why != nullptr && owned->pipe.write_queue_size() == 0) {
    farewell(std::move(owned), dump(error_reply(why).get()));
    return;
  }
  // We may be inside this client's own read callback: free it on the next iteration.
  graveyard_.add(std::move(owned));
}

void StatusServer::farewell(std::unique_ptr<Client> c, const std::string& message) {
  // Tell the client why, then close once the reply is written (or failed). Until then
  // the client lives in closing_, so shutdown can still close it.
  Client* raw = c.get();
  raw->closing = true;
  closing_.emplace(raw, std::move(c));
  auto bury = [this, raw] {
    auto it = closing_.find(raw);
    if (it == closing_.end()) return;
    graveyard_.add(std::move(it->second));
    closing_.erase(it);
  };
  // The reply can wait forever: a client that stopped reading may have filled the socket
  // buffer with earlier replies while the server's own queue was empty. The idle timeout
  // bounds how long such a connection (and its descriptor) is kept.
  (void)raw->idle.start(opts_.idle_timeout, std::chrono::milliseconds(0), [bury] {
    log::debug("status", "farewell not read within the idle timeout, closing");
    bury();
  });
  if (raw->pipe.write(message + "\n", [bury](std::error_code) { bury(); })) bury();
}

}  // namespace hanat::status
