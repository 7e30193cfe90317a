// foreach_sgd.h (internal): LibTorch's SGD (momentum, dampening, Nesterov, weight decay) with its
// update done by multi-tensor `_foreach_` kernels: a handful of launches for the whole model
// instead of several per parameter, which on a GPU is the difference between an optimiser step
// that costs launch overhead for each of ResNet-18's 62 tensors and one that does not. The
// arithmetic is SGD::step's, op for op; the state (momentum buffers) lives where SGD keeps it, so
// checkpoints are those of torch::optim::SGD and load into either.
//
// Threads: as any torch::optim::Optimizer (one thread steps it).
// Failure: LibTorch's c10::Error, as SGD::step.
#pragma once

#include <torch/torch.h>

namespace flowfeed {

class ForeachSGD final : public torch::optim::SGD {
 public:
  using torch::optim::SGD::SGD;
  // The first step (no momentum buffers yet) is SGD::step's own: it makes the buffers.
  torch::Tensor step(LossClosure closure = nullptr) override;
};

}  // namespace flowfeed
