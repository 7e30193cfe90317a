// cuda_steps.h (internal): the CUDA side of a trainer on a GPU, without CUDA headers, so that the
// rest of the trainer builds against any LibTorch.
//
// What it is: a copy stream on which each step's batch goes to the device (and is converted
// there) while the previous step computes on the compute stream (LibTorch's current stream),
// and CUDA events that time every part of a step on the device without synchronising it.
// A step uses one of kSlots slots (events and its copy); the trainer completes a step one step
// late (Finish), so the host queues step N+1 while the GPU runs step N.
//
// Built from cuda_steps.cc against a CUDA LibTorch; against a CPU-only one (Debian's 1.13,
// pip's CPU wheel) no_cuda_steps.cc makes Create() return null and the trainer times its steps
// on the host, as it does on the CPU.
//
// Threads: the thread that drives the trainer, only. Failures are LibTorch's (c10::Error
// thrown), which the trainer turns into a Status at its boundary.
// Ownership: device tensors returned by Stage() are the caller's; the CudaSteps keeps only its
// events and streams. Host memory given to Stage() must stay valid until Finish() of that step
// returns (the trainer keeps the step's batch until then).
#pragma once

#include <torch/torch.h>

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace flowfeed {

class CudaSteps {
 public:
  // Steps whose events are kept at once: the one the host queues, the one the GPU may still run,
  // and the one before (its end event starts the next step's idle gap).
  static constexpr int kSlots = 3;
  // Events on the compute stream, in step order. kArrive: the compute stream reached the step
  // (the host had queued it); kStart: its batch's copy had arrived too.
  enum Mark { kArrive, kStart, kForward, kBackward, kAllReduce, kEnd, kMarks };

  // A step's parts as the device measured them, in seconds.
  struct Times {
    double idle = 0;    // compute stream idle before kArrive: waiting for the host (data)
    double h2d = 0;     // kArrive -> kStart: waiting for the copy (the part it did not hide)
    double forward = 0, backward = 0, allreduce = 0, optimizer = 0;
  };

  // Null when this build has no CUDA LibTorch.
  static std::unique_ptr<CudaSteps> Create(const torch::Device& device);
  virtual ~CudaSteps() = default;

  // Copies `host` tensors (pinned) to the device on the copy stream, runs `convert` on the
  // device tensors there, and returns its results, safe to use on the compute stream.
  using Convert = std::function<std::vector<torch::Tensor>(std::vector<torch::Tensor>)>;
  virtual std::vector<torch::Tensor> Stage(int slot, const std::vector<torch::Tensor>& host,
                                           const Convert& convert) = 0;
  // Records `mark` on the compute stream; kStart first makes the compute stream wait for the
  // slot's copy (a device-side wait: the host goes on).
  virtual void Record(int slot, Mark mark) = 0;
  // Blocks the host until the slot's step has ended on the device and returns its times.
  // `previous`: the slot of the step before in the same epoch (its end starts the idle gap),
  // or -1 for an epoch's first step (idle 0: the host's wait is counted instead).
  virtual Times Finish(int slot, int previous) = 0;

  // The caching allocator's figures since Create (bytes and counts), named for the report.
  virtual std::vector<std::pair<std::string, double>> MemoryStats() const = 0;
};

}  // namespace flowfeed
