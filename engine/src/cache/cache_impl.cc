// cache/cache_impl.cc: SampleCache::Open, and the cache's front: Lookup() and Insert() on the
// table, the memory store behind them, Flush(), stats() (see cache_impl.h for the other roles).
//
// Threads: Lookup(), Insert() and stats() run on any thread at once (the pipeline's workers, its
// consumer); they take no lock on the table (table.h). Open, EvictFromPageCache and the
// destructor run on the thread that owns the cache; Flush() on the consumer's, once per run.
#include "cache/cache_impl.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

namespace flowfeed {
namespace cache {

std::string ErrnoText(int err) { return std::strerror(err ? err : EIO); }

CacheImpl::CacheImpl(const CacheOptions& options, int64_t num_samples,
                     const CacheFingerprint& fingerprint, Env* ops)
    : options_(options),
      n_(num_samples),
      fingerprint_(fingerprint),
      fingerprint_value_(fingerprint.Value()),
      ops_(ops ? ops : Env::Default()),
      table_(new Entry[size_t(std::max<int64_t>(num_samples, 0))]) {
  if (options_.mode == CacheMode::kMemory || options_.mode == CacheMode::kAuto)
    budget_ = options_.budget_bytes > 0 ? options_.budget_bytes : PhysicalMemoryBytes() / 4;
}

CacheImpl::~CacheImpl() {
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

bool CacheImpl::Lookup(int64_t index, Image* image, int64_t* bytes) {
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

void CacheImpl::Insert(int64_t index, const Image& image) {
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

bool CacheImpl::ReserveMemory(int64_t size) {
  int64_t cur = memory_bytes_.load(std::memory_order_relaxed);
  do {
    if (size > budget_ - cur) return false;
  } while (!memory_bytes_.compare_exchange_weak(cur, cur + size, std::memory_order_relaxed));
  return true;
}

void CacheImpl::Flush() {
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

void CacheImpl::EvictFromPageCache() {
  if (data_fd_ >= 0) ::fdatasync(data_fd_);
  if (index_fd_ >= 0) ::fdatasync(index_fd_);
  if (read_fd_ >= 0) ::posix_fadvise(read_fd_, 0, 0, POSIX_FADV_DONTNEED);
  if (index_fd_ >= 0) ::posix_fadvise(index_fd_, 0, 0, POSIX_FADV_DONTNEED);
}

CacheStats CacheImpl::stats() const {
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

void CacheImpl::AddMessage(std::string m) {
  std::lock_guard<std::mutex> lk(msg_mu_);
  messages_.push_back(std::move(m));
}

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
