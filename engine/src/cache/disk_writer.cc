// cache/disk_writer.cc: the disk store's write side -- the queue Insert() fills and the one
// writer thread that appends records, commits them (fdatasync, then an index segment) and, on a
// failed write or sync, disables the disk store for the run.
//
// Threads: Enqueue() runs on the inserting worker and never waits on I/O (a full queue drops
// the sample); everything else here runs on the writer thread, which alone owns the files' ends
// and the uncommitted entries. The queue and the sequence numbers Flush() waits on are under mu_.
#include "cache/cache_impl.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <exception>
#include <string>

namespace flowfeed::cache {

bool CacheImpl::Enqueue(int64_t index, const Image& source) {
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

// Forgets the queued handle of `p` (mu_ held).
void CacheImpl::ErasePending(const Pending& p) {
  auto it = pending_.find(p.index);
  if (it != pending_.end() && it->second.seq == p.seq) pending_.erase(it);
}

void CacheImpl::WriterLoop() {
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

void CacheImpl::RunWriter() {
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

// Writes one record and publishes its entry (writer thread only).
void CacheImpl::WriteRecord(Pending& p) {
  const Image& img = p.image;
  const RecordHeader h = MakeRecordHeader(p.index, img, fingerprint_value_);
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
void CacheImpl::Commit() {
  if (disk_disabled_.load() || uncommitted_.empty()) return;
  if (int err = SyncFd(data_fd_)) return Disable(ErrnoText(err));
  uint64_t index_end = committed_index_end_;
  std::vector<uint8_t> seg;
  for (size_t first = 0; first < uncommitted_.size(); first += kMaxSegmentEntries) {
    const size_t count = std::min(kMaxSegmentEntries, uncommitted_.size() - first);
    EncodeSegment(uncommitted_.data() + first, count, fingerprint_value_, &seg);
    if (int err = WriteAll(index_fd_, seg.data(), seg.size())) return Disable(ErrnoText(err));
    index_end += seg.size();
  }
  if (int err = SyncFd(index_fd_)) return Disable(ErrnoText(err));
  committed_index_end_ = index_end;
  committed_data_end_ = data_end_;
  uncommitted_.clear();
}

// Turns the disk store off after a failed write or sync (writer thread only). Records written
// since the last commit are cut off; committed ones stay readable.
void CacheImpl::Disable(const std::string& why) {
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

// An entry the writer owned (kClaimed) that will not be written.
void CacheImpl::DropClaimed(int64_t index) {
  Entry& e = table_[size_t(index)];
  const uint32_t w = e.state.load(std::memory_order_relaxed);
  e.state.store(EmptyAfter(w), std::memory_order_release);
  dropped_.fetch_add(1, std::memory_order_relaxed);
}

// Puts a disk entry that is not (any longer) usable back to empty.
void CacheImpl::ForgetDisk(int64_t index, uint64_t record_bytes) {
  Entry& e = table_[size_t(index)];
  uint32_t w = e.state.load(std::memory_order_acquire);
  if (StateOf(w) != kDisk) return;
  if (e.state.compare_exchange_strong(w, EmptyAfter(w), std::memory_order_acq_rel)) {
    disk_entries_.fetch_sub(1, std::memory_order_relaxed);
    disk_bytes_.fetch_sub(int64_t(record_bytes), std::memory_order_relaxed);
  }
}

int CacheImpl::SyncFd(int fd) {
  errno = 0;
  if (ops_->Sync(fd) == 0) return 0;
  return errno ? errno : EIO;
}

}  // namespace flowfeed::cache
