// SPDX-License-Identifier: GPL-2.0-or-later
#pragma once
// Internal to netfilter/: what every nfnetlink batch builder here shares (batch.cc for hanat's
// masquerade table, steer_batch.cc for the connection-keeping steering tables). Not part of
// the module's interface.

// <arpa/inet.h> before <linux/netfilter.h>: the other order redefines struct in_addr.
#include <arpa/inet.h>
#include <libmnl/libmnl.h>
#include <libnftnl/batch.h>
#include <libnftnl/chain.h>
#include <libnftnl/common.h>
#include <libnftnl/expr.h>
#include <libnftnl/table.h>
#include <linux/netfilter.h>
#include <sys/uio.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "netfilter/batch.h"

namespace hanat::netfilter::nft {

using TablePtr = std::unique_ptr<nftnl_table, void (*)(const nftnl_table*)>;
using ChainPtr = std::unique_ptr<nftnl_chain, void (*)(const nftnl_chain*)>;
using ExprPtr = std::unique_ptr<nftnl_expr, void (*)(const nftnl_expr*)>;
using BatchPtr = std::unique_ptr<nftnl_batch, void (*)(nftnl_batch*)>;

// nftables pages its batch the same way: a page that overflows by up to one maximal
// message (64 KiB) is closed and a new one started, so no message is ever split and the
// transaction is never flushed half-way (the whole batch goes out in one sendmsg).
inline constexpr uint32_t kPageSize = 16 * 1024;
inline constexpr uint32_t kPageOverrun = 64 * 1024;

inline Error enomem(const std::string& what) {
  return Error{std::make_error_code(std::errc::not_enough_memory), what + ": out of memory"};
}

inline ExprPtr make_expr(const char* name) {
  return ExprPtr(nftnl_expr_alloc(name), nftnl_expr_free);
}

// An `ip` family table object named `name` (nullptr when out of memory).
inline TablePtr make_table(std::string_view name) {
  TablePtr t(nftnl_table_alloc(), nftnl_table_free);
  if (!t) return t;
  nftnl_table_set_u32(t.get(), NFTNL_TABLE_FAMILY, NFPROTO_IPV4);
  nftnl_table_set_str(t.get(), NFTNL_TABLE_NAME, std::string(name).c_str());
  return t;
}

// Builds messages into a paged nftnl_batch and records what each sequence number is.
class Builder {
 public:
  explicit Builder(uint32_t first_seq)
      : batch_(nftnl_batch_alloc(kPageSize, kPageOverrun), nftnl_batch_free), seq_(first_seq) {}

  bool ok() const { return batch_ != nullptr; }

  bool begin() {
    out_.begin_seq = seq_;
    nftnl_batch_begin(buffer(), seq_++);
    return nftnl_batch_update(batch_.get()) >= 0;
  }

  template <class Obj, class BuildPayload>
  bool add(uint16_t type, uint16_t flags, Obj* obj, BuildPayload build, std::string what) {
    nlmsghdr* nlh = nftnl_nlmsg_build_hdr(buffer(), type, NFPROTO_IPV4,
                                          static_cast<uint16_t>(flags | NLM_F_ACK), seq_);
    build(nlh, obj);
    out_.objects.emplace_back(seq_++, std::move(what));
    return nftnl_batch_update(batch_.get()) >= 0;
  }

  bool end() {
    out_.end_seq = seq_;
    nftnl_batch_end(buffer(), seq_++);
    return nftnl_batch_update(batch_.get()) >= 0;
  }

  Batch finish() {
    const int n = nftnl_batch_iovec_len(batch_.get());
    std::vector<iovec> iov(static_cast<size_t>(n));
    nftnl_batch_iovec(batch_.get(), iov.data(), static_cast<uint32_t>(n));
    for (const auto& v : iov) {
      const auto* p = static_cast<const uint8_t*>(v.iov_base);
      out_.bytes.insert(out_.bytes.end(), p, p + v.iov_len);
    }
    return std::move(out_);
  }

 private:
  // The write position in the current page, zero-filled from there to the page's end the
  // first time a page is seen. libnftnl mallocs its pages and libmnl 1.0.4 does not clear
  // the padding after an attribute (a table name of 6 bytes leaves 2 bytes), so without
  // this the batch sent to the kernel carried uninitialised heap bytes (found by
  // scripts/valgrind: "sendto(msg) points to uninitialised byte(s)").
  char* buffer() {
    char* at = static_cast<char*>(nftnl_batch_buffer(batch_.get()));
    const auto used = static_cast<size_t>(nftnl_batch_buffer_len(batch_.get()));
    char* page = at - used;
    if (page != zeroed_page_) {
      std::memset(at, 0, size_t{kPageSize} + kPageOverrun - used);
      zeroed_page_ = page;
    }
    return at;
  }

  BatchPtr batch_;
  char* zeroed_page_ = nullptr;
  uint32_t seq_;
  Batch out_;
};

}  // namespace hanat::netfilter::nft
