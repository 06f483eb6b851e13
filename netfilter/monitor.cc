// SPDX-License-Identifier: GPL-2.0-or-later
#include "netfilter/monitor.h"

#include <libmnl/libmnl.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <sys/socket.h>
#include <uv.h>

#include <cerrno>
#include <cstring>

namespace hanat::netfilter {

namespace {

// NFTA_TABLE_NAME, NFTA_CHAIN_TABLE, NFTA_RULE_TABLE, NFTA_SET_TABLE, NFTA_OBJ_TABLE and
// NFTA_FLOWTABLE_TABLE are all attribute 1: every object message names its table first.
constexpr uint16_t kAttrTable = 1;

std::string attr_str(const nlmsghdr* nlh, uint16_t type) {
  const auto* a = static_cast<const nlattr*>(mnl_nlmsg_get_payload_offset(nlh, sizeof(nfgenmsg)));
  const auto* tail = static_cast<const char*>(mnl_nlmsg_get_payload_tail(nlh));
  while (mnl_attr_ok(a, static_cast<int>(tail - reinterpret_cast<const char*>(a)))) {
    if (mnl_attr_get_type(a) == type && mnl_attr_validate(a, MNL_TYPE_NUL_STRING) >= 0) {
      return mnl_attr_get_str(a);
    }
    a = mnl_attr_next(a);
  }
  return {};
}

}  // namespace

std::optional<Notice> notification_about(const void* msg, size_t len, std::string_view table) {
  const auto* nlh = static_cast<const nlmsghdr*>(msg);
  if (len < sizeof(nlmsghdr) || nlh->nlmsg_len > len ||
      nlh->nlmsg_len < mnl_nlmsg_size(sizeof(nfgenmsg))) {
    return std::nullopt;
  }
  if ((nlh->nlmsg_type >> 8) != NFNL_SUBSYS_NFTABLES) return std::nullopt;
  const auto* gen = static_cast<const nfgenmsg*>(mnl_nlmsg_get_payload(nlh));
  // hanat's table is `table ip`: an `inet` or `ip6` table of the same name is another table.
  if (gen->nfgen_family != NFPROTO_IPV4) return std::nullopt;
  const int type = nlh->nlmsg_type & 0xff;
  if (type == NFT_MSG_NEWGEN) return std::nullopt;
  if (attr_str(nlh, kAttrTable) != table) return std::nullopt;
  switch (type) {
    case NFT_MSG_DELTABLE:
      return Notice{"table deleted", 5};
    case NFT_MSG_DELCHAIN:
      return Notice{"chain " + attr_str(nlh, NFTA_CHAIN_NAME) + " deleted", 4};
    case NFT_MSG_DELRULE:
      return Notice{"rule deleted from chain " + attr_str(nlh, NFTA_RULE_CHAIN), 3};
    case NFT_MSG_NEWTABLE:
      return Notice{"table added or changed", 2};
    case NFT_MSG_NEWCHAIN:
      return Notice{"chain " + attr_str(nlh, NFTA_CHAIN_NAME) + " added or changed", 2};
    case NFT_MSG_NEWRULE:
      return Notice{"rule added to chain " + attr_str(nlh, NFTA_RULE_CHAIN), 1};
    default:
      return Notice{"object changed (nftables message " + std::to_string(type) + ")", 1};
  }
}

core::Result<std::unique_ptr<NftMonitor>, Error> NftMonitor::open(
    uv::Loop& loop, std::string table, std::function<void(const std::string&)> on_change,
    int rcvbuf) {
  mnl_socket* sock = mnl_socket_open2(NETLINK_NETFILTER, SOCK_CLOEXEC | SOCK_NONBLOCK);
  if (sock == nullptr) {
    const int e = errno;
    return fail(errno_code(e), "nftables notification socket: " + std::string(std::strerror(e)));
  }
  auto close_on_error = [sock](const char* what) {
    const int e = errno;
    mnl_socket_close(sock);
    return fail(errno_code(e),
                std::string("nftables notification socket: ") + what + ": " + std::strerror(e));
  };
  if (mnl_socket_bind(sock, 0, MNL_SOCKET_AUTOPID) < 0) return close_on_error("bind");
  // Joining a netfilter multicast group needs CAP_NET_ADMIN in the namespace (nfnetlink_bind).
  int group = NFNLGRP_NFTABLES;
  if (mnl_socket_setsockopt(sock, NETLINK_ADD_MEMBERSHIP, &group, sizeof group) < 0) {
    return close_on_error("join group NFNLGRP_NFTABLES");
  }
  const int fd = mnl_socket_get_fd(sock);
  // Best effort: SO_RCVBUFFORCE needs CAP_NET_ADMIN, SO_RCVBUF is capped by rmem_max.
  if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof rcvbuf) != 0) {
    (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  }
  std::unique_ptr<NftMonitor> m(new NftMonitor(loop, sock, std::move(table), std::move(on_change)));
  if (auto ec = m->watch(); ec) {
    return fail(ec, "nftables notification socket: watching it on the loop: " + ec.message());
  }
  return m;
}

