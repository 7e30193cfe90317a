// pipeline/pipeline_impl.cc: the running pipeline's consumer side (pipeline_impl.h).
#include "pipeline/pipeline_impl.h"

#include <sys/resource.h>

#include <algorithm>

#include "flowfeed/util/clock.h"

namespace flowfeed {

PipelineImpl::PipelineImpl(const PipelineOptions& options, std::unique_ptr<Source> source,
                           std::vector<Step> steps, int threads,
                           std::unique_ptr<SampleCache> cache, CachePlacement placement)
    : options_(options),
      source_(std::move(source)),
      threads_(threads),
      cache_(std::move(cache)),
      placement_(std::move(placement)),
      per_epoch_(EpochLength(options, source_->size())),
      total_(uint64_t(per_epoch_) * uint64_t(options.epochs - options.start_epoch) -
             uint64_t(options.start_position)),
      tokens_(size_t(options.prefetch) * size_t(options.batch.size) +
              size_t(options.max_in_flight > 0 ? options.max_in_flight : 4 * threads)),
      ids_(int(steps.size())),
      stats_table_(threads, options.epochs, ids_.count()),
      graph_(std::make_unique<Graph>(threads, tokens_)),
      pool_(std::make_shared<BatchPool>([g = graph_.get()](int64_t n) { g->ReleaseTokens(n); },
                                        options.batch_memory)),
      tickets_(options_, *source_, per_epoch_, total_),
      runner_(options_, *source_, std::move(steps), cache_.get(), placement_.stages,
              &stats_table_, &trace_, &tensors_, threads),
      batcher_(options_, runner_.steps(), per_epoch_, &stats_table_, &trace_, &tensors_, pool_,
               &ready_, graph_.get()),
      report_steps_(ReportSteps()) {}

PipelineImpl::~PipelineImpl() {
  Cancel();
  graph_->Join();
  cache_.reset();  // after the graph: no worker inserts any more; makes records durable
}

// The cache lookup first, then the steps with the copy into the cache right after the step
// whose output it keeps, then the engine's own steps.
std::vector<PipelineImpl::ReportStep> PipelineImpl::ReportSteps() const {
  std::vector<ReportStep> out;
  const std::vector<Step>& steps = runner_.steps();
  if (cache_) out.push_back({ids_.cache(), "cache", "cache"});
  for (size_t i = 0; i < steps.size(); ++i) {
    out.push_back({int(i), steps[i].name, steps[i].type});
    if (cache_ && int(i) == placement_.stages)
      out.push_back({ids_.fill(), "cache_fill", "cache_fill"});
  }
  out.push_back({ids_.collate(), "collate", "collate"});
  out.push_back({ids_.batch(), "batch", "batch"});
  return out;
}

void PipelineImpl::Start(double open_seconds, std::vector<std::string> warnings) {
  run_stats_.provenance = MakeProvenance(options_);
  run_stats_.source = source_->Describe();
  run_stats_.threads = threads_;
  run_stats_.dataset_size = source_->size();
  run_stats_.open_seconds = open_seconds;
  run_stats_.prefetch = options_.prefetch;
  consumer_epoch_.store(options_.start_epoch);
  if (options_.trace)
    trace_.Enable(threads_, total_, runner_.steps().size() + 3, options_.trace_max_events);
  run_stats_.tokens = int64_t(tokens_);
  run_stats_.warnings = std::move(warnings);
  if (cache_) {
    run_stats_.cache_mode = CacheModeName(options_.cache.mode);
    run_stats_.cache_placement = placement_.after;
    run_stats_.cache_fingerprint = cache_->fingerprint().Hex();
    run_stats_.cache_store = placement_.stages == 0 ? "files" : "pixels";
    run_stats_.cache_decision = placement_.decision;
  } else {
    run_stats_.cache_note = placement_.note;
  }
  graph_->Build(runner_.steps(), &tickets_, &runner_, &batcher_, &ready_);
  epoch_start_ns_ = NowNs();
  epoch_start_cpu_ns_ = ProcessCpuNs();
  graph_->Run();
}

Status PipelineImpl::NextFor(BatchPtr* batch, double timeout_seconds, bool* timed_out) {
  *batch = nullptr;
  if (timed_out) *timed_out = false;
  ReadyQueue::Taken taken;
  const int64_t timeout_ns = timeout_seconds < 0 ? -1 : int64_t(timeout_seconds * 1e9);
  Status st = ready_.Take(consumer_epoch_.load(std::memory_order_relaxed), options_.epochs,
                          epoch_start_ns_, &taken, timeout_ns);
  if (taken.timed_out) {
    if (timed_out) *timed_out = true;
    return st;
  }
  consumer_wait_ns_ += taken.waited;
  if (!st.ok()) return st;
  switch (taken.kind) {
    case ReadyItem::kBatch:
      wait_hist_.Add(taken.waited);
      if (trace_.on()) trace_.ConsumerWait(taken.t0, taken.waited, taken.batch->epoch);
      *batch = std::move(taken.batch);
      return Status::Ok();
    case ReadyItem::kEpochEnd:
      FinishEpoch(taken.epoch, taken.end_ns);
      return Status::Ok();
    case ReadyItem::kDone:
    case ReadyItem::kError:
      break;
  }
  return Status::Ok();
}

RunStats PipelineImpl::stats() const {
  RunStats out;
  {
    std::lock_guard<std::mutex> lock(stats_mu_);
    out = run_stats_;
  }
  struct rusage ru;
  if (getrusage(RUSAGE_SELF, &ru) == 0) out.peak_rss_bytes = int64_t(ru.ru_maxrss) * 1024;
  out.retained_buffer_bytes = runner_.retained_bytes();
  out.peak_in_flight_bytes = runner_.peak_in_flight_bytes();
  if (cache_) {
    out.cache = cache_->stats();
    if (out.cache.disk_disabled)
      for (const std::string& m : out.cache.messages)
        if (m.rfind("disk cache disabled", 0) == 0) out.warnings.push_back(m);
  }
  return out;
}

LiveEpochStats PipelineImpl::live() const {
  LiveEpochStats out;
  out.cache_mode = cache_ ? CacheModeName(options_.cache.mode) : "off";
  const ReadyQueue::Live l = ready_.LiveNow();
  if (l.epoch >= 0) {
    out.seconds = l.seconds;
    out.samples = l.samples;
    out.batches = l.batches;
  }
  out.epoch = l.epoch + 1;
  // The sums read only atomics and tables that are never freed early.
  std::vector<LiveTotal> totals = stats_table_.LiveTotals(l.epoch);
  for (const ReportStep& r : report_steps_) {
    const LiveTotal& t = totals[size_t(r.step)];
    out.stages.push_back({r.name, double(t.busy_ns) * 1e-9, t.count});
  }
  if (cache_) {
    const LiveTotal& c = totals[size_t(ids_.cache())];
    out.cache_hits = c.hits;
    out.cache_misses = c.count - c.hits;
  }
  return out;
}

void PipelineImpl::Cancel() {
  runner_.CancelWaits();
  pool_->Detach();
  ready_.Cancel();
  graph_->Cancel();
}

// Runs on the consumer's thread at an epoch's end marker, taken from the queue at `now`.
void PipelineImpl::FinishEpoch(int epoch, uint64_t now) {
  const EpochLog& log = batcher_.log(epoch);
  EpochStats es;
  es.epoch = epoch + 1;
  es.seconds = double(now - epoch_start_ns_) * 1e-9;
  es.samples = log.delivered;
  es.batches = log.batches;
  es.samples_per_second = es.seconds > 0 ? double(es.samples) / es.seconds : 0;
  const uint64_t cpu_now = ProcessCpuNs();
  es.cpu_seconds = double(cpu_now - epoch_start_cpu_ns_) * 1e-9;
  epoch_start_cpu_ns_ = cpu_now;
  es.consumer_wait_seconds = double(consumer_wait_ns_) * 1e-9;
  es.consumer_wait_p95_ms = wait_hist_.Quantile(0.95) * 1e-6;
  es.consumer_wait_max_ms = double(wait_hist_.max_ns()) * 1e-6;
  es.skipped = log.skipped;
  es.skipped_count = log.skipped_count;
  es.batch_digest = log.digest;
  ready_.TakeOccupancy(&es.queue_mean, &es.queue_occupancy);
  AddStepStats(epoch, &es);
  // After the last epoch nothing waits for more batches: make the disk cache durable now, so
  // the final report counts what was written and any write failure is in its warnings.
  double flush_seconds = 0;
  if (cache_ && epoch == options_.epochs - 1) {
    uint64_t f0 = NowNs();
    cache_->Flush();
    flush_seconds = double(NowNs() - f0) * 1e-9;
  }
  {
    std::lock_guard<std::mutex> lock(stats_mu_);
    run_stats_.epochs.push_back(std::move(es));
    run_stats_.cache_flush_seconds += flush_seconds;
  }
  epoch_start_ns_ = now;
  consumer_wait_ns_ = 0;
  wait_hist_ = LatencyHistogram();
  consumer_epoch_.store(epoch + 1);
}

// The epoch's per-step lines, its cache figures and bytes read, from the merged stats table.
void PipelineImpl::AddStepStats(int epoch, EpochStats* es) {
  const std::vector<Step>& steps = runner_.steps();
  std::vector<StepAcc> acc = stats_table_.Merged(epoch);
  for (const ReportStep& r : report_steps_) {
    const StepAcc& a = acc[size_t(r.step)];
    StageStats st = StageStatsOf(a, r.name, r.type);
    if (r.step < int(steps.size())) {
      st.fused = a.hits;
      if (steps[size_t(r.step)].fused_output) st.fused_into = "collate";
    }
    es->stages.push_back(std::move(st));
  }
  if (cache_) {
    const StepAcc& c = acc[size_t(ids_.cache())];
    es->cache.mode = CacheModeName(options_.cache.mode);
    es->cache.hits = c.hits;
    es->cache.misses = int64_t(c.hist.count()) - c.hits;
    es->cache.bytes = c.bytes;
    es->cache.fill_page_faults = runner_.fill_faults(epoch);
  }
  es->bytes_read = acc[0].bytes;
}

}  // namespace flowfeed
