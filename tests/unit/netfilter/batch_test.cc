// SPDX-License-Identifier: GPL-2.0-or-later
// Golden and round-trip tests of the batch builder: no kernel involved. The golden rule files
// were produced by `nft --debug=netlink` (tests/golden/nft/regen.sh), so equality means hanat
// builds exactly the expressions nft builds for the same rule.
#include "netfilter/batch.h"

#include <libmnl/libmnl.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <malloc.h>

#include <fstream>
#include <sstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace hanat::netfilter {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

std::string read_golden(const std::string& name) {
  std::ifstream in(std::string(HANAT_NFT_GOLDEN_DIR) + "/" + name);
  EXPECT_TRUE(in.good()) << "missing golden file " << name;
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

struct ParsedMsg {
  uint16_t type;
  uint16_t flags;
  uint32_t seq;
  RulePtr rule{nullptr, nftnl_rule_free};
};

// Walks the batch bytes as the kernel would and parses each NEWRULE back with libnftnl.
std::vector<ParsedMsg> parse(const Batch& b) {
  std::vector<ParsedMsg> out;
  int len = static_cast<int>(b.bytes.size());
  for (auto* nlh = reinterpret_cast<const nlmsghdr*>(b.bytes.data()); mnl_nlmsg_ok(nlh, len);
       nlh = mnl_nlmsg_next(nlh, &len)) {
    ParsedMsg m{nlh->nlmsg_type, nlh->nlmsg_flags, nlh->nlmsg_seq};
    if (nlh->nlmsg_type == ((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWRULE)) {
      m.rule.reset(nftnl_rule_alloc());
      EXPECT_GE(nftnl_rule_nlmsg_parse(nlh, m.rule.get()), 0);
    }
    out.push_back(std::move(m));
  }
  EXPECT_EQ(len, 0) << "trailing bytes in batch";
  return out;
}

// The rules of a batch as `nft --debug=netlink` prints them: each block, then a blank line.
std::string debug_text(const Batch& b) {
  std::string out;
  for (const auto& m : parse(b)) {
    if (m.rule) out += rule_debug_text(m.rule.get()) + "\n";
  }
  return out;
}

NatSpec spec(std::string ifname, std::vector<std::string> cidrs, bool random, bool persistent) {
  NatSpec s;
  s.egress_interface = std::move(ifname);
  s.source_cidrs = std::move(cidrs);
  s.fully_random = random;
  s.persistent = persistent;
  return s;
}

TEST(BatchGolden, AnySource) {
  auto b = build_batch(spec("eth0", {}, false, false), 1);
  ASSERT_TRUE(b) << b.error().message;
  EXPECT_EQ(debug_text(*b), read_golden("any_source.txt"));
}

TEST(BatchGolden, CidrsFullyRandom) {
  auto b =
      build_batch(spec("ens5", {"198.18.0.0/15", "198.19.1.0/24", "198.0.0.0/8"}, true, false), 1);
  ASSERT_TRUE(b) << b.error().message;
  EXPECT_EQ(debug_text(*b), read_golden("cidrs_fully_random.txt"));
}

TEST(BatchGolden, HostAndOddPrefixPersistent) {
  auto b = build_batch(
      spec("eth1", {"198.18.1.7/32", "198.18.1.64/26", "198.19.255.255"}, true, true), 1);
  ASSERT_TRUE(b) << b.error().message;
  EXPECT_EQ(debug_text(*b), read_golden("host_and_odd_prefix_persistent.txt"));
}

TEST(BatchGolden, PersistentLongInterfaceName) {
  auto b = build_batch(spec("averyveryverylo", {"198.18.0.0/16"}, false, true), 1);
  ASSERT_TRUE(b) << b.error().message;
  EXPECT_EQ(debug_text(*b), read_golden("persistent_long_ifname.txt"));
}

TEST(BatchGolden, ZeroPrefixMeansAnySource) {
  auto b = build_batch(spec("eth0", {"0.0.0.0/0"}, false, false), 1);
  ASSERT_TRUE(b);
  EXPECT_EQ(debug_text(*b), read_golden("any_source.txt"));
}

TEST(BatchGolden, ForwardCounters) {
  auto s = spec("eth0", {}, false, false);
  s.forward_counters = true;
  auto b = build_batch(s, 1);
  ASSERT_TRUE(b) << b.error().message;
  EXPECT_EQ(debug_text(*b), read_golden("forward_counters.txt"));
}

NatSpec snat_zone_spec() {
  auto s = spec("eth0", {"198.18.0.0/15"}, false, false);
  s.leak_counter = true;
  s.snat = {{{"198.18.2.0/24", "198.18.3.0/25"}, "198.18.0.20"}};
  return s;
}

TEST(BatchGolden, SnatForAZoneAheadOfMasquerade) {
  auto b = build_batch(snat_zone_spec(), 1);
  ASSERT_TRUE(b) << b.error().message;
  EXPECT_EQ(debug_text(*b), read_golden("snat_zone.txt"));
  EXPECT_THAT(b->what(b->begin_seq + 5),
              HasSubstr("rule 1 in chain ip hanat postrouting (oifname \"eth0\" ip saddr "
                        "198.18.2.0/24 snat to 198.18.0.20)"));
}

TEST(BatchGolden, SnatInTheFormTheKernelDumpsItBack) {
  // The read-back comparison expects what the kernel dumps (golden file from
  // `nft --debug=netlink list table`), not what nft sends.
  const auto s = snat_zone_spec();
  auto rules = desired_rules(s, /*as_dumped=*/true);
  auto leak = leak_counter_rules(s);
  ASSERT_TRUE(rules);
  ASSERT_TRUE(leak);
  std::string text;
  for (const auto& r : *rules) text += rule_debug_text(r.get()) + "\n";
  for (const auto& r : *leak) text += rule_debug_text(r.get()) + "\n";
  EXPECT_EQ(text, read_golden("snat_zone_dumped.txt"));
}

TEST(BatchSpec, SnatRuleWithoutSourcesOrWithABadAddressIsRefused) {
  auto s = spec("eth0", {}, false, false);
  s.snat = {{{}, "198.18.0.20"}};
  auto b = build_batch(s, 1);
  ASSERT_FALSE(b);
  EXPECT_EQ(b.error().message, "nat snat to 198.18.0.20: no source CIDR");
  s.snat = {{{"198.18.2.0/24"}, "198.18.0.300"}};
  b = build_batch(s, 1);
  ASSERT_FALSE(b);
  EXPECT_EQ(b.error().message, "nat snat address \"198.18.0.300\": not an IPv4 address");
}

TEST(BatchGolden, LeakCounterAfterSourceNat) {
  auto s = spec("eth0", {"198.18.0.0/15", "198.19.1.64/26"}, false, false);
  s.leak_counter = true;
  auto b = build_batch(s, 1);
  ASSERT_TRUE(b) << b.error().message;
  EXPECT_EQ(debug_text(*b), read_golden("leak_counter.txt"));
  const std::string d = describe(*b);
  // srcnat + 1: after the nat hook has rewritten the source of every NATed packet.
  EXPECT_THAT(d, HasSubstr("newchain ip hanat leak_out type filter hook postrouting prio 101 "
                           "[create,ack]\n"));
  EXPECT_EQ(b->what(b->end_seq - 1),
            "rule 2 in chain ip hanat leak_out (oifname \"eth0\" ip saddr 198.19.1.64/26 ct "
            "direction original fib saddr type unicast counter)");
  // Any source: one rule without a saddr match, as the masquerade rule.
  auto any = spec("eth0", {}, false, false);
  any.leak_counter = true;
  auto r = leak_counter_rules(any);
  ASSERT_TRUE(r);
  ASSERT_EQ(r->size(), 1U);
  EXPECT_THAT(rule_debug_text((*r)[0].get()), Not(HasSubstr("payload")));
}

TEST(Batch, ForwardCountingChainsAreInTheSameTransaction) {
  auto s = spec("eth0", {}, false, false);
  s.forward_counters = true;
  auto b = build_batch(s, 1);
  ASSERT_TRUE(b) << b.error().message;
  const std::string d = describe(*b);
  EXPECT_THAT(d, HasSubstr("seq 7 newchain ip hanat forward_in type filter hook prerouting "
                           "prio -150 [create,ack]\n"));
  EXPECT_THAT(d, HasSubstr("seq 9 newchain ip hanat forward_out type filter hook postrouting "
                           "prio -150 [create,ack]\n"));
  EXPECT_EQ(b->end_seq, 11U);
  EXPECT_EQ(b->what(8),
            "rule 1 in chain ip hanat forward_in (ct direction original ip ttl > 1 fib daddr type "
            "unicast counter)");
  EXPECT_EQ(b->what(10),
            "rule 1 in chain ip hanat forward_out (ct direction original fib saddr type unicast "
            "counter)");
  // Off (the default), the table is the masquerade chain alone.
  auto plain = build_batch(spec("eth0", {}, false, false), 1);
  ASSERT_TRUE(plain);
  EXPECT_THAT(describe(*plain), Not(HasSubstr("forward_")));
}

TEST(Batch, CounterIsRenderedWithoutItsValuesAndReadSeparately) {
  auto s = spec("eth0", {}, false, false);
  auto r = forward_counter_rule(s, true);
  ASSERT_TRUE(r);
  EXPECT_EQ(rule_expressions(r->get()).back(), "[ counter ]");
  EXPECT_EQ(rule_counter_packets(r->get()), 0U);
  nftnl_expr_iter* it = nftnl_expr_iter_create(r->get());
  nftnl_expr* last = nullptr;
  for (nftnl_expr* e = nftnl_expr_iter_next(it); e != nullptr; e = nftnl_expr_iter_next(it)) {
    last = e;
  }
  nftnl_expr_iter_destroy(it);
  ASSERT_NE(last, nullptr);
  nftnl_expr_set_u64(last, NFTNL_EXPR_CTR_PACKETS, 4242);
  EXPECT_EQ(rule_counter_packets(r->get()), 4242U);
  EXPECT_EQ(rule_expressions(r->get()).back(), "[ counter ]");
  auto masq = desired_rules(s);
  ASSERT_TRUE(masq);
  EXPECT_EQ(rule_counter_packets((*masq)[0].get()), std::nullopt);
}

TEST(Batch, OneTransactionReplacingTheTable) {
  auto b = build_batch(spec("eth0", {"198.18.0.0/15", "198.19.0.0/16"}, false, false), 100);
  ASSERT_TRUE(b) << b.error().message;
  EXPECT_EQ(describe(*b),
            "seq 100 batch begin\n"
            "seq 101 newtable ip hanat [create,ack]\n"
            "seq 102 deltable ip hanat [ack]\n"
            "seq 103 newtable ip hanat [create,ack]\n"
            "seq 104 newchain ip hanat postrouting type nat hook postrouting prio 100 "
            "[create,ack]\n"
            "seq 105 newrule [create,append,ack]\n"
            "ip hanat postrouting\n"
            "  [ meta load oifname => reg 1 ]\n"
            "  [ cmp eq reg 1 0x30687465 0x00000000 0x00000000 0x00000000 ]\n"
            "  [ payload load 4b @ network header + 12 => reg 1 ]\n"
            "  [ bitwise reg 1 = ( reg 1 & 0x0000feff ) ^ 0x00000000 ]\n"
            "  [ cmp eq reg 1 0x000012c6 ]\n"
            "  [ masq ]\n"
            "seq 106 newrule [create,append,ack]\n"
            "ip hanat postrouting\n"
            "  [ meta load oifname => reg 1 ]\n"
            "  [ cmp eq reg 1 0x30687465 0x00000000 0x00000000 0x00000000 ]\n"
            "  [ payload load 2b @ network header + 12 => reg 1 ]\n"
            "  [ cmp eq reg 1 0x000013c6 ]\n"
            "  [ masq ]\n"
            "seq 107 batch end\n");
  EXPECT_EQ(b->begin_seq, 100U);
  EXPECT_EQ(b->end_seq, 107U);
  EXPECT_EQ(b->next_seq(), 108U);
}

TEST(Batch, EveryObjectMessageAsksForAnAckAndIsNamed) {
  auto b = build_batch(spec("eth0", {"198.18.0.0/15", "198.19.0.0/16"}, true, false), 7);
  ASSERT_TRUE(b);
  const auto msgs = parse(*b);
  ASSERT_EQ(msgs.size(), 8U);
  ASSERT_EQ(b->objects.size(), 6U);
  for (size_t i = 1; i + 1 < msgs.size(); ++i) {
    EXPECT_TRUE(msgs[i].flags & NLM_F_ACK) << "message " << i;
    EXPECT_EQ(b->objects[i - 1].first, msgs[i].seq);
  }
  EXPECT_EQ(b->what(8), "table ip hanat");
  EXPECT_EQ(b->what(11), "chain ip hanat postrouting");
  EXPECT_EQ(b->what(12),
            "rule 1 in chain ip hanat postrouting (oifname \"eth0\" ip saddr 198.18.0.0/15 "
            "masquerade fully-random)");
  EXPECT_EQ(b->what(13),
            "rule 2 in chain ip hanat postrouting (oifname \"eth0\" ip saddr 198.19.0.0/16 "
            "masquerade fully-random)");
  EXPECT_EQ(b->what(7), "batch");
}

TEST(Batch, RoundTripKeepsExpressions) {
  const auto s = spec("eth0", {"198.18.0.0/15", "198.19.1.7/32"}, true, true);
  auto b = build_batch(s, 1);
  auto want = desired_rules(s);
  ASSERT_TRUE(b && want);
  std::vector<std::vector<std::string>> parsed;
  for (const auto& m : parse(*b)) {
    if (m.rule) {
      parsed.push_back(rule_expressions(m.rule.get()));
      EXPECT_STREQ(nftnl_rule_get_str(m.rule.get(), NFTNL_RULE_TABLE), "hanat");
      EXPECT_STREQ(nftnl_rule_get_str(m.rule.get(), NFTNL_RULE_CHAIN), "postrouting");
    }
  }
  ASSERT_EQ(parsed.size(), want->size());
  for (size_t i = 0; i < parsed.size(); ++i) {
    EXPECT_EQ(parsed[i], rule_expressions((*want)[i].get()));
  }
  // rule_expressions renders each expression exactly as nftnl_rule_snprintf does.
  std::string joined = "ip hanat postrouting\n";
  for (const auto& e : parsed[0]) joined += "  " + e + "\n";
  EXPECT_EQ(rule_debug_text((*want)[0].get()), joined);
}

TEST(Batch, CustomTableName) {
  auto s = spec("eth0", {}, false, false);
  s.table = "hanat_test";
  auto b = build_batch(s, 1);
  ASSERT_TRUE(b);
  EXPECT_THAT(describe(*b), HasSubstr("seq 2 newtable ip hanat_test [create,ack]"));
  EXPECT_THAT(debug_text(*b), HasSubstr("ip hanat_test postrouting"));
}

TEST(Batch, RemovalIsOneTransaction) {
  auto b = build_removal("hanat", 40);
  ASSERT_TRUE(b);
  EXPECT_EQ(describe(*b),
            "seq 40 batch begin\n"
            "seq 41 newtable ip hanat [create,ack]\n"
            "seq 42 deltable ip hanat [ack]\n"
            "seq 43 batch end\n");
}

TEST(Batch, InvalidSpecIsAnErrorNotABatch) {
  auto b = build_batch(spec("eth0", {"198.18.0.0/40"}, false, false), 1);
  ASSERT_FALSE(b);
  EXPECT_EQ(b.error().message, "nat source CIDR \"198.18.0.0/40\": prefix length must be 0..32");
  EXPECT_FALSE(build_batch(spec("", {}, false, false), 1));
  EXPECT_FALSE(build_removal("", 1));
}

TEST(Batch, DescribeSurvivesGarbage) {
  auto b = build_batch(spec("eth0", {"198.18.0.0/15"}, false, false), 1);
  ASSERT_TRUE(b);
  Batch cut = *b;
  cut.bytes.resize(cut.bytes.size() - 7);  // the END message is now truncated
  EXPECT_THAT(describe(cut), HasSubstr("trailing"));
  Batch noise;
  for (int i = 0; i < 512; ++i) noise.bytes.push_back(static_cast<uint8_t>(i * 37 + 11));
  (void)describe(noise);  // must not crash; content is meaningless
  // A NEWTABLE without a name attribute is described, not dereferenced.
  Batch bare = *b;
  auto* nlh = reinterpret_cast<nlmsghdr*>(bare.bytes.data());
  nlh = reinterpret_cast<nlmsghdr*>(reinterpret_cast<uint8_t*>(nlh) + NLMSG_ALIGN(nlh->nlmsg_len));
  nlh->nlmsg_len = static_cast<uint32_t>(NLMSG_LENGTH(4));  // keep only nfgenmsg; drop attrs
  EXPECT_THAT(describe(bare), HasSubstr("newtable ip (none)"));
}

TEST(Batch, ManyRulesSpanPagesWithoutSplittingMessages) {
  std::vector<std::string> cidrs;
  for (int i = 0; i < 256; ++i) {
    for (int j = 0; j < 4; ++j) {
      cidrs.push_back("198." + std::to_string(18 + (i & 1)) + "." + std::to_string(i) + "." +
                      std::to_string(j * 64) + "/26");
    }
  }
  auto b = build_batch(spec("eth0", cidrs, false, false), 1);
  ASSERT_TRUE(b);
  EXPECT_GT(b->bytes.size(), 16U * 1024U) << "should need more than one page";
  const auto msgs = parse(*b);
  ASSERT_EQ(msgs.size(), cidrs.size() + 6);
  EXPECT_EQ(msgs.front().type, NFNL_MSG_BATCH_BEGIN);
  EXPECT_EQ(msgs.back().type, NFNL_MSG_BATCH_END);
  for (size_t i = 0; i < msgs.size(); ++i) EXPECT_EQ(msgs[i].seq, i + 1);
}

namespace hanat::netfilter {
namespace {

// Every byte of the batch is defined: built once with fresh heap memory filled with 0x5a
// and once with 0xa5 (glibc's M_PERTURB), the bytes are the same. Before the fix, the
// padding after attributes came from libnftnl's uninitialised page buffer.
TEST(BatchBytes, NoUninitialisedBytesReachTheKernel) {
  auto build = [](int perturb) {
    mallopt(M_PERTURB, perturb);
    NatSpec s;
    s.table = "hanat";
    s.egress_interface = "pub";
    s.source_cidrs = {"198.18.0.0/15", "198.19.1.0/24"};
    auto b = build_batch(s, 7);
    mallopt(M_PERTURB, 0);
    return b ? b->bytes : std::vector<std::uint8_t>{};
  };
  auto a = build(0x5a);
  auto b = build(0xa5);
  ASSERT_FALSE(a.empty());
  EXPECT_EQ(a, b);
}

}  // namespace
}  // namespace hanat::netfilter

TEST(Batch, RenameDeletesTheOldTableInTheSameTransaction) {
  auto b = build_batch(spec("eth0", {}, false, false), 1, "hanat_old");
  ASSERT_TRUE(b) << b.error().message;
  const std::string d = describe(*b);
  EXPECT_THAT(d, HasSubstr("seq 2 newtable ip hanat_old [create,ack]\n"));
  EXPECT_THAT(d, HasSubstr("seq 3 deltable ip hanat_old [ack]\n"));
  EXPECT_THAT(d, HasSubstr("seq 4 newtable ip hanat [create,ack]\n"));
  EXPECT_EQ(b->begin_seq, 1U);
  // The same name is no rename; a bad old name is refused like a bad new one.
  auto same = build_batch(spec("eth0", {}, false, false), 1, "hanat");
  ASSERT_TRUE(same);
  EXPECT_THAT(describe(*same), Not(HasSubstr("seq 5 newtable")));
  EXPECT_FALSE(build_batch(spec("eth0", {}, false, false), 1, "1bad"));
}

}  // namespace
}  // namespace hanat::netfilter
