// pipeline/batcher.cc: skip or collate, digest, skip budget, epoch ends (batcher.h).
#include "pipeline/batcher.h"

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "flowfeed/util/clock.h"
#include "pipeline/graph.h"
#include "pipeline/tsan_annotations.h"

namespace flowfeed {
namespace {

std::string FormatPercent(double f) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g%%", f * 100.0);
  return buf;
}

}  // namespace

Batcher::Batcher(const PipelineOptions& options, const std::vector<Step>& steps,
                 int64_t per_epoch, StatsTable* stats, TraceLog* trace, TensorPool* tensors,
                 std::shared_ptr<BatchPool> pool, ReadyQueue* ready, Graph* graph)
    : options_(options),
      steps_(steps),
      per_epoch_(per_epoch),
      skip_limit_(options.max_skipped.Limit(per_epoch)),
      ids_(int(steps.size())),
      stats_(stats),
      trace_(trace),
      tensors_(tensors),
      pool_(std::move(pool)),
      ready_(ready),
      graph_(graph),
      logs_(size_t(options.epochs)) {
  // A resumed epoch counts on from where its checkpoint was taken.
  logs_[size_t(options.start_epoch)].seen = options.start_position;
  logs_[size_t(options.start_epoch)].batches = options.start_batch;
}

Batcher::~Batcher() = default;

void Batcher::Add(Slot* slot) {
  HappensAfter(this);  // the previous call, maybe on another thread
  try {
    AddImpl(slot);
  } catch (const std::exception& e) {
    Fail(Status::Internal(std::string("batcher: ") + e.what()));
  }
  HappensBefore(this);
}

// A sample's token is its ring slot: once released, the limiter may admit the ticket that
// reuses the slot and a worker may overwrite it. So everything read from the slot is read
// before the release, and a released slot is never touched again.
void Batcher::AddImpl(Slot* slot) {
  Sample& s = slot->sample;
  const int epoch = s.epoch;
  // Back to the pool when this returns, whichever way (not through the slot: see above).
  struct GiveBack {
    TensorPool& pool;
    TensorPool::Buffer buffer;
    ~GiveBack() { pool.Release(std::move(buffer)); }
  } tensor{*tensors_, std::move(slot->tensor)};
  EpochLog& log = logs_[size_t(epoch)];
  if (stopped_) {
    graph_->ReleaseTokens(1);
    return;
  }
  if (digest_epoch_ != epoch) {
    digest_.Reset();
    digest_epoch_ = epoch;
  }
  ++log.seen;
  if (slot->failed_step >= 0) {
    if (!Skip(slot, log)) return;
  } else {
    // Collate copies the sample into the batch; the batch holds the token from then on and
    // gives it back when the consumer drops it, which may happen before Collate returns.
    if (!Collate(slot, tensor.buffer.get())) return;
  }
  if (log.seen == per_epoch_) EndEpoch(epoch);
}

// A failed sample: skipped under its step's on_error, within the budget. False after a fatal
// error (already reported). Releases the slot.
bool Batcher::Skip(Slot* slot, EpochLog& log) {
  const Sample& s = slot->sample;
  const int epoch = s.epoch;
  const Step& step = steps_[size_t(slot->failed_step)];
  if (slot->fatal) {
    Status failed(slot->error.code(), "stage '" + step.name + "' failed on " +
                                          std::string(s.source) + " (sample " +
                                          std::to_string(s.index) + ", epoch " +
                                          std::to_string(epoch + 1) +
                                          (step.on_error == OnError::kFail
                                               ? "), on_error is fail: "
                                               : "), which stops the run: ") +
                                          slot->error.message());
    graph_->ReleaseTokens(1);
    Fail(std::move(failed));
    return false;
  }
  ++log.skipped_count;
  log.skipped.push_back({s.index, std::string(s.source), step.name, slot->error.ToString()});
  graph_->ReleaseTokens(1);
  if (log.skipped_count > skip_limit_) {
    Fail(SkipBudgetExceeded(log, epoch));
    return false;
  }
  return true;
}

