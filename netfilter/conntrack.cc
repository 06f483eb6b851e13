// SPDX-License-Identifier: GPL-2.0-or-later
#include "netfilter/conntrack.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <libmnl/libmnl.h>
#include <linux/netfilter/nf_conntrack_common.h>
#include <linux/netfilter/nf_conntrack_tcp.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <linux/netlink.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace hanat::netfilter {

core::Result<PurgeFilter, Error> purge_filter(const NatSpec& spec) {
  PurgeFilter f;
  for (const auto& c : spec.source_cidrs) {
    auto p = parse_ipv4_prefix(c);
    if (!p) {
      return fail(std::make_error_code(std::errc::invalid_argument),
                  "nat source cidr \"" + c + "\": " + p.error());
    }
    f.sources.push_back(*p);
  }
  return f;
}

namespace {

bool in_prefix(uint32_t addr, const Ipv4Prefix& p) {
  if (p.len == 0) return true;
  const uint32_t mask = p.len >= 32 ? 0xffffffffU : ~(0xffffffffU >> p.len);
  return (addr & mask) == p.addr;
}

bool is_local(uint32_t addr, const PurgeFilter& f) {
  // 127.0.0.0/8 is local whether or not lo carries it.
  if ((addr >> 24) == 127U) return true;
  return std::find(f.local.begin(), f.local.end(), addr) != f.local.end();
}

}  // namespace

bool should_purge(const CtEntry& e, const PurgeFilter& f) {
  // Source NAT: the kernel's own mark, and its effect (the reply goes to another address).
  if (e.status && (*e.status & IPS_SRC_NAT) != 0) return false;
  if (e.reply.dst != e.orig.src) return false;
  // Forwarded only: the host's own connections (out or in, or redirected to it) never were
  // masqueraded by a forward rule and must not be disturbed.
  if (is_local(e.orig.src, f) || is_local(e.orig.dst, f) || is_local(e.reply.src, f)) {
    return false;
  }
  if (f.sources.empty()) return true;
  return std::any_of(f.sources.begin(), f.sources.end(),
                     [&](const Ipv4Prefix& p) { return in_prefix(e.orig.src, p); });
}

