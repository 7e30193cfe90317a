// fault_env.h: an Env that fails on command, for the fault-injection tests of every durable
// writer (cache, checkpoints, shards, reports).
//
// Faults apply only to files whose path contains `filter` (empty: every file), so a test can
// break one writer's files while the rest of the run does its I/O normally. Each fault is a
// switch the test flips at any time; the counters say which calls were made.
//
// Thread-safety: every member may be used from any thread (the cache's writer thread calls in
// while the test flips switches).
#pragma once

#include <errno.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <mutex>
#include <set>
#include <string>

#include "flowfeed/env.h"

namespace flowfeed::test {

class FaultEnv : public PosixEnv {
 public:
  explicit FaultEnv(std::string filter = "") : filter_(std::move(filter)) {}

  // Bytes that matching writes may still write in all; then ENOSPC. A write crossing the limit
  // is cut short at it (a short write, as a filling disk gives).
  std::atomic<int64_t> write_budget{INT64_MAX};
  std::atomic<bool> fail_sync{false};      // Sync() of a matching file: EIO
  std::atomic<bool> fail_sync_dir{false};  // SyncDir() of any folder: EIO
  std::atomic<bool> fail_rename{false};    // Rename() to a matching path: EXDEV
  std::atomic<int> renames{0}, syncs{0}, dir_syncs{0};

  int Open(const std::string& path, int flags, mode_t mode) override {
    const int fd = PosixEnv::Open(path, flags, mode);
    if (fd >= 0) {
      // A number reused after a close the Env did not see (::close) is a new file.
      std::lock_guard<std::mutex> lock(mu_);
      if (Matches(path))
        fds_.insert(fd);
      else
        fds_.erase(fd);
    }
    return fd;
  }
  ssize_t Write(int fd, const void* data, size_t size) override {
    if (!Tracked(fd)) return PosixEnv::Write(fd, data, size);
    const int64_t left = write_budget.load();
    if (left <= 0) {
      errno = ENOSPC;
      return -1;
    }
    const ssize_t r = PosixEnv::Write(fd, data, std::min<size_t>(size, size_t(left)));
    if (r > 0) write_budget -= r;
    return r;
  }
  int Sync(int fd) override {
    ++syncs;
    if (fail_sync && Tracked(fd)) {
      errno = EIO;
      return -1;
    }
    return PosixEnv::Sync(fd);
  }
  int SyncDir(int dir_fd) override {
    ++dir_syncs;
    if (fail_sync_dir) {
      errno = EIO;
      return -1;
    }
    return PosixEnv::SyncDir(dir_fd);
  }
  int Close(int fd) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      fds_.erase(fd);
    }
    return PosixEnv::Close(fd);
  }
  int Rename(const std::string& from, const std::string& to) override {
    ++renames;
    if (fail_rename && Matches(to)) {
      errno = EXDEV;
      return -1;
    }
    return PosixEnv::Rename(from, to);
  }

 private:
  bool Matches(const std::string& path) const {
    return filter_.empty() || path.find(filter_) != std::string::npos;
  }
  bool Tracked(int fd) {
    std::lock_guard<std::mutex> lock(mu_);
    return fds_.count(fd) > 0;
  }

  const std::string filter_;
  std::mutex mu_;
  std::set<int> fds_;  // open descriptors of matching files
};

}  // namespace flowfeed::test
