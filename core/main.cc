// SPDX-License-Identifier: GPL-2.0-or-later
// hanatd: the hanat daemon. See `hanatd --help`.

#include <getopt.h>

#include <csignal>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "core/config/config.h"
#include "core/daemon/daemon.h"
#include "core/daemon/plan.h"
#include "core/log/log.h"
#include "core/uv/uv.h"

namespace {

constexpr const char* kDefaultConfig = "/etc/hanat/hanat.toml";

void usage(std::FILE* out) {
  std::fprintf(out,
               "Usage: hanatd [--config FILE]          run the daemon\n"
               "       hanatd plan [--config FILE]     print what the daemon would do now,\n"
               "                                       writing nothing\n"
               "       hanatd --check-config [FILE]    validate FILE and exit\n"
               "       hanatd --version | --help\n"
               "\n"
               "Options:\n"
               "  -c, --config FILE   configuration file (default %s)\n"
               "      --no-handover   on SIGTERM, exit without moving this host's routes\n"
               "      --check-config  exit 0 if the file is valid, 2 with its errors if not\n"
               "  -V, --version       print the version and exit\n"
               "  -h, --help          print this help and exit\n"
               "\n"
               "Options may come before or after plan.\n"
               "Signals: SIGHUP reloads the configuration (an invalid file keeps the\n"
               "running one), SIGTERM and SIGINT stop the daemon.\n"
               "The configuration is documented in hanat.toml(5) and conf/hanat.toml.\n",
               kDefaultConfig);
}

void print_errors(const hanat::config::Errors& errors) {
  for (const auto& e : errors) std::fprintf(stderr, "%s\n", e.to_string().c_str());
}

// `hanatd plan`: identity and discovery through the real EC2 client, then the allocation
// and the writes a daemon would make now. Exit 0, or 1 with the EC2 error.
int run_plan(const std::string& path, hanat::config::Config cfg) {
  hanat::log::configure(hanat::config::LogLevel::Warning, {});
  const std::string group = cfg.group.name;  // cfg moves into the node below
  int rc = 1;
  {
    hanat::uv::Loop loop;
    {
      hanat::daemon::Node::Hooks hooks;
      std::unique_ptr<hanat::daemon::Node> node;
      hanat::uv::Timer done(loop);
      auto finish = [&](int code) {
        rc = code;
        // Leave the node's callback before destroying it.
        (void)done.start(std::chrono::milliseconds(0), std::chrono::milliseconds(0),
                         [&] { node.reset(); });
      };
      hooks.planned = [&](const hanat::daemon::Discovered& d, const hanat::daemon::Identity& id) {
        hanat::daemon::PlanInput in;
        in.self = id.instance_id;
        in.members = d.engine.members;
        in.tables = d.observed;
        in.destinations = d.engine.destinations;
        in.fallback = d.engine.fallback_nat_gateway;
        std::printf("hanatd plan: group \"%s\" (%s), this host %s in %s\n", group.c_str(),
                    path.c_str(), id.instance_id.c_str(), id.zone.c_str());
        std::printf("%s", hanat::daemon::make_plan(in).text.c_str());
        finish(0);
      };
      hooks.plan_failed = [&](const std::string& why) {
        std::fprintf(stderr, "hanatd plan: %s\n", why.c_str());
        finish(1);
      };
      node = std::make_unique<hanat::daemon::Node>(
          loop, std::make_shared<const hanat::config::Config>(std::move(cfg)), false, hooks, true);
      node->start();
      loop.run();
    }
    if (loop.close()) return 1;
  }
  return rc;
}

}  // namespace

