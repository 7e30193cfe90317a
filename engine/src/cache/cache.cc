// cache/cache.cc: the first-epoch sample cache (see flowfeed/cache.h).
//
// Layout of the disk store (all integers in the machine's native byte order, little-endian on
// every platform flowfeed runs on; a cache folder is not meant to move between machines):
//
//   flowfeed-cache.data   records, appended by the writer thread:
//                           RecordHeader (48 bytes) followed by the pixels (payload_bytes).
//                           checksum = XXH3-64 of the pixels, seeded with XXH3-64 of the header's
//                           first 40 bytes (every field but the checksum itself).
//   flowfeed-cache.index  segments, appended after the records they name were fdatasync'ed:
//                           u32 magic "FFCI", u32 count, IndexEntry[count] (40 bytes each),
//                           u64 XXH3-64 of everything before it in the segment.
//   flowfeed-cache.meta   {"format":1,"fingerprint":"<hex>","parts":[[name,desc],...]}, replaced
//                           atomically (tmp, fsync, rename, fsync of the folder).
//
// The per-sample table is lock-free for Lookup()/Insert(): each entry has one atomic state word
// (state, dtype bit, generation). A disk entry's location lives in atomics validated
// seqlock-style by re-reading the state word, so a reader never acts on a half-updated location;
// the record's own header and checksum are verified on every read as well.
#include "flowfeed/cache.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <deque>
#include <filesystem>
#include <limits>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "cache/arena.h"
#include "cache/format.h"
#include "cache/meta.h"
#include "cache/table.h"
#include "flowfeed/util/file.h"

namespace flowfeed {
namespace cache {
namespace {

std::string ErrnoText(int err) { return std::strerror(err ? err : EIO); }

struct PendingView {
  Image image;
  uint64_t seq;
};

struct Pending {
  int64_t index;
  Image image;   // a shared handle: no pixel copy
  uint64_t seq;  // 1, 2, ... in queue order
  int64_t bytes; // record bytes (header + pixels), counted against write_queue_bytes
};

class CacheImpl final : public SampleCache {
 public:
  CacheImpl(const CacheOptions& options, int64_t num_samples, const CacheFingerprint& fingerprint,
            Env* ops)
      : options_(options),
        n_(num_samples),
        fingerprint_(fingerprint),
        ops_(ops ? ops : Env::Default()),
        table_(new Entry[size_t(std::max<int64_t>(num_samples, 0))]) {
    if (options_.mode == CacheMode::kMemory || options_.mode == CacheMode::kAuto)
      budget_ = options_.budget_bytes > 0 ? options_.budget_bytes : PhysicalMemoryBytes() / 4;
  }

  ~CacheImpl() override {
    if (writer_.joinable()) {
      Flush();
      {
        std::lock_guard<std::mutex> lk(mu_);
        stop_ = true;
      }
      writer_cv_.notify_all();
      writer_.join();
    }
    for (int fd : {data_fd_, read_fd_, index_fd_, dir_fd_})
      if (fd >= 0) ::close(fd);
  }

  // Sets up the disk store under options_.path. Errors only for an unusable path.
  Status OpenDisk();

  bool Lookup(int64_t index, Image* image, int64_t* bytes) override {
    if (index < 0 || index >= n_) return false;
    Entry& e = table_[size_t(index)];
    uint32_t w = e.state.load(std::memory_order_acquire);
    for (;;) {
      switch (StateOf(w)) {
        case kMemory:
          *image = e.image;
          if (bytes) *bytes = int64_t(e.image.size_bytes());
          return true;
        case kDisk:
          return ReadRecord(e, index, w, image, bytes);
        case kClaimed: {
          if (disk_ && LookupPending(index, image, bytes)) return true;
          // The writer publishes a written record (kDisk) before it forgets the queued handle:
          // if the handle is gone, the state has moved on; look again rather than miss a held
          // sample. A claim that is still a claim is an insert in progress: a miss.
          const uint32_t now = e.state.load(std::memory_order_acquire);
          if (now == w) return false;
          w = now;
          continue;
        }
        default:
          return false;
      }
    }
  }

