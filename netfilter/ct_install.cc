// SPDX-License-Identifier: GPL-2.0-or-later
#include "netfilter/ct_install.h"

#include <arpa/inet.h>
#include <libmnl/libmnl.h>
#include <linux/netfilter/nf_conntrack_common.h>
#include <linux/netfilter/nf_conntrack_tcp.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <netinet/in.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <functional>
#include <set>
#include <utility>

#include "netfilter/conntrack.h"
#include "netfilter/ct_socket.h"

namespace hanat::netfilter {

using detail::CtSocket;
using detail::put_ct_header;

static_assert(kTcpFlagsCarried == (IP_CT_TCP_FLAG_WINDOW_SCALE | IP_CT_TCP_FLAG_SACK_PERM));
static_assert(kTcpFlagLiberal == IP_CT_TCP_FLAG_BE_LIBERAL);

namespace {

// Room for the largest request built here (about 240 bytes with TCP protoinfo).
constexpr size_t kMaxMessage = 512;
// Requests per datagram. Their ACKs are capped (NETLINK_CAP_ACK: 36 bytes each), so a
// datagram's worth fits the receive buffer many times over.
constexpr size_t kPerSend = 64;

void put_tuple(nlmsghdr* nlh, uint16_t type, uint8_t proto, uint32_t src, uint32_t dst,
               uint16_t sport, uint16_t dport, uint8_t icmp_type) {
  nlattr* t = mnl_attr_nest_start(nlh, type);
  nlattr* ip = mnl_attr_nest_start(nlh, CTA_TUPLE_IP);
  mnl_attr_put_u32(nlh, CTA_IP_V4_SRC, htonl(src));
  mnl_attr_put_u32(nlh, CTA_IP_V4_DST, htonl(dst));
  mnl_attr_nest_end(nlh, ip);
  nlattr* p = mnl_attr_nest_start(nlh, CTA_TUPLE_PROTO);
  mnl_attr_put_u8(nlh, CTA_PROTO_NUM, proto);
  if (proto == IPPROTO_ICMP) {
    // icmp_nlattr_to_tuple() requires id, type and code; the id travels in `sport`.
    mnl_attr_put_u16(nlh, CTA_PROTO_ICMP_ID, htons(sport));
    mnl_attr_put_u8(nlh, CTA_PROTO_ICMP_TYPE, icmp_type);
    mnl_attr_put_u8(nlh, CTA_PROTO_ICMP_CODE, 0);
  } else {
    mnl_attr_put_u16(nlh, CTA_PROTO_SRC_PORT, htons(sport));
    mnl_attr_put_u16(nlh, CTA_PROTO_DST_PORT, htons(dport));
  }
  mnl_attr_nest_end(nlh, p);
  mnl_attr_nest_end(nlh, t);
}

void put_orig_tuple(nlmsghdr* nlh, const Flow& f) {
  put_tuple(nlh, CTA_TUPLE_ORIG, f.proto, f.src, f.dst, f.sport, f.dport, 8 /* echo request */);
}

void put_tcp_flags(nlmsghdr* nlh, uint16_t type, uint8_t flags) {
  nf_ct_tcp_flags v{};
  v.flags = static_cast<uint8_t>((flags & kTcpFlagsCarried) | kTcpFlagLiberal);
  v.mask = kTcpFlagsCarried | kTcpFlagLiberal;
  mnl_attr_put(nlh, type, sizeof v, &v);
}

void append(std::vector<uint8_t>& out, const nlmsghdr* nlh) {
  const auto* p = reinterpret_cast<const uint8_t*>(nlh);
  out.insert(out.end(), p, p + nlh->nlmsg_len);
}

}  // namespace

UsedTuple used_tuple(const ReplicatedFlow& f) {
  return UsedTuple{f.flow.proto, f.public_port, f.flow.dst,
                   f.flow.proto == IPPROTO_ICMP ? uint16_t{0} : f.flow.dport};
}

std::optional<std::string> install_problem(const ReplicatedFlow& f) {
  switch (f.flow.proto) {
    case IPPROTO_TCP:
      if (!f.tcp) return "TCP flow without TCP state";
      if (f.tcp->state >= TCP_CONNTRACK_MAX) {
        return "TCP state " + std::to_string(f.tcp->state) + " unknown";
      }
      break;
    case IPPROTO_UDP:
    case IPPROTO_ICMP:
      break;
    default:
      return "protocol " + std::to_string(f.flow.proto) + " is not TCP, UDP or ICMP";
  }
  if (f.public_port == 0) return "no public port";
  return std::nullopt;
}

void append_install_message(std::vector<uint8_t>& out, const ReplicatedFlow& f,
                            uint32_t public_addr, uint32_t seq) {
  alignas(nlmsghdr) std::array<uint8_t, kMaxMessage> buf{};
  nlmsghdr* nlh =
      put_ct_header(buf.data(), IPCTNL_MSG_CT_NEW, NLM_F_CREATE | NLM_F_EXCL | NLM_F_ACK, seq);
  const Flow& o = f.flow;
  put_orig_tuple(nlh, o);
  // The reply tuple as it would be without NAT (server -> private host), not the translated
  // one: nf_nat_setup_info() computes the binding from the inverse of the reply tuple it is
  // given, and when that already equals the requested translation it sees nothing to do,
  // sets no IPS_SRC_NAT, and packets then pass the entry untranslated (seen on Linux 6.18:
  // the server received the private source). From the un-NATed tuple the binding rewrites
  // the reply to server -> public address : public port itself (nf_conntrack_alter_reply).
  put_tuple(nlh, CTA_TUPLE_REPLY, o.proto, o.dst, o.src,
            o.proto == IPPROTO_ICMP ? o.sport : o.dport, o.sport, 0 /* echo reply */);
  nlattr* nat = mnl_attr_nest_start(nlh, CTA_NAT_SRC);
  mnl_attr_put_u32(nlh, CTA_NAT_V4_MINIP, htonl(public_addr));
  mnl_attr_put_u32(nlh, CTA_NAT_V4_MAXIP, htonl(public_addr));
  nlattr* natp = mnl_attr_nest_start(nlh, CTA_NAT_PROTO);
  mnl_attr_put_u16(nlh, CTA_PROTONAT_PORT_MIN, htons(f.public_port));
  mnl_attr_put_u16(nlh, CTA_PROTONAT_PORT_MAX, htons(f.public_port));
  mnl_attr_nest_end(nlh, natp);
  mnl_attr_nest_end(nlh, nat);
  const uint32_t status = IPS_CONFIRMED | (f.status & (IPS_SEEN_REPLY | IPS_ASSURED));
  mnl_attr_put_u32(nlh, CTA_STATUS, htonl(status));
  // Bounded (kInstallTimeoutMaxS): a dead connection's entry goes within minutes, a live
  // one's next packet gives it the kernel's full timeout again.
  mnl_attr_put_u32(nlh, CTA_TIMEOUT,
                   htonl(std::clamp<uint32_t>(f.flow.timeout_s, 1, kInstallTimeoutMaxS)));
  if (o.proto == IPPROTO_TCP && f.tcp) {
    nlattr* info = mnl_attr_nest_start(nlh, CTA_PROTOINFO);
    nlattr* tcp = mnl_attr_nest_start(nlh, CTA_PROTOINFO_TCP);
    mnl_attr_put_u8(nlh, CTA_PROTOINFO_TCP_STATE, f.tcp->state);
    // nlattr_to_tcp() applies the flags before it reads the scales, and takes the scales
    // only when both directions have IP_CT_TCP_FLAG_WINDOW_SCALE.
    put_tcp_flags(nlh, CTA_PROTOINFO_TCP_FLAGS_ORIGINAL, f.tcp->flags_orig);
    put_tcp_flags(nlh, CTA_PROTOINFO_TCP_FLAGS_REPLY, f.tcp->flags_reply);
    mnl_attr_put_u8(nlh, CTA_PROTOINFO_TCP_WSCALE_ORIGINAL, f.tcp->wscale_orig);
    mnl_attr_put_u8(nlh, CTA_PROTOINFO_TCP_WSCALE_REPLY, f.tcp->wscale_reply);
    mnl_attr_nest_end(nlh, tcp);
    mnl_attr_nest_end(nlh, info);
  }
  append(out, nlh);
}

void append_remove_message(std::vector<uint8_t>& out, const ReplicatedFlow& f, uint32_t seq) {
  alignas(nlmsghdr) std::array<uint8_t, kMaxMessage> buf{};
  nlmsghdr* nlh = put_ct_header(buf.data(), IPCTNL_MSG_CT_DELETE, NLM_F_ACK, seq);
  put_orig_tuple(nlh, f.flow);
  append(out, nlh);
}

namespace {

struct UsedPorts {
  uint32_t public_addr = 0;
  PortSet used;  // reply tuples answering to public_addr
};

int on_used(const nlmsghdr* nlh, void* data) {
  auto* st = static_cast<UsedPorts*>(data);
  auto m = parse_ct_message(nlh, nlh->nlmsg_len);
  if (!m || m->family != AF_INET || m->entry.reply.dst != st->public_addr) return MNL_CB_OK;
  // The far end is the reply's source: the original destination for an outbound flow
  // (neither a masqueraded flow nor this host's own connection is destination-NATed).
  if (m->reply_dport != 0) {
    st->used.insert(UsedTuple{m->flow.proto, m->reply_dport, m->entry.reply.src,
                              m->flow.proto == IPPROTO_ICMP ? uint16_t{0} : m->flow.dport});
  }
  return MNL_CB_OK;
}

}  // namespace

core::Result<PortSet, Error> own_ports(uint32_t public_addr, std::chrono::milliseconds timeout) {
  auto sock = CtSocket::open(timeout);
  if (!sock) return core::Unexpected(sock.error());
  UsedPorts ports{public_addr, {}};
  if (auto ok = sock->dump(on_used, &ports); !ok) return core::Unexpected(ok.error());
  return std::move(ports.used);
}

core::Result<InstallReport, Error> install_flows(const std::vector<ReplicatedFlow>& flows,
                                                 uint32_t public_addr,
                                                 std::chrono::milliseconds timeout) {
  auto used = own_ports(public_addr, timeout);
  if (!used) return core::Unexpected(used.error());
  return install_flows(flows, public_addr, *used, timeout);
}

core::Result<InstallReport, Error> install_flows(const std::vector<ReplicatedFlow>& flows,
                                                 uint32_t public_addr, const PortSet& used,
                                                 std::chrono::milliseconds timeout) {
  auto sock = CtSocket::open(timeout);
  if (!sock) return core::Unexpected(sock.error());

  InstallReport r;
  r.flows.resize(flows.size());
  std::vector<size_t> todo;
  for (size_t i = 0; i < flows.size(); ++i) {
    const ReplicatedFlow& f = flows[i];
    if (install_problem(f)) {
      r.flows[i] = {InstallOutcome::Failed, EINVAL};
    } else if (used.count(used_tuple(f)) != 0) {
      r.flows[i] = {InstallOutcome::Collided, 0};
    } else {
      todo.push_back(i);
    }
  }
  std::vector<uint8_t> tx;
  for (size_t begin = 0; begin < todo.size(); begin += kPerSend) {
    const size_t end = std::min(todo.size(), begin + kPerSend);
    const uint32_t first = sock->take_seq(end - begin);
    tx.clear();
    for (size_t k = begin; k < end; ++k) {
      append_install_message(tx, flows[todo[k]], public_addr,
                             first + static_cast<uint32_t>(k - begin));
    }
    auto sent = sock->send_acked(
        tx, first, end - begin,
        [&](size_t index, int error) {
          FlowInstall& out = r.flows[todo[begin + index]];
          if (error == 0) {
            out = {InstallOutcome::Installed, 0};
          } else if (error == EEXIST) {
            out = {InstallOutcome::Collided, EEXIST};
          } else {
            out = {InstallOutcome::Failed, error};
          }
        },
        "install");
    if (!sent) return core::Unexpected(sent.error());
  }
  for (const auto& f : r.flows) {
    switch (f.outcome) {
      case InstallOutcome::Installed:
        ++r.installed;
        break;
      case InstallOutcome::Collided:
        ++r.collided;
        break;
      case InstallOutcome::Failed:
        ++r.failed;
        break;
    }
  }
  return r;
}

namespace {

struct Overlong {
  uint32_t max_s = 0;
  std::vector<Flow> flows;
};

int on_overlong(const nlmsghdr* nlh, void* data) {
  auto* st = static_cast<Overlong*>(data);
  auto m = parse_ct_message(nlh, nlh->nlmsg_len);
  if (!m || m->family != AF_INET || m->flow.proto != IPPROTO_TCP) return MNL_CB_OK;
  if (!m->entry.status || (*m->entry.status & IPS_SRC_NAT) == 0) return MNL_CB_OK;
  if (!m->tcp || m->tcp->state != TCP_CONNTRACK_ESTABLISHED) return MNL_CB_OK;
  if (m->flow.timeout_s > st->max_s) st->flows.push_back(m->flow);
  return MNL_CB_OK;
}

// One request per item (`append_one(tx, i, seq)`), kPerSend per datagram; returns how many
// the kernel ACKed. ENOENT is not an error: the entry ended since it was chosen.
core::Result<uint64_t, Error> send_each(
    CtSocket& sock, size_t n,
    const std::function<void(std::vector<uint8_t>&, size_t, uint32_t)>& append_one,
    const char* what) {
  uint64_t done = 0;
  int hard = 0;
  std::vector<uint8_t> tx;
  for (size_t begin = 0; begin < n; begin += kPerSend) {
    const size_t end = std::min(n, begin + kPerSend);
    const uint32_t first = sock.take_seq(end - begin);
    tx.clear();
    for (size_t i = begin; i < end; ++i)
      append_one(tx, i, first + static_cast<uint32_t>(i - begin));
    auto sent = sock.send_acked(
        tx, first, end - begin,
        [&](size_t, int error) {
          if (error == 0) {
            ++done;
          } else if (error != ENOENT && hard == 0) {
            hard = error;
          }
        },
        what);
    if (!sent) return core::Unexpected(sent.error());
  }
  if (hard != 0) return detail::fail_errno(hard, what);
  return done;
}

}  // namespace

core::Result<uint64_t, Error> bound_timeouts(uint32_t max_s, std::chrono::milliseconds timeout) {
  auto sock = CtSocket::open(timeout);
  if (!sock) return core::Unexpected(sock.error());
  Overlong found{max_s, {}};
  if (auto ok = sock->dump(on_overlong, &found); !ok) return core::Unexpected(ok.error());
  return send_each(
      *sock, found.flows.size(),
      [&](std::vector<uint8_t>& tx, size_t i, uint32_t seq) {
        // Without NLM_F_CREATE an existing entry is changed (ctnetlink_new_conntrack ->
        // ctnetlink_change_conntrack -> ctnetlink_change_timeout), never created.
        alignas(nlmsghdr) std::array<uint8_t, kMaxMessage> buf{};
        nlmsghdr* nlh = put_ct_header(buf.data(), IPCTNL_MSG_CT_NEW, NLM_F_ACK, seq);
        put_orig_tuple(nlh, found.flows[i]);
        mnl_attr_put_u32(nlh, CTA_TIMEOUT, htonl(max_s));
        append(tx, nlh);
      },
      "bound timeout");
}

core::Result<uint64_t, Error> remove_flows(const std::vector<ReplicatedFlow>& flows,
                                           std::chrono::milliseconds timeout) {
  auto sock = CtSocket::open(timeout);
  if (!sock) return core::Unexpected(sock.error());
  return send_each(
      *sock, flows.size(),
      [&](std::vector<uint8_t>& tx, size_t i, uint32_t seq) {
        append_remove_message(tx, flows[i], seq);
      },
      "remove");
}

}  // namespace hanat::netfilter
