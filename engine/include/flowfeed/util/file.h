// flowfeed/util/file.h: the one file layer -- whole-file reads, atomic replacement with a
// named durability, folder sync, errno messages and path joining.
//
// Part of flowfeed/util/: helpers flowfeed's own libraries and tools share (the engine, the
// trainer, the dataset builders, the page, the CLI). Built into flowfeed::engine and installed
// with it; a program may use them, but they are not the engine's API and may change between
// minor versions.
//
// Every writer states what it needs from a crash with a Durability, instead of each writer
// choosing its own mix of fsync and rename. Writes go through an Env (flowfeed/env.h; null means
// Env::Default()) so tests can inject a full disk or a failing fsync or rename.
//
// Failure messages name the file the failing call was about, "PATH: strerror": the temporary
// file for open, write, sync and close; the final path for the rename; the folder for its sync.
//
// Thread-safety: the free functions are safe to call concurrently (on different files). An
// AtomicFile is used by one thread at a time.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "flowfeed/env.h"
#include "flowfeed/status.h"

namespace flowfeed {

// What an atomically replaced file survives. In every case a reader (or a crash) sees the old
// file or the new one under the final name, never a partly written one -- except that kNone
// gives no promise after a crash of the machine: the rename may reach the disk before the data,
// leaving an empty or partial file under the final name.
enum class Durability {
  kNone,        // tmp, write, close, rename: for output a person reads (reports, demo data)
  kFile,        // + Env::Sync of the file before the rename: old or new contents after a crash,
                // but the rename itself may be lost (the caller syncs the folder, e.g. once for
                // many files)
  kFileAndDir,  // + Env::SyncDir of the folder after the rename: the new file survives a crash
};

// "PATH: strerror(err)".
std::string ErrnoMessage(const std::string& path, int err);
// NotFound for ENOENT, IoError otherwise, with ErrnoMessage(path, err).
Status ErrnoStatus(const std::string& path, int err);

// Joins a folder and a path inside it with exactly one '/' between them. The one rule for
// absolute paths: an absolute `rel` is returned as it is (it does not live under `dir`). An
// empty `dir` gives `rel`, an empty `rel` gives `dir`.
std::string JoinPath(const std::string& dir, const std::string& rel);
// The folder holding `path`: "." when it names none ("a.txt"), "/" for "/a.txt".
std::string DirName(const std::string& path);

// Reads a whole regular file. NotFound when it does not exist; IoError naming it otherwise (a
// folder, a FIFO, socket or device: "not a regular file (a FIFO)", a read error, a file that
// shrank while being read). Never blocks on a FIFO: it is opened with O_NONBLOCK and refused. *out holds the bytes on success; reuses its capacity.
Status ReadFile(const std::string& path, std::vector<uint8_t>* out);
Status ReadFile(const std::string& path, std::string* out);

// Writes all of [data, data + size) to `fd` through env->Write, retrying EINTR and short
// writes. 0, or the errno of the failing write (EIO for a write that wrote nothing).
int WriteFully(Env* env, int fd, const void* data, size_t size);

// Makes the entries of folder `dir` durable (opens it and calls env->SyncDir). IoError naming
// the folder.
Status SyncDir(Env* env, const std::string& dir);

// Flushes every file written on the filesystem that holds `dir` to storage (syncfs): for a
// folder of many files written without a sync each. IoError naming the folder.
Status SyncFilesystemOf(const std::string& dir);

// A file written under a temporary name and renamed over its final name by Commit(), so the
// final name only ever holds a complete file. Not committed (an error, or destroyed early), the
// temporary file is removed and the final one is left as it was.
class AtomicFile {
 public:
  // `tmp_path` empty: path + ".tmp". `env` null: Env::Default(), read here.
  AtomicFile(Env* env, std::string path, std::string tmp_path = "");
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  // Creates (or truncates) the temporary file.
  Status Open();
  // Appends to the temporary file; an error leaves it to be removed.
  Status Append(const void* data, size_t size);
  // Syncs as `durability` says, closes and renames; any failure removes the temporary file.
  Status Commit(Durability durability);

  const std::string& path() const { return path_; }
  const std::string& tmp_path() const { return tmp_; }

 private:
  void Abandon();  // closes and removes the temporary file

  Env* const env_;
  const std::string path_, tmp_;
  int fd_ = -1;
};

// Replaces `path` by `data` in one AtomicFile (temporary file path + ".tmp").
Status WriteFileAtomically(Env* env, const std::string& path, std::string_view data,
                           Durability durability);

}  // namespace flowfeed