  void Insert(int64_t index, const Image& image) override {
    if (options_.mode == CacheMode::kOff || index < 0 || index >= n_ || image.empty()) return;
    Entry& e = table_[size_t(index)];
    uint32_t w = e.state.load(std::memory_order_acquire);
    if (StateOf(w) != kEmpty) return;  // held (or being inserted): ignored
    const uint32_t claimed = (w & kGenMask) | kClaimed;
    if (!e.state.compare_exchange_strong(w, claimed, std::memory_order_acq_rel)) return;

    // The memory store copies the pixels into its arena: the caller keeps its buffer (so the
    // pipeline allocates nothing per sample), and the budget charges exactly what is held.
    const size_t pixels = image.size_bytes();
    const int64_t size = int64_t(Arena::Charge(pixels));
    if (budget_ > 0 && ReserveMemory(size)) {
      size_t charged = 0;
      std::shared_ptr<uint8_t[]> storage = arena_.Allocate(pixels, &charged);
      if (storage) {
        std::memcpy(storage.get(), image.data(), pixels);
        e.image = Image::Wrap(std::move(storage), charged, image.height(), image.width(),
                              image.channels(), image.dtype());
        memory_entries_.fetch_add(1, std::memory_order_relaxed);
        e.state.store((claimed & kGenMask) | kMemory, std::memory_order_release);
        return;
      }
      memory_bytes_.fetch_sub(size, std::memory_order_relaxed);  // the OS had no memory
    }
    if (disk_ &&
        (options_.mode == CacheMode::kDisk || options_.mode == CacheMode::kAuto) &&
        Enqueue(index, image))
      return;  // the writer publishes the entry once the record is written
    dropped_.fetch_add(1, std::memory_order_relaxed);
    e.state.store(EmptyAfter(claimed), std::memory_order_release);
  }

  void Flush() override {
    if (!writer_.joinable()) return;
    std::unique_lock<std::mutex> lk(mu_);
    const uint64_t target = pushed_seq_;
    if (committed_seq_ >= target || writer_exited_) return;
    // Also after the disk store was disabled: returns once the writer has dealt with (dropped)
    // everything queued before the call, so stats() afterwards are settled.
    flush_target_ = std::max(flush_target_, target);
    writer_cv_.notify_all();
    flush_cv_.wait(lk, [&] { return committed_seq_ >= target || writer_exited_; });
  }

  void EvictFromPageCache() override {
    if (data_fd_ >= 0) ::fdatasync(data_fd_);
    if (index_fd_ >= 0) ::fdatasync(index_fd_);
    if (read_fd_ >= 0) ::posix_fadvise(read_fd_, 0, 0, POSIX_FADV_DONTNEED);
    if (index_fd_ >= 0) ::posix_fadvise(index_fd_, 0, 0, POSIX_FADV_DONTNEED);
  }

  CacheStats stats() const override {
    CacheStats s;
    s.mode = options_.mode;
    s.budget_bytes = budget_;
    s.memory_entries = memory_entries_.load();
    s.memory_bytes = memory_bytes_.load();
    s.disk_entries = disk_entries_.load();
    s.disk_bytes = disk_bytes_.load();
    s.reused_entries = reused_;
    s.overhead_bytes = int64_t(sizeof(Entry)) * n_;
    s.dropped = dropped_.load();
    s.corrupt = corrupt_.load();
    s.disk_disabled = disk_disabled_.load();
    std::lock_guard<std::mutex> lk(msg_mu_);
    s.messages = messages_;
    return s;
  }

  const CacheFingerprint& fingerprint() const override { return fingerprint_; }

 private:
  void AddMessage(std::string m) {
    std::lock_guard<std::mutex> lk(msg_mu_);
    messages_.push_back(std::move(m));
  }

  bool ReserveMemory(int64_t size) {
    int64_t cur = memory_bytes_.load(std::memory_order_relaxed);
    do {
      if (size > budget_ - cur) return false;
    } while (!memory_bytes_.compare_exchange_weak(cur, cur + size, std::memory_order_relaxed));
    return true;
  }

  bool Enqueue(int64_t index, const Image& source) {
    const int64_t bytes = int64_t(sizeof(RecordHeader) + source.size_bytes());
    try {
      {
        // Cheap early refusal before the copy; checked again under the lock below.
        std::lock_guard<std::mutex> lk(mu_);
        if (disk_disabled_.load() || stop_ || writer_exited_) return false;
        if (bytes > options_.write_queue_bytes - queued_bytes_) return false;
      }
      // A copy, so the caller keeps its buffer; freed once written, and the heap reuses it.
      const Image image = source.Clone();
      std::lock_guard<std::mutex> lk(mu_);
      if (disk_disabled_.load() || stop_ || writer_exited_) return false;
      if (bytes > options_.write_queue_bytes - queued_bytes_) return false;  // full: drop
      const uint64_t seq = pushed_seq_ + 1;
      pending_.insert_or_assign(index, PendingView{image, seq});  // all or nothing
      try {
        queue_.push_back(Pending{index, image, seq, bytes});
      } catch (...) {
        pending_.erase(index);
        throw;
      }
      pushed_seq_ = seq;
      queued_bytes_ += bytes;
    } catch (...) {
      return false;
    }
    writer_cv_.notify_one();
    return true;
  }

