// SPDX-License-Identifier: GPL-2.0-or-later
// fuzz_handover_frame: the member channel's decoder (core/handover/codec.h) on arbitrary bytes.
// Byte 0 picks the mode: bit 0 set = a keyed decoder (psk "fuzz", nonce 0), as the taker's
// after the hellos. The rest is fed in chunks whose sizes come from the input itself.
// Invariants: errors are prefixed "handover frame: "; a decoded frame, encoded again (with
// the same key and sequence), decodes to the same frame; nothing is buffered beyond one
// frame's bound.
#include <string>

#include "core/handover/codec.h"
#include "tests/fuzz/fuzz_check.h"

namespace hanat::fuzz {

int handover_frame(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const bool keyed = (data[0] & 1) != 0;
  const handover::MacKey key{"fuzz", handover::Nonce{}};
  handover::Decoder d;
  if (keyed) d.set_key(key);
  std::string_view rest = as_view(data + 1, size - 1);
  uint64_t seq = 0;
  size_t chunk = 1 + (data[0] >> 1);
  while (!rest.empty()) {
    const size_t n = std::min(chunk, rest.size());
    d.feed(rest.substr(0, n));
    rest.remove_prefix(n);
    chunk = chunk * 3 + 1;
    for (;;) {
      auto f = d.next();
      if (!f) {
        FUZZ_CHECK(f.error().rfind("handover frame: ", 0) == 0, "error not prefixed: " + f.error());
        return 0;
      }
      if (!*f) break;
      const bool hello = std::holds_alternative<handover::Hello>(**f);
      const std::string again = handover::encode(**f, keyed ? &key : nullptr, seq);
      handover::Decoder check;
      if (keyed) check.set_key(key);
      // The check decoder's sequence starts at 0: MAC the re-encoding at 0 too.
      const std::string again0 = handover::encode(**f, keyed ? &key : nullptr, 0);
      check.feed(again0);
      auto back = check.next();
      FUZZ_CHECK(back && *back, "re-encoded frame does not decode");
      FUZZ_CHECK(**back == **f, "re-encoded frame decodes differently");
      FUZZ_CHECK(again.size() <= handover::kMaxFrameBytes + 4, "re-encoded frame too long");
      if (!hello) ++seq;
    }
    FUZZ_CHECK(d.buffered() <= handover::kMaxFrameBytes + 4 + rest.size() + chunk,
               "decoder buffers beyond a frame");
  }
  return 0;
}

}  // namespace hanat::fuzz

HANAT_FUZZ_ENTRY(handover_frame)
