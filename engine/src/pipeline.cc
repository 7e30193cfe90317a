// The pipeline's oneTBB flow graph. This is the only file that includes tbb/flow_graph.h.
//
//   input_node<Ticket>  (serial: draws the epoch permutation, one ticket per sample)
//     -> limiter_node   (tokens: prefetch * batch + max_in_flight; released by the consumer)
//     -> function_node  (segment 0: read + the following stages with the same concurrency)
//     -> function_node  (segment k ...)
//     -> sequencer_node (restores sampler order)
//     -> function_node  (serial batcher: skip/refill, collate, digest, epoch ends)
//     -> ready queue (mutex + condition variable) -> Pipeline::Next()
//
// Why a token lives until the consumer drops the batch: the batcher can then always find a free
// batch buffer (there are at most tokens / batch + 2 of them) and never has to block a worker
// thread waiting for the consumer, while memory stays bounded whatever the consumer does.
//
// Sample objects live in a ring of `tokens` slots indexed by sequence % tokens: a sample is done
// with its slot once the (ordered) batcher has passed it, and at most `tokens` samples past the
// batcher's position hold tokens, so two live samples never share a slot.

#include "flowfeed/pipeline.h"

#include <tbb/flow_graph.h>
#include <tbb/info.h>
#include <tbb/task_arena.h>
#include <xxhash.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <deque>
#include <limits>
#include <mutex>
#include <thread>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "codec.h"
#include "flowfeed/cache.h"
#include "pipeline/clock.h"
#include "pipeline/convert.h"
#include "flowfeed/source.h"
#include "fusion.h"
#include "pipeline/histogram.h"
#include "pipeline/plan.h"
#include "pipeline/step.h"
#include "pipeline/tsan_annotations.h"

namespace flowfeed {
namespace {

namespace flow = tbb::flow;

// ---------------------------------------------------------------------------------------------
// Per-thread statistics.

struct StepAcc {
  LatencyHistogram hist;
  int64_t errors = 0;
  int64_t bytes = 0;
  int64_t hits = 0;  // the cache step: lookups that found the sample; decode: region decodes
};

// A step's running totals for Pipeline::live(), readable while the epoch runs. Each is written
// by its slot's owner thread (the overflow slot's under overflow_mu_) and read by any thread:
// relaxed atomics, since a reader needs each number to be whole, not the numbers to agree.
struct LiveAcc {
  std::atomic<uint64_t> busy_ns{0};
  std::atomic<int64_t> count{0};
  std::atomic<int64_t> hits{0};
};

// One slot's figures for one epoch.
struct EpochTable {
  explicit EpochTable(int steps) : acc(size_t(steps)), live(new LiveAcc[size_t(steps)]) {}
  std::vector<StepAcc> acc;         // the owner's alone until the epoch's end (Merged)
  std::unique_ptr<LiveAcc[]> live;  // any thread, any time (LiveTotals)
};

// What LiveTotals() sums for one step.
struct LiveTotal {
  uint64_t busy_ns = 0;
  int64_t count = 0;
  int64_t hits = 0;
};

// Accumulators indexed [thread slot][epoch][step]. A slot is written only by the arena thread
// whose index it is (tbb::this_task_arena::current_thread_index), so recording takes no lock; a
// thread outside the arena (never expected) uses the locked overflow slot. Epoch tables are
// allocated on first use by their writer and published with release/acquire.
class StatsTable {
 public:
  StatsTable(int slots, int epochs, int steps) : epochs_(epochs), steps_(steps) {
    for (int i = 0; i <= slots; ++i) {
      slots_.emplace_back(new std::atomic<EpochTable*>[size_t(epochs)]);
      for (int e = 0; e < epochs; ++e) slots_.back()[e].store(nullptr);
    }
  }
  ~StatsTable() {
    for (auto& s : slots_)
      for (int e = 0; e < epochs_; ++e) delete s[e].load();
  }

  void Record(int epoch, int step, uint64_t ns, int64_t bytes, bool error, bool hit = false) {
    int slot = tbb::this_task_arena::current_thread_index();
    int overflow = int(slots_.size()) - 1;
    if (slot < 0 || slot >= overflow) {
      std::lock_guard<std::mutex> lock(overflow_mu_);
      Add(Table(overflow, epoch), step, ns, bytes, error, hit);
      return;
    }
    Add(Table(slot, epoch), step, ns, bytes, error, hit);
  }

  // Merged accumulators of one epoch; call only once the epoch's samples are all recorded.
  std::vector<StepAcc> Merged(int epoch) {
    std::vector<StepAcc> out(static_cast<size_t>(steps_));
    std::lock_guard<std::mutex> lock(overflow_mu_);
    for (auto& s : slots_) {
      const EpochTable* t = s[epoch].load(std::memory_order_acquire);
      if (!t) continue;
      for (int i = 0; i < steps_; ++i) {
        out[size_t(i)].hist.Merge(t->acc[size_t(i)].hist);
        out[size_t(i)].errors += t->acc[size_t(i)].errors;
        out[size_t(i)].bytes += t->acc[size_t(i)].bytes;
        out[size_t(i)].hits += t->acc[size_t(i)].hits;
      }
    }
    return out;
  }

  // The running totals of one epoch so far, per step (zeros for epoch -1); any thread, any
  // time, no lock. Once the epoch's samples are all recorded, busy_ns and count equal Merged()'s
  // hist.sum_ns() and hist.count(), and hits its hits.
  std::vector<LiveTotal> LiveTotals(int epoch) const {
    std::vector<LiveTotal> out(static_cast<size_t>(steps_));
    if (epoch < 0) return out;
    for (const auto& s : slots_) {
      const EpochTable* t = s[epoch].load(std::memory_order_acquire);
      if (!t) continue;
      for (int i = 0; i < steps_; ++i) {
        const LiveAcc& l = t->live[i];
        out[size_t(i)].busy_ns += l.busy_ns.load(std::memory_order_relaxed);
        out[size_t(i)].count += l.count.load(std::memory_order_relaxed);
        out[size_t(i)].hits += l.hits.load(std::memory_order_relaxed);
      }
    }
    return out;
  }