namespace {

std::error_code errno_code(int e) {
  return {e, std::generic_category()};
}

core::Unexpected<Error> fail_errno(int e, const std::string& what) {
  return fail(errno_code(e), "conntrack: " + what + ": " + std::strerror(e));
}

constexpr size_t kRxBufSize = 64 * 1024;
// Deletes per datagram: their ACKs (about 1 KiB of receive buffer each) must fit the
// default socket receive buffer before we read them.
constexpr size_t kDeletesPerSend = 64;

using SocketPtr = std::unique_ptr<mnl_socket, int (*)(mnl_socket*)>;

// The raw attributes that name an entry for IPCTNL_MSG_CT_DELETE, copied from the dump.
struct Victim {
  std::vector<uint8_t> attrs;
};

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

// CTA_TUPLE_* -> its IPv4 addresses and, when `flow` is given, its protocol and ports.
// An error names what is missing; "not IPv4" when the tuple carries no IPv4 addresses.
std::optional<std::string> parse_tuple(const nlattr* nest, CtTuple& out, Flow* flow = nullptr) {
  std::array<const nlattr*, CTA_MAX + 1> tuple{};
  if (mnl_attr_parse_nested(nest, attr_table_cb, tuple.data()) < 0) return "tuple unreadable";
  if (tuple[CTA_TUPLE_IP] == nullptr) return "tuple without addresses";
  std::array<const nlattr*, CTA_MAX + 1> ip{};
  if (mnl_attr_parse_nested(tuple[CTA_TUPLE_IP], attr_table_cb, ip.data()) < 0) {
    return "tuple addresses unreadable";
  }
  const nlattr* src = ip[CTA_IP_V4_SRC];
  const nlattr* dst = ip[CTA_IP_V4_DST];
  if (src == nullptr || dst == nullptr) return "not IPv4";
  if (mnl_attr_validate(src, MNL_TYPE_U32) < 0 || mnl_attr_validate(dst, MNL_TYPE_U32) < 0) {
    return "tuple IPv4 address truncated";
  }
  out.src = ntohl(mnl_attr_get_u32(src));
  out.dst = ntohl(mnl_attr_get_u32(dst));
  if (flow == nullptr) return std::nullopt;
  flow->src = out.src;
  flow->dst = out.dst;
  if (tuple[CTA_TUPLE_PROTO] == nullptr) return "tuple without protocol";
  std::array<const nlattr*, CTA_MAX + 1> proto{};
  if (mnl_attr_parse_nested(tuple[CTA_TUPLE_PROTO], attr_table_cb, proto.data()) < 0) {
    return "tuple protocol unreadable";
  }
  const nlattr* num = proto[CTA_PROTO_NUM];
  if (num == nullptr || mnl_attr_validate(num, MNL_TYPE_U8) < 0) return "tuple protocol number";
  flow->proto = mnl_attr_get_u8(num);
  // ctnetlink sends ports and the ICMP id in network byte order (nf_conntrack_proto_*.c,
  // *_tuple_to_nlattr).
  auto u16 = [&](int type, uint16_t& to) {
    const nlattr* a = proto[static_cast<size_t>(type)];
    if (a == nullptr || mnl_attr_validate(a, MNL_TYPE_U16) < 0) return false;
    to = ntohs(mnl_attr_get_u16(a));
    return true;
  };
  switch (flow->proto) {
    case IPPROTO_TCP:
    case IPPROTO_UDP:
      if (!u16(CTA_PROTO_SRC_PORT, flow->sport) || !u16(CTA_PROTO_DST_PORT, flow->dport)) {
        return "tuple ports";
      }
      break;
    case IPPROTO_ICMP:
      if (!u16(CTA_PROTO_ICMP_ID, flow->sport)) return "tuple ICMP id";
      flow->dport = 0;
      break;
    default:
      break;  // another protocol: parsed, never carried
  }
  return std::nullopt;
}

void copy_attr(const nlattr* a, std::vector<uint8_t>& to) {
  const auto* p = reinterpret_cast<const uint8_t*>(a);
  const size_t len = MNL_ALIGN(a->nla_len);
  to.insert(to.end(), p, p + len);
}

struct DumpState {
  const PurgeFilter* filter;
  PurgeResult* result;
  std::vector<Victim>* victims;
};

int on_entry(const nlmsghdr* nlh, void* data) {
  auto* st = static_cast<DumpState*>(data);
  std::array<const nlattr*, CTA_MAX + 1> tb{};
  if (mnl_attr_parse(nlh, sizeof(nfgenmsg), attr_table_cb, tb.data()) < 0) return MNL_CB_OK;
  ++st->result->seen;
  if (tb[CTA_TUPLE_ORIG] == nullptr || tb[CTA_TUPLE_REPLY] == nullptr) return MNL_CB_OK;
  CtEntry e;
  if (parse_tuple(tb[CTA_TUPLE_ORIG], e.orig) || parse_tuple(tb[CTA_TUPLE_REPLY], e.reply)) {
    return MNL_CB_OK;
  }
  if (tb[CTA_STATUS] != nullptr && mnl_attr_validate(tb[CTA_STATUS], MNL_TYPE_U32) == 0) {
    e.status = ntohl(mnl_attr_get_u32(tb[CTA_STATUS]));
  }
  if (!should_purge(e, *st->filter)) return MNL_CB_OK;
  Victim v;
  copy_attr(tb[CTA_TUPLE_ORIG], v.attrs);
  if (tb[CTA_ZONE] != nullptr) copy_attr(tb[CTA_ZONE], v.attrs);
  if (tb[CTA_ID] != nullptr) copy_attr(tb[CTA_ID], v.attrs);
  st->victims->push_back(std::move(v));
  return MNL_CB_OK;
}

std::vector<uint32_t> local_addresses_of_namespace() {
  std::vector<uint32_t> out;
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) return out;
  for (const ifaddrs* i = list; i != nullptr; i = i->ifa_next) {
    if (i->ifa_addr == nullptr || i->ifa_addr->sa_family != AF_INET) continue;
    const auto* sin = reinterpret_cast<const sockaddr_in*>(i->ifa_addr);
    out.push_back(ntohl(sin->sin_addr.s_addr));
  }
  freeifaddrs(list);
  return out;
}

