// SPDX-License-Identifier: GPL-2.0-or-later
// The netfilter module against the real kernel, inside network namespaces this test creates.
// Nothing is written to the host's own namespace: every netlink socket is opened and every
// /proc/sys/net path resolved after EnterNetns, and TearDown checks that the host's ruleset
// and ip_forward are as they were.
#include <arpa/inet.h>
#include <jansson.h>
#include <libmnl/libmnl.h>
#include <libnftnl/common.h>
#include <libnftnl/rule.h>
#include <libnftnl/table.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <chrono>
#include <fstream>
#include <memory>
#include <sstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "core/daemon/forward_check.h"
#include "netfilter/batch.h"
#include "netfilter/manager.h"
#include "netfilter/netlink.h"
#include "tests/integration/netfilter/netns_util.h"
#include "tests/support/uv_test_util.h"

namespace hanat::netfilter {
namespace {

using namespace std::chrono_literals;
using testing::capture;
using testing::EnterNetns;
using ::testing::HasSubstr;
using testing::Netns;
using testing::sh;
using ::testing::StartsWith;

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// `nft -j` output without the metainfo object and, if asked, without kernel-assigned
// handles, re-serialised with sorted keys so equal content compares equal as text.
std::string normalize_nft_json(const std::string& text, bool drop_handles) {
  json_error_t err;
  json_t* root = json_loads(text.c_str(), 0, &err);
  if (root == nullptr) return "unparsable JSON: " + std::string(err.text) + ": " + text;
  json_t* items = json_object_get(root, "nftables");
  json_t* out = json_array();
  size_t i;
  json_t* item;
  json_array_foreach(items, i, item) {
    if (json_object_get(item, "metainfo") != nullptr) continue;
    if (drop_handles) {
      const char* key;
      json_t* obj;
      json_object_foreach(item, key, obj) {
        json_object_del(obj, "handle");
      }
    }
    json_array_append(out, item);
  }
  char* dumped = json_dumps(out, JSON_SORT_KEYS | JSON_INDENT(1));
  std::string s = dumped ? dumped : "";
  free(dumped);
  json_decref(out);
  json_decref(root);
  return s;
}

NatSpec wan_spec() {
  NatSpec s;
  s.egress_interface = "wan0";
  s.source_cidrs = {"198.18.0.0/15", "198.19.1.0/24"};
  s.fully_random = true;
  return s;
}

// What these tests could leak into the host's namespace, captured before each test and
// re-checked after it: the host's tables of the names the tests create, and ip_forward.
// Not the whole ruleset: other ctest jobs (the lab, the package test) run beside this one
// and may change the host's rules for reasons of their own.
struct HostState {
  std::string tables;
  std::string ip_forward;
};
HostState host_state() {
  std::istringstream lines(capture("nft list tables 2>&1"));
  std::string tables;
  for (std::string line; std::getline(lines, line);) {
    const auto name = line.substr(line.find_last_of(' ') + 1);
    for (const char* ours :
         {"hanat", "hanat_b", "lab_nofwd", "other", "first", "second", "foreign", "mine"}) {
      if (name == ours) tables += line + "\n";
    }
  }
  return {tables, read_file("/proc/sys/net/ipv4/ip_forward")};
}

class NetfilterNetns : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (testing::netns_skip_reason().empty()) testing::remove_stale_netns();
  }

  void SetUp() override {
    if (auto why = testing::netns_skip_reason(); !why.empty()) GTEST_SKIP() << why;
    host_before_ = host_state();
    nat_ = std::make_unique<Netns>("nat");
    ASSERT_TRUE(nat_->ok()) << "could not create namespace " << nat_->name();
    // The egress interface lives only inside the test namespace, so its fixed name cannot
    // collide with anything on the host or in other tests.
    ASSERT_EQ(nat_->ip("link add wan0 type veth peer name wan0p"), 0);
    ASSERT_EQ(nat_->ip("link set wan0 up"), 0);
    enter_ = std::make_unique<EnterNetns>(*nat_);
    ASSERT_TRUE(enter_->ok()) << "could not enter " << nat_->name();
  }

  void TearDown() override {
    enter_.reset();  // back to the host namespace first
    nat_.reset();
    if (host_before_) {
      const HostState after = host_state();
      EXPECT_EQ(after.tables, host_before_->tables)
          << "a test's nftables table leaked into the host";
      EXPECT_EQ(after.ip_forward, host_before_->ip_forward) << "the host's ip_forward changed";
    }
  }

  std::string nft(const std::string& args, int* rc = nullptr) {
    return capture(nat_->exec("nft " + args + " 2>&1"), rc);
  }
  std::string ns_sysctl(const std::string& path) {
    return capture(nat_->exec("cat /proc/sys/" + path));
  }

  std::optional<HostState> host_before_;
  std::unique_ptr<Netns> nat_;
  std::unique_ptr<EnterNetns> enter_;
};

TEST_F(NetfilterNetns, CommitThenReadBackMatchesDesiredState) {
  auto nl = Netlink::open();
  ASSERT_TRUE(nl) << nl.error().message;
  auto missing = nl->read_table("hanat");
  ASSERT_TRUE(missing) << missing.error().message;
  EXPECT_FALSE(missing->exists);
  auto batch = build_batch(wan_spec(), nl->next_seq());
  ASSERT_TRUE(batch);
  auto st = nl->commit(*batch);
  ASSERT_TRUE(st) << st.error().message;
  auto have = nl->read_table("hanat");
  ASSERT_TRUE(have) << have.error().message;
  auto want = desired_state(wan_spec());
  ASSERT_TRUE(want);
  EXPECT_EQ(compare(*want, *have), std::nullopt);
  EXPECT_TRUE(nl->verify(wan_spec()));
  // A different spec does not verify, and says why.
  auto other = wan_spec();
  other.persistent = true;
  auto v = nl->verify(other);
  ASSERT_FALSE(v);
  EXPECT_THAT(v.error().message, HasSubstr("rule 1 in chain ip hanat postrouting"));
}

TEST_F(NetfilterNetns, ZoneSnatReadsBackAsDesiredAndNothingElseVerifies) {
  // The kernel dumps `snat to` with addr_max and the MAP_IPS flag it set itself
  // (nft_nat_init): the read-back must still match, and a drift check must not repair it
  // forever.
  auto nl = Netlink::open();
  ASSERT_TRUE(nl) << nl.error().message;
  auto spec = wan_spec();
  spec.leak_counter = true;
  spec.snat = {{{"198.18.2.0/24", "198.18.3.0/25"}, "198.18.0.20"}};
  auto batch = build_batch(spec, nl->next_seq());
  ASSERT_TRUE(batch) << batch.error().message;
  auto st = nl->commit(*batch);
  ASSERT_TRUE(st) << st.error().message;
  auto have = nl->read_table("hanat");
  ASSERT_TRUE(have) << have.error().message;
  auto want = desired_state(spec);
  ASSERT_TRUE(want);
  EXPECT_EQ(compare(*want, *have), std::nullopt);
  EXPECT_TRUE(nl->verify(spec));
  EXPECT_THAT(nft("list table ip hanat"), HasSubstr("ip saddr 198.18.2.0/24 snat to 198.18.0.20"));
  auto other = spec;
  other.snat[0].address = "198.18.0.21";
  auto v = nl->verify(other);
  ASSERT_FALSE(v);
  EXPECT_THAT(v.error().message, HasSubstr("rule 1 in chain ip hanat postrouting"));
}

TEST_F(NetfilterNetns, ThousandRuleBatchCommitsAndVerifies) {
  // More ACKs than a default-sized netlink receive buffer holds: every one must arrive.
  NatSpec spec;
  spec.egress_interface = "wan0";
  for (int i = 0; i < 1024; ++i) {
    spec.source_cidrs.push_back("198." + std::to_string(18 + i / 512) + "." +
                                std::to_string((i / 2) % 256) + "." +
                                std::to_string((i % 2) * 128) + "/25");
  }
  auto nl = Netlink::open();
  ASSERT_TRUE(nl);
  auto batch = build_batch(spec, nl->next_seq());
  ASSERT_TRUE(batch);
  auto c = nl->commit(*batch);
  ASSERT_TRUE(c) << c.error().message;
  auto v = nl->verify(spec);
  EXPECT_TRUE(v) << v.error().message;
  int rc = 0;
  const std::string listing = nft("-a list chain ip hanat postrouting", &rc);
  ASSERT_EQ(rc, 0);
  EXPECT_THAT(listing, HasSubstr("ip saddr 198.19.255.128/25 masquerade"));
}

