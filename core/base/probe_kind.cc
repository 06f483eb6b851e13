// SPDX-License-Identifier: GPL-2.0-or-later
#include "core/base/probe_kind.h"

namespace hanat::core {

const char* to_string(ProbeKind k) {
  switch (k) {
    case ProbeKind::Icmp:
      return "icmp";
    case ProbeKind::Tcp:
      return "tcp";
    case ProbeKind::Agent:
      return "agent";
  }
  return "?";
}

const char* to_string(ProbePath p) {
  switch (p) {
    case ProbePath::Private:
      return "private";
    case ProbePath::Public:
      return "public";
  }
  return "?";
}

}  // namespace hanat::core