class CtSocket {
 public:
  static core::Result<CtSocket, Error> open(std::chrono::milliseconds timeout) {
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

  // Dumps the IPv4 table, collecting the entries to delete.
  core::Result<std::vector<Victim>, Error> dump(const PurgeFilter& f, PurgeResult& r) {
    std::vector<Victim> victims;
    DumpState st{&f, &r, &victims};
    if (auto ok = dump(on_entry, &st); !ok) return core::Unexpected(ok.error());
    return victims;
  }

  // Dumps the IPv4 table, calling `cb` (a libmnl callback) with `data` for each entry.
  core::Result<std::monostate, Error> dump(mnl_cb_t cb, void* data) {
    const uint32_t seq = seq_++;
    nlmsghdr* nlh = put_ct_header(rx_.data(), IPCTNL_MSG_CT_GET, NLM_F_DUMP, seq);
    if (mnl_socket_sendto(sock_.get(), nlh, nlh->nlmsg_len) < 0) {
      return fail_errno(errno, "dump request");
    }
    const uint32_t portid = mnl_socket_get_portid(sock_.get());
    for (;;) {
      const ssize_t n = mnl_socket_recvfrom(sock_.get(), rx_.data(), rx_.size());
      if (n < 0) {
        if (errno == EINTR) continue;
        return read_error(errno, "dump");
      }
      const int rc = mnl_cb_run(rx_.data(), static_cast<size_t>(n), seq, portid, cb, data);
      if (rc == MNL_CB_STOP) break;
      if (rc < 0) return fail_errno(errno, "dump");
    }
    return std::monostate{};
  }

  // Deletes the victims, many per datagram; returns how many the kernel deleted.
  core::Result<uint64_t, Error> remove(const std::vector<Victim>& victims) {
    uint64_t deleted = 0;
    std::vector<uint8_t> tx;
    for (size_t begin = 0; begin < victims.size(); begin += kDeletesPerSend) {
      const size_t end = std::min(victims.size(), begin + kDeletesPerSend);
      tx.clear();
      const uint32_t first = seq_;
      for (size_t i = begin; i < end; ++i) {
        const size_t at = tx.size();
        const size_t len =
            MNL_ALIGN(sizeof(nlmsghdr)) + MNL_ALIGN(sizeof(nfgenmsg)) + victims[i].attrs.size();
        tx.resize(at + len);
        nlmsghdr* nlh = put_ct_header(tx.data() + at, IPCTNL_MSG_CT_DELETE, NLM_F_ACK, seq_++);
        std::memcpy(mnl_nlmsg_get_payload_tail(nlh), victims[i].attrs.data(),
                    victims[i].attrs.size());
        nlh->nlmsg_len += static_cast<uint32_t>(victims[i].attrs.size());
      }
      if (mnl_socket_sendto(sock_.get(), tx.data(), tx.size()) < 0) {
        return fail_errno(errno, "delete");
      }
      size_t pending = end - begin;
      while (pending > 0) {
        const ssize_t n = mnl_socket_recvfrom(sock_.get(), rx_.data(), rx_.size());
        if (n < 0) {
          if (errno == EINTR) continue;
          return read_error(errno, "delete");
        }
        int len = static_cast<int>(n);
        for (auto* nlh = reinterpret_cast<const nlmsghdr*>(rx_.data()); mnl_nlmsg_ok(nlh, len);
             nlh = mnl_nlmsg_next(nlh, &len)) {
          if (nlh->nlmsg_type != NLMSG_ERROR || nlh->nlmsg_seq < first || nlh->nlmsg_seq >= seq_)
            continue;
          if (mnl_nlmsg_get_payload_len(nlh) < sizeof(nlmsgerr)) continue;
          const auto* err = static_cast<const nlmsgerr*>(mnl_nlmsg_get_payload(nlh));
          --pending;
          // ENOENT: the entry expired, or was replaced (its id changed) since the dump.
          if (err->error == 0) {
            ++deleted;
          } else if (-err->error != ENOENT) {
            return fail_errno(-err->error, "delete");
          }
        }
      }
    }
    return deleted;
  }

 private:
  CtSocket(SocketPtr sock, std::chrono::milliseconds timeout)
      : sock_(std::move(sock)), timeout_(timeout), rx_(kRxBufSize) {}

  core::Unexpected<Error> read_error(int e, const std::string& what) const {
    if (e == EAGAIN || e == EWOULDBLOCK) {
      return fail(std::make_error_code(std::errc::timed_out),
                  "conntrack: " + what + ": no answer from the kernel within " +
                      std::to_string(timeout_.count()) + " ms");
    }
    return fail_errno(e, what);
  }

  SocketPtr sock_;
  std::chrono::milliseconds timeout_;
  std::vector<uint8_t> rx_;
  uint32_t seq_ = 1;
};

}  // namespace

