// flowfeed/trainer.h: trains a LibTorch model on the pipeline's batches, and keeps the ledger of
// where every second went.
//
// A Trainer owns a Pipeline (the training data), optionally a second one for evaluation (its
// stages must be deterministic), a model built from TrainOptions::model, an optimiser and a
// learning-rate schedule. Run() trains the configured epochs: per step it waits for a batch,
// copies it to the device, runs forward, backward and the optimiser step, and times each part;
// per epoch it evaluates, writes the checkpoint atomically and hands an EpochReport to the
// callback.
//
// Data parallelism: with options.distributed.world_size > 1 the trainer joins the other ranks
// through c10d (Gloo), takes rank 0's initial weights, averages gradients over every rank's
// samples after each backward (bucketed all-reduce, weighted by batch sizes), and reduces the
// metrics; only rank 0 writes checkpoints. A rank that runs out of batches first takes part
// with zero gradients, so no rank waits for a step that never comes.
//
// Resume: checkpoints hold the epoch and, when written mid-epoch (train.checkpoint_every, or
// RequestStop()), every rank's position in the epoch's sample order; --resume continues with
// the batches an uninterrupted run would have trained on next, for any thread count and the
// same world size (another world size is refused, naming both). They also record what the run
// depends on (data, sampler, pipeline, optimiser, model: resume_fingerprint.h), and a resume
// whose config changed any of it is refused naming each change, unless it accepts changes
// (--resume-changed: then listed in TrainReport::warnings; a new optimiser type starts fresh).
// Every checkpoint ends with a checksum of its whole content; a damaged one is refused.
//
// Classes: the training source's class names define the label indices; the evaluation data's
// classes are mapped to them by name (an evaluation folder may lack some), and an evaluation
// class the training data does not have is refused at Create().
//
// Divergence: a loss that is not finite (NaN, infinity) stops Run() with an error naming the
// epoch and step; those weights are never written, so the last checkpoint stays the last good
// one.
//
// Timing: on CUDA the per-step parts are measured with a device synchronisation after each part
// (said in the report as `synchronized_timing`), because asynchronous kernels would otherwise be
// charged to whatever synchronises next. On the CPU no synchronisation is needed.
//
// Failure: Create() returns InvalidArgument for a bad model/optimiser combination, for a resume
// with changed settings and for evaluation classes unknown to the training data, NotFound for a
// missing dataset, and Corrupt for a checkpoint that is damaged (its checksum fails) or
// unreadable; the message names the file and what differs. Run() returns the pipeline's error
// (a sample under on_error: fail), InvalidArgument for a loss that is not finite, or an I/O
// error writing the checkpoint; an existing checkpoint is never replaced by a partial one
// (write to a temporary file, fsync, rename).
//
// The library that implements this needs LibTorch; it is built when CMake finds Torch
// (FLOWFEED_WITH_TORCH). The header itself has no LibTorch types.
//
// Thread-safety: one thread drives a Trainer; live() may also be called from any other thread.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "flowfeed/options.h"
#include "flowfeed/registry.h"
#include "flowfeed/stats.h"
#include "flowfeed/status.h"

namespace flowfeed {

// One named one-time cost (config load, graph construction, model construction, ...).
struct SetupPart {
  std::string name;
  double seconds = 0;
};

struct TrainEpochStats {
  int epoch = 0;  // 1-based
  int64_t steps = 0;
  int64_t samples = 0;
  double seconds = 0;  // wall time of the epoch's training loop (evaluation not included)
  double samples_per_second = 0;
  double data_wait_seconds = 0;  // blocked in Pipeline::Next
  double h2d_seconds = 0;        // batch to device (and dtype conversion)
  double forward_seconds = 0;
  double backward_seconds = 0;
  double optimizer_seconds = 0;
  double first_step_seconds = 0;   // the epoch's first step, all parts
  double median_step_seconds = 0;  // all parts
  double loss = 0;      // mean training loss
  double accuracy = 0;  // training top-1 (on augmented samples)
  double lr = 0;        // at the epoch's end
  // Evaluation after the epoch (when configured).
  bool has_eval = false;
  double eval_loss = 0, eval_accuracy = 0, eval_seconds = 0;
  int64_t eval_samples = 0;
  double checkpoint_seconds = 0;
  // Data-parallel runs: time in the gradient all-reduce and the per-step agreement (included
  // in optimizer_seconds' neighbours, not in them); the epoch's loss and accuracy above are then
  // over every rank's samples, `samples` this rank's own.
  double allreduce_seconds = 0;
  int64_t global_samples = 0;
  // Each rank's cache hit rate in this epoch (hits / lookups), rank order; empty when alone.
  std::vector<double> rank_cache_hit_rate;
  // XXH3-64 of the model's parameters and buffers after the epoch (hex): equal on every rank.
  std::string model_digest;
  // With train.record_indices: the dataset index of every sample this rank trained on, in order.
  std::vector<int64_t> indices;
  // The epoch started from a mid-epoch checkpoint at this position of its order (0: start).
  int64_t resumed_at = 0;
};

// One training step as the step callback sees it, right after the optimiser step.
struct StepRecord {
  int epoch = 0;                // 1-based
  int64_t step = 0;             // 1-based within the epoch
  int64_t steps_per_epoch = 0;  // this rank's, as planned (a resumed epoch counts from its start)
  int64_t global_step = 0;      // 1-based, counting from the start of training (over resumes)
  int64_t samples = 0;          // this rank's batch (0 when only the other ranks had one)
  double loss = 0;              // this rank's batch mean (0 without a batch)
  double accuracy = 0;          // this rank's batch top-1
  double lr = 0;                // the learning rate this step used
  double seconds = 0;           // the whole step: waiting for the batch, compute, all-reduce
  double data_wait_seconds = 0; // of which blocked waiting for the batch
  double wall_time = 0;         // when it ended, seconds since the Unix epoch
};

struct TrainReport {
  std::string device;  // "cpu", "cuda:0"
  std::string model;   // "cnn (421,642 parameters)"
  bool synchronized_timing = false;  // the device was synchronised between a step's parts
  // How the steps ran (report.h ReportTrainer says what each value means).
  std::string precision = "float32";
  std::string memory_format = "contiguous";
  bool normalize_on_device = false;
  std::string timing = "host clock";
  std::map<std::string, double> device_memory;
  int torch_threads = 0;  // LibTorch's intra-op threads
  int start_epoch = 0;  // 0-based epoch the run started at (resumed runs: > 0)
  int64_t start_position = 0;  // mid-epoch resume: samples of start_epoch already trained on
  // What Create() found worth saying before training: a checkpoint from an older flowfeed (no
  // checksum, no record of the settings), settings changed under --resume-changed, training
  // classes the evaluation data lacks. The JSON report lists them with the pipeline's warnings.
  std::vector<std::string> warnings;
  // Data parallelism: this process's rank, the world size, the backend and the shard policy.
  int rank = 0, world_size = 1;
  std::string backend, shard_policy, uneven;
  std::vector<SetupPart> setup;
  std::vector<TrainEpochStats> epochs;
  RunStats pipeline;  // the training pipeline's stage tables, per epoch
  double wall_seconds = 0;  // from Create() (minus the config load before it) to the end of Run()
  // wall_seconds minus the set-up parts and every epoch's training, evaluation and checkpoint:
  // time no part measured, reported rather than hidden.
  double unexplained_seconds = 0;

