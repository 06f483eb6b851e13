// SPDX-License-Identifier: GPL-2.0-or-later
#pragma once
// DOC: ec2::Client — typed EC2 calls on the libuv loop.
//
// A call is queued with a priority and a deadline, paced by client-side token buckets that
// mirror EC2's throttling buckets (so hanat does not get throttled in the first place), sent
// signed over HttpClient, parsed into its typed result, and retried with capped, jittered
// exponential backoff when the failure is transient (throttling, 5xx, timeouts, connection
// failures). Client errors (InvalidRouteTableID.NotFound, AuthFailure, ...) are final.
//
// Writes carry a resource key (route table + destination, EIP allocation, ENI, instance). At
// most one write per key is on the wire at a time, in submission order, and a newer write to
// the same key supersedes older ones still waiting: they complete with ErrorKind::Superseded
// and are never sent or retried, so a retry after an ambiguous failure (timeout, reset) cannot
// re-apply an outdated target over a newer one. Every write hanat makes is idempotent
// (ReplaceRoute to the same target, AssociateAddress with AllowReassociation), so repeating
// the current one is safe.
//
// Describe calls follow NextToken until the last page and return everything at once; the
// call's deadline applies to each page (a describe over hundreds of tables with MaxResults
// is many small replies, none of which may take longer than one page's budget).
//
// Clock skew: SigV4 signatures carry the signing time and EC2 refuses one more than 5
// minutes off (RequestExpired; RequestTimeTooSkewed from other AWS front ends). At boot,
// before chrony has synchronised, the local clock can be that far off. As the AWS SDKs do,
// the client keeps the offset between EC2's clock (the Date header of every reply) and the
// local one, signs with local time + offset, and re-signs and resends a call once at once
// when EC2 still says the signature time was wrong.

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <type_traits>

#include "core/base/result.h"
#include "core/uv/uv.h"
#include "ec2/api.h"
#include "ec2/credentials.h"
#include "ec2/http_client.h"
#include "ec2/pacing.h"

namespace hanat::ec2 {

// Lower value goes first. Route writes precede every other write and every read.
enum class Priority { RouteWrite = 0, Write = 1, Read = 2, Background = 3 };

struct ClientOptions {
  std::string region;    // e.g. "eu-west-1"; also the SigV4 scope
  std::string endpoint;  // "" -> default_endpoint(region, service); tests point it at moto
  // The SigV4 service name and the endpoint's first label: "ec2", or "autoscaling" for the
  // Auto Scaling calls of ec2/autoscaling.h (same Query protocol, their own Version).
  std::string service = "ec2";
  Millis connect_timeout{2000};
  Millis attempt_timeout{5000};    // one HTTP attempt
  Millis default_deadline{30000};  // whole call, retries included, when CallOptions has none
  BackoffPolicy backoff;
  BucketLimits buckets;
  bool pace = true;           // client-side token buckets on/off
  size_t max_in_flight = 32;  // concurrent HTTP requests
  uint64_t jitter_seed = 0;   // 0: seeded from std::random_device
  std::string ca_file;        // empty: system CA bundle
  std::string user_agent = "hanat/" HANAT_VERSION;
};

// EC2's regional endpoint in the region's partition: https://ec2.<region>.amazonaws.com/,
// amazonaws.com.cn for the China regions (cn-north-1, cn-northwest-1), c2s.ic.gov and
// sc2s.sgov.gov for the ISO regions (AWS SDK endpoints.json partitions "aws-cn", "aws-iso",
// "aws-iso-b"); GovCloud (us-gov-*) uses amazonaws.com like the commercial partition.
// Another service's (`service` "autoscaling") is the same with its own first label.
[[nodiscard]] std::string default_endpoint(std::string_view region,
                                           std::string_view service = "ec2");

// The time in an HTTP Date header ("Wed, 02 Dec 2026 19:51:35 GMT", RFC 7231 IMF-fixdate),
// or nullopt when it is not one.
[[nodiscard]] std::optional<WallTime> parse_http_date(std::string_view s);

// Why `o` cannot work ("region is empty", "endpoint must start with http:// or https://", ...),
// or nullopt when it is usable. The daemon checks this when it loads its config.
[[nodiscard]] std::optional<std::string> validate(const ClientOptions& o);

struct CallOptions {
  Priority priority = Priority::Read;
  Millis deadline{0};  // 0: ClientOptions::default_deadline; per page for paginated calls
  // The caller already took this call's first token from bucket() (the engine paces route
  // writes itself from the same buckets); retries still take theirs.
  bool prepaid = false;
};

template <class T>
using Ec2Result = core::Result<T, Ec2Error>;

class Client {
 public:
  using CallId = uint64_t;

  Client(uv::Loop& loop, ClientOptions opts, std::shared_ptr<const CredentialSource> creds);
  // Drops every pending call without calling its completion.
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Queues a call. `done` runs later on the loop exactly once (never inside call()), unless
  // the call is cancelled or the client destroyed. Returns an id for cancel().
  template <class Req>
  CallId call(Req req, CallOptions co, std::function<void(Ec2Result<typename Req::Ok>)> done);