TEST_F(NetfilterNetns, ApplyTwiceLeavesOneTableEqualToExpectedJson) {
  uv::Loop loop;
  {
    NatManager m(loop);
    auto a = m.apply(wan_spec(), {});
    ASSERT_TRUE(a) << a.error().message;
    auto b = m.apply(wan_spec(), {});
    ASSERT_TRUE(b) << b.error().message;
    EXPECT_TRUE(m.health().ok);
    EXPECT_EQ(m.counters().applies, 2U);
  }
  testing::expect_clean_close(loop);
  int rc = 0;
  const std::string tables = nft("list tables", &rc);
  EXPECT_EQ(rc, 0);
  EXPECT_EQ(tables, "table ip hanat\n");
  const std::string got = nft("-j list table ip hanat", &rc);
  ASSERT_EQ(rc, 0) << got;
  EXPECT_EQ(normalize_nft_json(got, true),
            normalize_nft_json(read_file(HANAT_NFT_GOLDEN_DIR "/table_wan0.json"), true));
  // And the forwarding the NAT needs is on, in this namespace.
  EXPECT_EQ(ns_sysctl("net/ipv4/ip_forward"), "1\n");
}

TEST_F(NetfilterNetns, ForeignTableIsUntouchedByApplyAndRemove) {
  const std::string foreign =
      "table ip foreign { chain input { type filter hook input priority 0; policy accept; "
      "ip saddr 198.18.7.7 counter drop; }; chain postrouting { type nat hook postrouting "
      "priority srcnat; oifname \"wan0\" masquerade; }; }";
  int rc = 0;
  const std::string out = capture(nat_->exec("nft '" + foreign + "' 2>&1"), &rc);
  ASSERT_EQ(rc, 0) << out;
  const std::string before = nft("-j list table ip foreign");
  uv::Loop loop;
  {
    NatManager m(loop);
    ASSERT_TRUE(m.apply(wan_spec(), {}));
    ASSERT_TRUE(m.apply(wan_spec(), {}));
    EXPECT_TRUE(m.check());
    EXPECT_EQ(m.counters().table_repairs, 0U) << "the foreign table must not count as drift";
    EXPECT_EQ(nft("list tables"), "table ip foreign\ntable ip hanat\n");
    auto r = m.remove();
    ASSERT_TRUE(r) << r.error().message;
  }
  testing::expect_clean_close(loop);
  // Same handles and all: the foreign table was not recreated either.
  EXPECT_EQ(normalize_nft_json(nft("-j list table ip foreign"), false),
            normalize_nft_json(before, false));
  EXPECT_EQ(nft("list tables"), "table ip foreign\n");
}

// nat.table set to the name of a table someone else made: hanat would replace it whole.
// It is refused, the table is left exactly as it was, and a rename to it keeps hanat's.
TEST_F(NetfilterNetns, TableOfTheSameNameThatHanatDidNotCreateIsNeverReplaced) {
  const std::string mine =
      "table ip mine { chain input { type filter hook input priority 0; policy accept; "
      "ip saddr 198.18.7.7 counter drop; }; }";
  int rc = 0;
  const std::string out = capture(nat_->exec("nft '" + mine + "' 2>&1"), &rc);
  ASSERT_EQ(rc, 0) << out;
  const std::string before = nft("-j list table ip mine");
  uv::Loop loop;
  {
    NatManager m(loop);
    auto spec = wan_spec();
    spec.table = "mine";
    auto a = m.apply(spec, {});
    ASSERT_FALSE(a);
    EXPECT_THAT(a.error().message,
                HasSubstr("table ip mine exists and holds chain input, which hanat does not "
                          "create"));
    EXPECT_EQ(nft("-j list table ip mine"), before);
    // Running on its own table, a reload to that name changes nothing either.
    ASSERT_TRUE(m.apply(wan_spec(), {}));
    EXPECT_FALSE(m.apply(spec, {}));
    EXPECT_EQ(nft("-j list table ip mine"), before);
    EXPECT_EQ(nft("list tables"), "table ip mine\ntable ip hanat\n");
    EXPECT_TRUE(m.check());
  }
  testing::expect_clean_close(loop);
  (void)nft("delete table ip mine");
}

TEST_F(NetfilterNetns, RemoveOfAbsentTableSucceedsAndDestroyLeavesRules) {
  uv::Loop loop;
  {
    NatManager m(loop);
    EXPECT_TRUE(m.remove());  // nothing installed: still fine
    ASSERT_TRUE(m.apply(wan_spec(), {}));
  }  // the manager goes away like hanatd exiting: the rules must stay
  testing::expect_clean_close(loop);
  EXPECT_EQ(nft("list tables"), "table ip hanat\n");
}

TEST_F(NetfilterNetns, RenamedTableReplacesTheOldOne) {
  uv::Loop loop;
  {
    NatManager m(loop);
    ASSERT_TRUE(m.apply(wan_spec(), {}));
    auto renamed = wan_spec();
    renamed.table = "hanat_b";
    auto a = m.apply(renamed, {});
    ASSERT_TRUE(a) << a.error().message;
    EXPECT_EQ(nft("list tables"), "table ip hanat_b\n");
    EXPECT_TRUE(m.check());
  }
  testing::expect_clean_close(loop);
}

// A rename is one transaction: delete the old table and create the new one together. The
// failure is injected half way by a table of the new name that another netlink socket
// owns (NFT_TABLE_F_OWNER, Linux 5.12+): the kernel refuses NEWTABLE on it with EPERM
// after the old table's DELTABLE was accepted, and aborts the whole transaction.
TEST_F(NetfilterNetns, RenameThatFailsHalfWayLeavesTheOldTableInPlace) {
  FILE* owner = popen(nat_->exec("nft -i >/dev/null 2>&1").c_str(), "w");
  ASSERT_NE(owner, nullptr);
  std::fputs("add table ip hanat_b { flags owner; }\n", owner);
  std::fflush(owner);
  bool owned = false;
  for (int i = 0; i < 100 && !owned; ++i) {  // polled, at most 5 s
    owned = nft("list tables").find("table ip hanat_b") != std::string::npos;
    if (!owned) ::usleep(50000);
  }
  if (!owned) {
    pclose(owner);
    GTEST_SKIP() << "this kernel or nft has no owner flag for tables (Linux 5.12, nft 1.0.1)";
  }
  uv::Loop loop;
  {
    NatManager m(loop);
    ASSERT_TRUE(m.apply(wan_spec(), {}));
    const std::string before = nft("-j list table ip hanat");
    auto renamed = wan_spec();
    renamed.table = "hanat_b";
    auto a = m.apply(renamed, {});
    ASSERT_FALSE(a);
    EXPECT_THAT(a.error().message, HasSubstr("hanat_b"));
    // The old table is there, unchanged (same handles): the host still masquerades.
    EXPECT_EQ(nft("-j list table ip hanat"), before);
    EXPECT_FALSE(m.health().ok);
    // Once the other owner is gone, the drift check's retry completes the rename, again
    // in one transaction.
    pclose(owner);
    owner = nullptr;
    bool renamed_ok = false;
    for (int i = 0; i < 100 && !renamed_ok; ++i) {
      renamed_ok = m.check().has_value();
      if (!renamed_ok) ::usleep(50000);
    }
    EXPECT_TRUE(renamed_ok);
    EXPECT_EQ(nft("list tables"), "table ip hanat_b\n");
  }
  if (owner != nullptr) pclose(owner);
  testing::expect_clean_close(loop);
}