  // A sample queued for the writer is served from its queued handle (a shared view, like a
  // memory hit), so it hits before its record is written.
  bool LookupPending(int64_t index, Image* image, int64_t* bytes) {
    std::lock_guard<std::mutex> lk(mu_);
    auto it = pending_.find(index);
    if (it == pending_.end()) return false;
    *image = it->second.image;
    if (bytes) *bytes = int64_t(image->size_bytes());
    return true;
  }

  // Forgets the queued handle of `p` (mu_ held).
  void ErasePending(const Pending& p) {
    auto it = pending_.find(p.index);
    if (it != pending_.end() && it->second.seq == p.seq) pending_.erase(it);
  }

  // Reads a disk entry's record into *image; verifies header and checksum.
  bool ReadRecord(Entry& e, int64_t index, uint32_t w, Image* image, int64_t* bytes) {
    // Seqlock-style: acquire loads of the location, then the state word again. A location
    // stored for a later generation (release) makes that generation's state visible here.
    const uint64_t offset = e.offset.load(std::memory_order_acquire);
    const uint64_t checksum = e.checksum.load(std::memory_order_acquire);
    const uint32_t h = e.height.load(std::memory_order_acquire);
    const uint32_t wd = e.width.load(std::memory_order_acquire);
    const uint32_t c = e.channels.load(std::memory_order_acquire);
    if (e.state.load(std::memory_order_relaxed) != w) return false;  // changed under us
    const uint32_t dtype = (w & kFloatBit) ? 1 : 0;
    const uint64_t payload = PayloadBytes(h, wd, c, dtype);
    if (payload == 0) return false;

    image->Reshape(int(h), int(wd), int(c), dtype ? DType::kFloat32 : DType::kUInt8);
    RecordHeader hdr;
    iovec iov[2] = {{&hdr, sizeof hdr}, {image->data(), size_t(payload)}};
    const size_t want = sizeof hdr + size_t(payload);
    size_t got = 0;
    bool io_ok = true;
    while (got < want) {
      // Skip what was read already.
      iovec part[2];
      int n = 0;
      size_t skip = got;
      for (const iovec& v : iov) {
        if (skip >= v.iov_len) {
          skip -= v.iov_len;
          continue;
        }
        part[n].iov_base = static_cast<char*>(v.iov_base) + skip;
        part[n].iov_len = v.iov_len - skip;
        skip = 0;
        ++n;
      }
      ssize_t r = ::preadv(read_fd_, part, n, off_t(offset + got));
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) {
        io_ok = false;
        break;
      }
      got += size_t(r);
    }
    const bool ok = io_ok && hdr.magic == kRecordMagic && hdr.version == kRecordVersion &&
                    hdr.index == uint64_t(index) && hdr.height == h && hdr.width == wd &&
                    hdr.channels == c && hdr.dtype == dtype && hdr.payload_bytes == payload &&
                    hdr.checksum == checksum &&
                    RecordChecksum(hdr, image->data(), size_t(payload)) == checksum;
    if (ok) {
      if (bytes) *bytes = int64_t(payload);
      return true;
    }
    image->Clear();
    uint32_t expect = w;
    if (e.state.load(std::memory_order_acquire) != w) return false;  // replaced: plain miss
    if (e.state.compare_exchange_strong(expect, EmptyAfter(w), std::memory_order_acq_rel)) {
      disk_entries_.fetch_sub(1, std::memory_order_relaxed);
      disk_bytes_.fetch_sub(int64_t(sizeof(RecordHeader) + payload), std::memory_order_relaxed);
      if (corrupt_.fetch_add(1, std::memory_order_relaxed) == 0)
        AddMessage(options_.path + ": the record of sample " + std::to_string(index) +
                   " failed its checksum; corrupt records are recomputed");
    }
    return false;
  }

  // Writes all of [data, data+size) with ops_->Write; 0 or an errno.
  int WriteAll(int fd, const void* data, size_t size) { return WriteFully(ops_, fd, data, size); }

