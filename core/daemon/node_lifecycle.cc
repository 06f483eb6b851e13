// SPDX-License-Identifier: GPL-2.0-or-later
// DOC: core/daemon/node_lifecycle.cc releases an Auto Scaling lifecycle hook once this
// member's routes are handed over. An instance that Auto Scaling terminates (or returns to
// its warm pool) waits in Terminating:Wait (Warmed:Pending:Wait) for every terminating
// lifecycle hook of its group until the hook's heartbeat timeout, one hour by default,
// unless someone calls CompleteLifecycleAction (Amazon EC2 Auto Scaling User Guide,
// "Complete a lifecycle action"). hanatd is that someone: after its handover it finds its
// group (DescribeAutoScalingInstances), the group's EC2_INSTANCE_TERMINATING hooks
// (DescribeLifecycleHooks) and completes each with CONTINUE. A hook with no action pending
// answers ValidationError: nothing was waiting, which is fine. The whole exchange is
// bounded, so a slow or unreachable Auto Scaling API delays the exit by at most that.

#include <memory>

#include "core/daemon/node.h"
#include "core/daemon/node_util.h"
#include "core/log/log.h"

namespace hanat::daemon {

using node_util::err_of;
using std::chrono::milliseconds;

namespace {
constexpr milliseconds kCallDeadline{5000};
constexpr milliseconds kOverallBound{15000};
constexpr std::string_view kTerminating = "autoscaling:EC2_INSTANCE_TERMINATING";
}  // namespace

void Node::complete_lifecycle_hooks(std::function<void()> then) {
  // `then` runs once: when every hook is answered, or at the bound.
  auto once = std::make_shared<std::function<void()>>(std::move(then));
  auto finish = [this, once] {
    if (!*once) return;
    (void)phase_timer_.stop();  // the bound below, when it was armed
    auto f = std::move(*once);
    *once = nullptr;
    f();
  };
  if (!creds_ || id_.instance_id.empty()) return finish();
  if (!asg_) {
    ec2::ClientOptions o;
    o.region = id_.region;
    o.endpoint = cfg_->ec2.autoscaling_endpoint;
    o.service = std::string(ec2::kAutoScalingService);
    o.connect_timeout = cfg_->ec2.connect_timeout;
    o.attempt_timeout = cfg_->ec2.request_timeout;
    if (auto why = ec2::validate(o)) {
      lifecycle_hook_state_ = "not completed: " + *why;
      log::warning("Auto Scaling client: " + *why + ", lifecycle hooks left to their timeout");
      return finish();
    }
    asg_ = std::make_unique<ec2::Client>(loop_, o, creds_);
  }
  (void)phase_timer_.start(kOverallBound, milliseconds(0), [this, once, finish] {
    if (!*once) return;  // answered in time
    lifecycle_hook_state_ = "gave up after " + config::format_duration(kOverallBound);
    log::warning("Auto Scaling lifecycle hooks: no answer within " +
                 config::format_duration(kOverallBound) + ", going on without");
    finish();
  });
  ec2::DescribeAutoScalingInstancesRequest req;
  req.instance_ids = {id_.instance_id};
  asg_->call(
      req, {ec2::Priority::Write, kCallDeadline},
      std::function<void(ec2::Ec2Result<ec2::DescribeAutoScalingInstancesOk>)>(
          [this, finish](ec2::Ec2Result<ec2::DescribeAutoScalingInstancesOk> r) {
            count_call("DescribeAutoScalingInstances", err_of(r));
            if (!r || r->instances.empty()) {
              lifecycle_hook_state_ =
                  r ? "not in an Auto Scaling group" : "not completed: " + r.error().describe();
              if (!r)
                log::warning("DescribeAutoScalingInstances: " + r.error().describe() +
                             ", lifecycle hooks left to their timeout");
              return finish();
            }
            const std::string group = r->instances.front().group_name;
            ec2::DescribeLifecycleHooksRequest hr;
            hr.group_name = group;
            asg_->call(
                hr, {ec2::Priority::Write, kCallDeadline},
                std::function<void(ec2::Ec2Result<ec2::DescribeLifecycleHooksOk>)>(
                    [this, finish, group](ec2::Ec2Result<ec2::DescribeLifecycleHooksOk> h) {
                      count_call("DescribeLifecycleHooks", err_of(h));
                      if (!h) {
                        lifecycle_hook_state_ = "not completed: " + h.error().describe();
                        log::warning("DescribeLifecycleHooks " + log::quote(group) + ": " +
                                     h.error().describe() +
                                     ", lifecycle hooks left to their timeout");
                        return finish();
                      }
                      auto pending = std::make_shared<int>(0);
                      for (const auto& hook : h->hooks)
                        if (hook.transition == kTerminating) ++*pending;
                      if (*pending == 0) {
                        lifecycle_hook_state_ = "no terminating hook in " + group;
                        return finish();
                      }
                      lifecycle_hook_state_.clear();
                      for (const auto& hook : h->hooks) {
                        if (hook.transition != kTerminating) continue;
                        ec2::CompleteLifecycleActionRequest c;
                        c.group_name = group;
                        c.hook_name = hook.name;
                        c.instance_id = id_.instance_id;
                        asg_->call(
                            c, {ec2::Priority::Write, kCallDeadline},
                            std::function<void(ec2::Ec2Result<ec2::SimpleOk>)>(
                                [this, finish, pending, name = hook.name,
                                 group](ec2::Ec2Result<ec2::SimpleOk> w) {
                                  count_call("CompleteLifecycleAction", err_of(w));
                                  std::string what;
                                  if (w) {
                                    what = "completed " + name + " (CONTINUE)";
                                    log::notice("Auto Scaling lifecycle hook " + log::quote(name) +
                                                " of " + log::quote(group) +
                                                " completed (CONTINUE): the instance may go");
                                  } else if (w.error().code == "ValidationError") {
                                    // "No active Lifecycle Action found with instance ID":
                                    // the hook was not holding this instance.
                                    what = name + ": no action pending";
                                    log::info("Auto Scaling lifecycle hook " + log::quote(name) +
                                              ": " + w.error().describe());
                                  } else {
                                    what = name + ": " + w.error().describe();
                                    log::warning("CompleteLifecycleAction " + log::quote(name) +
                                                 ": " + w.error().describe() +
                                                 ", left to its heartbeat timeout");
                                  }
                                  lifecycle_hook_state_ +=
                                      (lifecycle_hook_state_.empty() ? "" : "; ") + what;
                                  if (--*pending == 0) finish();
                                }));
                      }
                    }));
          }));
}

}  // namespace hanat::daemon