TEST_F(NetfilterNetns, BadEgressInterfaceIsNamedAndNothingIsInstalled) {
  uv::Loop loop;
  {
    NatManager m(loop);
    auto spec = wan_spec();
    spec.egress_interface = "nosuch0";
    auto a = m.apply(spec, {});
    ASSERT_FALSE(a);
    EXPECT_EQ(a.error().message, "egress interface \"nosuch0\": no such interface");
    EXPECT_FALSE(m.health().ok);
    EXPECT_EQ(m.health().reason, "egress interface \"nosuch0\": no such interface");
    EXPECT_EQ(nft("list tables"), "");
    // Table first, then forwarding: a host must not forward before it can NAT (issue #23).
    EXPECT_EQ(ns_sysctl("net/ipv4/ip_forward"), "0\n");
    spec.egress_interface = "wan0:1";
    auto bad = m.apply(spec, {});
    ASSERT_FALSE(bad);
    EXPECT_EQ(bad.error().message, "nat egress interface \"wan0:1\": contains ':' (not allowed)");
    // The interface appearing later is picked up by the next drift check.
    spec.egress_interface = "late0";
    EXPECT_FALSE(m.apply(spec, {}));
    ASSERT_EQ(nat_->ip("link add late0 type veth peer name late0p"), 0);
    auto c = m.check();
    ASSERT_TRUE(c) << c.error().message;
    EXPECT_TRUE(m.health().ok);
    EXPECT_THAT(nft("list table ip hanat"), HasSubstr("oifname \"late0\""));
    EXPECT_EQ(ns_sysctl("net/ipv4/ip_forward"), "1\n");
  }
  testing::expect_clean_close(loop);
}

// A batch that creates `table ip <name>` with the owner flag: while the socket that
// committed it stays open, nf_tables answers EPERM to everybody else for that table
// (nft_table_lookup: table->nlpid != portid). A real kernel error hanat cannot fix.
Batch owned_table_batch(const std::string& name, uint32_t seq) {
  Batch b;
  std::vector<char> buf(MNL_SOCKET_BUFFER_SIZE);
  mnl_nlmsg_batch* mb = mnl_nlmsg_batch_start(buf.data(), buf.size());
  b.begin_seq = seq;
  nftnl_batch_begin(static_cast<char*>(mnl_nlmsg_batch_current(mb)), seq++);
  mnl_nlmsg_batch_next(mb);
  nftnl_table* t = nftnl_table_alloc();
  nftnl_table_set_u32(t, NFTNL_TABLE_FAMILY, NFPROTO_IPV4);
  nftnl_table_set_str(t, NFTNL_TABLE_NAME, name.c_str());
  nftnl_table_set_u32(t, NFTNL_TABLE_FLAGS, NFT_TABLE_F_OWNER);
  nlmsghdr* nlh =
      nftnl_nlmsg_build_hdr(static_cast<char*>(mnl_nlmsg_batch_current(mb)), NFT_MSG_NEWTABLE,
                            NFPROTO_IPV4, NLM_F_CREATE | NLM_F_ACK, seq);
  nftnl_table_nlmsg_build_payload(nlh, t);
  nftnl_table_free(t);
  b.objects.emplace_back(seq++, "owned table ip " + name);
  mnl_nlmsg_batch_next(mb);
  b.end_seq = seq;
  nftnl_batch_end(static_cast<char*>(mnl_nlmsg_batch_current(mb)), seq);
  mnl_nlmsg_batch_next(mb);
  const auto* p = static_cast<const uint8_t*>(mnl_nlmsg_batch_head(mb));
  b.bytes.assign(p, p + mnl_nlmsg_batch_size(mb));
  mnl_nlmsg_batch_stop(mb);
  return b;
}

// A batch of our own whose third object is bad: a rule for a chain that does not exist.
Batch batch_with_bad_rule(uint32_t seq) {
  Batch b;
  std::vector<char> buf(MNL_SOCKET_BUFFER_SIZE);
  mnl_nlmsg_batch* mb = mnl_nlmsg_batch_start(buf.data(), buf.size());
  b.begin_seq = seq;
  nftnl_batch_begin(static_cast<char*>(mnl_nlmsg_batch_current(mb)), seq++);
  mnl_nlmsg_batch_next(mb);
  for (int i = 0; i < 2; ++i) {
    nftnl_table* t = nftnl_table_alloc();
    nftnl_table_set_u32(t, NFTNL_TABLE_FAMILY, NFPROTO_IPV4);
    nftnl_table_set_str(t, NFTNL_TABLE_NAME, i == 0 ? "first" : "second");
    nlmsghdr* nlh =
        nftnl_nlmsg_build_hdr(static_cast<char*>(mnl_nlmsg_batch_current(mb)), NFT_MSG_NEWTABLE,
                              NFPROTO_IPV4, NLM_F_CREATE | NLM_F_ACK, seq);
    nftnl_table_nlmsg_build_payload(nlh, t);
    nftnl_table_free(t);
    b.objects.emplace_back(seq++, i == 0 ? "table ip first" : "table ip second");
    mnl_nlmsg_batch_next(mb);
  }
  nftnl_rule* r = nftnl_rule_alloc();
  nftnl_rule_set_u32(r, NFTNL_RULE_FAMILY, NFPROTO_IPV4);
  nftnl_rule_set_str(r, NFTNL_RULE_TABLE, "second");
  nftnl_rule_set_str(r, NFTNL_RULE_CHAIN, "nochain");
  nlmsghdr* nlh =
      nftnl_nlmsg_build_hdr(static_cast<char*>(mnl_nlmsg_batch_current(mb)), NFT_MSG_NEWRULE,
                            NFPROTO_IPV4, NLM_F_CREATE | NLM_F_APPEND | NLM_F_ACK, seq);
  nftnl_rule_nlmsg_build_payload(nlh, r);
  nftnl_rule_free(r);
  b.objects.emplace_back(seq++, "rule 1 in chain ip second nochain");
  mnl_nlmsg_batch_next(mb);
  b.end_seq = seq;
  nftnl_batch_end(static_cast<char*>(mnl_nlmsg_batch_current(mb)), seq);
  mnl_nlmsg_batch_next(mb);
  const auto* p = static_cast<const uint8_t*>(mnl_nlmsg_batch_head(mb));
  b.bytes.assign(p, p + mnl_nlmsg_batch_size(mb));
  mnl_nlmsg_batch_stop(mb);
  return b;
}

TEST_F(NetfilterNetns, EachKernelErrorIsMappedToItsObjectAndNothingIsApplied) {
  auto nl = Netlink::open();
  ASSERT_TRUE(nl);
  auto c = nl->commit(batch_with_bad_rule(nl->next_seq()));
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().code, std::errc::no_such_file_or_directory);
  EXPECT_THAT(c.error().message,
              StartsWith("rule 1 in chain ip second nochain: No such file or directory"));
  // All or nothing: the two good tables of the aborted batch do not exist.
  EXPECT_EQ(nft("list tables"), "");
  // The socket is still in step: the next commit gets its own ACKs.
  auto batch = build_batch(wan_spec(), nl->next_seq());
  ASSERT_TRUE(batch);
  auto ok = nl->commit(*batch);
  EXPECT_TRUE(ok) << ok.error().message;
  EXPECT_TRUE(nl->verify(wan_spec()));
}

TEST_F(NetfilterNetns, MissingAckIsBoundedByTheSocketTimeout) {
  auto nl = Netlink::open(100ms);
  ASSERT_TRUE(nl);
  auto batch = build_batch(wan_spec(), nl->next_seq());
  ASSERT_TRUE(batch);
  // Pretend the END message (which nfnetlink never ACKs) were an object awaiting its ACK.
  batch->objects.emplace_back(batch->end_seq, "the message that is never answered");
  batch->end_seq += 1;
  const auto t0 = std::chrono::steady_clock::now();
  auto c = nl->commit(*batch);
  const auto took = std::chrono::steady_clock::now() - t0;
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().code, std::errc::timed_out);
  EXPECT_EQ(c.error().message,
            "the message that is never answered: no ACK from the kernel within 100 ms "
            "(1 outstanding)");
  EXPECT_GE(took, 90ms);
  EXPECT_LT(took, 2s);
}

