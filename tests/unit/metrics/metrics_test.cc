// SPDX-License-Identifier: GPL-2.0-or-later
// The node_exporter text file: exposition format, atomic replacement, errors naming the
// path, and the timer that rewrites it on the loop.

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>
#include <string>

#include "core/metrics/prometheus.h"
#include "core/metrics/textfile.h"
#include "tests/support/uv_test_util.h"

namespace hanat::metrics {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "hanat-metrics-XXXXXX").string();
    EXPECT_NE(::mkdtemp(tmpl.data()), nullptr);
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    fs::permissions(path_, fs::perms::owner_all, ec);
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

std::vector<Family> sample_families() {
  return {
      {"hanat_peer_up",
       "1 when the peer is up, by peer.",
       Type::Gauge,
       {{{{"peer", "i-0abc"}, {"zone", "eu-west-1a"}}, 1}, {{{"peer", "i-0def"}}, 0}}},
      {"hanat_route_writes_total", "Route writes (ReplaceRoute).", Type::Counter, {{{}, 42}}},
      {"hanat_probe_rtt_seconds", "Last probe round trip.", Type::Gauge, {{{}, 0.00125}}},
  };
}

TEST(Prometheus, GoldenDocument) {
  auto doc = format(sample_families());
  ASSERT_TRUE(doc) << doc.error();
  EXPECT_EQ(*doc,
            "# HELP hanat_peer_up 1 when the peer is up, by peer.\n"
            "# TYPE hanat_peer_up gauge\n"
            "hanat_peer_up{peer=\"i-0abc\",zone=\"eu-west-1a\"} 1\n"
            "hanat_peer_up{peer=\"i-0def\"} 0\n"
            "# HELP hanat_route_writes_total Route writes (ReplaceRoute).\n"
            "# TYPE hanat_route_writes_total counter\n"
            "hanat_route_writes_total 42\n"
            "# HELP hanat_probe_rtt_seconds Last probe round trip.\n"
            "# TYPE hanat_probe_rtt_seconds gauge\n"
            "hanat_probe_rtt_seconds 0.00125\n");
}

TEST(Prometheus, EscapesLabelValuesAndHelp) {
  EXPECT_EQ(escape_label_value("a\\b\"c\nd"), "a\\\\b\\\"c\\nd");
  EXPECT_EQ(escape_help("x \"q\" \\ \ny"), "x \"q\" \\\\ \\ny");
  auto doc = format({{"m", "line1\nline2", Type::Gauge, {{{{"l", "C:\\ \"x\"\n"}}, 1}}}});
  ASSERT_TRUE(doc) << doc.error();
  EXPECT_EQ(*doc,
            "# HELP m line1\\nline2\n# TYPE m gauge\n"
            "m{l=\"C:\\\\ \\\"x\\\"\\n\"} 1\n");
}

TEST(Prometheus, SpecialValues) {
  EXPECT_EQ(format_value(std::numeric_limits<double>::quiet_NaN()), "NaN");
  EXPECT_EQ(format_value(std::numeric_limits<double>::infinity()), "+Inf");
  EXPECT_EQ(format_value(-std::numeric_limits<double>::infinity()), "-Inf");
  EXPECT_EQ(format_value(-3), "-3");
  EXPECT_EQ(format_value(1e20), "1e+20");
  EXPECT_EQ(format_value(0.1), "0.1");
}

TEST(Prometheus, RejectsInvalidNamesWithClearErrors) {
  auto bad_metric = format({{"1abc", "", Type::Gauge, {}}});
  ASSERT_FALSE(bad_metric);
  EXPECT_NE(bad_metric.error().find("metric \"1abc\": invalid name"), std::string::npos)
      << bad_metric.error();
  auto bad_label = format({{"ok", "", Type::Gauge, {{{{"a-b", "v"}}, 1}}}});
  ASSERT_FALSE(bad_label);
  EXPECT_NE(bad_label.error().find("metric \"ok\": invalid label name \"a-b\""), std::string::npos)
      << bad_label.error();
  EXPECT_FALSE(format({{"ok", "", Type::Gauge, {{{{"__name__", "v"}}, 1}}}}));
  EXPECT_FALSE(format({{"ok", "", Type::Gauge, {{{{"a", "1"}, {"a", "2"}}, 1}}}}));
  EXPECT_FALSE(format({{"ok", "", Type::Gauge, {}}, {"ok", "", Type::Counter, {}}}));
  EXPECT_TRUE(valid_metric_name("ns:sub_name9"));
  EXPECT_FALSE(valid_label_name("ns:x"));
}

