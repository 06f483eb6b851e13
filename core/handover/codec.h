// SPDX-License-Identifier: GPL-2.0-or-later
#pragma once
// DOC: the member channel's wire format.
//
// The leaving member (client) connects to the taking member (server) over TCP and sends its
// flows. Every frame is
//
//   u32 length (big endian, of everything after it) | u8 type | payload | [32-byte MAC]
//
// Hello (both ends, first, never MACed): u8 version, u8 keyed, u8 group length, group,
//   u8 member length, member id, 16-byte nonce.
// Flows: u8 flags (1 = replace everything held before, 2 = the snapshot is complete:
//   acknowledge it), u16 count, count x Flow.
// Destroyed: u16 count, count x Flow.   End: empty.   Ack: u32 flows held.
// Replica (stateful failover's continuous replication): u8 flags (1 = a resync begins,
//   2 = the resync is complete), u16 upserts, u16 destroys, upserts x Upsert, destroys x Flow.
// Reclaim (type 7, the reverse direction: the home member asks the member serving its tables
//   for their flows before a failback): u16 count, count x (u8 length, route table id).
// A Flow is 17 bytes: u8 proto, u32 src, u32 dst, u16 sport, u16 dport, u32 timeout_s.
// An Upsert is 29 bytes: Flow, u16 public_port, u32 status, u8 has_tcp (0/1), u8 tcp state,
//   u8 wscale_orig, u8 wscale_reply, u8 flags_orig, u8 flags_reply (all 0 without tcp).
//
// With a pre-shared key every frame after the hellos carries HMAC-SHA256(psk, nonce || u64
// sequence || length..payload), where nonce is the one the *receiving* end chose in its
// hello and sequence counts that direction's frames from 0: a frame recorded on another
// connection or replayed, dropped or reordered on this one fails the check.
//
// Decoding is strict: unknown types, lengths beyond kMaxFrameBytes, counts that disagree
// with the length, strings beyond their bounds are errors that close the connection.

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "core/base/result.h"
#include "netfilter/flow.h"

