// SPDX-License-Identifier: GPL-2.0-or-later
// ec2::Client against a real moto_server with IAM signature checking switched on: every call
// round-trips and its effect shows in the next Describe; a wrong secret gives AuthFailure; a
// bad id gives EC2's error code. One moto_server per test binary, on a free loopback port,
// seeded by seed_moto.py (boto3, loopback only), killed on teardown.

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <jansson.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <thread>

#include <curl/curl.h>

#include "ec2/client.h"
#include "tests/support/process.h"
#include "tests/support/uv_test_util.h"
#include "tests/unit/ec2/stub_server.h"

extern char** environ;

namespace hanat::ec2 {
namespace {

using namespace std::chrono_literals;
using hanat::testing::expect_clean_close;
using hanat::testing::run_until;

struct Seed {
  std::string key_id, secret, region, vpc, igw, floating_eni, eip_allocation, nat_gateway;
  std::vector<std::string> subnets, route_tables, nat_instances, extra_instances, primary_enis;
  std::vector<std::string> bench_route_tables;  // 200, in a VPC of their own
};

int free_port() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  int port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0) {
    port = ntohs(a.sin_port);
  }
  close(fd);
  return port;
}

bool port_open(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<uint16_t>(port));
  const bool ok = connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  close(fd);
  return ok;
}

class Moto : public ::testing::Environment {
 public:
  static inline Seed seed;
  static inline std::string endpoint;
  static inline std::string error;

  void SetUp() override {
    // moto's log goes to a directory of this run's own (never a fixed /tmp name another run
    // or user could hold).
    char tmpl[] = "/tmp/hanat-moto-XXXXXX";
    if (::mkdtemp(tmpl) == nullptr) {
      error = std::string("mkdtemp: ") + std::strerror(errno);
      return;
    }
    dir_ = tmpl;
    log_ = dir_ + "/moto_server.log";
    for (int attempt = 0; attempt < 3 && pid_ <= 0; ++attempt) start();
    if (pid_ <= 0) return;
    const std::string cmd =
        "python3 " HANAT_SOURCE_DIR "/tests/integration/ec2/seed_moto.py " + endpoint + " 2>&1";
    FILE* p = popen(cmd.c_str(), "r");
    std::string out;
    char buf[4096];
    size_t n = 0;
    while (p != nullptr && (n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
    const int rc = p != nullptr ? pclose(p) : -1;
    if (rc != 0) {
      error = "seed_moto.py failed: " + out;
      return;
    }
    parse_seed(out.substr(out.rfind("\n{") == std::string::npos ? 0 : out.rfind("\n{") + 1));
  }

  void TearDown() override {
    stop();
    if (dir_.empty()) return;
    // moto's log is kept only when something failed.
    if (::testing::UnitTest::GetInstance()->Passed()) {
      std::error_code ec;
      std::filesystem::remove_all(dir_, ec);
    } else {
      std::fprintf(stderr, "moto_server's log kept: %s\n", log_.c_str());
    }
  }

 private:
  void stop() {
    if (pid_ <= 0) return;
    kill(pid_, SIGTERM);
    for (int i = 0; i < 100; ++i) {
      if (waitpid(pid_, nullptr, WNOHANG) == pid_) {
        pid_ = -1;
        return;
      }
      std::this_thread::sleep_for(50ms);  // bounded wait for our child to exit, not a sync
    }
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }

  void start() {
    const int port = free_port();
    const std::string ps = std::to_string(port);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, log_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    const char* argv[] = {"moto_server", "-H", "127.0.0.1", "-p", ps.c_str(), nullptr};
    pid_t pid = 0;
    const int rc =
        posix_spawnp(&pid, "moto_server", &fa, nullptr, const_cast<char**>(argv), environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) {
      error = "cannot start moto_server (is it on PATH?)";
      return;
    }
    // Wait for it with a deadline (generous: at nice 19 beside the lab's tests, as CI runs
    // this binary, moto's imports can take many seconds; an exit ends the wait at once).
    const auto end = std::chrono::steady_clock::now() + 60s;
    while (std::chrono::steady_clock::now() < end) {
      if (waitpid(pid, nullptr, WNOHANG) == pid) {
        error = "moto_server exited at start (port " + ps + " taken?), see " + log_;
        return;
      }
      if (port_open(port)) {
        pid_ = pid;
        endpoint = "http://127.0.0.1:" + ps;
        error.clear();
        return;
      }
      std::this_thread::sleep_for(50ms);
    }
    kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
    error = "moto_server did not listen within 20 s";
  }

  static std::vector<std::string> strings(json_t* a) {
    std::vector<std::string> v;
    for (size_t i = 0; i < json_array_size(a); ++i)
      v.emplace_back(json_string_value(json_array_get(a, i)));
    return v;
  }

  void parse_seed(const std::string& text) {
    json_error_t err;
    json_t* j = json_loads(text.c_str(), 0, &err);
    if (j == nullptr) {
      error = std::string("seed output is not JSON: ") + err.text + ": " + text;
      return;
    }
    auto s = [&](const char* k) {
      const char* v = json_string_value(json_object_get(j, k));
      return std::string(v != nullptr ? v : "");
    };
    seed.key_id = s("access_key_id");
    seed.secret = s("secret_access_key");
    seed.region = s("region");
    seed.vpc = s("vpc");
    seed.igw = s("igw");
    seed.floating_eni = s("floating_eni");
    seed.eip_allocation = s("eip_allocation");
    seed.nat_gateway = s("nat_gateway");
    seed.subnets = strings(json_object_get(j, "subnets"));
    seed.route_tables = strings(json_object_get(j, "route_tables"));
    seed.nat_instances = strings(json_object_get(j, "nat_instances"));
    seed.extra_instances = strings(json_object_get(j, "extra_instances"));
    seed.primary_enis = strings(json_object_get(j, "primary_enis"));
    seed.bench_route_tables = strings(json_object_get(j, "bench_route_tables"));
    json_decref(j);
  }

  pid_t pid_ = -1;
  std::string dir_, log_;  // this run's temporary directory and moto's log in it
};

class MotoTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(Moto::error.empty()) << Moto::error;
    ASSERT_FALSE(Moto::seed.key_id.empty());
    client_ = make_client(Moto::seed.secret);
  }
  void TearDown() override {
    client_.reset();
    expect_clean_close(loop_);
  }

