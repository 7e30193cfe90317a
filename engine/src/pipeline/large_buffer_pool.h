// pipeline/large_buffer_pool.h (internal): where a slot's large pixel buffers go between samples.
//
// A ring slot keeps its buffers for the next sample it holds, so that steady state allocates
// nothing (fresh anonymous memory costs its first touch, ~0.5 GB/s). That is right for buffers
// of an ordinary sample, but a slot keeps whatever its biggest sample needed, and there is a
// slot per token (thousands): a few huge images passing through would stay resident in as many
// slots. So a buffer above kSlotKeepBytes leaves its slot as soon as the sample is done with its
// worker and comes here; a slot that starts a sample without a pixel buffer takes one back. The
// pool keeps at most `limit` bytes and frees what does not fit, so what huge images leave behind
// is bounded by the pool, not by the number of slots.
//
// Locking: one mutex, held for a push or pop; any thread. Buffers are freed outside it.
#pragma once

#include <cstddef>
#include <mutex>
#include <vector>

#include "flowfeed/image.h"

namespace flowfeed {

class LargeBufferPool {
 public:
  // A slot keeps a buffer of at most this many bytes. 16 MiB holds a decoded 2,300 x 2,300 RGB
  // photo: typical training images (ImageNet averages ~400 x 350) stay in their slots many
  // times over, while a phone photo (12 MP, 36 MB) or larger goes through the pool.
  static constexpr size_t kSlotKeepBytes = size_t(16) << 20;

  // Per worker thread: a worker holds one decode-sized buffer at a time (the other ping-pong
  // buffer holds the resized, small output), and 64 MiB covers a 21-megapixel RGB decode.
  static constexpr size_t kBytesPerThread = size_t(64) << 20;

  explicit LargeBufferPool(size_t limit) : limit_(limit) {}

  // Takes `*image`'s storage: kept when it is owned (not a view another Image shares) and fits
  // under the limit, else freed. Leaves `*image` empty.
  void Put(Image* image);

  // The buffer put last (still warm), or an empty Image when there is none.
  Image Take();

  // Bytes the pool keeps now.
  size_t bytes() const;

 private:
  mutable std::mutex mu_;
  std::vector<Image> free_;
  size_t bytes_ = 0;
  const size_t limit_;
};

}  // namespace flowfeed