TEST(Textfile, WritesCompleteFileMode0644AndLeavesNoTemporary) {
  TempDir dir;
  auto path = (dir.path() / "hanat.prom").string();
  ::umask(077);  // the file must still be readable by node_exporter's user
  auto r = write_textfile(path, "a 1\n");
  ::umask(022);
  ASSERT_TRUE(r) << r.error();
  EXPECT_EQ(*r, 4u);
  EXPECT_EQ(read_file(path), "a 1\n");
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0644u);
  ASSERT_TRUE(write_textfile(path, "b 2\n"));
  EXPECT_EQ(read_file(path), "b 2\n");
  int entries = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir.path())) ++entries;
  EXPECT_EQ(entries, 1) << "a temporary file was left behind";
}

TEST(Textfile, BareFileNameGoesToTheWorkingDirectory) {
  TempDir dir;
  auto old = fs::current_path();
  fs::current_path(dir.path());
  auto r = write_textfile("hanat.prom", "c 3\n");
  fs::current_path(old);
  ASSERT_TRUE(r) << r.error();
  EXPECT_EQ(read_file(dir.path() / "hanat.prom"), "c 3\n");
  int entries = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir.path())) ++entries;
  EXPECT_EQ(entries, 1);
}

// A reader polling the file while it is replaced many times sees either no file (before
// the first write) or one complete document, never a truncated or empty one.
TEST(Textfile, ReaderNeverSeesAPartialFile) {
  TempDir dir;
  auto path = (dir.path() / "hanat.prom").string();
  // Two large, distinct documents; each ends with a marker line.
  std::string a(200000, 'a');
  a += "\nend 1\n";
  std::string b(300000, 'b');
  b += "\nend 2\n";
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    for (int i = 0; i < 200; ++i) {
      if (!write_textfile(path, i % 2 ? a : b)) ::_exit(1);
    }
    ::_exit(0);
  }
  int reads = 0;
  int bad = 0;
  int status = 0;
  pid_t done = 0;
  auto deadline = std::chrono::steady_clock::now() + 20s;
  while (done == 0 && std::chrono::steady_clock::now() < deadline) {
    if (fs::exists(path)) {
      std::string got = read_file(path);
      // The file can vanish between exists() and open() only if it never existed yet.
      if (!got.empty() || fs::exists(path)) {
        ++reads;
        if (got != a && got != b) ++bad;
      }
    }
    done = ::waitpid(child, &status, WNOHANG);
  }
  if (done == 0) {
    ::kill(child, SIGKILL);
    ::waitpid(child, &status, 0);
    FAIL() << "writer did not finish within 20 s";
  }
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "writer failed";
  EXPECT_EQ(bad, 0) << "partial documents seen in " << reads << " reads";
  EXPECT_GT(reads, 0);
}

