// flowfeed/pipeline.h: the running pipeline: samples in, batches out.
//
// Pipeline::Open() lists the source, builds every stage and a oneTBB flow graph
//   sampler -> limiter -> read -> decode/stages (fused where their concurrency matches)
//     -> sequencer -> batcher -> ready queue -> Next()
// and starts it in the background, for all the configured epochs back to back: it runs ahead of
// the consumer across epoch boundaries, within its bounds.
//
// Bounds: every sample holds a token from the moment it is drawn until the batch that carries it
// is released by the consumer (or until it is skipped). There are
//   prefetch * batch.size + max_in_flight
// tokens, so memory is bounded whatever the consumer does. Consequence: a consumer that keeps
// more than `prefetch` batches alive stalls the pipeline; copy what must be kept.
// The bytes are bounded too: the samples being worked on hold at most max_in_flight_bytes of
// pixel and file buffers (plus one sample), and buffers above 16 MiB are not kept per token.
//
// Order and reproducibility: batches come out in sampler order, and every random stage draws
// from a generator keyed by (seed, epoch, sample index, stage), so the same options give the
// same batches for any `threads`, `prefetch` and `max_in_flight`.
//
// Bad samples: a stage failure is handled by that stage's `on_error` policy. `skip` drops the
// sample (named in EpochStats::skipped) and the batch is filled with the next samples, so no
// batch is ever short for it; `fail` stops the pipeline and Next() returns the error naming the
// sample and the stage. An epoch that skips more than `max_skipped` (SkipBudget) also stops it,
// with ResourceExhausted naming the budget and the first skipped samples.
//
// Cache: with `cache.mode` other than off, the output of the pipeline's deterministic prefix
// (see PlanCache) is kept as epoch 1 streams (cache.h); a sample found there skips read and the
// cached stages. Cached and uncached runs give the same batches, bit for bit.
//
// Thread-safety: Next(), stats(), live() and Cancel() may be called from different threads;
// Next() from one consumer thread at a time. Destroying the pipeline cancels and joins the graph
// and makes the disk cache's written records durable; batches still alive stay valid.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "flowfeed/batch_memory.h"
#include "flowfeed/image.h"
#include "flowfeed/options.h"
#include "flowfeed/registry.h"
#include "flowfeed/source.h"
#include "flowfeed/stats.h"
#include "flowfeed/status.h"

namespace flowfeed {

// Where the cache sits in a pipeline, decided from the stages' declared traits.
struct CachePlacement {
  bool enabled = false;  // false: cache.mode is off, or nothing is worth caching (see note)
  int stages = 0;        // how many leading pipeline entries' output is cached
  std::string after;     // report name of the last of them ("decode", "resize#2")
  bool frozen = false;   // the point is after a random stage (allow_frozen_augmentation)
  std::string note;      // why it is disabled, or the frozen-augmentation warning
  // Why the cache keeps what it keeps, when that was decided rather than configured: the cost
  // model of cache.mode auto (files or pixels, with its figures), or the DCT-scaling rule.
  std::string decision;
};

// By default the cache sits after the longest deterministic prefix. `cache.after` moves it; a
// point after a random stage fails (InvalidArgument naming both stages) unless
// `cache.allow_frozen_augmentation` is set. A name that matches no stage fails too.
Result<CachePlacement> PlanCache(const PipelineOptions& options, const StageRegistry& registry);

// The report names of the pipeline entries: `name` or the type, made unique with #2, #3 ...
std::vector<std::string> StageNames(const std::vector<StageSpec>& pipeline);

// Samples each rank draws per epoch: the dataset size, divided between the ranks as
// options.distributed.uneven says (the same on every rank, except with `all`).
int64_t EpochLength(const PipelineOptions& options, int64_t dataset_size);

// What produced a run, as Pipeline::Open records it in RunStats::provenance: the version and
// commit flowfeed was built from, the time and host now, the options' config path, resolved
// config and command line, and the versions of the libraries the engine runs on. Public for a
// consumer that needs it before the pipeline opens (the Python module's metrics logs).
Provenance MakeProvenance(const PipelineOptions& options);

// The dataset indices this rank draws in `epoch` (0-based), in order, EpochLength() of them. A
// pure function of (options.seed, shuffle, source listing, shuffle_buffer, distributed rank,
// world size and policies, epoch): the same on every run, thread count and host. Unshuffled:
// dataset order. Shuffled: a seeded permutation; for sharded sources (Source::num_shards() > 0)
// with a shuffle buffer, the shards in a seeded order and the samples through a seeded buffer of
// `shuffle_buffer` (WebDataset's scheme), so reads stay near-sequential. Then split between the
// ranks by the shard policy (options.h).
std::vector<int64_t> EpochOrder(const PipelineOptions& options, const Source& source, int epoch);

// A collated batch. Its storage is recycled when the last reference goes away. Its pixels are in
// the memory PipelineOptions::batch_memory gives (the heap by default; a copy of a batch is on
// the heap).
class Batch {
 public:
  int epoch = 0;        // 0-based
  int64_t number = 0;   // 0-based position within the epoch
  int64_t size = 0;     // samples in this batch (the last one may be smaller)
  Layout layout = Layout::kNCHW;
  DType dtype = DType::kFloat32;
  int channels = 0, height = 0, width = 0;
  std::vector<int64_t> labels;   // size() entries
  std::vector<int64_t> indices;  // dataset index of each sample
  // Samples of the epoch's order (EpochOrder) covered once this batch is consumed, skipped ones
  // included: the `start_position` that resumes right after it.
  int64_t end_position = 0;

