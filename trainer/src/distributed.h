// distributed.h (internal): the trainer's link to the other ranks, over PyTorch's c10d.
//
// A Communicator wraps a c10d process group created from DistributedOptions: rank 0 serves a
// TCPStore at master_addr:master_port, every rank connects to it, and the group's collectives
// carry tensors between the ranks. The backend: NCCL when the rank trains on a GPU and the
// build has it (a CUDA LibTorch with c10d NCCL: FLOWFEED_WITH_NCCL, nccl_communicator.cc),
// Gloo otherwise (where the build has it: FLOWFEED_WITH_GLOO); `distributed.backend` may name
// one. Only what data-parallel training needs is exposed: broadcast from rank 0, sum
// all-reduce (gradients go through it in flat buckets of `bucket_bytes`), and a small
// all-reduce of doubles for counters and metrics. Tensors may be on the CPU or the GPU; the
// collective runs where its backend wants them (Gloo: host, NCCL: the rank's GPU) and the
// results are written back in place.
//
// Failure: Create() returns Unsupported when the build lacks the backend asked for,
// InvalidArgument for NCCL on a CPU rank, IoError naming the address when the rendezvous fails
// within timeout_seconds. Every collective returns IoError naming the operation and the rank
// when a peer went away (its connections break at once) or did not answer within
// timeout_seconds; nothing here blocks forever.
//
// Thread-safety: one thread uses a Communicator.
#pragma once

#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

#include "flowfeed/options.h"
#include "flowfeed/status.h"

namespace flowfeed {

class Communicator {
 public:
  // `device`: where this rank trains (it picks NCCL under backend auto, and NCCL's GPU).
  static Result<std::unique_ptr<Communicator>> Create(const DistributedOptions& options,
                                                      const torch::Device& device);
  virtual ~Communicator() = default;

  virtual int rank() const = 0;
  virtual int world_size() const = 0;
  virtual std::string backend() const = 0;

  // Overwrites every tensor with rank 0's values (in place).
  virtual Status Broadcast(std::vector<torch::Tensor>& tensors, const std::string& what) = 0;
  // Replaces every tensor with the sum over the ranks. The tensors are packed into flat
  // buckets of at most `bucket_bytes` (one collective per bucket), then unpacked.
  virtual Status AllReduceSum(std::vector<torch::Tensor>& tensors, const std::string& what,
                              int64_t bucket_bytes = int64_t(25) << 20) = 0;
  // The element-wise sum of `values` over the ranks, in place.
  virtual Status AllReduceSum(std::vector<double>* values, const std::string& what) = 0;
};

// True when this build can create a Gloo (NCCL) process group.
bool HaveGloo();
bool HaveNccl();

// The backend `wanted` (auto | gloo | nccl) resolves to for a rank training on `device`.
std::string ChooseBackend(const std::string& wanted, const torch::Device& device);

// The NCCL communicator on `device` (a GPU); Unsupported in a build without NCCL.
Result<std::unique_ptr<Communicator>> CreateNcclCommunicator(const DistributedOptions& options,
                                                             const torch::Device& device);

}  // namespace flowfeed