  int SyncFd(int fd) {
    errno = 0;
    if (ops_->Sync(fd) == 0) return 0;
    return errno ? errno : EIO;
  }

  // Puts a disk entry that is not (any longer) usable back to empty.
  void ForgetDisk(int64_t index, uint64_t record_bytes) {
    Entry& e = table_[size_t(index)];
    uint32_t w = e.state.load(std::memory_order_acquire);
    if (StateOf(w) != kDisk) return;
    if (e.state.compare_exchange_strong(w, EmptyAfter(w), std::memory_order_acq_rel)) {
      disk_entries_.fetch_sub(1, std::memory_order_relaxed);
      disk_bytes_.fetch_sub(int64_t(record_bytes), std::memory_order_relaxed);
    }
  }

  // An entry the writer owned (kClaimed) that will not be written.
  void DropClaimed(int64_t index) {
    Entry& e = table_[size_t(index)];
    const uint32_t w = e.state.load(std::memory_order_relaxed);
    e.state.store(EmptyAfter(w), std::memory_order_release);
    dropped_.fetch_add(1, std::memory_order_relaxed);
  }

  // Turns the disk store off after a failed write or sync (writer thread only). Records written
  // since the last commit are cut off; committed ones stay readable.
  void Disable(const std::string& why) {
    std::deque<Pending> rest;
    {
      std::lock_guard<std::mutex> lk(mu_);
      if (disk_disabled_.load()) return;
      disk_disabled_.store(true);
      rest.swap(queue_);
      for (const Pending& p : rest) {
        queued_bytes_ -= p.bytes;
        ErasePending(p);
      }
      if (!rest.empty()) written_seq_ = std::max(written_seq_, rest.back().seq);
    }
    flush_cv_.notify_all();
    AddMessage("disk cache disabled: " + options_.path + ": " + why);
    for (const Pending& p : rest) DropClaimed(p.index);
    for (const IndexEntry& u : uncommitted_) {
      ForgetDisk(int64_t(u.index),
                 sizeof(RecordHeader) + PayloadBytes(u.height, u.width, u.channels, u.dtype));
      dropped_.fetch_add(1, std::memory_order_relaxed);
    }
    uncommitted_.clear();
    if (data_fd_ >= 0) (void)!::ftruncate(data_fd_, off_t(committed_data_end_));
    if (index_fd_ >= 0) (void)!::ftruncate(index_fd_, off_t(committed_index_end_));
    data_end_ = committed_data_end_;
  }

  // Writes one record and publishes its entry (writer thread only).
  void WriteRecord(Pending& p) {
    const Image& img = p.image;
    const RecordHeader h = MakeRecordHeader(p.index, img);
    int err = WriteAll(data_fd_, &h, sizeof h);
    if (!err) err = WriteAll(data_fd_, img.data(), img.size_bytes());
    if (err) {
      DropClaimed(p.index);
      Disable(ErrnoText(err));
      return;
    }
    const uint64_t offset = data_end_;
    data_end_ += sizeof h + h.payload_bytes;
    Entry& e = table_[size_t(p.index)];
    const uint32_t w = e.state.load(std::memory_order_relaxed);  // kClaimed, ours
    e.offset.store(offset, std::memory_order_release);
    e.checksum.store(h.checksum, std::memory_order_release);
    e.height.store(h.height, std::memory_order_release);
    e.width.store(h.width, std::memory_order_release);
    e.channels.store(h.channels, std::memory_order_release);
    if (uncommitted_.empty()) {
      const double seconds = std::min(1e7, std::max(0.0, options_.commit_seconds));
      commit_deadline_ = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                            std::chrono::duration<double>(seconds));
    }
    uncommitted_.push_back(IndexEntry{h.index, offset, h.height, h.width, h.channels, h.dtype,
                                      h.checksum});
    disk_entries_.fetch_add(1, std::memory_order_relaxed);
    disk_bytes_.fetch_add(int64_t(sizeof h + h.payload_bytes), std::memory_order_relaxed);
    e.state.store((w & kGenMask) | (h.dtype ? kFloatBit : 0) | kDisk, std::memory_order_release);
  }

