// SPDX-License-Identifier: GPL-2.0-or-later
#include "core/handover/codec.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <algorithm>
#include <cstring>

#include "core/base/check.h"

namespace hanat::handover {

bool FlowBatch::same_flows(const std::vector<Flow>& a, const std::vector<Flow>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    // The wire carries the timeout too: equality of frames includes it.
    if (!(a[i] == b[i]) || a[i].timeout_s != b[i].timeout_s) return false;
  }
  return true;
}

namespace {

void put_u8(std::string& o, uint8_t v) {
  o.push_back(static_cast<char>(v));
}
void put_u16(std::string& o, uint16_t v) {
  put_u8(o, static_cast<uint8_t>(v >> 8));
  put_u8(o, static_cast<uint8_t>(v));
}
void put_u32(std::string& o, uint32_t v) {
  put_u16(o, static_cast<uint16_t>(v >> 16));
  put_u16(o, static_cast<uint16_t>(v));
}
void put_u64(std::string& o, uint64_t v) {
  put_u32(o, static_cast<uint32_t>(v >> 32));
  put_u32(o, static_cast<uint32_t>(v));
}
void put_name(std::string& o, const std::string& s) {
  HANAT_CHECK(s.size() <= kMaxNameBytes, "handover: name too long for a hello");
  put_u8(o, static_cast<uint8_t>(s.size()));
  o += s;
}
void put_flow(std::string& o, const Flow& f) {
  put_u8(o, f.proto);
  put_u32(o, f.src);
  put_u32(o, f.dst);
  put_u16(o, f.sport);
  put_u16(o, f.dport);
  put_u32(o, f.timeout_s);
}
void put_flows(std::string& o, const std::vector<Flow>& flows) {
  HANAT_CHECK(flows.size() <= kMaxFlowsPerFrame, "handover: too many flows for one frame");
  put_u16(o, static_cast<uint16_t>(flows.size()));
  for (const Flow& f : flows) put_flow(o, f);
}
void put_replica(std::string& o, const ReplicaBatch& b) {
  HANAT_CHECK(b.entry_bytes() <= kMaxReplicaBytes, "handover: replica batch too large for a frame");
  put_u8(o, b.flags);
  put_u16(o, static_cast<uint16_t>(b.upserts.size()));
  put_u16(o, static_cast<uint16_t>(b.destroys.size()));
  for (const auto& u : b.upserts) {
    put_flow(o, u.flow);
    put_u16(o, u.public_port);
    put_u32(o, u.status);
    const netfilter::TcpInfo t = u.tcp.value_or(netfilter::TcpInfo{});
    put_u8(o, u.tcp ? 1 : 0);
    put_u8(o, t.state);
    put_u8(o, t.wscale_orig);
    put_u8(o, t.wscale_reply);
    put_u8(o, t.flags_orig);
    put_u8(o, t.flags_reply);
  }
  for (const auto& f : b.destroys) put_flow(o, f);
}

// Reads big-endian fields from a body; every read checks the bounds.
class Reader {
 public:
  explicit Reader(std::string_view b) : b_(b) {}
  bool u8(uint8_t& v) {
    if (b_.size() - at_ < 1) return false;
    v = static_cast<uint8_t>(b_[at_++]);
    return true;
  }
  bool u16(uint16_t& v) {
    uint8_t hi = 0, lo = 0;
    if (b_.size() - at_ < 2 || !u8(hi) || !u8(lo)) return false;
    v = static_cast<uint16_t>((hi << 8) | lo);
    return true;
  }
  bool u32(uint32_t& v) {
    uint16_t hi = 0, lo = 0;
    if (b_.size() - at_ < 4 || !u16(hi) || !u16(lo)) return false;
    v = (static_cast<uint32_t>(hi) << 16) | lo;
    return true;
  }
  bool bytes(size_t n, std::string_view& out) {
    if (b_.size() - at_ < n) return false;
    out = b_.substr(at_, n);
    at_ += n;
    return true;
  }
  [[nodiscard]] bool done() const { return at_ == b_.size(); }