  std::unique_ptr<Client> make_client(const std::string& secret) {
    ClientOptions o;
    o.region = Moto::seed.region;
    o.endpoint = Moto::endpoint;
    o.attempt_timeout = 5000ms;
    o.default_deadline = 15000ms;
    return std::make_unique<Client>(loop_, o,
                                    std::make_shared<StaticCredentials>(
                                        Credentials{Moto::seed.key_id, secret, "", std::nullopt}));
  }

  // Runs one call to completion on the loop.
  std::unique_ptr<Client> make_client_at(const std::string& endpoint) {
    ClientOptions o;
    o.region = Moto::seed.region;
    o.endpoint = endpoint;
    o.attempt_timeout = 1000ms;
    o.default_deadline = 15000ms;
    o.backoff.base = 5ms;
    o.backoff.throttle_base = 10ms;
    o.backoff.cap = 50ms;
    return std::make_unique<Client>(loop_, o,
                                    std::make_shared<StaticCredentials>(Credentials{
                                        Moto::seed.key_id, Moto::seed.secret, "", std::nullopt}));
  }

  template <class Req>
  Ec2Result<typename Req::Ok> run(Req req, Priority prio = Priority::Read, Client* c = nullptr) {
    std::optional<Ec2Result<typename Req::Ok>> got;
    (c != nullptr ? c : client_.get())
        ->call(std::move(req), {prio, 0ms},
               [&](Ec2Result<typename Req::Ok> r) { got = std::move(r); });
    EXPECT_TRUE(run_until(
        loop_, [&] { return got.has_value(); }, 20s));
    if (!got) {
      Ec2Error e;
      e.kind = ErrorKind::Timeout;
      e.message = "test gave up waiting";
      return core::Unexpected(e);
    }
    return std::move(*got);
  }

  RouteTable route_table(const std::string& id) {
    DescribeRouteTablesRequest d;
    d.route_table_ids = {id};
    auto r = run(d);
    EXPECT_TRUE(r.has_value()) << r.error().describe();
    if (!r || r->route_tables.size() != 1) return {};
    return r->route_tables[0];
  }

  uv::Loop loop_;
  std::unique_ptr<Client> client_;
};

