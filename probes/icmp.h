// SPDX-License-Identifier: GPL-2.0-or-later
#pragma once
// ICMP echo prober: one socket for all targets, replies matched by identifier, sequence
// number and a per-prober random cookie in the payload, each probe with its own deadline.
//
// Socket kinds (Linux):
//   - Ping socket, socket(AF_INET, SOCK_DGRAM, IPPROTO_ICMP): no privilege needed when the
//     caller's group is inside net.ipv4.ping_group_range (per network namespace; Debian's
//     default "1 0" admits nobody). The kernel owns the echo identifier (the socket's bound
//     "port"), fills in the checksum and delivers only replies to our identifier.
//   - Raw socket, socket(AF_INET, SOCK_RAW, IPPROTO_ICMP): needs CAP_NET_RAW; sees every
//     ICMP packet of the namespace, so we filter (ICMP_FILTER) and match ourselves. It also
//     sees destination-unreachable errors quoting our request, reported as Unreachable.
// On a ping socket router-generated errors are not read (that needs IP_RECVERR, with which
// net/ipv4/ping.c ping_err() also sets sk_err, failing the *next*, unrelated sendto), so they
// surface as timeouts. Local "no route" errors surface at sendto in both modes as Unreachable.

#include <netinet/in.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <unordered_map>
#include <utility>

#include "core/base/result.h"
#include "core/uv/uv.h"
#include "probes/net.h"
#include "probes/types.h"

namespace hanat::probes {

enum class IcmpMode : std::uint8_t { Auto, Ping, Raw };
const char* to_string(IcmpMode m);

class IcmpProber {
 public:
  using Done = std::function<void(Outcome)>;

  // Auto tries a ping socket first and falls back to a raw socket when the kernel refuses
  // (EACCES: our gid is outside ping_group_range). Errors name the socket kind and errno.
  [[nodiscard]] static core::Result<std::unique_ptr<IcmpProber>, std::string> open(
      uv::Loop& loop, IcmpMode mode, const BindOptions& bind);
  ~IcmpProber();
  IcmpProber(const IcmpProber&) = delete;
  IcmpProber& operator=(const IcmpProber&) = delete;

  // Sends one echo request. `done` runs exactly once: on the reply, on an ICMP error, at the
  // deadline, or before probe() returns if the send fails at once (no route). It never runs
  // after the prober is destroyed. A reply after the deadline is discarded and counted.
  void probe(const sockaddr_in& target, std::chrono::milliseconds timeout, Done done);

  [[nodiscard]] IcmpMode mode() const { return mode_; }
  [[nodiscard]] std::size_t in_flight() const { return pending_.size(); }
  [[nodiscard]] std::uint64_t discarded() const { return discarded_; }

 private:
  IcmpProber(uv::Loop& loop, int fd, IcmpMode mode, std::uint16_t ident);
  struct Pending {
    sockaddr_in target;
    Time sent;
    Time deadline;
    Done done;
  };
  void on_readable();
  void handle_packet(const std::uint8_t* p, std::size_t n, const sockaddr_in& from);
  void on_deadline();
  void arm();
  void finish(std::uint16_t seq, Outcome o);

  uv::Loop& loop_;
  int fd_;
  IcmpMode mode_;
  std::uint16_t ident_;
  std::uint16_t next_seq_ = 0;
  std::uint64_t cookie_;
  uv::Poll poll_;
  uv::Timer timer_;
  std::unordered_map<std::uint16_t, Pending> pending_;
  std::set<std::pair<Time, std::uint16_t>> deadlines_;
  std::uint64_t discarded_ = 0;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace hanat::probes
