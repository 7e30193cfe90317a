// pipeline/batch_pool.cc: the batch recycler (batch_pool.h), and Batch's own code.
#include "pipeline/batch_pool.h"

namespace flowfeed {

std::vector<int64_t> Batch::shape() const {
  if (layout == Layout::kNCHW) return {size, channels, height, width};
  return {size, height, width, channels};
}

std::unique_ptr<Batch> BatchPool::Acquire() {
  std::lock_guard<std::mutex> lock(mu_);
  if (free_.empty()) {
    auto b = std::make_unique<Batch>();
    b->data_ = BatchStorage(memory_);
    return b;
  }
  std::unique_ptr<Batch> b = std::move(free_.back());
  free_.pop_back();
  return b;
}

BatchPtr BatchPool::Publish(std::unique_ptr<Batch> batch) {
  std::shared_ptr<BatchPool> self = shared_from_this();
  return BatchPtr(batch.release(), [self](const Batch* b) { self->Return(const_cast<Batch*>(b)); });
}

void BatchPool::Detach() {
  std::vector<std::unique_ptr<Batch>> unused;
  {
    std::lock_guard<std::mutex> lock(mu_);
    release_ = nullptr;
    detached_ = true;
    unused.swap(free_);
  }
  // Freed now, not when the last batch a consumer still holds goes: their memory may be
  // scarce (pinned).
}

void BatchPool::Return(Batch* b) {
  std::unique_ptr<Batch> batch(b);
  int64_t n = b->size;
  std::lock_guard<std::mutex> lock(mu_);
  if (detached_) return;  // nobody acquires any more: freed on leaving
  free_.push_back(std::move(batch));
  // Under the lock so that Detach() cannot complete while a release is in progress.
  if (release_ && n > 0) release_(n);
}

}  // namespace flowfeed