  // Named forms of call(), for readability at call sites.
  template <class F>
  CallId describe_instances(DescribeInstancesRequest r, CallOptions o, F&& f) {
    return call(std::move(r), o, wrap<DescribeInstancesRequest>(std::forward<F>(f)));
  }
  template <class F>
  CallId describe_instance_status(DescribeInstanceStatusRequest r, CallOptions o, F&& f) {
    return call(std::move(r), o, wrap<DescribeInstanceStatusRequest>(std::forward<F>(f)));
  }
  template <class F>
  CallId describe_route_tables(DescribeRouteTablesRequest r, CallOptions o, F&& f) {
    return call(std::move(r), o, wrap<DescribeRouteTablesRequest>(std::forward<F>(f)));
  }
  template <class F>
  CallId describe_subnets(DescribeSubnetsRequest r, CallOptions o, F&& f) {
    return call(std::move(r), o, wrap<DescribeSubnetsRequest>(std::forward<F>(f)));
  }
  template <class F>
  CallId describe_network_interfaces(DescribeNetworkInterfacesRequest r, CallOptions o, F&& f) {
    return call(std::move(r), o, wrap<DescribeNetworkInterfacesRequest>(std::forward<F>(f)));
  }
  template <class F>
  CallId describe_addresses(DescribeAddressesRequest r, CallOptions o, F&& f) {
    return call(std::move(r), o, wrap<DescribeAddressesRequest>(std::forward<F>(f)));
  }
  template <class F>
  CallId create_route(CreateRouteRequest r, CallOptions o, F&& f) {
    return call(std::move(r), o, wrap<CreateRouteRequest>(std::forward<F>(f)));
  }
  template <class F>
  CallId replace_route(ReplaceRouteRequest r, CallOptions o, F&& f) {
    return call(std::move(r), o, wrap<ReplaceRouteRequest>(std::forward<F>(f)));
  }
  template <class F>
  CallId delete_route(DeleteRouteRequest r, CallOptions o, F&& f) {
    return call(std::move(r), o, wrap<DeleteRouteRequest>(std::forward<F>(f)));
  }
  template <class F>
  CallId associate_address(AssociateAddressRequest r, CallOptions o, F&& f) {
    return call(std::move(r), o, wrap<AssociateAddressRequest>(std::forward<F>(f)));
  }
  template <class F>
  CallId disassociate_address(DisassociateAddressRequest r, CallOptions o, F&& f) {
    return call(std::move(r), o, wrap<DisassociateAddressRequest>(std::forward<F>(f)));
  }
  template <class F>
  CallId assign_private_ip_addresses(AssignPrivateIpAddressesRequest r, CallOptions o, F&& f) {
    return call(std::move(r), o, wrap<AssignPrivateIpAddressesRequest>(std::forward<F>(f)));
  }
  template <class F>
  CallId unassign_private_ip_addresses(UnassignPrivateIpAddressesRequest r, CallOptions o, F&& f) {
    return call(std::move(r), o, wrap<UnassignPrivateIpAddressesRequest>(std::forward<F>(f)));
  }
  template <class F>
  CallId attach_network_interface(AttachNetworkInterfaceRequest r, CallOptions o, F&& f) {
    return call(std::move(r), o, wrap<AttachNetworkInterfaceRequest>(std::forward<F>(f)));
  }
  template <class F>
  CallId detach_network_interface(DetachNetworkInterfaceRequest r, CallOptions o, F&& f) {
    return call(std::move(r), o, wrap<DetachNetworkInterfaceRequest>(std::forward<F>(f)));
  }
  template <class F>
  CallId modify_instance_attribute(ModifyInstanceAttributeRequest r, CallOptions o, F&& f) {
    return call(std::move(r), o, wrap<ModifyInstanceAttributeRequest>(std::forward<F>(f)));
  }
  template <class F>
  CallId modify_network_interface_attribute(ModifyNetworkInterfaceAttributeRequest r, CallOptions o,
                                            F&& f) {
    return call(std::move(r), o, wrap<ModifyNetworkInterfaceAttributeRequest>(std::forward<F>(f)));
  }
  template <class F>
  CallId reboot_instances(RebootInstancesRequest r, CallOptions o, F&& f) {
    return call(std::move(r), o, wrap<RebootInstancesRequest>(std::forward<F>(f)));
  }
  template <class F>
  CallId stop_instances(StopInstancesRequest r, CallOptions o, F&& f) {
    return call(std::move(r), o, wrap<StopInstancesRequest>(std::forward<F>(f)));
  }
  template <class F>
  CallId start_instances(StartInstancesRequest r, CallOptions o, F&& f) {
    return call(std::move(r), o, wrap<StartInstancesRequest>(std::forward<F>(f)));
  }
  template <class F>
  CallId terminate_instances(TerminateInstancesRequest r, CallOptions o, F&& f) {
    return call(std::move(r), o, wrap<TerminateInstancesRequest>(std::forward<F>(f)));
  }

