// SPDX-License-Identifier: GPL-2.0-or-later
#pragma once
// LinkWatch: the operational state of one of this host's own interfaces, event-driven.
//
// Why: a probe that fails because *our own* link is down says nothing about the peer. A NAT
// whose private interface loses carrier sees every peer fail at once and, judging by probes
// alone, would take the peers' route tables onto the very link that is failing (measured in
// the lab's flapping scenario: ~340 ms of a healthy zone's traffic sent to the flapping
// host). keepalived handles the same case by tracking its interface and entering FAULT. The
// daemon uses this watch to discount peer-probe failures while its own link is down and for
// a grace period after it returns (probes sent while it was down fail later, at timeout).
//
// The state comes from the kernel's rtnetlink link notifications (RTMGRP_LINK) on the loop;
// "up" is IFF_RUNNING, the RFC 2863 operational state (carrier present, not dormant). The
// initial state is read with SIOCGIFFLAGS. A notification overrun (ENOBUFS) re-reads it.

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "core/base/result.h"
#include "core/uv/uv.h"
#include "probes/types.h"

namespace hanat::probes {

class LinkWatch {
 public:
  using OnChange = std::function<void(bool up, Time at)>;

  // Watches `ifname` in the calling thread's network namespace. Errors name the interface.
  [[nodiscard]] static core::Result<std::unique_ptr<LinkWatch>, std::string> create(
      uv::Loop& loop, std::string ifname, OnChange on_change);

  LinkWatch(const LinkWatch&) = delete;
  LinkWatch& operator=(const LinkWatch&) = delete;
  ~LinkWatch();

  [[nodiscard]] const std::string& ifname() const { return ifname_; }
  [[nodiscard]] bool up() const { return up_; }
  // When the link last came back up (nullopt if it has not gone down since the watch began).
  [[nodiscard]] std::optional<Time> last_up() const { return last_up_; }
  [[nodiscard]] std::uint64_t downs() const { return downs_; }

  // Whether a probe failure observed at `at` may be the link's fault: the link is down, or
  // came back up less than `grace` before `at`.
  [[nodiscard]] bool impaired(Time at, std::chrono::nanoseconds grace) const;

 private:
  LinkWatch(uv::Loop& loop, int fd, std::string ifname, OnChange on_change);
  void on_readable();
  void set(bool up, Time at);
  [[nodiscard]] std::optional<bool> read_flags() const;

  int fd_ = -1;
  std::unique_ptr<uv::Poll> poll_;
  std::string ifname_;
  unsigned ifindex_ = 0;
  OnChange on_change_;
  bool up_ = true;
  std::optional<Time> last_up_;
  std::uint64_t downs_ = 0;
};

// The name of the interface that holds IPv4 address `address` (numeric), or an error.
[[nodiscard]] core::Result<std::string, std::string> interface_with_address(
    const std::string& address);

}  // namespace hanat::probes
