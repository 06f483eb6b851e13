// SPDX-License-Identifier: GPL-2.0-or-later
// hanatctl: talks to hanatd over its status socket. See `hanatctl --help`.

#include <jansson.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "core/status/status_text.h"

namespace {

constexpr const char* kDefaultSocket = "/run/hanat/hanatd.sock";

void usage(std::FILE* out) {
  std::fprintf(out,
               "Usage: hanatctl [--socket PATH] status [--json]\n"
               "       hanatctl [--socket PATH] metrics\n"
               "       hanatctl [--socket PATH] drain | undrain\n"
               "       hanatctl [--socket PATH] prepare-restart [SECONDS]\n"
               "       hanatctl [--socket PATH] events [N]\n"
               "       hanatctl [--socket PATH] adopt rtb-...\n"
               "       hanatctl [--socket PATH] reload\n"
               "       hanatctl --version | --help\n"
               "\n"
               "  -s, --socket PATH  hanatd's status socket (default %s)\n"
               "  status             show the daemon's state; --json prints the raw reply\n"
               "  metrics            print counters and states in the Prometheus text format\n"
               "  drain              hand this host's routes to a healthy peer and keep none\n"
               "  undrain            take routes back per the allocation\n"
               "  events             the last N (default all kept, up to 256) decisions: peer\n"
               "                     changes, route writes, state changes, with reasons\n"
               "  prepare-restart    the next stop within SECONDS (default 60, 0 cancels) is\n"
               "                     a restart: hanatd exits keeping its routes, table and\n"
               "                     forwarding (the package runs it before an upgrade)\n"
               "  adopt rtb-...      manage a table's foreign routes again (hanat never writes a\n"
               "                     route that points outside the group unless told so)\n"
               "  reload             re-read the config file and wait for the outcome: exit 0\n"
               "                     when the new generation runs, 2 with the errors when the\n"
               "                     daemon kept the old one\n",
               kDefaultSocket);
}

// A decimal integer from lo to hi, the whole word (no sign games, no suffix); nullopt
// otherwise. Only such a number is ever spliced into a request.
std::optional<long> whole_number(const std::string& w, long lo, long hi) {
  if (w.empty() || w.find_first_not_of("0123456789") != std::string::npos) return std::nullopt;
  char* end = nullptr;
  errno = 0;
  long v = std::strtol(w.c_str(), &end, 10);
  if (*end != '\0' || errno != 0 || v < lo || v > hi) return std::nullopt;
  return v;
}

struct JsonRef {
  json_t* j = nullptr;
  ~JsonRef() { json_decref(j); }
};

// Sends one request line and reads one reply line. Blocking I/O is fine in a CLI; a
// receive timeout keeps a wedged daemon from hanging the caller forever.
int request(const std::string& path, const std::string& req, std::string& reply) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    std::fprintf(stderr, "hanatctl: socket: %s\n", std::strerror(errno));
    return 1;
  }
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof(addr.sun_path)) {
    std::fprintf(stderr, "hanatctl: socket path too long: %s\n", path.c_str());
    ::close(fd);
    return 1;
  }
  std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  // A unix connect waits while the listener's backlog is full, for as long as the send
  // timeout allows (unix_stream_connect), by default forever: bound it, since hanatd
  // lets its backlog fill on purpose when a client storms it (max_accepts_per_second).
  timeval tv{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    int err = errno;
    if (err == EAGAIN || err == EWOULDBLOCK) {
      std::fprintf(stderr,
                   "hanatctl: %s did not take the connection within 5 s: its backlog is full "
                   "(too many clients connecting?)\n",
                   path.c_str());
    } else {
      std::fprintf(stderr, "hanatctl: cannot connect to %s: %s (is hanatd running?)\n",
                   path.c_str(), std::strerror(err));
    }
    ::close(fd);
    return 1;
  }
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  std::string line = req + "\n";
  if (::send(fd, line.data(), line.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(line.size())) {
    std::fprintf(stderr, "hanatctl: cannot send to %s: %s\n", path.c_str(), std::strerror(errno));
    ::close(fd);
    return 1;
  }
  char buf[4096];
  for (;;) {
    ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      if (n < 0)
        std::fprintf(stderr, "hanatctl: no reply from %s: %s\n", path.c_str(),
                     std::strerror(errno));
      else
        std::fprintf(stderr, "hanatctl: %s closed the connection without a reply\n", path.c_str());
      ::close(fd);
      return 1;
    }
    reply.append(buf, static_cast<size_t>(n));
    size_t nl = reply.find('\n');
    if (nl != std::string::npos) {
      reply.resize(nl);
      break;
    }
  }
  ::close(fd);
  return 0;
}

