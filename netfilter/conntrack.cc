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
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "netfilter/ct_socket.h"

namespace hanat::netfilter {

using detail::attr_table_cb;
using detail::CtSocket;
using detail::fail_errno;
using detail::put_ct_header;

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

bool is_local(uint32_t addr, const std::vector<uint32_t>& local) {
  // 127.0.0.0/8 is local whether or not lo carries it.
  if ((addr >> 24) == 127U) return true;
  return std::find(local.begin(), local.end(), addr) != local.end();
}

bool is_local(uint32_t addr, const PurgeFilter& f) {
  return is_local(addr, f.local);
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

// Deletes per datagram: their ACKs (about 1 KiB of receive buffer each) must fit the
// default socket receive buffer before we read them.
constexpr size_t kDeletesPerSend = 64;

// The raw attributes that name an entry for IPCTNL_MSG_CT_DELETE, copied from the dump.
struct Victim {
  std::vector<uint8_t> attrs;
};

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

// The destination port of a reply tuple (ICMP: its echo id); 0 when absent. The reply tuple
// was already checked for addresses by parse_tuple().
uint16_t reply_port(const nlattr* nest, uint8_t proto) {
  std::array<const nlattr*, CTA_MAX + 1> tuple{};
  if (mnl_attr_parse_nested(nest, attr_table_cb, tuple.data()) < 0) return 0;
  if (tuple[CTA_TUPLE_PROTO] == nullptr) return 0;
  std::array<const nlattr*, CTA_MAX + 1> p{};
  if (mnl_attr_parse_nested(tuple[CTA_TUPLE_PROTO], attr_table_cb, p.data()) < 0) return 0;
  const nlattr* a = p[proto == IPPROTO_ICMP ? CTA_PROTO_ICMP_ID : CTA_PROTO_DST_PORT];
  if (a == nullptr || mnl_attr_validate(a, MNL_TYPE_U16) < 0) return 0;
  return ntohs(mnl_attr_get_u16(a));
}

// CTA_PROTOINFO -> CTA_PROTOINFO_TCP (nf_conntrack_proto_tcp.c, tcp_to_nlattr). An error
// names the malformed part; a protoinfo without a TCP nest is no TCP info (nullopt, no error).
std::optional<std::string> parse_tcp_info(const nlattr* nest, std::optional<TcpInfo>& out) {
  std::array<const nlattr*, CTA_MAX + 1> info{};
  if (mnl_attr_parse_nested(nest, attr_table_cb, info.data()) < 0) return "protoinfo unreadable";
  const nlattr* tcp_nest = info[CTA_PROTOINFO_TCP];
  if (tcp_nest == nullptr) return std::nullopt;
  std::array<const nlattr*, CTA_MAX + 1> tcp{};
  if (mnl_attr_parse_nested(tcp_nest, attr_table_cb, tcp.data()) < 0) {
    return "TCP protoinfo unreadable";
  }
  TcpInfo t;
  auto u8 = [&](int type, uint8_t& to) {
    const nlattr* a = tcp[static_cast<size_t>(type)];
    if (a == nullptr) return true;
    if (mnl_attr_validate(a, MNL_TYPE_U8) < 0) return false;
    to = mnl_attr_get_u8(a);
    return true;
  };
  // Flags travel as struct nf_ct_tcp_flags {flags, mask}; a dump sends mask 0.
  auto flags = [&](int type, uint8_t& to) {
    const nlattr* a = tcp[static_cast<size_t>(type)];
    if (a == nullptr) return true;
    if (mnl_attr_get_payload_len(a) < sizeof(nf_ct_tcp_flags)) return false;
    to = static_cast<const nf_ct_tcp_flags*>(mnl_attr_get_payload(a))->flags;
    return true;
  };
  if (tcp[CTA_PROTOINFO_TCP_STATE] == nullptr) return "TCP protoinfo without state";
  if (!u8(CTA_PROTOINFO_TCP_STATE, t.state)) return "TCP state truncated";
  if (t.state >= TCP_CONNTRACK_MAX) return "TCP state " + std::to_string(t.state) + " unknown";
  if (!u8(CTA_PROTOINFO_TCP_WSCALE_ORIGINAL, t.wscale_orig) ||
      !u8(CTA_PROTOINFO_TCP_WSCALE_REPLY, t.wscale_reply)) {
    return "TCP window scale truncated";
  }
  if (!flags(CTA_PROTOINFO_TCP_FLAGS_ORIGINAL, t.flags_orig) ||
      !flags(CTA_PROTOINFO_TCP_FLAGS_REPLY, t.flags_reply)) {
    return "TCP flags truncated";
  }
  out = t;
  return std::nullopt;
}

void copy_attr(const nlattr* a, std::vector<uint8_t>& to) {
  const auto* p = reinterpret_cast<const uint8_t*>(a);
  const size_t len = MNL_ALIGN(a->nla_len);
  to.insert(to.end(), p, p + len);
}

struct DumpState {
  const std::function<bool(const CtEntry&)>* select;
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
  if (!(*st->select)(e)) return MNL_CB_OK;
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

// Dumps the IPv4 table, collecting the entries `select` picks.
core::Result<std::vector<Victim>, Error> collect_victims(
    CtSocket& sock, const std::function<bool(const CtEntry&)>& select, PurgeResult& r) {
  std::vector<Victim> victims;
  DumpState st{&select, &r, &victims};
  if (auto ok = sock.dump(on_entry, &st); !ok) return core::Unexpected(ok.error());
  return victims;
}

// Deletes the victims, many per datagram; returns how many the kernel deleted.
core::Result<uint64_t, Error> remove_victims(CtSocket& sock, const std::vector<Victim>& victims) {
  uint64_t deleted = 0;
  std::vector<uint8_t> tx;
  std::vector<uint8_t> msg(MNL_SOCKET_BUFFER_SIZE);
  for (size_t begin = 0; begin < victims.size(); begin += kDeletesPerSend) {
    const size_t end = std::min(victims.size(), begin + kDeletesPerSend);
    tx.clear();
    const uint32_t first = sock.take_seq(end - begin);
    for (size_t i = begin; i < end; ++i) {
      nlmsghdr* nlh = put_ct_header(msg.data(), IPCTNL_MSG_CT_DELETE, NLM_F_ACK,
                                    first + static_cast<uint32_t>(i - begin));
      std::memcpy(mnl_nlmsg_get_payload_tail(nlh), victims[i].attrs.data(),
                  victims[i].attrs.size());
      nlh->nlmsg_len += static_cast<uint32_t>(victims[i].attrs.size());
      tx.insert(tx.end(), msg.data(), msg.data() + nlh->nlmsg_len);
    }
    int hard = 0;
    auto sent = sock.send_acked(
        tx, first, end - begin,
        [&](size_t, int error) {
          // ENOENT: the entry expired, or was replaced (its id changed) since the dump.
          if (error == 0) {
            ++deleted;
          } else if (error != ENOENT && hard == 0) {
            hard = error;
          }
        },
        "delete");
    if (!sent) return core::Unexpected(sent.error());
    if (hard != 0) return fail_errno(hard, "delete");
  }
  return deleted;
}

core::Result<PurgeResult, Error> purge_selected(const std::function<bool(const CtEntry&)>& select,
                                                std::chrono::milliseconds timeout) {
  auto sock = CtSocket::open(timeout);
  if (!sock) return core::Unexpected(sock.error());
  PurgeResult r;
  auto victims = collect_victims(*sock, select, r);
  if (!victims) return core::Unexpected(victims.error());
  auto deleted = remove_victims(*sock, *victims);
  if (!deleted) return core::Unexpected(deleted.error());
  r.purged = *deleted;
  return r;
}

}  // namespace

core::Result<PurgeResult, Error> purge_unnatted(PurgeFilter filter,
                                                std::chrono::milliseconds timeout) {
  const auto local = local_ipv4_addresses();
  filter.local.insert(filter.local.end(), local.begin(), local.end());
  return purge_selected([&filter](const CtEntry& e) { return should_purge(e, filter); }, timeout);
}

core::Result<PurgeResult, Error> purge_answering(uint32_t address,
                                                 std::chrono::milliseconds timeout) {
  return purge_selected([address](const CtEntry& e) { return e.reply.dst == address; }, timeout);
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
  m.reply_dport = reply_port(tb[CTA_TUPLE_REPLY], m.flow.proto);
  if (tb[CTA_PROTOINFO] != nullptr && m.flow.proto == IPPROTO_TCP) {
    if (auto e = parse_tcp_info(tb[CTA_PROTOINFO], m.tcp)) return bad(*e);
  }
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
  return m;
}

std::optional<ReplicatedFlow> replicated_flow(const CtMessage& m) {
  if (m.kind == CtKind::Destroy || m.family != AF_INET || !m.entry.status) return std::nullopt;
  if (m.flow.proto != IPPROTO_TCP && m.flow.proto != IPPROTO_UDP && m.flow.proto != IPPROTO_ICMP) {
    return std::nullopt;
  }
  if (m.reply_dport == 0) return std::nullopt;
  ReplicatedFlow r;
  r.flow = m.flow;
  r.public_port = m.reply_dport;
  r.status = *m.entry.status;
  if (m.flow.proto == IPPROTO_TCP) r.tcp = m.tcp;
  return r;
}

bool tcp_closed(const CtMessage& m) {
  return m.flow.proto == IPPROTO_TCP && m.tcp &&
         (m.tcp->state == TCP_CONNTRACK_TIME_WAIT || m.tcp->state == TCP_CONNTRACK_CLOSE);
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
  // Called for every conntrack event and dumped entry: the local addresses are not copied.
  const CtEntry& e = m.entry;
  if (is_local(e.orig.src, f.local) || is_local(e.orig.dst, f.local)) return false;
  if (std::find(f.not_answering.begin(), f.not_answering.end(), e.reply.dst) !=
      f.not_answering.end())
    return false;
  if (f.sources.empty()) return true;
  return std::any_of(f.sources.begin(), f.sources.end(),
                     [&](const Ipv4Prefix& p) { return in_prefix(e.orig.src, p); });
}

namespace {

// Collects what should_carry() selects, as Flow (the handover) or ReplicatedFlow (stateful
// failover), into `Out` (FlowDump or ReplicatedDump).
template <class Out>
struct FlowDumpState {
  const FlowFilter* filter;
  size_t max;
  Out* out;
};

template <class Out>
int on_flow(const nlmsghdr* nlh, void* data) {
  auto* st = static_cast<FlowDumpState<Out>*>(data);
  auto m = parse_ct_message(nlh, nlh->nlmsg_len);
  if (!m || m->family != AF_INET) return MNL_CB_OK;
  ++st->out->seen;
  if (!should_carry(*m, *st->filter)) return MNL_CB_OK;
  if (st->out->flows.size() >= st->max) {
    ++st->out->skipped;  // read on: the reply must be consumed to its end anyway
    return MNL_CB_OK;
  }
  if constexpr (std::is_same_v<Out, FlowDump>) {
    st->out->flows.push_back(m->flow);
    if (tcp_closed(*m)) ++st->out->closed;
  } else if (auto r = replicated_flow(*m)) {
    st->out->flows.push_back(*r);
  }
  return MNL_CB_OK;
}

template <class Out>
core::Result<Out, Error> dump_carried(FlowFilter filter, size_t max,
                                      std::chrono::milliseconds timeout) {
  const auto local = local_ipv4_addresses();
  filter.local.insert(filter.local.end(), local.begin(), local.end());
  auto sock = CtSocket::open(timeout);
  if (!sock) return core::Unexpected(sock.error());
  Out out;
  FlowDumpState<Out> st{&filter, max, &out};
  if (auto ok = sock->dump(on_flow<Out>, &st); !ok) return core::Unexpected(ok.error());
  return out;
}

}  // namespace

core::Result<FlowDump, Error> dump_flows(FlowFilter filter, size_t max,
                                         std::chrono::milliseconds timeout) {
  return dump_carried<FlowDump>(std::move(filter), max, timeout);
}

core::Result<ReplicatedDump, Error> dump_replicated_flows(FlowFilter filter, size_t max,
                                                          std::chrono::milliseconds timeout) {
  return dump_carried<ReplicatedDump>(std::move(filter), max, timeout);
}

struct ReplicatedDumper::Impl {
  CtSocket sock;
  FlowFilter filter;
  ReplicatedDump out;
  FlowDumpState<ReplicatedDump> st;
  uint32_t seq = 0;
  bool done = false;
};

ReplicatedDumper::ReplicatedDumper(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ReplicatedDumper::~ReplicatedDumper() = default;

core::Result<std::unique_ptr<ReplicatedDumper>, Error> ReplicatedDumper::start(
    FlowFilter filter, size_t max, std::chrono::milliseconds timeout) {
  const auto local = local_ipv4_addresses();
  filter.local.insert(filter.local.end(), local.begin(), local.end());
  auto sock = CtSocket::open(timeout);
  if (!sock) return core::Unexpected(sock.error());
  auto impl =
      std::unique_ptr<Impl>(new Impl{std::move(*sock), std::move(filter), {}, {}, 0, false});
  impl->st = FlowDumpState<ReplicatedDump>{&impl->filter, max, &impl->out};
  auto seq = impl->sock.begin_dump();
  if (!seq) return core::Unexpected(seq.error());
  impl->seq = *seq;
  return std::unique_ptr<ReplicatedDumper>(new ReplicatedDumper(std::move(impl)));
}

core::Result<bool, Error> ReplicatedDumper::step(std::chrono::microseconds budget) {
  if (impl_->done) return true;
  auto r = impl_->sock.dump_step(impl_->seq, on_flow<ReplicatedDump>, &impl_->st, budget);
  if (r && *r) impl_->done = true;
  return r;
}

ReplicatedDump& ReplicatedDumper::result() {
  return impl_->out;
}

}  // namespace hanat::netfilter