TEST_F(NetfilterNetns, KernelErrorNamesTheObjectAndMakesDataPlaneUnhealthy) {
  uv::Loop loop;
  {
    NatManager m(loop, ManagerOptions{.drift_interval = 100ms});
    ASSERT_TRUE(m.apply(wan_spec(), {}));
    ASSERT_TRUE(m.health().ok);
    std::vector<Health> seen;
    m.on_health_change([&seen](const Health& h) { seen.push_back(h); });
    // Someone else takes the table name, owning it.
    ASSERT_EQ(sh(nat_->exec("nft delete table ip hanat")), 0);
    auto owner = Netlink::open();
    ASSERT_TRUE(owner);
    auto own = owner->commit(owned_table_batch("hanat", owner->next_seq()));
    ASSERT_TRUE(own) << own.error().message;

    // A direct commit fails on the very first object, named.
    auto nl = Netlink::open();
    ASSERT_TRUE(nl);
    auto batch = build_batch(wan_spec(), nl->next_seq());
    ASSERT_TRUE(batch);
    auto c = nl->commit(*batch);
    ASSERT_FALSE(c);
    EXPECT_EQ(c.error().code, std::errc::operation_not_permitted);
    EXPECT_THAT(c.error().message, StartsWith("table ip hanat: Operation not permitted"));

    // The drift check cannot repair it: unhealthy, with the reason.
    ASSERT_TRUE(testing::run_until(
        loop, [&] { return !m.health().ok; }, 2s));
    EXPECT_THAT(m.health().reason, HasSubstr("repair failed: table ip hanat: Operation not "
                                             "permitted"));
    EXPECT_GE(m.counters().failures, 1U);
    // Once the owner lets go, the next drift check repairs it.
    owner = core::Unexpected(Error{});
    ASSERT_TRUE(testing::run_until(
        loop, [&] { return m.health().ok; }, 2s))
        << m.health().reason;
    EXPECT_EQ(m.counters().table_repairs, 1U);
    ASSERT_GE(seen.size(), 2U);
    EXPECT_FALSE(seen.front().ok);
    EXPECT_TRUE(seen.back().ok);
  }
  testing::expect_clean_close(loop);
}

TEST_F(NetfilterNetns, DeletedTableIsRepairedWithinOneDriftInterval) {
  uv::Loop loop;
  {
    const auto interval = 200ms;
    // The drift timer alone (the safety net when no notification arrives).
    NatManager m(loop, ManagerOptions{.drift_interval = interval, .watch_notifications = false});
    ASSERT_TRUE(m.apply(wan_spec(), {}));
    // Let one clean check pass first.
    ASSERT_TRUE(testing::run_until(
        loop, [&] { return m.counters().checks >= 1; }, 2s));
    EXPECT_EQ(m.counters().table_repairs, 0U);
    ASSERT_EQ(sh(nat_->exec("nft delete table ip hanat")), 0);
    const auto deleted = std::chrono::steady_clock::now();
    // Within one interval (plus scheduling slack for a loaded CI machine).
    ASSERT_TRUE(testing::run_until(
        loop, [&] { return m.counters().table_repairs >= 1; }, interval + 300ms));
    EXPECT_LE(std::chrono::steady_clock::now() - deleted, interval + 300ms);
    EXPECT_EQ(m.last_repair(), "table ip hanat: missing");
    EXPECT_TRUE(m.health().ok);
    EXPECT_EQ(nft("list tables"), "table ip hanat\n");

    // An altered table (rules flushed, a rule added by hand) is repaired as well.
    ASSERT_EQ(sh(nat_->exec("nft flush chain ip hanat postrouting")), 0);
    ASSERT_TRUE(testing::run_until(
        loop, [&] { return m.counters().table_repairs >= 2; }, interval + 300ms));
    EXPECT_EQ(m.last_repair(), "chain ip hanat postrouting: 0 rules, want 2");
    ASSERT_EQ(sh(nat_->exec("nft add rule ip hanat postrouting counter accept")), 0);
    ASSERT_TRUE(testing::run_until(
        loop, [&] { return m.counters().table_repairs >= 3; }, interval + 300ms));
    EXPECT_EQ(m.last_repair(), "chain ip hanat postrouting: 3 rules, want 2");
    EXPECT_TRUE(m.check());
    EXPECT_EQ(m.counters().table_repairs, 3U);
    m.stop();
  }
  testing::expect_clean_close(loop);
}

TEST_F(NetfilterNetns, ForwardingFlippedOffIsRepairedWithinOneDriftInterval) {
  uv::Loop loop;
  {
    const auto interval = 200ms;
    NatManager m(loop, ManagerOptions{.drift_interval = interval});
    ASSERT_TRUE(m.apply(wan_spec(), {}));
    EXPECT_EQ(ns_sysctl("net/ipv4/ip_forward"), "1\n");
    ASSERT_EQ(sh(nat_->exec("sh -c 'echo 0 > /proc/sys/net/ipv4/ip_forward'")), 0);
    ASSERT_EQ(ns_sysctl("net/ipv4/ip_forward"), "0\n");
    ASSERT_TRUE(testing::run_until(
        loop, [&] { return m.counters().sysctl_repairs >= 1; }, interval + 300ms));
    EXPECT_EQ(m.last_repair(), "sysctl net.ipv4.ip_forward is 0, want 1");
    EXPECT_EQ(ns_sysctl("net/ipv4/ip_forward"), "1\n");
    EXPECT_TRUE(m.health().ok);
  }
  testing::expect_clean_close(loop);
}

TEST_F(NetfilterNetns, NatTuningSysctlsAppliedAndVerified) {
  uv::Loop loop;
  {
    NatManager m(loop);
    SysctlSpec s;
    s.tcp_timeout_established_s = 350;  // NAT Gateway's idle timeout
    s.udp_timeout_s = 45;
    ASSERT_TRUE(m.apply(wan_spec(), s));
    EXPECT_EQ(ns_sysctl("net/netfilter/nf_conntrack_tcp_timeout_established"), "350\n");
    EXPECT_EQ(ns_sysctl("net/netfilter/nf_conntrack_udp_timeout"), "45\n");
    // nf_conntrack_max may only be changed in the initial namespace: a value that already
    // matches is fine, a different one is a named error.
    const std::string cur = ns_sysctl("net/netfilter/nf_conntrack_max");
    s.conntrack_max = std::stoull(cur);
    EXPECT_TRUE(m.apply(wan_spec(), s));
    s.conntrack_max = *s.conntrack_max + 1;
    auto r = m.apply(wan_spec(), s);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().message, "sysctl net.netfilter.nf_conntrack_max: Permission denied");
    EXPECT_FALSE(m.health().ok);
    EXPECT_EQ(m.health().reason, r.error().message);
  }
  testing::expect_clean_close(loop);
}

// --- traffic ------------------------------------------------------------------------------

// A UDP socket opened inside `ns` (it stays there after the thread leaves).
int udp_socket_in(const Netns& ns) {
  EnterNetns in(ns);
  if (!in.ok()) return -1;
  return ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
}

sockaddr_in addr(const char* ip, uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  inet_pton(AF_INET, ip, &a.sin_addr);
  return a;
}

// Sends a datagram on `fd` and returns the source address it arrived with at `outside_fd`,
// or "" if it did not arrive. Datagrams already queued at `outside_fd` are dropped first.
std::string source_seen_from(int fd, int outside_fd, uint16_t outside_port) {
  char buf[64];
  while (::recv(outside_fd, buf, sizeof buf, MSG_DONTWAIT) > 0) {
  }
  const sockaddr_in to = addr("198.19.1.2", outside_port);
  const char msg[] = "hanat";
  std::string seen;
  // A first packet can be lost to ARP resolution on fresh veths: retry a few times.
  for (int attempt = 0; attempt < 10 && seen.empty(); ++attempt) {
    (void)::sendto(fd, msg, sizeof msg, 0, reinterpret_cast<const sockaddr*>(&to), sizeof to);
    pollfd p{outside_fd, POLLIN, 0};
    if (::poll(&p, 1, 200) == 1) {
      sockaddr_in from{};
      socklen_t len = sizeof from;
      if (::recvfrom(outside_fd, buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&from), &len) >
          0) {
        char ip[INET_ADDRSTRLEN] = {};
        inet_ntop(AF_INET, &from.sin_addr, ip, sizeof ip);
        seen = ip;
      }
    }
  }
  return seen;
}

