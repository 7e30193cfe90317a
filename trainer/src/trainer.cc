// The LibTorch trainer: pipeline batches -> device -> forward/backward/step, timed part by part.

#include "flowfeed/trainer.h"

#include <xxhash.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <mutex>
#include <cstdio>
#include <filesystem>
#include <cstdlib>
#include <sstream>
#include <thread>

#include "flowfeed/pipeline.h"
#include "distributed.h"
#include "models.h"
#include "train_report.h"
#include "flowfeed/util/clock.h"
#include "flowfeed/util/file.h"
#include "flowfeed/util/poller.h"

namespace flowfeed {

namespace {

using Clock = SteadyClock;

// 2 added mid-epoch positions and the world size; 1 (epoch ends only) is still read.
constexpr const char* kCheckpointFormat = "flowfeed-checkpoint-2";
constexpr const char* kCheckpointFormatV1 = "flowfeed-checkpoint-1";

// Removes a leftover temporary file; never throws (a failure here must not hide the real one).
void RemoveQuietly(const std::string& path) {
  std::error_code ec;
  std::filesystem::remove(path, ec);
}

// Runs beside Trainer::Run(): a stop request that finds the consumer waiting for a batch cancels
// the pipeline it waits on, so that a stop does not first wait for slow (or stuck) storage to
// deliver a batch that will not be trained on.
std::unique_ptr<Poller> WatchForStop(const std::atomic<bool>* stop,
                                     const std::atomic<Pipeline*>* waiting) {
  return std::make_unique<Poller>(
      std::chrono::milliseconds(20), [stop, waiting, cancelled = (Pipeline*)nullptr]() mutable {
        if (!stop->load(std::memory_order_relaxed)) return true;
        Pipeline* p = waiting->load();
        if (p && p != cancelled) {
          p->Cancel();  // thread-safe against the consumer's Next()
          cancelled = p;
        }
        return true;
      });
}

class TorchTrainer final : public Trainer {
 public:
  Status Init(const PipelineOptions& options_in, const StageRegistry& registry,
              const std::string& resume, double config_seconds) {
    created_ = Clock::now() - std::chrono::duration_cast<Clock::duration>(
                                  std::chrono::duration<double>(config_seconds));
    options_ = options_in;
    report_.setup.push_back({"config", config_seconds});
    const TrainOptions& t = options_.train;

    // A checkpoint to resume from: read first, it decides the first epoch.
    torch::serialize::InputArchive resumed;
    std::string resumed_signature;
    if (!resume.empty()) {
      auto t0 = Clock::now();
      FLOWFEED_RETURN_IF_ERROR(ReadCheckpoint(resume, &resumed, &resumed_signature));
      const int world = options_.distributed.world_size;
      if (resumed_world_ != world)
        return Status::InvalidArgument(
            "checkpoint " + resume + " was written by a run of " + std::to_string(resumed_world_) +
            " rank(s), this run has " + std::to_string(world) +
            " (WORLD_SIZE); a resume needs the same world size");
      if (!resumed_positions_.empty()) {
        options_.start_position = resumed_positions_[size_t(options_.distributed.rank)];
        options_.start_batch = resumed_batches_[size_t(options_.distributed.rank)];
      }
      if (start_epoch_ >= options_.epochs)
        return Status::InvalidArgument("checkpoint " + resume + " finished epoch " +
                                       std::to_string(start_epoch_) + "; the config trains " +
                                       std::to_string(options_.epochs) +
                                       " epochs, so there is nothing left (raise epochs)");
      options_.start_epoch = start_epoch_;
      report_.setup.push_back({"read_checkpoint", SecondsSince(t0)});
    }
    report_.start_epoch = start_epoch_;
    report_.start_position = options_.start_position;
    const DistributedOptions& dist = options_.distributed;
    report_.rank = dist.rank;
    report_.world_size = dist.world_size;
    if (dist.world_size > 1) {
      auto t0 = Clock::now();
      auto comm = Communicator::Create(dist);
      if (!comm.ok()) return comm.status();
      comm_ = std::move(comm.value());
      report_.backend = comm_->backend();
      report_.shard_policy = ShardPolicyName(dist.policy);
      report_.uneven = UnevenPolicyName(dist.uneven);
      report_.setup.push_back({"rendezvous", SecondsSince(t0)});
    }

    // LibTorch's own thread pool: Debian's build starts with one OpenMP thread here; use every
    // core unless the user chose with OMP_NUM_THREADS.
    auto tp = Clock::now();
    // Processes of one host share its cores (LOCAL_WORLD_SIZE, as torchrun sets it).
    if (!std::getenv("OMP_NUM_THREADS")) {
      int local = 1;
      if (const char* lw = std::getenv("LOCAL_WORLD_SIZE")) local = std::max(1, std::atoi(lw));
      torch::set_num_threads(std::max(1, int(std::thread::hardware_concurrency()) / local));
    }
    report_.torch_threads = torch::get_num_threads();
    report_.setup.push_back({"torch_threads", SecondsSince(tp)});

    // Device and CUDA context.
    tp = Clock::now();
    const bool have_cuda = torch::cuda::is_available();
    report_.setup.push_back({"device_probe", SecondsSince(tp)});
    if (t.device == "cuda" && !have_cuda)
      return Status::InvalidArgument("device: cuda was asked for, but LibTorch sees no GPU");
    if (t.amp)
      return Status::Unsupported("amp: mixed precision is not implemented yet; remove `amp: true`");
    const bool cuda = t.device == "cuda" || (t.device == "auto" && have_cuda);
    device_ = cuda ? torch::Device(torch::kCUDA, 0) : torch::Device(torch::kCPU);
    report_.device = device_.str();
    report_.synchronized_timing = cuda;
    if (cuda) {
      auto t0 = Clock::now();
      torch::empty({1}, torch::TensorOptions().device(device_));  // creates the context
      Sync();
      report_.setup.push_back({"cuda_context", SecondsSince(t0)});
    }

    // Pipelines: training, and evaluation (deterministic, dataset order, shallow prefetch).
    auto t0 = Clock::now();
    auto train = Pipeline::Open(options_, registry);
    if (!train.ok()) return train.status();
    pipeline_ = std::move(train.value());
    report_.setup.push_back({"pipeline_open", SecondsSince(t0)});
    if (t.eval.enabled) {
      t0 = Clock::now();
      PipelineOptions e = options_;
      e.source = t.eval.source;
      e.pipeline = t.eval.pipeline;
      e.shuffle = false;
      e.batch.size = t.eval.batch_size > 0 ? t.eval.batch_size : options_.batch.size;
      e.batch.drop_last = false;
      e.prefetch = 1;
      e.max_in_flight = 0;
      e.cold = false;
      e.cache.mode = options_.cache.mode == CacheMode::kOff ? CacheMode::kOff : CacheMode::kMemory;
      e.cache.path.clear();
      e.cache.after.clear();
      e.start_position = 0;  // evaluation runs whole, once per remaining epoch
      e.start_batch = 0;
      // Every evaluation sample exactly once over the ranks; the sums are reduced.
      e.distributed.uneven = UnevenPolicy::kAll;
      e.distributed.policy = ShardPolicy::kGlobal;
      auto ep = Pipeline::Open(e, registry);
      if (!ep.ok()) return ep.status().WithContext("eval");
      eval_ = std::move(ep.value());
      report_.setup.push_back({"eval_pipeline_open", SecondsSince(t0)});
    }

    // The first batch gives the input shape the model is built for; it is trained on as the
    // first step of the first epoch.
    t0 = Clock::now();
    FLOWFEED_RETURN_IF_ERROR(pipeline_->Next(&first_));
    if (!first_) return Status::Internal("the training pipeline produced no batch");
    report_.setup.push_back({"first_batch", SecondsSince(t0)});

    t0 = Clock::now();
    // The model's initial weights (and dropout) come from LibTorch's generator: seeded, so the
    // same config gives the same model.
    torch::manual_seed(options_.seed);
    int classes = t.model.num_classes > 0 ? t.model.num_classes : int(pipeline_->num_classes());
    auto built = BuildModel(t.model, first_->channels, first_->height, first_->width, classes);
    if (!built.ok()) return built.status();
    model_ = built.value();
    // Rank 0's weights are broadcast below; dropout should still differ between ranks, as
    // their samples do. (Rank 0 keeps the single-process sequence.)
    if (options_.distributed.world_size > 1 && options_.distributed.rank > 0)
      torch::manual_seed(options_.seed + 0x9E3779B97F4A7C15ull * uint64_t(options_.distributed.rank));
    report_.model = t.model.type + " (" + std::to_string(model_->parameter_count()) + " parameters)";
    report_.setup.push_back({"model_build", SecondsSince(t0)});

    t0 = Clock::now();
    model_->to(device_);
    Sync();
    report_.setup.push_back({"model_to_device", SecondsSince(t0)});

    t0 = Clock::now();
    const OptimizerOptions& o = t.optimizer;
    if (o.type == "sgd") {
      optimizer_ = std::make_unique<torch::optim::SGD>(
          model_->parameters(), torch::optim::SGDOptions(o.lr)
                                    .momentum(o.momentum)
                                    .nesterov(o.nesterov)
                                    .weight_decay(o.weight_decay));
    } else if (o.type == "adamw") {
      optimizer_ = std::make_unique<torch::optim::AdamW>(
          model_->parameters(), torch::optim::AdamWOptions(o.lr)
                                    .betas({o.beta1, o.beta2})
                                    .weight_decay(o.weight_decay));
    } else {
      return Status::InvalidArgument("optimizer.type: expected sgd or adamw, got '" + o.type + "'");
    }
    report_.setup.push_back({"optimizer", SecondsSince(t0)});

    if (!resume.empty()) {
      if (resumed_signature != model_->signature())
        return Status::InvalidArgument("checkpoint " + resume + " was written for the model '" +
                                       resumed_signature + "', but this config builds '" +
                                       model_->signature() + "'");
      t0 = Clock::now();
      try {
        torch::serialize::InputArchive m, opt;
        resumed.read("model", m);
        model_->load(m);
        resumed.read("optimizer", opt);
        optimizer_->load(opt);
        model_->to(device_);
        torch::Tensor rng;
        resumed.read("cpu_rng_state", rng);
        c10::IValue states;
        if (resumed.try_read("cpu_rng_states", states) && states.isTensorList()) {
          auto list = states.toTensorVector();
          if (size_t(options_.distributed.rank) < list.size()) rng = list[size_t(options_.distributed.rank)];
        }
        at::Generator gen = at::detail::getDefaultCPUGenerator();
        gen.set_state(rng);
      } catch (const std::exception& e) {
        return Status::Corrupt("checkpoint " + resume + ": cannot restore the model or optimiser: " +
                               FirstLine(e.what()));
      }
      report_.setup.push_back({"restore_state", SecondsSince(t0)});
    }
    if (comm_) {
      // Every rank starts from rank 0's weights (a resumed run's ranks read the same file).
      t0 = Clock::now();
      std::vector<torch::Tensor> state = ModelState();
      FLOWFEED_RETURN_IF_ERROR(comm_->Broadcast(state, "broadcast of rank 0's parameters"));
      CopyBack(state);
      report_.setup.push_back({"broadcast_parameters", SecondsSince(t0)});
    }
    steps_per_epoch_ = pipeline_->batches_per_epoch();
    return Status::Ok();
  }

