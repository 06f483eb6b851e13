// SPDX-License-Identifier: GPL-2.0-or-later
#include "probes/agent_line.h"

#include <gtest/gtest.h>

namespace hanat::probes {
namespace {

// Golden lines: the wire format peers of different versions must agree on.
constexpr const char* kUpGolden =
    "up i-0123456789abcdef0 forwarding=1 masquerade=1 egress=1 draining=0\n";
constexpr const char* kDownGolden = "down i-0123456789abcdef0 egress check failed: 0 of 3\n";

TEST(AgentLine, FormatsUpLineExactly) {
  AgentReply r{.up = true,
               .instance_id = "i-0123456789abcdef0",
               .facts = {.forwarding = true, .masquerade = true, .egress_ok = true},
               .reason = {}};
  EXPECT_EQ(format_agent_line(r), kUpGolden);
}

TEST(AgentLine, FormatsDownLineExactly) {
  AgentReply r{.up = false,
               .instance_id = "i-0123456789abcdef0",
               .facts = {},
               .reason = "egress check failed: 0 of 3"};
  EXPECT_EQ(format_agent_line(r), kDownGolden);
}

TEST(AgentLine, ParsesGoldenLines) {
  auto up = parse_agent_line(kUpGolden);
  ASSERT_TRUE(up) << up.error();
  EXPECT_TRUE(up->up);
  EXPECT_EQ(up->instance_id, "i-0123456789abcdef0");
  EXPECT_TRUE(up->facts.forwarding);
  EXPECT_TRUE(up->facts.masquerade);
  EXPECT_TRUE(up->facts.egress_ok);
  EXPECT_FALSE(up->facts.draining);

  auto down = parse_agent_line(kDownGolden);
  ASSERT_TRUE(down) << down.error();
  EXPECT_FALSE(down->up);
  EXPECT_EQ(down->reason, "egress check failed: 0 of 3");
}

TEST(AgentLine, RoundTripsEveryFactCombination) {
  for (int bits = 0; bits < 16; ++bits) {
    AgentReply r{.up = true,
                 .instance_id = "i-abc",
                 .facts = {.forwarding = (bits & 1) != 0,
                           .masquerade = (bits & 2) != 0,
                           .egress_ok = (bits & 4) != 0,
                           .draining = (bits & 8) != 0},
                 .reason = {}};
    auto back = parse_agent_line(format_agent_line(r));
    ASSERT_TRUE(back) << back.error();
    EXPECT_EQ(*back, r) << "bits " << bits;
  }
}

TEST(AgentLine, AcceptsCrLfAndNoTerminator) {
  EXPECT_TRUE(parse_agent_line("down i-1 maintenance\r\n"));
  EXPECT_TRUE(parse_agent_line("down i-1 maintenance"));
}

TEST(AgentLine, IgnoresUnknownFactsForForwardCompatibility) {
  auto r = parse_agent_line("up i-1 forwarding=1 masquerade=0 conntrack=93 egress=1 draining=1\n");
  ASSERT_TRUE(r) << r.error();
  EXPECT_FALSE(r->facts.masquerade);
  EXPECT_TRUE(r->facts.draining);
}

struct BadLine {
  const char* line;
  const char* message;
};

void PrintTo(const BadLine& b, std::ostream* os) {
  *os << "'" << b.line << "'";
}

class AgentLineErrors : public ::testing::TestWithParam<BadLine> {};

TEST_P(AgentLineErrors, NamesWhatIsWrong) {
  auto r = parse_agent_line(GetParam().line);
  ASSERT_FALSE(r) << "accepted: " << GetParam().line;
  EXPECT_EQ(r.error(), GetParam().message);
}

INSTANTIATE_TEST_SUITE_P(
    Cases, AgentLineErrors,
    ::testing::Values(
        BadLine{"", "agent line: empty"}, BadLine{"\n", "agent line: empty"},
        BadLine{"maybe i-1", "agent line: expected 'up' or 'down' first, got 'maybe'"},
        BadLine{"up", "agent line: missing instance id after 'up'"},
        BadLine{"down i-1", "agent line: 'down' without a reason"},
        BadLine{"down i-1    ", "agent line: 'down' without a reason"},
        BadLine{"up i/1 forwarding=1", "agent line: invalid character in instance id 'i/1'"},
        BadLine{"up i-1 forwarding=1 masquerade=1 egress=1",
                "agent line: 'up' line lacks fact 'draining'"},
        BadLine{"up i-1 forwarding=yes masquerade=1 egress=1 draining=0",
                "agent line: fact 'forwarding' has value 'yes', expected 0 or 1"},
        BadLine{"up i-1 forwarding=1 forwarding=1 masquerade=1 egress=1 draining=0",
                "agent line: fact 'forwarding' given twice"},
        BadLine{"up i-1 forwarding", "agent line: fact 'forwarding' is not key=value"},
        BadLine{"down i-1 bad\x01reason", "agent line: control or non-ASCII byte 1 at offset 12"},
        BadLine{"HTTP/1.1 400 Bad Request",
                "agent line: expected 'up' or 'down' first, got 'HTTP/1.1'"}));

TEST(AgentLine, RejectsOverlongLine) {
  std::string line = "down i-1 " + std::string(300, 'x');
  auto r = parse_agent_line(line);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), "agent line: longer than 256 bytes");
}

