// CudaSteps on a LibTorch without CUDA (Debian's 1.13, pip's CPU wheel): none. The trainer then
// times its steps on the host (cuda_steps.h).

#include "cuda_steps.h"

namespace flowfeed {

std::unique_ptr<CudaSteps> CudaSteps::Create(const torch::Device&) { return nullptr; }

}  // namespace flowfeed
