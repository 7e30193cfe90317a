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
#include <sstream>

#include "autocast.h"
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

// The batch's pixels as a host tensor over its memory (no copy), in NCHW order.
torch::Tensor TorchTrainer::HostView(const Batch& b) const {
  std::vector<int64_t> shape = b.shape();
  if (b.layout == Layout::kNHWC) shape = {b.size, b.height, b.width, b.channels};
  auto dtype = b.dtype == DType::kUInt8 ? torch::kUInt8 : torch::kFloat32;
  torch::Tensor x = torch::from_blob(const_cast<uint8_t*>(b.data()), shape,
                                     torch::TensorOptions().dtype(dtype));
  return x;
}

torch::Tensor TorchTrainer::Labels(const Batch& b) const {
  return torch::from_blob(const_cast<int64_t*>(b.labels.data()), {b.size},
                          torch::TensorOptions().dtype(torch::kInt64));
}

// The model's input from the batch's pixels, once they are on the device: NCHW shape, float32;
// uint8 pixels normalised (normalize_on_device) or scaled to [0, 1]; channels_last memory
// order when the model uses it.
torch::Tensor TorchTrainer::OnDevice(torch::Tensor x, const Batch& b) const {
  if (b.layout == Layout::kNHWC) x = x.permute({0, 3, 1, 2});
  if (b.dtype == DType::kUInt8) {
    // Two roundings (multiply, then add), as the normalize stage's conversion does.
    x = scale_.defined() ? x.to(torch::kFloat32).mul_(scale_).add_(shift_)
                         : x.to(torch::kFloat32).div_(255.0);
  }
  return x.contiguous(channels_last_ ? torch::MemoryFormat::ChannelsLast
                                     : torch::MemoryFormat::Contiguous);
}

// The step's inputs on the device. On CUDA with a CudaSteps, the copy from the batch's pinned
// memory and the conversion run on the copy stream, ahead of the compute that uses them (slot:
// the step's). Otherwise the copy is on the current stream (non-blocking from pinned memory on
// CUDA; the batch is kept until the work that reads it has finished).
void TorchTrainer::Inputs(const Batch& b, int slot, torch::Tensor* x, torch::Tensor* y) {
  if (cuda_ && slot >= 0) {
    auto on_device = cuda_->Stage(slot, {HostView(b), Labels(b)},
                                  [&](std::vector<torch::Tensor> t) {
                                    t[0] = OnDevice(t[0], b);
                                    return t;
                                  });
    *x = on_device[0];
    *y = on_device[1];
    return;
  }
  const bool cuda = device_.is_cuda();
  *x = OnDevice(cuda ? HostView(b).to(device_, /*non_blocking=*/true) : HostView(b), b);
  *y = cuda ? Labels(b).to(device_, /*non_blocking=*/true) : Labels(b);
}

