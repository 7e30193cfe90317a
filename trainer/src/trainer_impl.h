// trainer_impl.h (internal; needs LibTorch): TorchTrainer, the Trainer that Trainer::Create
// returns (pipeline batches -> device -> forward/backward/step, timed part by part), and where
// each part of it lives.
//
// One class, its methods carved by role into files: trainer.cc (the public face: Create, Run's
// loop over the epochs, stop requests, live figures, trace and report), setup.cc (Init: resume,
// ranks, threads, device, pipelines, model, optimiser), train_epoch.cc (an epoch of steps, the
// learning-rate schedule, batches to the device), evaluate.cc (the evaluation after an epoch),
// checkpoint.cc (writing, reading and restoring checkpoints, checking a resume's settings;
// checkpoint_seal.h is its checksum, resume_fingerprint.h its record of the settings),
// ranks.cc (what the ranks exchange to keep their models equal, and the model digest that
// shows it) and train_report.cc (the ledger: the first-epoch gap, the text and the JSON report).
//
// Threads: one thread drives the trainer (Create, then Run, report, trace) and owns every member
// not said otherwise. RequestStop() may come from any thread or a signal handler (one atomic
// store); live() from any thread (live_mu_). Run()'s stop watcher (WatchForStop) runs on a
// Poller thread of its own and touches only stop_requested_ and waiting_in_.
#pragma once

#include <torch/torch.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "cuda_steps.h"
#include "distributed.h"
#include "flowfeed/pipeline.h"
#include "flowfeed/trainer.h"
#include "flowfeed/util/clock.h"
#include "models.h"
#include "resume_fingerprint.h"

namespace flowfeed {

// Page-locked host memory from LibTorch's CUDA pinned allocator, for the batches of a trainer
// on a GPU (pinned_memory.cc). Call only when LibTorch sees a GPU.
std::shared_ptr<BatchAllocator> CudaPinnedBatchMemory();

// The options of the evaluation pipeline, derived from the training run's (evaluate.cc).
PipelineOptions EvalPipelineOptions(const PipelineOptions& options);

class TorchTrainer final : public Trainer {
 public:
  using Clock = SteadyClock;
  using OnStep = std::function<void(const StepRecord&)>;

  // setup.cc
  Status Init(const PipelineOptions& options_in, const StageRegistry& registry,
              const std::string& resume, double config_seconds, bool accept_changes);

  // trainer.cc
  void RequestStop() override;
  Status Run(const std::function<void(const TrainEpochStats&)>& on_epoch,
             const OnStep& on_step) override;
  std::vector<TraceEvent> trace() const override;
  std::vector<TraceEvent> TakeTrace() override;
  LiveEpochStats live() const override;
  TrainReport report() const override;

 private:
  // One step's clock readings (train_epoch.cc), kept as time points so that the trace's spans
  // and the epoch's sums come from the same readings. t0: waiting for the batch; ta: the ranks'
  // agreement; t1: to device; t2: forward; t3: backward; t4: gradient all-reduce; t4b: the
  // optimiser; t5: the step's end.
  struct StepClock {
    Clock::time_point t0, ta, t1, t2, t3, t4, t4b, t5;
    double wait = 0;           // for the batch (read just before ta)
    double agree_seconds = 0;  // the agreement, charged to the all-reduce
  };
  // What the ranks agreed on before a step (train_epoch.cc).
  struct StepAgreement {
    bool anyone_has_data = false;  // false: every rank's epoch is over
    double global_batch = 0;       // samples in this step over all ranks
    bool stop = false;             // some rank was asked to stop
    bool diverged = false;         // some rank's loss was not finite (diverged_)
  };
  // A step whose work is queued on the device and not yet read back (train_epoch.cc). On CUDA
  // a step is completed one step late, so the host queues the next while the GPU runs it.
  struct PendingStep {
    BatchPtr batch;  // kept until the step has ended: its copy to the device reads it
    StepClock c;
    StepRecord record;
    torch::Tensor loss, correct;  // CPU: the step's scalars; CUDA: pinned host copies of them
    int slot = -1, previous = -1;  // CudaSteps slots (-1: host clock timing)
  };
  // An epoch's running sums (train_epoch.cc).
  struct EpochTally {
    std::vector<double> step_seconds;
    double loss_sum = 0;
    int64_t correct = 0;
  };

  // trainer.cc
  Status NextOrStop(Pipeline* p, BatchPtr* b, bool* interrupted);
  static std::string FirstLine(const std::string& s) { return s.substr(0, s.find('\n')); }
  void Span(const char* name, Clock::time_point a, Clock::time_point b, int epoch);
  void Sync();

