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
#include "pipeline/byte_budget.h"
#include "pipeline/large_buffer_pool.h"
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
             TensorPool* tensors, int threads);

  // Readies `slot` for the ticket's sample, and looks it up in the cache. Waits while the
  // samples in their workers hold max_in_flight_bytes (byte_budget.h).
  void Begin(Slot* slot, const Ticket& t) {
    InitSlot(slot, t);
    TakeSlot(slot);
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
  // step, converts the sample into the slot's tensor and gives the slot's large buffers to the
  // pool (large_buffer_pool.h): the batcher reads only the tensor and the sample's names.
  void Run(Slot* slot, int begin, int end);

  const std::vector<Step>& steps() const { return steps_; }

  // Bytes of pixel and file buffers kept for reuse between samples: those of the slots whose
  // sample is done with its worker, and the large-buffer pool's (RunStats::retained_buffer_bytes).
  // Any thread; a relaxed snapshot.
  int64_t retained_bytes() const {
    return slot_kept_bytes_.load(std::memory_order_relaxed) + int64_t(large_buffers_.bytes());
  }

  // The in-flight byte budget's peak (byte_budget.h). Any thread.
  int64_t peak_in_flight_bytes() const { return budget_.peak(); }
  // Lets samples waiting for the byte budget go: the pipeline is stopping. Any thread.
  // Also ends isolated stages' waits for their workers (isolated_stage.h).
  void CancelWaits();

  // Minor page faults taken inside cache inserts in `epoch` (EpochCacheStats::fill_page_faults).
  int64_t fill_faults(int epoch) const {
    return fill_faults_[size_t(epoch)].load(std::memory_order_relaxed);
  }

 private:
  void InitSlot(Slot* slot, const Ticket& t);
  // The slot's kept buffers are in use again; a slot without a pixel buffer gets a pooled one.
  void TakeSlot(Slot* slot);
  void RunSteps(Slot* slot, int begin, int end, ThreadActivity* activity);
  // The sample is done with its worker: buffers above LargeBufferPool::kSlotKeepBytes leave
  // the slot, the rest stay for its next sample.
  void ReleaseSlot(Slot* slot);
  // Bytes of the slot's own buffers (byte_budget.h says which).
  static size_t SlotBytes(const Slot& slot);
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
  LargeBufferPool large_buffers_;
  ByteBudget budget_;
  std::atomic<int64_t> slot_kept_bytes_{0};  // sum of the idle slots' kept_bytes; relaxed
};

}  // namespace flowfeed
