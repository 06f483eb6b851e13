// SPDX-License-Identifier: GPL-2.0-or-later
#pragma once
// DOC: core/uv holds thin RAII wrappers over libuv handles (STYLE.md C2). Each wrapper
// owns a heap node holding the raw handle and its callbacks; raw.data points at the node.
// Destroying a wrapper marks the node closing and calls uv_close(); libuv may still touch
// the handle until the close callback runs, so the node is freed only there (libuv's
// handle contract). A callback never runs into a dead owner (the trampoline checks
// `closing`), and an owner may destroy its wrapper from inside that wrapper's own
// callback. Trampolines are noexcept: an exception escaping into libuv is a bug and
// aborts. Everything runs on one loop thread; nothing here is thread-safe.

#include <uv.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "core/base/result.h"

namespace hanat::uv {

// libuv reports errors as negative errno values (plus a few of its own such as UV_EOF).
const std::error_category& uv_category();
// 0 -> success; a negative libuv status -> an error_code whose message is uv_strerror's.
std::error_code make_error(int uv_status);

class Loop {
 public:
  Loop();
  ~Loop();
  Loop(const Loop&) = delete;
  Loop& operator=(const Loop&) = delete;

  uv_loop_t* raw() { return &loop_; }
  int run(uv_run_mode mode = UV_RUN_DEFAULT) { return uv_run(&loop_, mode); }
  void stop() { uv_stop(&loop_); }
  [[nodiscard]] std::chrono::milliseconds now() const {
    return std::chrono::milliseconds(uv_now(&loop_));
  }
  // Refreshes the cached clock that now() and every timer start from. libuv reads the
  // clock once per loop iteration; a timer started late in a long callback (or before the
  // loop first runs) would otherwise count from that older instant and fire early.
  void update_time() { uv_update_time(&loop_); }
  // Handles not closing (still owned by a live wrapper), with their type names.
  [[nodiscard]] std::vector<std::string> open_handles();
  // Lets pending close callbacks run, then closes the loop. Fails with UV_EBUSY (and
  // leaves the loop usable) while some wrapper is still alive.
  [[nodiscard]] std::error_code close();

 private:
  uv_loop_t loop_{};
  bool closed_ = false;
};

namespace detail {

// Runs a user callback from a libuv trampoline. The callable is moved out of the node
// while it runs, so the callback may replace itself (restart a timer with a new
// callback) or destroy its owner without destroying the function that is executing.
template <class F, class... Args>
void invoke(F& slot, const bool& closing, Args&&... args) noexcept {
  if (closing || !slot) return;
  F running = std::move(slot);
  slot = nullptr;
  try {
    running(std::forward<Args>(args)...);
  } catch (...) {
    std::fputs("<2>hanat: exception escaped a libuv callback\n", stderr);
    std::abort();
  }
  if (!slot && !closing) slot = std::move(running);
}

template <class Raw, class Callbacks>
struct Node : Callbacks {
  Raw raw{};
  bool closing = false;
};

// Owner of one node. Movable, not copyable.
template <class Raw, class Callbacks>
class Owner {
 public:
  using NodeT = Node<Raw, Callbacks>;
  Owner() = default;
  Owner(const Owner&) = delete;
  Owner& operator=(const Owner&) = delete;
  Owner(Owner&& o) noexcept : node_(std::exchange(o.node_, nullptr)), init_(o.init_) {}
  Owner& operator=(Owner&& o) noexcept {
    if (this != &o) {
      reset();
      node_ = std::exchange(o.node_, nullptr);
      init_ = o.init_;
    }
    return *this;
  }
  ~Owner() { reset(); }

  // Closes the handle; safe to call twice and from inside its own callback.
  void reset() {
    if (node_ == nullptr) return;
    NodeT* n = std::exchange(node_, nullptr);
    n->closing = true;
    if (init_) {
      uv_close(reinterpret_cast<uv_handle_t*>(&n->raw),
               [](uv_handle_t* h) { delete static_cast<NodeT*>(h->data); });
    } else {
      delete n;  // uv_*_init failed: libuv never saw the handle
    }
  }
  [[nodiscard]] std::error_code init_error() const { return init_error_; }
  [[nodiscard]] bool valid() const { return node_ != nullptr && init_; }