TEST_F(MotoTest, DescribesSeededObjectsWithFilters) {
  const Seed& s = Moto::seed;
  DescribeRouteTablesRequest rt;
  rt.filters = {{"vpc-id", {s.vpc}}, {"tag:hanat:group", {"it"}}};
  auto tables = run(rt);
  ASSERT_TRUE(tables.has_value()) << tables.error().describe();
  std::vector<std::string> ids;
  for (const auto& t : tables->route_tables) ids.push_back(t.route_table_id);
  std::sort(ids.begin(), ids.end());
  auto want = s.route_tables;
  std::sort(want.begin(), want.end());
  EXPECT_EQ(ids, want);

  DescribeInstancesRequest di;
  di.filters = {{"tag:hanat:group", {"it"}}};
  auto inst = run(di);
  ASSERT_TRUE(inst.has_value()) << inst.error().describe();
  ASSERT_EQ(inst->instances.size(), 2u);
  EXPECT_EQ(inst->instances[0].subnet_id, s.subnets[0]);
  EXPECT_EQ(inst->instances[0].availability_zone, "us-east-1a");
  EXPECT_EQ(inst->instances[0].state, "running");
  EXPECT_FALSE(inst->instances[0].network_interfaces.empty());

  DescribeInstanceStatusRequest ds;
  ds.instance_ids = s.nat_instances;
  auto st = run(ds);
  ASSERT_TRUE(st.has_value()) << st.error().describe();
  EXPECT_EQ(st->statuses.size(), 2u);

  DescribeSubnetsRequest dsub;
  dsub.filters = {{"vpc-id", {s.vpc}}};
  auto subs = run(dsub);
  ASSERT_TRUE(subs.has_value()) << subs.error().describe();
  EXPECT_EQ(subs->subnets.size(), 2u);

  DescribeNetworkInterfacesRequest dn;
  dn.network_interface_ids = {s.floating_eni};
  auto enis = run(dn);
  ASSERT_TRUE(enis.has_value()) << enis.error().describe();
  ASSERT_EQ(enis->network_interfaces.size(), 1u);
  EXPECT_EQ(enis->network_interfaces[0].subnet_id, s.subnets[0]);

  DescribeAddressesRequest da;
  da.allocation_ids = {s.eip_allocation};
  auto addrs = run(da);
  ASSERT_TRUE(addrs.has_value()) << addrs.error().describe();
  ASSERT_EQ(addrs->addresses.size(), 1u);
}

TEST_F(MotoTest, RouteCreateReplaceDelete) {
  const Seed& s = Moto::seed;
  const std::string rtb = s.route_tables[0];
  CreateRouteRequest cr;
  cr.route_table_id = rtb;
  cr.target = RouteTarget::eni(s.primary_enis[0]);
  auto c = run(cr, Priority::RouteWrite);
  ASSERT_TRUE(c.has_value()) << c.error().describe();
  ASSERT_NE(route_table(rtb).route("0.0.0.0/0"), nullptr);
  EXPECT_EQ(route_table(rtb).route("0.0.0.0/0")->network_interface_id, s.primary_enis[0]);

  ReplaceRouteRequest rr;
  rr.route_table_id = rtb;
  rr.target = RouteTarget::instance(s.nat_instances[1]);
  ASSERT_TRUE(run(rr, Priority::RouteWrite).has_value());
  EXPECT_EQ(route_table(rtb).route("0.0.0.0/0")->instance_id, s.nat_instances[1]);
  // Repeating the same write is harmless (idempotent).
  ASSERT_TRUE(run(rr, Priority::RouteWrite).has_value());
  EXPECT_EQ(route_table(rtb).route("0.0.0.0/0")->instance_id, s.nat_instances[1]);

  rr.target = RouteTarget::nat_gateway(s.nat_gateway);
  ASSERT_TRUE(run(rr, Priority::RouteWrite).has_value());
  EXPECT_EQ(route_table(rtb).route("0.0.0.0/0")->nat_gateway_id, s.nat_gateway);

  rr.target = RouteTarget::eni(s.primary_enis[1]);
  ASSERT_TRUE(run(rr, Priority::RouteWrite).has_value());
  EXPECT_EQ(route_table(rtb).route("0.0.0.0/0")->network_interface_id, s.primary_enis[1]);

  DeleteRouteRequest dr;
  dr.route_table_id = rtb;
  ASSERT_TRUE(run(dr, Priority::RouteWrite).has_value());
  EXPECT_EQ(route_table(rtb).route("0.0.0.0/0"), nullptr);
}

TEST_F(MotoTest, ElasticIpAssociateDisassociate) {
  const Seed& s = Moto::seed;
  AssociateAddressRequest a;
  a.allocation_id = s.eip_allocation;
  a.network_interface_id = s.primary_enis[0];
  auto assoc = run(a, Priority::Write);
  ASSERT_TRUE(assoc.has_value()) << assoc.error().describe();
  EXPECT_FALSE(assoc->association_id.empty());
  // Move it to the other NAT (AllowReassociation).
  a.network_interface_id = s.primary_enis[1];
  assoc = run(a, Priority::Write);
  ASSERT_TRUE(assoc.has_value()) << assoc.error().describe();
  DescribeAddressesRequest da;
  da.allocation_ids = {s.eip_allocation};
  auto addr = run(da);
  ASSERT_TRUE(addr.has_value());
  ASSERT_EQ(addr->addresses.size(), 1u);
  EXPECT_EQ(addr->addresses[0].network_interface_id, s.primary_enis[1]);
  EXPECT_EQ(addr->addresses[0].association_id, assoc->association_id);

  DisassociateAddressRequest d;
  d.association_id = assoc->association_id;
  d.allocation_id = s.eip_allocation;
  ASSERT_TRUE(run(d, Priority::Write).has_value());
  addr = run(da);
  ASSERT_TRUE(addr.has_value());
  EXPECT_EQ(addr->addresses[0].association_id, "");
  EXPECT_EQ(addr->addresses[0].network_interface_id, "");
}

