// SPDX-License-Identifier: GPL-2.0-or-later
#include "netfilter/steer.h"

// <net/if.h> before the kernel headers: linux/libc-compat.h then leaves the IFF_* flags to
// glibc instead of declaring them twice.
#include <net/if.h>

#include <arpa/inet.h>
#include <libmnl/libmnl.h>
#include <libnftnl/table.h>
#include <linux/fib_rules.h>
#include <linux/if_link.h>
#include <linux/neighbour.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "core/base/ipv4.h"
#include "netfilter/sysctl.h"

namespace hanat::netfilter {

namespace {

// One netlink socket (NETLINK_ROUTE or NETLINK_NETFILTER) for requests that are answered by an
// ACK or a dump. Sequence numbers are per socket; answers to other numbers are skipped.
class Socket {
 public:
  static core::Result<Socket, Error> open(int bus, std::chrono::milliseconds timeout,
                                          const std::string& what) {
    Socket s;
    s.sock_ = mnl_socket_open2(bus, SOCK_CLOEXEC);
    if (s.sock_ == nullptr) {
      const int e = errno;
      return fail(errno_code(e), what + " socket: " + std::strerror(e));
    }
    if (mnl_socket_bind(s.sock_, 0, MNL_SOCKET_AUTOPID) < 0) {
      const int e = errno;
      return fail(errno_code(e), what + " socket: bind: " + std::strerror(e));
    }
    timeval tv{};
    tv.tv_sec = static_cast<time_t>(timeout.count() / 1000);
    tv.tv_usec = static_cast<suseconds_t>((timeout.count() % 1000) * 1000);
    if (setsockopt(mnl_socket_get_fd(s.sock_), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) < 0) {
      const int e = errno;
      return fail(errno_code(e), what + " socket: SO_RCVTIMEO: " + std::strerror(e));
    }
    s.portid_ = mnl_socket_get_portid(s.sock_);
    return s;
  }
  Socket() = default;
  Socket(Socket&& o) noexcept : sock_(o.sock_), portid_(o.portid_), seq_(o.seq_) {
    o.sock_ = nullptr;
  }
  Socket& operator=(Socket&&) = delete;
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;
  ~Socket() {
    if (sock_ != nullptr) mnl_socket_close(sock_);
  }

  uint32_t next_seq() { return seq_++; }

  // Sends a request and feeds every answer with its number to on_msg until the ACK or the
  // end of the dump. Returns 0 or a negative errno (-ETIMEDOUT when the kernel is silent).
  template <class OnMsg>
  int request(const nlmsghdr* nlh, OnMsg on_msg) {
    if (mnl_socket_sendto(sock_, nlh, nlh->nlmsg_len) < 0) return -errno;
    const uint32_t seq = nlh->nlmsg_seq;
    std::vector<uint8_t> buf(32 * 1024);  // a dump skb is at most 32 KiB for this size
    for (;;) {
      const ssize_t n = mnl_socket_recvfrom(sock_, buf.data(), buf.size());
      if (n < 0) {
        if (errno == EINTR) continue;
        return errno == EAGAIN || errno == EWOULDBLOCK ? -ETIMEDOUT : -errno;
      }
      int len = static_cast<int>(n);
      for (auto* m = reinterpret_cast<const nlmsghdr*>(buf.data()); mnl_nlmsg_ok(m, len);
           m = mnl_nlmsg_next(m, &len)) {
        if (m->nlmsg_seq != seq) continue;
        if (m->nlmsg_pid != 0 && m->nlmsg_pid != portid_) continue;
        if (m->nlmsg_type == NLMSG_DONE) return 0;
        if (m->nlmsg_type == NLMSG_ERROR) {
          if (mnl_nlmsg_get_payload_len(m) < sizeof(nlmsgerr)) return -EBADMSG;
          return static_cast<const nlmsgerr*>(mnl_nlmsg_get_payload(m))->error;
        }
        if ((m->nlmsg_flags & NLM_F_DUMP_INTR) != 0) return -EINTR;
        on_msg(m);
      }
    }
  }
  int ack(const nlmsghdr* nlh) {
    return request(nlh, [](const nlmsghdr*) {});
  }