  // Why the run's first epoch took longer than the others: gap_seconds = set-up + the first
  // epoch (training, evaluation, checkpoint) - the mean of the later epochs, split into measured
  // parts that add up to it exactly, the last one "unexplained" (what no part measured). Parts:
  // "set-up"; "data wait: <stage>" (the trainer's extra wait for data, shared among the pipeline
  // stages in proportion to how much more they worked in the first epoch: cold reads, decoding
  // and deterministic stages the cache then removed, filling the cache); "first step" (its
  // extra cost over the median step); "other step compute"; "evaluation"; "checkpoint".
  // Empty with fewer than two epochs in the run.
  double gap_seconds = 0;
  std::vector<SetupPart> gap;
};

class Trainer {
 public:
  // Builds everything: pipelines, model (moved to the device), optimiser; resumes from
  // `resume` ("" for none). `config_seconds` is how long loading the config took, recorded as
  // the first set-up part. `accept_changes` (--resume-changed): resume even though the config
  // changed what the checkpoint recorded (except the model), with a warning listing it.
  static Result<std::unique_ptr<Trainer>> Create(const PipelineOptions& options,
                                                 const StageRegistry& registry,
                                                 const std::string& resume = "",
                                                 double config_seconds = 0,
                                                 bool accept_changes = false);
  virtual ~Trainer() = default;

  // Trains until the configured epochs are done. `on_epoch` (optional) sees each epoch's
  // figures as soon as it ends; `on_step` (optional) sees each step's, on Run()'s thread, before
  // that step's mid-epoch checkpoint (if any). Both run inside the training loop: a slow callback
  // is charged to the next step's wait.
  virtual Status Run(const std::function<void(const TrainEpochStats&)>& on_epoch = nullptr,
                     const std::function<void(const StepRecord&)>& on_step = nullptr) = 0;

  virtual TrainReport report() const = 0;

  // The training pipeline's epoch in progress, so far (Pipeline::live()), except that once Run()
  // has started training that epoch, `seconds` is the training loop's time in it (as
  // TrainEpochStats::seconds, frozen at the loop's end), which leaves out the set-up and the
  // previous epoch's evaluation and checkpoint. Any thread, any time after Create(); cheap.
  virtual LiveEpochStats live() const = 0;

  // Asks Run() to stop after the step in progress (all ranks stop at the same step): with a
  // checkpoint configured it first writes a mid-epoch checkpoint there, then Run() returns
  // Cancelled. Async-signal-safe (one atomic store), so a SIGINT handler may call it.
  virtual void RequestStop() = 0;

  // With options.trace: the pipeline's spans plus the trainer's (per step: waiting for the
  // batch, to device, forward, backward, optimiser; evaluation; checkpoint), for
  // ChromeTraceJson() (flowfeed/trace_file.h). Empty otherwise. Any thread, any time.
  virtual std::vector<TraceEvent> trace() const = 0;
  // The same spans recorded since the last TakeTrace(), removed from what trace() returns: for
  // TraceFile, which streams the trace to disk as the run goes. Any thread, any time.
  virtual std::vector<TraceEvent> TakeTrace() = 0;
};

// The ledger as text: set-up parts, and per epoch the trainer's parts next to the verdict
// (input-bound or compute-bound, and by how much).
std::string FormatTrainEpoch(const TrainEpochStats& epoch);
std::string FormatSetup(const TrainReport& report);
// The first-epoch gap as a table ("" when the run has fewer than two epochs).
std::string FormatGap(const TrainReport& report);

// The JSON report of a training run: everything ReportJson() has for the pipeline, plus
// `setup.parts.<name>.seconds`, `epochs[i].trainer.{steps, data_wait_seconds, h2d_seconds,
// forward_seconds, backward_seconds, optimizer_seconds, ...}`, `epochs[i].eval.{loss,
// accuracy}`, `first_epoch_gap.{seconds, parts.<name>}` and `ledger` (wall time accounted for).
std::string TrainReportJson(const TrainReport& report);

}  // namespace flowfeed
