// autocast.h (internal): bf16 mixed precision for the trainer's forward passes (`amp: true`),
// as `with torch.autocast(device_type, dtype=torch.bfloat16)` in Python: within the scope,
// matmuls and convolutions run in bfloat16 while reductions, softmax and losses stay float32;
// weights and gradients stay float32. bf16 keeps float32's exponent range, so no loss scaling.
//
// Threads: autocast state is per thread; a scope affects the thread that made it.
// Failure: none (an unsupported op under autocast fails when LibTorch runs it).
#pragma once

#include <torch/torch.h>

namespace flowfeed {

class AutocastScope {
 public:
  // Enables bf16 autocast for `device`'s type while the scope lives (nothing when !enabled).
  AutocastScope(const torch::Device& device, bool enabled);
  // Restores the state before, and drops autocast's cast cache when the outermost scope ends.
  ~AutocastScope();
  AutocastScope(const AutocastScope&) = delete;
  AutocastScope& operator=(const AutocastScope&) = delete;

 private:
  bool enabled_;
  torch::DeviceType type_;
  bool was_enabled_ = false;
  at::ScalarType was_dtype_ = at::kFloat;
};

}  // namespace flowfeed