// Sends from a fresh socket in the private namespace (so a fresh conntrack entry).
std::string source_seen_outside(const Netns& priv, int outside_fd, uint16_t outside_port) {
  const int fd = udp_socket_in(priv);
  if (fd < 0) return "socket failed";
  std::string seen = source_seen_from(fd, outside_fd, outside_port);
  ::close(fd);
  return seen;
}

// priv (198.18.1.2) -- lan0 [nat] wan0 (198.19.1.1) -- (198.19.1.2) out
// `out` has no route back to 198.18.1.0/24: only masqueraded traffic can be answered.
void build_topology(Netns& nat, Netns& priv, Netns& out) {
  ASSERT_TRUE(priv.ok() && out.ok());
  ASSERT_EQ(nat.ip("link del wan0"), 0);
  ASSERT_EQ(nat.ip("link add lan0 type veth peer name eth0 netns " + priv.name()), 0);
  ASSERT_EQ(nat.ip("link add wan0 type veth peer name eth0 netns " + out.name()), 0);
  ASSERT_EQ(nat.ip("addr add 198.18.1.1/24 dev lan0"), 0);
  ASSERT_EQ(nat.ip("addr add 198.19.1.1/24 dev wan0"), 0);
  ASSERT_EQ(nat.ip("link set lan0 up"), 0);
  ASSERT_EQ(nat.ip("link set wan0 up"), 0);
  ASSERT_EQ(priv.ip("addr add 198.18.1.2/24 dev eth0"), 0);
  ASSERT_EQ(priv.ip("link set eth0 up"), 0);
  ASSERT_EQ(priv.ip("link set lo up"), 0);
  ASSERT_EQ(priv.ip("route add default via 198.18.1.1"), 0);
  ASSERT_EQ(out.ip("addr add 198.19.1.2/24 dev eth0"), 0);
  ASSERT_EQ(out.ip("link set eth0 up"), 0);
}

TEST_F(NetfilterNetns, PrivateTrafficLeavesWithTheNatAddress) {
  Netns priv("priv");
  Netns out("out");
  ASSERT_NO_FATAL_FAILURE(build_topology(*nat_, priv, out));

  const int rx = udp_socket_in(out);
  ASSERT_GE(rx, 0);
  const sockaddr_in bind_to = addr("198.19.1.2", 0);
  ASSERT_EQ(::bind(rx, reinterpret_cast<const sockaddr*>(&bind_to), sizeof bind_to), 0);
  sockaddr_in bound{};
  socklen_t blen = sizeof bound;
  ASSERT_EQ(::getsockname(rx, reinterpret_cast<sockaddr*>(&bound), &blen), 0);
  const uint16_t port = ntohs(bound.sin_port);

  // Control: forwarding on but no NAT — the packet arrives with its private source. This is
  // what the test would see if the masquerade rule were missing.
  ASSERT_TRUE(Sysctl().apply(sysctl_entries({})));
  EXPECT_EQ(source_seen_outside(priv, rx, port), "198.18.1.2");

  uv::Loop loop;
  {
    NatManager m(loop);
    NatSpec spec;
    spec.egress_interface = "wan0";
    spec.source_cidrs = {"198.18.1.0/24"};
    auto a = m.apply(spec, {});
    ASSERT_TRUE(a) << a.error().message;
    EXPECT_EQ(source_seen_outside(priv, rx, port), "198.19.1.1");
  }
  testing::expect_clean_close(loop);
  ::close(rx);
}

TEST_F(NetfilterNetns, ForwardCountersCountForwardedTrafficOnly) {
  Netns priv("priv");
  Netns out("out");
  ASSERT_NO_FATAL_FAILURE(build_topology(*nat_, priv, out));
  const int tx = udp_socket_in(priv);
  ASSERT_GE(tx, 0);
  uv::Loop loop;
  {
    NatManager m(loop);
    NatSpec spec;
    spec.egress_interface = "wan0";
    spec.forward_counters = true;
    ASSERT_TRUE(m.apply(spec, {}));
    auto nl = Netlink::open();
    ASSERT_TRUE(nl);
    auto before = nl->read_forward_counters("hanat");
    ASSERT_TRUE(before) << before.error().message;
    EXPECT_EQ(before->in, 0U);
    EXPECT_EQ(before->out, 0U);

    // The NAT's own traffic (a ping out of wan0 and its reply) crosses no forward path.
    ASSERT_EQ(sh(nat_->exec("ping -c 3 -i 0.2 -W 1 -q 198.19.1.2 >/dev/null")), 0);
    auto local = nl->read_forward_counters("hanat");
    ASSERT_TRUE(local);
    EXPECT_EQ(local->in, 0U);
    EXPECT_EQ(local->out, 0U);

    // Forwarded datagrams from the private host count once in and once out.
    const sockaddr_in to = addr("198.19.1.2", 9);
    const char msg[] = "hanat";
    for (int i = 0; i < 20; ++i) {
      ASSERT_EQ(::sendto(tx, msg, sizeof msg, 0, reinterpret_cast<const sockaddr*>(&to), sizeof to),
                static_cast<ssize_t>(sizeof msg));
    }
    std::optional<ForwardCounters> c;
    ASSERT_TRUE(testing::run_until(
        loop,
        [&] {
          auto r = nl->read_forward_counters("hanat");
          if (r) c = *r;
          return c && c->out >= 20;
        },
        5s));
    EXPECT_EQ(c->in, 20U);
    EXPECT_EQ(c->out, 20U);

    // Counters of a missing chain are a named error.
    ASSERT_EQ(sh(nat_->exec("nft delete chain ip hanat forward_out")), 0);
    auto gone = nl->read_forward_counters("hanat");
    ASSERT_FALSE(gone);
    EXPECT_EQ(gone.error().message, "chain ip hanat forward_out: no counter");
  }
  testing::expect_clean_close(loop);
  ::close(tx);
}

TEST_F(NetfilterNetns, ForwardCheckSeesAKernelDropOfForwardedPacketsAndTheRecovery) {
  Netns priv("priv");
  Netns out("out");
  ASSERT_NO_FATAL_FAILURE(build_topology(*nat_, priv, out));
  const int tx = udp_socket_in(priv);
  ASSERT_GE(tx, 0);
  uv::Loop loop;
  {
    NatManager m(loop);
    NatSpec spec;
    spec.egress_interface = "wan0";
    spec.forward_counters = true;
    ASSERT_TRUE(m.apply(spec, {}));
    std::vector<engine::ForwardWatch::Verdict> verdicts;
    // netfilter reads the counters; the daemon's ForwardCheck judges them (engine rule).
    daemon::ForwardCheck fc(m);
    fc.on_forward_change([&](const engine::ForwardWatch::Verdict& v) { verdicts.push_back(v); });
    daemon::ForwardCheckOptions fo;
    fo.interval = 50ms;
    fc.watch_forwarding(fo);

    // A private host streaming 200 datagrams/s through the NAT.
    const sockaddr_in to = addr("198.19.1.2", 9);
    uv::Timer stream(loop);
    ASSERT_FALSE(stream.start(5ms, 5ms, [&] {
      const char msg[] = "hanat";
      (void)::sendto(tx, msg, sizeof msg, 0, reinterpret_cast<const sockaddr*>(&to), sizeof to);
    }));
    ASSERT_TRUE(testing::run_until(
        loop, [&] { return fc.forward().state() == engine::Health::Up; }, 3s));
    EXPECT_THAT(verdicts.back().detail, HasSubstr("packets forwarded in the last 50 ms"));

    // The kernel now drops every forwarded packet, as a stray firewall rule would. The NAT
    // still answers pings: only the forward check can see it.
    ASSERT_EQ(sh(nat_->exec("nft 'add table ip lab_nofwd; add chain ip lab_nofwd drop_all "
                            "{ type filter hook forward priority -200; policy drop; }'")),
              0);
    const auto dropped = std::chrono::steady_clock::now();
    ASSERT_TRUE(testing::run_until(
        loop, [&] { return fc.forward().state() == engine::Health::Down; }, 3s));
    // fall (3) windows of 50 ms, plus the window in progress and scheduling slack.
    EXPECT_LE(std::chrono::steady_clock::now() - dropped, 1s);
    EXPECT_THAT(verdicts.back().detail,
                HasSubstr("arrived to be forwarded in 150 ms and none left"));
    EXPECT_TRUE(m.health().ok) << "the table and sysctls are fine; only forwarding is not";
    ASSERT_TRUE(fc.forward().recheck_at());

    // The rule goes: after `rise` windows that forward, the check is up again.
    ASSERT_EQ(sh(nat_->exec("nft delete table ip lab_nofwd")), 0);
    ASSERT_TRUE(testing::run_until(
        loop, [&] { return fc.forward().state() == engine::Health::Up; }, 3s));
    EXPECT_FALSE(fc.forward().recheck_at());

    // A drift repair re-creates the table and its counters restart from zero: that is a new
    // baseline, not a stall.
    const auto ups = verdicts.size();
    ASSERT_EQ(sh(nat_->exec("nft delete table ip hanat")), 0);
    ASSERT_TRUE(m.check());
    const auto until = std::chrono::steady_clock::now() + 500ms;
    ASSERT_FALSE(testing::run_until(
        loop, [&] { return std::chrono::steady_clock::now() >= until && verdicts.size() != ups; },
        600ms));
    EXPECT_EQ(fc.forward().state(), engine::Health::Up);
    EXPECT_EQ(m.forward_read_error(), "");

    (void)stream.stop();
    fc.watch_forwarding(std::nullopt);
    EXPECT_EQ(fc.forward().state(), engine::Health::Unknown);
    m.stop();
  }
  testing::expect_clean_close(loop);
  ::close(tx);
}

