// SPDX-License-Identifier: GPL-2.0-or-later
#include "core/metrics/textfile.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace hanat::metrics {

namespace {

std::string errno_text(int err) {
  return std::strerror(err);
}

}  // namespace

core::Result<size_t, std::string> write_textfile(const std::string& path,
                                                 std::string_view content) {
  const std::string what = "metrics textfile " + path + ": ";
  if (path.empty() || path.back() == '/') {
    return core::Unexpected(what + "not a file path");
  }
  const size_t slash = path.rfind('/');
  // "dir/" (with its slash) or "" for a bare file name in the working directory.
  const std::string dir = slash == std::string::npos ? "" : path.substr(0, slash + 1);
  const std::string base = slash == std::string::npos ? path : path.substr(slash + 1);
  std::string tmpl = dir + "." + base + ".XXXXXX";
  int fd = ::mkostemp(tmpl.data(), O_CLOEXEC);
  if (fd < 0) {
    return core::Unexpected(what + "cannot create temporary file in " + (dir.empty() ? "." : dir) +
                            ": " + errno_text(errno));
  }
  auto fail = [&](const std::string& step) {
    int err = errno;
    ::close(fd);
    ::unlink(tmpl.c_str());
    return core::Unexpected(what + step + ": " + errno_text(err));
  };
  size_t done = 0;
  while (done < content.size()) {
    ssize_t n = ::write(fd, content.data() + done, content.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail("write " + tmpl);
    done += static_cast<size_t>(n);
  }
  // mkstemp creates 0600; node_exporter runs as its own user and must read the file.
  if (::fchmod(fd, 0644) != 0) return fail("chmod " + tmpl);
  // Data on disk before the rename, so a crash leaves the old or the new file, never an
  // empty one (ext4's rename-over-existing heuristic is not a guarantee on every fs).
  if (::fsync(fd) != 0) return fail("fsync " + tmpl);
  if (::close(fd) != 0) {
    int err = errno;
    ::unlink(tmpl.c_str());
    return core::Unexpected(what + "close " + tmpl + ": " + errno_text(err));
  }
  if (::rename(tmpl.c_str(), path.c_str()) != 0) {
    int err = errno;
    ::unlink(tmpl.c_str());
    return core::Unexpected(what + "rename: " + errno_text(err));
  }
  return done;
}

MetricsTextfile::MetricsTextfile(uv::Loop& loop, std::string path,
                                 std::chrono::milliseconds interval, Producer produce)
    : path_(std::move(path)), interval_(interval), produce_(std::move(produce)), timer_(loop) {}

std::error_code MetricsTextfile::start() {
  write_now();
  return timer_.start(interval_, interval_, [this] { write_now(); });
}

void MetricsTextfile::stop() {
  (void)timer_.stop();
}

void MetricsTextfile::write_now() {
  auto doc = format(produce_ ? produce_() : std::vector<Family>{});
  if (!doc) {
    ++failures_;
    return set_error("metrics textfile " + path_ + ": " + doc.error());
  }
  auto written = write_textfile(path_, *doc);
  if (!written) {
    ++failures_;
    return set_error(written.error());
  }
  ++writes_;
  set_error("");
}

void MetricsTextfile::set_error(std::string e) {
  if (e == last_error_) return;
  last_error_ = std::move(e);
  if (on_error_change_) on_error_change_(last_error_);
}

std::string MetricsTextfile::remove_file() const {
  if (::unlink(path_.c_str()) == 0 || errno == ENOENT) return "";
  return "metrics textfile " + path_ + ": cannot remove: " + errno_text(errno);
}

}  // namespace hanat::metrics