  const uint8_t* data() const { return data_.data(); }
  uint8_t* mutable_data() { return data_.data(); }
  size_t sample_bytes() const { return size_t(channels) * height * width * DTypeSize(dtype); }
  size_t bytes() const { return sample_bytes() * size; }
  // Shape as the layout says: {N, C, H, W} or {N, H, W, C}.
  std::vector<int64_t> shape() const;

  BatchStorage data_;  // grows to the largest batch, then stays
};

using BatchPtr = std::shared_ptr<const Batch>;

// The digest EpochStats::batch_digest reports, so that a consumer can compute it from the batches
// it received (the Python module's tests do, from tensors) and compare: XXH3-64 over, per batch,
// each sample's bytes' own XXH3-64 in batch order, then the batch's labels (int64, native byte
// order). Reset at each epoch. Not thread-safe: one consumer feeds one digest.
class BatchDigest {
 public:
  BatchDigest();
  ~BatchDigest();
  BatchDigest(const BatchDigest&) = delete;
  BatchDigest& operator=(const BatchDigest&) = delete;

  void Reset();
  // One sample's digest, from its bytes in the batch (Batch::sample_bytes() of them).
  static uint64_t SampleDigest(const void* data, size_t bytes);
  void AddSample(uint64_t sample_digest);
  void AddLabels(const int64_t* labels, size_t count);
  // A whole batch: `samples` samples of `sample_bytes` each at `data`, then their labels.
  void AddBatch(const uint8_t* data, size_t sample_bytes, size_t samples, const int64_t* labels);
  // 16 lowercase hex digits, as the report writes it.
  std::string Hex() const;

 private:
  void* state_;  // XXH3_state_t, kept out of this header
};

class Pipeline {
 public:
  // Checks the options (the same checks as the config parser), opens the source, builds the
  // stages and the graph, and starts producing. Errors: NotFound for a missing root,
  // InvalidArgument naming the bad option.
  static Result<std::unique_ptr<Pipeline>> Open(const PipelineOptions& options,
                                                const StageRegistry& registry);

  virtual ~Pipeline() = default;

  // Blocks until the next batch of the current epoch and stores it in *batch. At an epoch's end
  // stores nullptr once (the epoch's stats are then in stats()), and the following call starts
  // on the next epoch. At the last epoch's end that call first waits for the disk cache to be
  // written out (RunStats::cache_flush_seconds). After the last epoch keeps storing nullptr. A
  // non-OK Status means the pipeline stopped: a sample failed under on_error: fail (named in the
  // message), an epoch skipped more samples than max_skipped allows, the run was cancelled, or
  // an internal error; every later call returns the same Status.
  Status Next(BatchPtr* batch) { return NextFor(batch, -1, nullptr); }

  // Next() that waits at most `timeout_seconds` (< 0: without limit). When nothing arrived in
  // time, returns Ok with *batch null and *timed_out true, and the next call goes on with the
  // same wait (it is timed and reported as one wait). Lets a consumer that must stay responsive
  // (a Python loop checking for Ctrl-C) wait in slices. `timed_out` may be null when the wait
  // has no limit.
  virtual Status NextFor(BatchPtr* batch, double timeout_seconds, bool* timed_out) = 0;

  // 0-based epoch that Next() is delivering.
  virtual int current_epoch() const = 0;
  virtual int64_t dataset_size() const = 0;
  // Samples this process draws per epoch (EpochLength): dataset_size() unless distributed.
  virtual int64_t epoch_length() const = 0;
  // Classes the source knows (image folders: class folders; IDX: the largest label + 1).
  virtual int64_t num_classes() const = 0;
  // The source the pipeline reads: its listing (keys, labels) and class names, in label order.
  // Valid for the pipeline's lifetime; its const methods may be called from any thread.
  virtual const Source& source() const = 0;
  // Batches one epoch yields when no sample is skipped.
  virtual int64_t batches_per_epoch() const = 0;

  // A snapshot: finished epochs only.
  virtual RunStats stats() const = 0;

  // The epoch Next() is delivering, so far: from the first Next() call of an epoch until the
  // next epoch's first Next() call, so that between an epoch's end (Next() stored nullptr) and
  // that call it holds the ended epoch, complete, with its final counters and `seconds` frozen.
  // After the last epoch it keeps holding the last one. Any thread, any time; cheap (a brief
  // lock of the ready queue, then sums of per-thread atomic counters), and never waits for the
  // workers.
  virtual LiveEpochStats live() const = 0;

  // The spans recorded so far when options.trace is set (stages per worker thread, the
  // consumer's waits); empty otherwise. Complete once the last epoch has ended.
  virtual std::vector<TraceEvent> trace() const = 0;
  // The spans recorded since the last TakeTrace(), removed from what trace() returns: for a
  // writer that streams the trace to disk as the run goes (TraceFile, flowfeed/trace_file.h).
  // Any thread, any time.
  virtual std::vector<TraceEvent> TakeTrace() = 0;

  // Stops the graph; a blocked Next() returns Cancelled. Idempotent.
  virtual void Cancel() = 0;
};

}  // namespace flowfeed