 private:
  static void Add(EpochTable& t, int step, uint64_t ns, int64_t bytes, bool error, bool hit) {
    StepAcc& a = t.acc[size_t(step)];
    a.hist.Add(ns);
    a.bytes += bytes;
    if (error) ++a.errors;
    if (hit) ++a.hits;
    // One writer per slot (the overflow slot's under its lock): a load and a store, not a
    // read-modify-write, keep the hot path free of locked instructions.
    LiveAcc& l = t.live[step];
    l.busy_ns.store(l.busy_ns.load(std::memory_order_relaxed) + ns, std::memory_order_relaxed);
    l.count.store(l.count.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    if (hit) l.hits.store(l.hits.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  }
  EpochTable& Table(int slot, int epoch) {
    auto& p = slots_[size_t(slot)][epoch];
    EpochTable* t = p.load(std::memory_order_relaxed);
    if (!t) {
      t = new EpochTable(steps_);
      p.store(t, std::memory_order_release);
    }
    return *t;
  }

  int epochs_, steps_;
  std::vector<std::unique_ptr<std::atomic<EpochTable*>[]>> slots_;
  std::mutex overflow_mu_;
};

// ---------------------------------------------------------------------------------------------
// Batch buffers.

// Recycles Batch objects and turns "the consumer dropped a batch" into released tokens. Shared
// with every BatchPtr's deleter, so a batch may outlive the pipeline: Detach() then makes the
// release a no-op.
class BatchPool : public std::enable_shared_from_this<BatchPool> {
 public:
  explicit BatchPool(std::function<void(int64_t)> release) : release_(std::move(release)) {}

  std::unique_ptr<Batch> Acquire() {
    std::lock_guard<std::mutex> lock(mu_);
    if (free_.empty()) return std::make_unique<Batch>();
    std::unique_ptr<Batch> b = std::move(free_.back());
    free_.pop_back();
    return b;
  }

  BatchPtr Publish(std::unique_ptr<Batch> batch) {
    std::shared_ptr<BatchPool> self = shared_from_this();
    return BatchPtr(batch.release(), [self](const Batch* b) { self->Return(const_cast<Batch*>(b)); });
  }

  // Gives back a batch that was never published (drop_last): its tokens go back too.
  void Recycle(std::unique_ptr<Batch> batch) { Return(batch.release()); }

  void Detach() {
    std::lock_guard<std::mutex> lock(mu_);
    release_ = nullptr;
  }

 private:
  void Return(Batch* b) {
    int64_t n = b->size;
    std::lock_guard<std::mutex> lock(mu_);
    free_.emplace_back(b);
    // Under the lock so that Detach() cannot complete while a release is in progress.
    if (release_ && n > 0) release_(n);
  }

  std::mutex mu_;
  std::vector<std::unique_ptr<Batch>> free_;
  std::function<void(int64_t)> release_;
};

// Converted samples wait in these buffers between their worker and the serial batcher. A LIFO
// pool rather than one buffer per ring slot: only samples between conversion and batching hold
// one (a handful, not every token), and the buffer freed last, still in the CPU's caches, is
// the one reused next. The lock covers a pointer push or pop.
class TensorPool {
 public:
  using Buffer = std::unique_ptr<std::vector<uint8_t>>;
  Buffer Acquire() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!free_.empty()) {
        Buffer b = std::move(free_.back());
        free_.pop_back();
        return b;
      }
    }
    return std::make_unique<std::vector<uint8_t>>();
  }
  void Release(Buffer b) {
    if (!b) return;
    std::lock_guard<std::mutex> lock(mu_);
    free_.push_back(std::move(b));
  }

 private:
  std::mutex mu_;
  std::vector<Buffer> free_;
};

// ---------------------------------------------------------------------------------------------

struct Ticket {
  uint64_t sequence = 0;
  int64_t index = 0;
  int epoch = 0;
};

struct Slot {
  Sample sample;
  int failed_step = -1;  // -1: fine
  bool fatal = false;    // the failing step's policy is `fail`
  Status error;
  int resume = 0;  // first step to run: past the cached ones on a cache hit
  // An owned buffer kept aside while `sample.image` is a cache view, so the slot's ping-pong
  // buffers survive a hit and steady state allocates nothing.
  Image spare;
  // The cached file of a hit when the cache keeps encoded files (placement at read): a view of
  // the memory store (dropped at once), or a disk record read into this reused buffer.
  Image cached_file;
  // The sample in the batch's layout and dtype, made by the worker so that the serial batcher
  // only copies; from the TensorPool, given back by the batcher.
  TensorPool::Buffer tensor;
  int channels = 0, height = 0, width = 0;
  // XXH3-64 of `tensor`'s bytes (options.digest), hashed by the worker while they are still in
  // its cache; the batcher folds these into the epoch's batch_digest in batch order.
  uint64_t tensor_digest = 0;
  // Fused decode: the region the decoder left in sample.image for the next step.
  bool region_decoded = false;
  RegionPlan region_plan;
  DecodedRegion region;
  // Fused tail: the flips and value map the conversion applies.
  OutputOp output_op;
};

struct ReadyItem {
  enum Kind { kBatch, kEpochEnd, kDone, kError } kind = kBatch;
  BatchPtr batch;
  int epoch = 0;
  Status status;
};

// What the batcher writes about an epoch; read by the consumer after the epoch's end marker.
struct EpochLog {
  int64_t seen = 0;  // samples that reached the batcher, skipped ones included
  int64_t delivered = 0;
  int64_t batches = 0;
  int64_t skipped_count = 0;
  std::vector<SkippedSample> skipped;
  std::string digest;
};

class GraphPipeline final : public Pipeline {
 public:
  GraphPipeline(const PipelineOptions& options, std::unique_ptr<Source> source,
                std::vector<Step> steps, int threads, std::unique_ptr<SampleCache> cache,
                CachePlacement placement)
      : options_(options),
        source_(std::move(source)),
        steps_(std::move(steps)),
        threads_(threads),
        cache_(std::move(cache)),
        placement_(std::move(placement)),
        per_epoch_(EpochLength(options, source_->size())),
        skip_limit_(options.max_skipped.Limit(per_epoch_)),
        total_(uint64_t(per_epoch_) * uint64_t(options.epochs - options.start_epoch) -
               uint64_t(options.start_position)),
        tokens_(size_t(options.prefetch) * size_t(options.batch.size) +
                size_t(options.max_in_flight > 0 ? options.max_in_flight : 4 * threads)),
        ring_(tokens_),
        logs_(size_t(options.epochs)),
        fill_faults_(new std::atomic<int64_t>[size_t(options.epochs)]()),
        stats_table_(threads, options.epochs, int(steps_.size()) + 4),
        arena_(threads) {
    digest_state_ = XXH3_createState();
    pool_ = std::make_shared<BatchPool>([this](int64_t n) { ReleaseTokens(n); });
    // The cache lookup first, then the steps with the copy into the cache right after the step
    // whose output it keeps, then the engine's own steps.
    if (cache_) report_steps_.push_back({CacheStep(), "cache", "cache"});
    for (size_t i = 0; i < steps_.size(); ++i) {
      report_steps_.push_back({int(i), steps_[i].name, steps_[i].type});
      if (cache_ && int(i) == placement_.stages)
        report_steps_.push_back({FillStep(), "cache_fill", "cache_fill"});
    }
    report_steps_.push_back({CollateStep(), "collate", "collate"});
    report_steps_.push_back({BatchStep(), "batch", "batch"});
  }

