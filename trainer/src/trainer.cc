// The LibTorch trainer's public face: Trainer::Create, Run()'s loop over the epochs (each
// epoch's training, evaluation and checkpoint), stop requests, live figures, trace and report.
// The parts Run() delegates to are in the files trainer_impl.h names.
//
// Threads: the thread that drives the trainer runs everything here, except RequestStop() (any
// thread, or a signal handler), live() (any thread) and WatchForStop()'s tick (a Poller thread).

#include "flowfeed/trainer.h"

#include <chrono>
#include <mutex>

#include "flowfeed/util/clock.h"
#include "flowfeed/util/poller.h"
#include "train_report.h"
#include "trainer_impl.h"

namespace flowfeed {

namespace {

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

uint64_t Ns(SteadyClock::time_point t) {
  return uint64_t(std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count());
}

}  // namespace

Result<std::unique_ptr<Trainer>> Trainer::Create(const PipelineOptions& options,
                                                 const StageRegistry& registry,
                                                 const std::string& resume, double config_seconds,
                                                 bool accept_changes) {
  auto t = std::make_unique<TorchTrainer>();
  try {
    FLOWFEED_RETURN_IF_ERROR(t->Init(options, registry, resume, config_seconds, accept_changes));
  } catch (const std::exception& e) {
    return Status::Internal(std::string("trainer set-up: ") + e.what());
  }
  return std::unique_ptr<Trainer>(std::move(t));
}

void TorchTrainer::RequestStop() { stop_requested_.store(true, std::memory_order_relaxed); }

// Next() that a stop request interrupts. Before waiting it checks for a stop; while it waits,
// Run()'s WatchForStop() cancels the pipeline on a stop, and the cancelled wait reads as "no
// batch, stopped" (*interrupted, OK) rather than as an error.
Status TorchTrainer::NextOrStop(Pipeline* p, BatchPtr* b, bool* interrupted) {
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

Status TorchTrainer::Run(const std::function<void(const TrainEpochStats&)>& on_epoch,
                         const OnStep& on_step) {
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

std::vector<TraceEvent> TorchTrainer::trace() const {
  std::vector<TraceEvent> out;
  if (!options_.trace) return out;
  out = pipeline_->trace();
  std::lock_guard<std::mutex> lock(trace_mu_);
  out.insert(out.end(), trace_.begin(), trace_.end());
  return out;
}

std::vector<TraceEvent> TorchTrainer::TakeTrace() {
  std::vector<TraceEvent> out;
  if (!options_.trace) return out;
  out = pipeline_->TakeTrace();
  std::lock_guard<std::mutex> lock(trace_mu_);
  out.insert(out.end(), std::make_move_iterator(trace_.begin()),
             std::make_move_iterator(trace_.end()));
  trace_.clear();
  return out;
}

// The training pipeline's epoch, timed by the training loop while the loop runs that epoch:
// the pipeline's own epoch clock also counts what comes before the loop (set-up before epoch
// 1, the previous epoch's evaluation and checkpoint), which would understate the rate.
LiveEpochStats TorchTrainer::live() const {
  LiveEpochStats s = pipeline_->live();
  std::lock_guard<std::mutex> lock(live_mu_);
  if (s.epoch == live_epoch_ + 1)
    s.seconds = SecondsBetween(live_start_, live_running_ ? Clock::now() : live_end_);
  return s;
}

TrainReport TorchTrainer::report() const {
  TrainReport r = report_;
  if (pipeline_) {
    r.pipeline = pipeline_->stats();
    r.pipeline.provenance.libraries.emplace_back("LibTorch", TORCH_VERSION);
  }
  if (!finished_) r.wall_seconds = SecondsSince(created_);
  if (cuda_)
    for (const auto& [name, value] : cuda_->MemoryStats()) r.device_memory[name] = value;
  double parts = 0;
  for (const auto& p : r.setup) parts += p.seconds;
  for (const auto& e : r.epochs) parts += e.seconds + e.eval_seconds + e.checkpoint_seconds;
  r.unexplained_seconds = r.wall_seconds - parts;
  ComputeGap(&r);
  return r;
}

void TorchTrainer::Span(const char* name, Clock::time_point a, Clock::time_point b, int epoch) {
  if (!options_.trace) return;
  std::lock_guard<std::mutex> lock(trace_mu_);
  trace_.push_back(TraceEvent{name, "trainer", Ns(a), Ns(b) - Ns(a), epoch, -1});
}

void TorchTrainer::Sync() {
  if (device_.is_cuda()) torch::cuda::synchronize();
}

}  // namespace flowfeed
