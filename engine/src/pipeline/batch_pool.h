// pipeline/batch_pool.h (internal): the recycled buffers of batches and converted samples.
//
// Locking: each pool has its own mutex, held for a pointer push or pop only; any thread may call
// any method.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include "flowfeed/pipeline.h"

namespace flowfeed {

// Recycles Batch objects and turns "the consumer dropped a batch" into released tokens. Shared
// with every BatchPtr's deleter, so a batch may outlive the pipeline: Detach() then makes the
// release a no-op.
class BatchPool : public std::enable_shared_from_this<BatchPool> {
 public:
  // `release(n)` gives back n tokens; it is called under the pool's lock, from whichever thread
  // drops a batch, until Detach().
  // New batches' pixels come from `memory` (null: the heap).
  BatchPool(std::function<void(int64_t)> release, std::shared_ptr<BatchAllocator> memory)
      : release_(std::move(release)), memory_(std::move(memory)) {}

  // A batch to fill: a recycled one (its buffers keep their capacity) or a new one.
  std::unique_ptr<Batch> Acquire();

  // Hands a filled batch to the consumer; it comes back here when the last reference goes.
  BatchPtr Publish(std::unique_ptr<Batch> batch);

  // Gives back a batch that was never published (drop_last): its tokens go back too.
  void Recycle(std::unique_ptr<Batch> batch) { Return(batch.release()); }

  // From now on a returned batch releases nothing and is freed; the pooled ones are freed now.
  // Waits for a release in progress.
  void Detach();

 private:
  void Return(Batch* b);

  std::mutex mu_;
  std::vector<std::unique_ptr<Batch>> free_;
  std::function<void(int64_t)> release_;
  bool detached_ = false;
  const std::shared_ptr<BatchAllocator> memory_;
};

// Converted samples wait in these buffers between their worker and the serial batcher. A LIFO
// pool rather than one buffer per ring slot: only samples between conversion and batching hold
// one (a handful, not every token), and the buffer freed last, still in the CPU's caches, is
// the one reused next. Inline: a worker and the batcher each call it once per sample.
class TensorPool {
 public:
  using Buffer = std::unique_ptr<std::vector<uint8_t>>;
  Buffer Acquire() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!free_.empty()) {
        Buffer b = std::move(free_.back());
        free_.pop_back();
        return b;
      }
    }
    return std::make_unique<std::vector<uint8_t>>();
  }
  void Release(Buffer b) {
    if (!b) return;
    std::lock_guard<std::mutex> lock(mu_);
    free_.push_back(std::move(b));
  }

 private:
  std::mutex mu_;
  std::vector<Buffer> free_;
};

}  // namespace flowfeed
