// SPDX-License-Identifier: GPL-2.0-or-later
#include "core/uv/uv.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <csignal>
#include <cstdlib>
#include <memory>
#include <string>

#include "tests/support/uv_test_util.h"

namespace hanat::uv {
namespace {

using hanat::testing::expect_clean_close;
using hanat::testing::run_until;
using std::chrono::milliseconds;

TEST(UvTimer, FiresOnceThenRepeats) {
  Loop loop;
  {
    Timer once(loop);
    Timer repeat(loop);
    int once_fired = 0, repeat_fired = 0;
    ASSERT_FALSE(once.start(milliseconds(1), milliseconds(0), [&] { ++once_fired; }));
    ASSERT_FALSE(repeat.start(milliseconds(1), milliseconds(2), [&] {
      if (++repeat_fired == 3) (void)repeat.stop();
    }));
    EXPECT_TRUE(run_until(loop, [&] { return repeat_fired == 3 && once_fired == 1; }));
    EXPECT_FALSE(repeat.active());
    EXPECT_EQ(once_fired, 1);
  }
  expect_clean_close(loop);
}

TEST(UvTimer, DestroyedInsideItsOwnCallbackDoesNotCallAgain) {
  Loop loop;
  {
    auto timer = std::make_unique<Timer>(loop);
    int fired = 0;
    ASSERT_FALSE(timer->start(milliseconds(1), milliseconds(1), [&] {
      ++fired;
      timer.reset();  // the running std::function must survive this
    }));
    Timer guard(loop);
    bool guard_done = false;
    ASSERT_FALSE(guard.start(milliseconds(20), milliseconds(0), [&] { guard_done = true; }));
    EXPECT_TRUE(run_until(loop, [&] { return guard_done; }));
    EXPECT_EQ(fired, 1);
  }
  expect_clean_close(loop);
}

TEST(UvTimer, RestartWithNewCallbackFromInsideCallback) {
  Loop loop;
  {
    Timer t(loop);
    int first = 0, second = 0;
    ASSERT_FALSE(t.start(milliseconds(1), milliseconds(0), [&] {
      ++first;
      (void)t.start(milliseconds(1), milliseconds(0), [&] { ++second; });
    }));
    EXPECT_TRUE(run_until(loop, [&] { return second == 1; }));
    EXPECT_EQ(first, 1);
  }
  expect_clean_close(loop);
}

TEST(UvLoop, CloseFailsWhileAWrapperIsAlive) {
  Loop loop;
  auto t = std::make_unique<Timer>(loop);
  EXPECT_EQ(loop.open_handles().size(), 1u);
  EXPECT_TRUE(loop.close());  // EBUSY: still owned
  t.reset();
  expect_clean_close(loop);
}

TEST(UvSignal, DeliversOnTheLoop) {
  Loop loop;
  {
    Signal sig(loop);
    int got = 0;
    ASSERT_FALSE(sig.start(SIGUSR1, [&](int s) { got = s; }));
    ASSERT_EQ(::raise(SIGUSR1), 0);
    EXPECT_TRUE(run_until(loop, [&] { return got != 0; }));
    EXPECT_EQ(got, SIGUSR1);
  }
  expect_clean_close(loop);
}

TEST(UvPoll, ReportsReadableSocket) {
  Loop loop;
  int fds[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
  {
    Poll p(loop, fds[0]);
    ASSERT_FALSE(p.init_error());
    int events_seen = 0;
    ASSERT_FALSE(p.start(UV_READABLE, [&](int status, int events) {
      EXPECT_EQ(status, 0);
      events_seen |= events;
      (void)p.stop();
    }));
    ASSERT_EQ(::write(fds[1], "x", 1), 1);
    EXPECT_TRUE(run_until(loop, [&] { return events_seen != 0; }));
    EXPECT_TRUE(events_seen & UV_READABLE);
  }
  ::close(fds[0]);
  ::close(fds[1]);
  expect_clean_close(loop);
}

TEST(UvTcp, EchoOverLoopbackOnPortZero) {
  Loop loop;
  {
    Tcp server(loop);
    sockaddr_in addr{};
    ASSERT_EQ(uv_ip4_addr("127.0.0.1", 0, &addr), 0);
    ASSERT_FALSE(server.bind(reinterpret_cast<const sockaddr*>(&addr)));
    std::unique_ptr<Tcp> conn;
    ASSERT_FALSE(server.listen(8, [&](std::error_code ec) {
      ASSERT_FALSE(ec);
      conn = std::make_unique<Tcp>(loop);
      ASSERT_FALSE(server.accept(*conn));
      ASSERT_FALSE(conn->read_start([&](std::error_code rec, std::string_view data) {
        if (rec) {
          conn.reset();  // EOF: drop the connection from inside its own callback
          return;
        }
        (void)conn->write(std::string(data));
      }));
    }));
    sockaddr_storage bound{};
    ASSERT_FALSE(server.sockname(bound));
    EXPECT_NE(reinterpret_cast<sockaddr_in*>(&bound)->sin_port, 0);

    Tcp client(loop);
    std::string echoed;
    bool connected = false, eof = false;
    ASSERT_FALSE(client.connect(reinterpret_cast<const sockaddr*>(&bound), [&](std::error_code ec) {
      ASSERT_FALSE(ec);
      connected = true;
      (void)client.write("hello");
      (void)client.read_start([&](std::error_code rec, std::string_view d) {
        if (rec) {
          eof = true;
          return;
        }
        echoed += d;
      });
    }));
    EXPECT_TRUE(run_until(loop, [&] { return echoed == "hello"; }));
    EXPECT_TRUE(connected);
  }
  expect_clean_close(loop);
}

TEST(UvTcp, ConnectRefusedIsReportedAsAnError) {
  Loop loop;
  {
    // Bind a port, then close it: connecting there gets RST -> ECONNREFUSED.
    int s = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
    socklen_t len = sizeof(a);
    ASSERT_EQ(::getsockname(s, reinterpret_cast<sockaddr*>(&a), &len), 0);
    ::close(s);

    Tcp client(loop);
    std::error_code result;
    bool done = false;
    ASSERT_FALSE(client.connect(reinterpret_cast<const sockaddr*>(&a), [&](std::error_code ec) {
      result = ec;
      done = true;
    }));
    EXPECT_TRUE(run_until(loop, [&] { return done; }));
    EXPECT_EQ(result, std::errc::connection_refused);
  }
  expect_clean_close(loop);
}

TEST(UvTcp, PendingConnectCallbackNotCalledAfterDestroy) {
  Loop loop;
  bool called = false;
  {
    sockaddr_in a{};
    ASSERT_EQ(uv_ip4_addr("127.0.0.1", 9, &a), 0);
    auto client = std::make_unique<Tcp>(loop);
    ASSERT_FALSE(client->connect(reinterpret_cast<const sockaddr*>(&a),
                                 [&](std::error_code) { called = true; }));
    client.reset();
  }
  expect_clean_close(loop);
  EXPECT_FALSE(called);
}

TEST(UvPipe, ServerAndClientOverUnixSocket) {
  Loop loop;
  char dir_template[] = "/tmp/hanat-uv-XXXXXX";
  ASSERT_NE(::mkdtemp(dir_template), nullptr);
  std::string path = std::string(dir_template) + "/s.sock";
  {
    PipeServer server(loop);
    ASSERT_FALSE(server.bind(path));
    std::unique_ptr<Pipe> conn;
    ASSERT_FALSE(server.listen(8, [&](std::error_code) {
      conn = std::make_unique<Pipe>(loop);
      ASSERT_FALSE(server.accept(*conn));
      (void)conn->write("pong\n", [&](std::error_code) { conn.reset(); });
    }));
    Pipe client(loop);
    std::string got;
    bool eof = false;
    ASSERT_FALSE(client.connect(path, [&](std::error_code ec) {
      ASSERT_FALSE(ec);
      (void)client.read_start([&](std::error_code rec, std::string_view d) {
        if (rec) {
          eof = true;
          return;
        }
        got += d;
      });
    }));
    EXPECT_TRUE(run_until(loop, [&] { return eof; }));
    EXPECT_EQ(got, "pong\n");
  }
  expect_clean_close(loop);
  ::unlink(path.c_str());
  ::rmdir(dir_template);
}

TEST(UvDeferredDelete, DeletesOnNextIterationNotBefore) {
  Loop loop;
  struct Flag {
    bool* deleted;
    ~Flag() { *deleted = true; }
  };
  bool deleted = false;
  {
    DeferredDelete dd(loop);
    dd.add(std::unique_ptr<Flag>(new Flag{&deleted}));
    EXPECT_FALSE(deleted);
    EXPECT_EQ(dd.pending(), 1u);
    EXPECT_TRUE(run_until(loop, [&] { return deleted; }));
    EXPECT_EQ(dd.pending(), 0u);
  }
  expect_clean_close(loop);
}

TEST(UvError, CarriesLibuvMessageAndErrnoCondition) {
  std::error_code ec = make_error(UV_ECONNREFUSED);
  EXPECT_EQ(ec, std::errc::connection_refused);
  EXPECT_EQ(ec.message(), "connection refused");
  EXPECT_FALSE(make_error(0));
  EXPECT_EQ(make_error(UV_EOF).message(), "end of file");
}

}  // namespace
}  // namespace hanat::uv
