// SPDX-License-Identifier: GPL-2.0-or-later
#pragma once
// DOC: core/status serves the daemon's unix status socket: one JSON request per line in,
// one JSON reply per line out (jansson). It protects the loop from its clients: a line
// longer than max_request_bytes, a client idle for idle_timeout, a client that does not
// read its replies (write queue over a bound) and clients beyond max_clients are cut
// off, each with a JSON error where one can still be delivered, and none of it blocks
// the loop or delays other clients.

#include <jansson.h>

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "core/base/result.h"
#include "core/uv/accept_budget.h"
#include "core/uv/uv.h"

namespace hanat::status {

// Owning jansson reference.
struct JsonDeleter {
  void operator()(json_t* j) const { json_decref(j); }
};
using Json = std::unique_ptr<json_t, JsonDeleter>;

// One parsed request line: the request object and its "cmd" member.
struct Request {
  std::string cmd;
  Json body;  // a JSON object holding a string "cmd"
};

// Parses one request line (its "\n" already removed; a trailing "\r" is dropped). Pure: no
// I/O, no handler lookup. Returns nullopt for a blank line (spaces and tabs only), which the
// server ignores, the request for a JSON object with a string "cmd", and otherwise the
// message of the error reply the client gets ("malformed JSON at column N: ..." or "request
// must be a JSON object with a string \"cmd\""). The length limit is the caller's.
[[nodiscard]] core::Result<std::optional<Request>, std::string> parse_request(
    std::string_view line);

struct ServerOptions {
  std::string path;
  std::uint32_t mode = 0660;
  std::string group;  // empty: leave the socket's group alone
  int max_clients = 64;
  std::size_t max_request_bytes = 64 * 1024;
  std::chrono::milliseconds idle_timeout{10000};
  // Replies queued to a client that does not read; past this the client is dropped.
  std::size_t max_pending_reply_bytes = 1024 * 1024;
  // Requests answered from one read. A client that pipelines more is dropped: the whole
  // daemon runs on one loop, and one read of 64 KiB holds ~3,800 status requests, whose
  // replies would keep the probe timers waiting for a second or more.
  int max_requests_per_read = 16;
  // Requests answered per loop turn over all clients. Past it, clients with pending input
  // stop being read and resume on the next turn, after the timers that are due (probes)
  // have run: 1,000 clients each sending at once cannot hold the loop for long.
  int max_requests_per_turn = 64;
  // Connections accepted per loop turn. libuv accepts everything in the listen backlog in
  // one turn; under a connection storm (1,000 clients, or clients reconnecting as fast as
  // they are cut off) that turn took 100-235 ms of wall time with 100-220 accepts, and a
  // probe timer due meanwhile waited for it. Past the budget the rest stay in the kernel's
  // backlog and are accepted on the next turn, after the timers that are due.
  int max_accepts_per_turn = 16;
  // Reads handled per loop turn over all clients. One epoll wake-up can report all 1,000
  // clients readable (libuv then reads each, up to 32 times); past this budget a client's
  // data is kept in its buffer and its reading paused until the next turn.
  int max_reads_per_turn = 64;
  // Connections accepted per second, refused ones included. A client that reconnects as
  // fast as it is turned away (the abuse bench: ~4,000 connections a second with the
  // default max_clients) otherwise costs the loop an accept, a write and a close each
  // time, half a core on a 2-core machine; past the budget the listener rests for the
  // rest of the second and the kernel turns connections away when its backlog is full.
  // hanatctl and metrics scrapers make a few connections a second.
  int max_accepts_per_second = 200;
  // Time spent in request handlers per loop turn over all clients. Counting requests alone
  // trusts every handler to be cheap; a status reply of a large group takes tens of
  // microseconds, and 64 of them would hold a probe timer for milliseconds. Past the budget
  // clients wait for the next turn, as with max_requests_per_turn.
  std::chrono::microseconds max_handler_time_per_turn{1000};
};

class StatusServer {
 public:
  // A handler gets the parsed request object and returns the reply object; it must not
  // block. An "ok" member is added when the handler did not set one.
  using Handler = std::function<Json(const json_t* request)>;

  StatusServer(uv::Loop& loop, ServerOptions options);
  ~StatusServer();
  StatusServer(const StatusServer&) = delete;
  StatusServer& operator=(const StatusServer&) = delete;

  // Binds and listens. Refuses to take over a socket that a live process answers on;
  // removes a stale one. `why` gets a readable reason on failure.
  [[nodiscard]] std::error_code start(std::string* why);
  void on(const std::string& cmd, Handler handler);
  // Applies new limits (reload); the socket path, mode and group apply on restart only.
  void set_limits(int max_clients, std::size_t max_request_bytes,
                  std::chrono::milliseconds idle_timeout);

  [[nodiscard]] std::size_t clients() const { return clients_.size(); }
  [[nodiscard]] std::uint64_t rejected() const { return rejected_; }
  [[nodiscard]] const std::string& path() const { return opts_.path; }

 private:
  struct Client;
  void accept_one();
  void on_data(Client& c, std::string_view data);
  void handle_line(Client& c, std::string_view line);
  void reply(Client& c, const json_t* obj);
  void drop(Client& c, const char* why);
  void arm_idle(Client& c);
  void farewell(std::unique_ptr<Client> c, const std::string& message);
  void pause(Client& c);
  void resume_paused();
  void start_turn();
  [[nodiscard]] bool request_budget_spent() const;
  uv::Loop& loop_;
  ServerOptions opts_;
  uv::PipeServer server_;
  uv::DeferredDelete graveyard_;
  std::map<Client*, std::unique_ptr<Client>> clients_;
  std::map<Client*, std::unique_ptr<Client>> closing_;  // final reply in flight
  std::map<std::string, Handler> handlers_;
  // Runs once per loop turn while a budget is in use or clients wait: resets the budgets
  // and resumes the waiting clients. An idle handle, not a 0 ms timer: libuv 1.44 runs a
  // 0 ms timer started from a timer callback again in the same timer phase, so the resume
  // chained turn after turn inside one phase and the budget bounded nothing (a single
  // turn wrote 2,451 replies under the abuse bench).
  uv::Idle turn_;
  bool turn_armed_ = false;
  int served_this_turn_ = 0;
  int reads_this_turn_ = 0;
  std::chrono::nanoseconds handler_time_this_turn_{0};
  // Out of budget, input left in their buffer; resumed oldest first, at most
  // max_reads_per_turn per turn. Resuming all of them at once made each turn's work grow
  // with the number of clients (1,000 abusers: ~1,000 reads and epoll changes a turn).
  std::deque<Client*> paused_;
  // max_accepts_per_turn and max_accepts_per_second (shared with the agent port).
  uv::AcceptBudget accepts_;
  std::uint64_t rejected_ = 0;
  std::string refusal_;  // the "too many clients" reply line for the current max_clients
  bool bound_ = false;
};

// Serialises compactly, one line, no trailing newline.
std::string dump(const json_t* j);

}  // namespace hanat::status