std::string str(const json_t* o, const char* key) {
  const json_t* v = json_object_get(o, key);
  return json_is_string(v) ? json_string_value(v) : "";
}

}  // namespace

int main(int argc, char** argv) {
  std::string socket_path = kDefaultSocket;
  std::vector<std::string> words;
  bool json = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "-h" || a == "--help") {
      usage(stdout);
      return 0;
    }
    if (a == "-V" || a == "--version") {
      std::printf("hanatctl %s\n", HANAT_VERSION);
      return 0;
    }
    if (a == "-s" || a == "--socket") {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "hanatctl: %s needs a path\n", a.c_str());
        return 2;
      }
      socket_path = argv[++i];
    } else if (a.rfind("--socket=", 0) == 0) {
      socket_path = a.substr(9);
    } else if (a == "--json") {
      json = true;
    } else if (!a.empty() && a[0] == '-') {
      std::fprintf(stderr, "hanatctl: unknown option \"%s\"\n", a.c_str());
      usage(stderr);
      return 2;
    } else {
      words.push_back(a);
    }
  }
  if (words.empty()) words.emplace_back("status");
  const std::string& cmd = words[0];
  std::string req = "{\"cmd\":\"" + cmd + "\"}";
  if (cmd == "events" && words.size() <= 2) {
    if (words.size() == 2) {
      auto v = whole_number(words[1], 1, 100000);
      if (!v) {
        std::fprintf(stderr, "hanatctl: events: \"%s\" is not a positive count\n",
                     words[1].c_str());
        return 2;
      }
      req = "{\"cmd\":\"events\",\"limit\":" + std::to_string(*v) + "}";
    }
  } else if (cmd == "prepare-restart" && words.size() <= 2) {
    if (words.size() == 2) {
      auto v = whole_number(words[1], 0, 3600);
      if (!v) {
        std::fprintf(stderr,
                     "hanatctl: prepare-restart: \"%s\" is not a number of seconds "
                     "from 0 to 3600\n",
                     words[1].c_str());
        return 2;
      }
      req = "{\"cmd\":\"prepare-restart\",\"within_s\":" + std::to_string(*v) + "}";
    }
  } else if (cmd == "adopt") {
    // Route table ids are "rtb-" and hex digits: checked here, so that nothing but an id is
    // ever spliced into the request.
    bool ok = words.size() == 2 && words[1].rfind("rtb-", 0) == 0 && words[1].size() > 4 &&
              words[1].find_first_not_of("0123456789abcdef", 4) == std::string::npos;
    if (!ok) {
      std::fprintf(stderr, "hanatctl: adopt needs one route table id (rtb-...), got \"%s\"\n",
                   words.size() >= 2 ? words[1].c_str() : "");
      return 2;
    }
    req = "{\"cmd\":\"adopt\",\"table\":\"" + words[1] + "\"}";
  } else if (words.size() != 1 || (cmd != "status" && cmd != "metrics" && cmd != "drain" &&
                                   cmd != "undrain" && cmd != "reload")) {
    std::fprintf(stderr, "hanatctl: unknown command \"%s\"\n", words[0].c_str());
    usage(stderr);
    return 2;
  }

  std::string reply;
  if (int rc = request(socket_path, req, reply); rc != 0) return rc;
  JsonRef parsed;
  json_error_t err;
  parsed.j = json_loads(reply.c_str(), 0, &err);
  if (parsed.j == nullptr) {
    std::fprintf(stderr, "hanatctl: the daemon sent an unreadable reply: %s\n", err.text);
    return 1;
  }
  if (!json_is_true(json_object_get(parsed.j, "ok"))) {
    std::fprintf(stderr, "hanatctl: %s\n", str(parsed.j, "error").c_str());
    return 1;
  }
  if (json) {
    std::printf("%s\n", reply.c_str());
  } else if (cmd == "status") {
    std::fputs(hanat::status::format_status(parsed.j).c_str(), stdout);
  } else if (cmd == "events") {
    std::fputs(hanat::status::format_events(parsed.j).c_str(), stdout);
  } else if (cmd == "reload") {
    const json_int_t gen = json_integer_value(json_object_get(parsed.j, "generation"));
    if (!json_is_true(json_object_get(parsed.j, "applied"))) {
      std::fprintf(stderr, "hanatctl: reload refused, still running generation %lld:\n%s\n",
                   static_cast<long long>(gen), str(parsed.j, "error").c_str());
      return 2;
    }
    std::printf("reloaded, generation %lld\n", static_cast<long long>(gen));
  } else if (cmd == "metrics") {
    // Exposition text as the daemon formatted (and validated) it, ready for a scraper.
    std::fputs(str(parsed.j, "text").c_str(), stdout);
  } else {
    std::printf("%s\n", str(parsed.j, "result").c_str());
  }
  return 0;
}