// --- flows that escaped NAT (issue #23) ---------------------------------------------------

// A UDP socket in `ns` bound to `ip` (port chosen by the kernel); -1 on failure.
int udp_socket_bound(const Netns& ns, const char* ip) {
  const int fd = udp_socket_in(ns);
  if (fd < 0) return -1;
  const sockaddr_in a = addr(ip, 0);
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

uint16_t local_port(int fd) {
  sockaddr_in a{};
  socklen_t len = sizeof a;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) return 0;
  return ntohs(a.sin_port);
}

// The conntrack entry (as /proc/net/nf_conntrack prints it, from its original source on) of
// the UDP flow `src`:`sport` -> 198.19.1.2:`dport` in the NAT namespace, or "" if none.
std::string ct_entry(const Netns& nat, const std::string& src, uint16_t sport, uint16_t dport) {
  const std::string key = "src=" + src + " dst=198.19.1.2 sport=" + std::to_string(sport) +
                          " dport=" + std::to_string(dport) + " ";
  std::istringstream lines(capture(nat.exec("cat /proc/net/nf_conntrack")));
  for (std::string line; std::getline(lines, line);) {
    const auto at = line.find(key);
    if (at == std::string::npos) continue;
    // Drop the counting-down timeout and use count in front of and behind the tuples.
    std::string entry = line.substr(at);
    if (const auto use = entry.find(" use="); use != std::string::npos) entry.resize(use);
    return entry;
  }
  return {};
}

// priv (198.18.1.2, .1.3 and 198.18.9.2) -- lan0 [nat] wan0 -- out, as build_topology, with
// forwarding on and no hanat table: a NAT host whose ip_forward was on before hanatd started.
// A foreign table source-NATs 198.18.1.3 only; its nat chain also keeps conntrack running in
// the namespace, as any host firewall would (with no conntrack user at all the kernel tracks
// nothing, and the first packet after hanat's table appears starts a new, NATed flow).
void build_early_flow_topology(Netns& nat, Netns& priv, Netns& out) {
  ASSERT_NO_FATAL_FAILURE(build_topology(nat, priv, out));
  ASSERT_EQ(priv.ip("addr add 198.18.1.3/24 dev eth0"), 0);
  ASSERT_EQ(priv.ip("addr add 198.18.9.2/32 dev eth0"), 0);
  ASSERT_EQ(nat.ip("route add 198.18.9.2/32 dev lan0"), 0);
  ASSERT_EQ(sh(nat.exec("nft 'add table ip other; add chain ip other post { type nat hook "
                        "postrouting priority 100; }; add rule ip other post oifname \"wan0\" "
                        "ip saddr 198.18.1.3 snat to 198.19.1.1'")),
            0);
  ASSERT_TRUE(Sysctl().apply(sysctl_entries({})));
}

TEST_F(NetfilterNetns, ApplyPurgesFlowsForwardedWithoutNatAndNothingElse) {
  Netns priv("priv");
  Netns out("out");
  ASSERT_NO_FATAL_FAILURE(build_early_flow_topology(*nat_, priv, out));
  const int rx = udp_socket_bound(out, "198.19.1.2");
  ASSERT_GE(rx, 0);
  const uint16_t port = local_port(rx);

  // Four flows start before hanat's table exists, each on one socket (one 5-tuple) for its
  // whole life: `early` from a configured source, `outside` from a source outside the CIDRs,
  // `natted` source-NATed by the foreign table, `own` the NAT host's own traffic (its address
  // is inside a configured CIDR, and it is never source-NATed).
  const int early = udp_socket_bound(priv, "198.18.1.2");
  const int outside = udp_socket_bound(priv, "198.18.9.2");
  const int natted = udp_socket_bound(priv, "198.18.1.3");
  const int own = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);  // this thread is in nat
  ASSERT_TRUE(early >= 0 && outside >= 0 && natted >= 0 && own >= 0);
  const sockaddr_in own_addr = addr("198.19.1.1", 0);
  ASSERT_EQ(::bind(own, reinterpret_cast<const sockaddr*>(&own_addr), sizeof own_addr), 0);
  EXPECT_EQ(source_seen_from(early, rx, port), "198.18.1.2");
  EXPECT_EQ(source_seen_from(outside, rx, port), "198.18.9.2");
  EXPECT_EQ(source_seen_from(natted, rx, port), "198.19.1.1");
  EXPECT_EQ(source_seen_from(own, rx, port), "198.19.1.1");

  NatSpec spec;
  spec.egress_interface = "wan0";
  spec.source_cidrs = {"198.18.1.0/24", "198.19.1.0/24"};

  // The issue: the masquerade table alone does not help a flow that began without it.
  {
    auto nl = Netlink::open();
    ASSERT_TRUE(nl);
    auto batch = build_batch(spec, nl->next_seq());
    ASSERT_TRUE(batch);
    ASSERT_TRUE(nl->commit(*batch));
    EXPECT_EQ(source_seen_from(early, rx, port), "198.18.1.2");
  }

  const std::string early_before = ct_entry(*nat_, "198.18.1.2", local_port(early), port);
  const std::string outside_before = ct_entry(*nat_, "198.18.9.2", local_port(outside), port);
  const std::string natted_before = ct_entry(*nat_, "198.18.1.3", local_port(natted), port);
  const std::string own_before = ct_entry(*nat_, "198.19.1.1", local_port(own), port);
  ASSERT_THAT(early_before, HasSubstr("src=198.19.1.2 dst=198.18.1.2 "));
  ASSERT_THAT(natted_before, HasSubstr("src=198.19.1.2 dst=198.19.1.1 "));
  ASSERT_NE(outside_before, "");
  ASSERT_NE(own_before, "");
  const std::string other_before = nft("list table ip other");

  uv::Loop loop;
  {
    NatManager m(loop);
    std::vector<PurgeOutcome> purges;
    m.on_purge([&](const PurgeOutcome& p) { purges.push_back(p); });
    auto a = m.apply(spec, {});
    ASSERT_TRUE(a) << a.error().message;
    ASSERT_EQ(purges.size(), 1U);
    EXPECT_EQ(purges[0].error, "");
    EXPECT_EQ(purges[0].purged, 1U);
    EXPECT_EQ(m.counters().purged, 1U);

    // Only the un-NATed entry from a configured source went; nothing else changed.
    EXPECT_EQ(ct_entry(*nat_, "198.18.1.2", local_port(early), port), "");
    EXPECT_EQ(ct_entry(*nat_, "198.18.9.2", local_port(outside), port), outside_before);
    EXPECT_EQ(ct_entry(*nat_, "198.18.1.3", local_port(natted), port), natted_before);
    EXPECT_EQ(ct_entry(*nat_, "198.19.1.1", local_port(own), port), own_before);
    EXPECT_EQ(nft("list table ip other"), other_before);

    // The same flow's next packet creates a fresh entry, and that one is NATed.
    EXPECT_EQ(source_seen_from(early, rx, port), "198.19.1.1");
    EXPECT_THAT(ct_entry(*nat_, "198.18.1.2", local_port(early), port),
                HasSubstr("src=198.19.1.2 dst=198.19.1.1 "));

    // A second apply finds nothing left to purge.
    ASSERT_TRUE(m.apply(spec, {}));
    ASSERT_EQ(purges.size(), 2U);
    EXPECT_EQ(purges[1].purged, 0U);
    EXPECT_EQ(m.counters().purged, 1U);
  }
  testing::expect_clean_close(loop);
  for (int fd : {early, outside, natted, own, rx}) ::close(fd);
}

