// pipeline/step_runner.h (internal): runs a sample's steps in its slot: read, the stages (fused
// where PlanFusion said), the cache lookup and fill, and the conversion into the batch's layout.
//
// Each call marks what it runs in the calling thread's activity record (activity.h: a few
// stores), so that a crash or an exit() inside a stage names the stage, plugin and sample.
//
// Threads: the graph's segment nodes call Begin() and Run() from any worker, for different
// slots at once; a slot is touched only by the node that holds it. The runner's own state (the
// steps, the page-fault counters) is constant after construction, apart from relaxed atomics.
// The stages are called as concurrently as their nodes allow (their traits).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "flowfeed/cache.h"
#include "flowfeed/options.h"
#include "flowfeed/source.h"
#include "pipeline/activity.h"
#include "pipeline/batch_pool.h"
#include "pipeline/slot.h"
#include "pipeline/stats_table.h"
#include "pipeline/step.h"
#include "pipeline/trace_log.h"

namespace flowfeed {

class StepRunner {
 public:
  // Everything passed by pointer or reference must outlive the runner; `cache` is null when
  // caching is off, else it keeps the output of the first `cache_stages` steps after read (0:
  // the encoded files).
  StepRunner(const PipelineOptions& options, const Source& source, std::vector<Step> steps,
             SampleCache* cache, int cache_stages, StatsTable* stats, TraceLog* trace,
             TensorPool* tensors);

  // Readies `slot` for the ticket's sample, and looks it up in the cache.
  void Begin(Slot* slot, const Ticket& t) {
    InitSlot(slot, t);
    if (cache_) {
      ThreadActivity* activity = ThreadActivity::Mine();
      activity->BeginSample(slot->sample);
      activity->Enter(lookup_label_);
      LookupCache(slot);
      activity->Leave();
    }
  }

  // Runs steps [begin, end) on the slot's sample, from the cache's resume point on; stops at the
  // first failure (noted in the slot: the batcher applies the step's on_error). After the last
  // step, converts the sample into the slot's tensor.
  void Run(Slot* slot, int begin, int end);

  const std::vector<Step>& steps() const { return steps_; }

  // Minor page faults taken inside cache inserts in `epoch` (EpochCacheStats::fill_page_faults).
  int64_t fill_faults(int epoch) const {
    return fill_faults_[size_t(epoch)].load(std::memory_order_relaxed);
  }

 private:
  void InitSlot(Slot* slot, const Ticket& t);
  void LookupCache(Slot* slot);
  // One step on the slot's sample; bytes and fused as the stats table records them.
  Status RunStep(Slot* slot, int i, int64_t* bytes, bool* fused);
  void FillCache(const Sample& s, ThreadActivity* activity);
  int64_t InsertIntoCache(const Sample& s);
  void ConvertSample(Slot* slot, ThreadActivity* activity);
  StageContext Context(const Sample& s, int step) const {
    return StageContext(options_.seed, s.epoch, s.index, step);
  }

  const PipelineOptions& options_;
  const Source& source_;
  std::vector<Step> steps_;  // [0] is "read"
  // What the crash report names for each step, and for the runner's own work (activity.h).
  std::vector<const StepLabel*> labels_;
  const StepLabel* const lookup_label_;
  const StepLabel* const fill_label_;
  const StepLabel* const collate_label_;
  SampleCache* const cache_;
  const int cache_stages_;
  const StatSteps ids_;
  StatsTable* const stats_;
  TraceLog* const trace_;
  TensorPool* const tensors_;
  std::unique_ptr<std::atomic<int64_t>[]> fill_faults_;  // per epoch; any worker, relaxed
};

}  // namespace flowfeed
