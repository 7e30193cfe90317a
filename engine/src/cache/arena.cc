// cache/arena.cc: the memory store's chunks (arena.h).
//
// Thread-safety: see arena.h; any thread, under the arena's mutex.
#include "cache/arena.h"

#include <sys/mman.h>

#include <algorithm>

namespace flowfeed::cache {

std::shared_ptr<uint8_t[]> Arena::Allocate(size_t bytes, size_t* charged) {
  bytes = Charge(bytes);
  *charged = bytes;
  std::lock_guard<std::mutex> lk(mu_);
  if (!chunk_ || used_ + bytes > size_) {
    size_t size = std::max(kChunk, bytes);
    void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return nullptr;
    chunk_ = std::shared_ptr<uint8_t[]>(static_cast<uint8_t*>(p),
                                        [size](uint8_t* q) { ::munmap(q, size); });
    size_ = size;
    used_ = 0;
  }
  std::shared_ptr<uint8_t[]> out(chunk_, chunk_.get() + used_);
  used_ += bytes;
  return out;
}

}  // namespace flowfeed::cache
