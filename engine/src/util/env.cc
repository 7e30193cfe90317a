// util/env.cc: PosixEnv, the default Env and its test override (see flowfeed/env.h).
#include "flowfeed/env.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>

namespace flowfeed {

namespace {

PosixEnv* Posix() {
  static PosixEnv* env = new PosixEnv;  // never destroyed: used by threads that outlive main()
  return env;
}

// Null means "the POSIX one", so the default needs no initialisation order.
std::atomic<Env*> g_default{nullptr};

}  // namespace

int PosixEnv::Open(const std::string& path, int flags, mode_t mode) {
  int fd;
  do {
    fd = ::open(path.c_str(), flags, mode);
  } while (fd < 0 && errno == EINTR);
  return fd;
}

ssize_t PosixEnv::Write(int fd, const void* data, size_t size) { return ::write(fd, data, size); }
int PosixEnv::Sync(int fd) { return ::fdatasync(fd); }
int PosixEnv::SyncDir(int dir_fd) { return ::fsync(dir_fd); }
int PosixEnv::Close(int fd) { return ::close(fd); }
int PosixEnv::Rename(const std::string& from, const std::string& to) {
  return std::rename(from.c_str(), to.c_str());
}
int PosixEnv::Unlink(const std::string& path) { return ::unlink(path.c_str()); }

Env* Env::Default() {
  Env* env = g_default.load(std::memory_order_acquire);
  return env ? env : Posix();
}

ScopedDefaultEnv::ScopedDefaultEnv(Env* env)
    : previous_(g_default.exchange(env, std::memory_order_acq_rel)) {}

ScopedDefaultEnv::~ScopedDefaultEnv() { g_default.store(previous_, std::memory_order_release); }

}  // namespace flowfeed
