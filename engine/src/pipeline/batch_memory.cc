// batch_memory.cc: the heap allocator and BatchStorage (flowfeed/batch_memory.h).
#include "flowfeed/batch_memory.h"

#include <cstring>

namespace flowfeed {
namespace {

class HeapAllocator : public BatchAllocator {
 public:
  BatchBlock Allocate(size_t bytes) override {
    std::shared_ptr<uint8_t[]> p(new uint8_t[bytes]);
    return {p.get(), bytes, std::shared_ptr<void>(p, p.get())};
  }
  std::string name() const override { return "heap"; }
};

}  // namespace

std::shared_ptr<BatchAllocator> HeapBatchMemory() {
  static const std::shared_ptr<BatchAllocator> heap = std::make_shared<HeapAllocator>();
  return heap;
}

BatchStorage::BatchStorage(const BatchStorage& other) {
  if (other.size_ == 0) return;
  block_ = HeapBatchMemory()->Allocate(other.size_);
  size_ = other.size_;
  std::memcpy(block_.data, other.block_.data, size_);
}

void BatchStorage::Reserve(size_t bytes) {
  if (bytes <= block_.size) {
    size_ = bytes;
    return;
  }
  block_ = BatchBlock{};  // the old block first: no moment with both alive
  size_ = 0;
  block_ = (allocator_ ? allocator_ : HeapBatchMemory())->Allocate(bytes);
  size_ = bytes;
}

std::string BatchStorage::memory() const {
  return allocator_ ? allocator_->name() : "heap";
}

}  // namespace flowfeed