namespace hanat::handover {

using netfilter::Flow;

inline constexpr uint8_t kVersion = 1;
inline constexpr size_t kMaxFrameBytes = 64 * 1024;
inline constexpr size_t kFlowBytes = 17;
inline constexpr size_t kNonceBytes = 16;
inline constexpr size_t kMacBytes = 32;
inline constexpr size_t kMaxNameBytes = 64;  // group and member id
// Flows per frame: a full frame stays under kMaxFrameBytes with its header and MAC.
inline constexpr size_t kMaxFlowsPerFrame = (kMaxFrameBytes - 64) / kFlowBytes;
inline constexpr size_t kUpsertBytes = kFlowBytes + 2 + 4 + 6;
// A Replica frame's entries: upserts x kUpsertBytes + destroys x kFlowBytes stay within this
// (the same margin for header, flags, counts and MAC as a FlowBatch).
inline constexpr size_t kMaxReplicaBytes = kMaxFrameBytes - 64;

using Nonce = std::array<uint8_t, kNonceBytes>;

enum class FrameType : uint8_t {
  Hello = 1,
  Flows = 2,
  Destroyed = 3,
  End = 4,
  Ack = 5,
  Replica = 6,
  Reclaim = 7,
};

struct Hello {
  uint8_t version = kVersion;
  bool keyed = false;  // this end sends MACs (has a psk)
  std::string group;
  std::string member;
  Nonce nonce{};
  friend bool operator==(const Hello&, const Hello&) = default;
};
struct FlowBatch {
  static constexpr uint8_t kReplace = 1;
  static constexpr uint8_t kComplete = 2;
  uint8_t flags = 0;
  std::vector<Flow> flows;
  friend bool operator==(const FlowBatch& a, const FlowBatch& b) {
    return a.flags == b.flags && same_flows(a.flows, b.flows);
  }
  static bool same_flows(const std::vector<Flow>& a, const std::vector<Flow>& b);
};
struct Destroyed {
  std::vector<Flow> flows;
  friend bool operator==(const Destroyed& a, const Destroyed& b) {
    return FlowBatch::same_flows(a.flows, b.flows);
  }
};
struct End {
  friend bool operator==(const End&, const End&) = default;
};
struct Ack {
  uint32_t held = 0;
  friend bool operator==(const Ack&, const Ack&) = default;
};
// A batch of stateful failover's replication stream (DESIGN.md, "Connection survival"): a
// member's conntrack changes for the member that would take its tables if it died. Upserts
// carry everything the survivor needs to recreate an entry (netfilter::ReplicatedFlow),
// destroys only the original tuple. A flow appears at most once per batch (the sender
// coalesces), so applying the upserts, then the destroys, is exact.
//
// A resync is the sender's whole current set: its first frame carries kResyncBegin, its last
// kResyncComplete (one frame may carry both). When the complete resync has arrived, the
// receiver drops every flow of this sender that the resync did not announce: that is how
// flows whose DESTROY event was lost (netlink overrun) and timeouts leave the receiver.
struct ReplicaBatch {
  static constexpr uint8_t kResyncBegin = 1;
  static constexpr uint8_t kResyncComplete = 2;
  uint8_t flags = 0;
  std::vector<netfilter::ReplicatedFlow> upserts;
  std::vector<Flow> destroys;
  friend bool operator==(const ReplicaBatch& a, const ReplicaBatch& b) {
    return a.flags == b.flags && a.upserts == b.upserts &&
           FlowBatch::same_flows(a.destroys, b.destroys);
  }
  // Wire bytes of the entries (the bound is kMaxReplicaBytes).
  [[nodiscard]] size_t entry_bytes() const {
    return upserts.size() * kUpsertBytes + destroys.size() * kFlowBytes;
  }
};
// Route table ids per Reclaim frame: a full frame stays under kMaxFrameBytes.
inline constexpr size_t kMaxReclaimTables = (kMaxFrameBytes - 64) / (1 + kMaxNameBytes);
struct Reclaim {
  std::vector<std::string> tables;
  friend bool operator==(const Reclaim&, const Reclaim&) = default;
};
using Frame = std::variant<Hello, FlowBatch, Destroyed, End, Ack, ReplicaBatch, Reclaim>;

// What MACs one direction: the psk and the nonce the receiving end chose.
struct MacKey {
  std::string psk;
  Nonce nonce{};
};

// Encodes one frame. `key` (frames after the hellos, when a psk is configured) appends the
// MAC over `seq`. A FlowBatch or Destroyed holds at most kMaxFlowsPerFrame flows, a
// ReplicaBatch at most kMaxReplicaBytes of entries, a name at most kMaxNameBytes (a violation
// is a programming error: HANAT_CHECK).
// MAC over `seq`. A FlowBatch or Destroyed holds at most kMaxFlowsPerFrame flows, a Reclaim
// at most kMaxReclaimTables tables, a name (or table id) at most kMaxNameBytes (a violation is a
// programming error: HANAT_CHECK).
[[nodiscard]] std::string encode(const Frame& f, const MacKey* key = nullptr, uint64_t seq = 0);

// Splits `flows` into FlowBatch frames of at most `per_frame` flows: the first carries
// kReplace when `replace`, the last kComplete when `complete` (one frame if `flows` is empty).
[[nodiscard]] std::vector<FlowBatch> split(const std::vector<Flow>& flows, bool replace,
                                           bool complete, size_t per_frame = kMaxFlowsPerFrame);

// Incremental decoder for one direction of a connection.
class Decoder {
 public:
  explicit Decoder(size_t max_frame = kMaxFrameBytes) : max_frame_(max_frame) {}
  // From now on every frame must carry a valid MAC under `key` (sequence from 0).
  void set_key(MacKey key) {
    key_ = std::move(key);
    seq_ = 0;
  }
  // Appends received bytes.
  void feed(std::string_view data) { buf_.append(data); }
  // The next complete frame, nullopt when more bytes are needed, or an error (the
  // connection must be closed: the stream cannot be resynchronised).
  [[nodiscard]] core::Result<std::optional<Frame>, std::string> next();
  [[nodiscard]] size_t buffered() const { return buf_.size(); }

 private:
  size_t max_frame_;
  std::optional<MacKey> key_;
  uint64_t seq_ = 0;
  std::string buf_;
};

// Decodes one frame body (type and payload, no length, no MAC). Exposed for the fuzz target.
[[nodiscard]] core::Result<Frame, std::string> decode_body(std::string_view body);

// HMAC-SHA256 of the MAC input (nonce, seq, frame bytes).
[[nodiscard]] std::array<uint8_t, kMacBytes> frame_mac(const MacKey& key, uint64_t seq,
                                                       std::string_view frame);

// A fresh random nonce (OpenSSL RAND_bytes).
[[nodiscard]] Nonce random_nonce();

}  // namespace hanat::handover