  // setup.cc
  Status ReadResume(const std::string& resume, torch::serialize::InputArchive* resumed,
                    std::string* resumed_signature);
  Status JoinRanks();
  void ChooseThreads();
  Status ChooseDevice();
  Status PlanDeviceNormalize(const StageRegistry& registry);
  Status OpenPipelines(const StageRegistry& registry);
  Status MapEvalClasses();
  Status BuildModelForFirstBatch();
  void ToChannelsLast();
  Status BuildOptimizer();
  void WarmUpDevice();

  // train_epoch.cc
  double LearningRate(int64_t step) const;
  void SetLearningRate(double lr);
  torch::Tensor HostView(const Batch& b) const;
  torch::Tensor Labels(const Batch& b) const;
  torch::Tensor OnDevice(torch::Tensor x, const Batch& b) const;
  void Inputs(const Batch& b, int slot, torch::Tensor* x, torch::Tensor* y);
  Status TrainEpoch(int epoch, TrainEpochStats* es, const OnStep& on_step, bool* stopped);
  Status TakeBatch(bool* exhausted, BatchPtr* b, bool* interrupted);
  Status AgreeOnStep(const Batch* b, bool interrupted, StepAgreement* agreement);
  Status TrainStep(BatchPtr b, double global_batch, PendingStep* s, TrainEpochStats* es);
  void CompleteStep(int epoch, PendingStep* s, EpochTally* tally, TrainEpochStats* es,
                    const OnStep& on_step);
  Status FinishEpoch(int epoch, Clock::time_point epoch_start, const EpochTally& tally,
                     bool stopped, TrainEpochStats* es);
  Status Diverged(bool here) const;

  // evaluate.cc
  Status Evaluate(TrainEpochStats* es);

  // ranks.cc
  std::vector<torch::Tensor> ModelState();
  void CopyBack(const std::vector<torch::Tensor>& state);
  Status BroadcastParameters();
  std::string ModelDigest();
  Status AverageGradients(double mine, double total);
  Status AverageBuffers();
  Status GatherCacheHitRates(int epoch, TrainEpochStats* es);

  // checkpoint.cc
  Status GatherRngStates(std::vector<torch::Tensor>* out);
  bool ParametersFinite();
  Status MidEpochCheckpoint(int epoch);
  Status WriteCheckpoint(int epochs_done, const std::vector<int64_t>& positions,
                         const std::vector<int64_t>& batches);
  Status ReadCheckpoint(const std::string& path, torch::serialize::InputArchive* archive,
                        std::string* signature);
  Status RestoreState(const std::string& resume, torch::serialize::InputArchive& resumed,
                      const std::string& resumed_signature);
  Status CheckResumedSettings(const std::string& resume, bool* fresh_optimizer);

  PipelineOptions options_;
  // The options as configured (options_ loses a normalize moved to the device): what the
  // resume fingerprint records.
  PipelineOptions configured_;
  bool accept_changes_ = false;  // --resume-changed
  // This run's resume fingerprint (computed when it writes or resumes checkpoints), and the
  // one of the checkpoint resumed from (none: one from before fingerprints existed).
  ResumeFingerprint fingerprint_;
  std::unique_ptr<ResumeFingerprint> resumed_fingerprint_;
  Clock::time_point created_;
  torch::Device device_{torch::kCPU};
  std::unique_ptr<CudaSteps> cuda_;  // set on CUDA with a CUDA LibTorch: event-timed steps
  bool channels_last_ = false;
  // normalize on the device: out = pixel * scale_[c] + shift_[c] (float32, [1, C, 1, 1] on the
  // device); undefined when the pipeline normalises.
  torch::Tensor scale_, shift_;
  // Evaluation label -> training label (by class name), on the device; undefined when they
  // are the same numbers.
  torch::Tensor eval_labels_;
  std::vector<torch::Tensor> loss_host_, correct_host_;  // per CudaSteps slot, pinned
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
  // "epoch 2, step 5: the loss is nan": this rank's first step whose loss was not finite ("":
  // none). Once set, no checkpoint is written and the ranks stop at their next agreement.
  std::string diverged_;
  int64_t steps_per_epoch_ = 0;
  TrainReport report_;
  // The trainer's own spans (options_.trace), appended by the training thread and taken by
  // any thread (TakeTrace) under trace_mu_.
  mutable std::mutex trace_mu_;
  std::vector<TraceEvent> trace_;
  // The epoch the training loop runs (or ran last) and its clock, for live(); protected by
  // live_mu_, since live() may be called from any thread.
  mutable std::mutex live_mu_;
  int live_epoch_ = -1;  // 0-based; -1 before the first
  Clock::time_point live_start_, live_end_;
  bool live_running_ = false;
};

}  // namespace flowfeed
