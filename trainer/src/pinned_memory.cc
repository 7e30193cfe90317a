// pinned_memory.cc: page-locked host memory for the pipeline's batches when the trainer runs on
// CUDA (flowfeed/batch_memory.h), from LibTorch's own pinned-memory allocator.
//
// The allocator is reached through ATen's CUDA hooks, which the CPU-only LibTorch has too (they
// fail only when called without CUDA), so this file needs no CUDA headers and builds against
// Debian's LibTorch; it is used only after ChooseDevice() picked a GPU. LibTorch's pinned
// allocator caches blocks (cudaHostAlloc is slow) and frees them when LibTorch says.
#include <ATen/detail/CUDAHooksInterface.h>

#include <memory>

#include "trainer_impl.h"

namespace flowfeed {
namespace {

class CudaPinnedMemory : public BatchAllocator {
 public:
  BatchBlock Allocate(size_t bytes) override {
    at::Allocator* pinned = at::detail::getCUDAHooks().getPinnedMemoryAllocator();
    // DataPtr is move-only: the block's owner holds it on the heap.
    auto data = std::make_shared<c10::DataPtr>(pinned->allocate(bytes));
    auto* p = static_cast<uint8_t*>(data->get());
    return {p, bytes, std::shared_ptr<void>(data, p)};
  }
  std::string name() const override { return "cuda pinned"; }
};

}  // namespace

std::shared_ptr<BatchAllocator> CudaPinnedBatchMemory() {
  return std::make_shared<CudaPinnedMemory>();
}

}  // namespace flowfeed