TEST_F(MotoTest, FloatingEniAttachDetach) {
  const Seed& s = Moto::seed;
  AttachNetworkInterfaceRequest a;
  a.network_interface_id = s.floating_eni;
  a.instance_id = s.nat_instances[0];
  a.device_index = 1;
  auto att = run(a, Priority::Write);
  ASSERT_TRUE(att.has_value()) << att.error().describe();
  ASSERT_FALSE(att->attachment_id.empty());
  DescribeNetworkInterfacesRequest dn;
  dn.network_interface_ids = {s.floating_eni};
  auto eni = run(dn);
  ASSERT_TRUE(eni.has_value());
  EXPECT_EQ(eni->network_interfaces[0].attached_instance_id, s.nat_instances[0]);
  EXPECT_EQ(eni->network_interfaces[0].status, "in-use");

  DetachNetworkInterfaceRequest d;
  d.attachment_id = att->attachment_id;
  d.network_interface_id = s.floating_eni;
  d.force = true;
  ASSERT_TRUE(run(d, Priority::Write).has_value());
  eni = run(dn);
  ASSERT_TRUE(eni.has_value());
  EXPECT_EQ(eni->network_interfaces[0].status, "available");
}

TEST_F(MotoTest, SourceDestCheckOff) {
  const Seed& s = Moto::seed;
  ModifyInstanceAttributeRequest mi;
  mi.instance_id = s.nat_instances[0];
  mi.source_dest_check = false;
  ASSERT_TRUE(run(mi, Priority::Write).has_value());
  DescribeInstancesRequest di;
  di.instance_ids = {s.nat_instances[0]};
  auto inst = run(di);
  ASSERT_TRUE(inst.has_value());
  EXPECT_EQ(inst->instances[0].source_dest_check, false);

  ModifyNetworkInterfaceAttributeRequest mn;
  mn.network_interface_id = s.primary_enis[1];
  mn.source_dest_check = false;
  ASSERT_TRUE(run(mn, Priority::Write).has_value());
  DescribeNetworkInterfacesRequest dn;
  dn.network_interface_ids = {s.primary_enis[1]};
  auto eni = run(dn);
  ASSERT_TRUE(eni.has_value());
  EXPECT_EQ(eni->network_interfaces[0].source_dest_check, false);
}

TEST_F(MotoTest, InstanceStopStartRebootTerminate) {
  const std::string id = Moto::seed.extra_instances[0];
  auto state = [&] {
    DescribeInstancesRequest di;
    di.instance_ids = {id};
    auto r = run(di);
    return r && !r->instances.empty() ? r->instances[0].state : std::string("?");
  };
  StopInstancesRequest stop;
  stop.instance_ids = {id};
  auto st = run(stop, Priority::Write);
  ASSERT_TRUE(st.has_value()) << st.error().describe();
  ASSERT_EQ(st->changes.size(), 1u);
  EXPECT_EQ(st->changes[0].previous_state, "running");
  EXPECT_EQ(state(), "stopped");
  StartInstancesRequest start;
  start.instance_ids = {id};
  ASSERT_TRUE(run(start, Priority::Write).has_value());
  EXPECT_EQ(state(), "running");
  RebootInstancesRequest reboot;
  reboot.instance_ids = {id};
  ASSERT_TRUE(run(reboot, Priority::Write).has_value());
  EXPECT_EQ(state(), "running");
  TerminateInstancesRequest term;
  term.instance_ids = {id};
  auto t = run(term, Priority::Write);
  ASSERT_TRUE(t.has_value());
  ASSERT_EQ(t->changes.size(), 1u);
  EXPECT_EQ(t->changes[0].previous_state, "running");
  EXPECT_EQ(t->changes[0].current_state, "shutting-down");  // as EC2 reports it
  EXPECT_EQ(state(), "terminated");
}

TEST_F(MotoTest, WrongSecretIsAuthFailure) {
  auto bad = make_client("not-the-secret");
  DescribeSubnetsRequest d;
  d.filters = {{"vpc-id", {Moto::seed.vpc}}};
  auto r = run(d, Priority::Read, bad.get());
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().kind, ErrorKind::Api);
  EXPECT_EQ(r.error().code, "AuthFailure");
  EXPECT_EQ(r.error().http_status, 401);
  EXPECT_EQ(r.error().attempts, 1) << "auth failures are not retried";
  bad.reset();
}

