// handout.h: a batch handed to Python as DLPack tensors (images and labels), zero-copy.
//
// The tensors point into the Batch's own storage and keep the batch alive (a BatchPtr shared by
// both): when the last of them dies, the batch returns to the pipeline's pool and its samples'
// tokens go back to the graph. Because a batch alive holds tokens, a consumer that keeps more
// batches than the pipeline can spare would stall it (pipeline.h, "Bounds"); the HandoutCounter
// tells the pipeline how many the user still holds, and past a threshold a batch is handed out
// as a copy instead (its BatchPtr is dropped at once), which the pipeline counts and reports.
//
// Threads: handouts are made on the consumer's thread (with the GIL); their deleters run on
// whichever thread frees the tensor, with or without the GIL, and touch only atomics and the
// BatchPtr (whose release is thread-safe).
#pragma once

#include <dlpack/dlpack.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "flowfeed/pipeline.h"

namespace flowfeed::python {

// Batches handed out whose tensors are still alive, zero-copy ones and copies apart.
struct HandoutCounter {
  std::atomic<int64_t> held{0};    // zero-copy batches (each holds tokens)
  std::atomic<int64_t> copies{0};  // batches handed out as copies, in all
};

// What one batch's tensors share: the batch (zero-copy) or the copied bytes.
class Handout {
 public:
  // Zero-copy: the tensors view `batch`. Counts itself in `counter` until destroyed.
  Handout(BatchPtr batch, std::shared_ptr<HandoutCounter> counter);
  // A copy of the batch's images and labels; `batch` is not kept.
  static std::shared_ptr<Handout> Copy(const Batch& batch, std::shared_ptr<HandoutCounter> counter);
  ~Handout();
  Handout(const Handout&) = delete;
  Handout& operator=(const Handout&) = delete;

  bool copied() const { return !batch_; }
  const Batch& meta() const { return meta_view_ ? *meta_view_ : *batch_; }

  // A new DLManagedTensor over the images ({N,C,H,W} or {N,H,W,C}, uint8 or float32) or the
  // labels ({N}, int64), owning a reference to this handout; its deleter releases it.
  DLManagedTensor* Images(const std::shared_ptr<Handout>& self) const;
  DLManagedTensor* Labels(const std::shared_ptr<Handout>& self) const;

 private:
  Handout() = default;

  BatchPtr batch_;                             // zero-copy: the batch itself
  std::shared_ptr<const Batch> meta_view_;     // copy: a Batch holding the copied bytes
  std::shared_ptr<HandoutCounter> counter_;
};

// The capsule name DLPack consumers look for, and the destructor that frees an unconsumed one.
inline constexpr const char* kDlpackCapsuleName = "dltensor";
void DeleteUnusedDlpackCapsule(void* capsule_object);

}  // namespace flowfeed::python