  void RequestStop() override { stop_requested_.store(true, std::memory_order_relaxed); }

  // Next() that a stop request interrupts. Before waiting it checks for a stop; while it waits,
  // Run()'s WatchForStop() cancels the pipeline on a stop, and the cancelled wait reads as "no
  // batch, stopped" (*interrupted, OK) rather than as an error.
  Status NextOrStop(Pipeline* p, BatchPtr* b, bool* interrupted) {
    *interrupted = false;
    if (stop_requested_.load(std::memory_order_relaxed)) {
      *interrupted = true;
      return Status::Ok();
    }
    waiting_in_.store(p);
    Status s = p->Next(b);
    waiting_in_.store(nullptr);
    if (!s.ok() && s.code() == StatusCode::kCancelled &&
        stop_requested_.load(std::memory_order_relaxed)) {
      b->reset();
      *interrupted = true;
      return Status::Ok();
    }
    return s;
  }

  Status Run(const std::function<void(const TrainEpochStats&)>& on_epoch,
             const std::function<void(int, int64_t, int64_t, double)>& on_step) override {
    const std::unique_ptr<Poller> watcher = WatchForStop(&stop_requested_, &waiting_in_);
    for (int epoch = start_epoch_; epoch < options_.epochs; ++epoch) {
      TrainEpochStats es;
      es.epoch = epoch + 1;
      es.resumed_at = epoch == start_epoch_ ? options_.start_position : 0;
      bool stopped = false;
      FLOWFEED_RETURN_IF_ERROR(TrainEpoch(epoch, &es, on_step, &stopped));
      if (stopped) {
        report_.epochs.push_back(es);
        report_.wall_seconds = SecondsSince(created_);
        finished_ = true;
        return Status::Cancelled(
            "stopped during epoch " + std::to_string(epoch + 1) +
            (options_.train.checkpoint.empty()
                 ? std::string(" (no checkpoint configured, so nothing was saved)")
                 : " after step " + std::to_string(es.steps) + "; " +
                       options_.train.checkpoint + " holds the position (resume with --resume " +
                       options_.train.checkpoint + ")"));
      }
      if (eval_) FLOWFEED_RETURN_IF_ERROR(Evaluate(&es));
      if (!options_.train.checkpoint.empty()) {
        auto t0 = Clock::now();
        FLOWFEED_RETURN_IF_ERROR(WriteCheckpoint(epoch + 1, {}, {}));
        es.checkpoint_seconds = SecondsSince(t0);
        Span("checkpoint", t0, Clock::now(), epoch + 1);
      }
      report_.epochs.push_back(es);
      if (on_epoch) on_epoch(es);
    }
    report_.wall_seconds = SecondsSince(created_);  // report() adds the pipeline's stats
    finished_ = true;
    return Status::Ok();
  }