TEST_F(MotoTest, BadIdsSurfaceEc2ErrorCodes) {
  ReplaceRouteRequest rr;
  rr.route_table_id = "rtb-00000000000000000";
  rr.target = RouteTarget::eni(Moto::seed.primary_enis[0]);
  auto r = run(rr, Priority::RouteWrite);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, "InvalidRouteTableID.NotFound") << r.error().describe();
  EXPECT_EQ(r.error().http_status, 400);
  EXPECT_EQ(r.error().attempts, 1);
  DescribeInstancesRequest di;
  di.instance_ids = {"i-00000000000000000"};
  auto d = run(di);
  ASSERT_FALSE(d.has_value());
  EXPECT_EQ(d.error().code, "InvalidInstanceID.NotFound");
}

size_t collect(char* d, size_t sz, size_t n, void* out) {
  static_cast<std::string*>(out)->append(d, sz * n);
  return sz * n;
}

// Forwards one request to moto as it arrived (same Host and signature headers), blocking:
// a test-only shortcut, moto answers in milliseconds.
testing::StubReply forward(const testing::StubRequest& r) {
  CURL* e = curl_easy_init();
  std::string body;
  curl_slist* h = nullptr;
  for (const char* name : {"host", "content-type", "x-amz-date", "authorization",
                           "x-amz-security-token", "user-agent"}) {
    if (!r.header(name).empty())
      h = curl_slist_append(h, (std::string(name) + ": " + r.header(name)).c_str());
  }
  h = curl_slist_append(h, "Expect:");
  curl_easy_setopt(e, CURLOPT_URL, (Moto::endpoint + r.target).c_str());
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
  curl_easy_setopt(e, CURLOPT_POSTFIELDS, r.body.c_str());
  curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, static_cast<long>(r.body.size()));
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, &collect);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, &body);
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 10000L);
  const CURLcode rc = curl_easy_perform(e);
  long status = 0;
  curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
  curl_slist_free_all(h);
  curl_easy_cleanup(e);
  if (rc != CURLE_OK) return testing::StubReply::status_body(502, "proxy: moto unreachable");
  return testing::StubReply::status_body(static_cast<int>(status), body);
}

// Faults injected between the client and moto: the write still lands, exactly as asked.
TEST_F(MotoTest, RetriesThroughFaultInjectingProxyThenApplies) {
  const Seed& s = Moto::seed;
  const std::string rtb = s.route_tables[1];
  CreateRouteRequest cr;
  cr.route_table_id = rtb;
  cr.target = RouteTarget::eni(s.primary_enis[0]);
  ASSERT_TRUE(run(cr, Priority::RouteWrite).has_value());

  const std::string throttle =
      "<Response><Errors><Error><Code>RequestLimitExceeded</Code><Message>Request limit "
      "exceeded.</Message></Error></Errors><RequestID>x</RequestID></Response>";
  std::vector<testing::StubReply> faults = {
      testing::StubReply::status_body(503, throttle), testing::StubReply::reset(),
      testing::StubReply::stall(), testing::StubReply::status_body(500, "<html>oops</html>"),
      testing::StubReply::truncate(std::string(300, ' ') + "<ReplaceRouteResponse/>")};
  size_t n = 0;
  testing::StubServer proxy(loop_, [&](const testing::StubRequest& r) {
    return n < faults.size() ? faults[n++] : forward(r);
  });
  ASSERT_TRUE(proxy.ok());
  auto via_proxy = make_client_at(proxy.url(""));
  ReplaceRouteRequest rr;
  rr.route_table_id = rtb;
  rr.target = RouteTarget::eni(s.primary_enis[1]);
  auto r = run(rr, Priority::RouteWrite, via_proxy.get());
  ASSERT_TRUE(r.has_value()) << r.error().describe();
  EXPECT_EQ(proxy.requests().size(), faults.size() + 1);
  EXPECT_EQ(route_table(rtb).route("0.0.0.0/0")->network_interface_id, s.primary_enis[1]);
  via_proxy.reset();
  proxy.close();
}

// Pagination against moto, through the proxy so the pages can be counted.
TEST_F(MotoTest, DescribeInstancesFollowsNextToken) {
  testing::StubServer proxy(loop_, [](const testing::StubRequest& r) { return forward(r); });
  auto via_proxy = make_client_at(proxy.url(""));
  DescribeInstancesRequest di;
  di.filters = {{"vpc-id", {Moto::seed.vpc}}};
  di.max_results = 5;  // 7 reservations (8 instances) -> 2 pages
  auto all = run(di, Priority::Read, via_proxy.get());
  ASSERT_TRUE(all.has_value()) << all.error().describe();
  EXPECT_EQ(all->instances.size(), 8u);
  EXPECT_TRUE(all->next_token.empty());
  // Two pages. A page whose answer came late under load may be asked again: the client
  // retries a read after its attempt timeout, with the same body.
  std::vector<std::string> pages;
  for (const auto& req : proxy.requests())
    if (std::find(pages.begin(), pages.end(), req.body) == pages.end()) pages.push_back(req.body);
  ASSERT_EQ(pages.size(), 2u) << proxy.requests().size() << " requests";
  EXPECT_EQ(pages[0].find("NextToken"), std::string::npos);
  EXPECT_NE(pages[1].find("&NextToken="), std::string::npos);
  via_proxy.reset();
  proxy.close();
}

