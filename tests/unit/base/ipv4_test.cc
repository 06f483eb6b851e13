// SPDX-License-Identifier: GPL-2.0-or-later
// core/base/ipv4.h against the C library's own reading and writing of addresses.

#include "core/base/ipv4.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>

namespace hanat::core {
namespace {

std::optional<uint32_t> libc(const std::string& text) {
  in_addr a{};
  if (inet_pton(AF_INET, text.c_str(), &a) != 1) return std::nullopt;
  return ntohl(a.s_addr);
}

TEST(Ipv4, TextIsTheDottedQuadInHostOrder) {
  EXPECT_EQ(ipv4_text(0xC6120001u), "198.18.0.1");
  EXPECT_EQ(ipv4_text(0), "0.0.0.0");
  EXPECT_EQ(ipv4_text(0xffffffffu), "255.255.255.255");
  for (uint32_t a : {0x01020304u, 0xC613FF0Au, 0x7f000001u}) {
    in_addr n{};
    n.s_addr = htonl(a);
    char buf[INET_ADDRSTRLEN] = {};
    inet_ntop(AF_INET, &n, buf, sizeof buf);
    EXPECT_EQ(ipv4_text(a), buf);
  }
}

TEST(Ipv4, ParsesWhatInetPtonParsesAndRefusesWhatItRefuses) {
  for (const char* text :
       {"198.18.0.1", "0.0.0.0",    "255.255.255.255", "1.2.3.4",   "10.0.0.10",
        "256.1.1.1",  "1.2.3",      "1.2.3.4.5",       "01.2.3.4",  "1.2.3.04",
        "1..2.3",     "",           " 1.2.3.4",        "1.2.3.4 ",  "a.b.c.d",
        "1.2.3.-4",   "1.2.3.4/24", "1000.2.3.4",      "0x1.2.3.4", "+1.2.3.4"}) {
    EXPECT_EQ(parse_ipv4(text), libc(text)) << '"' << text << '"';
  }
  EXPECT_EQ(parse_ipv4("198.18.0.1"), 0xC6120001u);
}

}  // namespace
}  // namespace hanat::core