 private:
  std::string_view b_;
  size_t at_ = 0;
};

core::Unexpected<std::string> bad(const std::string& what) {
  return core::Unexpected<std::string>("handover frame: " + what);
}

bool read_flow(Reader& r, Flow& f) {
  return r.u8(f.proto) && r.u32(f.src) && r.u32(f.dst) && r.u16(f.sport) && r.u16(f.dport) &&
         r.u32(f.timeout_s);
}

core::Result<ReplicaBatch, std::string> read_replica(Reader& r) {
  ReplicaBatch b;
  uint16_t nu = 0, nd = 0;
  if (!r.u8(b.flags) || !r.u16(nu) || !r.u16(nd)) return bad("replica: truncated header");
  if ((b.flags & ~(ReplicaBatch::kResyncBegin | ReplicaBatch::kResyncComplete)) != 0) {
    return bad("replica: unknown flags " + std::to_string(b.flags));
  }
  const size_t bytes = size_t{nu} * kUpsertBytes + size_t{nd} * kFlowBytes;
  if (bytes > kMaxReplicaBytes) {
    return bad("replica: " + std::to_string(nu) + " upserts and " + std::to_string(nd) +
               " destroys exceed a frame (" + std::to_string(bytes) + " bytes)");
  }
  b.upserts.reserve(nu);
  for (uint16_t i = 0; i < nu; ++i) {
    netfilter::ReplicatedFlow u;
    uint8_t has_tcp = 0;
    netfilter::TcpInfo t;
    if (!read_flow(r, u.flow) || !r.u16(u.public_port) || !r.u32(u.status) || !r.u8(has_tcp) ||
        !r.u8(t.state) || !r.u8(t.wscale_orig) || !r.u8(t.wscale_reply) || !r.u8(t.flags_orig) ||
        !r.u8(t.flags_reply)) {
      return bad("replica: upsert " + std::to_string(i) + " of " + std::to_string(nu) +
                 " truncated");
    }
    if (has_tcp > 1 || (has_tcp == 0 && !(t == netfilter::TcpInfo{}))) {
      return bad("replica: upsert " + std::to_string(i) + ": bad tcp flag " +
                 std::to_string(has_tcp) + " or tcp fields without it");
    }
    if (has_tcp == 1) u.tcp = t;
    b.upserts.push_back(u);
  }
  b.destroys.reserve(nd);
  for (uint16_t i = 0; i < nd; ++i) {
    Flow f;
    if (!read_flow(r, f)) {
      return bad("replica: destroy " + std::to_string(i) + " of " + std::to_string(nd) +
                 " truncated");
    }
    b.destroys.push_back(f);
  }
  return b;
}

core::Result<std::vector<Flow>, std::string> read_flows(Reader& r, const char* what) {
  uint16_t n = 0;
  if (!r.u16(n)) return bad(std::string(what) + ": truncated count");
  if (n > kMaxFlowsPerFrame) return bad(std::string(what) + ": " + std::to_string(n) + " flows");
  std::vector<Flow> flows;
  flows.reserve(n);
  for (uint16_t i = 0; i < n; ++i) {
    Flow f;
    if (!read_flow(r, f)) {
      return bad(std::string(what) + ": flow " + std::to_string(i) + " of " + std::to_string(n) +
                 " truncated");
    }
    flows.push_back(f);
  }
  return flows;
}

bool name_ok(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return c > 0x20 && c < 0x7f; });
}

}  // namespace

std::array<uint8_t, kMacBytes> frame_mac(const MacKey& key, uint64_t seq, std::string_view frame) {
  std::string input(reinterpret_cast<const char*>(key.nonce.data()), key.nonce.size());
  put_u64(input, seq);
  input.append(frame);
  std::array<uint8_t, kMacBytes> mac{};
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.psk.data(), static_cast<int>(key.psk.size()),
       reinterpret_cast<const unsigned char*>(input.data()), input.size(), mac.data(), &len);
  return mac;
}

Nonce random_nonce() {
  Nonce n{};
  HANAT_CHECK(RAND_bytes(n.data(), static_cast<int>(n.size())) == 1,
              "handover: no random bytes for a nonce");
  return n;
}

