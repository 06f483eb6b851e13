# SPDX-License-Identifier: GPL-2.0-or-later
# The adapters (netfilter/, probes/) only measure and report; judgements live in core/engine
# or in pure shared code (core/base). This script fails when a file under one of the given
# directories includes anything from core/engine/.
# Usage: cmake -DADAPTER_DIRS=<dir>[;<dir>...] -P check_adapter_includes.cmake
set(bad "")
foreach(dir IN LISTS ADAPTER_DIRS)
  file(GLOB_RECURSE sources "${dir}/*.h" "${dir}/*.cc")
  foreach(src IN LISTS sources)
    file(STRINGS "${src}" lines REGEX "^[ \t]*#[ \t]*include[ \t]*[<\"]core/engine/")
    foreach(line IN LISTS lines)
      string(APPEND bad "\n  ${src}: ${line}")
    endforeach()
  endforeach()
endforeach()
if(bad)
  message(FATAL_ERROR "netfilter/ and probes/ must not include core/engine/ (judgements live in "
                      "the engine or core/base):${bad}")
endif()