// Regression (tests/fuzz/crashes/fuzz_agent_line/overlong_instance_id): an instance id long
// enough to push the facts past kAgentLineMax produced an up line that did not parse.
TEST(AgentLine, FormatterCutsAnOverlongInstanceIdSoTheFactsStillFit) {
  AgentReply up{.up = true,
                .instance_id = std::string(250, 'k'),
                .facts = {.forwarding = true, .masquerade = true, .egress_ok = true},
                .reason = {}};
  auto back = parse_agent_line(format_agent_line(up));
  ASSERT_TRUE(back) << back.error();
  EXPECT_EQ(back->instance_id, std::string(64, 'k'));
  EXPECT_EQ(back->facts, up.facts);

  AgentReply down{.up = false, .instance_id = std::string(300, 'k'), .facts = {}, .reason = "x"};
  auto d = parse_agent_line(format_agent_line(down));
  ASSERT_TRUE(d) << d.error();
  EXPECT_EQ(d->reason, "x");
}

// Regression (tests/fuzz/crashes/fuzz_agent_line/blank_after_cut_reason): a reason whose
// printable part lies beyond the line limit is blank once cut, so it is sent as unspecified.
TEST(AgentLine, FormatterReplacesAReasonThatIsBlankOnceCut) {
  AgentReply r{.up = false, .instance_id = "i-1", .facts = {}, .reason = std::string(300, '\a')};
  r.reason += "disk full";
  auto back = parse_agent_line(format_agent_line(r));
  ASSERT_TRUE(back) << back.error();
  EXPECT_EQ(back->reason, "unspecified");
}

// Regression (tests/fuzz/crashes/fuzz_agent_line/overlong_id_round_trip): the parser refuses
// what the formatter would cut, so an accepted line formats back to the same reply.
TEST(AgentLine, ParserRefusesInstanceIdsLongerThanTheFormatterSends) {
  auto r = parse_agent_line("down " + std::string(65, 'i') + " maintenance\n");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), "agent line: instance id longer than 64 characters");
  EXPECT_TRUE(parse_agent_line("down " + std::string(64, 'i') + " maintenance\n"));
}

TEST(AgentLine, FormatterSanitisesSoOutputAlwaysParses) {
  AgentReply r{.up = false,
               .instance_id = "i 1/\n",
               .facts = {},
               .reason = "nft said:\n" + std::string(400, 'y')};
  std::string line = format_agent_line(r);
  EXPECT_LE(line.size(), kAgentLineMax + 1);
  EXPECT_EQ(line.find('\n'), line.size() - 1);
  auto back = parse_agent_line(line);
  ASSERT_TRUE(back) << back.error();
  EXPECT_EQ(back->instance_id, "i_1__");
  EXPECT_EQ(back->reason.substr(0, 10), "nft said: ");

  AgentReply blank{.up = false, .instance_id = "", .facts = {}, .reason = "\n\t"};
  auto b = parse_agent_line(format_agent_line(blank));
  ASSERT_TRUE(b) << b.error();
  EXPECT_EQ(b->instance_id, "unknown");
  EXPECT_EQ(b->reason, "unspecified");
}

TEST(AgentLine, ReplyForHealthyHostIsUpWithFacts) {
  SelfHealth h{.forwarding = true,
               .masquerade = true,
               .egress_ok = true,
               .draining = true,
               .egress_detail = {},
               .forwarding_detail = {}};
  AgentReply r = reply_for(h, "i-self");
  EXPECT_TRUE(r.up);
  EXPECT_EQ(r.instance_id, "i-self");
  EXPECT_TRUE(r.facts.draining);
  EXPECT_EQ(format_agent_line(r), "up i-self forwarding=1 masquerade=1 egress=1 draining=1\n");
}

TEST(AgentLine, ReplyForBrokenDataPlaneIsDownNamingEveryCause) {
  SelfHealth h{.forwarding = false,
               .masquerade = false,
               .egress_ok = false,
               .draining = false,
               .egress_detail = "0 of 3 egress targets answered",
               .forwarding_detail = {}};
  AgentReply r = reply_for(h, "i-self");
  EXPECT_FALSE(r.up);
  EXPECT_EQ(r.reason,
            "ip forwarding is off; masquerade rule missing; egress check failed: 0 of 3 egress "
            "targets answered");
  SelfHealth only_egress{.forwarding = true,
                         .masquerade = true,
                         .egress_ok = false,
                         .draining = false,
                         .egress_detail = {},
                         .forwarding_detail = {}};
  EXPECT_EQ(reply_for(only_egress, "i").reason, "egress check failed");
}

TEST(AgentLine, StalledForwardPathIsDownWithItsOwnReason) {
  SelfHealth h{.forwarding = false,
               .masquerade = true,
               .egress_ok = true,
               .draining = false,
               .egress_detail = {},
               .forwarding_detail =
                   "forwarding stalled: 120 packets arrived to be forwarded in "
                   "600 ms and none left"};
  AgentReply r = reply_for(h, "i-self");
  EXPECT_FALSE(r.up);
  EXPECT_FALSE(r.facts.forwarding);
  EXPECT_EQ(r.reason, h.forwarding_detail);
  EXPECT_EQ(format_agent_line(r),
            "down i-self forwarding stalled: 120 packets arrived to be forwarded in 600 ms and "
            "none left\n");
}

}  // namespace
}  // namespace hanat::probes