 private:
  mnl_socket* sock_ = nullptr;
  uint32_t portid_ = 0;
  uint32_t seq_ = 1;
};

struct Msg {
  std::vector<uint8_t> buf = std::vector<uint8_t>(MNL_SOCKET_BUFFER_SIZE);
  nlmsghdr* nlh = nullptr;
  Msg(Socket& s, uint16_t type, uint16_t flags) {
    nlh = mnl_nlmsg_put_header(buf.data());
    nlh->nlmsg_type = type;
    nlh->nlmsg_flags = static_cast<uint16_t>(NLM_F_REQUEST | flags);
    nlh->nlmsg_seq = s.next_seq();
  }
};

core::Result<Socket, Error> rtnl_open() {
  return Socket::open(NETLINK_ROUTE, std::chrono::milliseconds(1000), "rtnetlink");
}

Error err(int neg_errno, const std::string& what) {
  const int e = neg_errno < 0 ? -neg_errno : neg_errno;
  return Error{errno_code(e), what + ": " + std::strerror(e)};
}

// The tunnel device's MAC address, derived from the member's own private address so the
// other side of the pair knows it without asking: 02:68 (locally administered, unicast) and
// the four address bytes.
std::array<uint8_t, 6> tunnel_mac(uint32_t addr) {
  return {0x02,
          0x68,
          static_cast<uint8_t>(addr >> 24),
          static_cast<uint8_t>(addr >> 16),
          static_cast<uint8_t>(addr >> 8),
          static_cast<uint8_t>(addr)};
}

// ip link add <name> address <mac(local)> [mtu <mtu>] type vxlan id <vni> local <local>
//   remote <peer> dstport <port> nolearning ttl 64 up
// Without a lower device the kernel gives a VXLAN device an MTU of 1500 (ETH_DATA_LEN): what
// a flow to the internet carries, and 1550 bytes outside, well within the VPC's 9001.
// nolearning: the one remote is fixed, the forwarding database needs no source learning.
int create_vxlan(Socket& s, const std::string& name, const SteerTunnel& t) {
  Msg m(s, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL | NLM_F_ACK);
  auto* ifm = static_cast<ifinfomsg*>(mnl_nlmsg_put_extra_header(m.nlh, sizeof(ifinfomsg)));
  ifm->ifi_family = AF_UNSPEC;
  ifm->ifi_flags = IFF_UP;
  ifm->ifi_change = IFF_UP;
  mnl_attr_put_strz(m.nlh, IFLA_IFNAME, name.c_str());
  const auto mac = tunnel_mac(t.local);
  mnl_attr_put(m.nlh, IFLA_ADDRESS, mac.size(), mac.data());
  if (t.mtu != 0) mnl_attr_put_u32(m.nlh, IFLA_MTU, t.mtu);
  nlattr* info = mnl_attr_nest_start(m.nlh, IFLA_LINKINFO);
  mnl_attr_put_strz(m.nlh, IFLA_INFO_KIND, "vxlan");
  nlattr* data = mnl_attr_nest_start(m.nlh, IFLA_INFO_DATA);
  mnl_attr_put_u32(m.nlh, IFLA_VXLAN_ID, steer_vni(t.local, t.peer));
  mnl_attr_put_u32(m.nlh, IFLA_VXLAN_LOCAL, htonl(t.local));
  mnl_attr_put_u32(m.nlh, IFLA_VXLAN_GROUP, htonl(t.peer));  // a unicast "group": the remote
  mnl_attr_put_u16(m.nlh, IFLA_VXLAN_PORT, htons(t.port));
  mnl_attr_put_u8(m.nlh, IFLA_VXLAN_LEARNING, 0);
  mnl_attr_put_u8(m.nlh, IFLA_VXLAN_TTL, 64);
  mnl_attr_nest_end(m.nlh, data);
  mnl_attr_nest_end(m.nlh, info);
  return s.ack(m.nlh);
}

// ip neigh replace <peer> lladdr <mac(peer)> dev <link> nud permanent: the route below uses
// the peer's private address as its on-link gateway, so the kernel never resolves it (no ARP
// over the tunnel) and frames carry the MAC the peer's device has.
int peer_neighbour(Socket& s, const SteerSpec& spec, uint32_t ifindex) {
  Msg m(s, RTM_NEWNEIGH, NLM_F_CREATE | NLM_F_REPLACE | NLM_F_ACK);
  auto* ndm = static_cast<ndmsg*>(mnl_nlmsg_put_extra_header(m.nlh, sizeof(ndmsg)));
  ndm->ndm_family = AF_INET;
  ndm->ndm_ifindex = static_cast<int>(ifindex);
  ndm->ndm_state = NUD_PERMANENT;
  mnl_attr_put_u32(m.nlh, NDA_DST, htonl(spec.peer));
  const auto mac = tunnel_mac(spec.peer);
  mnl_attr_put(m.nlh, NDA_LLADDR, mac.size(), mac.data());
  return s.ack(m.nlh);
}

int delete_link(Socket& s, const std::string& name) {
  Msg m(s, RTM_DELLINK, NLM_F_ACK);
  auto* ifm = static_cast<ifinfomsg*>(mnl_nlmsg_put_extra_header(m.nlh, sizeof(ifinfomsg)));
  ifm->ifi_family = AF_UNSPEC;
  mnl_attr_put_strz(m.nlh, IFLA_IFNAME, name.c_str());
  const int rc = s.ack(m.nlh);
  return rc == -ENODEV ? 0 : rc;
}

// ip rule add/del fwmark <mark>/0xffffffff lookup <table> priority <prio> protocol 245
int rule(Socket& s, bool add, const SteerSpec& spec) {
  Msg m(s, add ? RTM_NEWRULE : RTM_DELRULE,
        add ? NLM_F_CREATE | NLM_F_EXCL | NLM_F_ACK : NLM_F_ACK);
  auto* frh = static_cast<fib_rule_hdr*>(mnl_nlmsg_put_extra_header(m.nlh, sizeof(fib_rule_hdr)));
  frh->family = AF_INET;
  frh->action = FR_ACT_TO_TBL;
  frh->table = spec.route_table < 256 ? static_cast<uint8_t>(spec.route_table)
                                      : static_cast<uint8_t>(RT_TABLE_UNSPEC);
  mnl_attr_put_u32(m.nlh, FRA_TABLE, spec.route_table);
  mnl_attr_put_u32(m.nlh, FRA_FWMARK, spec.mark);
  mnl_attr_put_u32(m.nlh, FRA_FWMASK, 0xffffffffU);
  mnl_attr_put_u32(m.nlh, FRA_PRIORITY, spec.rule_priority);
  if (add) mnl_attr_put_u8(m.nlh, FRA_PROTOCOL, kSteerRouteProto);
  const int rc = s.ack(m.nlh);
  return !add && rc == -ENOENT ? 0 : rc;
}

// ip route replace default via <peer> dev <link> onlink table <table> proto 245
int default_route(Socket& s, const SteerSpec& spec, uint32_t ifindex) {
  Msg m(s, RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE | NLM_F_ACK);
  auto* rtm = static_cast<rtmsg*>(mnl_nlmsg_put_extra_header(m.nlh, sizeof(rtmsg)));
  rtm->rtm_family = AF_INET;
  rtm->rtm_dst_len = 0;
  rtm->rtm_table = spec.route_table < 256 ? static_cast<uint8_t>(spec.route_table)
                                          : static_cast<uint8_t>(RT_TABLE_UNSPEC);
  rtm->rtm_protocol = kSteerRouteProto;
  rtm->rtm_scope = RT_SCOPE_UNIVERSE;
  rtm->rtm_type = RTN_UNICAST;
  rtm->rtm_flags = RTNH_F_ONLINK;
  mnl_attr_put_u32(m.nlh, RTA_TABLE, spec.route_table);
  mnl_attr_put_u32(m.nlh, RTA_GATEWAY, htonl(spec.peer));
  mnl_attr_put_u32(m.nlh, RTA_OIF, ifindex);
  return s.ack(m.nlh);
}

// The tunnel device of a pair, fresh: an old one (same name, or a crash's leftover) is
// deleted first, because the kernel refuses a second VXLAN device with the same VNI and port.
Status make_tunnel(Socket& s, const SteerTunnel& t) {
  const std::string name = steer_link_name(t.peer);
  const std::string what = "tunnel " + name + " to peer " + core::ipv4_text(t.peer);
  if (const int rc = delete_link(s, name); rc < 0) return core::Unexpected(err(rc, what));
  if (const int rc = create_vxlan(s, name, t); rc < 0) {
    if (rc == -EOPNOTSUPP) {
      return fail(errno_code(EOPNOTSUPP),
                  what + ": the kernel has no VXLAN support (module vxlan, CONFIG_VXLAN)");
    }
    return core::Unexpected(err(rc, what));
  }
  // No reverse-path filtering on the tunnel: see steer.h (a device without an IPv4 address
  // fails any rp_filter check).
  if (auto w = Sysctl().write("net.ipv4.conf." + name + ".rp_filter", "0"); !w) {
    (void)delete_link(s, name);
    return core::Unexpected(w.error());
  }
  return ok();
}

Status checked(int rc, const std::string& what) {
  if (rc < 0) return core::Unexpected(err(rc, what));
  return ok();
}

bool is_steer_link_name(const char* name) {
  const std::string_view n(name);
  if (n.size() != kSteerLinkPrefix.size() + 8 || !n.starts_with(kSteerLinkPrefix)) return false;
  return n.substr(kSteerLinkPrefix.size()).find_first_not_of("0123456789abcdef") ==
         std::string_view::npos;
}

// The IFLA_INFO_KIND of a link message, or "".
std::string link_kind(const nlmsghdr* nlh) {
  std::string kind;
  mnl_attr_parse(
      nlh, sizeof(ifinfomsg),
      [](const nlattr* a, void* d) -> int {
        if (mnl_attr_get_type(a) != IFLA_LINKINFO) return MNL_CB_OK;
        mnl_attr_parse_nested(
            a,
            [](const nlattr* b, void* d2) -> int {
              if (mnl_attr_get_type(b) == IFLA_INFO_KIND &&
                  mnl_attr_validate(b, MNL_TYPE_STRING) == 0) {
                *static_cast<std::string*>(d2) =
                    std::string(static_cast<const char*>(mnl_attr_get_payload(b)),
                                strnlen(static_cast<const char*>(mnl_attr_get_payload(b)),
                                        mnl_attr_get_payload_len(b)));
              }
              return MNL_CB_OK;
            },
            d);
        return MNL_CB_OK;
      },
      &kind);
  return kind;
}

}  // namespace

core::Result<Steering, Error> Steering::open(std::chrono::milliseconds timeout) {
  auto nft = Netlink::open(timeout);
  if (!nft) return core::Unexpected(nft.error());
  return Steering(std::move(*nft));
}

Status Steering::commit(core::Result<Batch, Error> batch) {
  if (!batch) return core::Unexpected(batch.error());
  return nft_.commit(*batch);
}

Status Steering::install(const SteerSpec& spec) {
  if (auto v = validate(spec); !v) return v;
  auto table = build_steer_table(spec, nft_.next_seq());
  if (!table) return core::Unexpected(table.error());
  auto s = rtnl_open();
  if (!s) return core::Unexpected(s.error());
  const std::string peer = "steering to peer " + core::ipv4_text(spec.peer);
  // Whatever an earlier install for this peer left goes first (rule before link: a rule
  // pointing at a table without a route would send marked packets to main's default).
  if (auto r = checked(rule(*s, false, spec), peer + ": deleting old rule"); !r) return r;
  if (auto t = make_tunnel(*s, {spec.local, spec.peer, spec.mtu, spec.port}); !t) return t;
  auto undo = [&] {
    (void)rule(*s, false, spec);
    (void)delete_link(*s, steer_link_name(spec.peer));
    if (auto rm = build_removal(steer_table_name(spec.peer), nft_.next_seq())) {
      (void)nft_.commit(*rm);
    }
  };
  const std::string link = steer_link_name(spec.peer);
  const unsigned ifindex = if_nametoindex(link.c_str());
  Status st = ok();
  if (ifindex == 0) {
    st = fail(errno_code(ENODEV), peer + ": tunnel " + link + " vanished after creation");
  }
  // The table first, then the route, then the rule: a mark with no rule yet is harmless
  // (the packet follows main), a rule is added only once its route exists.
  if (st) st = nft_.commit(*table);
  if (st) {
    st = checked(peer_neighbour(*s, spec, ifindex), peer + ": neighbour entry on " + link);
  }
  if (st) {
    st = checked(
        default_route(*s, spec, ifindex),
        peer + ": default route via " + link + " in table " + std::to_string(spec.route_table));
  }
  if (st) {
    st = checked(rule(*s, true, spec), peer + ": rule fwmark " + std::to_string(spec.mark) +
                                           " lookup " + std::to_string(spec.route_table));
  }
  if (!st) {
    undo();
    return st;
  }
  if (catching_ == spec.peer) catching_.reset();  // the new table's catch chain is empty
  specs_[spec.peer] = spec;
  return ok();
}

core::Result<size_t, Error> Steering::add_flows(uint32_t peer, std::span<const Flow> flows) {
  const auto it = specs_.find(peer);
  if (it == specs_.end()) {
    return fail(std::make_error_code(std::errc::invalid_argument),
                "steering to peer " + core::ipv4_text(peer) + ": not installed");
  }
  auto b = build_flow_add(it->second, flows, nft_.next_seq());
  if (!b) return core::Unexpected(b.error());
  if (b->elements == 0) return size_t{0};
  if (auto c = nft_.commit(b->batch); !c) {
    // The kernel answers ENFILE when the set is at its size (nft_add_set_elem).
    if (c.error().code == std::errc::too_many_files_open_in_system) {
      return fail(c.error().code, "steering to peer " + core::ipv4_text(peer) +
                                      ": flow set full (" + "max_flows " +
                                      std::to_string(it->second.max_flows) + ")");
    }
    return core::Unexpected(c.error());
  }
  return b->elements;
}

Status Steering::remove_flows(uint32_t peer, std::span<const Flow> flows) {
  const auto it = specs_.find(peer);
  if (it == specs_.end()) return ok();  // nothing steered to it, so nothing to remove
  auto b = build_flow_remove(it->second, flows, nft_.next_seq());
  if (!b) return core::Unexpected(b.error());
  if (b->elements == 0) return ok();
  return nft_.commit(b->batch);
}

Status Steering::set_catch_unknown_tcp(std::optional<uint32_t> peer) {
  if (peer && !specs_.contains(*peer)) {
    return fail(std::make_error_code(std::errc::invalid_argument),
                "steering to peer " + core::ipv4_text(*peer) + ": not installed");
  }
  if (catching_ && catching_ != peer && specs_.contains(*catching_)) {
    if (auto c = commit(build_catch_unknown(specs_.at(*catching_), false, nft_.next_seq())); !c) {
      return c;
    }
    catching_.reset();
  }
  if (peer) {
    if (auto c = commit(build_catch_unknown(specs_.at(*peer), true, nft_.next_seq())); !c) {
      return c;
    }
  }
  catching_ = peer;
  return ok();
}

Status Steering::remove(uint32_t peer) {
  SteerSpec spec;
  if (const auto it = specs_.find(peer); it != specs_.end()) spec = it->second;
  auto s = rtnl_open();
  if (!s) return core::Unexpected(s.error());
  const std::string who = "steering to peer " + core::ipv4_text(peer);
  // The rule is known only when installed by this process; after a restart the start-up
  // cleanup removes rules by protocol.
  if (spec.peer != 0) {
    if (auto r = checked(rule(*s, false, spec), who + ": deleting rule"); !r) return r;
  }
  if (auto t = commit(build_removal(steer_table_name(peer), nft_.next_seq())); !t) return t;
  // Deleting the device deletes the routes through it (fib_disable_ip on NETDEV_UNREGISTER).
  if (auto l = checked(delete_link(*s, steer_link_name(peer)), who + ": deleting tunnel"); !l) {
    return l;
  }
  specs_.erase(peer);
  if (catching_ == peer) catching_.reset();
  return ok();
}

Status accept_steered(const SteerTunnel& tunnel) {
  if (tunnel.peer == 0 || tunnel.local == 0 || tunnel.local == tunnel.peer || tunnel.port == 0) {
    return fail(std::make_error_code(std::errc::invalid_argument),
                "accepting steered flows: local " + core::ipv4_text(tunnel.local) + ", peer " +
                    core::ipv4_text(tunnel.peer) + ", port " + std::to_string(tunnel.port) +
                    ": not a pair of addresses and a port");
  }
  // The kernel applies the larger of conf.all.rp_filter and conf.<dev>.rp_filter, so a
  // non-zero conf.all would drop every steered packet however the device is set.
  auto all = Sysctl().read("net.ipv4.conf.all.rp_filter");
  if (!all) return core::Unexpected(all.error());
  if (*all != "0") {
    return fail(std::make_error_code(std::errc::operation_not_permitted),
                "accepting steered flows from " + core::ipv4_text(tunnel.peer) +
                    ": net.ipv4.conf.all.rp_filter is " + *all +
                    ", which drops every packet arriving on the tunnel (it has no IPv4 "
                    "address); set it to 0 and filter per interface (conf.<if>.rp_filter)");
  }
  auto s = rtnl_open();
  if (!s) return core::Unexpected(s.error());
  return make_tunnel(*s, tunnel);
}

Status stop_accepting(uint32_t peer) {
  auto s = rtnl_open();
  if (!s) return core::Unexpected(s.error());
  return checked(delete_link(*s, steer_link_name(peer)),
                 "tunnel " + steer_link_name(peer) + ": deleting");
}

core::Result<SteerCleanup, Error> cleanup_stale_steering() {
  SteerCleanup done;
  // nftables tables.
  auto nfs = Socket::open(NETLINK_NETFILTER, std::chrono::milliseconds(1000), "netfilter");
  if (!nfs) return core::Unexpected(nfs.error());
  std::vector<std::string> tables;
  {
    std::vector<uint8_t> buf(MNL_SOCKET_BUFFER_SIZE);
    nlmsghdr* nlh = nftnl_nlmsg_build_hdr(reinterpret_cast<char*>(buf.data()), NFT_MSG_GETTABLE,
                                          NFPROTO_IPV4, NLM_F_DUMP, nfs->next_seq());
    const int rc = nfs->request(nlh, [&](const nlmsghdr* m) {
      std::unique_ptr<nftnl_table, void (*)(const nftnl_table*)> t(nftnl_table_alloc(),
                                                                   nftnl_table_free);
      if (!t || nftnl_table_nlmsg_parse(m, t.get()) < 0) return;
      const char* name = nftnl_table_get_str(t.get(), NFTNL_TABLE_NAME);
      if (name != nullptr && std::string_view(name).starts_with(kSteerTablePrefix)) {
        tables.emplace_back(name);
      }
    });
    if (rc < 0) return core::Unexpected(err(rc, "listing nftables tables"));
  }
  if (!tables.empty()) {
    auto nft = Netlink::open();
    if (!nft) return core::Unexpected(nft.error());
    for (const auto& t : tables) {
      auto rm = build_removal(t, nft->next_seq());
      if (!rm) return core::Unexpected(rm.error());
      if (auto c = nft->commit(*rm); !c) return core::Unexpected(c.error());
      ++done.tables;
    }
  }

  auto s = rtnl_open();
  if (!s) return core::Unexpected(s.error());
  // Policy rules of our protocol: dumped first, deleted after (a dump is not to be mixed with
  // changes on the same socket). A rule is deleted by repeating its attributes.
  struct RuleKey {
    uint32_t table = 0, mark = 0, mask = 0, prio = 0;
  };
  std::vector<RuleKey> rules;
  {
    Msg m(*s, RTM_GETRULE, NLM_F_DUMP);
    auto* frh = static_cast<fib_rule_hdr*>(mnl_nlmsg_put_extra_header(m.nlh, sizeof(fib_rule_hdr)));
    frh->family = AF_INET;
    const int rc = s->request(m.nlh, [&](const nlmsghdr* nlh) {
      struct Seen {
        RuleKey key;
        int proto = -1;
      } seen;
      mnl_attr_parse(
          nlh, sizeof(fib_rule_hdr),
          [](const nlattr* a, void* d) -> int {
            auto* x = static_cast<Seen*>(d);
            const auto type = mnl_attr_get_type(a);
            const bool u32 = mnl_attr_validate(a, MNL_TYPE_U32) == 0;
            if (type == FRA_PROTOCOL && mnl_attr_validate(a, MNL_TYPE_U8) == 0) {
              x->proto = mnl_attr_get_u8(a);
            } else if (type == FRA_TABLE && u32) {
              x->key.table = mnl_attr_get_u32(a);
            } else if (type == FRA_FWMARK && u32) {
              x->key.mark = mnl_attr_get_u32(a);
            } else if (type == FRA_FWMASK && u32) {
              x->key.mask = mnl_attr_get_u32(a);
            } else if (type == FRA_PRIORITY && u32) {
              x->key.prio = mnl_attr_get_u32(a);
            }
            return MNL_CB_OK;
          },
          &seen);
      if (seen.proto == kSteerRouteProto) rules.push_back(seen.key);
    });
    if (rc < 0) return core::Unexpected(err(rc, "listing policy rules"));
  }
  for (const auto& k : rules) {
    Msg m(*s, RTM_DELRULE, NLM_F_ACK);
    auto* frh = static_cast<fib_rule_hdr*>(mnl_nlmsg_put_extra_header(m.nlh, sizeof(fib_rule_hdr)));
    frh->family = AF_INET;
    frh->action = FR_ACT_TO_TBL;
    mnl_attr_put_u32(m.nlh, FRA_TABLE, k.table);
    mnl_attr_put_u32(m.nlh, FRA_FWMARK, k.mark);
    mnl_attr_put_u32(m.nlh, FRA_FWMASK, k.mask);
    mnl_attr_put_u32(m.nlh, FRA_PRIORITY, k.prio);
    mnl_attr_put_u8(m.nlh, FRA_PROTOCOL, kSteerRouteProto);
    const int rc = s->ack(m.nlh);
    if (rc < 0 && rc != -ENOENT) {
      return core::Unexpected(err(rc, "deleting policy rule priority " + std::to_string(k.prio)));
    }
    ++done.rules;
  }

  std::vector<std::string> links;
  {
    Msg m(*s, RTM_GETLINK, NLM_F_DUMP);
    auto* ifm = static_cast<ifinfomsg*>(mnl_nlmsg_put_extra_header(m.nlh, sizeof(ifinfomsg)));
    ifm->ifi_family = AF_UNSPEC;
    const int rc = s->request(m.nlh, [&](const nlmsghdr* nlh) {
      const nlattr* name_attr = nullptr;
      mnl_attr_parse(
          nlh, sizeof(ifinfomsg),
          [](const nlattr* a, void* d) -> int {
            if (mnl_attr_get_type(a) == IFLA_IFNAME &&
                mnl_attr_validate(a, MNL_TYPE_NUL_STRING) == 0) {
              *static_cast<const nlattr**>(d) = a;
            }
            return MNL_CB_OK;
          },
          &name_attr);
      if (name_attr == nullptr) return;
      const char* name = mnl_attr_get_str(name_attr);
      if (is_steer_link_name(name) && link_kind(nlh) == "vxlan") links.emplace_back(name);
    });
    if (rc < 0) return core::Unexpected(err(rc, "listing links"));
  }
  for (const auto& l : links) {
    if (const int rc = delete_link(*s, l); rc < 0) {
      return core::Unexpected(err(rc, "tunnel " + l + ": deleting"));
    }
    ++done.links;
  }
  return done;
}

}  // namespace hanat::netfilter
