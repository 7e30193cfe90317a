// distributed.h (internal): the trainer's link to the other ranks, over PyTorch's c10d.
//
// A Communicator wraps a c10d process group (Gloo; the build decides whether it exists, see
// FLOWFEED_WITH_GLOO) created from DistributedOptions: rank 0 serves a TCPStore at
// master_addr:master_port, every rank connects to it, and the group's collectives carry
// tensors between the ranks. Only what data-parallel training needs is exposed: broadcast from
// rank 0, sum all-reduce (gradients go through it in flat buckets of `bucket_bytes`), and a
// small all-reduce of doubles for counters and metrics.
//
// Failure: Create() returns Unsupported when the build has no Gloo, IoError naming the address
// when the rendezvous fails within timeout_seconds. Every collective returns IoError naming the
// operation and the rank when a peer went away (its connections break at once) or did not
// answer within timeout_seconds; nothing here blocks forever.
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
  static Result<std::unique_ptr<Communicator>> Create(const DistributedOptions& options);
  virtual ~Communicator() = default;

  virtual int rank() const = 0;
  virtual int world_size() const = 0;
  virtual std::string backend() const = 0;

  // Overwrites every tensor with rank 0's values (in place; CPU tensors).
  virtual Status Broadcast(std::vector<torch::Tensor>& tensors, const std::string& what) = 0;
  // Replaces every tensor with the sum over the ranks. The tensors are packed into flat
  // buckets of at most `bucket_bytes` (one collective per bucket), then unpacked.
  virtual Status AllReduceSum(std::vector<torch::Tensor>& tensors, const std::string& what,
                              int64_t bucket_bytes = int64_t(25) << 20) = 0;
  // The element-wise sum of `values` over the ranks, in place.
  virtual Status AllReduceSum(std::vector<double>* values, const std::string& what) = 0;
};

// True when this build can create a Gloo process group.
bool HaveGloo();

}  // namespace flowfeed