TEST(Textfile, UnwritableDirectoryErrorNamesThePath) {
  TempDir dir;
  auto sub = dir.path() / "ro";
  fs::create_directory(sub);
  auto path = (sub / "hanat.prom").string();
  auto missing = write_textfile((dir.path() / "nope" / "hanat.prom").string(), "x 1\n");
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().find((dir.path() / "nope" / "hanat.prom").string()), std::string::npos)
      << missing.error();
  EXPECT_NE(missing.error().find("No such file or directory"), std::string::npos)
      << missing.error();
  if (::geteuid() == 0) {
    // root ignores directory permissions; a path through a regular file fails for anyone.
    std::ofstream(sub / "file") << "x";
    auto through = (sub / "file" / "hanat.prom").string();
    auto r = write_textfile(through, "x 1\n");
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().find(through), std::string::npos) << r.error();
    EXPECT_NE(r.error().find("Not a directory"), std::string::npos) << r.error();
  } else {
    fs::permissions(sub, fs::perms::owner_read | fs::perms::owner_exec);
    auto r = write_textfile(path, "x 1\n");
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().find(path), std::string::npos) << r.error();
    EXPECT_NE(r.error().find("Permission denied"), std::string::npos) << r.error();
  }
  EXPECT_FALSE(write_textfile("", "x"));
}

TEST(MetricsTextfile, RewritesOnTheTimerAndClosesCleanly) {
  TempDir dir;
  auto path = (dir.path() / "hanat.prom").string();
  uv::Loop loop;
  int produced = 0;
  {
    MetricsTextfile mt(loop, path, 10ms, [&] {
      ++produced;
      return std::vector<Family>{
          {"hanat_ticks_total", "Writes so far.", Type::Counter, {{{}, double(produced)}}}};
    });
    ASSERT_EQ(mt.start(), std::error_code{});
    EXPECT_EQ(mt.writes(), 1u) << "start() writes at once";
    EXPECT_NE(read_file(path).find("hanat_ticks_total 1\n"), std::string::npos);
    ASSERT_TRUE(hanat::testing::run_until(
        loop, [&] { return mt.writes() >= 4; }, 5s));
    EXPECT_TRUE(mt.last_error().empty()) << mt.last_error();
    auto doc = read_file(path);
    EXPECT_NE(doc.find("hanat_ticks_total " + std::to_string(mt.writes()) + "\n"),
              std::string::npos)
        << doc;
    mt.stop();
  }
  hanat::testing::expect_clean_close(loop);
}

TEST(MetricsTextfile, KeepsTheLastErrorAndRecovers) {
  TempDir dir;
  auto subdir = dir.path() / "later";
  auto path = (subdir / "hanat.prom").string();
  uv::Loop loop;
  {
    bool bad_name = false;
    MetricsTextfile mt(loop, path, 10ms, [&] {
      return std::vector<Family>{{bad_name ? "bad name" : "up", "", Type::Gauge, {{{}, 1}}}};
    });
    ASSERT_EQ(mt.start(), std::error_code{});
    EXPECT_EQ(mt.writes(), 0u);
    EXPECT_NE(mt.last_error().find(path), std::string::npos) << mt.last_error();
    // The directory appears later (node_exporter installed after hanat): the timer recovers.
    fs::create_directory(subdir);
    ASSERT_TRUE(hanat::testing::run_until(
        loop, [&] { return mt.writes() >= 1; }, 5s));
    EXPECT_TRUE(mt.last_error().empty()) << mt.last_error();
    EXPECT_EQ(read_file(path), "# HELP up\n# TYPE up gauge\nup 1\n");
    bad_name = true;
    mt.write_now();
    EXPECT_NE(mt.last_error().find("metric \"bad name\": invalid name"), std::string::npos)
        << mt.last_error();
    EXPECT_EQ(read_file(path), "# HELP up\n# TYPE up gauge\nup 1\n")
        << "an invalid document must not replace the last good file";
  }
  hanat::testing::expect_clean_close(loop);
}

