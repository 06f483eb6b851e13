// SPDX-License-Identifier: GPL-2.0-or-later
#pragma once
// Network-namespace helpers for the netfilter integration tests. Every namespace is created
// here with a name carrying the test process's pid, and deleted by its destructor. All
// nftables and /proc/sys/net changes happen inside such namespaces: EnterNetns moves the
// test thread in (sockets opened and /proc/sys/net paths resolved there belong to it) and
// checks that it really left the host's namespace before anything is written.

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <string>

#include <gtest/gtest.h>

namespace hanat::testing {

// Runs a shell command; returns its exit status (-1 if it could not run).
inline int sh(const std::string& cmd) {
  const int rc = std::system(cmd.c_str());
  return rc == -1 ? -1 : WEXITSTATUS(rc);
}

// Runs a command and returns its stdout; *rc gets the exit status.
inline std::string capture(const std::string& cmd, int* rc = nullptr) {
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) {
    if (rc) *rc = -1;
    return out;
  }
  std::array<char, 4096> buf{};
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) out.append(buf.data(), n);
  const int status = pclose(p);
  if (rc) *rc = status == -1 ? -1 : WEXITSTATUS(status);
  return out;
}

inline ino_t netns_inode(const char* path = "/proc/thread-self/ns/net") {
  struct stat st {};
  if (stat(path, &st) != 0) return 0;
  return st.st_ino;
}

// Why these tests cannot run here, or empty when they can.
inline std::string netns_skip_reason() {
  if (geteuid() != 0) return "needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN) to create namespaces";
  if (sh("command -v nft >/dev/null 2>&1") != 0) return "needs the nft CLI (package nftables)";
  if (sh("command -v ip >/dev/null 2>&1") != 0) return "needs the ip CLI (package iproute2)";
  return {};
}

// Deletes namespaces a crashed earlier run of these tests left behind: only names with this
// module's prefix whose pid is no longer alive (others' namespaces are never touched).
inline void remove_stale_netns() {
  const std::string prefix = "hanat-nf-";
  std::string list = capture("ip netns list 2>/dev/null");
  size_t pos = 0;
  while (pos < list.size()) {
    size_t eol = list.find('\n', pos);
    if (eol == std::string::npos) eol = list.size();
    std::string line = list.substr(pos, eol - pos);
    pos = eol + 1;
    const std::string name = line.substr(0, line.find(' '));
    if (name.rfind(prefix, 0) != 0) continue;
    const std::string rest = name.substr(prefix.size());
    const std::string pid = rest.substr(0, rest.find('-'));
    if (pid.empty() || pid.find_first_not_of("0123456789") != std::string::npos) continue;
    if (::kill(static_cast<pid_t>(std::stol(pid)), 0) == 0 || errno != ESRCH) continue;
    sh("ip netns del " + name);
  }
}

class Netns {
 public:
  explicit Netns(const std::string& role) {
    static int counter = 0;
    name_ = "hanat-nf-" + std::to_string(getpid()) + "-" + std::to_string(counter++) + "-" + role;
    created_ = sh("ip netns add " + name_) == 0;
    if (created_) fd_ = ::open(("/run/netns/" + name_).c_str(), O_RDONLY | O_CLOEXEC);
  }
  ~Netns() {
    if (fd_ >= 0) ::close(fd_);
    if (created_) sh("ip netns del " + name_);
  }
  Netns(const Netns&) = delete;
  Netns& operator=(const Netns&) = delete;

  [[nodiscard]] bool ok() const { return created_ && fd_ >= 0; }
  [[nodiscard]] const std::string& name() const { return name_; }
  [[nodiscard]] int fd() const { return fd_; }
  // A command line that runs `cmd` inside this namespace.
  [[nodiscard]] std::string exec(const std::string& cmd) const {
    return "ip netns exec " + name_ + " " + cmd;
  }
  // `ip -n <ns> ...`
  [[nodiscard]] int ip(const std::string& args) const { return sh("ip -n " + name_ + " " + args); }

 private:
  std::string name_;
  bool created_ = false;
  int fd_ = -1;
};

// Moves the calling thread into `ns` until destroyed.
class EnterNetns {
 public:
  explicit EnterNetns(const Netns& ns) {
    orig_ = ::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    const ino_t before = netns_inode();
    entered_ = orig_ >= 0 && ns.fd() >= 0 && setns(ns.fd(), CLONE_NEWNET) == 0;
    entered_ = entered_ && netns_inode() != before && netns_inode() != 0;
  }
  ~EnterNetns() {
    if (orig_ >= 0) {
      if (setns(orig_, CLONE_NEWNET) != 0) std::abort();  // never continue in the wrong netns
      ::close(orig_);
    }
  }
  EnterNetns(const EnterNetns&) = delete;
  EnterNetns& operator=(const EnterNetns&) = delete;
  [[nodiscard]] bool ok() const { return entered_; }

 private:
  int orig_ = -1;
  bool entered_ = false;
};

}  // namespace hanat::testing
