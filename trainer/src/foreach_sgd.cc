// ForeachSGD::step: SGD::step (torch/csrc/api/src/optim/sgd.cpp) over lists of tensors. The
// optimiser's state is keyed by the parameter's TensorImpl, as a pointer from LibTorch 2.0 on
// and as its decimal string in 1.13.

#include "foreach_sgd.h"

#include <torch/version.h>

#include <vector>

namespace flowfeed {

namespace {

#if TORCH_VERSION_MAJOR >= 2
void* StateKey(const torch::Tensor& p) { return p.unsafeGetTensorImpl(); }
#else
std::string StateKey(const torch::Tensor& p) {
  return c10::guts::to_string(p.unsafeGetTensorImpl());
}
#endif

}  // namespace

torch::Tensor ForeachSGD::step(LossClosure closure) {
  torch::NoGradGuard no_grad;
  // Every parameter with a gradient needs its momentum buffer; until SGD::step has made them,
  // it takes the step (as it does for a parameter whose first gradient comes late).
  for (auto& group : param_groups_) {
    if (static_cast<torch::optim::SGDOptions&>(group.options()).momentum() == 0) continue;
    for (auto& p : group.params())
      if (p.grad().defined() && state_.find(StateKey(p)) == state_.end())
        return torch::optim::SGD::step(closure);
  }
  torch::Tensor loss = {};
  if (closure != nullptr) {
    at::AutoGradMode enable_grad(true);
    loss = closure();
  }
  for (auto& group : param_groups_) {
    auto& o = static_cast<torch::optim::SGDOptions&>(group.options());
    std::vector<torch::Tensor> params, grads, bufs;
    for (auto& p : group.params()) {
      if (!p.grad().defined()) continue;
      params.push_back(p.data());
      grads.push_back(p.grad().data());
      if (o.momentum() != 0)
        bufs.push_back(
            static_cast<torch::optim::SGDParamState&>(*state_[StateKey(p)]).momentum_buffer());
    }
    if (params.empty()) continue;
    // d_p: the gradient, plus weight decay (a new tensor, as in SGD::step: grads are not touched).
    std::vector<torch::Tensor> d = grads;
    if (o.weight_decay() != 0) d = at::_foreach_add(grads, params, o.weight_decay());
    if (o.momentum() != 0) {
      at::_foreach_mul_(bufs, o.momentum());
      at::_foreach_add_(bufs, d, 1 - o.dampening());
      d = o.nesterov() ? at::_foreach_add(d, bufs, o.momentum()) : bufs;
    }
    at::_foreach_add_(params, d, -1 * o.lr());
  }
  return loss;
}

}  // namespace flowfeed