// The lab's EC2 fault proxy (tests/e2e/hanatlab/ec2proxy.py) in front of this binary's
// moto_server, emulating EC2 itself: its clock ("skew") or its per-API buckets ("buckets").
class Ec2Proxy {
 public:
  explicit Ec2Proxy(const std::string& control_json) {
    char tmpl[] = "/tmp/hanat-ec2proxy-XXXXXX";
    if (::mkdtemp(tmpl) == nullptr) return;
    dir_ = tmpl;
    control_ = dir_ + "/control.json";
    log_ = dir_ + "/proxy.log";
    const std::string ready = dir_ + "/ready.json";
    std::FILE* f = std::fopen(control_.c_str(), "w");
    if (f == nullptr) return;
    std::fputs(control_json.c_str(), f);
    std::fclose(f);
    const std::string upstream = Moto::endpoint.substr(std::strlen("http://"));
    const std::string script = HANAT_SOURCE_DIR "/tests/e2e/hanatlab/ec2proxy.py";
    const char* argv[] = {"python3",    script.c_str(),   "--listen",  "127.0.0.1",
                          "--upstream", upstream.c_str(), "--control", control_.c_str(),
                          "--log",      log_.c_str(),     "--ready",   ready.c_str(),
                          nullptr};
    // The proxy's stderr goes to a file, so that a proxy that dies at start says why.
    stderr_ = dir_ + "/stderr";
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 2, stderr_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    const int rc = posix_spawnp(&pid_, "python3", &fa, nullptr, const_cast<char**>(argv), environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) {
      pid_ = -1;
      why_ = std::string("posix_spawnp python3: ") + std::strerror(rc);
      return;
    }
    // CI runs this binary at nice 19 beside the lab's timed tests, which keep both cores
    // busy: a Python interpreter started then can wait many seconds for its first slices
    // (a 10 s bound was seen to pass in a clean-clone CI run). The bound only limits how
    // long a broken proxy takes to be reported; a dead one is reported at once.
    const auto end = std::chrono::steady_clock::now() + 60s;
    while (std::chrono::steady_clock::now() < end && port_ == 0) {
      if (std::FILE* r = std::fopen(ready.c_str(), "r")) {
        int port = 0;
        if (std::fscanf(r, "{\"port\": %d}", &port) == 1) port_ = port;
        std::fclose(r);
      }
      if (port_ != 0) break;
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        why_ = "ec2proxy.py exited at start (" +
               (WIFEXITED(status) ? "exit " + std::to_string(WEXITSTATUS(status))
                                  : "signal " + std::to_string(WTERMSIG(status))) +
               "): " + hanat::testing::read_file(stderr_);
        return;
      }
      std::this_thread::sleep_for(20ms);  // polling a file with a deadline
    }
    if (port_ == 0)
      why_ = "ec2proxy.py wrote no ready file within 60 s: " + hanat::testing::read_file(stderr_);
  }
  ~Ec2Proxy() {
    if (pid_ > 0) {
      kill(pid_, SIGTERM);
      waitpid(pid_, nullptr, 0);
    }
    if (!dir_.empty()) {
      std::error_code ec;
      std::filesystem::remove_all(dir_, ec);
    }
  }
  Ec2Proxy(const Ec2Proxy&) = delete;
  Ec2Proxy& operator=(const Ec2Proxy&) = delete;
  [[nodiscard]] bool ok() const { return port_ != 0; }
  // Why the proxy is not there (empty when ok()).
  [[nodiscard]] const std::string& why() const { return why_; }
  [[nodiscard]] int port() const { return port_; }
  [[nodiscard]] std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  // SIGSTOP/SIGCONT: the proxy process starved, as a niced process on a loaded machine is.
  void pause() const { kill(pid_, SIGSTOP); }
  void resume() const { kill(pid_, SIGCONT); }
  // The proxy's log lines (one JSON object per request) that contain every one of `needles`.
  // The proxy logs a request after replying to it: a count that should reach `want` is
  // polled for up to 10 s (the proxy may be starved at nice 19); returns the last count seen.
  [[nodiscard]] int settled_count(std::initializer_list<std::string> needles, int want) const {
    const auto end = std::chrono::steady_clock::now() + 10s;
    int n = count(needles);
    while (n < want && std::chrono::steady_clock::now() < end) {
      std::this_thread::sleep_for(20ms);  // polling a file with a deadline
      n = count(needles);
    }
    return n;
  }
  [[nodiscard]] int count(std::initializer_list<std::string> needles) const {
    return static_cast<int>(lines(needles).size());
  }
  // The log lines themselves, for a failure message.
  [[nodiscard]] std::vector<std::string> lines(std::initializer_list<std::string> needles) const {
    std::vector<std::string> out;
    std::FILE* f = std::fopen(log_.c_str(), "r");
    if (f == nullptr) return out;
    char line[4096];
    while (std::fgets(line, sizeof line, f) != nullptr) {
      const std::string l(line);
      bool all = true;
      for (const auto& s : needles) all = all && l.find(s) != std::string::npos;
      if (all) out.push_back(l);
    }
    std::fclose(f);
    return out;
  }

 private:
  std::string dir_, control_, log_, stderr_, why_;
  pid_t pid_ = -1;
  int port_ = 0;
};

