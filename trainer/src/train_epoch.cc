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
// the device (a quarter of the bytes over the bus). On CUDA the batch was collated into pinned
// host memory (OpenPipelines) and is copied without blocking the host.
torch::Tensor TorchTrainer::Input(const Batch& b) {
  std::vector<int64_t> shape = b.shape();
  if (b.layout == Layout::kNHWC) shape = {b.size, b.height, b.width, b.channels};
  auto dtype = b.dtype == DType::kUInt8 ? torch::kUInt8 : torch::kFloat32;
  torch::Tensor x = torch::from_blob(const_cast<uint8_t*>(b.data()), shape,
                                     torch::TensorOptions().dtype(dtype));
  if (device_.is_cuda()) {
    // The batch is in pinned memory already (OpenPipelines): copied without blocking the host.
    // It goes back to the pipeline only after the step's Sync(), so the copy has finished.
    x = x.to(device_, /*non_blocking=*/true);
  }
  if (b.layout == Layout::kNHWC) x = x.permute({0, 3, 1, 2});
  if (b.dtype == DType::kUInt8) x = x.to(torch::kFloat32).div_(255.0);
  return x.contiguous();
}

// The batch's labels as a device tensor.
torch::Tensor TorchTrainer::Labels(const Batch& b) {
  return torch::from_blob(const_cast<int64_t*>(b.labels.data()), {b.size},
                          torch::TensorOptions().dtype(torch::kInt64))
      .to(device_);
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
  EpochTally tally;
  const bool resumed_epoch = epoch == start_epoch_;
  position_ = resumed_epoch ? options_.start_position : 0;
  batches_done_ = resumed_epoch ? options_.start_batch : 0;
  bool exhausted = false;  // this rank's epoch ended; the next Next() would start the next one
  while (true) {
    StepClock c;
    c.t0 = Clock::now();
    BatchPtr b;
    bool interrupted = false;  // a stop request came before (or during) the wait
    FLOWFEED_RETURN_IF_ERROR(TakeBatch(&exhausted, &b, &interrupted));
    c.wait = SecondsSince(c.t0);
    c.ta = Clock::now();
    StepAgreement agreed;
    FLOWFEED_RETURN_IF_ERROR(AgreeOnStep(b.get(), interrupted, &agreed));
    c.agree_seconds = SecondsSince(c.ta);
    if (!agreed.anyone_has_data) break;  // every rank's epoch is over
    if (agreed.stop) {
      // Stop at a step boundary: the checkpoint says exactly where.
      *stopped = true;
      if (!options_.train.checkpoint.empty()) FLOWFEED_RETURN_IF_ERROR(MidEpochCheckpoint(epoch));
      break;
    }
    StepRecord step;
    step.lr = LearningRate(global_step_);
    FLOWFEED_RETURN_IF_ERROR(TrainStep(b.get(), agreed.global_batch, &c, &tally, es, &step));
    b.reset();  // the batch's buffer goes back to the pipeline
    RecordStep(epoch, c, &tally, es);
    ++es->steps;
    ++global_step_;
    if (on_step) {
      step.epoch = epoch + 1;
      step.step = es->steps;
      step.steps_per_epoch = steps_per_epoch_;
      step.global_step = global_step_;
      step.seconds = tally.step_seconds.back() + c.wait;
      step.data_wait_seconds = c.wait;
      step.wall_time = WallSeconds();
      on_step(step);
    }
    if (options_.train.checkpoint_every > 0 && !options_.train.checkpoint.empty() &&
        es->steps % options_.train.checkpoint_every == 0) {
      auto tc = Clock::now();
      FLOWFEED_RETURN_IF_ERROR(MidEpochCheckpoint(epoch));
      es->checkpoint_seconds += SecondsSince(tc);
      Span("checkpoint", tc, Clock::now(), epoch + 1);
    }
  }
  return FinishEpoch(epoch, epoch_start, tally, *stopped, es);
}

// The step's batch: the first one was taken during set-up (its wait is a set-up part); after
// this rank's epoch ended it has none, while other ranks may still step.
Status TorchTrainer::TakeBatch(bool* exhausted, BatchPtr* b, bool* interrupted) {
  if (first_) {
    *b = std::move(first_);
  } else if (!*exhausted) {
    FLOWFEED_RETURN_IF_ERROR(NextOrStop(pipeline_.get(), b, interrupted));
  }
  *exhausted = *exhausted || (!*b && !*interrupted);
  return Status::Ok();
}

Status TorchTrainer::AgreeOnStep(const Batch* b, bool interrupted, StepAgreement* agreement) {
  // An interrupted rank still counts as having data, so the step below is a stop, not the
  // epoch's end.
  double agree[3] = {b || interrupted ? 1.0 : 0.0, b ? double(b->size) : 0.0,
                     interrupted || stop_requested_.load(std::memory_order_relaxed) ? 1.0 : 0.0};
  if (comm_) {
    std::vector<double> v(agree, agree + 3);
    FLOWFEED_RETURN_IF_ERROR(comm_->AllReduceSum(&v, "step agreement"));
    std::copy(v.begin(), v.end(), agree);
  }
  agreement->anyone_has_data = agree[0] != 0;
  agreement->global_batch = agree[1];
  agreement->stop = agree[2] > 0;
  return Status::Ok();
}