// One epoch of steps. With other ranks, each step starts with a small all-reduce in which
// the ranks agree on whether anyone still has a batch, on the global batch size (gradients
// are weighted by it) and on whether to stop; so every rank runs the same steps.
// A step is queued (TrainStep), then completed (CompleteStep: its loss, accuracy and times read
// back): at once on the CPU; one step later with CUDA events, so that the host takes and queues
// step N+1 (its copy overlapping step N on the GPU) before it waits for step N to end.
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
  std::unique_ptr<PendingStep> pending;  // queued, not yet completed (CUDA events only)
  int64_t queued = 0;
  auto complete_pending = [&] {
    if (pending) CompleteStep(epoch, pending.get(), &tally, es, on_step);
    pending.reset();
  };
  while (true) {
    auto s = std::make_unique<PendingStep>();
    s->c.t0 = Clock::now();
    BatchPtr b;
    bool interrupted = false;  // a stop request came before (or during) the wait
    FLOWFEED_RETURN_IF_ERROR(TakeBatch(&exhausted, &b, &interrupted));
    s->c.wait = SecondsSince(s->c.t0);
    s->c.ta = Clock::now();
    StepAgreement agreed;
    FLOWFEED_RETURN_IF_ERROR(AgreeOnStep(b.get(), interrupted, &agreed));
    s->c.agree_seconds = SecondsSince(s->c.ta);
    if (agreed.diverged) return Diverged(!diverged_.empty());
    if (!agreed.anyone_has_data) break;  // every rank's epoch is over
    if (agreed.stop) {
      // Stop at a step boundary: the checkpoint says exactly where.
      *stopped = true;
      complete_pending();
      if (!options_.train.checkpoint.empty()) FLOWFEED_RETURN_IF_ERROR(MidEpochCheckpoint(epoch));
      break;
    }
    if (cuda_) {
      s->slot = int(queued % CudaSteps::kSlots);
      s->previous = pending ? pending->slot : -1;
    }
    s->record.lr = LearningRate(global_step_);
    FLOWFEED_RETURN_IF_ERROR(TrainStep(std::move(b), agreed.global_batch, s.get(), es));
    ++queued;
    s->record.global_step = ++global_step_;
    complete_pending();  // the step before (CUDA), while this one runs
    pending = std::move(s);
    if (!cuda_) complete_pending();
    if (options_.train.checkpoint_every > 0 && !options_.train.checkpoint.empty() &&
        queued % options_.train.checkpoint_every == 0) {
      complete_pending();
      auto tc = Clock::now();
      FLOWFEED_RETURN_IF_ERROR(MidEpochCheckpoint(epoch));
      es->checkpoint_seconds += SecondsSince(tc);
      Span("checkpoint", tc, Clock::now(), epoch + 1);
    }
  }
  complete_pending();
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
  double agree[4] = {b || interrupted ? 1.0 : 0.0, b ? double(b->size) : 0.0,
                     interrupted || stop_requested_.load(std::memory_order_relaxed) ? 1.0 : 0.0,
                     diverged_.empty() ? 0.0 : 1.0};
  if (comm_) {
    std::vector<double> v(agree, agree + 4);
    FLOWFEED_RETURN_IF_ERROR(comm_->AllReduceSum(&v, "step agreement"));
    std::copy(v.begin(), v.end(), agree);
  }
  agreement->anyone_has_data = agree[0] != 0;
  agreement->global_batch = agree[1];
  agreement->stop = agree[2] > 0;
  agreement->diverged = agree[3] > 0;
  return Status::Ok();
}

// Queues one step on `b` (null: this rank has no batch, but steps with the others, adding zero
// gradients). On the CPU each part has run when its clock is read. On CUDA with a CudaSteps the
// host only queues the work and the parts are timed by events; without one (a CUDA LibTorch is
// needed for events) the device is synchronised between the parts, which keeps each part's time
// its own at the cost of the overlap.
Status TorchTrainer::TrainStep(BatchPtr b, double global_batch, PendingStep* s,
                               TrainEpochStats* es) {
  StepClock* c = &s->c;
  const int slot = s->slot;
  auto mark = [&](CudaSteps::Mark m) {
    if (cuda_)
      cuda_->Record(slot, m);
    else
      Sync();
  };
  c->t1 = Clock::now();
  torch::Tensor x, y;
  if (cuda_) cuda_->Record(slot, CudaSteps::kArrive);
  if (b) Inputs(*b, slot, &x, &y);
  mark(CudaSteps::kStart);
  c->t2 = Clock::now();
  SetLearningRate(s->record.lr);
  torch::Tensor logits, loss;
  if (b) {
    AutocastScope autocast(device_, options_.train.amp);
    logits = model_->forward(x);
    loss = torch::nn::functional::cross_entropy(
        logits, y,
        torch::nn::functional::CrossEntropyFuncOptions().label_smoothing(
            options_.train.label_smoothing));
  }
  mark(CudaSteps::kForward);
  c->t3 = Clock::now();
  optimizer_->zero_grad();
  if (b) loss.backward();
  mark(CudaSteps::kBackward);
  c->t4 = Clock::now();
  if (comm_) FLOWFEED_RETURN_IF_ERROR(AverageGradients(b ? double(b->size) : 0.0, global_batch));
  mark(CudaSteps::kAllReduce);
  c->t4b = Clock::now();
  optimizer_->step();
  if (b) {
    torch::Tensor correct = logits.argmax(1).eq(y).sum();
    if (cuda_) {
      // Read back when the step is completed, without a synchronisation now.
      s->loss = loss_host_[size_t(slot)].copy_(loss.detach().to(torch::kFloat32), true);
      s->correct = correct_host_[size_t(slot)].copy_(correct, true);
    } else {
      s->loss = loss.detach();
      s->correct = correct;
    }
  }
  mark(CudaSteps::kEnd);
  c->t5 = Clock::now();
  if (b) {
    s->record.samples = b->size;
    es->samples += b->size;
    if (options_.train.record_indices)
      es->indices.insert(es->indices.end(), b->indices.begin(), b->indices.end());
    position_ = b->end_position;
    batches_done_ = b->number + 1;
  }
  s->batch = std::move(b);
  return Status::Ok();
}