  ~GraphPipeline() override {
    Cancel();
    if (producer_.joinable()) producer_.join();
    IgnoreAccessesBegin();  // TSan: see Start()
    arena_.execute([this] { nodes_.reset(); graph_.reset(); });
    IgnoreAccessesEnd();
    cache_.reset();  // after the graph: no worker inserts any more; makes records durable
    XXH3_freeState(digest_state_);
  }

  void Start(double open_seconds, std::vector<std::string> warnings) {
    run_stats_.source = source_->Describe();
    run_stats_.threads = threads_;
    run_stats_.dataset_size = source_->size();
    // A resumed epoch counts on from where its checkpoint was taken.
    logs_[size_t(options_.start_epoch)].seen = options_.start_position;
    logs_[size_t(options_.start_epoch)].batches = options_.start_batch;
    run_stats_.open_seconds = open_seconds;
    run_stats_.prefetch = options_.prefetch;
    consumer_epoch_.store(options_.start_epoch);
    if (options_.trace) {
      const uint64_t per_sample = steps_.size() + 3;
      const uint64_t max_events = uint64_t(std::max<int64_t>(1000, options_.trace_max_events));
      trace_every_ = std::max<uint64_t>(1, (total_ * per_sample + max_events - 1) / max_events);
      trace_buffers_.reset(new TraceBuffer[size_t(threads_) + 1]);
    }
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
    // For TSan (tsan_annotations.h): the set-up above happens before the bodies that start
    // from these addresses; oneTBB's own objects are handed to its workers inside libtbb.
    HappensBefore(&ring_);
    HappensBefore(&next_sequence_);
    HappensBefore(&logs_);
    IgnoreAccessesBegin();
    arena_.execute([this] { BuildGraph(); });
    epoch_start_ns_ = NowNs();
    epoch_start_cpu_ns_ = ProcessCpuNs();
    graph_->reserve_wait();  // released when the last epoch is batched, or on stop
    nodes_->input.activate();
    IgnoreAccessesEnd();
    producer_ = std::thread([this] {
      try {
        arena_.execute([this] {
          graph_->wait_for_all();
          HappensAfter(&graph_);
        });
      } catch (const std::exception& e) {
        PushError(Status::Internal(std::string("pipeline graph failed: ") + e.what()));
      }
    });
  }

  Status Next(BatchPtr* batch) override {
    *batch = nullptr;
    std::unique_lock<std::mutex> lock(q_mu_);
    if (!final_status_.ok()) return final_status_;
    uint64_t t0 = NowNs();
    const int epoch_now = consumer_epoch_.load(std::memory_order_relaxed);
    if (live_epoch_ != epoch_now && epoch_now < options_.epochs) {
      // The first call of an epoch: live() moves on to it.
      live_epoch_ = epoch_now;
      live_start_ns_ = epoch_start_ns_;
      live_end_ns_ = 0;
      live_samples_ = live_batches_ = 0;
    }
    occupancy_.emplace_back(double(t0 - epoch_start_ns_) * 1e-9, ready_batches_);
    occupancy_sum_ += double(ready_batches_);
    q_cv_.wait(lock, [this] { return !queue_.empty() || !final_status_.ok(); });
    uint64_t waited = NowNs() - t0;
    consumer_wait_ns_ += waited;
    if (!final_status_.ok()) return final_status_;
    ReadyItem& front = queue_.front();
    switch (front.kind) {
      case ReadyItem::kDone:
        return Status::Ok();  // stays queued: every later call also ends here
      case ReadyItem::kError:
        final_status_ = front.status;
        return final_status_;
      case ReadyItem::kBatch:
        *batch = std::move(front.batch);
        queue_.pop_front();
        --ready_batches_;
        live_samples_ += (*batch)->size;
        ++live_batches_;
        wait_hist_.Add(waited);
        if (trace_every_) {
          std::lock_guard<std::mutex> tl(consumer_trace_mu_);
          consumer_trace_.push_back(TraceEvent{"wait for batch", "consumer", t0, waited,
                                               (*batch)->epoch + 1, -1});
        }
        return Status::Ok();
      case ReadyItem::kEpochEnd: {
        int epoch = front.epoch;
        queue_.pop_front();
        const uint64_t end_ns = NowNs();
        live_end_ns_ = end_ns;
        lock.unlock();
        FinishEpoch(epoch, end_ns);
        return Status::Ok();
      }
    }
    return Status::Internal("unreachable");
  }

  int current_epoch() const override { return consumer_epoch_.load(); }
  int64_t dataset_size() const override { return source_->size(); }
  int64_t epoch_length() const override { return per_epoch_; }
  int64_t num_classes() const override { return int64_t(source_->classes().size()); }
  int64_t batches_per_epoch() const override {
    int64_t bs = options_.batch.size;
    return options_.batch.drop_last ? per_epoch_ / bs : (per_epoch_ + bs - 1) / bs;
  }