// One step on `b` (null: this rank has no batch, but steps with the others, adding zero
// gradients). Device synchronisations between the parts keep each part's time its own.
Status TorchTrainer::TrainStep(const Batch* b, double global_batch, StepClock* c,
                               EpochTally* tally, TrainEpochStats* es, StepRecord* step) {
  c->t1 = Clock::now();
  torch::Tensor x, y;
  if (b) {
    x = Input(*b);
    y = Labels(*b);
  }
  Sync();
  c->t2 = Clock::now();
  SetLearningRate(step->lr);
  torch::Tensor logits, loss;
  if (b) {
    logits = model_->forward(x);
    loss = torch::nn::functional::cross_entropy(
        logits, y,
        torch::nn::functional::CrossEntropyFuncOptions().label_smoothing(
            options_.train.label_smoothing));
  }
  Sync();
  c->t3 = Clock::now();
  optimizer_->zero_grad();
  if (b) loss.backward();
  Sync();
  c->t4 = Clock::now();
  if (comm_) FLOWFEED_RETURN_IF_ERROR(AverageGradients(b ? double(b->size) : 0.0, global_batch));
  c->t4b = Clock::now();
  optimizer_->step();
  Sync();
  c->t5 = Clock::now();
  if (b) {
    step->loss = loss.item<double>();
    const int64_t correct = logits.argmax(1).eq(y).sum().item<int64_t>();
    tally->correct += correct;
    tally->loss_sum += step->loss * double(b->size);
    step->samples = b->size;
    step->accuracy = b->size > 0 ? double(correct) / double(b->size) : 0;
    es->samples += b->size;
    if (options_.train.record_indices)
      es->indices.insert(es->indices.end(), b->indices.begin(), b->indices.end());
    position_ = b->end_position;
    batches_done_ = b->number + 1;
  }
  return Status::Ok();
}

// The step's parts into the epoch's sums and the trace.
void TorchTrainer::RecordStep(int epoch, const StepClock& c, EpochTally* tally,
                              TrainEpochStats* es) {
  Span("wait for batch", c.t0, c.ta, epoch + 1);
  Span("to device", c.t1, c.t2, epoch + 1);
  Span("forward", c.t2, c.t3, epoch + 1);
  Span("backward", c.t3, c.t4, epoch + 1);
  if (comm_) Span("all-reduce", c.t4, c.t4b, epoch + 1);
  Span("optimizer", c.t4b, c.t5, epoch + 1);
  es->data_wait_seconds += c.wait;
  es->h2d_seconds += SecondsBetween(c.t1, c.t2);
  es->forward_seconds += SecondsBetween(c.t2, c.t3);
  es->backward_seconds += SecondsBetween(c.t3, c.t4);
  es->allreduce_seconds += SecondsBetween(c.t4, c.t4b) + c.agree_seconds;
  es->optimizer_seconds += SecondsBetween(c.t4b, c.t5);
  tally->step_seconds.push_back(SecondsBetween(c.t1, c.t5) + c.agree_seconds);
}

// The epoch's end: its clock stops, its metrics are reduced over the ranks (a stopped epoch's
// ranks skip what only a whole epoch needs), and its figures are completed.
Status TorchTrainer::FinishEpoch(int epoch, Clock::time_point epoch_start,
                                 const EpochTally& tally, bool stopped, TrainEpochStats* es) {
  {
    auto epoch_end = Clock::now();
    std::lock_guard<std::mutex> lock(live_mu_);
    live_end_ = epoch_end;
    live_running_ = false;
    es->seconds = SecondsBetween(epoch_start, epoch_end);
  }
  es->samples_per_second = es->seconds > 0 ? double(es->samples) / es->seconds : 0;
  // Loss and accuracy over every rank's samples; cache hit rates per rank.
  double sums[3] = {tally.loss_sum, double(tally.correct), double(es->samples)};
  if (comm_) {
    std::vector<double> v(sums, sums + 3);
    FLOWFEED_RETURN_IF_ERROR(comm_->AllReduceSum(&v, "reduction of the epoch's metrics"));
    std::copy(v.begin(), v.end(), sums);
  }
  es->global_samples = int64_t(sums[2]);
  es->loss = sums[2] > 0 ? sums[0] / sums[2] : 0;
  es->accuracy = sums[2] > 0 ? sums[1] / sums[2] : 0;
  if (comm_ && !stopped) {
    FLOWFEED_RETURN_IF_ERROR(GatherCacheHitRates(epoch, es));
    FLOWFEED_RETURN_IF_ERROR(AverageBuffers());
  }
  es->lr = LearningRate(std::max<int64_t>(0, global_step_ - 1));
  es->model_digest = ModelDigest();
  if (!tally.step_seconds.empty()) {
    es->first_step_seconds = tally.step_seconds.front();
    std::vector<double> sorted = tally.step_seconds;
    std::nth_element(sorted.begin(), sorted.begin() + long(sorted.size() / 2), sorted.end());
    es->median_step_seconds = sorted[sorted.size() / 2];
  }
  return Status::Ok();
}

}  // namespace flowfeed
