// pipeline/batcher.h (internal): the serial batcher: skip or collate each sample, in sampler
// order, into batches; the epoch's batch digest and skip budget; the epoch-end markers.
//
// Threads: Add() is the serial batcher node's body: one call at a time, on any worker, in
// sampler order (the graph's sequencer sees to that), so the batcher's state takes no lock. The
// consumer reads an epoch's log only after taking that epoch's end marker from the ready queue.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>


#include "flowfeed/options.h"
#include "flowfeed/pipeline.h"
#include "flowfeed/stats.h"
#include "pipeline/batch_pool.h"
#include "pipeline/ready_queue.h"
#include "pipeline/slot.h"
#include "pipeline/stats_table.h"
#include "pipeline/step.h"
#include "pipeline/trace_log.h"

namespace flowfeed {

class Graph;

// What the batcher writes about an epoch; read by the consumer after the epoch's end marker.
struct EpochLog {
  int64_t seen = 0;  // samples that reached the batcher, skipped ones included
  int64_t delivered = 0;
  int64_t batches = 0;
  int64_t skipped_count = 0;
  std::vector<SkippedSample> skipped;
  std::string digest;
};

class Batcher {
 public:
  // Everything passed by pointer or reference must outlive the batcher. Tokens go back and the
  // run stops through `graph`; batches and errors go to `ready`.
  Batcher(const PipelineOptions& options, const std::vector<Step>& steps, int64_t per_epoch,
          StatsTable* stats, TraceLog* trace, TensorPool* tensors,
          std::shared_ptr<BatchPool> pool, ReadyQueue* ready, Graph* graph);
  ~Batcher();
  Batcher(const Batcher&) = delete;
  Batcher& operator=(const Batcher&) = delete;

  // The batcher node's body, for the next sample in sampler order: skips it (its step's
  // on_error is skip, within the budget), or copies it into the current batch, emitting the
  // batch when full and the epoch's end marker after its last sample. A fatal error (a `fail`
  // step, the skip budget spent, a shape mismatch, an exception) goes to the ready queue and
  // stops the run; later samples only give their tokens back. Releases the slot's token: the
  // slot must not be touched after this returns.
  void Add(Slot* slot);

  // An epoch's log; the consumer reads it once it took the epoch's end marker.
  const EpochLog& log(int epoch) const { return logs_[size_t(epoch)]; }

 private:
  void AddImpl(Slot* slot);
  bool Skip(Slot* slot, EpochLog& log);
  bool Collate(Slot* slot, const std::vector<uint8_t>* tensor);
  void StartBatch(const Slot& slot);
  void EmitBatch();
  void EndEpoch(int epoch);
  Status SkipBudgetExceeded(const EpochLog& log, int epoch) const;
  void Fail(Status status);
  // Position in its epoch's order just after the sample with this sequence number.
  int64_t EndPosition(uint64_t sequence) const {
    return int64_t((sequence + uint64_t(options_.start_position)) % uint64_t(per_epoch_)) + 1;
  }

  const PipelineOptions& options_;
  const std::vector<Step>& steps_;
  const int64_t per_epoch_;
  const int64_t skip_limit_;  // more skipped samples than this in one epoch stop the run
  const StatSteps ids_;
  StatsTable* const stats_;
  TraceLog* const trace_;
  TensorPool* const tensors_;
  const std::shared_ptr<BatchPool> pool_;
  ReadyQueue* const ready_;
  Graph* const graph_;

  std::vector<EpochLog> logs_;
  std::unique_ptr<Batch> current_;
  BatchDigest digest_;
  int digest_epoch_ = -1;  // the epoch digest_ hashes
  bool stopped_ = false;
};

}  // namespace flowfeed