int main(int argc, char** argv) {
  std::string config_path = kDefaultConfig;
  bool config_given = false;
  bool check_only = false;
  bool handover = true;
  bool plan = false;
  // GNU getopt_long permutes: options may come before or after `plan`
  // ("hanatd --config x plan" and "hanatd plan --config x" are the same).
  enum { kNoHandover = 256, kCheckConfig };
  static const option kLong[] = {{"config", required_argument, nullptr, 'c'},
                                 {"no-handover", no_argument, nullptr, kNoHandover},
                                 {"check-config", no_argument, nullptr, kCheckConfig},
                                 {"version", no_argument, nullptr, 'V'},
                                 {"help", no_argument, nullptr, 'h'},
                                 {nullptr, 0, nullptr, 0}};
  opterr = 0;  // our own messages, naming the argument
  for (;;) {
    const int prev = optind;
    const int c = getopt_long(argc, argv, ":c:Vh", kLong, nullptr);
    if (c == -1) break;
    switch (c) {
      case 'c':
        config_path = optarg;
        config_given = true;
        break;
      case kNoHandover:
        handover = false;
        break;
      case kCheckConfig:
        check_only = true;
        break;
      case 'V':
        std::printf("hanatd %s\n", HANAT_VERSION);
        return 0;
      case 'h':
        usage(stdout);
        return 0;
      case ':':
        std::fprintf(stderr, "hanatd: %s needs a file name\n", argv[optind - 1]);
        return 2;
      default: {
        std::string what =
            optopt != 0 ? std::string("-") + static_cast<char>(optopt) : std::string(argv[prev]);
        if (optopt == 0 && optind > prev) what = argv[optind - 1];
        std::fprintf(stderr, "hanatd: unknown argument \"%s\"\n", what.c_str());
        usage(stderr);
        return 2;
      }
    }
  }
  // What is left: `plan`, or the FILE of --check-config.
  std::vector<std::string> words(argv + optind, argv + argc);
  if (check_only) {
    if (words.size() > 1 || (words.size() == 1 && config_given && words[0] != config_path)) {
      std::fprintf(stderr, "hanatd: --check-config takes one file, got \"%s\"%s\n",
                   words.back().c_str(),
                   config_given ? (" and --config \"" + config_path + "\"").c_str() : "");
      return 2;
    }
    if (words.size() == 1) config_path = words[0];
  } else if (words.size() == 1 && words[0] == "plan") {
    plan = true;
  } else if (!words.empty()) {
    if (words[0] == "plan") {
      std::fprintf(stderr, "hanatd: plan: unexpected argument \"%s\" (plan takes none)\n",
                   words[1].c_str());
    } else {
      std::fprintf(stderr, "hanatd: unknown argument \"%s\"\n", words[0].c_str());
    }
    usage(stderr);
    return 2;
  }

  auto loaded = hanat::config::load(config_path);
  if (!loaded) {
    print_errors(loaded.error());
    if (!check_only) std::fprintf(stderr, "hanatd: invalid configuration, not starting\n");
    return 2;
  }
  // Checks against this host. --check-config may validate a file meant for another
  // machine: there they are warnings; a daemon that would run with them refuses to start.
  const auto host = hanat::config::apply_host_defaults(loaded.value());
  if (check_only) {
    if (!host) {
      std::fprintf(stderr, "%s: warning: %s (fine if the file is for another machine)\n",
                   config_path.c_str(), host.error().c_str());
    } else if (!host->empty()) {
      std::printf("%s: %s\n", config_path.c_str(), host->c_str());
    }
  } else if (!host) {
    std::fprintf(stderr, "%s: %s\nhanatd: invalid configuration for this host, not starting\n",
                 config_path.c_str(), host.error().c_str());
    return 2;
  } else if (!host->empty()) {
    std::fprintf(stderr, "%s: %s\n", config_path.c_str(), host->c_str());
  }
  const auto missing = hanat::config::missing_interfaces(loaded.value());
  const auto readable = hanat::config::readable_secrets(loaded.value(), config_path);
  if (readable) std::fprintf(stderr, "%s: warning: %s\n", config_path.c_str(), readable->c_str());
  if (check_only) {
    for (const auto& m : missing)
      std::fprintf(stderr, "%s: warning: %s (fine if the file is for another machine)\n",
                   config_path.c_str(), m.c_str());
    std::printf("%s: ok\n", config_path.c_str());
    return 0;
  }
  // A floating ENI is attached during start-up: the interface it becomes may not exist
  // yet, and the NAT apply retries until it does.
  const bool floating = !loaded.value().failover.floating_eni.empty();
  if (!plan && floating) {
    for (const auto& m : missing)
      std::fprintf(stderr, "%s: warning: %s yet (failover.floating_eni is attached at start-up)\n",
                   config_path.c_str(), m.c_str());
  }
  if (!plan && !floating && !missing.empty()) {
    for (const auto& m : missing) std::fprintf(stderr, "%s: %s\n", config_path.c_str(), m.c_str());
    std::fprintf(stderr, "hanatd: invalid configuration for this host, not starting\n");
    return 2;
  }
  // A status client that closes its socket before reading its reply makes the daemon's
  // write(2) raise SIGPIPE, whose default action kills the process: libuv writes to pipes
  // with write(2), which unlike send(MSG_NOSIGNAL) cannot opt out per call. With SIGPIPE
  // ignored the write fails with EPIPE and the status server drops that client only.
  // (curl is set up with CURLOPT_NOSIGNAL and sends with MSG_NOSIGNAL itself.) Found by
  // tests/e2e/abuse_e2e.py; tests/integration/abuse/status_abuse_test.cc pins it.
  std::signal(SIGPIPE, SIG_IGN);
  if (plan) return run_plan(config_path, std::move(loaded).value());

  int rc = 0;
  {
    hanat::uv::Loop loop;
    {
      hanat::daemon::Daemon d(loop, config_path, std::move(loaded).value(), handover);
      std::string why;
      if (std::error_code ec = d.start(&why)) {
        hanat::log::error("hanatd: cannot start: " + why);
        rc = 1;
        d.stop("start-up failed");
      } else {
        loop.run();
        rc = d.exit_code();
      }
    }
    if (std::error_code ec = loop.close()) {
      for (const auto& h : loop.open_handles())
        hanat::log::error("hanatd: handle left open at exit: " + h);
      return 1;
    }
  }
  return rc;
}
