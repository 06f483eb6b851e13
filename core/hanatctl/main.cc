// hanatctl: talks to hanatd over its status socket. See `hanatctl --help`.

#include <jansson.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

namespace {

constexpr const char* kDefaultSocket = "/run/hanat/hanatd.sock";

void usage(std::FILE* out) {
  std::fprintf(out,
               "Usage: hanatctl [--socket PATH] status [--json]\n"
               "       hanatctl --version | --help\n"
               "\n"
               "  -s, --socket PATH  hanatd's status socket (default %s)\n"
               "  status             show the daemon's state; --json prints the raw reply\n",
               kDefaultSocket);
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
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    int err = errno;
    std::fprintf(stderr, "hanatctl: cannot connect to %s: %s (is hanatd running?)\n", path.c_str(),
                 std::strerror(err));
    ::close(fd);
    return 1;
  }
  timeval tv{5, 0};
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

long long num(const json_t* o, const char* key) {
  const json_t* v = json_object_get(o, key);
  return json_is_integer(v) ? static_cast<long long>(json_integer_value(v)) : 0;
}

std::string human_duration(long long ms) {
  long long s = ms / 1000;
  char buf[64];
  if (s < 60)
    std::snprintf(buf, sizeof(buf), "%llds", s);
  else if (s < 3600)
    std::snprintf(buf, sizeof(buf), "%lldm%02llds", s / 60, s % 60);
  else if (s < 86400)
    std::snprintf(buf, sizeof(buf), "%lldh%02lldm", s / 3600, (s / 60) % 60);
  else
    std::snprintf(buf, sizeof(buf), "%lldd%02lldh", s / 86400, (s / 3600) % 24);
  return buf;
}

void print_status(const json_t* st) {
  std::printf("hanatd %s (pid %lld), up %s\n", str(st, "version").c_str(), num(st, "pid"),
              human_duration(num(st, "uptime_ms")).c_str());
  std::printf("group:       %s\n", str(st, "group").c_str());
  const json_t* cfg = json_object_get(st, "config");
  if (json_is_object(cfg)) {
    std::printf("config:      %s (generation %lld, loaded %s)\n", str(cfg, "path").c_str(),
                num(cfg, "generation"), str(cfg, "loaded_at").c_str());
    const json_t* rl = json_object_get(cfg, "last_reload");
    if (!json_is_true(json_object_get(rl, "attempted"))) {
      std::printf("last reload: none\n");
    } else if (json_is_true(json_object_get(rl, "ok"))) {
      std::printf("last reload: ok at %s\n", str(rl, "at").c_str());
    } else {
      std::printf("last reload: FAILED at %s, still running generation %lld:\n",
                  str(rl, "at").c_str(), num(cfg, "generation"));
      std::string err = str(rl, "error");
      size_t start = 0;
      while (start <= err.size()) {
        size_t nl = err.find('\n', start);
        std::printf("  %s\n", err.substr(start, nl - start).c_str());
        if (nl == std::string::npos) break;
        start = nl + 1;
      }
    }
  }
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
  if (words.size() != 1 || words[0] != "status") {
    std::fprintf(stderr, "hanatctl: unknown command \"%s\"\n", words[0].c_str());
    usage(stderr);
    return 2;
  }

  std::string reply;
  if (int rc = request(socket_path, "{\"cmd\":\"status\"}", reply); rc != 0) return rc;
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
  } else {
    print_status(parsed.j);
  }
  return 0;
}
