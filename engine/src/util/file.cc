// util/file.cc: the file layer (see util/file.h).
#include "flowfeed/util/file.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <utility>

namespace flowfeed {

std::string ErrnoMessage(const std::string& path, int err) {
  return path + ": " + std::strerror(err);
}

Status ErrnoStatus(const std::string& path, int err) {
  if (err == ENOENT) return Status::NotFound(ErrnoMessage(path, err));
  return Status::IoError(ErrnoMessage(path, err));
}

std::string JoinPath(const std::string& dir, const std::string& rel) {
  if (dir.empty() || (!rel.empty() && rel[0] == '/')) return rel;
  if (rel.empty()) return dir;
  if (dir.back() == '/') return dir + rel;
  return dir + "/" + rel;
}

std::string DirName(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

namespace {

// Reads exactly the `size` bytes a regular file had when opened.
template <typename Bytes>
Status ReadSized(int fd, const std::string& path, size_t size, Bytes* out) {
  out->resize(size);  // keeps the capacity when it is large enough
  size_t done = 0;
  while (done < size) {
    const ssize_t r = ::read(fd, &(*out)[0] + done, size - done);
    if (r < 0) {
      if (errno == EINTR) continue;
      return Status::IoError(ErrnoMessage(path, errno));
    }
    if (r == 0) {
      out->resize(done);
      return Status::IoError(path + ": file shrank while reading (expected " +
                             std::to_string(size) + " bytes, got " + std::to_string(done) + ")");
    }
    done += size_t(r);
  }
  return Status::Ok();
}

// What a path is when it is not a regular file or a folder, for the message that refuses it.
const char* KindOf(mode_t mode) {
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISSOCK(mode)) return "a socket";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  return "an unknown kind";
}

template <typename Bytes>
Status ReadWhole(const std::string& path, Bytes* out) {
  // O_NONBLOCK: opening a FIFO nobody writes would otherwise wait forever (and a device may
  // block too); it has no effect on a regular file, which is all this reads.
  int fd;
  do {
    fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  } while (fd < 0 && errno == EINTR);
  struct stat st;
  if (fd < 0) {
    const int err = errno;
    if (err == ENOENT && ::lstat(path.c_str(), &st) == 0 && S_ISLNK(st.st_mode))
      return Status::NotFound(path + ": dangling symlink (its target does not exist)");
    return ErrnoStatus(path, err);
  }
  Status s;
  if (::fstat(fd, &st) != 0)
    s = ErrnoStatus(path, errno);
  else if (S_ISDIR(st.st_mode))
    s = Status::IoError(ErrnoMessage(path, EISDIR));
  else if (!S_ISREG(st.st_mode))
    s = Status::IoError(path + ": not a regular file (" + KindOf(st.st_mode) + ")");
  else
    s = ReadSized(fd, path, size_t(st.st_size), out);
  ::close(fd);
  return s;
}

}  // namespace

Status ReadFile(const std::string& path, std::vector<uint8_t>* out) { return ReadWhole(path, out); }
Status ReadFile(const std::string& path, std::string* out) { return ReadWhole(path, out); }

int WriteFully(Env* env, int fd, const void* data, size_t size) {
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    errno = 0;
    const ssize_t r = env->Write(fd, p, size);
    if (r < 0) {
      if (errno == EINTR) continue;
      return errno ? errno : EIO;
    }
    if (r == 0) return EIO;
    p += r;
    size -= size_t(r);
  }
  return 0;
}

namespace {

// errno after a failed Env call, which a test double may not have set.
int LastError() { return errno ? errno : EIO; }

}  // namespace

Status SyncFilesystemOf(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  const int err = fd < 0 || ::syncfs(fd) != 0 ? errno : 0;
  if (fd >= 0) ::close(fd);
  if (err) return Status::IoError(dir + ": cannot sync to storage: " + std::strerror(err));
  return Status::Ok();
}

Status SyncDir(Env* env, const std::string& dir) {
  if (!env) env = Env::Default();
  errno = 0;
  const int fd = env->Open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
  if (fd < 0) return Status::IoError(ErrnoMessage(dir, LastError()));
  errno = 0;
  const int r = env->SyncDir(fd);
  const int err = r != 0 ? LastError() : 0;
  env->Close(fd);
  if (r != 0) return Status::IoError(ErrnoMessage(dir, err));
  return Status::Ok();
}

AtomicFile::AtomicFile(Env* env, std::string path, std::string tmp_path)
    : env_(env ? env : Env::Default()),
      path_(std::move(path)),
      tmp_(tmp_path.empty() ? path_ + ".tmp" : std::move(tmp_path)) {}

AtomicFile::~AtomicFile() { Abandon(); }

void AtomicFile::Abandon() {
  if (fd_ < 0) return;
  env_->Close(fd_);
  fd_ = -1;
  env_->Unlink(tmp_);
}

Status AtomicFile::Open() {
  Abandon();
  errno = 0;
  // O_NOFOLLOW: a link planted at the temporary name must not get its target truncated.
  fd_ = env_->Open(tmp_, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (fd_ < 0) return Status::IoError(ErrnoMessage(tmp_, LastError()));
  return Status::Ok();
}

Status AtomicFile::Append(const void* data, size_t size) {
  if (fd_ < 0) return Status::Internal(tmp_ + ": not open");
  if (const int err = WriteFully(env_, fd_, data, size)) {
    Abandon();
    return Status::IoError(ErrnoMessage(tmp_, err));
  }
  return Status::Ok();
}

Status AtomicFile::Commit(Durability durability) {
  if (fd_ < 0) return Status::Internal(tmp_ + ": not open");
  errno = 0;
  if (durability != Durability::kNone && env_->Sync(fd_) != 0) {
    const int err = LastError();
    Abandon();
    return Status::IoError(ErrnoMessage(tmp_, err));
  }
  const int fd = fd_;
  fd_ = -1;
  errno = 0;
  // close() can report a deferred write error (NFS, a full quota): the data is not all there.
  if (env_->Close(fd) != 0) {
    const int err = LastError();
    env_->Unlink(tmp_);
    return Status::IoError(ErrnoMessage(tmp_, err));
  }
  errno = 0;
  if (env_->Rename(tmp_, path_) != 0) {
    const int err = LastError();
    env_->Unlink(tmp_);
    return Status::IoError(ErrnoMessage(path_, err));
  }
  if (durability == Durability::kFileAndDir) return SyncDir(env_, DirName(path_));
  return Status::Ok();
}

Status WriteFileAtomically(Env* env, const std::string& path, std::string_view data,
                           Durability durability) {
  AtomicFile file(env, path);
  FLOWFEED_RETURN_IF_ERROR(file.Open());
  FLOWFEED_RETURN_IF_ERROR(file.Append(data.data(), data.size()));
  return file.Commit(durability);
}

}  // namespace flowfeed