  // Aborts a call (queued, backing off or on the wire); its completion is not called.
  void cancel(CallId id);
  // Completes every pending call with ErrorKind::Cancelled (for an orderly daemon stop).
  void cancel_all();
  [[nodiscard]] size_t pending() const { return ops_.size(); }
  [[nodiscard]] size_t in_flight() const { return http_.in_flight(); }
  [[nodiscard]] const std::string& endpoint_url() const { return url_; }
  // EC2's clock minus the local one, from the Date header of the latest reply.
  [[nodiscard]] std::chrono::milliseconds clock_offset() const {
    return std::chrono::duration_cast<std::chrono::milliseconds>(clock_offset_);
  }
  // Called once per HTTP attempt that got an answer or failed on the wire (not for calls
  // cancelled or superseded before sending), with the action and the time from handing the
  // signed request to curl until the reply: EC2's latency as this host sees it, without
  // the client's pacing and backoff waits.
  using AttemptObserver =
      std::function<void(const std::string& action, std::chrono::steady_clock::duration took)>;
  void set_attempt_observer(AttemptObserver f) { on_attempt_ = std::move(f); }
  // The token bucket `action` draws on (created on first use), for a caller that paces its
  // own submissions from the client's buckets instead of keeping a copy.
  [[nodiscard]] TokenBucket& bucket(std::string_view action, Bucket category);

  // Type-erased per-call state; public only so the template in this header can build one.
  class Handler {
   public:
    virtual ~Handler() = default;
    // Parses a 2xx body, accumulating pages; returns the error if it is not a valid reply.
    virtual std::optional<Ec2Error> on_body(std::string_view body) = 0;
    // The NextToken of the last page parsed ("" when done or not paginated).
    [[nodiscard]] virtual std::string next_token() const = 0;
    virtual void complete(std::optional<Ec2Error> err) = 0;
  };

 private:
  struct Op;
  template <class Req>
  static std::function<void(Ec2Result<typename Req::Ok>)> wrap(
      std::function<void(Ec2Result<typename Req::Ok>)> f) {
    return f;
  }
  CallId submit(std::string_view action, Params params, Bucket bucket, std::string write_key,
                CallOptions co, std::unique_ptr<Handler> handler);
  void pump();
  void arm_wake(Millis at);
  void dispatch(Op& op);
  void on_reply(CallId id, HttpResponse resp);
  void finish(CallId id, std::optional<Ec2Error> err);
  bool key_busy(const std::string& key, CallId except) const;

  uv::Loop& loop_;
  ClientOptions opts_;
  std::shared_ptr<const CredentialSource> creds_;
  HttpClient http_;
  uv::Timer wake_;
  std::string url_;
  std::string host_;
  std::string path_;
  std::map<CallId, std::unique_ptr<Op>> ops_;
  std::set<std::tuple<int, uint64_t, CallId>> queue_;        // (priority, seq, id) of waiting ops
  std::map<std::string, TokenBucket, std::less<>> buckets_;  // per action (+ "/unfiltered")
  WallTime::duration clock_offset_{0};
  std::mt19937_64 rng_;
  CallId next_id_ = 1;
  uint64_t seq_ = 0;
  bool pumping_ = false;
  AttemptObserver on_attempt_;
};

namespace detail {
template <class T>
concept Paginated = requires(T t) {
  t.next_token;
};

template <class Req>
class TypedHandler final : public Client::Handler {
 public:
  using Ok = typename Req::Ok;
  explicit TypedHandler(std::function<void(Ec2Result<Ok>)> done) : done_(std::move(done)) {}
  std::optional<Ec2Error> on_body(std::string_view body) override {
    auto r = Req::parse(body);
    if (!r) return std::move(r).error();
    if constexpr (Paginated<Ok>) {
      token_ = r->next_token;
      if (acc_) {
        acc_->append(std::move(r).value());
        return std::nullopt;
      }
    }
    acc_.emplace(std::move(r).value());
    return std::nullopt;
  }
  [[nodiscard]] std::string next_token() const override { return token_; }
  void complete(std::optional<Ec2Error> err) override {
    auto done = std::move(done_);
    if (!done) return;
    if (err) {
      done(core::Unexpected(std::move(*err)));
    } else {
      done(std::move(*acc_));
    }
  }

 private:
  std::function<void(Ec2Result<Ok>)> done_;
  std::optional<Ok> acc_;
  std::string token_;
};
}  // namespace detail

template <class Req>
Client::CallId Client::call(Req req, CallOptions co,
                            std::function<void(Ec2Result<typename Req::Ok>)> done) {
  return submit(Req::kAction, req.params(), req.bucket(), req.write_key(), co,
                std::make_unique<detail::TypedHandler<Req>>(std::move(done)));
}

}  // namespace hanat::ec2
