// SPDX-License-Identifier: GPL-2.0-or-later
#include "core/handover/psk.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace hanat::handover {

core::Result<std::string, std::string> load_psk(const std::string& path) {
  auto bad = [&](const std::string& why) {
    return core::Unexpected<std::string>("handover.psk_file \"" + path + "\": " + why);
  };
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return bad(std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int e = errno;
    ::close(fd);
    return bad(std::strerror(e));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return bad("not a regular file");
  }
  if ((st.st_mode & S_IRWXO) != 0) {
    ::close(fd);
    return bad("others may access it (chmod o-rwx)");
  }
  std::string key;
  char buf[512];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int e = errno;
      ::close(fd);
      return bad(std::strerror(e));
    }
    if (n == 0) break;
    key.append(buf, static_cast<size_t>(n));
    if (key.size() > kMaxPskBytes + 2) break;
  }
  ::close(fd);
  if (!key.empty() && key.back() == '\n') key.pop_back();
  if (!key.empty() && key.back() == '\r') key.pop_back();
  if (key.size() < kMinPskBytes) {
    return bad(std::to_string(key.size()) + " bytes; a key needs at least " +
               std::to_string(kMinPskBytes));
  }
  if (key.size() > kMaxPskBytes)
    return bad("longer than " + std::to_string(kMaxPskBytes) + " bytes");
  return key;
}

}  // namespace hanat::handover
