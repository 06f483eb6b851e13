# SPDX-License-Identifier: GPL-2.0-or-later
# core/engine is the pure decision core: it must not do I/O. This script fails the build
# when a file under it includes a header that brings I/O, clocks or threads in.
# Usage: cmake -DENGINE_DIR=<dir> [-DADAPTER_DIRS=<dir>;...] -P check_engine_includes.cmake
# With ADAPTER_DIRS it also runs check_adapter_includes.cmake: those may not include the engine.
file(GLOB_RECURSE sources "${ENGINE_DIR}/*.h" "${ENGINE_DIR}/*.cc")
set(forbidden
  "uv\\.h" "curl/" "libmnl/" "libnftnl/" "linux/" "sys/" "netinet/" "arpa/" "net/"
  "unistd\\.h" "fcntl\\.h" "poll\\.h" "expat\\.h" "jansson\\.h" "systemd/"
  "openssl/" "toml\\+\\+/" "iostream" "fstream" "cstdio" "stdio\\.h" "thread" "filesystem"
  "future" "mutex" "ctime" "time\\.h")
set(bad "")
foreach(src IN LISTS sources)
  file(STRINGS "${src}" lines REGEX "^[ \t]*#[ \t]*include")
  foreach(line IN LISTS lines)
    foreach(pattern IN LISTS forbidden)
      if(line MATCHES "#[ \t]*include[ \t]*[<\"]${pattern}")
        string(APPEND bad "\n  ${src}: ${line}")
      endif()
    endforeach()
  endforeach()
endforeach()
if(bad)
  message(FATAL_ERROR "core/engine must not include I/O headers (see STYLE.md C0):${bad}")
endif()
if(ADAPTER_DIRS)
  include(${CMAKE_CURRENT_LIST_DIR}/check_adapter_includes.cmake)
endif()
