// SPDX-License-Identifier: GPL-2.0-or-later
#include "core/daemon/state_dir.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace hanat::daemon {

namespace {

std::string sys_error(const std::string& what, const std::string& path) {
  return what + " " + path + ": " + std::strerror(errno);
}

// fsync of a directory makes the entries created or renamed in it durable (fsync(2):
// "calling fsync() on the file does not necessarily ensure that the entry in the directory
// containing the file has also reached disk").
std::string sync_dir(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return sys_error("cannot open", dir);
  std::string err;
  if (::fsync(fd) != 0) err = sys_error("cannot fsync", dir);
  ::close(fd);
  return err;
}

}  // namespace

std::string StateDir::file(const std::string& name) const {
  return path_ + "/" + name;
}

core::Result<std::optional<std::string>, std::string> StateDir::read(
    const std::string& name) const {
  const std::string p = file(name);
  int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return std::optional<std::string>();
    return core::Unexpected(sys_error("cannot open", p));
  }
  std::string out;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      std::string err = sys_error("cannot read", p);
      ::close(fd);
      return core::Unexpected(err);
    }
    if (n == 0) break;
    out.append(buf, static_cast<std::size_t>(n));
    // The files kept here are a line or two; refuse to hold a huge one in the daemon.
    if (out.size() > 64 * 1024) {
      ::close(fd);
      return core::Unexpected(p + ": larger than 64 KiB, not a hanat state file");
    }
  }
  ::close(fd);
  return std::optional<std::string>(std::move(out));
}

std::string StateDir::write(const std::string& name, const std::string& contents) const {
  if (::mkdir(path_.c_str(), 0755) != 0 && errno != EEXIST) {
    return sys_error("cannot create directory", path_);
  }
  const std::string p = file(name);
  const std::string tmp = p + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return sys_error("cannot create", tmp);
  std::size_t done = 0;
  while (done < contents.size()) {
    ssize_t n = ::write(fd, contents.data() + done, contents.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      std::string err = sys_error("cannot write", tmp);
      ::close(fd);
      ::unlink(tmp.c_str());
      return err;
    }
    done += static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0) {
    std::string err = sys_error("cannot fsync", tmp);
    ::close(fd);
    ::unlink(tmp.c_str());
    return err;
  }
  if (::close(fd) != 0) {
    std::string err = sys_error("cannot close", tmp);
    ::unlink(tmp.c_str());
    return err;
  }
  if (::rename(tmp.c_str(), p.c_str()) != 0) {
    std::string err = sys_error("cannot rename " + tmp + " to", p);
    ::unlink(tmp.c_str());
    return err;
  }
  return sync_dir(path_);
}

std::string StateDir::remove(const std::string& name) const {
  const std::string p = file(name);
  if (::unlink(p.c_str()) != 0) {
    if (errno == ENOENT) return "";
    return sys_error("cannot remove", p);
  }
  return sync_dir(path_);
}

}  // namespace hanat::daemon
