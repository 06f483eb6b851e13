// SPDX-License-Identifier: GPL-2.0-or-later
#pragma once
// DOC: core/daemon/state_dir keeps the small files hanatd must find again after a restart
// ([status] state_directory, /var/lib/hanat by default; the unit's StateDirectory=hanat
// creates it). Today it holds the drain mark ("drained"). Each file is replaced whole:
// written to a temporary name, fsync'ed, renamed over the old one, and the directory
// fsync'ed, so that after a crash or power loss the file is either the old or the new
// version, never empty or half written (rename(2) is atomic within a file system; ext4
// and xfs need the fsync before the rename for the data, and the directory's fsync makes
// the rename itself durable).

#include <optional>
#include <string>

#include "core/base/result.h"

namespace hanat::daemon {

class StateDir {
 public:
  explicit StateDir(std::string path) : path_(std::move(path)) {}

  [[nodiscard]] const std::string& path() const { return path_; }
  // The absolute path of `name` in the directory.
  [[nodiscard]] std::string file(const std::string& name) const;

  // The contents of `name`: nullopt when it (or the directory) does not exist, an error
  // naming the path when it cannot be read.
  [[nodiscard]] core::Result<std::optional<std::string>, std::string> read(
      const std::string& name) const;
  // Replaces `name` with `contents` durably (see above), creating the directory (0755) if
  // needed. "" on success, else why not, naming the path.
  [[nodiscard]] std::string write(const std::string& name, const std::string& contents) const;
  // Removes `name`; a file that does not exist is success. "" or why not.
  [[nodiscard]] std::string remove(const std::string& name) const;

 private:
  std::string path_;
};

}  // namespace hanat::daemon
