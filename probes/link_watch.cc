// SPDX-License-Identifier: GPL-2.0-or-later
#include "probes/link_watch.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <libmnl/libmnl.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>

namespace hanat::probes {

core::Result<std::unique_ptr<LinkWatch>, std::string> LinkWatch::create(uv::Loop& loop,
                                                                        std::string ifname,
                                                                        OnChange on_change) {
  const std::string what = "link watch on \"" + ifname + "\": ";
  const unsigned index = if_nametoindex(ifname.c_str());
  if (index == 0) return core::Unexpected(what + "no such interface");
  const int fd = ::socket(AF_NETLINK, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, NETLINK_ROUTE);
  if (fd < 0) return core::Unexpected(what + "netlink socket: " + std::strerror(errno));
  sockaddr_nl sa{};
  sa.nl_family = AF_NETLINK;
  sa.nl_groups = RTMGRP_LINK;  // RTM_NEWLINK / RTM_DELLINK for every interface
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&sa), sizeof sa) != 0) {
    const int e = errno;
    ::close(fd);
    return core::Unexpected(what + "netlink bind: " + std::strerror(e));
  }
  std::unique_ptr<LinkWatch> w(new LinkWatch(loop, fd, std::move(ifname), std::move(on_change)));
  w->ifindex_ = index;
  if (auto f = w->read_flags()) w->up_ = *f;
  if (auto ec = w->poll_->start(UV_READABLE, [p = w.get()](int, int) { p->on_readable(); })) {
    return core::Unexpected(what + "poll: " + ec.message());
  }
  return w;
}

LinkWatch::LinkWatch(uv::Loop& loop, int fd, std::string ifname, OnChange on_change)
    : fd_(fd),
      poll_(std::make_unique<uv::Poll>(loop, fd)),
      ifname_(std::move(ifname)),
      on_change_(std::move(on_change)) {}

LinkWatch::~LinkWatch() {
  poll_.reset();  // before the fd is closed: its number may be reused at once
  if (fd_ >= 0) ::close(fd_);
}

std::optional<bool> LinkWatch::read_flags() const {
  ifreq ifr{};
  std::strncpy(ifr.ifr_name, ifname_.c_str(), IFNAMSIZ - 1);
  const int s = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) return std::nullopt;
  const int rc = ::ioctl(s, SIOCGIFFLAGS, &ifr);
  ::close(s);
  if (rc != 0) return std::nullopt;
  return (ifr.ifr_flags & IFF_RUNNING) != 0;
}

void LinkWatch::set(bool up, Time at) {
  if (up == up_) return;
  up_ = up;
  if (up) {
    last_up_ = at;
  } else {
    ++downs_;
  }
  if (on_change_) on_change_(up, at);
}

void LinkWatch::on_readable() {
  std::array<char, 16384> buf{};
  for (int i = 0; i < 64; ++i) {  // bounded: a storm of notifications must not hog the loop
    const ssize_t n = ::recv(fd_, buf.data(), buf.size(), 0);
    const Time at = Clock::now();
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == ENOBUFS) {
        // Notifications were dropped: the current flags are the truth.
        if (auto f = read_flags()) set(*f, at);
        continue;
      }
      return;  // EAGAIN: drained
    }
    int len = static_cast<int>(n);
    for (auto* nlh = reinterpret_cast<const nlmsghdr*>(buf.data()); mnl_nlmsg_ok(nlh, len);
         nlh = mnl_nlmsg_next(nlh, &len)) {
      if (nlh->nlmsg_type != RTM_NEWLINK && nlh->nlmsg_type != RTM_DELLINK) continue;
      if (mnl_nlmsg_get_payload_len(nlh) < sizeof(ifinfomsg)) continue;
      const auto* ifi = static_cast<const ifinfomsg*>(mnl_nlmsg_get_payload(nlh));
      if (ifi->ifi_index != static_cast<int>(ifindex_)) continue;
      set(nlh->nlmsg_type == RTM_NEWLINK && (ifi->ifi_flags & IFF_RUNNING) != 0, at);
    }
  }
}

bool LinkWatch::impaired(Time at, std::chrono::nanoseconds grace) const {
  if (!up_) return true;
  return last_up_ && at < *last_up_ + grace;
}

core::Result<std::string, std::string> interface_with_address(const std::string& address) {
  in_addr want{};
  if (inet_pton(AF_INET, address.c_str(), &want) != 1) {
    return core::Unexpected("\"" + address + "\" is not a numeric IPv4 address");
  }
  ifaddrs* all = nullptr;
  if (getifaddrs(&all) != 0)
    return core::Unexpected(std::string("getifaddrs: ") + std::strerror(errno));
  std::string found;
  for (ifaddrs* a = all; a != nullptr && found.empty(); a = a->ifa_next) {
    if (a->ifa_addr == nullptr || a->ifa_addr->sa_family != AF_INET) continue;
    const auto* sin = reinterpret_cast<const sockaddr_in*>(a->ifa_addr);
    if (sin->sin_addr.s_addr == want.s_addr) found = a->ifa_name;
  }
  freeifaddrs(all);
  if (found.empty()) return core::Unexpected("no interface holds " + address);
  return found;
}

}  // namespace hanat::probes
