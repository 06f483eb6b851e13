# The daemon shell (everything in core/ but engine/ and uv/) and the two executables.
add_library(core_config STATIC config/config.cc config/config.h)
target_link_libraries(core_config PUBLIC hanat_options PRIVATE PkgConfig::TOMLPLUSPLUS)

add_library(core STATIC
  log/log.cc
  status/status_server.cc
  daemon/daemon.cc
  daemon/node.cc
  daemon/plan.cc)
target_link_libraries(core PUBLIC hanat_options core_config core_uv core_engine ec2 netfilter
  probes PkgConfig::JANSSON PkgConfig::LIBSYSTEMD)

add_executable(hanatd main.cc)
target_link_libraries(hanatd PRIVATE core)

add_executable(hanatctl hanatctl/main.cc)
target_link_libraries(hanatctl PRIVATE hanat_options PkgConfig::JANSSON)

include(GNUInstallDirs)
install(TARGETS hanatd RUNTIME DESTINATION ${CMAKE_INSTALL_SBINDIR})
install(TARGETS hanatctl RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
