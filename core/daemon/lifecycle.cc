// SPDX-License-Identifier: GPL-2.0-or-later
#include "core/daemon/lifecycle.h"

namespace hanat::daemon {

LifecycleResponse lifecycle_response(std::string_view s) {
  // IMDS serves the value as is, possibly with a trailing newline from some tooling that
  // fakes it; AWS's own values carry none.
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' '))
    s.remove_suffix(1);
  if (s.empty() || s == "InService") return LifecycleResponse::Serve;
  if (s == "Terminated" || s == "Warmed:Terminated" || s == "Detached")
    return LifecycleResponse::Leave;
  if (s == "Standby" || s == "Warmed:Stopped" || s == "Warmed:Running" || s == "Warmed:Hibernated")
    return LifecycleResponse::Drain;
  return LifecycleResponse::Unknown;
}

const char* to_string(LifecycleResponse r) {
  switch (r) {
    case LifecycleResponse::Serve:
      return "serve";
    case LifecycleResponse::Leave:
      return "leave";
    case LifecycleResponse::Drain:
      return "drain";
    case LifecycleResponse::Unknown:
      return "unknown";
  }
  return "unknown";
}

}  // namespace hanat::daemon
