// SPDX-License-Identifier: GPL-2.0-or-later
#include "netfilter/ct_socket.h"

#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <linux/netlink.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <cerrno>
#include <cstring>

namespace hanat::netfilter::detail {

namespace {
constexpr size_t kRxBufSize = 64 * 1024;
}  // namespace

core::Unexpected<Error> fail_errno(int e, const std::string& what) {
  return fail(errno_code(e), "conntrack: " + what + ": " + std::strerror(e));
}

nlmsghdr* put_ct_header(uint8_t* buf, uint16_t msg, uint16_t flags, uint32_t seq) {
  nlmsghdr* nlh = mnl_nlmsg_put_header(buf);
  nlh->nlmsg_type = static_cast<uint16_t>((NFNL_SUBSYS_CTNETLINK << 8) | msg);
  nlh->nlmsg_flags = static_cast<uint16_t>(NLM_F_REQUEST | flags);
  nlh->nlmsg_seq = seq;
  auto* nfg = static_cast<nfgenmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(nfgenmsg)));
  nfg->nfgen_family = AF_INET;
  nfg->version = NFNETLINK_V0;
  nfg->res_id = 0;
  return nlh;
}

int attr_table_cb(const nlattr* attr, void* data) {
  auto* tb = static_cast<const nlattr**>(data);
  const uint16_t type = mnl_attr_get_type(attr);
  if (type <= CTA_MAX) tb[type] = attr;
  return MNL_CB_OK;
}

CtSocket::CtSocket(SocketPtr sock, std::chrono::milliseconds timeout)
    : sock_(std::move(sock)), timeout_(timeout), rx_(kRxBufSize) {}

core::Result<CtSocket, Error> CtSocket::open(std::chrono::milliseconds timeout) {
  SocketPtr sock(mnl_socket_open2(NETLINK_NETFILTER, SOCK_CLOEXEC), mnl_socket_close);
  if (!sock) return fail_errno(errno, "netlink socket");
  if (mnl_socket_bind(sock.get(), 0, MNL_SOCKET_AUTOPID) < 0) return fail_errno(errno, "bind");
  int on = 1;
  (void)mnl_socket_setsockopt(sock.get(), NETLINK_CAP_ACK, &on, sizeof on);
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(timeout.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((timeout.count() % 1000) * 1000);
  if (setsockopt(mnl_socket_get_fd(sock.get()), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) < 0) {
    return fail_errno(errno, "SO_RCVTIMEO");
  }
  return CtSocket(std::move(sock), timeout);
}

core::Result<std::monostate, Error> CtSocket::dump(mnl_cb_t cb, void* data) {
  auto seq = begin_dump();
  if (!seq) return core::Unexpected(seq.error());
  auto done = dump_step(*seq, cb, data, std::chrono::microseconds::max());
  if (!done) return core::Unexpected(done.error());
  return std::monostate{};
}

core::Result<uint32_t, Error> CtSocket::begin_dump() {
  const uint32_t seq = seq_++;
  nlmsghdr* nlh = put_ct_header(rx_.data(), IPCTNL_MSG_CT_GET, NLM_F_DUMP, seq);
  if (mnl_socket_sendto(sock_.get(), nlh, nlh->nlmsg_len) < 0) {
    return fail_errno(errno, "dump request");
  }
  return seq;
}

core::Result<bool, Error> CtSocket::dump_step(uint32_t seq, mnl_cb_t cb, void* data,
                                              std::chrono::microseconds budget) {
  const uint32_t portid = mnl_socket_get_portid(sock_.get());
  const auto start = std::chrono::steady_clock::now();
  for (;;) {
    const ssize_t n = mnl_socket_recvfrom(sock_.get(), rx_.data(), rx_.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return read_error(errno, "dump");
    }
    const int rc = mnl_cb_run(rx_.data(), static_cast<size_t>(n), seq, portid, cb, data);
    if (rc == MNL_CB_STOP) return true;
    if (rc < 0) return fail_errno(errno, "dump");
    if (budget != std::chrono::microseconds::max() &&
        std::chrono::steady_clock::now() - start >= budget) {
      return false;
    }
  }
}

core::Result<std::monostate, Error> CtSocket::send_acked(
    const std::vector<uint8_t>& tx, uint32_t first, size_t count,
    const std::function<void(size_t, int)>& on_ack, const std::string& what) {
  if (count == 0) return std::monostate{};
  if (mnl_socket_sendto(sock_.get(), tx.data(), tx.size()) < 0) return fail_errno(errno, what);
  std::vector<bool> acked(count, false);
  size_t pending = count;
  while (pending > 0) {
    const ssize_t n = mnl_socket_recvfrom(sock_.get(), rx_.data(), rx_.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return read_error(errno, what);
    }
    int len = static_cast<int>(n);
    for (auto* nlh = reinterpret_cast<const nlmsghdr*>(rx_.data()); mnl_nlmsg_ok(nlh, len);
         nlh = mnl_nlmsg_next(nlh, &len)) {
      if (nlh->nlmsg_type != NLMSG_ERROR || nlh->nlmsg_seq < first ||
          nlh->nlmsg_seq - first >= count) {
        continue;
      }
      if (mnl_nlmsg_get_payload_len(nlh) < sizeof(nlmsgerr)) continue;
      const size_t index = nlh->nlmsg_seq - first;
      if (acked[index]) continue;
      acked[index] = true;
      --pending;
      const auto* err = static_cast<const nlmsgerr*>(mnl_nlmsg_get_payload(nlh));
      on_ack(index, -err->error);
    }
  }
  return std::monostate{};
}

core::Unexpected<Error> CtSocket::read_error(int e, const std::string& what) const {
  if (e == EAGAIN || e == EWOULDBLOCK) {
    return fail(std::make_error_code(std::errc::timed_out),
                "conntrack: " + what + ": no answer from the kernel within " +
                    std::to_string(timeout_.count()) + " ms");
  }
  return fail_errno(e, what);
}

}  // namespace hanat::netfilter::detail