std::string encode(const Frame& frame, const MacKey* key, uint64_t seq) {
  std::string body;
  std::visit(
      [&](const auto& f) {
        using T = std::decay_t<decltype(f)>;
        if constexpr (std::is_same_v<T, Hello>) {
          put_u8(body, static_cast<uint8_t>(FrameType::Hello));
          put_u8(body, f.version);
          put_u8(body, f.keyed ? 1 : 0);
          put_name(body, f.group);
          put_name(body, f.member);
          body.append(reinterpret_cast<const char*>(f.nonce.data()), f.nonce.size());
        } else if constexpr (std::is_same_v<T, FlowBatch>) {
          put_u8(body, static_cast<uint8_t>(FrameType::Flows));
          put_u8(body, f.flags);
          put_flows(body, f.flows);
        } else if constexpr (std::is_same_v<T, Destroyed>) {
          put_u8(body, static_cast<uint8_t>(FrameType::Destroyed));
          put_flows(body, f.flows);
        } else if constexpr (std::is_same_v<T, End>) {
          put_u8(body, static_cast<uint8_t>(FrameType::End));
        } else if constexpr (std::is_same_v<T, ReplicaBatch>) {
          put_u8(body, static_cast<uint8_t>(FrameType::Replica));
          put_replica(body, f);
        } else if constexpr (std::is_same_v<T, Reclaim>) {
          HANAT_CHECK(f.tables.size() <= kMaxReclaimTables,
                      "handover: too many tables for one frame");
          put_u8(body, static_cast<uint8_t>(FrameType::Reclaim));
          put_u16(body, static_cast<uint16_t>(f.tables.size()));
          for (const auto& t : f.tables) put_name(body, t);
        } else {
          put_u8(body, static_cast<uint8_t>(FrameType::Ack));
          put_u32(body, f.held);
        }
      },
      frame);
  const bool mac = key != nullptr && !std::holds_alternative<Hello>(frame);
  std::string out;
  put_u32(out, static_cast<uint32_t>(body.size() + (mac ? kMacBytes : 0)));
  out += body;
  if (mac) {
    const auto m = frame_mac(*key, seq, out);
    out.append(reinterpret_cast<const char*>(m.data()), m.size());
  }
  return out;
}

std::vector<FlowBatch> split(const std::vector<Flow>& flows, bool replace, bool complete,
                             size_t per_frame) {
  per_frame = std::clamp<size_t>(per_frame, 1, kMaxFlowsPerFrame);
  std::vector<FlowBatch> out;
  size_t at = 0;
  do {
    FlowBatch b;
    const size_t n = std::min(per_frame, flows.size() - at);
    b.flows.assign(flows.begin() + static_cast<std::ptrdiff_t>(at),
                   flows.begin() + static_cast<std::ptrdiff_t>(at + n));
    if (out.empty() && replace) b.flags |= FlowBatch::kReplace;
    at += n;
    out.push_back(std::move(b));
  } while (at < flows.size());
  if (complete) out.back().flags |= FlowBatch::kComplete;
  return out;
}

