// SPDX-License-Identifier: GPL-2.0-or-later
// fuzz_status_request: what clients send to the status socket, cut into lines as
// StatusServer::on_data does and fed to status::parse_request.
// Invariants: a request is a JSON object whose "cmd" string is the returned cmd, and it
// survives a dump/parse round trip (one line, same cmd); a blank result comes only from a
// blank line; every error message fits the one-line JSON error reply the server sends.
#include <jansson.h>

#include "core/status/status_server.h"
#include "tests/fuzz/fuzz_check.h"

namespace hanat::fuzz {
namespace {

void one_line(std::string_view line) {
  auto r = status::parse_request(line);
  std::string_view stripped = line;
  if (!stripped.empty() && stripped.back() == '\r') stripped.remove_suffix(1);
  const bool blank = stripped.find_first_not_of(" \t") == std::string_view::npos;
  if (!r) {
    FUZZ_CHECK(!blank, "a blank line got an error");
    FUZZ_CHECK(!r.error().empty(), "error without a message");
    status::Json reply(
        json_pack("{s:b, s:s%}", "ok", 0, "error", r.error().data(), r.error().size()));
    FUZZ_CHECK(reply != nullptr, "error message cannot go into a JSON reply: " + r.error());
    const std::string text = status::dump(reply.get());
    FUZZ_CHECK(text.find('\n') == std::string::npos, "error reply spans lines: " + text);
    status::Json back(json_loadb(text.data(), text.size(), 0, nullptr));
    FUZZ_CHECK(back != nullptr, "error reply is not JSON: " + text);
    const json_t* msg = json_object_get(back.get(), "error");
    FUZZ_CHECK(json_is_string(msg) &&
                   std::string_view(json_string_value(msg), json_string_length(msg)) == r.error(),
               "error reply does not carry the message: " + text);
    return;
  }
  if (!r->has_value()) {
    FUZZ_CHECK(blank, "a non-blank line was ignored");
    return;
  }
  FUZZ_CHECK(!blank, "a blank line became a request");
  const status::Request& req = **r;
  FUZZ_CHECK(json_is_object(req.body.get()), "request body is not an object");
  const json_t* cmd = json_object_get(req.body.get(), "cmd");
  FUZZ_CHECK(json_is_string(cmd) && req.cmd == json_string_value(cmd),
             "cmd '" + req.cmd + "' differs from the body's");
  const std::string text = status::dump(req.body.get());
  FUZZ_CHECK(text.find('\n') == std::string::npos, "request dumps over several lines");
  auto again = status::parse_request(text);
  FUZZ_CHECK(again.has_value() && again->has_value() && (*again)->cmd == req.cmd,
             "request '" + text + "' does not reparse to cmd '" + req.cmd + "'");
}

}  // namespace

int status_request(const std::uint8_t* data, std::size_t size) {
  std::string_view rest = as_view(data, size);
  // As the server does: one request per "\n"-terminated line; a final unterminated piece
  // would wait for more data, so it is parsed only when it is the whole input.
  bool any = false;
  for (std::size_t nl; (nl = rest.find('\n')) != std::string_view::npos;) {
    one_line(rest.substr(0, nl));
    rest.remove_prefix(nl + 1);
    any = true;
  }
  if (!any) one_line(rest);
  return 0;
}

}  // namespace hanat::fuzz

HANAT_FUZZ_ENTRY(status_request)