TEST(MetricsTextfile, ReportsEachErrorChangeOnceNotEveryInterval) {
  TempDir dir;
  auto subdir = dir.path() / "later";
  auto path = (subdir / "hanat.prom").string();
  uv::Loop loop;
  {
    std::vector<std::string> changes;
    MetricsTextfile mt(loop, path, 5ms, [] {
      return std::vector<Family>{{"up", "", Type::Gauge, {{{}, 1}}}};
    });
    mt.on_error_change([&](const std::string& e) { changes.push_back(e); });
    ASSERT_EQ(mt.start(), std::error_code{});
    // Many intervals fail with the same error: one report.
    ASSERT_TRUE(hanat::testing::run_until(
        loop, [&] { return mt.failures() >= 5; }, 5s));
    ASSERT_EQ(changes.size(), 1u);
    EXPECT_NE(changes[0].find(path), std::string::npos) << changes[0];
    // Recovery is one more change, to "".
    fs::create_directory(subdir);
    ASSERT_TRUE(hanat::testing::run_until(
        loop, [&] { return mt.writes() >= 5; }, 5s));
    ASSERT_EQ(changes.size(), 2u);
    EXPECT_EQ(changes[1], "");
    mt.stop();
    // remove_file deletes the file; removing a missing file is not an error.
    EXPECT_EQ(mt.remove_file(), "");
    EXPECT_FALSE(fs::exists(path));
    EXPECT_EQ(mt.remove_file(), "");
  }
  hanat::testing::expect_clean_close(loop);
}

TEST(CheckExposition, AcceptsWhatFormatWrites) {
  std::vector<Family> f{
      {"hanat_up", "Up.", Type::Gauge, {{{}, 1}}},
      {"hanat_calls_total",
       "Calls \\ with \"quotes\"\nand lines.",
       Type::Counter,
       {{{{"action", "ReplaceRoute"}, {"outcome", "a\"b\\c\nd"}}, 3},
        {{{"action", "X"}, {"outcome", "ok"}}, 0.25}}},
      {"hanat_empty", "", Type::Gauge, {}},
      {"hanat_special", "", Type::Gauge, {{{}, std::nan("")}, {{{"k", "v"}}, -1e300}}}};
  auto doc = format(f);
  ASSERT_TRUE(doc) << doc.error();
  auto n = check_exposition(*doc);
  ASSERT_TRUE(n) << n.error() << "\n" << *doc;
  EXPECT_EQ(*n, 5u);
  EXPECT_EQ(*check_exposition(""), 0u);
  EXPECT_EQ(*check_exposition("# a comment\n\nx 1 1700000000000\n"), 1u);
}

TEST(CheckExposition, NamesTheLineAndTheProblem) {
  auto err = [](std::string_view doc) {
    auto r = check_exposition(doc);
    return r ? std::string("accepted") : r.error();
  };
  EXPECT_EQ(err("x 1"), "the document does not end with a line feed");
  EXPECT_EQ(err("x 1\n1x 2\n"), "line 2: invalid metric name \"1x\"");
  EXPECT_EQ(err("x{a=\"1\"\n"), "line 1: x: unterminated label set");
  EXPECT_EQ(err("x{a=\"1\n"), "line 1: x: unterminated label value");
  EXPECT_EQ(err("x{a=1} 2\n"), "line 1: x: label \"a\": value not quoted");
  EXPECT_EQ(err("x{a=\"\\t\"} 2\n"), "line 1: x: label \"a\": bad escape");
  EXPECT_EQ(err("x{a=\"1\",a=\"2\"} 2\n"), "line 1: x: label \"a\" twice");
  EXPECT_EQ(err("x{0a=\"1\"} 2\n"), "line 1: x: invalid label name \"0a\"");
  EXPECT_EQ(err("x\n"), "line 1: x: no value");
  EXPECT_EQ(err("x one\n"), "line 1: x: bad value \"one\"");
  EXPECT_EQ(err("x 1 soon\n"), "line 1: x: bad timestamp");
  EXPECT_EQ(err("# TYPE x gauge\n# TYPE x gauge\n"), "line 2: second TYPE line for x");
  EXPECT_EQ(err("# TYPE x meter\n"), "line 1: unknown type \"meter\"");
  EXPECT_EQ(err("x 1\n# TYPE x gauge\n"), "line 2: TYPE line for x after its samples");
  EXPECT_EQ(err("x 1\ny 1\nx 2\n"), "line 3: x: samples not together");
}

}  // namespace
}  // namespace hanat::metrics
