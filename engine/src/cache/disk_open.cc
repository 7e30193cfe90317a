// cache/disk_open.cc: opening the disk store -- the folder, its lock, the meta file's verdict
// (meta.h), then either recovery of the committed entries (cutting off a torn tail) or a fresh
// start -- and finally the writer thread.
//
// Threads: the thread in SampleCache::Open, before the cache is returned: nothing else sees the
// table or the files yet, so Recover() writes entries without claims.
#include "cache/cache_impl.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <string>
#include <system_error>
#include <vector>

#include "cache/meta.h"

namespace flowfeed::cache {
namespace {

Status MakeFolder(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) == 0) {
    if (!S_ISDIR(st.st_mode))
      return Status::InvalidArgument("cache path " + path + " exists and is not a folder");
    return Status::Ok();
  }
  std::error_code ec;
  std::filesystem::create_directories(path, ec);
  if (ec) return Status::IoError("cannot create the cache folder " + path + ": " + ec.message());
  if (::stat(path.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
    return Status::IoError("cannot create the cache folder " + path);
  return Status::Ok();
}

// A cache file must be the file itself: through a symlink, truncating or appending to the cache
// would write into whatever the link points at. Refused up front with a message naming it; the
// opens below add O_NOFOLLOW, so a link made in between fails them too.
Status RefuseSymlink(const std::string& path) {
  struct stat st;
  if (::lstat(path.c_str(), &st) == 0 && S_ISLNK(st.st_mode))
    return Status::InvalidArgument(
        "cache file " + path +
        " is a symbolic link: refused, since writing the cache through it would overwrite the "
        "file it points to; remove it (the cache folder itself may be a link)");
  return Status::Ok();
}

}  // namespace

Status CacheImpl::WriteMeta() {
  // Replaced whole, never edited: a crash leaves the old fingerprint or the new one.
  return WriteFileAtomically(ops_, File(kMetaName), MetaText(fingerprint_),
                             Durability::kFileAndDir);
}

// Empties the store and records the current fingerprint. The old files go first, so a crash
// in between never leaves a new meta file next to old records; the new files' headers are
// durable before the meta file names them.
Status CacheImpl::StartFresh() {
  ops_->Unlink(File(kMetaName));
  for (int fd : {data_fd_, index_fd_})
    if (::ftruncate(fd, 0) != 0) return Status::IoError(ErrnoText(errno));
  const FileHeader data_head = MakeFileHeader(kDataFileMagic, fingerprint_value_);
  const FileHeader index_head = MakeFileHeader(kIndexFileMagic, fingerprint_value_);
  int err = WriteAll(data_fd_, &data_head, sizeof data_head);
  if (!err) err = WriteAll(index_fd_, &index_head, sizeof index_head);
  if (!err) err = SyncFd(data_fd_);
  if (!err) err = SyncFd(index_fd_);
  if (err) return Status::IoError(ErrnoText(err));
  data_end_ = committed_data_end_ = committed_index_end_ = kFileHeaderBytes;
  errno = 0;
  if (ops_->SyncDir(dir_fd_) != 0) return Status::IoError(ErrnoText(errno));
  return WriteMeta();
}

namespace {

// Up to kFileHeaderBytes from the start of `fd` ("" for no file: fd < 0; a header cut short is
// as good as none).
std::string ReadHead(int fd) {
  char buf[kFileHeaderBytes];
  size_t got = 0;
  while (fd >= 0 && got < sizeof buf) {
    const ssize_t r = ::pread(fd, buf + got, sizeof buf - got, off_t(got));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    got += size_t(r);
  }
  return std::string(buf, got);
}

}  // namespace

// A meta file copied from another cache (or data or index files copied in beside this one's)
// names a fingerprint its neighbours were not written for; their headers tell.
std::string CacheImpl::FilesMismatch() {
  const int index_fd = ::open(File(kIndexName).c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  std::string why =
      FileHeaderMismatch(kIndexName, ReadHead(index_fd), kIndexFileMagic, fingerprint_value_);
  if (index_fd >= 0) ::close(index_fd);
  const std::string data =
      FileHeaderMismatch(kDataName, ReadHead(read_fd_), kDataFileMagic, fingerprint_value_);
  if (!data.empty()) why += (why.empty() ? "" : "; ") + data;
  if (!why.empty())
    why += ": the cache's files do not belong to its meta file (copied from another cache?)";
  return why;
}

namespace {

// Where the next whole, checksummed segment starts after `from`, or npos: how far a damaged
// stretch of the index goes.
size_t NextSegment(const std::string& index, size_t from, uint64_t fingerprint,
                   std::vector<IndexEntry>* scratch) {
  const char magic[4] = {char(kIndexMagic & 0xFF), char((kIndexMagic >> 8) & 0xFF),
                         char((kIndexMagic >> 16) & 0xFF), char(kIndexMagic >> 24)};
  for (size_t at = index.find(std::string(magic, 4), from); at != std::string::npos;
       at = index.find(std::string(magic, 4), at + 1))
    if (ParseSegment(index, at, fingerprint, scratch) != 0) return at;
  return std::string::npos;
}

// Whether the bytes from `pos` to the end are a segment of its full length that failed its
// checksum (damaged in place), rather than one cut short (torn by an interrupted write).
bool WholeButDamaged(const std::string& index, size_t pos) {
  if (index.size() - pos < kSegmentHead + kSegmentTail) return false;
  uint32_t magic, count;
  std::memcpy(&magic, index.data() + pos, 4);
  std::memcpy(&count, index.data() + pos + 4, 4);
  return magic == kIndexMagic && count <= kMaxSegmentEntries &&
         index.size() - pos == kSegmentHead + size_t(count) * sizeof(IndexEntry) + kSegmentTail;
}

}  // namespace

// Reads the index and keeps every entry of the good segments. A torn tail (a segment cut short
// at the end, by an interrupted run) is cut off. A damaged segment (bit rot, a stray write) is
// passed over: the segments after it are kept, and only the samples it named are recomputed.
void CacheImpl::Recover(bool writable) {
  std::string index;
  if (!ReadFile(File(kIndexName), &index).ok()) index.clear();
  struct stat st;
  const uint64_t data_size = ::fstat(read_fd_, &st) == 0 ? uint64_t(st.st_size) : 0;

  // OpenDisk checked both headers; the segments and records follow them.
  size_t pos = std::min(index.size(), kFileHeaderBytes);
  uint64_t data_end = kFileHeaderBytes;
  std::vector<int64_t> seen;
  std::vector<IndexEntry> entries;
  std::string good(index, 0, pos);  // the header, then the good segments: the repaired index
  uint64_t damaged = 0;      // bytes of damaged segments before the end
  size_t first_damage = 0;   // offset of the first of them
  bool past_data = false;    // the tail is a whole segment naming records the data lacks
  while (pos < index.size()) {
    size_t segment = ParseSegment(index, pos, fingerprint_value_, &entries);
    bool valid = segment != 0;
    uint64_t seg_end = data_end;
    for (size_t k = 0; valid && k < entries.size(); ++k) {
      const IndexEntry& ie = entries[k];
      const uint64_t payload = PayloadBytes(ie.height, ie.width, ie.channels, ie.dtype);
      // A record past the end of the data file: the data was cut or damaged.
      valid = payload != 0 && ie.offset >= kFileHeaderBytes && ie.offset <= data_size &&
              data_size - ie.offset >= sizeof(RecordHeader) + payload;
      if (valid) seg_end = std::max(seg_end, ie.offset + sizeof(RecordHeader) + payload);
    }
    if (!valid) {
      std::vector<IndexEntry> scratch;
      const size_t next = NextSegment(index, pos + 1, fingerprint_value_, &scratch);
      past_data = segment != 0;
      if (next == std::string::npos) break;  // the tail: torn, or damaged at the very end
      if (damaged == 0) first_damage = pos;
      damaged += next - pos;
      pos = next;
      continue;
    }
    for (const IndexEntry& ie : entries) {
      if (ie.index >= uint64_t(n_)) continue;
      Entry& e = table_[size_t(ie.index)];
      e.offset.store(ie.offset, std::memory_order_relaxed);
      e.checksum.store(ie.checksum, std::memory_order_relaxed);
      e.height.store(ie.height, std::memory_order_relaxed);
      e.width.store(ie.width, std::memory_order_relaxed);
      e.channels.store(ie.channels, std::memory_order_relaxed);
      if (StateOf(e.state.load(std::memory_order_relaxed)) != kDisk)
        seen.push_back(int64_t(ie.index));
      e.state.store((ie.dtype ? kFloatBit : 0) | kDisk, std::memory_order_release);
    }
    good.append(index, pos, segment);
    data_end = seg_end;
    pos += segment;
  }

  const uint64_t tail = index.size() - pos;
  const bool tail_damaged = tail > 0 && !past_data && WholeButDamaged(index, pos);
  const uint64_t data_torn = data_size > data_end ? data_size - data_end : 0;
  const std::string where = options_.path + ": ";
  const std::string fate = writable ? "" : " (left in place: the cache is read-only)";
  if (damaged > 0)
    AddMessage(where + "the index is damaged: " + std::to_string(damaged) + " bytes from offset " +
               std::to_string(first_damage) +
               " failed their checksum (corruption, not an interrupted run); the samples they "
               "named are recomputed, the segments before and after them are kept" + fate);
  if (tail > 0 && past_data)
    AddMessage(where + "the index's last " + std::to_string(tail) + " bytes (from offset " +
               std::to_string(pos) + ") name records past the end of the data file (" +
               std::to_string(data_size) + " bytes: cut short or damaged); those samples are "
               "recomputed" + fate);
  else if (tail_damaged)
    AddMessage(where + "the index's last segment (" + std::to_string(tail) +
               " bytes at offset " + std::to_string(pos) +
               ") failed its checksum (corruption, not an interrupted run); the samples it "
               "named are recomputed" + fate);
  else if (tail > 0 || data_torn > 0)
    AddMessage(where + (writable ? "discarded" : "ignored") + " a torn tail (" +
               std::to_string(tail) + " bytes of index, " + std::to_string(data_torn) +
               " bytes of data) left by an interrupted run" + fate);

  if (writable && damaged > 0) {
    // The damaged stretch sits between good segments: the index is rewritten without it
    // (atomically), so later runs neither trip over it again nor append after it.
    const std::string path = File(kIndexName);
    Status s = WriteFileAtomically(ops_, path, good, Durability::kFileAndDir);
    int fd = s.ok() ? ops_->Open(path, O_WRONLY | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0644) : -1;
    if (fd >= 0) {
      ops_->Close(index_fd_);
      index_fd_ = fd;
      pos = good.size();
    } else {
      // The index as it was still opens right next time; this run keeps its store unwritten.
      disk_disabled_.store(true);
      AddMessage("disk cache disabled: " + options_.path + ": cannot repair the index: " +
                 (s.ok() ? ErrnoText(errno) : s.message()));
    }
  } else if (writable && (tail > 0 || data_torn > 0)) {
    (void)!::ftruncate(index_fd_, off_t(pos));
  }
  if (writable && data_torn > 0) (void)!::ftruncate(data_fd_, off_t(data_end));
  committed_index_end_ = pos;
  committed_data_end_ = data_end_ = data_end;

  int64_t bytes = 0;
  for (int64_t i : seen) {
    const Entry& e = table_[size_t(i)];
    const uint32_t w = e.state.load(std::memory_order_relaxed);
    bytes += int64_t(sizeof(RecordHeader) +
                     PayloadBytes(e.height.load(), e.width.load(), e.channels.load(),
                                  (w & kFloatBit) ? 1 : 0));
  }
  reused_ = int64_t(seen.size());
  disk_entries_.store(reused_);
  disk_bytes_.store(bytes);
  AddMessage("reusing " + std::to_string(reused_) + " committed samples from " + options_.path);
}

Status CacheImpl::OpenDisk() {
  dir_ = options_.path;
  while (dir_.size() > 1 && dir_.back() == '/') dir_.pop_back();
  FLOWFEED_RETURN_IF_ERROR(MakeFolder(dir_));
  dir_fd_ = ::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd_ < 0)
    return Status::IoError("cannot open the cache folder " + dir_ + ": " + ErrnoText(errno));
  // One run at a time per folder: a second one works without the disk store.
  if (::flock(dir_fd_, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    ::close(dir_fd_);
    dir_fd_ = -1;
    disk_disabled_.store(true);
    AddMessage("disk cache disabled: " + options_.path + ": " +
               (err == EWOULDBLOCK ? std::string("in use by another run") : ErrnoText(err)));
    return Status::Ok();
  }

  for (const char* name : {kMetaName, kDataName, kIndexName})
    FLOWFEED_RETURN_IF_ERROR(RefuseSymlink(File(name)));
  FLOWFEED_RETURN_IF_ERROR(RefuseSymlink(File(kMetaName) + std::string(".tmp")));

  // The stored fingerprint decides between reuse and a rebuild; the files' headers must then
  // name it too (below, once they are open).
  bool reuse = false;
  std::string text;
  const Status read = ReadFile(File(kMetaName), &text);
  if (read.ok()) {
    const std::string why = MetaMismatch(text, fingerprint_);
    if (why.empty())
      reuse = true;
    else
      AddMessage("rebuilding " + options_.path + ": " + why);
  } else if (read.code() != StatusCode::kNotFound) {
    AddMessage("rebuilding " + options_.path + ": cannot read " + read.message());
  }

  const std::string data_path = File(kDataName), index_path = File(kIndexName);
  constexpr int kFlags = O_CLOEXEC | O_NOFOLLOW;
  auto open_append = [&](const std::string& path, int* fd) {
    errno = 0;
    *fd = ops_->Open(path, O_WRONLY | O_APPEND | O_CREAT | kFlags, 0644);
    return *fd < 0 ? (errno ? errno : EIO) : 0;
  };
  std::string unwritable = data_path;
  int write_error = open_append(data_path, &data_fd_);
  if (write_error == 0) {
    unwritable = index_path;
    write_error = open_append(index_path, &index_fd_);
  }
  // A folder or files others made read-only (a shared, prepared cache; a read-only mount) can
  // still serve hits; any other error is a real failure.
  const bool read_only = write_error == EACCES || write_error == EROFS || write_error == EPERM;
  if (write_error != 0 && !read_only)
    return Status::IoError("cannot open " + unwritable + ": " + ErrnoText(write_error));
  read_fd_ = ::open(data_path.c_str(), O_RDONLY | kFlags);
  if (read_fd_ < 0 && !(read_only && errno == ENOENT))
    return Status::IoError("cannot open " + data_path + ": " + ErrnoText(errno));
  if (reuse) {
    const std::string why = FilesMismatch();
    if (!why.empty()) {
      reuse = false;
      AddMessage("rebuilding " + options_.path + ": " + why);
    }
  }

  if (read_only) {
    for (int* fd : {&data_fd_, &index_fd_}) {
      if (*fd >= 0) ::close(*fd);
      *fd = -1;
    }
    disk_disabled_.store(true);  // nothing is queued for writing
    const std::string why = unwritable + ": " + ErrnoText(write_error);
    if (!reuse || read_fd_ < 0) {
      AddMessage("disk cache disabled: " + options_.path + " cannot be written (" + why +
                 ") and holds no cache for this run");
      return Status::Ok();
    }
    Recover(/*writable=*/false);
    AddMessage("disk cache disabled for writing: " + options_.path + " is read-only (" + why +
               "); its " + std::to_string(reused_) +
               " committed samples are served, nothing new is written");
    return Status::Ok();
  }

  if (reuse) {
    Recover(/*writable=*/true);
  } else {
    Status s = StartFresh();
    if (!s.ok()) {
      // A folder we cannot write into (full disk): run on without the disk store.
      disk_disabled_.store(true);
      AddMessage("disk cache disabled: " + options_.path + ": " + s.message());
      return Status::Ok();
    }
  }
  writer_ = std::thread([this] { WriterLoop(); });
  disk_ = true;
  return Status::Ok();
}

}  // namespace flowfeed::cache