// EC2's clock 10 minutes ahead of this host's (a NAT at boot before chrony synced): the
// first call is refused with RequestExpired and EC2's Date; the client corrects its clock
// from it, the re-signed retry succeeds, and later calls are signed right the first time.
TEST_F(MotoTest, ClockTenMinutesOffStillWorks) {
  Ec2Proxy proxy(R"({"skew": 600})");
  ASSERT_TRUE(proxy.ok()) << proxy.why();
  auto c = make_client_at(proxy.url());
  DescribeRouteTablesRequest d;
  d.route_table_ids = {Moto::seed.route_tables[0]};
  auto r = run(d, Priority::Read, c.get());
  ASSERT_TRUE(r.has_value()) << r.error().describe();
  EXPECT_EQ(r->route_tables.size(), 1u);
  EXPECT_GT(c->clock_offset(), 590s);
  EXPECT_LT(c->clock_offset(), 610s);
  ReplaceRouteRequest rr;
  rr.route_table_id = Moto::seed.bench_route_tables.at(0);
  rr.target = RouteTarget::eni(Moto::seed.primary_enis[1]);
  auto w = run(rr, Priority::RouteWrite, c.get());
  EXPECT_TRUE(w.has_value()) << w.error().describe();
  EXPECT_EQ(proxy.settled_count({"\"mode\": \"skew\"", "400"}, 1), 1)
      << "one refusal, then EC2's clock";
  EXPECT_EQ(proxy.settled_count({"\"status\": 200"}, 2), 2);
}

// A request sent by hand on its own connection (unsigned: moto's answer does not matter, the
// proxy decides on its bucket before it forwards); the connection is returned unread. The
// kernel accepts it and holds the bytes even while the proxy is stopped.
int send_raw(int port, std::string_view action) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<uint16_t>(port));
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    close(fd);
    return -1;
  }
  const std::string body = "Action=" + std::string(action) + "&Version=2016-11-15";
  const std::string req =
      "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: " + std::to_string(body.size()) +
      "\r\n\r\n" + body;
  if (::send(fd, req.data(), req.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(req.size())) {
    close(fd);
    return -1;
  }
  return fd;
}

// A timed step of a scenario (requests spaced in time), not a synchronisation.
void let_time_pass(std::chrono::milliseconds d) {
  const auto until = std::chrono::steady_clock::now() + d;
  while (std::chrono::steady_clock::now() < until) std::this_thread::sleep_for(20ms);
}

