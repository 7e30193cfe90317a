// pipeline/large_buffer_pool.cc: the bounded pool of large pixel buffers (large_buffer_pool.h).
#include "pipeline/large_buffer_pool.h"

#include <utility>

namespace flowfeed {

void LargeBufferPool::Put(Image* image) {
  Image buffer = std::move(*image);
  *image = Image();
  if (buffer.shared()) return;  // a view: the last owner frees it
  const size_t bytes = buffer.capacity_bytes();
  if (bytes == 0) return;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (bytes_ + bytes <= limit_) {
      bytes_ += bytes;
      free_.push_back(std::move(buffer));
      return;
    }
  }
  // Does not fit: `buffer` is freed here, outside the lock.
}

Image LargeBufferPool::Take() {
  std::lock_guard<std::mutex> lock(mu_);
  if (free_.empty()) return Image();
  Image buffer = std::move(free_.back());
  free_.pop_back();
  bytes_ -= buffer.capacity_bytes();
  return buffer;
}

size_t LargeBufferPool::bytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  return bytes_;
}

}  // namespace flowfeed
