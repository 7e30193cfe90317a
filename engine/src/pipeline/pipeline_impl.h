// pipeline/pipeline_impl.h (internal): the Pipeline that Pipeline::Open returns.
//
// It holds the run's constants and its collaborators, and delegates: the graph (graph.h) moves
// samples from the ticket drawer (sampler.h) through the step runner (step_runner.h) to the
// batcher (batcher.h), which fills the ready queue (ready_queue.h) that Next() takes from; the
// stats table and trace log (stats_table.h, trace_log.h) record what they did. Each
// collaborator's header names the threads that use it. What is left here is the consumer's side:
// Next() and the epoch's report, on the consumer's thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "flowfeed/cache.h"
#include "flowfeed/pipeline.h"
#include "pipeline/batch_pool.h"
#include "pipeline/batcher.h"
#include "pipeline/graph.h"
#include "pipeline/histogram.h"
#include "pipeline/ready_queue.h"
#include "pipeline/sampler.h"
#include "pipeline/stats_table.h"
#include "pipeline/step.h"
#include "pipeline/step_runner.h"
#include "pipeline/trace_log.h"

namespace flowfeed {

class PipelineImpl final : public Pipeline {
 public:
  // Takes the checked options, the opened source, the built steps ([0] is read), the cache
  // (null when off) and where it sits. Nothing runs until Start().
  PipelineImpl(const PipelineOptions& options, std::unique_ptr<Source> source,
               std::vector<Step> steps, int threads, std::unique_ptr<SampleCache> cache,
               CachePlacement placement);
  // Cancels, joins the graph, then makes the disk cache's records durable.
  ~PipelineImpl() override;

  // Fills the run's stats header and starts the graph; call once, right after construction.
  void Start(double open_seconds, std::vector<std::string> warnings);

  Status NextFor(BatchPtr* batch, double timeout_seconds, bool* timed_out) override;
  int current_epoch() const override { return consumer_epoch_.load(); }
  int64_t dataset_size() const override { return source_->size(); }
  int64_t epoch_length() const override { return per_epoch_; }
  int64_t num_classes() const override { return int64_t(source_->classes().size()); }
  const Source& source() const override { return *source_; }
  int64_t batches_per_epoch() const override {
    int64_t bs = options_.batch.size;
    return options_.batch.drop_last ? per_epoch_ / bs : (per_epoch_ + bs - 1) / bs;
  }
  RunStats stats() const override;
  LiveEpochStats live() const override;
  std::vector<TraceEvent> trace() const override { return trace_.Collect(); }
  std::vector<TraceEvent> TakeTrace() override { return trace_.Take(); }
  void Cancel() override;

 private:
  // What EpochStats::stages and LiveEpochStats::stages list, in their order.
  struct ReportStep {
    int step;  // index into the stats table
    std::string name, type;
  };
  std::vector<ReportStep> ReportSteps() const;
  void FinishEpoch(int epoch, uint64_t now);
  void AddStepStats(int epoch, EpochStats* es);

  // --- Constant after construction ---
  const PipelineOptions options_;
  const std::unique_ptr<Source> source_;
  const int threads_;
  std::unique_ptr<SampleCache> cache_;  // null when caching is off
  const CachePlacement placement_;
  const int64_t per_epoch_;
  const uint64_t total_;
  const size_t tokens_;
  const StatSteps ids_;

  // --- Collaborators (see each header for its threads) ---
  StatsTable stats_table_;
  TraceLog trace_;
  ReadyQueue ready_;
  TensorPool tensors_;
  const std::unique_ptr<Graph> graph_;
  const std::shared_ptr<BatchPool> pool_;
  TicketDrawer tickets_;
  StepRunner runner_;  // owns the steps
  Batcher batcher_;
  const std::vector<ReportStep> report_steps_;

  // --- Consumer thread only ---
  uint64_t epoch_start_ns_ = 0;
  uint64_t epoch_start_cpu_ns_ = 0;  // ProcessCpuNs() then
  uint64_t consumer_wait_ns_ = 0;
  LatencyHistogram wait_hist_;  // per batch, this epoch
  std::atomic<int> consumer_epoch_{0};  // written by the consumer, read by any thread

  mutable std::mutex stats_mu_;
  RunStats run_stats_;  // protected by stats_mu_
};

}  // namespace flowfeed
