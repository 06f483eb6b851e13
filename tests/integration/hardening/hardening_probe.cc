// SPDX-License-Identifier: GPL-2.0-or-later
// hardening_probe: does what hanatd needs its privileges for, and nothing else, so the
// hardening test can run it under the unit's restrictions. Each step prints one line
// "ok: ..." or "FAIL: ... <errno text>"; the exit status is 0 only if every requested step
// worked.
//   --caps               print CapEff/CapBnd/CapAmb and NoNewPrivs from /proc/self/status
//   --nat IFNAME         commit the masquerade table for IFNAME through netlink (the
//                        netfilter library hanatd uses), read it back, then remove it
//   --raw-icmp           open a raw ICMP socket (the probe path when ping sockets are not
//                        allowed by net.ipv4.ping_group_range)

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>

#include "core/uv/uv.h"
#include "netfilter/manager.h"

namespace {

bool print_caps() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("CapEff:", 0) == 0 || line.rfind("CapBnd:", 0) == 0 ||
        line.rfind("CapAmb:", 0) == 0 || line.rfind("CapPrm:", 0) == 0 ||
        line.rfind("NoNewPrivs:", 0) == 0) {
      std::printf("%s\n", line.c_str());
    }
  }
  return true;
}

bool nat(const std::string& ifname) {
  hanat::uv::Loop loop;
  bool ok = false;
  {
    hanat::netfilter::NatManager mgr(loop);
    hanat::netfilter::NatSpec spec;
    spec.table = "hanat_hardening";
    spec.egress_interface = ifname;
    spec.source_cidrs = {"198.18.0.0/24"};
    auto applied = mgr.apply(spec, {});
    if (!applied) {
      std::printf("FAIL: nat apply on %s: %s (%s)\n", ifname.c_str(),
                  applied.error().message.c_str(), applied.error().code.message().c_str());
    } else {
      auto verified = mgr.check();
      if (!verified) {
        std::printf("FAIL: nat read-back: %s\n", verified.error().message.c_str());
      } else {
        std::printf("ok: nat table committed and read back on %s\n", ifname.c_str());
        ok = true;
      }
      auto removed = mgr.remove();
      if (!removed) {
        std::printf("FAIL: nat remove: %s\n", removed.error().message.c_str());
        ok = false;
      }
    }
    mgr.stop();
  }
  (void)loop.close();
  return ok;
}

bool raw_icmp() {
  int fd = ::socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_ICMP);
  if (fd < 0) {
    int err = errno;
    std::printf("FAIL: raw ICMP socket: %s\n", std::strerror(err));
    return false;
  }
  ::close(fd);
  std::printf("ok: raw ICMP socket\n");
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  bool all = true;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--caps") {
      all = print_caps() && all;
    } else if (a == "--nat" && i + 1 < argc) {
      all = nat(argv[++i]) && all;
    } else if (a == "--raw-icmp") {
      all = raw_icmp() && all;
    } else {
      std::fprintf(stderr, "hardening_probe: unknown argument \"%s\"\n", a.c_str());
      return 2;
    }
  }
  std::fflush(stdout);
  return all ? 0 : 1;
}
