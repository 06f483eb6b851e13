// SPDX-License-Identifier: GPL-2.0-or-later
// The rules of hanat's config that span fields or sections (the per-field checks are in
// config_sections.cc).

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>

#include "core/config/config_sections.h"

namespace hanat::config::detail {

void check_rules(Reader& r, const toml::table& root, Config& c) {
  // Cross-field rules, reported at the section (or the file start when it is absent).
  auto where = [&](std::string_view section) -> toml::source_region {
    if (const Node* n = root.get(section)) return n->source();
    toml::source_region s;
    s.begin = {1, 1};
    return s;
  };
  if (c.group.name.empty())
    r.error(where("group"), "group.name", "is required (the hanat:group tag value)");
  if (c.group.discovery == Discovery::Explicit && c.group.route_tables.empty())
    r.error(where("group"), "group.route_tables",
            "is required when discovery = \"explicit\" (list the rtb- ids to manage)");
  if (c.group.discovery == Discovery::Tags &&
      (!c.group.members.empty() || !c.group.route_tables.empty()))
    r.error(where("group"), "group.discovery",
            "members/route_tables are listed but discovery = \"tags\"; set discovery = "
            "\"explicit\" to use them");
  if (c.group.destinations.empty()) c.group.destinations.push_back(*parse_cidr("0.0.0.0/0"));
  if (c.probe.timeout > c.probe.interval)
    r.error(where("probe"), "probe.timeout",
            format_duration(c.probe.timeout) + " is longer than probe.interval (" +
                format_duration(c.probe.interval) + "): probes of one target would overlap");
  if (!c.failover.eips.empty() && !c.failover.move_eip)
    r.error(where("failover"), "failover.eips",
            "lists Elastic IPs but move_eip = false; set move_eip = true to move them");
  if (c.failover.stateful && !c.failover.move_eip)
    r.error(where("failover"), "failover.stateful",
            "needs move_eip = true: a dead member's connections continue only if the zone's "
            "Elastic IP, the public address their far ends know, moves with its tables");
  if (c.probe.kinds.empty())
    r.error(where("probe"), "probe.kinds", "must name at least one probe kind");
  if (std::find(c.probe.paths.begin(), c.probe.paths.end(), ProbePath::Private) ==
      c.probe.paths.end())
    r.error(where("probe"), "probe.paths",
            "must name \"private\" (every peer is probed on its private address; \"public\" "
            "adds a second path)");
  if (static_cast<size_t>(c.egress.required) > std::max<size_t>(1, c.egress.targets.size()) &&
      !c.egress.targets.empty())
    r.error(where("egress"), "egress.required",
            std::to_string(c.egress.required) + " is more than the " +
                std::to_string(c.egress.targets.size()) + " targets listed");
  if (c.egress.timeout > c.egress.interval)
    r.error(where("egress"), "egress.timeout", "is longer than egress.interval");
  if (c.ec2.credentials == CredentialsSource::Static &&
      (c.ec2.access_key_id.empty() || c.ec2.secret_access_key.empty()))
    r.error(where("ec2"), "ec2.credentials",
            "\"static\" needs access_key_id and secret_access_key");
  if (c.ec2.credentials != CredentialsSource::Static &&
      (!c.ec2.access_key_id.empty() || !c.ec2.secret_access_key.empty()))
    r.error(where("ec2"), "ec2.access_key_id",
            "keys are set but credentials is not \"static\"; they would be ignored");
  if (c.failover.hold_down_max < c.failover.hold_down)
    r.error(where("failover"), "failover.hold_down_max", "is shorter than failover.hold_down");
  if (c.handover.channel_port != 0 && c.handover.channel_port == c.agent.port)
    r.error(where("handover"), "handover.channel_port",
            std::to_string(c.handover.channel_port) +
                " is agent.port too; the channel needs a port of its own");
  if (!c.hooks.on_transition.empty()) {
    // Checked when the file is read (--check-config, start, reload), not at the first
    // transition: a hook that cannot run should stop the change that introduced it.
    const std::string& cmd = c.hooks.on_transition.front();
    struct stat st {};
    std::string why;
    if (cmd.empty() || cmd[0] != '/') {
      why = "must be an absolute path to an executable";
    } else if (::stat(cmd.c_str(), &st) != 0) {
      why = std::strerror(errno);
    } else if (!S_ISREG(st.st_mode)) {
      why = "not a regular file";
    } else if (::access(cmd.c_str(), X_OK) != 0) {
      why = std::string("not executable: ") + std::strerror(errno);
    }
    if (!why.empty()) r.error(where("hooks"), "hooks.on_transition", "\"" + cmd + "\": " + why);
  }
}

}  // namespace hanat::config::detail
