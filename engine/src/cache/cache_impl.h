// cache/cache_impl.h (internal): the SampleCache that SampleCache::Open returns -- a lock-free
// per-sample table (table.h) over a memory store (arena.h) and a disk store (format.h, meta.h).
//
// Its methods are defined by role, each file naming the threads that run them:
//   cache_impl.cc   Lookup/Insert/stats (any thread), the memory store, Open and the destructor
//   disk_open.cc    opening the disk store: reuse, repair (torn tail) or rebuild; Open's thread
//   disk_read.cc    serving disk entries and queued records (any thread, under Lookup)
//   disk_writer.cc  the write queue (filled by Insert) and the writer thread that drains it
//
// Locking: the table needs none (see table.h). mu_ guards the write queue and the sequence
// numbers Flush() waits on; msg_mu_ guards messages_; the arena has its own. Each is a leaf:
// none is held while another is taken. The writer-thread state (file ends, uncommitted
// entries) is the writer's alone once it runs; OpenDisk sets it up before starting it.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "cache/arena.h"
#include "cache/format.h"
#include "cache/table.h"
#include "flowfeed/cache.h"
#include "flowfeed/util/clock.h"
#include "flowfeed/util/file.h"

namespace flowfeed::cache {

// strerror(err), EIO's text for 0: the "why" of a disk-store message.
std::string ErrnoText(int err);

struct PendingView {
  Image image;
  uint64_t seq;
};

struct Pending {
  int64_t index;
  Image image;    // a shared handle: no pixel copy
  uint64_t seq;   // 1, 2, ... in queue order
  int64_t bytes;  // record bytes (header + pixels), counted against write_queue_bytes
};

class CacheImpl final : public SampleCache {
 public:
  CacheImpl(const CacheOptions& options, int64_t num_samples, const CacheFingerprint& fingerprint,
            Env* ops);
  ~CacheImpl() override;

  // Sets up the disk store under options_.path. Errors only for an unusable path.
  Status OpenDisk();

  bool Lookup(int64_t index, Image* image, int64_t* bytes) override;
  void Insert(int64_t index, const Image& image) override;
  void Flush() override;
  void EvictFromPageCache() override;
  CacheStats stats() const override;
  const CacheFingerprint& fingerprint() const override { return fingerprint_; }

 private:
  void AddMessage(std::string m);
  // Charges `size` bytes to the memory budget; false (nothing charged) when they do not fit.
  bool ReserveMemory(int64_t size);

  // Disk reads (disk_read.cc), any thread.
  bool LookupPending(int64_t index, Image* image, int64_t* bytes);
  bool ReadRecord(Entry& e, int64_t index, uint32_t w, Image* image, int64_t* bytes);

  // The write queue and the writer thread (disk_writer.cc).
  // Queues a copy of `source` for the writer; false when the queue is full or closed.
  bool Enqueue(int64_t index, const Image& source);
  void ErasePending(const Pending& p);
  void WriterLoop();
  void RunWriter();
  void WriteRecord(Pending& p);
  void Commit();
  void Disable(const std::string& why);
  void DropClaimed(int64_t index);
  void ForgetDisk(int64_t index, uint64_t record_bytes);
  // Writes all of [data, data+size) with ops_->Write; 0 or an errno.
  int WriteAll(int fd, const void* data, size_t size) { return WriteFully(ops_, fd, data, size); }
  // ops_->Sync(fd); 0 or an errno.
  int SyncFd(int fd);

  // Open helpers (disk_open.cc).
  Status StartFresh();
  Status WriteMeta();
  // Why the data and index files cannot be the ones a matching meta file describes (their
  // headers: missing, or written for another fingerprint); "" when both belong.
  std::string FilesMismatch();
  // Takes in the committed entries. `writable`: a torn tail is also cut off the files; a
  // read-only store is left as it is.
  void Recover(bool writable);
  std::string File(const char* name) const { return dir_ + "/" + name; }

  using Clock = SteadyClock;

  const CacheOptions options_;
  const int64_t n_;
  const CacheFingerprint fingerprint_;
  // fingerprint_.Value(): in both files' headers and the seed of every checksum (format.h).
  const uint64_t fingerprint_value_;
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

}  // namespace flowfeed::cache