core::Result<PurgeResult, Error> purge_unnatted(PurgeFilter filter,
                                                std::chrono::milliseconds timeout) {
  const auto local = local_ipv4_addresses();
  filter.local.insert(filter.local.end(), local.begin(), local.end());
  auto sock = CtSocket::open(timeout);
  if (!sock) return core::Unexpected(sock.error());
  PurgeResult r;
  auto victims = sock->dump(filter, r);
  if (!victims) return core::Unexpected(victims.error());
  auto deleted = sock->remove(*victims);
  if (!deleted) return core::Unexpected(deleted.error());
  r.purged = *deleted;
  return r;
}

// ---- Reading flows for the connection-keeping handover -------------------------------------

std::vector<uint32_t> local_ipv4_addresses() {
  return local_addresses_of_namespace();
}

core::Result<CtMessage, std::string> parse_ct_message(const void* msg, size_t len) {
  if (msg == nullptr || len < sizeof(nlmsghdr))
    return core::Unexpected<std::string>("conntrack message: truncated header");
  // Netlink messages are 4-aligned in a receive buffer; input from elsewhere (a test, the
  // fuzzer) may not be: copy it then, so no attribute is read misaligned.
  std::vector<uint32_t> aligned;
  if (reinterpret_cast<uintptr_t>(msg) % alignof(nlmsghdr) != 0) {
    aligned.resize((len + 3) / 4);
    std::memcpy(aligned.data(), msg, len);
    msg = aligned.data();
  }
  const auto* nlh = static_cast<const nlmsghdr*>(msg);
  auto bad = [](const std::string& what) {
    return core::Unexpected<std::string>("conntrack message: " + what);
  };
  if (nlh->nlmsg_len < mnl_nlmsg_size(sizeof(nfgenmsg))) return bad("shorter than its headers");
  if (nlh->nlmsg_len > len) {
    return bad("length " + std::to_string(nlh->nlmsg_len) + " beyond the " + std::to_string(len) +
               " bytes read");
  }
  if ((nlh->nlmsg_type >> 8) != NFNL_SUBSYS_CTNETLINK) {
    return bad("not ctnetlink (subsystem " + std::to_string(nlh->nlmsg_type >> 8) + ")");
  }
  CtMessage m;
  switch (nlh->nlmsg_type & 0xff) {
    case IPCTNL_MSG_CT_NEW:
      // The kernel flags the event of a newly confirmed entry NLM_F_CREATE|NLM_F_EXCL
      // (nf_conntrack_netlink.c, ctnetlink_conntrack_event); dump replies and the events
      // about later changes of state carry neither.
      m.kind = (nlh->nlmsg_flags & NLM_F_CREATE) != 0 ? CtKind::New : CtKind::Update;
      break;
    case IPCTNL_MSG_CT_DELETE:
      m.kind = CtKind::Destroy;
      break;
    default:
      return bad("type " + std::to_string(nlh->nlmsg_type & 0xff) + " is no conntrack entry");
  }
  const auto* gen = static_cast<const nfgenmsg*>(mnl_nlmsg_get_payload(nlh));
  m.family = gen->nfgen_family;
  if (m.family != AF_INET) return m;
  std::array<const nlattr*, CTA_MAX + 1> tb{};
  if (mnl_attr_parse(nlh, sizeof(nfgenmsg), attr_table_cb, tb.data()) < 0) {
    return bad("attributes unreadable");
  }
  if (tb[CTA_TUPLE_ORIG] == nullptr) return bad("no original tuple");
  if (tb[CTA_TUPLE_REPLY] == nullptr) return bad("no reply tuple");
  if (auto e = parse_tuple(tb[CTA_TUPLE_ORIG], m.entry.orig, &m.flow)) {
    return bad("original " + *e);
  }
  if (auto e = parse_tuple(tb[CTA_TUPLE_REPLY], m.entry.reply)) return bad("reply " + *e);
  if (tb[CTA_STATUS] != nullptr) {
    if (mnl_attr_validate(tb[CTA_STATUS], MNL_TYPE_U32) < 0) return bad("status truncated");
    m.entry.status = ntohl(mnl_attr_get_u32(tb[CTA_STATUS]));
  }
  if (tb[CTA_TIMEOUT] != nullptr) {
    if (mnl_attr_validate(tb[CTA_TIMEOUT], MNL_TYPE_U32) < 0) return bad("timeout truncated");
    m.flow.timeout_s = ntohl(mnl_attr_get_u32(tb[CTA_TIMEOUT]));
  }
  if (tb[CTA_ID] != nullptr) {
    if (mnl_attr_validate(tb[CTA_ID], MNL_TYPE_U32) < 0) return bad("id truncated");
    m.id = ntohl(mnl_attr_get_u32(tb[CTA_ID]));
  }
  if (tb[CTA_PROTOINFO] != nullptr && m.flow.proto == IPPROTO_TCP) {
    std::array<const nlattr*, CTA_MAX + 1> info{};
    if (mnl_attr_parse_nested(tb[CTA_PROTOINFO], attr_table_cb, info.data()) < 0) {
      return bad("protoinfo unreadable");
    }
    if (info[CTA_PROTOINFO_TCP] != nullptr) {
      std::array<const nlattr*, CTA_MAX + 1> tcp{};
      if (mnl_attr_parse_nested(info[CTA_PROTOINFO_TCP], attr_table_cb, tcp.data()) < 0) {
        return bad("TCP protoinfo unreadable");
      }
      if (tcp[CTA_PROTOINFO_TCP_STATE] != nullptr) {
        if (mnl_attr_validate(tcp[CTA_PROTOINFO_TCP_STATE], MNL_TYPE_U8) < 0) {
          return bad("TCP state truncated");
        }
        m.tcp_state = mnl_attr_get_u8(tcp[CTA_PROTOINFO_TCP_STATE]);
      }
    }
  }
  return m;
}

