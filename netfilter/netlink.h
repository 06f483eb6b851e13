// SPDX-License-Identifier: GPL-2.0-or-later
#pragma once
// Netlink I/O for the netfilter module: commit a Batch, read hanat's table back.
//
// The commit is synchronous on the event loop — the one blocking call the design allows
// (DESIGN.md, Architecture): nfnetlink processes a batch inside the sender's sendmsg() and
// queues every ACK before sendmsg returns, so the reads that follow only drain the socket.
// SO_RCVTIMEO still bounds every read, so a kernel that never answers costs at most
// `timeout` per call instead of hanging the daemon.

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "netfilter/batch.h"
#include "netfilter/compare.h"
#include "netfilter/spec.h"

struct mnl_socket;
struct nlmsghdr;

namespace hanat::netfilter {

struct ForwardCounters {
  uint64_t in = 0;   // packets that arrived to be forwarded (chain forward_in)
  uint64_t out = 0;  // packets forwarded out (chain forward_out)
  // Packets that left the egress interface un-NATed (all rules of chain leak_out); 0 when the
  // spec has no leak counter.
  uint64_t leaked = 0;
};

class Netlink {
 public:
  // Opens a NETLINK_NETFILTER socket in the calling thread's network namespace, with
  // extended ACKs (NETLINK_EXT_ACK) and capped ACKs (NETLINK_CAP_ACK: errors carry only the
  // header of the failed message, not a copy of it).
  [[nodiscard]] static core::Result<Netlink, Error> open(
      std::chrono::milliseconds timeout = std::chrono::milliseconds(1000));

  Netlink(Netlink&&) noexcept = default;
  Netlink& operator=(Netlink&&) noexcept = default;
  Netlink(const Netlink&) = delete;
  Netlink& operator=(const Netlink&) = delete;
  ~Netlink() = default;

  // Where the next batch should start numbering its messages. Every call to commit() and
  // read_table() moves it past the numbers it used, so a late answer to an earlier request
  // is recognised by its sequence number and skipped.
  [[nodiscard]] uint32_t next_seq() const { return seq_; }

  // Sends the batch in one sendmsg and reads an ACK for every object message. On failure
  // the message names the object, e.g.
  //   `table ip hanat: Operation not permitted`
  //   `rule 2 in chain ip hanat postrouting (oifname "eth0" ... masquerade): No such file
  //    or directory (kernel: ...)`
  // followed by any further errors of the same batch. The kernel applies all or nothing.
  [[nodiscard]] Status commit(const Batch& batch);

  // Dumps `table ip <name>`: its flags, chains and rules (expressions rendered as
  // rule_expressions() does). A missing table is a TableState with exists = false, not an
  // error. The dump is bracketed by two ruleset generation reads and retried if another
  // writer committed in between, so the state is one consistent snapshot.
  [[nodiscard]] core::Result<TableState, Error> read_table(std::string_view name);

  // read_table + compare against `spec`. Drift comes back as an Error with code
  // `errc::state_not_recoverable` and the first difference as message (see compare());
  // any other code means the table could not be read at all.
  [[nodiscard]] Status verify(const NatSpec& spec);

  // The packet counts of the forward-path counters of `table ip <name>` (one rule dump of
  // that table). An error when the table or either counter is missing: the drift check
  // reinstalls them.
  [[nodiscard]] core::Result<ForwardCounters, Error> read_forward_counters(std::string_view name);

 private:
  using SocketPtr = std::unique_ptr<mnl_socket, int (*)(mnl_socket*)>;
  Netlink(SocketPtr sock, uint32_t portid, std::chrono::milliseconds timeout);

  // Sends one request and feeds every answer with its sequence number to `on_msg` until
  // NLMSG_DONE (dumps) or the ACK; a netlink error comes back as a negative errno.
  template <class OnMsg>
  int request(std::vector<uint8_t> msg, uint32_t seq, OnMsg on_msg);
  // Dumps the rules of `table ip <table>`, calling on_rule(chain name, rule) for each;
  // returns 0 or a negative errno as request() does.
  template <class OnRule>
  int dump_rules(const std::string& table, OnRule on_rule);
  [[nodiscard]] core::Result<uint32_t, Error> read_generation();
  [[nodiscard]] Status ensure_buffers(size_t batch_bytes, size_t acks);

  SocketPtr sock_;
  uint32_t portid_ = 0;
  uint32_t seq_ = 1;
  std::chrono::milliseconds timeout_;
  std::vector<uint8_t> rxbuf_;
  size_t sndbuf_ = 0;  // what we last asked for; 0 = kernel default
  size_t rcvbuf_ = 0;
};

// Whether an interface of that name exists in the calling thread's network namespace.
// Masquerade matches the egress interface by name, so a rule for a missing interface
// installs fine and never matches: that is checked here instead.
[[nodiscard]] Status check_interface(const std::string& name);

}  // namespace hanat::netfilter
