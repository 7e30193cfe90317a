// flowfeed/env.h: the file operations flowfeed writes through, as a seam for fault injection.
//
// Every durable write in flowfeed -- the sample cache's disk store, the trainer's checkpoints,
// WebDataset shards, reports -- goes through an Env, so a test can make any of them meet a full
// disk (ENOSPC), a short write, a failing fsync or a failing rename, and check what is left on
// disk. Modelled on LevelDB's Env, but at the file-descriptor level: the cache appends to open
// files from its writer thread and the atomic-replace helpers (flowfeed/util/file.h) need
// nothing more than these calls.
//
// It is public API because SampleCache::Open() takes one (CacheFileOps, the cache's earlier
// name for it, is kept as an alias of PosixEnv). Code whose options carry no Env (the trainer,
// the shard writer, the CLI's reports) uses Env::Default(), which a test may replace for a
// while with ScopedDefaultEnv.
//
// Every method has the POSIX convention of the call it stands for: -1 (or a negative count)
// with errno set on failure. Reads are not part of the seam: nothing flowfeed trusts after a
// crash depends on a read failing in a particular way, and sample reads stay on the plain
// syscalls of the hot path.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <string>

namespace flowfeed {

// Thread-safety: implementations must allow concurrent calls (the cache's writer thread runs
// beside the trainer and the CLI). Ownership: an Env is never owned by the code it is handed
// to; it must outlive every object using it.
class Env {
 public:
  virtual ~Env() = default;

  virtual int Open(const std::string& path, int flags, mode_t mode) = 0;  // ::open (EINTR retried)
  virtual ssize_t Write(int fd, const void* data, size_t size) = 0;       // ::write
  // Makes a file's data and size durable: ::fdatasync. Enough for a file that is appended to
  // or replaced by rename (what flowfeed writes); it skips only timestamps.
  virtual int Sync(int fd) = 0;
  // Makes a folder's entries durable (a rename or unlink in it survives a crash): ::fsync on a
  // folder opened O_RDONLY | O_DIRECTORY.
  virtual int SyncDir(int dir_fd) = 0;
  virtual int Close(int fd) = 0;                                             // ::close
  virtual int Rename(const std::string& from, const std::string& to) = 0;   // ::rename
  virtual int Unlink(const std::string& path) = 0;                          // ::unlink

  // The Env used where none is passed in: the POSIX one unless a ScopedDefaultEnv is active.
  // Never null; safe to call from any thread.
  static Env* Default();
};

// The real one: each method is the syscall named above. Not final: CacheFileOps-style test
// doubles derive from it and override only the calls they break.
class PosixEnv : public Env {
 public:
  int Open(const std::string& path, int flags, mode_t mode) override;
  ssize_t Write(int fd, const void* data, size_t size) override;
  int Sync(int fd) override;
  int SyncDir(int dir_fd) override;
  int Close(int fd) override;
  int Rename(const std::string& from, const std::string& to) override;
  int Unlink(const std::string& path) override;
};

// Makes Env::Default() return `env` until destroyed, then restores the previous one. For tests
// of code that takes no Env (checkpoints, shards, reports). Install it before starting the work
// under test and let it go after that work has ended: code that already fetched the default
// keeps using what it fetched. Scopes nest (LIFO).
class ScopedDefaultEnv {
 public:
  explicit ScopedDefaultEnv(Env* env);
  ~ScopedDefaultEnv();
  ScopedDefaultEnv(const ScopedDefaultEnv&) = delete;
  ScopedDefaultEnv& operator=(const ScopedDefaultEnv&) = delete;

 private:
  Env* previous_;
};

}  // namespace flowfeed
