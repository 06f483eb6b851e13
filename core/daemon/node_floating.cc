// SPDX-License-Identifier: GPL-2.0-or-later
// DOC: core/daemon/node_floating.cc keeps the floating ENI (failover.floating_eni) on this
// host when it should be here, beside everything else the node does: it never holds up
// start-up or the engine, so a member whose ENI cannot be attached (another zone, a
// holder that keeps it, an IAM policy without ec2:AttachNetworkInterface) still probes,
// fails over and serves routes, and says why in status, the log and the metrics.
// decide_floating() (floating_eni.h) chooses the step; this file reads EC2, carries the
// step out and schedules the next look: every second while the ENI is elsewhere or in
// transition, every group.refresh_interval once it is attached here (to notice a detach
// made outside hanat), with a capped backoff after errors.

#include <algorithm>
#include <string>

#include "core/daemon/floating_eni.h"
#include "core/daemon/node.h"
#include "core/daemon/node_util.h"
#include "core/log/log.h"

namespace hanat::daemon {

using node_util::Clock;
using node_util::err_of;
using std::chrono::milliseconds;

void Node::start_floating_eni() {
  if (cfg_->failover.floating_eni.empty() || floating_timer_ || plan_only_) return;
  floating_timer_ = std::make_unique<uv::Timer>(loop_);
  floating_eni_state_ = "checking";
  floating_check();
}

void Node::floating_next(milliseconds in) {
  if (!floating_timer_ || stopping_ || phase_ == Phase::Stopped) return;
  (void)floating_timer_->start(in, milliseconds(0), [this] { floating_check(); });
}

void Node::floating_state(const std::string& state, bool error) {
  const bool changed = state != floating_eni_state_;
  floating_eni_state_ = state;
  floating_error_ = error;
  if (!changed) return;
  if (error) {
    log::error(state);
  } else {
    log::info(state);
  }
}

void Node::floating_failed(const std::string& what, const ec2::Ec2Error& e) {
  ++floating_failures_;
  ++floating_attempts_;
  auto delay =
      milliseconds(std::min<std::int64_t>(30000, 1000LL << std::min(floating_attempts_, 5)));
  floating_state(
      "error: " + what + ": " + e.describe() + ", retrying in " + config::format_duration(delay),
      true);
  floating_next(delay);
}

void Node::floating_check() {
  if (!ec2_) return floating_next(milliseconds(1000));  // the EC2 client is not built yet
  const std::string eni = cfg_->failover.floating_eni;
  ec2::DescribeNetworkInterfacesRequest req;
  req.network_interface_ids = {eni};
  ec2_->describe_network_interfaces(
      req, {ec2::Priority::Read, milliseconds(0)},
      [this, eni](ec2::Ec2Result<ec2::DescribeNetworkInterfacesOk> r) {
        count_call("DescribeNetworkInterfaces", err_of(r));
        if (!r) return floating_failed("reading floating ENI " + eni, r.error());
        if (r->network_interfaces.empty()) {
          ++floating_attempts_;
          floating_state("error: floating ENI " + eni + " not found", true);
          return floating_next(cfg_->group.refresh_interval);
        }
        floating_decide(r->network_interfaces.front(), std::nullopt);
      });
}

void Node::floating_decide(const ec2::NetworkInterface& ni,
                           std::optional<std::string> holder_state) {
  FloatingView v;
  v.eni_id = ni.network_interface_id;
  v.self_instance = id_.instance_id;
  v.self_zone = id_.zone;
  v.eni_zone = ni.availability_zone;
  v.status = ni.status;
  v.holder = ni.attached_instance_id;
  v.attachment_status = ni.attachment_status;
  v.holder_state = std::move(holder_state);
  v.takeover_after = cfg_->failover.floating_eni_takeover_after;
  v.members_known = machine_ != nullptr;
  if (machine_ && !v.holder.empty()) {
    for (const auto& m : machine_->snapshot().members) {
      if (m.instance_id != v.holder || m.self) continue;
      v.holder_is_member = true;
      v.holder_down = m.health == engine::Health::Down;
      v.holder_reports_down = m.reports_down;
      if (v.holder_down && m.down_since) {
        v.holder_down_for = std::chrono::duration_cast<milliseconds>(Clock::now() - *m.down_since);
      }
    }
  }
  FloatingDecision d = decide_floating(v);
  const bool was_attached = floating_attached_;
  floating_attached_ = d.step == FloatingStep::Attached;
  switch (d.step) {
    case FloatingStep::Attached:
      floating_attempts_ = 0;
      if (!was_attached) {
        log::notice("floating ENI " + v.eni_id + " is attached to this host (device index " +
                    std::to_string(ni.device_index) + ")");
      }
      floating_eni_state_ = "attached";
      floating_error_ = false;
      return floating_next(cfg_->group.refresh_interval);
    case FloatingStep::WrongZone:
      // Configuration, not a transient state: looked at again only at the refresh
      // interval (the ENI cannot change zone; the check is for a replaced ENI id). Counted
      // once per look, so the failures metric shows it as it does an EC2 refusal.
      ++floating_failures_;
      floating_state("error: " + d.why, true);
      return floating_next(cfg_->group.refresh_interval);
    case FloatingStep::Wait:
      floating_state(d.why, false);
      return floating_next(milliseconds(1000));
    case FloatingStep::DescribeHolder:
      return floating_describe_holder(ni);
    case FloatingStep::ForceDetach:
      // A member whose own data plane or link is failing may be the one cut off: its view
      // of the holder is no evidence, and the ENI would land on a host that cannot serve.
      if (egress_health_ == engine::Health::Down || (own_link_ && !own_link_->up())) {
        floating_state(d.why + ", but this host's own egress or link is down: not taking it",
                       false);
        return floating_next(milliseconds(1000));
      }
      return floating_detach(ni, d.why);
    case FloatingStep::Attach:
      return floating_attach(ni);
  }
}

void Node::floating_describe_holder(const ec2::NetworkInterface& ni) {
  ec2::DescribeInstancesRequest req;
  req.instance_ids = {ni.attached_instance_id};
  ec2_->describe_instances(req, {ec2::Priority::Read, milliseconds(0)},
                           [this, ni](ec2::Ec2Result<ec2::DescribeInstancesOk> r) {
                             count_call("DescribeInstances", err_of(r));
                             if (!r) {
                               return floating_failed(
                                   "reading the floating ENI's holder " + ni.attached_instance_id,
                                   r.error());
                             }
                             // Not listed: gone (terminated long ago), as good as terminated.
                             std::string state = "terminated";
                             for (const auto& i : r->instances) {
                               if (i.instance_id == ni.attached_instance_id) state = i.state;
                             }
                             floating_decide(ni, state);
                           });
}

void Node::floating_detach(const ec2::NetworkInterface& ni, const std::string& why) {
  // Force: a hung or stopped holder never completes a normal detach (EC2 API reference,
  // DetachNetworkInterface: "Force ... to detach from an instance that is unresponsive").
  ec2::DetachNetworkInterfaceRequest d;
  d.attachment_id = ni.attachment_id;
  d.force = true;
  d.network_interface_id = ni.network_interface_id;
  floating_state(why + ": force-detaching it", false);
  ec2_->detach_network_interface(
      d, {ec2::Priority::Write, milliseconds(0)}, [this, ni, why](ec2::Ec2Result<ec2::SimpleOk> w) {
        count_call("DetachNetworkInterface", err_of(w));
        if (!w) {
          return floating_failed("force-detaching floating ENI " + ni.network_interface_id +
                                     " from " + ni.attached_instance_id,
                                 w.error());
        }
        ++floating_force_detaches_;
        log::notice("floating ENI " + ni.network_interface_id + " force-detached from " +
                    ni.attached_instance_id + " (" + why + ")");
        // EC2 shows it "detaching" for a few seconds, then "available": look again soon.
        floating_next(milliseconds(500));
      });
}

void Node::floating_attach(const ec2::NetworkInterface& ni) {
  // The device index must be free on this instance: read its attachments first.
  ec2::DescribeInstancesRequest req;
  req.instance_ids = {id_.instance_id};
  ec2_->describe_instances(
      req, {ec2::Priority::Read, milliseconds(0)},
      [this, eni = ni.network_interface_id](ec2::Ec2Result<ec2::DescribeInstancesOk> r) {
        count_call("DescribeInstances", err_of(r));
        if (!r) return floating_failed("reading this instance's network interfaces", r.error());
        std::vector<int> used{0};
        for (const auto& i : r->instances) {
          if (i.instance_id != id_.instance_id) continue;
          for (const auto& n : i.network_interfaces) used.push_back(n.device_index);
        }
        ec2::AttachNetworkInterfaceRequest a;
        a.network_interface_id = eni;
        a.instance_id = id_.instance_id;
        a.device_index = free_device_index(used);
        floating_state("floating ENI " + eni + " is available: attaching it at device index " +
                           std::to_string(a.device_index),
                       false);
        ec2_->attach_network_interface(
            a, {ec2::Priority::Write, milliseconds(0)},
            [this, eni, index = a.device_index](ec2::Ec2Result<ec2::AttachNetworkInterfaceOk> w) {
              count_call("AttachNetworkInterface", err_of(w));
              if (!w) {
                return floating_failed(
                    "attaching floating ENI " + eni + " at device index " + std::to_string(index),
                    w.error());
              }
              log::notice("floating ENI " + eni + " attached (" + w->attachment_id +
                          ", device index " + std::to_string(index) + ")");
              // Read back: the next look finds it attached here.
              floating_next(milliseconds(200));
            });
      });
}

}  // namespace hanat::daemon
