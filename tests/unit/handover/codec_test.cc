// SPDX-License-Identifier: GPL-2.0-or-later
// The member channel's frames (handover/codec.h): round trips, bounds, MACs.
#include "core/handover/codec.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <netinet/in.h>

namespace hanat::handover {
namespace {

using ::testing::HasSubstr;

Flow flow(uint16_t sport, uint8_t proto = IPPROTO_TCP) {
  Flow f;
  f.proto = proto;
  f.src = 0xC6120102;  // 198.18.1.2
  f.dst = 0xC6130102;  // 198.19.1.2
  f.sport = sport;
  f.dport = proto == IPPROTO_ICMP ? 0 : 443;
  f.timeout_s = 350;
  return f;
}

Hello hello() {
  Hello h;
  h.group = "lab";
  h.member = "i-0123456789abcdef0";
  h.nonce = Nonce{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
  return h;
}

Frame decode_one(const std::string& bytes, const MacKey* key = nullptr) {
  Decoder d;
  if (key) d.set_key(*key);
  d.feed(bytes);
  auto f = d.next();
  EXPECT_TRUE(f) << f.error();
  EXPECT_TRUE(f && *f);
  EXPECT_EQ(d.buffered(), 0U);
  return f && *f ? **f : Frame{End{}};
}

TEST(Codec, EveryFrameRoundTrips) {
  const std::vector<Frame> frames = {
      hello(),
      FlowBatch{FlowBatch::kReplace | FlowBatch::kComplete,
                {flow(40000), flow(40001, IPPROTO_UDP), flow(7, IPPROTO_ICMP)}},
      FlowBatch{0, {}},
      Destroyed{{flow(40000)}},
      End{},
      Ack{12345},
      Reclaim{{"rtb-0a1b2c3d4e5f60718", "rtb-b"}},
      Reclaim{},
  };
  for (const Frame& f : frames) {
    EXPECT_EQ(decode_one(encode(f)), f) << "frame type " << f.index();
  }
}

TEST(Codec, HelloIsPinnedOnTheWire) {
  // u32 length | type 1 | version 1 | keyed 0 | 3 "lab" | 19 "i-0123456789abcdef0" | nonce
  const std::string b = encode(hello());
  ASSERT_EQ(b.size(), 4U + 1 + 1 + 1 + 1 + 3 + 1 + 19 + 16);
  std::string want("\0\0\0\x2b\x01\x01\x00\x03lab\x13", 12);
  want.append("i-0123456789abcdef0");
  for (int i = 1; i <= 16; ++i) want.push_back(static_cast<char>(i));
  EXPECT_EQ(b, want);
}

TEST(Codec, FramesSplitAcrossReadsAndSeveralPerRead) {
  const std::string a = encode(FlowBatch{0, {flow(1), flow(2)}});
  const std::string b = encode(Destroyed{{flow(1)}});
  const std::string all = a + b;
  Decoder d;
  std::vector<Frame> got;
  for (char c : all) {
    d.feed(std::string_view(&c, 1));
    for (;;) {
      auto f = d.next();
      ASSERT_TRUE(f) << f.error();
      if (!*f) break;
      got.push_back(**f);
    }
  }
  ASSERT_EQ(got.size(), 2U);
  EXPECT_EQ(got[1], Frame(Destroyed{{flow(1)}}));
}

TEST(Codec, SplitBoundsFlowsPerFrameAndMarksFirstAndLast) {
  std::vector<Flow> flows;
  for (uint16_t i = 0; i < 10; ++i) flows.push_back(flow(i));
  const auto parts = split(flows, true, true, 4);
  ASSERT_EQ(parts.size(), 3U);
  EXPECT_EQ(parts[0].flags, FlowBatch::kReplace);
  EXPECT_EQ(parts[1].flags, 0);
  EXPECT_EQ(parts[2].flags, FlowBatch::kComplete);
  EXPECT_EQ(parts[2].flows.size(), 2U);
  // An empty snapshot is still one frame that replaces and asks for the ack.
  const auto empty = split({}, true, true);
  ASSERT_EQ(empty.size(), 1U);
  EXPECT_EQ(empty[0].flags, FlowBatch::kReplace | FlowBatch::kComplete);
}

std::string error_of(const std::string& bytes, const MacKey* key = nullptr,
                     size_t max = kMaxFrameBytes) {
  Decoder d(max);
  if (key) d.set_key(*key);
  d.feed(bytes);
  auto f = d.next();
  if (f) return *f ? "decoded" : "incomplete";
  return f.error();
}

TEST(Codec, BadFramesAreErrorsNamingWhat) {
  EXPECT_THAT(error_of(std::string("\0\0\0\0", 4)), HasSubstr("length 0 outside"));
  EXPECT_THAT(error_of(std::string("\x00\x01\x00\x01", 4)), HasSubstr("length 65537 outside"));
  EXPECT_THAT(error_of(std::string("\0\0\0\1\x09", 5)), HasSubstr("unknown type 9"));
  EXPECT_THAT(error_of(std::string("\0\0\0\2\x05\x00", 6)), HasSubstr("ack: truncated"));
  EXPECT_THAT(error_of(std::string("\0\0\0\2\x04\x00", 6)), HasSubstr("trailing bytes"));
  // A count that promises more flows than the frame holds.
  EXPECT_THAT(error_of(std::string("\0\0\0\4\x02\x00\x00\x02", 8)),
              HasSubstr("flow 0 of 2 truncated"));
  EXPECT_THAT(error_of(std::string("\0\0\0\4\x02\x08\x00\x00", 8)), HasSubstr("unknown flags"));
  // Hello: another version, a non-printable member.
  std::string h = encode(hello());
  h[5] = 2;
  EXPECT_THAT(error_of(h), HasSubstr("version 2"));
  h = encode(hello());
  h[13] = '\n';
  EXPECT_THAT(error_of(h), HasSubstr("not printable"));
  // Incomplete is not an error.
  EXPECT_EQ(error_of(encode(Ack{1}).substr(0, 6)), "incomplete");
}

TEST(Codec, ReclaimIsPinnedOnTheWire) {
  EXPECT_EQ(encode(Reclaim{{"rtb-a", "rtb-bc"}}),
            std::string("\0\0\0\x10\x07\x00\x02\x05rtb-a\x06rtb-bc", 20));
}

TEST(Codec, BadReclaimFramesAreErrorsNamingWhat) {
  EXPECT_THAT(error_of(std::string("\0\0\0\2\x07\x00", 6)), HasSubstr("reclaim: truncated count"));
  // Two tables promised, one sent.
  EXPECT_THAT(error_of(std::string("\0\0\0\x07\x07\x00\x02\x03rtb", 11)),
              HasSubstr("reclaim: table 1 of 2 truncated"));
  EXPECT_THAT(error_of(std::string("\0\0\0\x07\x07\x00\x01\x03r\nb", 11)),
              HasSubstr("reclaim: table 0 is not printable"));
  EXPECT_THAT(error_of(std::string("\0\0\0\x04\x07\x00\x01\x00", 8)),
              HasSubstr("reclaim: table 0 is not printable"));
  EXPECT_THAT(error_of(std::string("\0\0\0\x03\x07\xff\xff", 7)),
              HasSubstr("reclaim: 65535 tables"));
  EXPECT_THAT(error_of(std::string("\0\0\0\x04\x07\x00\x00\x00", 8)), HasSubstr("trailing bytes"));
}

TEST(Codec, MacsBindPskNonceAndSequence) {
  const MacKey key{"secret", Nonce{9}};
  const std::string f0 = encode(FlowBatch{0, {flow(1)}}, &key, 0);
  EXPECT_EQ(decode_one(f0, &key), Frame(FlowBatch{0, {flow(1)}}));
  // Another psk, another nonce (another connection), a replay (wrong sequence), no MAC.
  const MacKey other_psk{"Secret", Nonce{9}};
  const MacKey other_nonce{"secret", Nonce{8}};
  EXPECT_THAT(error_of(f0, &other_psk), HasSubstr("MAC mismatch"));
  EXPECT_THAT(error_of(f0, &other_nonce), HasSubstr("MAC mismatch"));
  EXPECT_THAT(error_of(encode(FlowBatch{0, {flow(1)}}, &key, 1), &key), HasSubstr("MAC mismatch"));
  EXPECT_THAT(error_of(encode(Ack{1}), &key), HasSubstr("shorter than its MAC"));
  // A flipped payload bit.
  std::string bad = f0;
  bad[10] ^= 1;
  EXPECT_THAT(error_of(bad, &key), HasSubstr("MAC mismatch"));
  // Sequence advances per frame.
  Decoder d;
  d.set_key(key);
  d.feed(f0 + encode(End{}, &key, 1));
  ASSERT_TRUE(d.next());
  auto second = d.next();
  ASSERT_TRUE(second) << second.error();
  EXPECT_EQ(**second, Frame(End{}));
  // Hellos are never MACed.
  EXPECT_EQ(decode_one(encode(hello(), &key), &key), Frame(hello()));
}

netfilter::ReplicatedFlow upsert(uint16_t sport, bool tcp = true) {
  netfilter::ReplicatedFlow r;
  r.flow = flow(sport, tcp ? IPPROTO_TCP : IPPROTO_UDP);
  r.public_port = static_cast<uint16_t>(sport + 1000);
  r.status = 0x1be;  // SEEN_REPLY | ASSURED | CONFIRMED | SRC_NAT | SRC_NAT_DONE | ...
  if (tcp) r.tcp = netfilter::TcpInfo{3, 7, 8, 0x23, 0x22};
  return r;
}

TEST(Codec, ReplicaRoundTrips) {
  const std::vector<ReplicaBatch> batches = {
      {ReplicaBatch::kResyncBegin | ReplicaBatch::kResyncComplete, {}, {}},
      {0, {upsert(40000), upsert(40001, false)}, {flow(39999), flow(5, IPPROTO_ICMP)}},
      {ReplicaBatch::kResyncBegin, {upsert(1)}, {}},
      {ReplicaBatch::kResyncComplete, {}, {flow(2)}},
  };
  const MacKey key{"secret", Nonce{3}};
  for (const auto& b : batches) {
    EXPECT_EQ(decode_one(encode(b)), Frame(b));
    EXPECT_EQ(decode_one(encode(b, &key, 0), &key), Frame(b));
  }
}

TEST(Codec, ReplicaIsPinnedOnTheWire) {
  // u32 length | type 6 | flags | u16 upserts | u16 destroys | upsert (29) | destroy (17)
  ReplicaBatch b{ReplicaBatch::kResyncBegin, {upsert(0x1234)}, {flow(0x0102, IPPROTO_UDP)}};
  const std::string got = encode(b);
  ASSERT_EQ(got.size(), 4U + 1 + 1 + 2 + 2 + kUpsertBytes + kFlowBytes);
  EXPECT_EQ(kUpsertBytes, 29U);
  const std::string want =
      std::string("\0\0\0\x34\x06\x01\0\x01\0\x01", 10) +
      // upsert: proto 6, src, dst, sport, dport 443, timeout 350
      std::string("\x06\xc6\x12\x01\x02\xc6\x13\x01\x02\x12\x34\x01\xbb\0\0\x01\x5e", 17) +
      // public port 0x1234 + 1000, status 0x1be, has tcp, state, wscales, flags
      std::string("\x16\x1c\0\0\x01\xbe\x01\x03\x07\x08\x23\x22", 12) +
      // destroy: proto 17, src, dst, sport, dport, timeout
      std::string("\x11\xc6\x12\x01\x02\xc6\x13\x01\x02\x01\x02\x01\xbb\0\0\x01\x5e", 17);
  EXPECT_EQ(got, want);
}

TEST(Codec, ReplicaBoundsAndBadInput) {
  // The largest batch that fits is encodable and stays within a frame.
  ReplicaBatch full;
  while ((full.upserts.size() + 1) * kUpsertBytes <= kMaxReplicaBytes)
    full.upserts.push_back(upsert(static_cast<uint16_t>(full.upserts.size())));
  const std::string big = encode(full);
  EXPECT_LE(big.size(), kMaxFrameBytes + 4 - kMacBytes);
  EXPECT_EQ(decode_one(big), Frame(full));
  // Counts beyond a frame are refused before anything is read.
  EXPECT_THAT(error_of(std::string("\0\0\0\6\x06\x00\xff\xff\x00\x00", 10)),
              HasSubstr("exceed a frame"));
  // Counts that promise more entries than the frame holds.
  EXPECT_THAT(error_of(std::string("\0\0\0\6\x06\x00\x00\x01\x00\x00", 10)),
              HasSubstr("upsert 0 of 1 truncated"));
  EXPECT_THAT(error_of(std::string("\0\0\0\6\x06\x00\x00\x00\x00\x02", 10)),
              HasSubstr("destroy 0 of 2 truncated"));
  EXPECT_THAT(error_of(std::string("\0\0\0\4\x06\x00\x00\x00", 8)),
              HasSubstr("replica: truncated header"));
  EXPECT_THAT(error_of(std::string("\0\0\0\6\x06\x04\x00\x00\x00\x00", 10)),
              HasSubstr("replica: unknown flags 4"));
  // The tcp flag is 0 or 1, and without it the tcp fields are zero.
  std::string b = encode(ReplicaBatch{0, {upsert(1)}, {}});
  b[10 + kFlowBytes + 6] = 2;
  EXPECT_THAT(error_of(b), HasSubstr("bad tcp flag 2"));
  b = encode(ReplicaBatch{0, {upsert(1, false)}, {}});
  b[10 + kFlowBytes + 7] = 3;
  EXPECT_THAT(error_of(b), HasSubstr("tcp fields without it"));
  // Trailing bytes after the counted entries.
  b = encode(ReplicaBatch{0, {}, {flow(1)}});
  b.push_back('\0');
  b[3] = static_cast<char>(b[3] + 1);
  EXPECT_THAT(error_of(b), HasSubstr("trailing bytes"));
}

TEST(Codec, RandomNoncesDiffer) {
  EXPECT_NE(random_nonce(), random_nonce());
}

}  // namespace
}  // namespace hanat::handover
