// SPDX-License-Identifier: GPL-2.0-or-later
#pragma once
// Test helpers: child processes with captured output, waited on with deadlines (never
// a bare sleep), and temporary directories removed afterwards.

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace hanat::testing {

inline std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline void write_file(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
}

// Polls `cond` every few milliseconds until it holds or the deadline passes.
inline bool eventually(const std::function<bool()>& cond,
                       std::chrono::milliseconds deadline = std::chrono::seconds(10)) {
  auto end = std::chrono::steady_clock::now() + deadline;
  while (std::chrono::steady_clock::now() < end) {
    if (cond()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));  // poll period, not a wait
  }
  return cond();
}

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/hanat-test-XXXXXX";
    path_ = ::mkdtemp(tmpl) != nullptr ? tmpl : "";
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  [[nodiscard]] const std::string& path() const { return path_; }
  [[nodiscard]] std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// A child process; stdout and stderr go to files. Killed (SIGKILL) if still running
// when destroyed.
class Process {
 public:
  Process(std::vector<std::string> argv, const std::string& out_path, const std::string& err_path,
          std::vector<std::string> extra_env = {})
      : out_path_(out_path), err_path_(err_path) {
    pid_ = ::fork();
    if (pid_ == 0) {
      int out = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      int err = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      ::dup2(out, 1);
      ::dup2(err, 2);
      int devnull = ::open("/dev/null", O_RDONLY);
      ::dup2(devnull, 0);
      for (const auto& e : extra_env) ::putenv(const_cast<char*>(e.c_str()));
      std::vector<char*> args;
      for (auto& a : argv) args.push_back(a.data());
      args.push_back(nullptr);
      ::execv(args[0], args.data());
      ::_exit(127);
    }
  }
  ~Process() {
    if (pid_ > 0 && !exit_status_) {
      ::kill(pid_, SIGKILL);
      int st = 0;
      ::waitpid(pid_, &st, 0);
    }
  }
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  [[nodiscard]] pid_t pid() const { return pid_; }
  void signal(int sig) const { ::kill(pid_, sig); }
  // Asks the process to exit (SIGTERM) and waits up to `deadline`, so that it can run its
  // own shutdown (and a tool wrapping it, such as valgrind, can write its report). Only past
  // the deadline is it killed (SIGKILL). Returns the exit status if it exited by itself
  // (at once if it already had), nullopt if it had to be killed.
  std::optional<int> stop(std::chrono::milliseconds deadline) {
    if (pid_ <= 0) return std::nullopt;
    if (!exit_status_) signal(SIGTERM);
    if (auto code = wait(deadline)) return code;
    ::kill(pid_, SIGKILL);
    int st = 0;
    ::waitpid(pid_, &st, 0);
    exit_status_ = 128 + SIGKILL;
    return std::nullopt;
  }
  // The exit code (or 128+signal) once the process ended within the deadline.
  std::optional<int> wait(std::chrono::milliseconds deadline = std::chrono::seconds(10)) {
    eventually(
        [&] {
          if (exit_status_) return true;
          int st = 0;
          if (::waitpid(pid_, &st, WNOHANG) == pid_) {
            exit_status_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
          }
          return exit_status_.has_value();
        },
        deadline);
    return exit_status_;
  }
  [[nodiscard]] std::string out() const { return read_file(out_path_); }
  [[nodiscard]] std::string err() const { return read_file(err_path_); }

 private:
  pid_t pid_ = -1;
  std::optional<int> exit_status_;
  std::string out_path_, err_path_;
};

// Runs a command to completion; returns {exit code, stdout, stderr}.
struct RunResult {
  int code = -1;
  std::string out, err;
};
inline RunResult run(std::vector<std::string> argv, const TempDir& dir,
                     std::chrono::milliseconds deadline = std::chrono::seconds(30)) {
  static int counter = 0;
  std::string base = dir.file("run" + std::to_string(++counter));
  Process p(std::move(argv), base + ".out", base + ".err");
  RunResult r;
  r.code = p.wait(deadline).value_or(-1);
  r.out = p.out();
  r.err = p.err();
  return r;
}

}  // namespace hanat::testing