bool tcp_closed(const CtMessage& m) {
  return m.flow.proto == IPPROTO_TCP && m.tcp_state &&
         (*m.tcp_state == TCP_CONNTRACK_TIME_WAIT || *m.tcp_state == TCP_CONNTRACK_CLOSE);
}

core::Result<FlowFilter, Error> flow_filter(const std::vector<std::string>& cidrs) {
  FlowFilter f;
  for (const auto& c : cidrs) {
    auto p = parse_ipv4_prefix(c);
    if (!p) {
      return fail(std::make_error_code(std::errc::invalid_argument),
                  "handover source cidr \"" + c + "\": " + p.error());
    }
    f.sources.push_back(*p);
  }
  return f;
}

bool should_carry(const CtMessage& m, const FlowFilter& f) {
  if (m.family != AF_INET) return false;
  if (m.flow.proto != IPPROTO_TCP && m.flow.proto != IPPROTO_UDP && m.flow.proto != IPPROTO_ICMP) {
    return false;
  }
  // Source-NATed here: only such a flow breaks when another NAT takes its packets. A destroy
  // event carries the status too (ctnetlink_conntrack_event dumps it for every event).
  if (!m.entry.status || (*m.entry.status & IPS_SRC_NAT) == 0) return false;
  PurgeFilter locals;
  locals.local = f.local;
  const CtEntry& e = m.entry;
  if (is_local(e.orig.src, locals) || is_local(e.orig.dst, locals)) return false;
  if (f.sources.empty()) return true;
  return std::any_of(f.sources.begin(), f.sources.end(),
                     [&](const Ipv4Prefix& p) { return in_prefix(e.orig.src, p); });
}

namespace {

struct FlowDumpState {
  const FlowFilter* filter;
  size_t max;
  FlowDump* out;
};

int on_flow(const nlmsghdr* nlh, void* data) {
  auto* st = static_cast<FlowDumpState*>(data);
  auto m = parse_ct_message(nlh, nlh->nlmsg_len);
  if (!m || m->family != AF_INET) return MNL_CB_OK;
  ++st->out->seen;
  if (!should_carry(*m, *st->filter)) return MNL_CB_OK;
  if (st->out->flows.size() >= st->max) {
    ++st->out->skipped;  // read on: the reply must be consumed to its end anyway
    return MNL_CB_OK;
  }
  st->out->flows.push_back(m->flow);
  if (tcp_closed(*m)) ++st->out->closed;
  return MNL_CB_OK;
}

}  // namespace

core::Result<FlowDump, Error> dump_flows(FlowFilter filter, size_t max,
                                         std::chrono::milliseconds timeout) {
  const auto local = local_ipv4_addresses();
  filter.local.insert(filter.local.end(), local.begin(), local.end());
  auto sock = CtSocket::open(timeout);
  if (!sock) return core::Unexpected(sock.error());
  FlowDump out;
  FlowDumpState st{&filter, max, &out};
  if (auto ok = sock->dump(on_flow, &st); !ok) return core::Unexpected(ok.error());
  return out;
}

}  // namespace hanat::netfilter
