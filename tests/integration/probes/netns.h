// SPDX-License-Identifier: GPL-2.0-or-later
#pragma once
// Network namespaces for probe tests. Everything lives in namespaces this process creates
// (names carry the pid, so tests running in parallel never collide), uses only
// 198.18.0.0/15, and is deleted in the destructor even when the test fails. Sockets are
// created inside a namespace by switching the calling thread with setns(2); a socket stays in
// the namespace it was created in, so one loop on one thread can hold both sides.

#include <dirent.h>
#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace hanat::testing {

// Why namespace tests cannot run here, or empty.
inline std::string netns_unavailable() {
  if (geteuid() != 0) return "needs root (CAP_NET_ADMIN) to create network namespaces";
  if (std::system("ip -V >/dev/null 2>&1") != 0) return "iproute2 'ip' is not installed";
  return {};
}

// Runs a shell command; returns its exit status (0 = success).
inline int sh(const std::string& cmd) {
  return std::system((cmd + " >/dev/null 2>&1").c_str());
}

// Deletes namespaces named "hanat-pr-<pid>-..." whose process is gone (a test that crashed
// before its destructors ran). Only our own prefix, only dead pids: parallel runs are safe.
inline void reap_stale_netns() {
  DIR* d = opendir("/var/run/netns");
  if (d == nullptr) return;
  std::vector<std::string> stale;
  while (dirent* e = readdir(d)) {
    std::string name = e->d_name;
    const std::string prefix = "hanat-pr-";
    if (name.rfind(prefix, 0) != 0) continue;
    std::size_t end = name.find('-', prefix.size());
    if (end == std::string::npos || end == prefix.size()) continue;
    std::string digits = name.substr(prefix.size(), end - prefix.size());
    if (digits.find_first_not_of("0123456789") != std::string::npos || digits.size() > 9) continue;
    auto pid = static_cast<pid_t>(std::stol(digits));
    if (kill(pid, 0) != 0 && errno == ESRCH) stale.push_back(name);
  }
  closedir(d);
  for (const auto& n : stale) (void)sh("ip netns del " + n);
}

class Netns {
 public:
  explicit Netns(std::string name) : name_(std::move(name)) {
    ok_ = sh("ip netns add " + name_) == 0 && sh("ip -n " + name_ + " link set lo up") == 0;
  }
  ~Netns() { (void)sh("ip netns del " + name_); }
  Netns(const Netns&) = delete;
  Netns& operator=(const Netns&) = delete;
  [[nodiscard]] bool ok() const { return ok_; }
  [[nodiscard]] const std::string& name() const { return name_; }
  // Runs `cmd` (an `ip`, `sysctl`, `nft` ... command line) inside the namespace.
  [[nodiscard]] bool run(const std::string& cmd) const {
    return sh("ip netns exec " + name_ + " " + cmd) == 0;
  }

 private:
  std::string name_;
  bool ok_ = false;
};

// Moves the calling thread into a namespace until destroyed.
class InNetns {
 public:
  explicit InNetns(const std::string& name) {
    self_ = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    int fd = open(("/var/run/netns/" + name).c_str(), O_RDONLY | O_CLOEXEC);
    ok_ = self_ >= 0 && fd >= 0 && setns(fd, CLONE_NEWNET) == 0;
    if (fd >= 0) close(fd);
  }
  ~InNetns() {
    if (self_ >= 0) {
      (void)setns(self_, CLONE_NEWNET);
      close(self_);
    }
  }
  InNetns(const InNetns&) = delete;
  InNetns& operator=(const InNetns&) = delete;
  [[nodiscard]] bool ok() const { return ok_; }

 private:
  int self_ = -1;
  bool ok_ = false;
};

// Sets a link up or down from inside its namespace with one ioctl: instantaneous, so a test
// can time "link cut" precisely from a loop callback (no fork/exec of `ip`).
inline bool set_link(const std::string& ns, const std::string& ifname, bool up) {
  InNetns in(ns);
  if (!in.ok()) return false;
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  ifreq ifr{};
  std::strncpy(ifr.ifr_name, ifname.c_str(), IFNAMSIZ - 1);
  bool ok = ioctl(fd, SIOCGIFFLAGS, &ifr) == 0;
  if (ok) {
    if (up) {
      ifr.ifr_flags = static_cast<short>(ifr.ifr_flags | IFF_UP);
    } else {
      ifr.ifr_flags = static_cast<short>(ifr.ifr_flags & ~IFF_UP);
    }
    ok = ioctl(fd, SIOCSIFFLAGS, &ifr) == 0;
  }
  close(fd);
  return ok;
}

}  // namespace hanat::testing
