// flowfeed/batch_memory.h: where a batch's pixels live.
//
// A BatchAllocator hands out the blocks batches are collated into. The default is the process
// heap. A consumer that copies batches to a GPU gives the pipeline page-locked ("pinned") memory
// instead (PipelineOptions::batch_memory), so that collation writes straight into memory the
// device can read by DMA: no staging copy, and the host-to-device copy can run asynchronously.
//
// A block is kept alive by its `owner`: the pipeline holds it while the batch is in use or in
// the pool, and drops it when the batch is destroyed (with the pipeline, or when a consumer's
// last reference to a batch goes after the pipeline is gone), so an allocator's memory may
// outlive the pipeline but never the owner.
//
// Thread-safety: Allocate() is called from the pipeline's batching thread and from consumers'
// threads (copies); implementations must be thread-safe. BatchStorage is not: it belongs to one
// Batch, written by the batcher before the batch is published and read-only after.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace flowfeed {

struct BatchBlock {
  uint8_t* data = nullptr;
  size_t size = 0;
  std::shared_ptr<void> owner;  // frees the block when the last copy goes
};

class BatchAllocator {
 public:
  virtual ~BatchAllocator() = default;
  // A block of at least `bytes` bytes, contents unspecified. Throws std::bad_alloc (or the
  // allocator's own exception) when it cannot.
  virtual BatchBlock Allocate(size_t bytes) = 0;
  // What the memory is, for reports: "heap", "cuda pinned".
  virtual std::string name() const = 0;
};

// The process heap (operator new[], not zero-filled: collation writes every byte it hands out).
std::shared_ptr<BatchAllocator> HeapBatchMemory();

// A Batch's pixel storage: one block from an allocator, grown to the largest batch, then reused.
class BatchStorage {
 public:
  BatchStorage() = default;
  explicit BatchStorage(std::shared_ptr<BatchAllocator> allocator)
      : allocator_(std::move(allocator)) {}
  // A copy's bytes are on the heap, whatever memory the original is in: a copy is made for a
  // consumer that keeps a batch beyond the pipeline's window (it must not hold pinned memory).
  BatchStorage(const BatchStorage& other);
  BatchStorage& operator=(const BatchStorage&) = delete;
  BatchStorage(BatchStorage&&) = default;
  BatchStorage& operator=(BatchStorage&&) = default;

  uint8_t* data() { return block_.data; }
  const uint8_t* data() const { return block_.data; }
  size_t size() const { return size_; }
  // At least `bytes` usable bytes. Growing takes a new block and does NOT keep the old contents
  // (the batcher sizes the storage before it writes a batch).
  void Reserve(size_t bytes);
  // Uses only the first `bytes` (a copy of a batch smaller than its recycled buffer).
  void Truncate(size_t bytes) { size_ = bytes < size_ ? bytes : size_; }
  // The allocator's name ("heap" when none was given).
  std::string memory() const;

 private:
  std::shared_ptr<BatchAllocator> allocator_;  // null: the heap
  BatchBlock block_;
  size_t size_ = 0;
};

}  // namespace flowfeed