TEST_F(NetfilterNetns, RepairPurgesFlowsThatStartedWhileTheTableWasMissing) {
  Netns priv("priv");
  Netns out("out");
  ASSERT_NO_FATAL_FAILURE(build_early_flow_topology(*nat_, priv, out));
  const int rx = udp_socket_bound(out, "198.19.1.2");
  ASSERT_GE(rx, 0);
  const uint16_t port = local_port(rx);
  uv::Loop loop;
  {
    NatManager m(loop);
    std::vector<PurgeOutcome> purges;
    m.on_purge([&](const PurgeOutcome& p) { purges.push_back(p); });
    NatSpec spec;
    spec.egress_interface = "wan0";
    spec.source_cidrs = {"198.18.1.0/24"};
    ASSERT_TRUE(m.apply(spec, {}));

    // The table is deleted (`nft flush ruleset` would do the same) and a flow starts.
    ASSERT_EQ(sh(nat_->exec("nft delete table ip hanat")), 0);
    const int late = udp_socket_bound(priv, "198.18.1.2");
    ASSERT_GE(late, 0);
    EXPECT_EQ(source_seen_from(late, rx, port), "198.18.1.2");

    ASSERT_TRUE(m.check());
    EXPECT_EQ(m.counters().table_repairs, 1U);
    ASSERT_EQ(purges.size(), 2U);
    EXPECT_EQ(purges[1].error, "");
    EXPECT_GE(purges[1].purged, 1U);
    EXPECT_GE(m.counters().purged, 1U);
    EXPECT_EQ(source_seen_from(late, rx, port), "198.19.1.1");
    m.stop();
    ::close(late);
  }
  testing::expect_clean_close(loop);
  ::close(rx);
}

TEST_F(NetfilterNetns, LeakCounterCountsUnNattedPacketsAndTheForwardCheckPurgesThem) {
  Netns priv("priv");
  Netns out("out");
  ASSERT_NO_FATAL_FAILURE(build_early_flow_topology(*nat_, priv, out));
  const int rx = udp_socket_bound(out, "198.19.1.2");
  ASSERT_GE(rx, 0);
  const uint16_t port = local_port(rx);
  NatSpec spec;
  spec.egress_interface = "wan0";
  spec.source_cidrs = {"198.18.1.0/24"};
  spec.forward_counters = true;
  spec.leak_counter = true;
  uv::Loop loop;
  {
    // Neither notifications nor the drift timer: the table is put back by hand below, so
    // only the forward check can find the flow that escaped.
    NatManager m(loop, ManagerOptions{.drift_interval = 60s, .watch_notifications = false});
    std::vector<PurgeOutcome> purges;
    m.on_purge([&](const PurgeOutcome& p) { purges.push_back(p); });
    ASSERT_TRUE(m.apply(spec, {}));
    ASSERT_EQ(purges.size(), 1U);

    // NATed traffic is not counted (its source is this host's after srcnat), nor is this
    // host's own (a local source).
    const int natted = udp_socket_bound(priv, "198.18.1.2");
    ASSERT_GE(natted, 0);
    EXPECT_EQ(source_seen_from(natted, rx, port), "198.19.1.1");
    ASSERT_EQ(sh(nat_->exec("ping -c 2 -i 0.2 -W 1 -q 198.19.1.2 >/dev/null")), 0);
    auto nl = Netlink::open();
    ASSERT_TRUE(nl);
    auto c0 = nl->read_forward_counters("hanat");
    ASSERT_TRUE(c0) << c0.error().message;
    EXPECT_GE(c0->out, 1U);
    EXPECT_EQ(c0->leaked, 0U);

    // The table goes, a flow starts without NAT, and the table comes back without a purge
    // (as if the purge had failed): the flow keeps leaking, and the counter sees it.
    ASSERT_EQ(sh(nat_->exec("nft delete table ip hanat")), 0);
    const int early = udp_socket_bound(priv, "198.18.1.2");
    ASSERT_GE(early, 0);
    EXPECT_EQ(source_seen_from(early, rx, port), "198.18.1.2");
    auto batch = build_batch(spec, nl->next_seq());
    ASSERT_TRUE(batch);
    ASSERT_TRUE(nl->commit(*batch));
    EXPECT_EQ(source_seen_from(early, rx, port), "198.18.1.2");
    EXPECT_EQ(source_seen_from(early, rx, port), "198.18.1.2");
    auto c1 = nl->read_forward_counters("hanat");
    ASSERT_TRUE(c1) << c1.error().message;
    EXPECT_EQ(c1->leaked, 2U);

    // The forward check reads the growth and purges; the flow's next packet is NATed.
    daemon::ForwardCheck fc(m);
    daemon::ForwardCheckOptions fo;
    fo.interval = 50ms;
    fc.watch_forwarding(fo);
    const sockaddr_in to = addr("198.19.1.2", port);
    const char msg[] = "hanat";
    uv::Timer stream(loop);
    ASSERT_FALSE(stream.start(5ms, 5ms, [&] {
      (void)::sendto(early, msg, sizeof msg, 0, reinterpret_cast<const sockaddr*>(&to), sizeof to);
    }));
    ASSERT_TRUE(testing::run_until(
        loop, [&] { return purges.size() >= 2; }, 3s));
    EXPECT_EQ(purges.back().error, "");
    EXPECT_GE(purges.back().purged, 1U);
    EXPECT_GE(fc.forward().leaked_total(), 1U);
    (void)stream.stop();
    EXPECT_EQ(source_seen_from(early, rx, port), "198.19.1.1");
    EXPECT_NE(fc.forward().state(), engine::Health::Down);
    fc.watch_forwarding(std::nullopt);
    m.stop();
    for (int fd : {natted, early}) ::close(fd);
  }
  testing::expect_clean_close(loop);
  ::close(rx);
}

// --- repair on nftables notifications (issue #23) -----------------------------------------