  std::vector<TraceEvent> trace() const override {
    std::vector<TraceEvent> out;
    if (!options_.trace) return out;
    out = pipeline_->trace();
    out.insert(out.end(), trace_.begin(), trace_.end());
    return out;
  }

  // The training pipeline's epoch, timed by the training loop while the loop runs that epoch:
  // the pipeline's own epoch clock also counts what comes before the loop (set-up before epoch
  // 1, the previous epoch's evaluation and checkpoint), which would understate the rate.
  LiveEpochStats live() const override {
    LiveEpochStats s = pipeline_->live();
    std::lock_guard<std::mutex> lock(live_mu_);
    if (s.epoch == live_epoch_ + 1)
      s.seconds =
          std::chrono::duration<double>((live_running_ ? Clock::now() : live_end_) - live_start_)
              .count();
    return s;
  }

  TrainReport report() const override {
    TrainReport r = report_;
    if (pipeline_) r.pipeline = pipeline_->stats();
    if (!finished_) r.wall_seconds = SecondsSince(created_);
    double parts = 0;
    for (const auto& p : r.setup) parts += p.seconds;
    for (const auto& e : r.epochs) parts += e.seconds + e.eval_seconds + e.checkpoint_seconds;
    r.unexplained_seconds = r.wall_seconds - parts;
    ComputeGap(&r);
    return r;
  }

