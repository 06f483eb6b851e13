# SPDX-License-Identifier: GPL-2.0-or-later
# The daemon shell (everything in core/ but engine/ and uv/) and the two executables.
add_library(core_config STATIC config/config.cc config/config.h config/config_rules.cc
  config/config_sections.cc config/config_sections.h config/toml_reader.cc config/toml_reader.h)
target_link_libraries(core_config PUBLIC hanat_options core_base PRIVATE PkgConfig::TOMLPLUSPLUS)

# The text rendering of a status reply: jansson only, shared by hanatctl and its tests.
add_library(core_status_text STATIC status/status_text.cc status/status_text.h)
target_link_libraries(core_status_text PUBLIC hanat_options PkgConfig::JANSSON)

add_library(core STATIC
  log/log.cc
  status/status_server.cc
  daemon/daemon.cc
  daemon/floating_eni.cc
  daemon/forward_check.cc
  daemon/hooks.cc
  daemon/node.cc
  daemon/node_eips.cc
  daemon/node_execute.cc
  daemon/node_floating.cc
  daemon/node_lifecycle.cc
  daemon/node_members.cc
  daemon/node_probes.cc
  daemon/node_recovery.cc
  daemon/node_routes.cc
  daemon/node_startup.cc
  daemon/node_status.cc
  daemon/plan.cc
  daemon/recovery_record.cc
  daemon/report.cc
  daemon/lifecycle.cc
  daemon/state_dir.cc
  daemon/stop_kind.cc
  daemon/keep_plan.cc
  daemon/keep_sender.cc
  daemon/replica_sender.cc
  daemon/node_keep.cc
  daemon/node_keep_send.cc
  daemon/node_replicate.cc
  daemon/node_takeover.cc
  daemon/steer_keeper.cc
  daemon/replica_store.cc
  daemon/takeover.cc)
target_link_libraries(core PUBLIC hanat_options core_config core_uv core_engine core_metrics ec2
  netfilter handover probes core_status_text PkgConfig::JANSSON PkgConfig::LIBSYSTEMD)

add_executable(hanatd main.cc)
target_link_libraries(hanatd PRIVATE core)

add_executable(hanatctl hanatctl/main.cc)
target_link_libraries(hanatctl PRIVATE hanat_options core_status_text PkgConfig::JANSSON)

include(GNUInstallDirs)
install(TARGETS hanatd RUNTIME DESTINATION ${CMAKE_INSTALL_SBINDIR})
install(TARGETS hanatctl RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
