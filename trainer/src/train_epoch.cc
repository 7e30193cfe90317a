// The training loop of one epoch: per step, take a batch, agree with the other ranks on whether
// and how to step, copy the batch to the device, forward, backward, average the gradients,
// step the optimiser, and time each part; at the epoch's end, reduce the metrics. Also the
// learning-rate schedule and the batch-to-device copy the steps (and evaluate.cc) use.
//
// Threads: the thread that drives the trainer (Run()). live() reads the epoch's clock from any
// thread, under live_mu_; RequestStop() sets stop_requested_ from any thread.

#include <algorithm>
#include <cmath>
#include <cstring>
#include <mutex>

#include "flowfeed/util/clock.h"
#include "trainer_impl.h"

namespace flowfeed {

// The learning rate at `step` (0-based, counting from the start of training).
double TorchTrainer::LearningRate(int64_t step) const {
  const ScheduleOptions& s = options_.train.schedule;
  const double base = options_.train.optimizer.lr;
  const double per_epoch = double(std::max<int64_t>(1, steps_per_epoch_));
  const double warmup = s.warmup_epochs * per_epoch;
  const double x = double(step);
  if (x < warmup) return base * (x + 1) / warmup;
  const double epoch = x / per_epoch;
  if (s.type == "cosine") {
    const double total = double(options_.epochs) * per_epoch - warmup;
    const double progress = total > 0 ? std::min(1.0, (x - warmup) / total) : 1.0;
    return s.min_lr + (base - s.min_lr) * 0.5 * (1 + std::cos(M_PI * progress));
  }
  if (s.type == "step") return base * std::pow(s.gamma, std::floor(epoch / s.step_epochs));
  return base;
}

void TorchTrainer::SetLearningRate(double lr) {
  for (auto& group : optimizer_->param_groups()) group.options().set_lr(lr);
}

// The batch as a device tensor: float pixels as they are; uint8 pixels scaled to [0, 1] on
// the device (a quarter of the bytes over the bus). On CUDA the batch is staged in pinned
// host memory (allocated once, grown when needed) and copied without blocking the host.
torch::Tensor TorchTrainer::Input(const Batch& b) {
  std::vector<int64_t> shape = b.shape();
  if (b.layout == Layout::kNHWC) shape = {b.size, b.height, b.width, b.channels};
  auto dtype = b.dtype == DType::kUInt8 ? torch::kUInt8 : torch::kFloat32;
  torch::Tensor x = torch::from_blob(const_cast<uint8_t*>(b.data()), shape,
                                     torch::TensorOptions().dtype(dtype));
  if (device_.is_cuda()) {
    const int64_t bytes = int64_t(b.bytes());
    if (!pinned_.defined() || pinned_.numel() < bytes)
      pinned_ = torch::empty({bytes}, torch::TensorOptions().dtype(torch::kUInt8).pinned_memory(true));
    // The previous step's copy out of this buffer finished: Run() synchronises every step.
    std::memcpy(pinned_.data_ptr(), b.data(), size_t(bytes));
    x = pinned_.narrow(0, 0, bytes).view(dtype).view(shape).to(device_, /*non_blocking=*/true);
  }
  if (b.layout == Layout::kNHWC) x = x.permute({0, 3, 1, 2});
  if (b.dtype == DType::kUInt8) x = x.to(torch::kFloat32).div_(255.0);
  return x.contiguous();
}

// One epoch of steps. With other ranks, each step starts with a small all-reduce in which
// the ranks agree on whether anyone still has a batch, on the global batch size (gradients
// are weighted by it) and on whether to stop; so every rank runs the same steps.
Status TorchTrainer::TrainEpoch(int epoch, TrainEpochStats* es, const OnStep& on_step,
                                bool* stopped) {
  model_->train();
  auto epoch_start = Clock::now();
  {
    std::lock_guard<std::mutex> lock(live_mu_);
    live_epoch_ = epoch;
    live_start_ = epoch_start;
    live_running_ = true;
  }
  std::vector<double> step_seconds;
  double loss_sum = 0;
  int64_t correct = 0;
  const double smoothing = options_.train.label_smoothing;
  const bool resumed_epoch = epoch == start_epoch_;
  position_ = resumed_epoch ? options_.start_position : 0;
  batches_done_ = resumed_epoch ? options_.start_batch : 0;
  bool exhausted = false;  // this rank's epoch ended; the next Next() would start the next one
  while (true) {
    auto t0 = Clock::now();
    BatchPtr b;
    bool interrupted = false;  // a stop request came before (or during) the wait
    if (first_) {
      b = std::move(first_);  // taken during set-up; its wait is a set-up part
    } else if (!exhausted) {
      FLOWFEED_RETURN_IF_ERROR(NextOrStop(pipeline_.get(), &b, &interrupted));
    }
    exhausted = exhausted || (!b && !interrupted);
    const double wait = SecondsSince(t0);
    auto ta = Clock::now();
    // An interrupted rank still counts as having data, so the step below is a stop, not the
    // epoch's end.
    double agree[3] = {b || interrupted ? 1.0 : 0.0, b ? double(b->size) : 0.0,
                       interrupted || stop_requested_.load(std::memory_order_relaxed) ? 1.0 : 0.0};
    if (comm_) {
      std::vector<double> v(agree, agree + 3);
      FLOWFEED_RETURN_IF_ERROR(comm_->AllReduceSum(&v, "step agreement"));
      std::copy(v.begin(), v.end(), agree);
    }
    const double agree_seconds = SecondsSince(ta);
    if (agree[0] == 0) break;  // every rank's epoch is over
    if (agree[2] > 0) {
      // Stop at a step boundary: the checkpoint says exactly where.
      *stopped = true;
      if (!options_.train.checkpoint.empty()) FLOWFEED_RETURN_IF_ERROR(MidEpochCheckpoint(epoch));
      break;
    }
    auto t1 = Clock::now();
    torch::Tensor x, y;
    if (b) {
      x = Input(*b);
      y = torch::from_blob(const_cast<int64_t*>(b->labels.data()), {b->size},
                           torch::TensorOptions().dtype(torch::kInt64))
              .to(device_);
    }
    Sync();
    auto t2 = Clock::now();
    SetLearningRate(LearningRate(global_step_));
    torch::Tensor logits, loss;
    if (b) {
      logits = model_->forward(x);
      loss = torch::nn::functional::cross_entropy(
          logits, y, torch::nn::functional::CrossEntropyFuncOptions().label_smoothing(smoothing));
    }
    Sync();
    auto t3 = Clock::now();
    optimizer_->zero_grad();
    if (b) loss.backward();
    Sync();
    auto t4 = Clock::now();
    if (comm_) FLOWFEED_RETURN_IF_ERROR(AverageGradients(b ? double(b->size) : 0.0, agree[1]));
    auto t4b = Clock::now();
    optimizer_->step();
    Sync();
    auto t5 = Clock::now();
    double l = 0;
    if (b) {
      l = loss.item<double>();
      correct += logits.argmax(1).eq(y).sum().item<int64_t>();
      loss_sum += l * double(b->size);
      es->samples += b->size;
      if (options_.train.record_indices)
        es->indices.insert(es->indices.end(), b->indices.begin(), b->indices.end());
      position_ = b->end_position;
      batches_done_ = b->number + 1;
    }
    b.reset();  // the batch's buffer goes back to the pipeline

    auto secs = [](Clock::time_point p, Clock::time_point q) {
      return std::chrono::duration<double>(q - p).count();
    };
    Span("wait for batch", t0, ta, epoch + 1);
    Span("to device", t1, t2, epoch + 1);
    Span("forward", t2, t3, epoch + 1);
    Span("backward", t3, t4, epoch + 1);
    if (comm_) Span("all-reduce", t4, t4b, epoch + 1);
    Span("optimizer", t4b, t5, epoch + 1);
    es->data_wait_seconds += wait;
    es->h2d_seconds += secs(t1, t2);
    es->forward_seconds += secs(t2, t3);
    es->backward_seconds += secs(t3, t4);
    es->allreduce_seconds += secs(t4, t4b) + agree_seconds;
    es->optimizer_seconds += secs(t4b, t5);
    step_seconds.push_back(secs(t1, t5) + agree_seconds);
    ++es->steps;
    ++global_step_;
    if (on_step) on_step(epoch, es->steps, steps_per_epoch_, l);
    if (options_.train.checkpoint_every > 0 && !options_.train.checkpoint.empty() &&
        es->steps % options_.train.checkpoint_every == 0) {
      auto tc = Clock::now();
      FLOWFEED_RETURN_IF_ERROR(MidEpochCheckpoint(epoch));
      es->checkpoint_seconds += SecondsSince(tc);
      Span("checkpoint", tc, Clock::now(), epoch + 1);
    }
  }
  {
    auto epoch_end = Clock::now();
    std::lock_guard<std::mutex> lock(live_mu_);
    live_end_ = epoch_end;
    live_running_ = false;
    es->seconds = std::chrono::duration<double>(epoch_end - epoch_start).count();
  }
  es->samples_per_second = es->seconds > 0 ? double(es->samples) / es->seconds : 0;
  // Loss and accuracy over every rank's samples; cache hit rates per rank.
  double sums[3] = {loss_sum, double(correct), double(es->samples)};
  if (comm_) {
    std::vector<double> v(sums, sums + 3);
    FLOWFEED_RETURN_IF_ERROR(comm_->AllReduceSum(&v, "reduction of the epoch's metrics"));
    std::copy(v.begin(), v.end(), sums);
  }
  es->global_samples = int64_t(sums[2]);
  es->loss = sums[2] > 0 ? sums[0] / sums[2] : 0;
  es->accuracy = sums[2] > 0 ? sums[1] / sums[2] : 0;
  if (comm_ && !*stopped) {
    FLOWFEED_RETURN_IF_ERROR(GatherCacheHitRates(epoch, es));
    FLOWFEED_RETURN_IF_ERROR(AverageBuffers());
  }
  es->lr = LearningRate(std::max<int64_t>(0, global_step_ - 1));
  es->model_digest = ModelDigest();
  if (!step_seconds.empty()) {
    es->first_step_seconds = step_seconds.front();
    std::vector<double> sorted = step_seconds;
    std::nth_element(sorted.begin(), sorted.begin() + long(sorted.size() / 2), sorted.end());
    es->median_step_seconds = sorted[sorted.size() / 2];
  }
  return Status::Ok();
}

}  // namespace flowfeed
