// SPDX-License-Identifier: GPL-2.0-or-later
#include "ec2/sigv4.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include <algorithm>
#include <cctype>
#include <ctime>
#include <map>

namespace hanat::ec2 {
namespace {

constexpr char kHex[] = "0123456789abcdef";
constexpr char kHexUpper[] = "0123456789ABCDEF";

std::string to_hex(const unsigned char* p, size_t n) {
  std::string out;
  out.resize(n * 2);
  for (size_t i = 0; i < n; ++i) {
    out[2 * i] = kHex[p[i] >> 4];
    out[2 * i + 1] = kHex[p[i] & 0x0f];
  }
  return out;
}

bool is_unreserved(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '_' || c == '.' || c == '~';
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

// SigV4 "Trimall": strip leading/trailing whitespace and collapse inner runs to one space
// (folded multi-line values included, as the get-header-value-multiline vector shows).
std::string trim_all(std::string_view v) {
  std::string out;
  bool pending_space = false;
  for (char c : v) {
    if (is_space(c)) {
      pending_space = !out.empty();
      continue;
    }
    if (pending_space) out.push_back(' ');
    pending_space = false;
    out.push_back(c);
  }
  return out;
}

std::string canonical_path(std::string_view path, bool normalize) {
  if (path.empty()) return "/";
  if (!normalize) return uri_encode(path, /*keep_slash=*/true);
  // RFC 3986 section 5.2.4 dot-segment removal; empty segments ("//") are dropped too, as
  // the get-slashes-normalized vector expects.
  std::vector<std::string_view> segs;
  size_t pos = 0;
  while (pos <= path.size()) {
    size_t next = path.find('/', pos);
    if (next == std::string_view::npos) next = path.size();
    std::string_view seg = path.substr(pos, next - pos);
    if (seg == "..") {
      if (!segs.empty()) segs.pop_back();
    } else if (!seg.empty() && seg != ".") {
      segs.push_back(seg);
    }
    pos = next + 1;
  }
  std::string out = "/";
  for (size_t i = 0; i < segs.size(); ++i) {
    if (i > 0) out.push_back('/');
    out += uri_encode(segs[i]);
  }
  if (!segs.empty() && path.back() == '/') out.push_back('/');
  return out;
}

std::string canonical_query(std::string_view query) {
  std::vector<std::pair<std::string, std::string>> params;
  size_t pos = 0;
  while (pos < query.size()) {
    size_t amp = query.find('&', pos);
    if (amp == std::string_view::npos) amp = query.size();
    std::string_view part = query.substr(pos, amp - pos);
    if (!part.empty()) {
      size_t eq = part.find('=');
      std::string_view k = part.substr(0, eq);
      std::string_view v = eq == std::string_view::npos ? std::string_view{} : part.substr(eq + 1);
      params.emplace_back(uri_encode(uri_decode(k)), uri_encode(uri_decode(v)));
    }
    pos = amp + 1;
  }
  std::sort(params.begin(), params.end());
  std::string out;
  for (const auto& [k, v] : params) {
    if (!out.empty()) out.push_back('&');
    out += k;
    out.push_back('=');
    out += v;
  }
  return out;
}

}  // namespace

std::string sha256_hex(std::string_view data) {
  unsigned char md[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), md);
  return to_hex(md, sizeof md);
}

std::string hmac_sha256(std::string_view key, std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), md, &len);
  return std::string(reinterpret_cast<const char*>(md), len);
}

std::string amz_date(WallTime t) {
  std::time_t tt = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%dT%H%M%SZ", &tm);
  return buf;
}

std::string uri_encode(std::string_view s, bool keep_slash) {
  std::string out;
  out.reserve(s.size() + s.size() / 4);
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    if (is_unreserved(c) || (keep_slash && c == '/')) {
      out.push_back(ch);
    } else {
      out.push_back('%');
      out.push_back(kHexUpper[c >> 4]);
      out.push_back(kHexUpper[c & 0x0f]);
    }
  }
  return out;
}

std::string uri_decode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      int hi = hex_value(s[i + 1]);
      int lo = hex_value(s[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out.push_back(static_cast<char>(hi * 16 + lo));
        i += 2;
        continue;
      }
    }
    out.push_back(s[i]);
  }
  return out;
}

SigningSteps sign_steps(const HttpRequest& req, const Credentials& creds,
                        const SigningParams& params, WallTime now) {
  SigningSteps st;
  const std::string date_time = amz_date(now);
  const std::string date = date_time.substr(0, 8);
  const std::string payload_hash = sha256_hex(req.body);

  // Header name (lower case) -> values in order of appearance.
  std::map<std::string, std::vector<std::string>> hdrs;
  bool have_host = false;
  for (const auto& [k, v] : req.headers) {
    std::string name = lower(k);
    if (name == "host") have_host = true;
    hdrs[name].push_back(trim_all(v));
  }
  if (!have_host && !req.host.empty()) hdrs["host"].push_back(req.host);
  st.added_headers.emplace_back("X-Amz-Date", date_time);
  hdrs["x-amz-date"] = {date_time};
  if (!creds.session_token.empty()) {
    st.added_headers.emplace_back("X-Amz-Security-Token", creds.session_token);
    if (!params.omit_session_token) hdrs["x-amz-security-token"] = {creds.session_token};
  }
  if (params.sign_body) {
    st.added_headers.emplace_back("x-amz-content-sha256", payload_hash);
    hdrs["x-amz-content-sha256"] = {payload_hash};
  }

  std::string canonical_headers;
  std::string signed_headers;
  for (const auto& [name, values] : hdrs) {
    canonical_headers += name;
    canonical_headers.push_back(':');
    for (size_t i = 0; i < values.size(); ++i) {
      if (i > 0) canonical_headers.push_back(',');
      canonical_headers += values[i];
    }
    canonical_headers.push_back('\n');
    if (!signed_headers.empty()) signed_headers.push_back(';');
    signed_headers += name;
  }

  st.canonical_request = req.method + "\n" + canonical_path(req.path, params.normalize_path) +
                         "\n" + canonical_query(req.query) + "\n" + canonical_headers + "\n" +
                         signed_headers + "\n" + payload_hash;
  const std::string scope = date + "/" + params.region + "/" + params.service + "/aws4_request";
  st.string_to_sign =
      "AWS4-HMAC-SHA256\n" + date_time + "\n" + scope + "\n" + sha256_hex(st.canonical_request);

  std::string k = hmac_sha256("AWS4" + creds.secret_access_key, date);
  k = hmac_sha256(k, params.region);
  k = hmac_sha256(k, params.service);
  k = hmac_sha256(k, "aws4_request");
  const std::string sig = hmac_sha256(k, st.string_to_sign);
  st.signature = to_hex(reinterpret_cast<const unsigned char*>(sig.data()), sig.size());
  st.added_headers.emplace_back(
      "Authorization", "AWS4-HMAC-SHA256 Credential=" + creds.access_key_id + "/" + scope +
                           ", SignedHeaders=" + signed_headers + ", Signature=" + st.signature);
  return st;
}

Headers sign(const HttpRequest& req, const Credentials& creds, const SigningParams& params,
             WallTime now) {
  return sign_steps(req, creds, params, now).added_headers;
}

}  // namespace hanat::ec2
