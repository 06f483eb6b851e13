// SPDX-License-Identifier: GPL-2.0-or-later
#pragma once
// The node_exporter text file, written atomically: node_exporter may read the file at any
// moment, so it must never see half a document. The content goes to a temporary file in
// the same directory (rename(2) is atomic only within one file system), is fsync'ed, made
// mode 0644 (node_exporter runs as its own user) and renamed over the target. The
// temporary name starts with '.' and does not end in ".prom", so the collector's *.prom
// glob never picks it up.

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "core/base/result.h"
#include "core/metrics/prometheus.h"
#include "core/uv/uv.h"

namespace hanat::metrics {

// Replaces `path` with `content` atomically. Returns the bytes written, or an error that
// names the path and the failing step, e.g.
// "metrics textfile /x/hanat.prom: cannot create temporary file in /x: Permission denied".
// Blocking, but small: a few kilobytes to a local file every few seconds.
[[nodiscard]] core::Result<size_t, std::string> write_textfile(const std::string& path,
                                                               std::string_view content);

// Rewrites a text file from `produce()` every `interval` on the loop, starting at once.
// Errors do not stop it (the directory may appear later, e.g. when node_exporter is
// installed after hanat); the last one is kept for status and cleared by a success.
class MetricsTextfile {
 public:
  using Producer = std::function<std::vector<Family>()>;
  // Called when last_error() changes: a new error, a different one, or "" on recovery —
  // so the owner logs once per change, not once per interval.
  using ErrorChange = std::function<void(const std::string& error)>;

  MetricsTextfile(uv::Loop& loop, std::string path, std::chrono::milliseconds interval,
                  Producer produce);
  MetricsTextfile(const MetricsTextfile&) = delete;
  MetricsTextfile& operator=(const MetricsTextfile&) = delete;

  // Writes once now, then every interval. The returned error is the timer's; a write
  // error is in last_error().
  [[nodiscard]] std::error_code start();
  void on_error_change(ErrorChange cb) { on_error_change_ = std::move(cb); }
  void stop();
  // One write now (the timer does the same).
  void write_now();
  // Removes the file (on a clean stop, or when the path changes): node_exporter would
  // otherwise keep exporting the last values as if they were current. Returns the error.
  [[nodiscard]] std::string remove_file() const;

  [[nodiscard]] const std::string& path() const { return path_; }
  [[nodiscard]] std::chrono::milliseconds interval() const { return interval_; }
  [[nodiscard]] const std::string& last_error() const { return last_error_; }
  [[nodiscard]] uint64_t writes() const { return writes_; }
  [[nodiscard]] uint64_t failures() const { return failures_; }

 private:
  std::string path_;
  std::chrono::milliseconds interval_;
  Producer produce_;
  uv::Timer timer_;
  std::string last_error_;
  ErrorChange on_error_change_;
  uint64_t writes_ = 0;
  uint64_t failures_ = 0;

  void set_error(std::string e);
};

}  // namespace hanat::metrics