// The reply on a connection from send_raw (read until the proxy closes, at most 10 s).
std::string read_reply(int fd) {
  timeval tv{10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  std::string out;
  char buf[4096];
  ssize_t n = 0;
  while ((n = ::recv(fd, buf, sizeof buf, 0)) > 0) out.append(buf, static_cast<size_t>(n));
  close(fd);
  return out;
}

// The proxy emulates EC2's bucket at the time a request reached the host, not when one of
// its threads got to it: starved for seconds (CI runs this binary at nice 19 beside the
// lab), it would otherwise charge seconds of paced requests as one burst and throttle a
// client that never outran the bucket. Two requests 2.2 s apart against a bucket of one
// token refilled every 2 s both pass although the proxy only sees them together; two sent
// together are one too many.
TEST_F(MotoTest, FaultProxyChargesEc2sBucketWhenTheRequestArrived) {
  Ec2Proxy proxy(R"({"buckets": {"DescribeRouteTables": [1, 0.5]}})");
  ASSERT_TRUE(proxy.ok()) << proxy.why();
  const std::string throttled = "RequestLimitExceeded";
  // Two requests `gap` apart, which the stopped proxy reads together once it runs again.
  auto while_stopped = [&](std::chrono::milliseconds gap) {
    proxy.pause();
    const int a = send_raw(proxy.port(), "DescribeRouteTables");
    let_time_pass(gap);
    const int b = send_raw(proxy.port(), "DescribeRouteTables");
    proxy.resume();
    EXPECT_GE(a, 0);
    EXPECT_GE(b, 0);
    return std::pair{a < 0 ? std::string() : read_reply(a), b < 0 ? std::string() : read_reply(b)};
  };
  const auto [r1, r2] = while_stopped(2200ms);
  EXPECT_TRUE(r1.starts_with("HTTP/1.")) << r1;
  EXPECT_EQ(r1.find(throttled), std::string::npos) << r1;
  EXPECT_TRUE(r2.starts_with("HTTP/1.")) << r2;
  EXPECT_EQ(r2.find(throttled), std::string::npos) << "spaced by the refill, charged as a burst";
  let_time_pass(2200ms);  // the bucket full again
  const auto [r3, r4] = while_stopped(0ms);
  const int refused = static_cast<int>(r3.find(throttled) != std::string::npos) +
                      static_cast<int>(r4.find(throttled) != std::string::npos);
  EXPECT_EQ(refused, 1) << "one of two requests sent together is refused:\n" << r3 << "\n" << r4;
  EXPECT_EQ(proxy.settled_count({"\"mode\": \"bucket\""}, 1), 1);
}

// 200 route tables fail over at once through EC2's ReplaceRoute bucket (50 burst, 5/s refill,
// emulated by the proxy): the client's own buckets pace the writes so that EC2 never throttles
// (no RequestLimitExceeded) and the whole failover takes about what the bucket allows. The
// client spends nine tenths of the burst (45 writes) at once, then 5/s: 31 s for 200. The test
// bounds it at 15 % over that, which a pacer running slower than the bucket's refill (4/s:
// 38.75 s) or one write at a time fails, while a loaded machine's slower moto (33.0 s seen
// with the suite's lab lane alongside) passes. The DESIGN target (<= 33 s) is a performance
// claim: bench/ec2/failover200.sh runs this test on a quiet machine and checks it.
TEST_F(MotoTest, FailoverOf200TablesWithinEc2sBucketWithoutThrottling) {
  const auto& tables = Moto::seed.bench_route_tables;
  ASSERT_EQ(tables.size(), 200u);
  Ec2Proxy proxy(R"({"buckets": {"ReplaceRoute": [50, 5]}})");
  ASSERT_TRUE(proxy.ok()) << proxy.why();
  ClientOptions o;
  o.region = Moto::seed.region;
  o.endpoint = proxy.url();
  o.attempt_timeout = 5000ms;
  Client c(loop_, o,
           std::make_shared<StaticCredentials>(
               Credentials{Moto::seed.key_id, Moto::seed.secret, "", std::nullopt}));
  int ok = 0;
  int failed = 0;
  std::string first_error;
  const auto start = std::chrono::steady_clock::now();
  for (const auto& t : tables) {
    ReplaceRouteRequest rr;
    rr.route_table_id = t;
    rr.target = RouteTarget::eni(Moto::seed.primary_enis[0]);
    c.replace_route(rr, {Priority::RouteWrite, 60s}, [&](Ec2Result<SimpleOk> r) {
      if (r) {
        ++ok;
      } else if (failed++ == 0) {
        first_error = r.error().describe();
      }
    });
  }
  ASSERT_TRUE(run_until(
      loop_, [&] { return ok + failed == 200; }, 60s));
  const double took =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf(
      "200-table failover through EC2's ReplaceRoute bucket (50 burst, 5/s): %.1f s, "
      "%d RequestLimitExceeded\n",
      took, proxy.count({"\"mode\": \"bucket\""}));
  EXPECT_EQ(failed, 0) << first_error;
  const double ideal = (200 - 45) / 5.0;
  EXPECT_LE(took, ideal * 1.15) << "the pacer is slower than EC2's bucket allows";
  std::string refusals;
  for (const auto& l : proxy.lines({"\"mode\": \"bucket\""})) refusals += l;
  EXPECT_TRUE(refusals.empty()) << "EC2 throttled the failover (lag_ms: how long the proxy "
                                   "took to get to the request):\n"
                                << refusals;
  EXPECT_EQ(proxy.settled_count({"ReplaceRoute", "\"status\": 200"}, 200), 200);
  // Every table points at the new NAT (read straight from moto).
  DescribeRouteTablesRequest d;
  d.route_table_ids = {tables.front(), tables.back()};
  auto r = run(d);
  ASSERT_TRUE(r.has_value()) << r.error().describe();
  for (const auto& t : r->route_tables) {
    bool moved = false;
    for (const auto& rt : t.routes) {
      moved = moved || (rt.destination_cidr == "0.0.0.0/0" &&
                        rt.network_interface_id == Moto::seed.primary_enis[0]);
    }
    EXPECT_TRUE(moved) << t.route_table_id;
  }
}

}  // namespace
}  // namespace hanat::ec2

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  ::testing::AddGlobalTestEnvironment(new hanat::ec2::Moto);
  return RUN_ALL_TESTS();
}