  RunStats stats() const override {
    RunStats out;
    {
      std::lock_guard<std::mutex> lock(stats_mu_);
      out = run_stats_;
    }
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) == 0) out.peak_rss_bytes = int64_t(ru.ru_maxrss) * 1024;
    if (cache_) {
      out.cache = cache_->stats();
      if (out.cache.disk_disabled)
        for (const std::string& m : out.cache.messages)
          if (m.rfind("disk cache disabled", 0) == 0) out.warnings.push_back(m);
    }
    return out;
  }

  LiveEpochStats live() const override {
    LiveEpochStats out;
    out.cache_mode = cache_ ? CacheModeName(options_.cache.mode) : "off";
    int epoch;
    {
      std::lock_guard<std::mutex> lock(q_mu_);
      epoch = live_epoch_;
      if (epoch >= 0) {
        out.seconds = double((live_end_ns_ ? live_end_ns_ : NowNs()) - live_start_ns_) * 1e-9;
        out.samples = live_samples_;
        out.batches = live_batches_;
      }
    }
    out.epoch = epoch + 1;
    // Outside the lock: the sums read only atomics and tables that are never freed early.
    std::vector<LiveTotal> totals = stats_table_.LiveTotals(epoch);
    for (const ReportStep& r : report_steps_) {
      const LiveTotal& t = totals[size_t(r.step)];
      out.stages.push_back({r.name, double(t.busy_ns) * 1e-9, t.count});
    }
    if (cache_) {
      const LiveTotal& c = totals[size_t(CacheStep())];
      out.cache_hits = c.hits;
      out.cache_misses = c.count - c.hits;
    }
    return out;
  }

  std::vector<TraceEvent> trace() const override {
    std::vector<TraceEvent> out;
    if (!trace_every_) return out;
    for (int i = 0; i <= threads_; ++i) {
      std::lock_guard<std::mutex> lock(trace_buffers_[size_t(i)].mu);
      out.insert(out.end(), trace_buffers_[size_t(i)].events.begin(),
                 trace_buffers_[size_t(i)].events.end());
    }
    std::lock_guard<std::mutex> lock(consumer_trace_mu_);
    out.insert(out.end(), consumer_trace_.begin(), consumer_trace_.end());
    return out;
  }

  void Cancel() override {
    pool_->Detach();
    {
      std::lock_guard<std::mutex> lock(q_mu_);
      if (final_status_.ok() && !(!queue_.empty() && queue_.back().kind == ReadyItem::kDone))
        final_status_ = Status::Cancelled("the pipeline was cancelled");
    }
    q_cv_.notify_all();
    StopProducing();
    if (graph_) graph_->cancel();
  }

 private:
  struct Nodes {
    Nodes(flow::graph& g, GraphPipeline* p, size_t tokens)
        : input(g, [p](tbb::flow_control& fc) {
            HappensAfter(&p->next_sequence_);  // the previous call, maybe on another thread
            Ticket t = p->NextTicket(fc);
            HappensBefore(&p->next_sequence_);
            HappensBefore(&p->graph_);
            return t;
          }),
          limiter(g, tokens),
          sequencer(g, [p](Slot* s) {
            HappensAfter(s);
            const size_t sequence = size_t(s->sample.sequence);
            HappensBefore(&p->graph_);
            return sequence;
          }),
          batcher(g, flow::serial, [p](Slot* s) { p->BatchSample(s); return flow::continue_msg(); }) {}
    flow::input_node<Ticket> input;
    flow::limiter_node<Ticket, long long> limiter;
    std::unique_ptr<flow::function_node<Ticket, Slot*>> first;
    std::vector<std::unique_ptr<flow::function_node<Slot*, Slot*>>> rest;
    flow::sequencer_node<Slot*> sequencer;
    flow::function_node<Slot*, flow::continue_msg> batcher;
  };

  // Steps run as segments: maximal runs with the same concurrency share a node, so a sample
  // hops between tasks only where the concurrency changes.
  std::vector<std::pair<int, int>> Segments() const {
    std::vector<std::pair<int, int>> segs;
    int begin = 0;
    for (int i = 1; i <= int(steps_.size()); ++i) {
      if (i == int(steps_.size()) || steps_[size_t(i)].concurrency != steps_[size_t(begin)].concurrency) {
        segs.emplace_back(begin, i);
        begin = i;
      }
    }
    return segs;
  }

  static size_t Concurrency(int c) { return c <= 0 ? size_t(flow::unlimited) : size_t(c); }

  void BuildGraph() {
    graph_ = std::make_unique<flow::graph>();
    nodes_ = std::make_unique<Nodes>(*graph_, this, tokens_);
    auto segs = Segments();
    auto [b0, e0] = segs[0];
    nodes_->first = std::make_unique<flow::function_node<Ticket, Slot*>>(
        *graph_, Concurrency(steps_[size_t(b0)].concurrency), [this, b0 = b0, e0 = e0](const Ticket& t) {
          HappensAfter(&ring_);  // the token's release (ReleaseTokens): the slot is free again
          Slot* slot = &ring_[t.sequence % tokens_];
          InitSlot(slot, t);
          if (cache_) LookupCache(slot);
          RunSteps(slot, b0, e0);
          HandOff(slot);
          return slot;
        });
    flow::make_edge(nodes_->input, nodes_->limiter);
    flow::make_edge(nodes_->limiter, *nodes_->first);
    flow::sender<Slot*>* prev = nodes_->first.get();
    for (size_t k = 1; k < segs.size(); ++k) {
      auto [b, e] = segs[k];
      nodes_->rest.push_back(std::make_unique<flow::function_node<Slot*, Slot*>>(
          *graph_, Concurrency(steps_[size_t(b)].concurrency), [this, b = b, e = e](Slot* slot) {
            HappensAfter(slot);
            RunSteps(slot, b, e);
            HandOff(slot);
            return slot;
          }));
      flow::make_edge(*prev, *nodes_->rest.back());
      prev = nodes_->rest.back().get();
    }
    flow::make_edge(*prev, nodes_->sequencer);
    flow::make_edge(nodes_->sequencer, nodes_->batcher);
  }

  // End of a worker body for TSan: its work on the slot happens before the next body's, and
  // before wait_for_all() returns.
  void HandOff(Slot* slot) {
    HappensBefore(slot);
    HappensBefore(&graph_);
  }

  // input_node body (serial).
  Ticket NextTicket(tbb::flow_control& fc) {
    if (stop_.load(std::memory_order_relaxed) || next_sequence_ >= total_) {
      fc.stop();
      return {};
    }
    Ticket t;
    t.sequence = next_sequence_++;
    // Sequences start at 0 (the sequencer needs that); epochs at start_epoch, positions at
    // start_position.
    const uint64_t at = t.sequence + uint64_t(options_.start_position);
    t.epoch = options_.start_epoch + int(at / uint64_t(per_epoch_));
    int64_t pos = int64_t(at % uint64_t(per_epoch_));
    if (pos == 0 || t.sequence == 0) order_ = EpochOrder(options_, *source_, t.epoch);
    t.index = order_[size_t(pos)];
    return t;
  }

  // Position in its epoch's order just after the sample with this sequence number.
  int64_t EndPosition(uint64_t sequence) const {
    return int64_t((sequence + uint64_t(options_.start_position)) % uint64_t(per_epoch_)) + 1;
  }

  void InitSlot(Slot* slot, const Ticket& t) {
    Sample& s = slot->sample;
    s.index = t.index;
    s.epoch = t.epoch;
    s.sequence = t.sequence;
    s.label = source_->label(t.index);
    s.source = source_->key(t.index);
    slot->failed_step = -1;
    slot->fatal = false;
    slot->error = Status::Ok();
    slot->resume = 0;
    slot->region_decoded = false;
    slot->output_op = OutputOp();
  }

  void LookupCache(Slot* slot) {
    Sample& s = slot->sample;
    uint64_t t0 = NowNs();
    // A memory hit replaces the image handle with a view: keep the slot's own buffer aside
    // first (or drop an earlier sample's view), and give it back on a miss.
    if (s.image.shared()) {
      s.image = Image();
    } else if (s.image.data() && !slot->spare.data()) {
      slot->spare = std::move(s.image);
      s.image = Image();
    }
    int64_t bytes = 0;
    bool hit;
    if (placement_.stages == 0) {
      // The cache keeps the encoded file: a hit stands in for the read, into the sample's own
      // reused buffer (a few dozen KB, no fresh memory), so the decode that follows is the one
      // an uncached sample gets, fusion included.
      hit = cache_->Lookup(s.index, &slot->cached_file, &bytes);
      if (hit) {
        const uint8_t* b = slot->cached_file.data();
        s.encoded.assign(b, b + slot->cached_file.size_bytes());
      }
      if (slot->cached_file.shared()) slot->cached_file = Image();  // a memory view: let go
    } else {
      hit = cache_->Lookup(s.index, &s.image, &bytes);
      if (hit) s.encoded.clear();
    }
    // A hit leaves a pixel cache's view in s.image; every other case gets the slot's own buffer
    // back (a files hit decodes into it: no fresh allocation per sample).
    if (hit) slot->resume = placement_.stages + 1;  // past read and the cached stages
    if ((!hit || placement_.stages == 0) && !s.image.data() && slot->spare.data()) {
      s.image = std::move(slot->spare);
      slot->spare = Image();
    }
    uint64_t t1 = NowNs();
    stats_table_.Record(s.epoch, CacheStep(), t1 - t0, hit ? bytes : 0, false, hit);
    Trace(s, hit ? "cache hit" : "cache miss", t0, t1);
  }

  // Records a span of `s` when tracing and the sample is one of those traced.
  void Trace(const Sample& s, const std::string& name, uint64_t t0, uint64_t t1) {
    if (!trace_every_ || s.sequence % trace_every_ != 0) return;
    int slot = tbb::this_task_arena::current_thread_index();
    if (slot < 0 || slot >= threads_) slot = threads_;
    TraceBuffer& b = trace_buffers_[size_t(slot)];
    std::lock_guard<std::mutex> lock(b.mu);
    b.events.push_back(TraceEvent{name, slot < threads_ ? "worker " + std::to_string(slot) : "other",
                                  t0, t1 - t0, s.epoch + 1, s.index});
  }

  StageContext Context(const Sample& s, int step) const {
    return StageContext(options_.seed, s.epoch, s.index, step);
  }

  int BatchStep() const { return int(steps_.size()); }
  int CollateStep() const { return int(steps_.size()) + 1; }
  int CacheStep() const { return int(steps_.size()) + 2; }
  int FillStep() const { return int(steps_.size()) + 3; }

  void RunSteps(Slot* slot, int begin, int end) {
    Sample& s = slot->sample;
    for (int i = std::max(begin, slot->resume); i < end; ++i) {
      if (slot->failed_step >= 0) return;
      Step& step = steps_[size_t(i)];
      uint64_t t0 = NowNs();
      Status st;
      int64_t bytes = 0;
      bool fused = false;
      try {
        if (i == 0) {
          st = source_->Read(s.index, &s);
          bytes = s.encoded.empty() ? int64_t(s.image.size_bytes()) : int64_t(s.encoded.size());
        } else if (step.fused_output) {
          st = step.fused_output->FuseInto(s, Context(s, i), &slot->output_op);
          fused = true;
        } else if (slot->region_decoded) {
          st = step.region_consumer->ProcessRegion(s, slot->region, slot->region_plan);
          slot->region_decoded = false;
          bytes = int64_t(s.image.size_bytes());
        } else {
          // PlanFusion leaves no decoder whose output the cache keeps (that must be whole).
          if (step.region_decoder)
            st = step.region_decoder->DecodeRegion(s, *steps_[size_t(i) + 1].region_consumer,
                                                   Context(s, i + 1), &slot->region_plan,
                                                   &slot->region, &slot->region_decoded);
          if (st.ok() && !slot->region_decoded)
            st = step.stage->Process(s, Context(s, i));
          fused = slot->region_decoded;
          bytes = int64_t(s.image.size_bytes());
        }
      } catch (const std::exception& e) {
        st = Status::Internal(std::string("stage threw an exception: ") + e.what());
      } catch (...) {
        st = Status::Internal("stage threw a non-standard exception");
      }
      uint64_t t_end = NowNs();
      stats_table_.Record(s.epoch, i, t_end - t0, bytes, !st.ok(), fused);
      Trace(s, step.name, t0, t_end);
      if (!st.ok()) {
        slot->failed_step = i;
        slot->fatal = step.on_error == OnError::kFail;
        slot->error = st;
        return;
      }
      // A stage that wrote into scratch left the previous image there; if that is a cache
      // view, hand the slot's own spare buffer back to scratch instead.
      if (s.scratch.shared()) {
        s.scratch = std::move(slot->spare);
        slot->spare = Image();
      }
      if (cache_ && i == placement_.stages) {
        struct rusage before, after;
        ::getrusage(RUSAGE_THREAD, &before);
        uint64_t t1 = NowNs();
        const int64_t filled = InsertIntoCache(s);
        uint64_t t2 = NowNs();
        ::getrusage(RUSAGE_THREAD, &after);
        fill_faults_[size_t(s.epoch)].fetch_add(after.ru_minflt - before.ru_minflt,
                                                std::memory_order_relaxed);
        stats_table_.Record(s.epoch, FillStep(), t2 - t1, filled, false);
        Trace(s, "cache_fill", t1, t2);
      }
    }
    if (end == int(steps_.size()) && slot->failed_step < 0) ConvertSample(slot);
  }

  // Offers the cache what it keeps of `s`: the encoded file (placement at read) or the image.
  // Returns the bytes offered.
  int64_t InsertIntoCache(const Sample& s) {
    if (placement_.stages > 0) {
      cache_->Insert(s.index, s.image);
      return int64_t(s.image.size_bytes());
    }
    if (s.encoded.empty() || s.encoded.size() > size_t(std::numeric_limits<int>::max())) return 0;
    // A 1 x size x 1 image over the file's bytes, borrowed for the call: Insert() copies.
    std::shared_ptr<uint8_t[]> borrowed(const_cast<uint8_t*>(s.encoded.data()), [](uint8_t*) {});
    cache_->Insert(s.index, Image::Wrap(std::move(borrowed), s.encoded.size(), 1,
                                        int(s.encoded.size()), 1, DType::kUInt8));
    return int64_t(s.encoded.size());
  }

  // The sample in the batch's layout and dtype, into the slot's own reused buffer.
  void ConvertSample(Slot* slot) {
    Sample& s = slot->sample;
    const Image& img = s.image;
    if (img.empty()) {
      slot->channels = 0;
      return;
    }
    uint64_t t0 = NowNs();
    size_t bytes = size_t(img.channels()) * img.height() * img.width() *
                   DTypeSize(options_.batch.dtype);
    if (!slot->tensor) slot->tensor = tensors_.Acquire();
    if (slot->tensor->size() < bytes) slot->tensor->resize(bytes);
    ConvertInto(img, options_.batch.layout, options_.batch.dtype, slot->output_op,
                slot->tensor->data());
    if (options_.digest) slot->tensor_digest = XXH3_64bits(slot->tensor->data(), bytes);
    slot->channels = img.channels();
    slot->height = img.height();
    slot->width = img.width();
    uint64_t t1 = NowNs();
    stats_table_.Record(s.epoch, CollateStep(), t1 - t0, int64_t(bytes), false);
    Trace(s, "collate", t0, t1);
  }

  // batcher body (serial, in sampler order).
  void BatchSample(Slot* slot) {
    HappensAfter(slot);
    HappensAfter(&logs_);  // the previous call, maybe on another thread
    try {
      BatchSampleImpl(slot);
    } catch (const std::exception& e) {
      Fail(Status::Internal(std::string("batcher: ") + e.what()));
    }
    HappensBefore(&logs_);
    HappensBefore(&graph_);
  }

  // A sample's token is its ring slot: once released, the limiter may admit the ticket that
  // reuses the slot and a worker may overwrite it. So everything read from the slot is read
  // before the release, and a released slot is never touched again.
  void BatchSampleImpl(Slot* slot) {
    Sample& s = slot->sample;
    const int epoch = s.epoch;
    // Back to the pool when this returns, whichever way (not through the slot: see above).
    struct GiveBack {
      TensorPool& pool;
      TensorPool::Buffer buffer;
      ~GiveBack() { pool.Release(std::move(buffer)); }
    } tensor{tensors_, std::move(slot->tensor)};
    EpochLog& log = logs_[size_t(epoch)];
    if (stopped_batching_) {
      ReleaseTokens(1);
      return;
    }
    if (digest_epoch_ != epoch) {
      XXH3_64bits_reset(digest_state_);
      digest_epoch_ = epoch;
    }
    ++log.seen;
    if (slot->failed_step >= 0) {
      const Step& step = steps_[size_t(slot->failed_step)];
      if (slot->fatal) {
        Status failed(slot->error.code(), "stage '" + step.name + "' failed on " +
                                              std::string(s.source) + " (sample " +
                                              std::to_string(s.index) + ", epoch " +
                                              std::to_string(epoch + 1) +
                                              "), on_error is fail: " + slot->error.message());
        ReleaseTokens(1);
        Fail(std::move(failed));
        return;
      }
      ++log.skipped_count;
      log.skipped.push_back({s.index, std::string(s.source), step.name, slot->error.ToString()});
      ReleaseTokens(1);
      if (log.skipped_count > skip_limit_) {
        Fail(SkipBudgetExceeded(log, epoch));
        return;
      }
    } else {
      // Collate copies the sample into the batch; the batch holds the token from then on and
      // gives it back when the consumer drops it, which may happen before Collate returns.
      if (!Collate(slot, tensor.buffer.get())) return;
    }
    if (log.seen == per_epoch_) EndEpoch(epoch);
  }

  // Copies one sample into the current batch; emits the batch when full. False after a fatal
  // error (already reported). The slot may be reused as soon as this returns.
  bool Collate(Slot* slot, const std::vector<uint8_t>* tensor) {
    Sample& s = slot->sample;
    if (slot->channels == 0) {
      Status failed = Status::InvalidArgument(std::string(s.source) +
                                              ": no pixels reached the batcher; the pipeline "
                                              "needs a `decode` stage for encoded files");
      ReleaseTokens(1);
      Fail(std::move(failed));
      return false;
    }
    uint64_t t0 = NowNs();
    if (!current_) {
      current_ = pool_->Acquire();
      Batch& b = *current_;
      b.epoch = s.epoch;
      b.number = logs_[size_t(s.epoch)].batches;
      b.size = 0;
      b.layout = options_.batch.layout;
      b.dtype = options_.batch.dtype;
      b.channels = slot->channels;
      b.height = slot->height;
      b.width = slot->width;
      b.labels.clear();
      b.indices.clear();
      size_t need = b.sample_bytes() * size_t(options_.batch.size);
      if (b.data_.size() < need) b.data_.resize(need);
    }
    Batch& b = *current_;
    if (slot->channels != b.channels || slot->height != b.height || slot->width != b.width) {
      Status failed = Status::InvalidArgument(
          "samples of one batch must have one shape: " + std::string(s.source) + " is " +
          s.image.ShapeString() + " but the batch holds " + std::to_string(b.channels) + "x" +
          std::to_string(b.height) + "x" + std::to_string(b.width) +
          "; add a resize/center_crop/random_resized_crop stage");
      // This sample's own token is released here; the batch's come back when it is recycled.
      ReleaseTokens(1);
      Fail(std::move(failed));
      return false;
    }
    std::memcpy(b.data_.data() + size_t(b.size) * b.sample_bytes(), tensor->data(),
                b.sample_bytes());
    if (options_.digest)
      XXH3_64bits_update(digest_state_, &slot->tensor_digest, sizeof slot->tensor_digest);
    b.labels.push_back(s.label);
    b.indices.push_back(s.index);
    b.end_position = EndPosition(s.sequence);
    ++b.size;
    uint64_t t1 = NowNs();
    stats_table_.Record(s.epoch, BatchStep(), t1 - t0, int64_t(b.sample_bytes()), false);
    Trace(s, "batch", t0, t1);
    if (b.size == options_.batch.size) EmitBatch();  // last use of the slot is above
    return true;
  }

  void EmitBatch() {
    Batch& b = *current_;
    EpochLog& log = logs_[size_t(b.epoch)];
    // The samples' bytes are in the state already (their digests, in batch order, from
    // Collate): hashing the whole batch again here cost the serial batcher a cold read of every
    // byte (~39 MB per batch of 64 float 224x224 images).
    if (options_.digest)
      XXH3_64bits_update(digest_state_, b.labels.data(), b.labels.size() * sizeof(int64_t));
    ++log.batches;
    log.delivered += b.size;
    Push(ReadyItem{ReadyItem::kBatch, pool_->Publish(std::move(current_)), b.epoch, {}});
  }

  void EndEpoch(int epoch) {
    EpochLog& log = logs_[size_t(epoch)];
    if (current_) {
      if (options_.batch.drop_last) {
        pool_->Recycle(std::move(current_));  // its samples' tokens go back with it
      } else {
        EmitBatch();
      }
    }
    if (options_.digest) {
      char hex[17];
      std::snprintf(hex, sizeof hex, "%016llx",
                    static_cast<unsigned long long>(XXH3_64bits_digest(digest_state_)));
      log.digest = hex;
    }
    Push(ReadyItem{ReadyItem::kEpochEnd, nullptr, epoch, {}});
    if (epoch == options_.epochs - 1) {
      Push(ReadyItem{ReadyItem::kDone, nullptr, epoch, {}});
      stopped_batching_ = true;
      StopProducing();
    }
  }

  // The error that stops a run whose epoch skipped more than max_skipped allows: the budget, and
  // the first skipped samples with their reasons (the whole list is in the epoch's stats).
  Status SkipBudgetExceeded(const EpochLog& log, int epoch) const {
    const SkipBudget& b = options_.max_skipped;
    std::string budget = b.count >= 0 ? std::to_string(b.count) + " samples"
                                      : FormatPercent(b.fraction) + " of the epoch's " +
                                            std::to_string(per_epoch_) + " samples = " +
                                            std::to_string(skip_limit_);
    std::string msg = "epoch " + std::to_string(epoch + 1) + ": " +
                      std::to_string(log.skipped_count) + " of the first " +
                      std::to_string(log.seen) +
                      " samples could not be used, more than max_skipped allows (" + budget +
                      "); is this the right data? Skipped:";
    const size_t shown = std::min<size_t>(log.skipped.size(), 5);
    for (size_t i = 0; i < shown; ++i)
      msg += "\n  " + log.skipped[i].source + " (" + log.skipped[i].stage +
             "): " + log.skipped[i].reason;
    if (log.skipped.size() > shown)
      msg += "\n  ... and " + std::to_string(log.skipped.size() - shown) + " more";
    return Status::ResourceExhausted(msg);
  }

  static std::string FormatPercent(double f) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%g%%", f * 100.0);
    return buf;
  }

  void Fail(Status status) {
    stopped_batching_ = true;
    if (current_) {
      pool_->Recycle(std::move(current_));
    }
    PushError(std::move(status));
    StopProducing();
  }

  void Push(ReadyItem item) {
    {
      std::lock_guard<std::mutex> lock(q_mu_);
      if (item.kind == ReadyItem::kBatch) ++ready_batches_;
      queue_.push_back(std::move(item));
    }
    q_cv_.notify_one();
  }

  void PushError(Status status) { Push(ReadyItem{ReadyItem::kError, nullptr, 0, std::move(status)}); }

  void ReleaseTokens(int64_t n) {
    HappensBefore(&ring_);  // the released slots' last uses happen before their reuse
    if (!stop_.load()) nodes_->limiter.decrementer().try_put(static_cast<long long>(n));
  }

  void StopProducing() {
    stop_.store(true);
    if (graph_ && !released_.exchange(true)) graph_->release_wait();
  }

  // Runs on the consumer's thread at an epoch's end marker, taken from the queue at `now`.
  void FinishEpoch(int epoch, uint64_t now) {
    EpochLog& log = logs_[size_t(epoch)];
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
    {
      std::lock_guard<std::mutex> lock(q_mu_);
      es.queue_mean = occupancy_.empty() ? 0 : occupancy_sum_ / double(occupancy_.size());
      size_t stride = (occupancy_.size() + 199) / 200;
      for (size_t i = 0; i < occupancy_.size(); i += std::max<size_t>(stride, 1))
        es.queue_occupancy.push_back(occupancy_[i]);
      occupancy_.clear();
      occupancy_sum_ = 0;
    }
    std::vector<StepAcc> acc = stats_table_.Merged(epoch);
    auto add = [&](int step, const std::string& name, const std::string& type) {
      const StepAcc& a = acc[size_t(step)];
      StageStats st;
      st.name = name;
      st.type = type;
      st.count = int64_t(a.hist.count());
      st.errors = a.errors;
      st.bytes = a.bytes;
      st.busy_seconds = double(a.hist.sum_ns()) * 1e-9;
      st.p50_ms = a.hist.Quantile(0.50) * 1e-6;
      st.p95_ms = a.hist.Quantile(0.95) * 1e-6;
      st.p99_ms = a.hist.Quantile(0.99) * 1e-6;
      st.max_ms = double(a.hist.max_ns()) * 1e-6;
      if (step < int(steps_.size())) {
        st.fused = a.hits;
        if (steps_[size_t(step)].fused_output) st.fused_into = "collate";
      }
      es.stages.push_back(std::move(st));
    };
    for (const ReportStep& r : report_steps_) add(r.step, r.name, r.type);
    if (cache_) {
      const StepAcc& c = acc[size_t(CacheStep())];
      es.cache.mode = CacheModeName(options_.cache.mode);
      es.cache.hits = c.hits;
      es.cache.misses = int64_t(c.hist.count()) - c.hits;
      es.cache.bytes = c.bytes;
      es.cache.fill_page_faults = fill_faults_[size_t(epoch)].load(std::memory_order_relaxed);
    }
    es.bytes_read = acc[0].bytes;
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

  // --- Constant after construction ---
  const PipelineOptions options_;
  const std::unique_ptr<Source> source_;
  std::vector<Step> steps_;  // [0] is "read"
  const int threads_;
  std::unique_ptr<SampleCache> cache_;  // null when caching is off
  const CachePlacement placement_;
  const int64_t per_epoch_;
  const int64_t skip_limit_;  // more skipped samples than this in one epoch stop the run
  const uint64_t total_;
  const size_t tokens_;
  // What EpochStats::stages and LiveEpochStats::stages list, in their order.
  struct ReportStep {
    int step;  // index into the stats table
    std::string name, type;
  };
  std::vector<ReportStep> report_steps_;  // filled by the constructor

  // --- Sample slots: owned by whichever node holds the slot's sample ---
  std::vector<Slot> ring_;

  // --- input_node body only ---
  uint64_t next_sequence_ = 0;
  std::vector<int64_t> order_;

  // --- batcher body only (consumer reads an epoch's log after its end marker) ---
  std::vector<EpochLog> logs_;
  std::unique_ptr<Batch> current_;
  XXH3_state_t* digest_state_ = nullptr;
  bool stopped_batching_ = false;
  int digest_epoch_ = -1;  // the epoch digest_state_ hashes

  // --- Any worker (relaxed atomics), read when an epoch's stats are made ---
  // Per epoch: minor page faults taken inside cache inserts (EpochCacheStats::fill_page_faults).
  std::unique_ptr<std::atomic<int64_t>[]> fill_faults_;
  StatsTable stats_table_;
  std::shared_ptr<BatchPool> pool_;
  TensorPool tensors_;

  // --- Tracing (options_.trace): one buffer per arena slot plus one for outsiders; each
  // locked only by its own thread while the run goes on (uncontended), by trace() after. ---
  struct TraceBuffer {
    std::mutex mu;
    std::vector<TraceEvent> events;
  };
  uint64_t trace_every_ = 0;  // trace every k-th sample; 0: off
  std::unique_ptr<TraceBuffer[]> trace_buffers_;
  mutable std::mutex consumer_trace_mu_;
  std::vector<TraceEvent> consumer_trace_;

  // --- Ready queue, protected by q_mu_ ---
  mutable std::mutex q_mu_;
  std::condition_variable q_cv_;
  std::deque<ReadyItem> queue_;
  int ready_batches_ = 0;
  Status final_status_;
  // What live() reports, set by the consumer in Next(): the epoch (0-based; -1 before the first
  // call), when it started and ended (0 while it runs), what Next() has returned of it.
  int live_epoch_ = -1;
  uint64_t live_start_ns_ = 0, live_end_ns_ = 0;
  int64_t live_samples_ = 0, live_batches_ = 0;

  // --- Consumer thread only ---
  uint64_t epoch_start_ns_ = 0;
  uint64_t epoch_start_cpu_ns_ = 0;  // ProcessCpuNs() then
  uint64_t consumer_wait_ns_ = 0;
  LatencyHistogram wait_hist_;  // per batch, this epoch
  std::vector<std::pair<double, int>> occupancy_;
  double occupancy_sum_ = 0;
  std::atomic<int> consumer_epoch_{0};

  mutable std::mutex stats_mu_;
  RunStats run_stats_;  // protected by stats_mu_

  std::atomic<bool> stop_{false};
  std::atomic<bool> released_{false};
  tbb::task_arena arena_;
  std::unique_ptr<flow::graph> graph_;  // declared before nodes_: nodes die first
  std::unique_ptr<Nodes> nodes_;
  std::thread producer_;
};

