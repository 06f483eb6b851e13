// SPDX-License-Identifier: GPL-2.0-or-later
#include "probes/types.h"

namespace hanat::probes {

const char* to_string(Failure f) {
  switch (f) {
    case Failure::None:
      return "none";
    case Failure::Timeout:
      return "timeout";
    case Failure::Refused:
      return "refused";
    case Failure::Unreachable:
      return "unreachable";
    case Failure::AgentDown:
      return "agent-down";
    case Failure::Error:
      return "error";
  }
  return "?";
}

}  // namespace hanat::probes