NftMonitor::NftMonitor(uv::Loop& loop, mnl_socket* sock, std::string table,
                       std::function<void(const std::string&)> on_change)
    : sock_(sock),
      table_(std::move(table)),
      on_change_(std::move(on_change)),
      buf_(MNL_SOCKET_BUFFER_SIZE * 4),
      rewatch_(loop),
      poll_(std::make_unique<uv::Poll>(loop, mnl_socket_get_fd(sock))) {}

std::error_code NftMonitor::watch() {
  return poll_->start(UV_READABLE, [this](int status, int) {
    const uint64_t overruns = overruns_;
    const std::optional<std::string> what = drain();
    // An overrun sets the socket's error, which poll reports as POLLERR, and libuv stops a
    // poll handle on POLLERR (uv__poll_io). The drain above read the error (ENOBUFS), which
    // clears it: watch again from the next loop iteration (not from inside this callback,
    // which start() would replace while it runs). Any other error leaves the socket
    // unwatched rather than spinning; the drift timer still checks.
    if (status < 0 && overruns_ > overruns) {
      (void)rewatch_.start(std::chrono::milliseconds(0), std::chrono::milliseconds(0),
                           [this] { (void)watch(); });
    }
    // Last: the callback may destroy this monitor (the manager stopping).
    if (what && on_change_) on_change_(*what);
  });
}

NftMonitor::~NftMonitor() {
  poll_.reset();  // uv_close before the fd number can be reused
  mnl_socket_close(sock_);
}

std::optional<std::string> NftMonitor::drain() {
  // Drain everything queued, then report once: one transaction announces many objects, and
  // one verify covers them all.
  std::optional<Notice> top;
  for (int reads = 0; reads < 1024; ++reads) {
    const ssize_t n = mnl_socket_recvfrom(sock_, buf_.data(), buf_.size());
    if (n < 0) {
      if (errno == ENOBUFS) {
        ++overruns_;
        top = Notice{"notifications lost (ENOBUFS)", 6};
        continue;  // the socket stays usable; later messages follow
      }
      break;  // EAGAIN: drained (anything else: the next readable event retries)
    }
    int len = static_cast<int>(n);
    for (auto* nlh = reinterpret_cast<const nlmsghdr*>(buf_.data()); mnl_nlmsg_ok(nlh, len);
         nlh = mnl_nlmsg_next(nlh, &len)) {
      auto notice = notification_about(nlh, nlh->nlmsg_len, table_);
      if (notice && (!top || notice->rank > top->rank)) top = std::move(notice);
    }
  }
  return top ? std::optional<std::string>(top->what) : std::nullopt;
}

}  // namespace hanat::netfilter
