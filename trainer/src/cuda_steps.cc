// CudaSteps on a CUDA LibTorch (compiled only against one: trainer/CMakeLists.txt): the copy
// stream, the per-slot events and the caching allocator's statistics.
//
// Threads and ownership: cuda_steps.h.

#include "cuda_steps.h"

#include <ATen/cuda/CUDAContext.h>
#include <ATen/cuda/CUDAEvent.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAGuard.h>
#include <cuda_runtime_api.h>

#include <array>

namespace flowfeed {

namespace {

class CudaStepsImpl final : public CudaSteps {
 public:
  explicit CudaStepsImpl(const torch::Device& device)
      : device_(device.index() < 0 ? 0 : device.index()),
        copy_(c10::cuda::getStreamFromPool(/*isHighPriority=*/false, device_)) {
    // The rank's GPU becomes this thread's current device: what LibTorch and NCCL create
    // without naming a device lands there, not on GPU 0.
    c10::cuda::set_device(device_);
    c10::cuda::CUDACachingAllocator::resetPeakStats(device_);
  }

  std::vector<torch::Tensor> Stage(int slot, const std::vector<torch::Tensor>& host,
                                   const Convert& convert) override {
    Slot& s = slots_[size_t(slot)];
    const c10::cuda::CUDAStream compute = c10::cuda::getCurrentCUDAStream(device_);
    std::vector<torch::Tensor> out;
    {
      // Allocations made here belong to the copy stream; record_stream below tells the caching
      // allocator that the compute stream uses them too, so their memory is not handed out
      // again before the compute stream is done with it.
      c10::cuda::CUDAStreamGuard guard(copy_);
      std::vector<torch::Tensor> on_device;
      on_device.reserve(host.size());
      for (const torch::Tensor& h : host)
        on_device.push_back(h.to(torch::Device(torch::kCUDA, device_), /*non_blocking=*/true));
      out = convert ? convert(std::move(on_device)) : std::move(on_device);
      s.copy_end.record(copy_);
    }
    for (const torch::Tensor& t : out) t.record_stream(compute);
    return out;
  }

  void Record(int slot, Mark mark) override {
    Slot& s = slots_[size_t(slot)];
    const c10::cuda::CUDAStream compute = c10::cuda::getCurrentCUDAStream(device_);
    if (mark == kStart) s.copy_end.block(compute);
    s.marks[size_t(mark)].record(compute);
  }

  Times Finish(int slot, int previous) override {
    Slot& s = slots_[size_t(slot)];
    s.marks[kEnd].synchronize();
    auto seconds = [](const at::cuda::CUDAEvent& a, const at::cuda::CUDAEvent& b) {
      return double(a.elapsed_time(b)) / 1000.0;
    };
    Times t;
    if (previous >= 0) t.idle = seconds(slots_[size_t(previous)].marks[kEnd], s.marks[kArrive]);
    t.h2d = seconds(s.marks[kArrive], s.marks[kStart]);
    t.forward = seconds(s.marks[kStart], s.marks[kForward]);
    t.backward = seconds(s.marks[kForward], s.marks[kBackward]);
    t.allreduce = seconds(s.marks[kBackward], s.marks[kAllReduce]);
    t.optimizer = seconds(s.marks[kAllReduce], s.marks[kEnd]);
    return t;
  }

  std::vector<std::pair<std::string, double>> MemoryStats() const override {
    const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(device_);
    const size_t all = size_t(c10::CachingAllocator::StatType::AGGREGATE);
    return {
        {"peak_allocated_bytes", double(stats.allocated_bytes[all].peak)},
        {"peak_reserved_bytes", double(stats.reserved_bytes[all].peak)},
        {"reserved_bytes", double(stats.reserved_bytes[all].current)},
        {"device_mallocs", double(stats.segment[all].allocated)},
        {"alloc_retries", double(stats.num_alloc_retries)},
        {"ooms", double(stats.num_ooms)},
    };
  }

 private:
  // Events with timing (cudaEventDefault); LibTorch's default disables it.
  struct Slot {
    // copy_end: the compute stream waits for it (no timing needed; the wait is timed by marks).
    at::cuda::CUDAEvent copy_end;
    std::array<at::cuda::CUDAEvent, kMarks> marks{
        at::cuda::CUDAEvent(cudaEventDefault), at::cuda::CUDAEvent(cudaEventDefault),
        at::cuda::CUDAEvent(cudaEventDefault), at::cuda::CUDAEvent(cudaEventDefault),
        at::cuda::CUDAEvent(cudaEventDefault), at::cuda::CUDAEvent(cudaEventDefault)};
  };

  const c10::DeviceIndex device_;
  c10::cuda::CUDAStream copy_;
  std::array<Slot, kSlots> slots_;
};

}  // namespace

std::unique_ptr<CudaSteps> CudaSteps::Create(const torch::Device& device) {
  return std::make_unique<CudaStepsImpl>(device);
}

}  // namespace flowfeed
