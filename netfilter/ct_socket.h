// SPDX-License-Identifier: GPL-2.0-or-later
#pragma once
// The ctnetlink socket shared by the conntrack readers and writers of this module (the purge
// and flow dump in conntrack.cc, the flow installation in ct_install.cc). Internal to
// netfilter/: nothing outside the module includes it.
//
// Every call is synchronous and bounded like the nftables commit (DESIGN.md, Architecture):
// each read waits at most the timeout given to open() (SO_RCVTIMEO).

#include <libmnl/libmnl.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <variant>
#include <vector>

#include "netfilter/spec.h"

namespace hanat::netfilter::detail {

// Writes a ctnetlink request header (nlmsghdr + nfgenmsg for AF_INET) at `buf`, which must
// have room for a whole message (MNL_SOCKET_BUFFER_SIZE); returns it for attributes to follow.
nlmsghdr* put_ct_header(uint8_t* buf, uint16_t msg, uint16_t flags, uint32_t seq);

// A libmnl attribute callback filling a table of CTA_MAX + 1 entries (`data`).
int attr_table_cb(const nlattr* attr, void* data);

core::Unexpected<Error> fail_errno(int e, const std::string& what);

class CtSocket {
 public:
  static core::Result<CtSocket, Error> open(std::chrono::milliseconds timeout);

  // Dumps the IPv4 table, calling `cb` (a libmnl callback) with `data` for each entry.
  core::Result<std::monostate, Error> dump(mnl_cb_t cb, void* data);

  // The same dump in steps: begin_dump() sends the request and returns its number; each
  // dump_step() reads datagrams until `budget` has passed and says whether the dump ended.
  // The kernel fills a dump datagram when it is read (netlink_recvmsg -> netlink_dump, the
  // position kept in the socket), so nothing piles up between steps.
  core::Result<uint32_t, Error> begin_dump();
  core::Result<bool, Error> dump_step(uint32_t seq, mnl_cb_t cb, void* data,
                                      std::chrono::microseconds budget);

  // Reserves `n` consecutive sequence numbers and returns the first.
  uint32_t take_seq(size_t n) {
    const uint32_t first = seq_;
    seq_ += static_cast<uint32_t>(n);
    return first;
  }

  // Sends `tx` — `count` messages numbered first .. first + count - 1, each flagged
  // NLM_F_ACK — in one datagram, then reads until every one has its ACK, calling
  // on_ack(index, error) with 0 or a positive errno. An ACK for another number is skipped.
  core::Result<std::monostate, Error> send_acked(const std::vector<uint8_t>& tx, uint32_t first,
                                                 size_t count,
                                                 const std::function<void(size_t, int)>& on_ack,
                                                 const std::string& what);

 private:
  using SocketPtr = std::unique_ptr<mnl_socket, int (*)(mnl_socket*)>;
  CtSocket(SocketPtr sock, std::chrono::milliseconds timeout);
  core::Unexpected<Error> read_error(int e, const std::string& what) const;

  SocketPtr sock_;
  std::chrono::milliseconds timeout_;
  std::vector<uint8_t> rx_;
  uint32_t seq_ = 1;
};

}  // namespace hanat::netfilter::detail
