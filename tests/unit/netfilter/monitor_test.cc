// SPDX-License-Identifier: GPL-2.0-or-later
// notification_about(): which nftables notifications concern hanat's table. Messages are
// built here as the kernel sends them (nfgenmsg, then the object's attributes, table first).
#include "netfilter/monitor.h"

#include <libmnl/libmnl.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>

#include <array>
#include <optional>
#include <string>

#include <gtest/gtest.h>

namespace hanat::netfilter {
namespace {

struct Msg {
  alignas(nlmsghdr) std::array<char, 4096> buf{};
  nlmsghdr* nlh = nullptr;
};

// One notification of message `type` for `table` of `family`, with an optional chain name
// (attribute `chain_attr`).
std::optional<std::string> about(int type, uint8_t family, const char* table,
                                 const char* chain = nullptr, uint16_t chain_attr = 0,
                                 const char* ours = "hanat") {
  Msg m;
  m.nlh = mnl_nlmsg_put_header(m.buf.data());
  m.nlh->nlmsg_type = static_cast<uint16_t>((NFNL_SUBSYS_NFTABLES << 8) | type);
  auto* gen = static_cast<nfgenmsg*>(mnl_nlmsg_put_extra_header(m.nlh, sizeof(nfgenmsg)));
  gen->nfgen_family = family;
  gen->version = NFNETLINK_V0;
  if (table != nullptr) mnl_attr_put_strz(m.nlh, 1, table);
  if (chain != nullptr) mnl_attr_put_strz(m.nlh, chain_attr, chain);
  auto n = notification_about(m.nlh, m.nlh->nlmsg_len, ours);
  return n ? std::optional<std::string>(n->what) : std::nullopt;
}

TEST(NftNotification, NamesWhatHappenedToHanatsTable) {
  EXPECT_EQ(about(NFT_MSG_DELTABLE, NFPROTO_IPV4, "hanat"), "table deleted");
  EXPECT_EQ(about(NFT_MSG_NEWTABLE, NFPROTO_IPV4, "hanat"), "table added or changed");
  EXPECT_EQ(about(NFT_MSG_DELCHAIN, NFPROTO_IPV4, "hanat", "postrouting", NFTA_CHAIN_NAME),
            "chain postrouting deleted");
  EXPECT_EQ(about(NFT_MSG_NEWCHAIN, NFPROTO_IPV4, "hanat", "postrouting", NFTA_CHAIN_NAME),
            "chain postrouting added or changed");
  EXPECT_EQ(about(NFT_MSG_DELRULE, NFPROTO_IPV4, "hanat", "postrouting", NFTA_RULE_CHAIN),
            "rule deleted from chain postrouting");
  EXPECT_EQ(about(NFT_MSG_NEWRULE, NFPROTO_IPV4, "hanat", "postrouting", NFTA_RULE_CHAIN),
            "rule added to chain postrouting");
  EXPECT_EQ(about(NFT_MSG_NEWSET, NFPROTO_IPV4, "hanat"),
            "object changed (nftables message " + std::to_string(NFT_MSG_NEWSET) + ")");
}

TEST(NftNotification, DeletionsOutrankAdditionsAndTheTableOutranksItsObjects) {
  auto rank = [](int type) {
    Msg m;
    m.nlh = mnl_nlmsg_put_header(m.buf.data());
    m.nlh->nlmsg_type = static_cast<uint16_t>((NFNL_SUBSYS_NFTABLES << 8) | type);
    auto* gen = static_cast<nfgenmsg*>(mnl_nlmsg_put_extra_header(m.nlh, sizeof(nfgenmsg)));
    gen->nfgen_family = NFPROTO_IPV4;
    mnl_attr_put_strz(m.nlh, 1, "hanat");
    return notification_about(m.nlh, m.nlh->nlmsg_len, "hanat").value().rank;
  };
  EXPECT_GT(rank(NFT_MSG_DELTABLE), rank(NFT_MSG_DELCHAIN));
  EXPECT_GT(rank(NFT_MSG_DELCHAIN), rank(NFT_MSG_DELRULE));
  EXPECT_GT(rank(NFT_MSG_DELRULE), rank(NFT_MSG_NEWTABLE));
  EXPECT_GT(rank(NFT_MSG_NEWTABLE), rank(NFT_MSG_NEWRULE));
}

TEST(NftNotification, IgnoresOtherTablesFamiliesAndTheGeneration) {
  EXPECT_EQ(about(NFT_MSG_DELTABLE, NFPROTO_IPV4, "filter"), std::nullopt);
  EXPECT_EQ(about(NFT_MSG_DELTABLE, NFPROTO_IPV4, "hanat2"), std::nullopt);
  EXPECT_EQ(about(NFT_MSG_DELTABLE, NFPROTO_INET, "hanat"), std::nullopt);
  EXPECT_EQ(about(NFT_MSG_DELTABLE, NFPROTO_IPV6, "hanat"), std::nullopt);
  EXPECT_EQ(about(NFT_MSG_NEWGEN, NFPROTO_UNSPEC, nullptr), std::nullopt);
  // A renamed table: notifications follow the name asked for.
  EXPECT_EQ(about(NFT_MSG_DELTABLE, NFPROTO_IPV4, "hanat", nullptr, 0, "wan_nat"), std::nullopt);
  EXPECT_EQ(about(NFT_MSG_DELTABLE, NFPROTO_IPV4, "wan_nat", nullptr, 0, "wan_nat"),
            "table deleted");
}

TEST(NftNotification, MalformedMessagesAreIgnored) {
  Msg m;
  m.nlh = mnl_nlmsg_put_header(m.buf.data());
  m.nlh->nlmsg_type = static_cast<uint16_t>((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_DELTABLE);
  // No nfgenmsg at all.
  EXPECT_FALSE(notification_about(m.nlh, m.nlh->nlmsg_len, "hanat"));
  // A length beyond what was received.
  auto* gen = static_cast<nfgenmsg*>(mnl_nlmsg_put_extra_header(m.nlh, sizeof(nfgenmsg)));
  gen->nfgen_family = NFPROTO_IPV4;
  mnl_attr_put_strz(m.nlh, 1, "hanat");
  EXPECT_FALSE(notification_about(m.nlh, m.nlh->nlmsg_len - 4, "hanat"));
  EXPECT_FALSE(notification_about(m.nlh, 3, "hanat"));
  // A table name without its terminating NUL is not read past its attribute.
  auto* attr = static_cast<nlattr*>(mnl_nlmsg_get_payload_offset(m.nlh, sizeof(nfgenmsg)));
  attr->nla_len = static_cast<uint16_t>(MNL_ATTR_HDRLEN + 3);  // "han", no NUL
  EXPECT_FALSE(notification_about(m.nlh, m.nlh->nlmsg_len, "hanat"));
  // Another subsystem (conntrack) with the same message number.
  m.nlh->nlmsg_type = static_cast<uint16_t>((NFNL_SUBSYS_CTNETLINK << 8) | NFT_MSG_DELTABLE);
  EXPECT_FALSE(notification_about(m.nlh, m.nlh->nlmsg_len, "hanat"));
}

}  // namespace
}  // namespace hanat::netfilter
