// SPDX-License-Identifier: GPL-2.0-or-later
#include "core/uv/uv.h"

#include <array>

#include "core/base/check.h"

namespace hanat::uv {

namespace {

class UvCategory final : public std::error_category {
 public:
  const char* name() const noexcept override { return "libuv"; }
  std::string message(int v) const override { return uv_strerror(-v); }
  // libuv's codes are negated errno values except its own (UV_EOF and friends, below
  // -4000); the errno ones compare equal to std::errc conditions.
  std::error_condition default_error_condition(int v) const noexcept override {
    if (v > 0 && v < 4000) return {v, std::generic_category()};
    return {v, *this};
  }
};

template <class Node>
Node* node_of(void* data) {
  return static_cast<Node*>(data);
}

}  // namespace

const std::error_category& uv_category() {
  static const UvCategory cat;
  return cat;
}

std::error_code make_error(int uv_status) {
  if (uv_status >= 0) return {};
  return {-uv_status, uv_category()};
}

Loop::Loop() {
  HANAT_CHECK(uv_loop_init(&loop_) == 0, "uv_loop_init failed");
}

Loop::~Loop() {
  if (closed_) return;
  std::error_code ec = close();
  if (ec) {
    for (const std::string& h : open_handles()) {
      std::fprintf(stderr, "<2>hanat: libuv handle left open at shutdown: %s\n", h.c_str());
    }
    HANAT_CHECK(false, "uv::Loop destroyed while handles are open");
  }
}

std::vector<std::string> Loop::open_handles() {
  std::vector<std::string> out;
  uv_walk(
      &loop_,
      [](uv_handle_t* h, void* arg) {
        if (uv_is_closing(h) == 0) {
          static_cast<std::vector<std::string>*>(arg)->emplace_back(
              uv_handle_type_name(uv_handle_get_type(h)));
        }
      },
      &out);
  return out;
}

std::error_code Loop::close() {
  if (closed_) return {};
  // Close callbacks of handles whose wrappers were destroyed run in the next iteration.
  uv_run(&loop_, UV_RUN_NOWAIT);
  int rc = uv_loop_close(&loop_);
  if (rc == 0) closed_ = true;
  return make_error(rc);
}

// ---- Timer

std::error_code Process::spawn(Loop& loop, const std::vector<std::string>& argv,
                               const std::vector<std::string>& env,
                               std::function<void(std::int64_t, int)> on_exit) {
  if (node_ != nullptr || argv.empty()) return make_error(UV_EINVAL);
  std::vector<char*> args, envp;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  for (const auto& e : env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);
  uv_stdio_container_t stdio[3];
  stdio[0].flags = UV_IGNORE;  // /dev/null
  stdio[1].flags = UV_INHERIT_FD;
  stdio[1].data.fd = 1;
  stdio[2].flags = UV_INHERIT_FD;
  stdio[2].data.fd = 2;
  uv_process_options_t o{};
  o.file = args[0];
  o.args = args.data();
  o.env = envp.data();
  o.stdio_count = 3;
  o.stdio = stdio;
  o.exit_cb = [](uv_process_t* p, std::int64_t status, int sig) {
    auto* n = node_of<NodeT>(p->data);
    detail::invoke(n->on_exit, n->closing, status, sig);
  };
  node_ = new NodeT();
  node_->raw.data = node_;
  node_->on_exit = std::move(on_exit);
  const int rc = uv_spawn(loop.raw(), &node_->raw, &o);
  init_ = true;  // initialised even on failure: must be closed (libuv src/unix/process.c)
  init_error_ = make_error(rc);
  return init_error_;
}

std::error_code Process::kill(int signum) {
  // A failed spawn leaves pid 0, and kill(0, ...) would signal hanatd's own process group.
  if (!valid() || init_error_ || node_->raw.pid <= 0) return make_error(UV_EINVAL);
  return make_error(uv_process_kill(&node_->raw, signum));
}

Timer::Timer(Loop& loop) {
  create([&](uv_timer_t* t) { return uv_timer_init(loop.raw(), t); });
}

std::error_code Timer::start(std::chrono::milliseconds timeout, std::chrono::milliseconds repeat,
                             std::function<void()> cb) {
  if (!valid()) return make_error(UV_EINVAL);
  node_->on_fire = std::move(cb);
  auto to_ms = [](std::chrono::milliseconds d) {
    return static_cast<uint64_t>(d.count() < 0 ? 0 : d.count());
  };
  return make_error(uv_timer_start(
      &node_->raw,
      [](uv_timer_t* t) {
        auto* n = node_of<NodeT>(t->data);
        detail::invoke(n->on_fire, n->closing);
      },
      to_ms(timeout), to_ms(repeat)));
}

std::error_code Timer::stop() {
  if (!valid()) return make_error(UV_EINVAL);
  return make_error(uv_timer_stop(&node_->raw));
}

bool Timer::active() const {
  return valid() && uv_is_active(reinterpret_cast<const uv_handle_t*>(&node_->raw)) != 0;
}

// ---- Poll

Poll::Poll(Loop& loop, int fd) {
  create([&](uv_poll_t* p) { return uv_poll_init_socket(loop.raw(), p, fd); });
}

std::error_code Poll::start(int uv_poll_events, std::function<void(int, int)> cb) {
  if (!valid()) return init_error() ? init_error() : make_error(UV_EINVAL);
  node_->on_event = std::move(cb);
  return make_error(
      uv_poll_start(&node_->raw, uv_poll_events, [](uv_poll_t* p, int status, int events) {
        auto* n = node_of<NodeT>(p->data);
        detail::invoke(n->on_event, n->closing, status, events);
      }));
}

std::error_code Poll::stop() {
  if (!valid()) return make_error(UV_EINVAL);
  return make_error(uv_poll_stop(&node_->raw));
}

// ---- Signal

Signal::Signal(Loop& loop) {
  create([&](uv_signal_t* s) { return uv_signal_init(loop.raw(), s); });
}

std::error_code Signal::start(int signum, std::function<void(int)> cb) {
  if (!valid()) return make_error(UV_EINVAL);
  node_->on_signal = std::move(cb);
  return make_error(uv_signal_start(
      &node_->raw,
      [](uv_signal_t* s, int sig) {
        auto* n = node_of<NodeT>(s->data);
        detail::invoke(n->on_signal, n->closing, sig);
      },
      signum));
}

std::error_code Signal::stop() {
  if (!valid()) return make_error(UV_EINVAL);
  return make_error(uv_signal_stop(&node_->raw));
}

// ---- Idle

Idle::Idle(Loop& loop) {
  create([&](uv_idle_t* i) { return uv_idle_init(loop.raw(), i); });
}

std::error_code Idle::start(std::function<void()> cb) {
  if (!valid()) return make_error(UV_EINVAL);
  node_->on_idle = std::move(cb);
  return make_error(uv_idle_start(&node_->raw, [](uv_idle_t* i) {
    auto* n = node_of<NodeT>(i->data);
    detail::invoke(n->on_idle, n->closing);
  }));
}

std::error_code Idle::stop() {
  if (!valid()) return make_error(UV_EINVAL);
  return make_error(uv_idle_stop(&node_->raw));
}

// ---- Stream

namespace {

constexpr size_t kReadBufSize = 16 * 1024;

// One read buffer for every stream of the thread. libuv calls a stream's read_cb right
// after its alloc_cb, within the same uv__read(), and on_read gets a string_view that is
// valid only during the call, so no stream holds on to the buffer. A buffer per stream
// cost 16 KiB (zero-filled, so resident) per connection: 16 MiB with 1,000 status
// clients, and the time to fault it in while the probe timers waited (found by
// tests/e2e/abuse_e2e.py).
char* shared_read_buffer() {
  thread_local std::array<char, kReadBufSize> buf;
  return buf.data();
}

struct WriteReq {
  uv_write_t req{};
  std::string data;
  std::function<void(std::error_code)> cb;
  // The stream node's `closing` flag, read when the write completes: a write that
  // completes after its stream was destroyed (UV_ECANCELED) must not call back.
  const bool* closing = nullptr;
};

struct ConnectReq {
  uv_connect_t req{};
  std::function<void(std::error_code)> cb;
  const bool* closing = nullptr;
};

void connect_done(uv_connect_t* req, int status) noexcept {
  std::unique_ptr<ConnectReq> r(static_cast<ConnectReq*>(req->data));
  // The node outlives every request on it: uv_close cancels pending requests and runs
  // their callbacks before the close callback frees the node.
  detail::invoke(r->cb, *r->closing, make_error(status));
}

}  // namespace

template <class Raw>
std::error_code Stream<Raw>::listen(int backlog, std::function<void(std::error_code)> cb) {
  if (!this->valid()) return make_error(UV_EINVAL);
  this->node_->on_connection = std::move(cb);
  return make_error(uv_listen(stream(), backlog, [](uv_stream_t* s, int status) {
    auto* n = node_of<typename Stream<Raw>::NodeT>(s->data);
    detail::invoke(n->on_connection, n->closing, make_error(status));
  }));
}

template <class Raw>
std::error_code Stream<Raw>::accept(Stream& client) {
  if (!this->valid() || !client.valid()) return make_error(UV_EINVAL);
  return make_error(uv_accept(stream(), client.stream()));
}

template <class Raw>
std::error_code Stream<Raw>::read_start(std::function<void(std::error_code, std::string_view)> cb) {
  if (!this->valid()) return make_error(UV_EINVAL);
  auto* n = this->node_;
  n->on_read = std::move(cb);
  return make_error(uv_read_start(
      stream(),
      [](uv_handle_t*, size_t, uv_buf_t* buf) {
        buf->base = shared_read_buffer();
        buf->len = kReadBufSize;
      },
      [](uv_stream_t* s, ssize_t nread, const uv_buf_t* buf) {
        auto* node = node_of<typename Stream<Raw>::NodeT>(s->data);
        if (nread == 0) return;  // EAGAIN: nothing to report
        if (nread < 0) {
          detail::invoke(node->on_read, node->closing, make_error(static_cast<int>(nread)),
                         std::string_view{});
          return;
        }
        detail::invoke(node->on_read, node->closing, std::error_code{},
                       std::string_view(buf->base, static_cast<size_t>(nread)));
      }));
}

template <class Raw>
std::error_code Stream<Raw>::read_stop() {
  if (!this->valid()) return make_error(UV_EINVAL);
  return make_error(uv_read_stop(stream()));
}

template <class Raw>
std::error_code Stream<Raw>::write(std::string data, std::function<void(std::error_code)> cb) {
  if (!this->valid()) return make_error(UV_EINVAL);
  auto req = std::make_unique<WriteReq>();
  req->data = std::move(data);
  req->cb = std::move(cb);
  req->closing = &this->node_->closing;
  req->req.data = req.get();
  uv_buf_t buf = uv_buf_init(req->data.data(), static_cast<unsigned>(req->data.size()));
  int rc = uv_write(&req->req, stream(), &buf, 1, [](uv_write_t* w, int status) {
    std::unique_ptr<WriteReq> r(static_cast<WriteReq*>(w->data));
    detail::invoke(r->cb, *r->closing, make_error(status));
  });
  if (rc == 0) req.release();  // owned by libuv until the write callback
  return make_error(rc);
}

template <class Raw>
core::Result<size_t, std::error_code> Stream<Raw>::try_write(std::string_view data) {
  if (!this->valid()) return core::Unexpected(make_error(UV_EINVAL));
  // libuv only reads the buffer; uv_buf_t has no const variant.
  uv_buf_t buf = uv_buf_init(const_cast<char*>(data.data()), static_cast<unsigned>(data.size()));
  int rc = uv_try_write(stream(), &buf, 1);
  if (rc < 0) return core::Unexpected(make_error(rc));
  return static_cast<size_t>(rc);
}

template <class Raw>
size_t Stream<Raw>::write_queue_size() const {
  if (!this->valid()) return 0;
  return uv_stream_get_write_queue_size(reinterpret_cast<const uv_stream_t*>(&this->node_->raw));
}

template <class Raw>
int Stream<Raw>::fd() const {
  if (!this->valid()) return -1;
  uv_os_fd_t fd = -1;
  if (uv_fileno(reinterpret_cast<const uv_handle_t*>(&this->node_->raw), &fd) != 0) return -1;
  return fd;
}

template class Stream<uv_tcp_t>;
template class Stream<uv_pipe_t>;

// ---- Tcp

Tcp::Tcp(Loop& loop) {
  create([&](uv_tcp_t* t) { return uv_tcp_init(loop.raw(), t); });
}

std::error_code Tcp::open(int fd) {
  if (!valid()) return make_error(UV_EINVAL);
  return make_error(uv_tcp_open(&node_->raw, fd));
}

std::error_code Tcp::bind(const sockaddr* addr) {
  if (!valid()) return make_error(UV_EINVAL);
  return make_error(uv_tcp_bind(&node_->raw, addr, 0));
}

std::error_code Tcp::connect(const sockaddr* addr, std::function<void(std::error_code)> cb) {
  if (!valid()) return make_error(UV_EINVAL);
  auto req = std::make_unique<ConnectReq>();
  req->cb = std::move(cb);
  req->closing = &node_->closing;
  req->req.data = req.get();
  int rc = uv_tcp_connect(&req->req, &node_->raw, addr, connect_done);
  if (rc == 0) req.release();
  return make_error(rc);
}

std::error_code Tcp::sockname(sockaddr_storage& out) const {
  if (!valid()) return make_error(UV_EINVAL);
  int len = sizeof(out);
  return make_error(uv_tcp_getsockname(&node_->raw, reinterpret_cast<sockaddr*>(&out), &len));
}

std::error_code Tcp::nodelay(bool on) {
  if (!valid()) return make_error(UV_EINVAL);
  return make_error(uv_tcp_nodelay(&node_->raw, on ? 1 : 0));
}

// ---- Pipe

Pipe::Pipe(Loop& loop) {
  create([&](uv_pipe_t* p) { return uv_pipe_init(loop.raw(), p, 0); });
}

std::error_code Pipe::bind(const std::string& path) {
  if (!valid()) return make_error(UV_EINVAL);
  return make_error(uv_pipe_bind(&node_->raw, path.c_str()));
}

std::error_code Pipe::connect(const std::string& path, std::function<void(std::error_code)> cb) {
  if (!valid()) return make_error(UV_EINVAL);
  auto req = std::make_unique<ConnectReq>();
  req->cb = std::move(cb);
  req->closing = &node_->closing;
  req->req.data = req.get();
  uv_pipe_connect(&req->req, &node_->raw, path.c_str(), connect_done);
  req.release();  // uv_pipe_connect always reports through the callback
  return {};
}

// ---- DeferredDelete

void DeferredDelete::arm() {
  if (items_.empty()) return;
  // An idle handle makes the next loop iteration poll without blocking, so the
  // deletion happens promptly even when no other event is pending.
  std::error_code ec = idle_.start([this] { flush(); });
  HANAT_CHECK(!ec, "cannot start the deferred-delete idle handle");
}

void DeferredDelete::flush() {
  // Deleting may queue more items (a connection owning others): loop until empty.
  while (!items_.empty()) {
    auto batch = std::move(items_);
    items_.clear();
    batch.clear();
  }
  (void)idle_.stop();
}

}  // namespace hanat::uv