// Reads a queued step's results back (on CUDA: waits for its end on the device), adds its parts
// to the epoch's sums and the trace, gives its batch back to the pipeline and reports the step.
void TorchTrainer::CompleteStep(int epoch, PendingStep* s, EpochTally* tally,
                                TrainEpochStats* es, const OnStep& on_step) {
  const StepClock& c = s->c;
  // The parts: from the device's events, or from the host's clock.
  double wait = c.wait, h2d = SecondsBetween(c.t1, c.t2), forward = SecondsBetween(c.t2, c.t3),
         backward = SecondsBetween(c.t3, c.t4), allreduce = SecondsBetween(c.t4, c.t4b),
         optimizer = SecondsBetween(c.t4b, c.t5);
  if (cuda_) {
    const CudaSteps::Times t = cuda_->Finish(s->slot, s->previous);
    // The device's idle time before the step is its wait for data; an epoch's first step has
    // no step before it, so the host's wait stands for it.
    if (s->previous >= 0) wait = t.idle;
    h2d = t.h2d;
    forward = t.forward;
    backward = t.backward;
    allreduce = t.allreduce;
    optimizer = t.optimizer;
  }
  StepRecord& step = s->record;
  if (s->loss.defined()) {
    step.loss = s->loss.item<double>();
    // Read here, where the host reads it anyway (on CUDA one step late): no extra sync.
    if (!std::isfinite(step.loss) && diverged_.empty()) {
      std::ostringstream what;
      what << "epoch " << epoch + 1 << ", step " << es->steps + 1 << ": the loss is " << step.loss;
      diverged_ = what.str();
    }
    const int64_t correct = s->correct.item<int64_t>();
    tally->correct += correct;
    tally->loss_sum += step.loss * double(step.samples);
    step.accuracy = step.samples > 0 ? double(correct) / double(step.samples) : 0;
  }
  s->batch.reset();  // its memory goes back to the pipeline: nothing reads it any more
  Span("wait for batch", c.t0, c.ta, epoch + 1);
  Span("to device", c.t1, c.t2, epoch + 1);
  Span("forward", c.t2, c.t3, epoch + 1);
  Span("backward", c.t3, c.t4, epoch + 1);
  if (comm_) Span("all-reduce", c.t4, c.t4b, epoch + 1);
  Span("optimizer", c.t4b, c.t5, epoch + 1);
  es->data_wait_seconds += wait;
  es->h2d_seconds += h2d;
  es->forward_seconds += forward;
  es->backward_seconds += backward;
  es->allreduce_seconds += allreduce + c.agree_seconds;
  es->optimizer_seconds += optimizer;
  tally->step_seconds.push_back(h2d + forward + backward + allreduce + optimizer +
                                c.agree_seconds);
  ++es->steps;
  if (on_step) {
    step.epoch = epoch + 1;
    step.step = es->steps;
    step.steps_per_epoch = steps_per_epoch_;
    step.seconds = tally->step_seconds.back() + wait;
    step.data_wait_seconds = wait;
    step.wall_time = WallSeconds();
    on_step(step);
  }
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
  // Loss and accuracy over every rank's samples; cache hit rates per rank. The last sum: ranks
  // whose loss was not finite, so that all of them stop here rather than save the weights.
  double sums[4] = {tally.loss_sum, double(tally.correct), double(es->samples),
                    diverged_.empty() ? 0.0 : 1.0};
  if (comm_) {
    std::vector<double> v(sums, sums + 4);
    FLOWFEED_RETURN_IF_ERROR(comm_->AllReduceSum(&v, "reduction of the epoch's metrics"));
    std::copy(v.begin(), v.end(), sums);
  }
  if (sums[3] > 0) return Diverged(!diverged_.empty());
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

// The error that ends a run whose loss was not finite: `here` when this rank saw it (its
// diverged_ names the step), otherwise another rank did. Its weights are not saved.
Status TorchTrainer::Diverged(bool here) const {
  const std::string& ckpt = options_.train.checkpoint;
  return Status::InvalidArgument(
      (here ? diverged_ : std::string("the loss on another rank was not finite (its message "
                                      "names the epoch and step)")) +
      ": training diverged and stopped; these weights were not saved" +
      (ckpt.empty() ? std::string(" (no checkpoint is configured)")
                    : ", " + ckpt + " holds the last checkpoint written before") +
      ". Lower optimizer.lr (or add a warm-up), or look for bad samples");
}

}  // namespace flowfeed