  // Makes the records written so far durable, then appends their index segment(s).
  void Commit() {
    if (disk_disabled_.load() || uncommitted_.empty()) return;
    if (int err = SyncFd(data_fd_)) return Disable(ErrnoText(err));
    uint64_t index_end = committed_index_end_;
    std::vector<uint8_t> seg;
    for (size_t first = 0; first < uncommitted_.size(); first += kMaxSegmentEntries) {
      const size_t count = std::min(kMaxSegmentEntries, uncommitted_.size() - first);
      EncodeSegment(uncommitted_.data() + first, count, &seg);
      if (int err = WriteAll(index_fd_, seg.data(), seg.size())) return Disable(ErrnoText(err));
      index_end += seg.size();
    }
    if (int err = SyncFd(index_fd_)) return Disable(ErrnoText(err));
    committed_index_end_ = index_end;
    committed_data_end_ = data_end_;
    uncommitted_.clear();
  }

  void WriterLoop() {
    try {
      RunWriter();
    } catch (const std::exception& ex) {
      Disable(std::string("internal error: ") + ex.what());
    } catch (...) {
      Disable("internal error");
    }
    {
      std::lock_guard<std::mutex> lk(mu_);
      writer_exited_ = true;
      // Anything still queued can no longer be written.
      std::deque<Pending> rest;
      rest.swap(queue_);
      for (const Pending& p : rest) {
        queued_bytes_ -= p.bytes;
        ErasePending(p);
        DropClaimed(p.index);
      }
    }
    flush_cv_.notify_all();
  }

  void RunWriter() {
    std::unique_lock<std::mutex> lk(mu_);
    for (;;) {
      // Wait for records, a flush request, a due commit or the stop.
      while (queue_.empty() && !stop_ && flush_target_ <= committed_seq_ &&
             !(!uncommitted_.empty() && Clock::now() >= commit_deadline_)) {
        if (uncommitted_.empty())
          writer_cv_.wait(lk);
        else
          writer_cv_.wait_until(lk, commit_deadline_);
      }
      std::deque<Pending> batch;
      batch.swap(queue_);
      lk.unlock();
      for (Pending& p : batch) {
        // A record not written (disk disabled, failed write) drops its entry first, then its
        // queued handle; a written one is published as a disk entry first: either way a
        // Lookup never misses a sample that is held.
        if (disk_disabled_.load())
          DropClaimed(p.index);
        else
          WriteRecord(p);
        p.image = Image();  // let go of the pixels at once
        std::lock_guard<std::mutex> g(mu_);
        ErasePending(p);
        queued_bytes_ -= p.bytes;
        written_seq_ = std::max(written_seq_, p.seq);
      }
      batch.clear();
      lk.lock();
      const bool drained = queue_.empty() && (flush_target_ > committed_seq_ || stop_);
      const bool due = !uncommitted_.empty() && Clock::now() >= commit_deadline_;
      if (drained || due) {
        const uint64_t upto = written_seq_;
        lk.unlock();
        Commit();
        lk.lock();
        committed_seq_ = std::max(committed_seq_, upto);
        flush_cv_.notify_all();
      }
      if (stop_ && queue_.empty()) return;
    }
  }

  // Open helpers.
  Status StartFresh();
  Status WriteMeta();
  void Recover();
  std::string File(const char* name) const { return dir_ + "/" + name; }

  using Clock = std::chrono::steady_clock;

  const CacheOptions options_;
  const int64_t n_;
  const CacheFingerprint fingerprint_;
  Env* const ops_;  // every write, sync, rename and unlink of the disk store
  std::unique_ptr<Entry[]> table_;
  int64_t budget_ = 0;  // memory budget; 0: nothing kept in memory
  Arena arena_;

  std::atomic<int64_t> memory_entries_{0}, memory_bytes_{0}, disk_entries_{0}, disk_bytes_{0};
  std::atomic<int64_t> dropped_{0}, corrupt_{0};
  std::atomic<bool> disk_disabled_{false};
  int64_t reused_ = 0;
  mutable std::mutex msg_mu_;
  std::vector<std::string> messages_;