 private:
  static uint64_t Ns(Clock::time_point t) {
    return uint64_t(std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count());
  }
  void Span(const char* name, Clock::time_point a, Clock::time_point b, int epoch) {
    if (options_.trace) trace_.push_back(TraceEvent{name, "trainer", Ns(a), Ns(b) - Ns(a), epoch, -1});
  }

  void Sync() {
    if (device_.is_cuda()) torch::cuda::synchronize();
  }

  static std::string FirstLine(const std::string& s) { return s.substr(0, s.find('\n')); }

  // The learning rate at `step` (0-based, counting from the start of training).
  double LearningRate(int64_t step) const {
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

  void SetLearningRate(double lr) {
    for (auto& group : optimizer_->param_groups()) group.options().set_lr(lr);
  }

  // The batch as a device tensor: float pixels as they are; uint8 pixels scaled to [0, 1] on
  // the device (a quarter of the bytes over the bus). On CUDA the batch is staged in pinned
  // host memory (allocated once, grown when needed) and copied without blocking the host.
  torch::Tensor Input(const Batch& b) {
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
  Status TrainEpoch(int epoch, TrainEpochStats* es,
                    const std::function<void(int, int64_t, int64_t, double)>& on_step,
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

  // Parameters then buffers (batch-norm statistics), in the model's order.
  std::vector<torch::Tensor> ModelState() {
    std::vector<torch::Tensor> out;
    for (const auto& p : model_->parameters()) out.push_back(p.detach().to(torch::kCPU).clone());
    for (const auto& b : model_->buffers()) out.push_back(b.detach().to(torch::kCPU).clone());
    return out;
  }

  void CopyBack(const std::vector<torch::Tensor>& state) {
    torch::NoGradGuard no_grad;
    size_t i = 0;
    for (auto& p : model_->parameters()) p.copy_(state[i++]);
    for (auto& b : model_->buffers()) b.copy_(state[i++]);
  }

  // XXH3 of the model's parameters and buffers as they are in memory (CPU copies, in order).
  std::string ModelDigest() {
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
  Status AverageGradients(double mine, double total) {
    std::vector<torch::Tensor> grads;
    std::vector<torch::Tensor> params = model_->parameters();
    for (auto& p : params) {
      if (!p.grad().defined()) p.mutable_grad() = torch::zeros_like(p);
      grads.push_back(p.grad().to(torch::kCPU) * (total > 0 ? mine / total : 0.0));
    }
    FLOWFEED_RETURN_IF_ERROR(comm_->AllReduceSum(grads, "all-reduce of the gradients"));
    for (size_t i = 0; i < params.size(); ++i) params[i].mutable_grad().copy_(grads[i]);
    return Status::Ok();
  }

  // Batch-norm statistics are gathered by each rank from its own samples; at the epoch's end
  // they become the mean over the ranks, so evaluation, checkpoints and every rank's model agree.
  // (Counters such as num_batches_tracked are equal everywhere already.)
  Status AverageBuffers() {
    std::vector<torch::Tensor> floats;
    std::vector<torch::Tensor> buffers = model_->buffers();
    for (auto& b : buffers)
      if (b.is_floating_point()) floats.push_back(b.detach().to(torch::kCPU).clone());
    if (floats.empty()) return Status::Ok();
    FLOWFEED_RETURN_IF_ERROR(comm_->AllReduceSum(floats, "averaging the batch-norm statistics"));
    torch::NoGradGuard no_grad;
    size_t i = 0;
    for (auto& b : buffers)
      if (b.is_floating_point()) b.copy_(floats[i++].div_(double(comm_->world_size())));
    return Status::Ok();
  }

  // Every rank's CPU generator state (dropout draws from it), for an exact resume of each.
  Status GatherRngStates(std::vector<torch::Tensor>* out) {
    torch::Tensor mine = at::detail::getDefaultCPUGenerator().get_state();
    const int w = comm_ ? comm_->world_size() : 1, r = comm_ ? comm_->rank() : 0;
    const int64_t n = mine.numel();
    std::vector<double> v(size_t(w * n), 0.0);
    const uint8_t* p = mine.data_ptr<uint8_t>();
    for (int64_t i = 0; i < n; ++i) v[size_t(r * n + i)] = double(p[i]);
    if (comm_) FLOWFEED_RETURN_IF_ERROR(comm_->AllReduceSum(&v, "gathering the generator states"));
    out->clear();
    for (int k = 0; k < w; ++k) {
      torch::Tensor t = torch::empty({n}, torch::kUInt8);
      for (int64_t i = 0; i < n; ++i) t.data_ptr<uint8_t>()[i] = uint8_t(v[size_t(k * n + i)]);
      out->push_back(t);
    }
    return Status::Ok();
  }

  Status GatherCacheHitRates(int epoch, TrainEpochStats* es) {
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

  // Every rank's position and batch count go into one checkpoint, written by rank 0.
  Status MidEpochCheckpoint(int epoch) {
    const int w = comm_ ? comm_->world_size() : 1, r = comm_ ? comm_->rank() : 0;
    std::vector<double> v(size_t(2 * w), 0.0);
    v[size_t(2 * r)] = double(position_);
    v[size_t(2 * r + 1)] = double(batches_done_);
    if (comm_) FLOWFEED_RETURN_IF_ERROR(comm_->AllReduceSum(&v, "gathering the checkpoint positions"));
    std::vector<int64_t> positions, batches;
    const int64_t length = pipeline_->epoch_length();
    bool at_end = false;
    for (int i = 0; i < w; ++i) {
      positions.push_back(int64_t(v[size_t(2 * i)]));
      batches.push_back(int64_t(v[size_t(2 * i + 1)]));
      at_end = at_end || positions.back() >= length;
    }
    // A rank at its order's end has nothing left to resume from; the epoch-end checkpoint
    // (or the previous one) stands instead. All ranks see the same positions, so they agree.
    if (at_end) return Status::Ok();
    return WriteCheckpoint(epoch, positions, batches);
  }
  Status Evaluate(TrainEpochStats* es) {
    torch::NoGradGuard no_grad;
    model_->eval();
    auto t0 = Clock::now();
    double loss_sum = 0;
    int64_t correct = 0, n = 0;
    bool abandoned = false;
    while (true) {
      BatchPtr b;
      FLOWFEED_RETURN_IF_ERROR(NextOrStop(eval_.get(), &b, &abandoned).WithContext("eval"));
      if (!b) break;
      torch::Tensor x = Input(*b);
      torch::Tensor y = torch::from_blob(const_cast<int64_t*>(b->labels.data()), {b->size},
                                         torch::TensorOptions().dtype(torch::kInt64))
                            .to(device_);
      torch::Tensor logits = model_->forward(x);
      loss_sum += torch::nn::functional::cross_entropy(
                      logits, y,
                      torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum))
                      .item<double>();
      correct += logits.argmax(1).eq(y).sum().item<int64_t>();
      n += b->size;
    }
    if (comm_) {
      std::vector<double> v{loss_sum, double(correct), double(n)};
      FLOWFEED_RETURN_IF_ERROR(comm_->AllReduceSum(&v, "reduction of the evaluation metrics"));
      loss_sum = v[0];
      correct = int64_t(v[1]);
      n = int64_t(v[2]);
    }
    Span("evaluate", t0, Clock::now(), es->epoch);
    // A stop during evaluation abandons it (every rank still joins the reduction above once);
    // the metrics of a part of the evaluation set would mislead, so none are reported.
    if (abandoned || stop_requested_.load(std::memory_order_relaxed)) return Status::Ok();
    es->has_eval = true;
    es->eval_samples = n;
    es->eval_loss = n ? loss_sum / double(n) : 0;
    es->eval_accuracy = n ? double(correct) / double(n) : 0;
    es->eval_seconds = SecondsSince(t0);
    return Status::Ok();
  }

  // Model, optimiser, the epoch finished and what the checkpoint is for, written to a temporary
  // file, made durable, then renamed over the old one: a crash leaves the old checkpoint or
  // the new one, never a torn one.
  // `positions` / `batches` (one per rank, empty at an epoch's end): how far into epoch
  // `epochs_done` (0-based) each rank got. Only rank 0 writes; the others return at once.
  Status WriteCheckpoint(int epochs_done, const std::vector<int64_t>& positions,
                         const std::vector<int64_t>& batches) {
    std::vector<torch::Tensor> rng_states;
    FLOWFEED_RETURN_IF_ERROR(GatherRngStates(&rng_states));
    if (comm_ && comm_->rank() != 0) return Status::Ok();
    const std::string& path = options_.train.checkpoint;
    const std::string tmp = path + ".tmp";  // AtomicFile's temporary name
    std::string bytes;
    try {
      std::filesystem::path parent = std::filesystem::path(path).parent_path();
      if (!parent.empty()) std::filesystem::create_directories(parent);
      torch::serialize::OutputArchive archive, model, opt;
      model_->save(model);
      optimizer_->save(opt);
      archive.write("format", c10::IValue(std::string(kCheckpointFormat)));
      archive.write("signature", c10::IValue(model_->signature()));
      archive.write("epochs_done", c10::IValue(int64_t(epochs_done)));
      archive.write("global_step", c10::IValue(global_step_));
      archive.write("world_size", c10::IValue(int64_t(options_.distributed.world_size)));
      archive.write("positions", c10::IValue(positions));
      archive.write("batches", c10::IValue(batches));
      archive.write("model", model);
      archive.write("optimizer", opt);
      // Dropout draws from LibTorch's generator: its state makes a resumed run continue exactly.
      archive.write("cpu_rng_state", at::detail::getDefaultCPUGenerator().get_state());
      archive.write("cpu_rng_states", c10::IValue(c10::List<at::Tensor>(rng_states)));
      // Serialised in memory, written by us: LibTorch's file writer throws from its destructor
      // when the disk fills up (which ends the process), and it never fsyncs.
      std::ostringstream out;
      archive.save_to(out);
      bytes = out.str();
    } catch (const std::exception& e) {
      RemoveQuietly(tmp);
      return Status::IoError("checkpoint " + path + ": cannot write: " + FirstLine(e.what()));
    }
    // kFileAndDir: a resumed run relies on it. The folder's sync used to be best effort (its
    // failure ignored), which let a crash lose a checkpoint the run had reported as written.
    // On any failure the previous checkpoint is left as it was and the temporary one removed.
    Status s = WriteFileAtomically(nullptr, path, bytes, Durability::kFileAndDir);
    if (!s.ok()) return Status::IoError("checkpoint " + path + ": cannot write " + s.message());
    return Status::Ok();
  }

  Status ReadCheckpoint(const std::string& path, torch::serialize::InputArchive* archive,
                        std::string* signature) {
    if (!std::filesystem::exists(path)) return Status::NotFound("checkpoint " + path + " does not exist");
    try {
      archive->load_from(path);
      c10::IValue format, sig, epochs, step;
      archive->read("format", format);
      const bool v1 = format.isString() && format.toStringRef() == kCheckpointFormatV1;
      if (!format.isString() || (format.toStringRef() != kCheckpointFormat && !v1))
        return Status::Corrupt("checkpoint " + path + " is not a flowfeed checkpoint (format " +
                               (format.isString() ? format.toStringRef() : std::string("?")) + ")");
      archive->read("signature", sig);
      archive->read("epochs_done", epochs);
      archive->read("global_step", step);
      *signature = sig.toStringRef();
      start_epoch_ = int(epochs.toInt());
      global_step_ = step.toInt();
      resumed_world_ = 1;
      if (!v1) {
        c10::IValue world, positions, batches;
        archive->read("world_size", world);
        archive->read("positions", positions);
        archive->read("batches", batches);
        resumed_world_ = int(world.toInt());
        resumed_positions_ = positions.toIntVector();
        resumed_batches_ = batches.toIntVector();
        if (!resumed_positions_.empty() &&
            (int(resumed_positions_.size()) != resumed_world_ ||
             resumed_batches_.size() != resumed_positions_.size()))
          return Status::Corrupt("checkpoint " + path + " has " +
                                 std::to_string(resumed_positions_.size()) +
                                 " positions for a world of " + std::to_string(resumed_world_));
      }
    } catch (const std::exception& e) {
      return Status::Corrupt("checkpoint " + path + " is unreadable (truncated or not a checkpoint): " +
                             FirstLine(e.what()));
    }
    return Status::Ok();
  }

  PipelineOptions options_;
  Clock::time_point created_;
  torch::Device device_{torch::kCPU};
  std::unique_ptr<Pipeline> pipeline_, eval_;
  BatchPtr first_;
  std::shared_ptr<ClassifierImpl> model_;
  std::unique_ptr<torch::optim::Optimizer> optimizer_;
  int start_epoch_ = 0;
  std::unique_ptr<Communicator> comm_;  // null when this process trains alone
  std::atomic<bool> stop_requested_{false};
  std::atomic<Pipeline*> waiting_in_{nullptr};  // the pipeline whose Next() the consumer is in
  // Where the epoch in progress has got to: the last trained batch's end_position and number.
  int64_t position_ = 0, batches_done_ = 0;
  // From the checkpoint being resumed: its world size and per-rank positions (mid-epoch only).
  int resumed_world_ = 1;
  std::vector<int64_t> resumed_positions_, resumed_batches_;
  bool finished_ = false;  // Run() completed: wall_seconds is final
  int64_t global_step_ = 0;
  int64_t steps_per_epoch_ = 0;
  TrainReport report_;
  std::vector<TraceEvent> trace_;  // the trainer's own spans (options_.trace)
  torch::Tensor pinned_;           // CUDA: the pinned staging buffer for batches
  // The epoch the training loop runs (or ran last) and its clock, for live(); protected by
  // live_mu_, since live() may be called from any thread.
  mutable std::mutex live_mu_;
  int live_epoch_ = -1;  // 0-based; -1 before the first
  Clock::time_point live_start_, live_end_;
  bool live_running_ = false;
};

}  // namespace

Result<std::unique_ptr<Trainer>> Trainer::Create(const PipelineOptions& options,
                                                 const StageRegistry& registry,
                                                 const std::string& resume, double config_seconds) {
  auto t = std::make_unique<TorchTrainer>();
  try {
    FLOWFEED_RETURN_IF_ERROR(t->Init(options, registry, resume, config_seconds));
  } catch (const std::exception& e) {
    return Status::Internal(std::string("trainer set-up: ") + e.what());
  }
  return std::unique_ptr<Trainer>(std::move(t));
}

}  // namespace flowfeed
