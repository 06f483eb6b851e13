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
               "       hanatctl [--socket PATH] drain | undrain\n"
               "       hanatctl --version | --help\n"
               "\n"
               "  -s, --socket PATH  hanatd's status socket (default %s)\n"
               "  status             show the daemon's state; --json prints the raw reply\n"
               "  drain              hand this host's routes to a healthy peer and keep none\n"
               "  undrain            take routes back per the allocation\n",
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

const char* bool_word(const json_t* o, const char* key, const char* yes, const char* no) {
  return json_is_true(json_object_get(o, key)) ? yes : no;
}

void print_node(const json_t* n) {
  const json_t* self = json_object_get(n, "self");
  std::printf("phase:       %s%s%s\n", str(n, "phase").c_str(),
              str(n, "phase_error").empty() ? "" : " — ", str(n, "phase_error").c_str());
  if (json_is_object(self) && !str(self, "instance_id").empty()) {
    std::printf("self:        %s in %s, ENI %s, %s\n", str(self, "instance_id").c_str(),
                str(self, "zone").c_str(), str(self, "eni_id").c_str(),
                str(self, "private_ip").c_str());
    std::printf(
        "data plane:  nat %s, egress %s%s\n", bool_word(self, "nat_ok", "ok", "FAILED"),
        str(self, "egress").c_str(),
        str(self, "nat_error").empty() ? "" : (" (" + str(self, "nat_error") + ")").c_str());
  }
  if (!str(n, "state").empty()) {
    std::printf("state:       %s%s\n", str(n, "state").c_str(),
                bool_word(n, "drained", " (drained)", ""));
  }
  const json_t* members = json_object_get(n, "members");
  if (json_array_size(members) > 0) {
    std::printf("members:\n");
    size_t i;
    const json_t* m;
    json_array_foreach(members, i, m) {
      std::string rtts;
      const char* k;
      const json_t* v;
      json_object_foreach(const_cast<json_t*>(json_object_get(m, "last_rtt_us")), k, v) {
        char buf[64];
        std::snprintf(buf, sizeof(buf), " %s=%.2fms", k,
                      static_cast<double>(json_integer_value(v)) / 1000.0);
        rtts += buf;
      }
      std::printf("  %-22s %-12s %-16s %-10s%s%s\n", str(m, "instance_id").c_str(),
                  str(m, "zone").c_str(), str(m, "address").c_str(), str(m, "health").c_str(),
                  json_is_true(json_object_get(m, "self")) ? " (this host)" : "", rtts.c_str());
    }
  }
  const json_t* tables = json_object_get(n, "tables");
  if (json_array_size(tables) > 0) {
    std::printf("route tables:\n");
    size_t i;
    const json_t* t;
    json_array_foreach(tables, i, t) {
      size_t j;
      const json_t* r;
      json_array_foreach(json_object_get(t, "routes"), j, r) {
        std::string extra;
        if (json_is_true(json_object_get(r, "in_flight"))) extra += " [write in flight]";
        if (json_is_integer(json_object_get(t, "hold_down_ms")))
          extra += " [hold-down " + std::to_string(num(t, "hold_down_ms")) + "ms]";
        if (!str(r, "last_error").empty()) extra += " [last error: " + str(r, "last_error") + "]";
        std::printf("  %-24s %-12s %-12s current %-24s allocated %-24s writes %lld%s\n",
                    str(t, "id").c_str(), str(t, "zone").c_str(), str(r, "destination").c_str(),
                    str(r, "current").c_str(), str(t, "allocated").c_str(), num(t, "writes"),
                    extra.c_str());
      }
    }
  }
  const json_t* c = json_object_get(n, "counters");
  if (json_is_object(c)) {
    std::printf(
        "counters:    failovers %lld, route writes %lld, throttles %lld, drift repairs %lld\n",
        num(c, "failovers"), num(c, "route_writes"), num(c, "throttles"), num(c, "drift_repairs"));
    const char* k;
    const json_t* v;
    std::string calls;
    json_object_foreach(const_cast<json_t*>(json_object_get(c, "ec2_calls")), k, v) {
      calls +=
          std::string(calls.empty() ? "" : ", ") + k + " " + std::to_string(json_integer_value(v));
    }
    if (!calls.empty()) std::printf("ec2 calls:   %s\n", calls.c_str());
  }
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
  const json_t* node = json_object_get(st, "node");
  if (json_is_object(node)) print_node(node);
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
  if (words.size() != 1 || (cmd != "status" && cmd != "drain" && cmd != "undrain")) {
    std::fprintf(stderr, "hanatctl: unknown command \"%s\"\n", words[0].c_str());
    usage(stderr);
    return 2;
  }

  std::string reply;
  if (int rc = request(socket_path, "{\"cmd\":\"" + cmd + "\"}", reply); rc != 0) return rc;
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
    print_status(parsed.j);
  } else {
    std::printf("%s\n", str(parsed.j, "result").c_str());
  }
  return 0;
}