  // Disk store.
  std::string dir_;
  int dir_fd_ = -1, data_fd_ = -1, read_fd_ = -1, index_fd_ = -1;
  // Writer-thread state (also set up by Open before the writer starts).
  uint64_t data_end_ = 0, committed_data_end_ = 0, committed_index_end_ = 0;
  std::vector<IndexEntry> uncommitted_;
  Clock::time_point commit_deadline_;
  // Queue, guarded by mu_.
  std::mutex mu_;
  std::condition_variable writer_cv_, flush_cv_;
  std::deque<Pending> queue_;
  std::unordered_map<int64_t, PendingView> pending_;  // queued or being written, by index
  int64_t queued_bytes_ = 0;
  uint64_t pushed_seq_ = 0, written_seq_ = 0, committed_seq_ = 0, flush_target_ = 0;
  bool stop_ = false, writer_exited_ = false;
  bool disk_ = false;  // the writer runs (set before Open returns, constant after)
  std::thread writer_;
};

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

Status CacheImpl::WriteMeta() {
  // Replaced whole, never edited: a crash leaves the old fingerprint or the new one.
  return WriteFileAtomically(ops_, File(kMetaName), MetaText(fingerprint_),
                             Durability::kFileAndDir);
}

// Empties the store and records the current fingerprint. The old files go first, so a crash
// in between never leaves a new meta file next to old records.
Status CacheImpl::StartFresh() {
  ops_->Unlink(File(kMetaName));
  for (int fd : {data_fd_, index_fd_})
    if (::ftruncate(fd, 0) != 0) return Status::IoError(ErrnoText(errno));
  errno = 0;
  if (ops_->SyncDir(dir_fd_) != 0) return Status::IoError(ErrnoText(errno));
  return WriteMeta();
}

// Reads the index, keeps every entry of the good segments and cuts off a torn tail.
void CacheImpl::Recover() {
  std::string index;
  if (!ReadFile(File(kIndexName), &index).ok()) index.clear();
  struct stat st;
  const uint64_t data_size = ::fstat(read_fd_, &st) == 0 ? uint64_t(st.st_size) : 0;

  size_t pos = 0;
  uint64_t data_end = 0;
  std::vector<int64_t> seen;
  std::vector<IndexEntry> entries;
  for (;;) {
    const size_t segment = ParseSegment(index, pos, &entries);
    if (segment == 0) break;
    bool valid = true;
    uint64_t seg_end = data_end;
    for (const IndexEntry& ie : entries) {
      const uint64_t payload = PayloadBytes(ie.height, ie.width, ie.channels, ie.dtype);
      if (payload == 0 || ie.offset > data_size ||
          data_size - ie.offset < sizeof(RecordHeader) + payload) {
        valid = false;
        break;
      }
      seg_end = std::max(seg_end, ie.offset + sizeof(RecordHeader) + payload);
    }
    if (!valid) break;
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
    data_end = seg_end;
    pos += segment;
  }

  const uint64_t index_torn = index.size() - pos;
  const uint64_t data_torn = data_size > data_end ? data_size - data_end : 0;
  if (index_torn > 0 || data_torn > 0) {
    (void)!::ftruncate(index_fd_, off_t(pos));
    (void)!::ftruncate(data_fd_, off_t(data_end));
    AddMessage(options_.path + ": discarded a torn tail (" + std::to_string(index_torn) +
               " bytes of index, " + std::to_string(data_torn) +
               " bytes of data) left by an interrupted run");
  }
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

  // The stored fingerprint decides between reuse and a rebuild.
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
  data_fd_ = ops_->Open(data_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (data_fd_ < 0) return Status::IoError("cannot open " + data_path + ": " + ErrnoText(errno));
  index_fd_ = ops_->Open(index_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (index_fd_ < 0) return Status::IoError("cannot open " + index_path + ": " + ErrnoText(errno));
  read_fd_ = ::open(data_path.c_str(), O_RDONLY | O_CLOEXEC);
  if (read_fd_ < 0) return Status::IoError("cannot open " + data_path + ": " + ErrnoText(errno));

  if (reuse) {
    Recover();
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

}  // namespace
}  // namespace cache

using cache::CacheImpl;

Result<std::unique_ptr<SampleCache>> SampleCache::Open(const CacheOptions& options,
                                                       int64_t num_samples,
                                                       const CacheFingerprint& fingerprint,
                                                       Env* ops) {
  if (num_samples < 0)
    return Status::InvalidArgument("cache: negative number of samples " +
                                   std::to_string(num_samples));
  if (options.mode == CacheMode::kDisk && options.path.empty())
    return Status::InvalidArgument("cache.path: required when cache.mode is disk");
  auto cache = std::make_unique<CacheImpl>(options, num_samples, fingerprint, ops);
  if (options.mode == CacheMode::kDisk ||
      (options.mode == CacheMode::kAuto && !options.path.empty())) {
    Status s = cache->OpenDisk();
    if (!s.ok()) return s;
  }
  return std::unique_ptr<SampleCache>(std::move(cache));
}

}  // namespace flowfeed
