// What the ranks of a data-parallel run exchange besides the per-step agreement (which is the
// epoch loop's, train_epoch.cc) and the checkpoint positions (checkpoint.cc): rank 0's weights
// at set-up, the gradients after every backward, the batch-norm statistics and the cache hit
// rates at an epoch's end; and the model digest that shows their models agree.
//
// Threads: the thread that drives the trainer. Every collective here must be called by every
// rank at the same point, or the others wait for it until the communicator's timeout.

#include <xxhash.h>

#include <cstdio>

#include "flowfeed/util/clock.h"
#include "trainer_impl.h"

namespace flowfeed {

// Parameters then buffers (batch-norm statistics), in the model's order.
std::vector<torch::Tensor> TorchTrainer::ModelState() {
  std::vector<torch::Tensor> out;
  for (const auto& p : model_->parameters()) out.push_back(p.detach().to(torch::kCPU).clone());
  for (const auto& b : model_->buffers()) out.push_back(b.detach().to(torch::kCPU).clone());
  return out;
}

void TorchTrainer::CopyBack(const std::vector<torch::Tensor>& state) {
  torch::NoGradGuard no_grad;
  size_t i = 0;
  for (auto& p : model_->parameters()) p.copy_(state[i++]);
  for (auto& b : model_->buffers()) b.copy_(state[i++]);
}

// Every rank starts from rank 0's weights (a resumed run's ranks read the same file).
Status TorchTrainer::BroadcastParameters() {
  auto t0 = Clock::now();
  std::vector<torch::Tensor> state = ModelState();
  FLOWFEED_RETURN_IF_ERROR(comm_->Broadcast(state, "broadcast of rank 0's parameters"));
  CopyBack(state);
  report_.setup.push_back({"broadcast_parameters", SecondsSince(t0)});
  return Status::Ok();
}

// XXH3 of the model's parameters and buffers as they are in memory (CPU copies, in order).
std::string TorchTrainer::ModelDigest() {
  XXH3_state_t* h = XXH3_createState();
  XXH3_64bits_reset(h);
  for (const torch::Tensor& t : ModelState())
    XXH3_64bits_update(h, t.contiguous().data_ptr(), size_t(t.numel()) * t.element_size());
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(XXH3_64bits_digest(h)));
  XXH3_freeState(h);
  return hex;
}

// Gradients become the mean over every rank's samples: each rank weighs its own (the mean
// over its batch) by its share of the global batch, then they are summed. A rank without a
// batch this step adds zeros.
Status TorchTrainer::AverageGradients(double mine, double total) {
  std::vector<torch::Tensor> grads;
  std::vector<torch::Tensor> params = model_->parameters();
  for (auto& p : params) {
    if (!p.grad().defined()) p.mutable_grad() = torch::zeros_like(p);
    // On the model's device: the communicator moves the buckets where its backend needs them.
    grads.push_back(p.grad() * (total > 0 ? mine / total : 0.0));
  }
  FLOWFEED_RETURN_IF_ERROR(comm_->AllReduceSum(grads, "all-reduce of the gradients"));
  for (size_t i = 0; i < params.size(); ++i) params[i].mutable_grad().copy_(grads[i]);
  return Status::Ok();
}

// Batch-norm statistics are gathered by each rank from its own samples; at the epoch's end
// they become the mean over the ranks, so evaluation, checkpoints and every rank's model agree.
// (Counters such as num_batches_tracked are equal everywhere already.)
Status TorchTrainer::AverageBuffers() {
  std::vector<torch::Tensor> floats;
  std::vector<torch::Tensor> buffers = model_->buffers();
  for (auto& b : buffers)
    if (b.is_floating_point()) floats.push_back(b.detach().clone());
  if (floats.empty()) return Status::Ok();
  FLOWFEED_RETURN_IF_ERROR(comm_->AllReduceSum(floats, "averaging the batch-norm statistics"));
  torch::NoGradGuard no_grad;
  size_t i = 0;
  for (auto& b : buffers)
    if (b.is_floating_point()) b.copy_(floats[i++].div_(double(comm_->world_size())));
  return Status::Ok();
}

Status TorchTrainer::GatherCacheHitRates(int epoch, TrainEpochStats* es) {
  const int w = comm_->world_size(), r = comm_->rank();
  std::vector<double> v(size_t(2 * w), 0.0);
  RunStats rs = pipeline_->stats();
  for (const EpochStats& e : rs.epochs)
    if (e.epoch == epoch + 1) {
      v[size_t(2 * r)] = double(e.cache.hits);
      v[size_t(2 * r + 1)] = double(e.cache.hits + e.cache.misses);
    }
  FLOWFEED_RETURN_IF_ERROR(comm_->AllReduceSum(&v, "gathering the cache hit rates"));
  es->rank_cache_hit_rate.clear();
  for (int i = 0; i < w; ++i)
    es->rank_cache_hit_rate.push_back(v[size_t(2 * i + 1)] > 0 ? v[size_t(2 * i)] / v[size_t(2 * i + 1)] : 0);
  return Status::Ok();
}

}  // namespace flowfeed