core::Result<Frame, std::string> decode_body(std::string_view body) {
  Reader r(body);
  uint8_t type = 0;
  if (!r.u8(type)) return bad("empty");
  auto trailing = [&]() { return !r.done(); };
  const std::string kTrailing = "trailing bytes after the payload";
  switch (static_cast<FrameType>(type)) {
    case FrameType::Hello: {
      Hello h;
      uint8_t keyed = 0, glen = 0, mlen = 0;
      std::string_view group, member, nonce;
      if (!r.u8(h.version) || !r.u8(keyed)) return bad("hello: truncated");
      if (h.version != kVersion) return bad("hello: version " + std::to_string(h.version));
      if (keyed > 1) return bad("hello: keyed flag " + std::to_string(keyed));
      if (!r.u8(glen) || glen > kMaxNameBytes || !r.bytes(glen, group)) {
        return bad("hello: group truncated or longer than " + std::to_string(kMaxNameBytes));
      }
      if (!r.u8(mlen) || mlen > kMaxNameBytes || !r.bytes(mlen, member)) {
        return bad("hello: member truncated or longer than " + std::to_string(kMaxNameBytes));
      }
      if (!name_ok(group) || !name_ok(member) || member.empty()) {
        return bad("hello: group or member is not printable ASCII");
      }
      if (!r.bytes(kNonceBytes, nonce)) return bad("hello: nonce truncated");
      h.keyed = keyed == 1;
      h.group = group;
      h.member = member;
      std::memcpy(h.nonce.data(), nonce.data(), kNonceBytes);
      if (trailing()) return bad(kTrailing);
      return Frame(std::in_place_type<Hello>, std::move(h));
    }
    case FrameType::Flows: {
      FlowBatch b;
      if (!r.u8(b.flags)) return bad("flows: truncated");
      if ((b.flags & ~(FlowBatch::kReplace | FlowBatch::kComplete)) != 0) {
        return bad("flows: unknown flags " + std::to_string(b.flags));
      }
      auto flows = read_flows(r, "flows");
      if (!flows) return core::Unexpected(flows.error());
      b.flows = std::move(*flows);
      if (trailing()) return bad(kTrailing);
      return Frame(std::in_place_type<FlowBatch>, std::move(b));
    }
    case FrameType::Destroyed: {
      auto flows = read_flows(r, "destroyed");
      if (!flows) return core::Unexpected(flows.error());
      if (trailing()) return bad(kTrailing);
      return Frame(std::in_place_type<Destroyed>, Destroyed{std::move(*flows)});
    }
    case FrameType::End:
      if (trailing()) return bad(kTrailing);
      return Frame(std::in_place_type<End>);
    case FrameType::Reclaim: {
      Reclaim rc;
      uint16_t n = 0;
      if (!r.u16(n)) return bad("reclaim: truncated count");
      if (n > kMaxReclaimTables) return bad("reclaim: " + std::to_string(n) + " tables");
      for (uint16_t i = 0; i < n; ++i) {
        uint8_t len = 0;
        std::string_view id;
        if (!r.u8(len) || len > kMaxNameBytes || !r.bytes(len, id)) {
          return bad("reclaim: table " + std::to_string(i) + " of " + std::to_string(n) +
                     " truncated or longer than " + std::to_string(kMaxNameBytes));
        }
        if (id.empty() || !name_ok(id)) {
          return bad("reclaim: table " + std::to_string(i) + " is not printable ASCII");
        }
        rc.tables.emplace_back(id);
      }
      if (trailing()) return bad(kTrailing);
      return Frame(std::in_place_type<Reclaim>, std::move(rc));
    }
    case FrameType::Ack: {
      Ack a;
      if (!r.u32(a.held)) return bad("ack: truncated");
      if (trailing()) return bad(kTrailing);
      return Frame(std::in_place_type<Ack>, a);
    }
    case FrameType::Replica: {
      auto b = read_replica(r);
      if (!b) return core::Unexpected(b.error());
      if (trailing()) return bad(kTrailing);
      return Frame(std::in_place_type<ReplicaBatch>, std::move(*b));
    }
  }
  return bad("unknown type " + std::to_string(type));
}

core::Result<std::optional<Frame>, std::string> Decoder::next() {
  if (buf_.size() < 4) return std::optional<Frame>();
  const auto* p = reinterpret_cast<const uint8_t*>(buf_.data());
  const uint32_t len = (static_cast<uint32_t>(p[0]) << 24) | (static_cast<uint32_t>(p[1]) << 16) |
                       (static_cast<uint32_t>(p[2]) << 8) | p[3];
  if (len == 0 || len > max_frame_) {
    return bad("length " + std::to_string(len) + " outside 1.." + std::to_string(max_frame_));
  }
  if (buf_.size() - 4 < len) return std::optional<Frame>();
  std::string_view frame(buf_.data(), 4 + static_cast<size_t>(len));
  std::string_view body = frame.substr(4);
  // Hellos are never MACed (they carry the nonces the MACs need); everything else is once a
  // key is set.
  const bool hello = !body.empty() && body[0] == static_cast<char>(FrameType::Hello);
  if (key_ && !hello) {
    if (body.size() < kMacBytes + 1) return bad("shorter than its MAC");
    const std::string_view mac = body.substr(body.size() - kMacBytes);
    body = body.substr(0, body.size() - kMacBytes);
    // The MAC covers the length as sent (with the MAC's bytes counted).
    const auto want = frame_mac(*key_, seq_, frame.substr(0, frame.size() - kMacBytes));
    if (CRYPTO_memcmp(want.data(), mac.data(), kMacBytes) != 0) {
      return bad("MAC mismatch (another psk, or a frame replayed or lost)");
    }
    ++seq_;
  }
  auto f = decode_body(body);
  buf_.erase(0, frame.size());
  if (!f) return core::Unexpected(f.error());
  return std::optional<Frame>(std::move(*f));
}

}  // namespace hanat::handover