TEST_F(NetfilterNetns, NotificationRepairsADeletedTableAtOnceAndOwnCommitsRepairNothing) {
  uv::Loop loop;
  {
    // A drift interval far beyond the test: every repair here comes from a notification.
    NatManager m(loop, ManagerOptions{.drift_interval = 60s});
    std::vector<Repair> repairs;
    m.on_repair([&](const Repair& r) { repairs.push_back(r); });
    ASSERT_TRUE(m.apply(wan_spec(), {}));
    ASSERT_TRUE(m.monitoring()) << m.monitor_error();
    // hanat's own commit is announced too: it is verified and found right.
    ASSERT_TRUE(testing::run_until(
        loop, [&] { return m.counters().notified_checks >= 1; }, 2s));
    EXPECT_EQ(m.counters().table_repairs, 0U);
    EXPECT_TRUE(repairs.empty());

    ASSERT_EQ(sh(nat_->exec("nft delete table ip hanat")), 0);
    const auto deleted = std::chrono::steady_clock::now();
    ASSERT_TRUE(testing::run_until(
        loop, [&] { return m.counters().table_repairs >= 1; }, 2s));
    // The target is 100 ms; the bound leaves room for a loaded machine and is still far
    // below the drift interval, which proves the repair was event driven.
    EXPECT_LE(std::chrono::steady_clock::now() - deleted, 500ms);
    ASSERT_EQ(repairs.size(), 1U);
    EXPECT_EQ(repairs[0].what, "table ip hanat: missing");
    EXPECT_EQ(repairs[0].trigger, "nftables notification: table deleted");
    EXPECT_EQ(nft("list tables"), "table ip hanat\n");
    EXPECT_TRUE(m.health().ok);

    // The repair's own commit is announced in its turn and repairs nothing more.
    const auto after_repair = m.counters().notified_checks;
    ASSERT_TRUE(testing::run_until(
        loop, [&] { return m.counters().notified_checks > after_repair; }, 2s));
    EXPECT_EQ(m.counters().table_repairs, 1U);

    // A changed chain is repaired the same way.
    ASSERT_EQ(sh(nat_->exec("nft flush chain ip hanat postrouting")), 0);
    ASSERT_TRUE(testing::run_until(
        loop, [&] { return m.counters().table_repairs >= 2; }, 2s));
    ASSERT_EQ(repairs.size(), 2U);
    EXPECT_EQ(repairs[1].what, "chain ip hanat postrouting: 0 rules, want 2");
    EXPECT_EQ(repairs[1].trigger, "nftables notification: rule deleted from chain postrouting");
    const auto checks = m.counters().notified_checks;
    ASSERT_TRUE(testing::run_until(
        loop, [&] { return m.counters().notified_checks > checks; }, 2s));
    EXPECT_EQ(m.counters().table_repairs, 2U);

    // Changes to other tables start no check at all, nor does an `inet` table of the same
    // name (hanat's is `table ip`): only the last command below, on hanat's table, does.
    const auto before_other = m.counters().notified_checks;
    ASSERT_EQ(sh(nat_->exec("nft 'add table ip other; add chain ip other c'")), 0);
    ASSERT_EQ(sh(nat_->exec("nft 'add table inet hanat; delete table inet hanat'")), 0);
    EXPECT_FALSE(testing::run_until(
        loop, [&] { return m.counters().notified_checks != before_other; }, 300ms));
    ASSERT_EQ(sh(nat_->exec("nft add rule ip hanat postrouting counter")), 0);
    ASSERT_TRUE(testing::run_until(
        loop, [&] { return m.counters().table_repairs >= 3; }, 2s));
    EXPECT_EQ(repairs.back().trigger, "nftables notification: rule added to chain postrouting");
    EXPECT_EQ(m.counters().notified_checks, before_other + 1)
        << "only the change to hanat's table may start a check";
    m.stop();
  }
  testing::expect_clean_close(loop);
}

TEST_F(NetfilterNetns, LostNotificationsAreResyncedByAFullVerify) {
  uv::Loop loop;
  {
    // The smallest receive buffer the kernel allows: a burst of announcements overflows it.
    NatManager m(loop, ManagerOptions{.drift_interval = 60s, .notification_rcvbuf = 1});
    std::vector<Repair> repairs;
    m.on_repair([&](const Repair& r) { repairs.push_back(r); });
    ASSERT_TRUE(m.apply(wan_spec(), {}));
    ASSERT_TRUE(testing::run_until(
        loop, [&] { return m.counters().notified_checks >= 1; }, 2s));
    const auto checks = m.counters().notified_checks;
    const auto lost = m.counters().notifications_lost;
    // 300 rules in another table, announced one message each while the loop is not reading.
    std::string batch = "add table ip other; add chain ip other c;";
    for (int i = 0; i < 300; ++i) batch += " add rule ip other c counter;";
    ASSERT_EQ(sh(nat_->exec("nft '" + batch + "'")), 0);
    ASSERT_TRUE(testing::run_until(
        loop, [&] { return m.counters().notifications_lost > lost; }, 2s))
        << m.counters().notified_checks << " checks, " << lost << " lost before";
    // Any lost message may have been about hanat's table: one full verify, nothing to repair.
    EXPECT_EQ(m.counters().notified_checks, checks + 1);
    EXPECT_EQ(m.counters().table_repairs, 0U);
    EXPECT_TRUE(m.health().ok);
    // The socket keeps working after the overrun.
    ASSERT_EQ(sh(nat_->exec("nft delete table ip hanat")), 0);
    ASSERT_TRUE(testing::run_until(
        loop, [&] { return m.counters().table_repairs >= 1; }, 2s));
    ASSERT_EQ(repairs.size(), 1U);
    EXPECT_EQ(repairs[0].what, "table ip hanat: missing");
    m.stop();
  }
  testing::expect_clean_close(loop);
}

TEST_F(NetfilterNetns, RulesOfOtherTablesSurvivePurgeAndRepair) {
  if (sh("command -v iptables-nft >/dev/null") != 0) {
    GTEST_SKIP() << "iptables-nft missing (Debian package iptables, scripts/deps)";
  }
  Netns priv("priv");
  Netns out("out");
  ASSERT_NO_FATAL_FAILURE(build_early_flow_topology(*nat_, priv, out));
  // An iptables-nft ruleset (tables ip filter and ip nat, xtables matches) and a plain nft
  // table with rules, as a host firewall would have them.
  for (const char* cmd :
       {"iptables-nft -A FORWARD -s 198.18.7.7 -j DROP",
        "iptables-nft -A INPUT -p tcp --dport 22 -m conntrack --ctstate NEW -j ACCEPT",
        "iptables-nft -t nat -A POSTROUTING -o wan0 -s 198.18.9.2 -j MASQUERADE",
        "nft 'add table inet fw; add chain inet fw input { type filter hook input priority 0; "
        "policy accept; }; add rule inet fw input ip saddr 198.18.7.8 counter drop'"}) {
    int rc = 0;
    const std::string text = capture(nat_->exec(std::string(cmd) + " 2>&1"), &rc);
    ASSERT_EQ(rc, 0) << cmd << ": " << text;
  }
  auto others = [&] {
    return normalize_nft_json(nft("-j list table ip filter"), false) +
           normalize_nft_json(nft("-j list table ip nat"), false) +
           normalize_nft_json(nft("-j list table inet fw"), false) +
           normalize_nft_json(nft("-j list table ip other"), false);
  };
  const int rx = udp_socket_bound(out, "198.19.1.2");
  ASSERT_GE(rx, 0);
  const uint16_t port = local_port(rx);
  // A flow NATed by the iptables nat table: the purge must leave it alone.
  const int masq = udp_socket_bound(priv, "198.18.9.2");
  ASSERT_GE(masq, 0);
  EXPECT_EQ(source_seen_from(masq, rx, port), "198.19.1.1");
  const std::string masq_entry = ct_entry(*nat_, "198.18.9.2", local_port(masq), port);
  ASSERT_NE(masq_entry, "");
  const std::string before = others();

  uv::Loop loop;
  {
    NatManager m(loop, ManagerOptions{.drift_interval = 60s});
    std::vector<PurgeOutcome> purges;
    m.on_purge([&](const PurgeOutcome& p) { purges.push_back(p); });
    NatSpec spec;
    spec.egress_interface = "wan0";
    spec.source_cidrs = {"198.18.1.0/24"};
    spec.forward_counters = true;
    ASSERT_TRUE(m.apply(spec, {}));
    ASSERT_TRUE(testing::run_until(
        loop, [&] { return m.counters().notified_checks >= 1; }, 2s));
    // A partial firewall reload that deletes hanat's table: repaired, then purged.
    ASSERT_EQ(sh(nat_->exec("nft delete table ip hanat")), 0);
    ASSERT_TRUE(testing::run_until(
        loop, [&] { return m.counters().table_repairs >= 1 && purges.size() >= 2; }, 2s));
    EXPECT_EQ(purges.back().error, "");
    m.purge_now();
    ASSERT_EQ(purges.size(), 3U);
    m.stop();
  }
  testing::expect_clean_close(loop);
  // Same handles and all: no other table was rewritten, and their flows are as they were.
  EXPECT_EQ(others(), before);
  EXPECT_EQ(ct_entry(*nat_, "198.18.9.2", local_port(masq), port), masq_entry);
  for (int fd : {masq, rx}) ::close(fd);
}

}  // namespace
}  // namespace hanat::netfilter
