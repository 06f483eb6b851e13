// SPDX-License-Identifier: GPL-2.0-or-later
#include "netfilter/netlink.h"

#include <libmnl/libmnl.h>
#include <libnftnl/chain.h>
#include <libnftnl/common.h>
#include <libnftnl/gen.h>
#include <libnftnl/rule.h>
#include <libnftnl/table.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netlink.h>
#include <net/if.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <set>

namespace hanat::netfilter {

namespace {

std::string errno_text(int e) {
  return std::strerror(e);
}

// Large enough for one dump skb (the kernel sizes those to the reader's buffer, up to 32 KiB
// for MNL_SOCKET_DUMP_SIZE) and any ACK with extended-ACK attributes.
constexpr size_t kRxBufSize = 64 * 1024;
constexpr int kMaxDumpAttempts = 3;

std::vector<uint8_t> build_request(uint16_t type, uint16_t flags, uint32_t seq,
                                   void (*payload)(nlmsghdr*, const void*), const void* obj) {
  std::vector<uint8_t> buf(MNL_SOCKET_BUFFER_SIZE);
  nlmsghdr* nlh =
      nftnl_nlmsg_build_hdr(reinterpret_cast<char*>(buf.data()), type, NFPROTO_IPV4, flags, seq);
  if (payload != nullptr) payload(nlh, obj);
  buf.resize(nlh->nlmsg_len);
  return buf;
}

struct ExtAck {
  std::string msg;
};

// Extended ACK attributes follow the nlmsgerr (and, without NLM_F_CAPPED, the echoed
// request). The kernel's message string names what it disliked.
ExtAck parse_ext_ack(const nlmsghdr* nlh) {
  ExtAck out;
  if ((nlh->nlmsg_flags & NLM_F_ACK_TLVS) == 0) return out;
  const auto* err = static_cast<const nlmsgerr*>(mnl_nlmsg_get_payload(nlh));
  size_t offset = sizeof(nlmsgerr);
  if ((nlh->nlmsg_flags & NLM_F_CAPPED) == 0) offset += err->msg.nlmsg_len - sizeof(nlmsghdr);
  if (offset >= mnl_nlmsg_get_payload_len(nlh)) return out;
  const auto* tail = static_cast<const char*>(mnl_nlmsg_get_payload_tail(nlh));
  for (auto* attr = static_cast<const nlattr*>(mnl_nlmsg_get_payload_offset(nlh, offset));
       mnl_attr_ok(attr, static_cast<int>(tail - reinterpret_cast<const char*>(attr)));
       attr = mnl_attr_next(attr)) {
    if (mnl_attr_get_type(attr) == NLMSGERR_ATTR_MSG &&
        mnl_attr_validate(attr, MNL_TYPE_NUL_STRING) == 0) {
      out.msg = mnl_attr_get_str(attr);
    }
  }
  return out;
}

std::string describe_error(int err, const ExtAck& ext) {
  std::string s = errno_text(err);
  if (!ext.msg.empty()) s += " (kernel: " + ext.msg + ")";
  return s;
}

}  // namespace

core::Result<Netlink, Error> Netlink::open(std::chrono::milliseconds timeout) {
  SocketPtr sock(mnl_socket_open2(NETLINK_NETFILTER, SOCK_CLOEXEC), mnl_socket_close);
  if (!sock) {
    const int e = errno;
    return fail(errno_code(e), "netlink netfilter socket: " + errno_text(e));
  }
  if (mnl_socket_bind(sock.get(), 0, MNL_SOCKET_AUTOPID) < 0) {
    const int e = errno;
    return fail(errno_code(e), "netlink netfilter socket: bind: " + errno_text(e));
  }
  int on = 1;
  // Both are best effort: old kernels lack them, and only the error text gets poorer.
  (void)mnl_socket_setsockopt(sock.get(), NETLINK_EXT_ACK, &on, sizeof on);
  (void)mnl_socket_setsockopt(sock.get(), NETLINK_CAP_ACK, &on, sizeof on);
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(timeout.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((timeout.count() % 1000) * 1000);
  if (setsockopt(mnl_socket_get_fd(sock.get()), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) < 0) {
    const int e = errno;
    return fail(errno_code(e), "netlink netfilter socket: SO_RCVTIMEO: " + errno_text(e));
  }
  const uint32_t portid = mnl_socket_get_portid(sock.get());
  return Netlink(std::move(sock), portid, timeout);
}

Netlink::Netlink(SocketPtr sock, uint32_t portid, std::chrono::milliseconds timeout)
    : sock_(std::move(sock)), portid_(portid), timeout_(timeout), rxbuf_(kRxBufSize) {}

Status Netlink::commit(const Batch& batch) {
  if (batch.bytes.empty() || batch.objects.empty()) {
    return fail(std::make_error_code(std::errc::invalid_argument), "batch: empty");
  }
  // Numbers at or past the batch's end are ours from now on.
  if (batch.next_seq() > seq_) seq_ = batch.next_seq();
  if (auto s = ensure_buffers(batch.bytes.size(), batch.objects.size()); !s) return s;
  if (mnl_socket_sendto(sock_.get(), batch.bytes.data(), batch.bytes.size()) < 0) {
    const int e = errno;
    return fail(errno_code(e), "batch (table " + batch.what(batch.objects.front().first) +
                                   "...): sendmsg: " + errno_text(e));
  }
  std::set<uint32_t> pending;
  for (const auto& [seq, what] : batch.objects) pending.insert(seq);
  struct Failure {
    uint32_t seq;
    int err;
    ExtAck ext;
  };
  std::vector<Failure> failures;
  bool batch_level = false;
  while (!pending.empty() && !batch_level) {
    const ssize_t n = mnl_socket_recvfrom(sock_.get(), rxbuf_.data(), rxbuf_.size());
    if (n < 0) {
      const int e = errno;
      if (e == EINTR) continue;
      const std::string first = batch.what(*pending.begin());
      if (e == EAGAIN || e == EWOULDBLOCK) {
        return fail(std::make_error_code(std::errc::timed_out),
                    first + ": no ACK from the kernel within " + std::to_string(timeout_.count()) +
                        " ms (" + std::to_string(pending.size()) + " outstanding)");
      }
      // ENOBUFS: ACKs were dropped; the outcome of the batch is unknown, the read-back
      // that follows every commit settles it.
      return fail(errno_code(e), first + ": reading ACKs: " + errno_text(e));
    }
    int len = static_cast<int>(n);
    for (auto* nlh = reinterpret_cast<const nlmsghdr*>(rxbuf_.data()); mnl_nlmsg_ok(nlh, len);
         nlh = mnl_nlmsg_next(nlh, &len)) {
      if (nlh->nlmsg_type != NLMSG_ERROR) continue;
      if (nlh->nlmsg_seq < batch.begin_seq || nlh->nlmsg_seq > batch.end_seq) continue;
      if (mnl_nlmsg_get_payload_len(nlh) < sizeof(nlmsgerr)) continue;
      const auto* err = static_cast<const nlmsgerr*>(mnl_nlmsg_get_payload(nlh));
      const int e = -err->error;
      if (nlh->nlmsg_seq == batch.begin_seq || nlh->nlmsg_seq == batch.end_seq) {
        // An error on the batch header: the kernel could not process or commit the batch as
        // a whole (nfnetlink then discards the per-message ACKs), e.g. ENOMEM.
        if (e != 0) {
          failures.push_back({nlh->nlmsg_seq, e, parse_ext_ack(nlh)});
          batch_level = true;
        }
        continue;
      }
      pending.erase(nlh->nlmsg_seq);
      if (e != 0) failures.push_back({nlh->nlmsg_seq, e, parse_ext_ack(nlh)});
    }
  }
  if (failures.empty()) return ok();
  // The first failure is the cause; later ones in the same batch are usually its echoes
  // (e.g. rules refused because their chain was refused). Name up to three.
  const Failure& first = failures.front();
  std::string msg = batch.what(first.seq) + ": " + describe_error(first.err, first.ext);
  for (size_t i = 1; i < failures.size() && i < 3; ++i) {
    msg += "; then " + batch.what(failures[i].seq) + ": " +
           describe_error(failures[i].err, failures[i].ext);
  }
  if (failures.size() > 3) msg += "; and " + std::to_string(failures.size() - 3) + " more";
  return fail(errno_code(first.err), std::move(msg));
}

Status Netlink::ensure_buffers(size_t batch_bytes, size_t acks) {
  // The whole batch goes out in one datagram, and nfnetlink queues one ACK per message on
  // our socket before sendmsg returns: both must fit, or the send fails with EMSGSIZE or
  // ACKs are dropped (ENOBUFS) and the outcome is unknown. nftables sizes its buffers the
  // same way. The *FORCE variants pass net.core.{w,r}mem_max and need CAP_NET_ADMIN, which
  // hanatd has anyway; without it the plain call is capped by those sysctls.
  const int fd = mnl_socket_get_fd(sock_.get());
  auto grow = [fd](int force_opt, int opt, size_t want, size_t& have) -> int {
    if (want <= have) return 0;
    const int v = static_cast<int>(std::min<size_t>(want, 1U << 30));
    if (setsockopt(fd, SOL_SOCKET, force_opt, &v, sizeof v) != 0 &&
        setsockopt(fd, SOL_SOCKET, opt, &v, sizeof v) != 0) {
      return errno;
    }
    have = want;
    return 0;
  };
  // An ACK skb costs about 1 KiB of receive buffer (its truesize), whatever its length.
  constexpr size_t kAckTruesize = 1024;
  constexpr size_t kSlack = 64 * 1024;
  if (const int e = grow(SO_SNDBUFFORCE, SO_SNDBUF, batch_bytes + kSlack, sndbuf_); e != 0) {
    return fail(errno_code(e), "netlink netfilter socket: SO_SNDBUF: " + errno_text(e));
  }
  if (const int e = grow(SO_RCVBUFFORCE, SO_RCVBUF, acks * kAckTruesize + kSlack, rcvbuf_);
      e != 0) {
    return fail(errno_code(e), "netlink netfilter socket: SO_RCVBUF: " + errno_text(e));
  }
  return ok();
}

template <class OnMsg>
int Netlink::request(std::vector<uint8_t> msg, uint32_t seq, OnMsg on_msg) {
  if (mnl_socket_sendto(sock_.get(), msg.data(), msg.size()) < 0) return -errno;
  for (;;) {
    const ssize_t n = mnl_socket_recvfrom(sock_.get(), rxbuf_.data(), rxbuf_.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno == EAGAIN || errno == EWOULDBLOCK ? -ETIMEDOUT : -errno;
    }
    int len = static_cast<int>(n);
    for (auto* nlh = reinterpret_cast<const nlmsghdr*>(rxbuf_.data()); mnl_nlmsg_ok(nlh, len);
         nlh = mnl_nlmsg_next(nlh, &len)) {
      if (nlh->nlmsg_seq != seq) continue;  // a late answer to an earlier request
      // Answers to our requests carry our port id (libmnl's mnl_nlmsg_portid_ok does the
      // same check); anything else is not ours.
      if (nlh->nlmsg_pid != 0 && portid_ != 0 && nlh->nlmsg_pid != portid_) continue;
      if (nlh->nlmsg_type == NLMSG_DONE) return 0;
      if (nlh->nlmsg_type == NLMSG_ERROR) {
        if (mnl_nlmsg_get_payload_len(nlh) < sizeof(nlmsgerr)) return -EBADMSG;
        return static_cast<const nlmsgerr*>(mnl_nlmsg_get_payload(nlh))->error;
      }
      // The kernel flags a dump that raced with a ruleset change.
      if ((nlh->nlmsg_flags & NLM_F_DUMP_INTR) != 0) return -EINTR;
      on_msg(nlh);
    }
  }
}

core::Result<uint32_t, Error> Netlink::read_generation() {
  const uint32_t seq = seq_++;
  uint32_t id = 0;
  bool got = false;
  const int rc = request(build_request(NFT_MSG_GETGEN, NLM_F_ACK, seq, nullptr, nullptr), seq,
                         [&](const nlmsghdr* nlh) {
                           std::unique_ptr<nftnl_gen, void (*)(const nftnl_gen*)> g(
                               nftnl_gen_alloc(), nftnl_gen_free);
                           if (g && nftnl_gen_nlmsg_parse(nlh, g.get()) >= 0) {
                             id = nftnl_gen_get_u32(g.get(), NFTNL_GEN_ID);
                             got = true;
                           }
                         });
  if (rc < 0 || !got) {
    const int e = rc < 0 ? -rc : EBADMSG;
    return fail(errno_code(e), "nftables ruleset generation: " + errno_text(e));
  }
  return id;
}

template <class OnRule>
int Netlink::dump_rules(const std::string& table, OnRule on_rule) {
  // The kernel filters the dump by NFTA_RULE_TABLE; checked here as well.
  std::unique_ptr<nftnl_rule, void (*)(const nftnl_rule*)> filter(nftnl_rule_alloc(),
                                                                  nftnl_rule_free);
  if (!filter) return -ENOMEM;
  nftnl_rule_set_u32(filter.get(), NFTNL_RULE_FAMILY, NFPROTO_IPV4);
  nftnl_rule_set_str(filter.get(), NFTNL_RULE_TABLE, table.c_str());
  const uint32_t seq = seq_++;
  return request(build_request(
                     NFT_MSG_GETRULE, NLM_F_DUMP, seq,
                     [](nlmsghdr* nlh, const void* o) {
                       nftnl_rule_nlmsg_build_payload(
                           nlh, const_cast<nftnl_rule*>(static_cast<const nftnl_rule*>(o)));
                     },
                     filter.get()),
                 seq, [&](const nlmsghdr* nlh) {
                   RulePtr r(nftnl_rule_alloc(), nftnl_rule_free);
                   if (!r || nftnl_rule_nlmsg_parse(nlh, r.get()) < 0) return;
                   const char* t = nftnl_rule_get_str(r.get(), NFTNL_RULE_TABLE);
                   const char* chain = nftnl_rule_get_str(r.get(), NFTNL_RULE_CHAIN);
                   if (t == nullptr || chain == nullptr || table != t) return;
                   on_rule(chain, r.get());
                 });
}

core::Result<TableState, Error> Netlink::read_table(std::string_view name) {
  const std::string tw = "table ip " + std::string(name);
  const std::string name_str(name);
  for (int attempt = 0; attempt < kMaxDumpAttempts; ++attempt) {
    auto gen_before = read_generation();
    if (!gen_before) return core::Unexpected(gen_before.error());
    TableState state;
    state.name = name_str;

    // The table itself: a missing table answers ENOENT.
    std::unique_ptr<nftnl_table, void (*)(const nftnl_table*)> t(nftnl_table_alloc(),
                                                                 nftnl_table_free);
    if (!t) return fail(std::make_error_code(std::errc::not_enough_memory), tw + ": out of memory");
    nftnl_table_set_u32(t.get(), NFTNL_TABLE_FAMILY, NFPROTO_IPV4);
    nftnl_table_set_str(t.get(), NFTNL_TABLE_NAME, name_str.c_str());
    uint32_t seq = seq_++;
    int rc = request(build_request(
                         NFT_MSG_GETTABLE, NLM_F_ACK, seq,
                         [](nlmsghdr* nlh, const void* o) {
                           nftnl_table_nlmsg_build_payload(
                               nlh, const_cast<nftnl_table*>(static_cast<const nftnl_table*>(o)));
                         },
                         t.get()),
                     seq, [&](const nlmsghdr* nlh) {
                       std::unique_ptr<nftnl_table, void (*)(const nftnl_table*)> got(
                           nftnl_table_alloc(), nftnl_table_free);
                       if (got && nftnl_table_nlmsg_parse(nlh, got.get()) >= 0) {
                         state.exists = true;
                         state.flags = nftnl_table_get_u32(got.get(), NFTNL_TABLE_FLAGS);
                       }
                     });
    if (rc == -ENOENT) {
      state.exists = false;
    } else if (rc < 0) {
      if (rc == -EINTR) continue;
      return fail(errno_code(-rc), tw + ": reading table: " + errno_text(-rc));
    }

    if (state.exists) {
      // Chains: dumped for the family, filtered to our table here.
      seq = seq_++;
      rc = request(build_request(NFT_MSG_GETCHAIN, NLM_F_DUMP, seq, nullptr, nullptr), seq,
                   [&](const nlmsghdr* nlh) {
                     std::unique_ptr<nftnl_chain, void (*)(const nftnl_chain*)> c(
                         nftnl_chain_alloc(), nftnl_chain_free);
                     if (!c || nftnl_chain_nlmsg_parse(nlh, c.get()) < 0) return;
                     const char* table = nftnl_chain_get_str(c.get(), NFTNL_CHAIN_TABLE);
                     if (table == nullptr || name_str != table) return;
                     ChainState cs;
                     const char* chain_name = nftnl_chain_get_str(c.get(), NFTNL_CHAIN_NAME);
                     if (chain_name == nullptr) return;
                     cs.name = chain_name;
                     if (nftnl_chain_is_set(c.get(), NFTNL_CHAIN_TYPE)) {
                       cs.type = nftnl_chain_get_str(c.get(), NFTNL_CHAIN_TYPE);
                     }
                     if (nftnl_chain_is_set(c.get(), NFTNL_CHAIN_HOOKNUM)) {
                       cs.hook = nftnl_chain_get_u32(c.get(), NFTNL_CHAIN_HOOKNUM);
                     }
                     if (nftnl_chain_is_set(c.get(), NFTNL_CHAIN_PRIO)) {
                       cs.priority = nftnl_chain_get_s32(c.get(), NFTNL_CHAIN_PRIO);
                     }
                     if (nftnl_chain_is_set(c.get(), NFTNL_CHAIN_POLICY)) {
                       cs.policy = nftnl_chain_get_u32(c.get(), NFTNL_CHAIN_POLICY);
                     }
                     state.chains.push_back(std::move(cs));
                   });
      if (rc == -EINTR) continue;
      if (rc < 0) return fail(errno_code(-rc), tw + ": dumping chains: " + errno_text(-rc));

      rc = dump_rules(name_str, [&](const char* chain, const nftnl_rule* r) {
        for (auto& cs : state.chains) {
          if (cs.name == chain) cs.rules.push_back(rule_expressions(r));
        }
      });
      if (rc == -EINTR) continue;
      if (rc < 0) return fail(errno_code(-rc), tw + ": dumping rules: " + errno_text(-rc));
    }

    auto gen_after = read_generation();
    if (!gen_after) return core::Unexpected(gen_after.error());
    if (*gen_after == *gen_before) return state;
    // Someone committed while we were reading: the pieces may not belong together.
  }
  return fail(std::make_error_code(std::errc::resource_unavailable_try_again),
              tw + ": ruleset kept changing while being read (" + std::to_string(kMaxDumpAttempts) +
                  " attempts)");
}

Status Netlink::verify(const NatSpec& spec) {
  auto want = desired_state(spec);
  if (!want) return core::Unexpected(want.error());
  auto have = read_table(spec.table);
  if (!have) return core::Unexpected(have.error());
  if (auto diff = compare(*want, *have)) {
    return fail(std::make_error_code(std::errc::state_not_recoverable), *diff);
  }
  return ok();
}

core::Result<ForwardCounters, Error> Netlink::read_forward_counters(std::string_view name) {
  const std::string tw = "table ip " + std::string(name);
  const std::string name_str(name);
  // Plain values and flags rather than optionals: g++ 12 flags optionals filled in a lambda
  // as maybe-uninitialised.
  ForwardCounters counters;
  bool have_in = false;
  bool have_out = false;
  int rc = -EINTR;
  // A dump interrupted by a concurrent commit is simply asked again; counters need no
  // consistent snapshot of the rest of the table.
  for (int attempt = 0; attempt < kMaxDumpAttempts && rc == -EINTR; ++attempt) {
    have_in = have_out = false;
    counters.leaked = 0;
    rc = dump_rules(name_str, [&](const char* chain, const nftnl_rule* r) {
      const auto packets = rule_counter_packets(r);
      if (!packets) return;
      if (chain == kLeakChain) {
        counters.leaked += *packets;
      } else if (chain == kForwardInChain && !have_in) {
        counters.in = *packets;
        have_in = true;
      } else if (chain == kForwardOutChain && !have_out) {
        counters.out = *packets;
        have_out = true;
      }
    });
  }
  if (rc == -ENOENT) return fail(errno_code(ENOENT), tw + ": missing");
  if (rc < 0) return fail(errno_code(-rc), tw + ": dumping rules: " + errno_text(-rc));
  if (!have_in || !have_out) {
    return fail(std::make_error_code(std::errc::state_not_recoverable),
                "chain ip " + name_str + " " +
                    std::string(!have_in ? kForwardInChain : kForwardOutChain) + ": no counter");
  }
  return counters;
}

Status check_interface(const std::string& name) {
  if (if_nametoindex(name.c_str()) == 0) {
    const int e = errno;
    return fail(errno_code(e == 0 ? ENODEV : e),
                "egress interface \"" + name + "\": " +
                    (e == ENODEV || e == 0 || e == ENXIO ? std::string("no such interface")
                                                         : errno_text(e)));
  }
  return ok();
}

}  // namespace hanat::netfilter
