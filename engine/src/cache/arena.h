// cache/arena.h (internal): the memory store's storage -- the pixels of every image the cache
// holds in memory live in an Arena's chunks.
//
// Thread-safety: Allocate() may be called from any thread at once (the pipeline's workers,
// through SampleCache::Insert); one mutex, held for the bump (and the mmap of a new chunk).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>

namespace flowfeed::cache {

// Memory for the memory store's images: 64 MiB chunks handed out by bumping an offset and never
// given back one by one (the cache keeps what it holds until it is destroyed), so filling it
// allocates nothing per image and the budget charges exactly what is held. Measured on the
// development VM: huge pages (MADV_HUGEPAGE) made one insert in three stall ~2 ms in the
// kernel's compaction, and MAP_POPULATE stalled ~15 ms per chunk for the same total CPU, so
// chunks are plain anonymous memory, faulted in page by page as images are copied in.
class Arena {
 public:
  static constexpr size_t kChunk = size_t(64) << 20;
  static constexpr size_t kAlign = 64;

  // What Allocate(bytes) charges: `bytes` rounded up to kAlign.
  static constexpr size_t Charge(size_t bytes) { return (bytes + kAlign - 1) / kAlign * kAlign; }

  // Storage for `bytes` (rounded up to kAlign): an aliasing handle that keeps its chunk alive.
  // Null when the OS refuses memory.
  std::shared_ptr<uint8_t[]> Allocate(size_t bytes, size_t* charged);

 private:
  std::mutex mu_;
  std::shared_ptr<uint8_t[]> chunk_;  // the chunk being filled
  size_t size_ = 0, used_ = 0;
};

}  // namespace flowfeed::cache