// Copies one sample into the current batch; emits the batch when full. False after a fatal
// error (already reported). The slot may be reused as soon as this returns.
bool Batcher::Collate(Slot* slot, const std::vector<uint8_t>* tensor) {
  Sample& s = slot->sample;
  if (slot->channels == 0) {
    Status failed = Status::InvalidArgument(std::string(s.source) +
                                            ": no pixels reached the batcher; the pipeline "
                                            "needs a `decode` stage for encoded files");
    graph_->ReleaseTokens(1);
    Fail(std::move(failed));
    return false;
  }
  uint64_t t0 = NowNs();
  if (!current_) StartBatch(*slot);
  Batch& b = *current_;
  if (slot->channels != b.channels || slot->height != b.height || slot->width != b.width) {
    Status failed = Status::InvalidArgument(
        "samples of one batch must have one shape: " + std::string(s.source) + " is " +
        std::to_string(slot->channels) + "x" + std::to_string(slot->height) + "x" +
        std::to_string(slot->width) + " but the batch holds " + std::to_string(b.channels) + "x" +
        std::to_string(b.height) + "x" + std::to_string(b.width) +
        "; add a resize/center_crop/random_resized_crop stage");
    // This sample's own token is released here; the batch's come back when it is recycled.
    graph_->ReleaseTokens(1);
    Fail(std::move(failed));
    return false;
  }
  std::memcpy(b.data_.data() + size_t(b.size) * b.sample_bytes(), tensor->data(),
              b.sample_bytes());
  if (options_.digest)
    digest_.AddSample(slot->tensor_digest);
  b.labels.push_back(s.label);
  b.indices.push_back(s.index);
  b.end_position = EndPosition(s.sequence);
  ++b.size;
  uint64_t t1 = NowNs();
  stats_->Record(s.epoch, ids_.batch(), t1 - t0, int64_t(b.sample_bytes()), false);
  trace_->Span(s, "batch", t0, t1);
  if (b.size == options_.batch.size) EmitBatch();  // last use of the slot is above
  return true;
}

// A batch from the pool, shaped as the slot's sample.
void Batcher::StartBatch(const Slot& slot) {
  current_ = pool_->Acquire();
  Batch& b = *current_;
  b.epoch = slot.sample.epoch;
  b.number = logs_[size_t(slot.sample.epoch)].batches;
  b.size = 0;
  b.layout = options_.batch.layout;
  b.dtype = options_.batch.dtype;
  b.channels = slot.channels;
  b.height = slot.height;
  b.width = slot.width;
  b.labels.clear();
  b.indices.clear();
  size_t need = b.sample_bytes() * size_t(options_.batch.size);
  b.data_.Reserve(need);
}

void Batcher::EmitBatch() {
  Batch& b = *current_;
  EpochLog& log = logs_[size_t(b.epoch)];
  // The samples' bytes are in the state already (their digests, in batch order, from
  // Collate): hashing the whole batch again here cost the serial batcher a cold read of every
  // byte (~39 MB per batch of 64 float 224x224 images).
  if (options_.digest)
    digest_.AddLabels(b.labels.data(), b.labels.size());
  ++log.batches;
  log.delivered += b.size;
  ready_->Push(ReadyItem{ReadyItem::kBatch, pool_->Publish(std::move(current_)), b.epoch, {}});
}

void Batcher::EndEpoch(int epoch) {
  EpochLog& log = logs_[size_t(epoch)];
  if (current_) {
    if (options_.batch.drop_last) {
      pool_->Recycle(std::move(current_));  // its samples' tokens go back with it
    } else {
      EmitBatch();
    }
  }
  if (options_.digest) log.digest = digest_.Hex();
  ready_->Push(ReadyItem{ReadyItem::kEpochEnd, nullptr, epoch, {}});
  if (epoch == options_.epochs - 1) {
    ready_->Push(ReadyItem{ReadyItem::kDone, nullptr, epoch, {}});
    stopped_ = true;
    graph_->StopProducing();
  }
}

// The error that stops a run whose epoch skipped more than max_skipped allows: the budget, and
// the first skipped samples with their reasons (the whole list is in the epoch's stats).
Status Batcher::SkipBudgetExceeded(const EpochLog& log, int epoch) const {
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

void Batcher::Fail(Status status) {
  stopped_ = true;
  if (current_) {
    pool_->Recycle(std::move(current_));
  }
  ready_->PushError(std::move(status));
  graph_->StopProducing();
}

}  // namespace flowfeed
