// SPDX-License-Identifier: GPL-2.0-or-later
#pragma once
// NftMonitor: nftables change notifications for hanat's table, on the loop (issue #23).
//
// Every committed nftables transaction is announced by the kernel to the NFNLGRP_NFTABLES
// multicast group of NETLINK_NETFILTER, one message per object created or deleted, each
// naming its table (nf_tables_api.c: nf_tables_table_notify, nf_tables_chain_notify,
// nf_tables_rule_notify, ...), then NFT_MSG_NEWGEN with the new ruleset generation. `nft
// flush ruleset` deletes hanat's table like any other, announced as DELRULE/DELCHAIN/DELTABLE
// for `table ip hanat`. Listening lets the manager verify (and repair) the table within
// milliseconds instead of at the next drift check, which stays as the safety net.
//
// hanat's own commits are announced too; the monitor does not try to tell them apart (the
// kernel reports no sender for a batch): the manager re-verifies and repairs only on a real
// difference, so an own commit costs one read-back of the table.
//
// A multicast listener that falls behind loses messages: the kernel reports ENOBUFS on the
// next read (netlink(7)). Any lost message may have been about hanat's table, so ENOBUFS is
// reported as a change too (a full verify resynchronises).

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/uv/uv.h"
#include "netfilter/spec.h"

struct mnl_socket;

namespace hanat::netfilter {

// What one notification says about `table ip <table>`.
struct Notice {
  std::string what;  // for logs: "table deleted", "rule added to chain postrouting", ...
  // Deletions outrank additions, and the table outranks its chains and rules: when several
  // notifications arrive together (one transaction announces every object), the one named
  // in the log is the most telling, e.g. "table deleted" rather than its first rule.
  int rank = 0;
};

// nullopt when the notification is about something else (another table, another family, the
// generation message). `msg`/`len` are one netlink message as received; a malformed one is
// ignored (nullopt).
[[nodiscard]] std::optional<Notice> notification_about(const void* msg, size_t len,
                                                       std::string_view table);

class NftMonitor {
 public:
  // Opens the notification socket in the calling thread's network namespace and starts
  // watching it on `loop`. `on_change` is called once per wake-up that carried at least one
  // message about `table ip <table>` (with the highest-ranked one's text), or lost messages
  // ("notifications lost (ENOBUFS)").
  // `rcvbuf` is the socket's receive buffer in bytes (the kernel doubles it; tests make it
  // small to provoke ENOBUFS).
  [[nodiscard]] static core::Result<std::unique_ptr<NftMonitor>, Error> open(
      uv::Loop& loop, std::string table, std::function<void(const std::string&)> on_change,
      int rcvbuf = kDefaultRcvBuf);

  // Large enough that `nft flush ruleset` of a big ruleset (one message per rule) does not
  // overrun before the loop gets to read; an overrun is still handled (ENOBUFS -> verify).
  static constexpr int kDefaultRcvBuf = 4 * 1024 * 1024;

  NftMonitor(const NftMonitor&) = delete;
  NftMonitor& operator=(const NftMonitor&) = delete;
  ~NftMonitor();

  // The table whose notifications count (hanat's table may be renamed by a reload).
  void set_table(std::string table) { table_ = std::move(table); }
  [[nodiscard]] uint64_t overruns() const { return overruns_; }

 private:
  NftMonitor(uv::Loop& loop, mnl_socket* sock, std::string table,
             std::function<void(const std::string&)> on_change);
  std::error_code watch();
  // Reads everything queued; what the most telling notification said, if any concerned
  // the table (or notifications were lost).
  std::optional<std::string> drain();

  mnl_socket* sock_;
  std::string table_;
  std::function<void(const std::string&)> on_change_;
  std::vector<uint8_t> buf_;
  uint64_t overruns_ = 0;
  uv::Timer rewatch_;               // re-arms the poll after libuv stopped it on an error
  std::unique_ptr<uv::Poll> poll_;  // destroyed before the socket is closed
};

}  // namespace hanat::netfilter