 protected:
  // Allocates the node and runs `init(raw*)`, a uv_*_init call.
  template <class Init>
  void create(Init&& init) {
    node_ = new NodeT();
    node_->raw.data = node_;
    int rc = init(&node_->raw);
    init_ = rc == 0;
    init_error_ = make_error(rc);
  }
  NodeT* node_ = nullptr;
  bool init_ = false;
  std::error_code init_error_;
};

struct TimerCallbacks {
  std::function<void()> on_fire;
};
struct PollCallbacks {
  std::function<void(int, int)> on_event;
};
struct SignalCallbacks {
  std::function<void(int)> on_signal;
};
struct IdleCallbacks {
  std::function<void()> on_idle;
};
struct ProcessCallbacks {
  std::function<void(std::int64_t, int)> on_exit;
};
struct StreamCallbacks {
  std::function<void(std::error_code)> on_connection;
  std::function<void(std::error_code, std::string_view)> on_read;
};

}  // namespace detail

class Timer : public detail::Owner<uv_timer_t, detail::TimerCallbacks> {
 public:
  explicit Timer(Loop& loop);
  // Fires once after `timeout`, then every `repeat` if non-zero.
  [[nodiscard]] std::error_code start(std::chrono::milliseconds timeout,
                                      std::chrono::milliseconds repeat, std::function<void()> cb);
  [[nodiscard]] std::error_code stop();
  [[nodiscard]] bool active() const;
};

class Poll : public detail::Owner<uv_poll_t, detail::PollCallbacks> {
 public:
  // Watches a socket the caller owns (curl's, a probe socket). The caller must destroy
  // the Poll before closing the fd: a closed fd number can be reused at once.
  Poll(Loop& loop, int fd);
  [[nodiscard]] std::error_code start(int uv_poll_events, std::function<void(int, int)> cb);
  [[nodiscard]] std::error_code stop();
};

class Signal : public detail::Owner<uv_signal_t, detail::SignalCallbacks> {
 public:
  // Signals arrive as ordinary loop callbacks: nothing runs in async-signal context.
  explicit Signal(Loop& loop);
  [[nodiscard]] std::error_code start(int signum, std::function<void(int)> cb);
  [[nodiscard]] std::error_code stop();
};

class Idle : public detail::Owner<uv_idle_t, detail::IdleCallbacks> {
 public:
  explicit Idle(Loop& loop);
  [[nodiscard]] std::error_code start(std::function<void()> cb);
  [[nodiscard]] std::error_code stop();
};

// A child process. libuv reaps it (its SIGCHLD handler runs on the loop) and calls
// on_exit once with the exit status and the terminating signal (0 if none). The handle
// exists from spawn() on, even when spawn fails (uv_spawn initialises it before forking),
// so it is always closed by the destructor; destroying it does not kill the child.
class Process : public detail::Owner<uv_process_t, detail::ProcessCallbacks> {
 public:
  Process() = default;
  // argv[0] is executed as given (no PATH search); env replaces the environment; stdin is
  // /dev/null, stdout and stderr are hanatd's own. Call once.
  [[nodiscard]] std::error_code spawn(Loop& loop, const std::vector<std::string>& argv,
                                      const std::vector<std::string>& env,
                                      std::function<void(std::int64_t, int)> on_exit);
  [[nodiscard]] std::error_code kill(int signum);
  [[nodiscard]] int pid() const { return node_ ? node_->raw.pid : 0; }
};

// Shared stream behaviour of Tcp and Pipe: listen/accept, read, write.
template <class Raw>
class Stream : public detail::Owner<Raw, detail::StreamCallbacks> {
 public:
  [[nodiscard]] std::error_code listen(int backlog, std::function<void(std::error_code)> cb);
  // The accepted stream must be freshly constructed on the same loop.
  [[nodiscard]] std::error_code accept(Stream& client);
  // Data arrives in chunks; end of stream is reported as UV_EOF, after which the callback
  // is not called again.
  [[nodiscard]] std::error_code read_start(
      std::function<void(std::error_code, std::string_view)> cb);
  [[nodiscard]] std::error_code read_stop();
  // Queues `data`; `cb` (optional) runs when it is written or failed, never after the
  // stream was destroyed.
  [[nodiscard]] std::error_code write(std::string data,
                                      std::function<void(std::error_code)> cb = {});
  // Writes what the socket takes now, without queueing (uv_try_write): the byte count, or
  // an error (UV_EAGAIN when nothing could be written at once).
  [[nodiscard]] core::Result<size_t, std::error_code> try_write(std::string_view data);
  // Bytes queued but not yet written (for cutting off clients that never read).
  [[nodiscard]] size_t write_queue_size() const;
  [[nodiscard]] int fd() const;

 protected:
  uv_stream_t* stream() { return reinterpret_cast<uv_stream_t*>(&this->node_->raw); }
};

class Tcp : public Stream<uv_tcp_t> {
 public:
  explicit Tcp(Loop& loop);
  uv_tcp_t* raw() { return &node_->raw; }
  // Adopts an existing socket (for options such as SO_BINDTODEVICE set before connect).
  [[nodiscard]] std::error_code open(int fd);
  [[nodiscard]] std::error_code bind(const sockaddr* addr);
  [[nodiscard]] std::error_code connect(const sockaddr* addr,
                                        std::function<void(std::error_code)> cb);
  [[nodiscard]] std::error_code sockname(sockaddr_storage& out) const;
  [[nodiscard]] std::error_code nodelay(bool on);
};

class Pipe : public Stream<uv_pipe_t> {
 public:
  explicit Pipe(Loop& loop);
  uv_pipe_t* raw() { return &node_->raw; }
  [[nodiscard]] std::error_code bind(const std::string& path);
  [[nodiscard]] std::error_code connect(const std::string& path,
                                        std::function<void(std::error_code)> cb);
};
// A listening unix socket is a Pipe that was bound and listens.
using PipeServer = Pipe;

// Destroys objects on the next loop iteration (Envoy's deferredDelete): an owner can
// drop a connection from inside that connection's callback chain without freeing
// memory that the caller up the stack still uses.
class DeferredDelete {
 public:
  explicit DeferredDelete(Loop& loop) : idle_(loop) {}
  template <class T>
  void add(std::unique_ptr<T> p) {
    items_.emplace_back(p.release(), [](void* x) { delete static_cast<T*>(x); });
    arm();
  }
  [[nodiscard]] size_t pending() const { return items_.size(); }
  // Deletes everything now (shutdown).
  void flush();

 private:
  void arm();
  Idle idle_;
  std::vector<std::unique_ptr<void, void (*)(void*)>> items_;
};

}  // namespace hanat::uv
