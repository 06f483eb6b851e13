// SPDX-License-Identifier: GPL-2.0-or-later
#include "netfilter/ct_events.h"

#include <libmnl/libmnl.h>
#include <linux/netfilter/nfnetlink.h>
#include <sys/socket.h>
#include <uv.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

namespace hanat::netfilter {

core::Result<std::unique_ptr<CtEvents>, Error> CtEvents::open(
    uv::Loop& loop, FlowFilter filter, size_t max_flows,
    std::function<void(const FlowEvents&)> on_events, int rcvbuf, bool updates,
    std::chrono::milliseconds batch, bool dump_on_loss) {
  mnl_socket* sock = mnl_socket_open2(NETLINK_NETFILTER, SOCK_CLOEXEC | SOCK_NONBLOCK);
  if (sock == nullptr) {
    const int e = errno;
    return fail(errno_code(e), "conntrack event socket: " + std::string(std::strerror(e)));
  }
  auto close_on_error = [sock](const std::string& what) {
    const int e = errno;
    mnl_socket_close(sock);
    return fail(errno_code(e), "conntrack event socket: " + what + ": " + std::strerror(e));
  };
  if (mnl_socket_bind(sock, 0, MNL_SOCKET_AUTOPID) < 0) return close_on_error("bind");
  // Updates (NFNLGRP_CONNTRACK_UPDATE: every TCP state change) are not needed by the
  // handover: a flow is carried from its first packet to its end, whatever its state in
  // between. Stateful failover needs them: the survivor recreates the entry in its state.
  std::vector<int> groups{NFNLGRP_CONNTRACK_NEW, NFNLGRP_CONNTRACK_DESTROY};
  if (updates) groups.push_back(NFNLGRP_CONNTRACK_UPDATE);
  for (int group : groups) {
    if (mnl_socket_setsockopt(sock, NETLINK_ADD_MEMBERSHIP, &group, sizeof group) < 0) {
      return close_on_error("join group " + std::to_string(group));
    }
  }
  const int fd = mnl_socket_get_fd(sock);
  // Best effort: SO_RCVBUFFORCE needs CAP_NET_ADMIN, SO_RCVBUF is capped by rmem_max.
  if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof rcvbuf) != 0) {
    (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  }
  const auto local = local_ipv4_addresses();
  filter.local.insert(filter.local.end(), local.begin(), local.end());
  std::unique_ptr<CtEvents> ev(new CtEvents(loop, sock, std::move(filter), max_flows,
                                            std::move(on_events), updates, batch, dump_on_loss));
  if (auto ec = ev->watch(); ec) {
    return fail(ec, "conntrack event socket: watching it on the loop: " + ec.message());
  }
  return ev;
}

CtEvents::CtEvents(uv::Loop& loop, mnl_socket* sock, FlowFilter filter, size_t max_flows,
                   std::function<void(const FlowEvents&)> on_events, bool updates,
                   std::chrono::milliseconds batch, bool dump_on_loss)
    : sock_(sock),
      filter_(std::move(filter)),
      max_flows_(max_flows),
      updates_(updates),
      batch_(batch),
      dump_on_loss_(dump_on_loss),
      on_events_(std::move(on_events)),
      buf_(MNL_SOCKET_BUFFER_SIZE * 4),
      rewatch_(loop),
      poll_(std::make_unique<uv::Poll>(loop, mnl_socket_get_fd(sock))) {}

CtEvents::~CtEvents() {
  poll_.reset();  // uv_close before the fd number can be reused
  mnl_socket_close(sock_);
}

std::error_code CtEvents::watch() {
  return poll_->start(UV_READABLE, [this](int status, int) {
    FlowEvents out;
    const auto read = read_some(out);
    if (read.lost) {
      // Events were lost: only a fresh dump tells which flows exist now. Anything read in
      // this wake-up is older than the dump and superseded by it.
      out.events.clear();
      if (!dump_on_loss_) {
        out.lost = true;
      } else if (auto dump = dump_flows(filter_, max_flows_)) {
        out.resync = std::move(dump->flows);
      } else {
        ++counters_.resync_errors;
      }
    }
    // An overrun sets the socket's error, which poll reports as POLLERR, and libuv stops a
    // poll handle on POLLERR (uv__poll_io). The read above cleared it: watch again from the
    // next loop iteration (not from inside this callback, which start() would replace while
    // it runs).
    if (status < 0) {
      (void)rewatch_.start(std::chrono::milliseconds(0), std::chrono::milliseconds(0),
                           [this] { (void)watch(); });
    } else if (batch_.count() > 0 && read.drained) {
      // Drained: let the next events gather in the receive buffer for `batch` (the header).
      (void)poll_->stop();
      (void)rewatch_.start(batch_, std::chrono::milliseconds(0), [this] { (void)watch(); });
    }
    // Last: the callback may destroy this stream.
    if ((!out.events.empty() || out.resync || out.lost) && on_events_) on_events_(out);
  });
}

CtEvents::ReadResult CtEvents::read_some(FlowEvents& out) {
  ReadResult r;
  for (int reads = 0; reads < kMaxReadsPerWake; ++reads) {
    const ssize_t n = mnl_socket_recvfrom(sock_, buf_.data(), buf_.size());
    if (n < 0) {
      if (errno == ENOBUFS) {
        ++counters_.overruns;
        r.lost = true;
        continue;  // the socket stays usable; later messages follow
      }
      // EAGAIN: drained (anything else: the next readable event retries)
      r.drained = errno == EAGAIN || errno == EWOULDBLOCK;
      break;
    }
    int len = static_cast<int>(n);
    for (auto* nlh = reinterpret_cast<const nlmsghdr*>(buf_.data()); mnl_nlmsg_ok(nlh, len);
         nlh = mnl_nlmsg_next(nlh, &len)) {
      auto m = parse_ct_message(nlh, nlh->nlmsg_len);
      if (!m) {
        ++counters_.malformed;
        continue;
      }
      if ((m->kind == CtKind::Update && !updates_) || !should_carry(*m, filter_)) {
        ++counters_.filtered;
        continue;
      }
      ++counters_.delivered;
      FlowEvent e;
      e.destroyed = m->kind == CtKind::Destroy;
      e.update = m->kind == CtKind::Update;
      e.flow = m->flow;
      e.replicated = replicated_flow(*m);
      out.events.push_back(std::move(e));
    }
  }
  return r;
}

}  // namespace hanat::netfilter