// Fills parameters the caller left out from the schema's defaults (the config parser already
// does this; options built in code may not have).
Status CompleteParams(const StageInfo& info, StageSpec* spec, int position) {
  for (const ParamSpec& p : info.params) {
    if (spec->params.Has(p.name)) continue;
    if (!p.default_value)
      return Status::InvalidArgument("pipeline[" + std::to_string(position) + "] (" + info.name +
                                     "): missing required parameter '" + p.name + "'");
    spec->params.Set(p.name, *p.default_value);
  }
  for (const auto& [name, value] : spec->params.values())
    if (!info.FindParam(name))
      return Status::InvalidArgument("pipeline[" + std::to_string(position) + "] (" + info.name +
                                     "): unknown parameter '" + name + "'");
  return Status::Ok();
}

}  // namespace

std::vector<int64_t> Batch::shape() const {
  if (layout == Layout::kNCHW) return {size, channels, height, width};
  return {size, height, width, channels};
}

namespace {

// Asks the OS to forget the file's cached pages, so the next read comes from storage.
void EvictFromPageCache(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  ::fdatasync(fd);
  ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
  ::close(fd);
}

}  // namespace

Result<std::unique_ptr<Pipeline>> Pipeline::Open(const PipelineOptions& options_in,
                                                 const StageRegistry& registry) {
  uint64_t t0 = NowNs();
  PipelineOptions options = options_in;
  if (options.batch.size < 1) return Status::InvalidArgument("batch.size must be >= 1");
  if (options.epochs < 1) return Status::InvalidArgument("epochs must be >= 1");
  if (options.prefetch < 1) return Status::InvalidArgument("prefetch must be >= 1");
  if (options.threads < 0) return Status::InvalidArgument("threads must be >= 0");
  if (options.max_in_flight < 0) return Status::InvalidArgument("max_in_flight must be >= 0");
  if (options.start_epoch < 0 || options.start_epoch >= options.epochs)
    return Status::InvalidArgument("start_epoch must be in [0, epochs)");
  if (options.start_position < 0 || options.start_batch < 0)
    return Status::InvalidArgument("start_position and start_batch must be >= 0");
  const DistributedOptions& dist = options.distributed;
  if (dist.world_size < 1 || dist.rank < 0 || dist.rank >= dist.world_size)
    return Status::InvalidArgument("distributed: rank " + std::to_string(dist.rank) +
                                   " is not in [0, world_size " +
                                   std::to_string(dist.world_size) + ")");
  // Ranks on one host must not share a disk cache: each keeps what its own part computed.
  if (dist.world_size > 1 && !options.cache.path.empty())
    options.cache.path += "/rank" + std::to_string(dist.rank);
  int threads = options.threads > 0 ? options.threads : tbb::info::default_concurrency();

  std::vector<Step> steps;
  steps.push_back(Step{"read", "read", options.source.on_error, 0, nullptr});
  bool has_decode = false;
  const std::vector<std::string> names = StageNames(options.pipeline);
  for (size_t i = 0; i < options.pipeline.size(); ++i) {
    StageSpec& spec = options.pipeline[i];
    const StageInfo* info = registry.Find(spec.type);
    if (!info)
      return Status::InvalidArgument("pipeline[" + std::to_string(i) + "]: unknown stage type '" +
                                     spec.type + "'");
    FLOWFEED_RETURN_IF_ERROR(CompleteParams(*info, &spec, int(i)));
    Result<std::unique_ptr<Stage>> stage = info->factory(spec.params);
    if (!stage.ok())
      return stage.status().WithContext("pipeline[" + std::to_string(i) + "] (" + spec.type + ")");
    if (spec.type == "decode") has_decode = true;
    int concurrency = info->traits.thread_safe ? spec.concurrency : 1;
    steps.push_back(Step{names[i], spec.type, spec.on_error, concurrency, std::move(stage.value())});
  }
  if (options.source.type != "idx" && !has_decode)
    return Status::InvalidArgument("pipeline: a " + options.source.type +
                                   " source gives encoded files; add {type: decode} to the pipeline");
  Result<CachePlacement> plan = PlanCache(options, registry);
  if (!plan.ok()) return plan.status();
  FLOWFEED_RETURN_IF_ERROR(KeepFilesUnderDctScaling(options, steps, &plan.value()));

  Result<std::unique_ptr<Source>> source = OpenSource(options.source);
  if (!source.ok()) return source.status();
  if (source.value()->size() == 0)
    return Status::NotFound("source has no samples: " + source.value()->Describe());
  FLOWFEED_RETURN_IF_ERROR(ChooseWhatToKeep(options, *source.value(), steps, &plan.value()));
  const int region_in_cache = PlanFusion(options, plan.value(), &steps);
  const int64_t length = EpochLength(options, source.value()->size());
  if (length == 0)
    return Status::InvalidArgument("distributed: " + std::to_string(source.value()->size()) +
                                   " samples leave nothing for " + std::to_string(dist.world_size) +
                                   " ranks with uneven: drop");
  if (options.start_position >= length)
    return Status::InvalidArgument("start_position " + std::to_string(options.start_position) +
                                   " is past the epoch's " + std::to_string(length) + " samples");

  std::vector<std::string> warnings;
  if (plan->frozen) warnings.push_back(plan->note);
  std::unique_ptr<SampleCache> cache;
  if (plan->enabled) {
    Result<CacheFingerprint> fp = PrefixFingerprint(*source.value(), options, plan.value());
    if (!fp.ok()) return fp.status();
    // A region-decoded, DCT-scaled resize is not bit-identical to the whole-image one.
    if (region_in_cache > 0)
      fp.value().parts.emplace_back("fused", "region decode into " + steps[size_t(region_in_cache)].name);
    Result<std::unique_ptr<SampleCache>> opened =
        SampleCache::Open(options.cache, source.value()->size(), fp.value());
    if (!opened.ok()) return opened.status().WithContext("cache");
    cache = std::move(opened.value());
  }
  if (options.cold) {
    for (const std::string& f : source.value()->Files()) EvictFromPageCache(f);
    if (cache) cache->EvictFromPageCache();
  }

  auto p = std::make_unique<GraphPipeline>(options, std::move(source.value()), std::move(steps),
                                           threads, std::move(cache), plan.value());
  p->Start(double(NowNs() - t0) * 1e-9, std::move(warnings));
  return std::unique_ptr<Pipeline>(std::move(p));
}

}  // namespace flowfeed
