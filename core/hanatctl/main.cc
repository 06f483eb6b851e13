// SPDX-License-Identifier: GPL-2.0-or-later
// hanatctl: talks to hanatd over its status socket. See `hanatctl --help`.

#include <getopt.h>
#include <jansson.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "core/status/status_text.h"

namespace {

constexpr const char* kDefaultSocket = "/run/hanat/hanatd.sock";

constexpr long kDefaultWaitSeconds = 60;
// `drain --wait`: the routes still pointed at this host when the timeout ran out.
constexpr int kExitNotMoved = 3;

void usage(std::FILE* out) {
  std::fprintf(out,
               "Usage: hanatctl [--socket PATH] status [--json]\n"
               "       hanatctl [--socket PATH] peers [--json]\n"
               "       hanatctl [--socket PATH] routes [--json]\n"
               "       hanatctl [--socket PATH] metrics\n"
               "       hanatctl [--socket PATH] drain [--wait [--timeout SECONDS]]\n"
               "       hanatctl [--socket PATH] undrain\n"
               "       hanatctl [--socket PATH] prepare-restart [SECONDS]\n"
               "       hanatctl [--socket PATH] events [N]\n"
               "       hanatctl [--socket PATH] adopt rtb-...\n"
               "       hanatctl [--socket PATH] reload\n"
               "       hanatctl --version | --help\n"
               "\n"
               "Options:\n"
               "  -s, --socket PATH    hanatd's status socket (default %s)\n"
               "  -j, --json           print the daemon's JSON reply as it came\n"
               "  -w, --wait           drain: wait until no route points at this host\n"
               "  -t, --timeout SECONDS  drain --wait: give up after SECONDS (default %ld)\n"
               "  -V, --version        print the version and exit\n"
               "  -h, --help           print this help and exit\n"
               "\n"
               "Commands:\n"
               "  status             show the daemon's state (the default command)\n"
               "  peers              per peer: state and since when, why it is DOWN, and the\n"
               "                     last result of each probe kind with its age\n"
               "  routes             per route table: destination, current target, the\n"
               "                     allocated target and member, foreign routes, last write\n"
               "  metrics            print counters and states in the Prometheus text format\n"
               "  drain              hand this host's routes to a healthy peer and keep none;\n"
               "                     kept across restarts (a drain mark in the state\n"
               "                     directory) until undrain\n"
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
               "                     daemon kept the old one\n"
               "\n"
               "Options may come before or after the command.\n"
               "Exit status: 0 on success; 1 when the daemon cannot be reached or answers\n"
               "with an error; 2 for bad arguments (and a refused reload); 3 when drain\n"
               "--wait timed out with routes still on this host (the tables are named).\n",
               kDefaultSocket, kDefaultWaitSeconds);
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

// Parses the one reply line; prints the daemon's error and returns false when it is not ok.
bool parse_reply(const std::string& reply, JsonRef& parsed) {
  json_error_t err;
  parsed.j = json_loads(reply.c_str(), 0, &err);
  if (parsed.j == nullptr) {
    std::fprintf(stderr, "hanatctl: the daemon sent an unreadable reply: %s\n", err.text);
    return false;
  }
  if (!json_is_true(json_object_get(parsed.j, "ok"))) {
    std::fprintf(stderr, "hanatctl: %s\n", str(parsed.j, "error").c_str());
    return false;
  }
  return true;
}

// `drain --wait`: polls the status until the drain has finished (no route points here)
// or the deadline passes. A poll every 200 ms costs the daemon one status reply each.
int wait_drained(const std::string& socket_path, long timeout_s) {
  using Clock = std::chrono::steady_clock;
  const auto deadline = Clock::now() + std::chrono::seconds(timeout_s);
  std::vector<std::string> here;
  for (;;) {
    std::string reply;
    if (int rc = request(socket_path, "{\"cmd\":\"status\"}", reply); rc != 0) return rc;
    JsonRef st;
    if (!parse_reply(reply, st)) return 1;
    if (hanat::status::drain_finished(st.j)) {
      std::printf("drained: no route points at this host, no connection kept here\n");
      return 0;
    }
    here = hanat::status::tables_here(st.j);
    if (Clock::now() >= deadline) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  std::string names;
  for (const auto& t : here) names += (names.empty() ? "" : ", ") + t;
  if (names.empty()) {
    std::fprintf(stderr,
                 "hanatctl: drain --wait: not drained after %ld s (the daemon is still "
                 "starting or handing over, or connections kept through the handover have "
                 "not ended yet: see `hanatctl status`)\n",
                 timeout_s);
  } else {
    std::fprintf(stderr,
                 "hanatctl: drain --wait: after %ld s these route tables still point at this "
                 "host: %s (no healthy peer or fallback took them?)\n",
                 timeout_s, names.c_str());
  }
  return kExitNotMoved;
}

int bad_usage(const std::string& message) {
  std::fprintf(stderr, "hanatctl: %s\n", message.c_str());
  std::fprintf(stderr, "Try \"hanatctl --help\".\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::string socket_path = kDefaultSocket;
  bool json = false;
  bool wait = false;
  std::optional<long> timeout_s;
  // GNU getopt_long permutes: options may come before or after the command and its
  // arguments ("hanatctl status --json", "hanatctl drain --wait -t 30"); "--" ends them.
  static const option kLong[] = {{"socket", required_argument, nullptr, 's'},
                                 {"json", no_argument, nullptr, 'j'},
                                 {"wait", no_argument, nullptr, 'w'},
                                 {"timeout", required_argument, nullptr, 't'},
                                 {"version", no_argument, nullptr, 'V'},
                                 {"help", no_argument, nullptr, 'h'},
                                 {nullptr, 0, nullptr, 0}};
  opterr = 0;  // our own messages, naming the argument
  for (;;) {
    const int prev = optind;
    const int c = getopt_long(argc, argv, ":s:jwt:Vh", kLong, nullptr);
    if (c == -1) break;
    switch (c) {
      case 's':
        socket_path = optarg;
        break;
      case 'j':
        json = true;
        break;
      case 'w':
        wait = true;
        break;
      case 't': {
        timeout_s = whole_number(optarg, 1, 86400);
        if (!timeout_s) {
          return bad_usage(std::string("--timeout: \"") + optarg +
                           "\" is not a number of seconds from 1 to 86400");
        }
        break;
      }
      case 'V':
        std::printf("hanatctl %s\n", HANAT_VERSION);
        return 0;
      case 'h':
        usage(stdout);
        return 0;
      case ':':
        return bad_usage(std::string(argv[optind - 1]) + " needs a value");
      default: {
        std::string what =
            optopt != 0 ? std::string("-") + static_cast<char>(optopt) : std::string(argv[prev]);
        if (optopt == 0 && optind > prev) what = argv[optind - 1];
        return bad_usage("unknown option \"" + what + "\"");
      }
    }
  }
  std::vector<std::string> words(argv + optind, argv + argc);
  if (words.empty()) words.emplace_back("status");
  const std::string& cmd = words[0];
  if ((wait || timeout_s) && cmd != "drain") {
    return bad_usage("--wait and --timeout belong to drain, not \"" + cmd + "\"");
  }
  if (timeout_s && !wait) return bad_usage("drain: --timeout needs --wait");
  // The request names the daemon's command; "peers" and "routes" are views of the status.
  std::string req;
  const std::vector<std::string> bare = {"status", "peers",   "routes", "metrics",
                                         "drain",  "undrain", "reload"};
  if (cmd == "events" && words.size() <= 2) {
    req = "{\"cmd\":\"events\"}";
    if (words.size() == 2) {
      auto v = whole_number(words[1], 1, 100000);
      if (!v) return bad_usage("events: \"" + words[1] + "\" is not a positive count");
      req = "{\"cmd\":\"events\",\"limit\":" + std::to_string(*v) + "}";
    }
  } else if (cmd == "prepare-restart" && words.size() <= 2) {
    req = "{\"cmd\":\"prepare-restart\"}";
    if (words.size() == 2) {
      auto v = whole_number(words[1], 0, 3600);
      if (!v) {
        return bad_usage("prepare-restart: \"" + words[1] +
                         "\" is not a number of seconds from 0 to 3600");
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
  } else if (std::find(bare.begin(), bare.end(), cmd) != bare.end()) {
    if (words.size() > 1) {
      return bad_usage(cmd + ": unexpected argument \"" + words[1] + "\" (" + cmd + " takes none)");
    }
    const bool view = cmd == "peers" || cmd == "routes";
    req = "{\"cmd\":\"" + std::string(view ? "status" : cmd) + "\"}";
  } else if (cmd == "events" || cmd == "prepare-restart") {
    return bad_usage(cmd + ": unexpected argument \"" + words[2] + "\"");
  } else {
    std::fprintf(stderr, "hanatctl: unknown command \"%s\"\n", cmd.c_str());
    usage(stderr);
    return 2;
  }

  std::string reply;
  if (int rc = request(socket_path, req, reply); rc != 0) return rc;
  JsonRef parsed;
  if (!parse_reply(reply, parsed)) return 1;
  if (json) {
    std::printf("%s\n", reply.c_str());
  } else if (cmd == "status") {
    std::fputs(hanat::status::format_status(parsed.j).c_str(), stdout);
  } else if (cmd == "peers") {
    std::fputs(hanat::status::format_peers(parsed.j).c_str(), stdout);
  } else if (cmd == "routes") {
    std::fputs(hanat::status::format_routes(parsed.j).c_str(), stdout);
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
    if (!str(parsed.j, "warning").empty()) {
      std::fprintf(stderr, "hanatctl: warning: %s\n", str(parsed.j, "warning").c_str());
    }
  }
  if (cmd == "drain" && wait)
    return wait_drained(socket_path, timeout_s.value_or(kDefaultWaitSeconds));
  return 0;
}
