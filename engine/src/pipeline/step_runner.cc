// pipeline/step_runner.cc: a sample's steps, fusion, cache lookup and fill (step_runner.h).
#include "pipeline/step_runner.h"

#include <sys/resource.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <utility>
#include <vector>

#include "flowfeed/util/clock.h"
#include "isolate/isolated_stage.h"
#include "pipeline/convert.h"
#include "pipeline/graph.h"

namespace flowfeed {

StepRunner::StepRunner(const PipelineOptions& options, const Source& source,
                       std::vector<Step> steps, SampleCache* cache, int cache_stages,
                       StatsTable* stats, TraceLog* trace, TensorPool* tensors, int threads)
    : options_(options),
      source_(source),
      steps_(std::move(steps)),
      lookup_label_(InternStepLabel("cache lookup", "cache", "built-in")),
      fill_label_(InternStepLabel("cache fill", "cache", "built-in")),
      collate_label_(InternStepLabel("collate", "collate", "built-in")),
      cache_(cache),
      cache_stages_(cache_stages),
      ids_(int(steps_.size())),
      stats_(stats),
      trace_(trace),
      tensors_(tensors),
      fill_faults_(new std::atomic<int64_t>[size_t(options.epochs)]()),
      // A thread's worth for at least two: with one thread, a sample may wait between segments
      // while the next one starts.
      large_buffers_(LargeBufferPool::kBytesPerThread * size_t(std::max(threads, 2))),
      // Waiting workers are counted against those that really run (byte_budget.h).
      budget_(options.max_in_flight_bytes, std::min(threads, DefaultThreads())) {
  for (const Step& step : steps_) labels_.push_back(InternStepLabel(step.name, step.type, step.origin));
}

void StepRunner::InitSlot(Slot* slot, const Ticket& t) {
  Sample& s = slot->sample;
  s.index = t.index;
  s.epoch = t.epoch;
  s.sequence = t.sequence;
  s.label = source_.label(t.index);
  s.source = source_.key(t.index);
  slot->failed_step = -1;
  slot->fatal = false;
  slot->error = Status::Ok();
  slot->resume = 0;
  slot->region_decoded = false;
  slot->output_op = OutputOp();
}

void StepRunner::LookupCache(Slot* slot) {
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
  if (cache_stages_ == 0) {
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
  if (hit) slot->resume = cache_stages_ + 1;  // past read and the cached stages
  if ((!hit || cache_stages_ == 0) && !s.image.data() && slot->spare.data()) {
    s.image = std::move(slot->spare);
    slot->spare = Image();
  }
  uint64_t t1 = NowNs();
  stats_->Record(s.epoch, ids_.cache(), t1 - t0, hit ? bytes : 0, false, hit);
  trace_->Span(s, hit ? "cache hit" : "cache miss", t0, t1);
}

void StepRunner::TakeSlot(Slot* slot) {
  slot_kept_bytes_.fetch_sub(int64_t(slot->kept_bytes), std::memory_order_relaxed);
  slot->kept_bytes = 0;
  slot->budget_charge = budget_.Admit();
  Sample& s = slot->sample;
  if (!s.image.data() && !slot->spare.data()) s.image = large_buffers_.Take();
  slot->budget_peak = 0;
  budget_.Grow(int64_t(SlotBytes(*slot)), &slot->budget_charge, &slot->budget_peak);
}

size_t StepRunner::SlotBytes(const Slot& slot) {
  const Sample& s = slot.sample;
  size_t bytes = s.encoded.capacity();
  for (const Image* buffer : {&s.image, &s.scratch, &slot.spare, &slot.cached_file})
    if (!buffer->shared_for_accounting()) bytes += buffer->capacity_bytes();
  return bytes;
}

void StepRunner::ReleaseSlot(Slot* slot) {
  Sample& s = slot->sample;
  bool gave = false;
  for (Image* buffer : {&s.image, &s.scratch, &slot->spare, &slot->cached_file}) {
    if (buffer->capacity_bytes() > LargeBufferPool::kSlotKeepBytes) {
      large_buffers_.Put(buffer);
      gave = true;
    }
  }
  // The next sample decodes into s.image: a slot that gave its large buffer away starts it with
  // a pooled one (TakeSlot), keeping its small buffer as scratch for the resized output. Without
  // this, a run of 12 MP photos would decode each into a fresh buffer.
  if (gave && !s.scratch.data() && !s.image.shared()) std::swap(s.image, s.scratch);
  if (s.encoded.capacity() > LargeBufferPool::kSlotKeepBytes) std::vector<uint8_t>().swap(s.encoded);
  budget_.Release(slot->budget_charge, slot->budget_peak);
  slot->budget_charge = 0;
  const size_t kept = SlotBytes(*slot);
  slot->kept_bytes = kept;
  slot_kept_bytes_.fetch_add(int64_t(kept), std::memory_order_relaxed);
}

void StepRunner::CancelWaits() {
  budget_.Cancel();
  for (Step& step : steps_)
    if (step.isolated) step.isolated->Cancel();
}

void StepRunner::Run(Slot* slot, int begin, int end) {
  ThreadActivity* activity = ThreadActivity::Mine();
  activity->BeginSample(slot->sample);
  RunSteps(slot, begin, end, activity);
  if (end != int(steps_.size())) return;
  if (slot->failed_step < 0) ConvertSample(slot, activity);
  ReleaseSlot(slot);
}

void StepRunner::RunSteps(Slot* slot, int begin, int end, ThreadActivity* activity) {
  Sample& s = slot->sample;
  for (int i = std::max(begin, slot->resume); i < end; ++i) {
    if (slot->failed_step >= 0) return;
    const Step& step = steps_[size_t(i)];
    uint64_t t0 = NowNs();
    int64_t bytes = 0;
    bool fused = false;
    activity->Enter(labels_[size_t(i)]);
    Status st = RunStep(slot, i, &bytes, &fused);
    activity->Leave();
    uint64_t t_end = NowNs();
    stats_->Record(s.epoch, i, t_end - t0, bytes, !st.ok(), fused);
    trace_->Span(s, step.name, t0, t_end);
    if (!st.ok()) {
      slot->failed_step = i;
      slot->fatal = step.on_error == OnError::kFail || (step.isolated && step.isolated->broken());
      slot->error = st;
      return;
    }
    // A stage that wrote into scratch left the previous image there; if that is a cache
    // view, hand the slot's own spare buffer back to scratch instead.
    if (s.scratch.shared()) {
      s.scratch = std::move(slot->spare);
      slot->spare = Image();
    }
    if (cache_ && i == cache_stages_) FillCache(s, activity);
    budget_.Grow(int64_t(SlotBytes(*slot)), &slot->budget_charge, &slot->budget_peak);
  }
}

// A memory-cache hit arrives as a view of the cache's arena. Built-in stages copy before they
// write (Image::shared()); a plugin's code may not, and one write would change what every later
// epoch is served. So a plugin stage gets a private copy (into scratch, reused), at the cost of
// one copy of the image on a hit, for the first plugin stage after the cache point only.
namespace {
void GiveAPrivateImage(Sample& s) {
  if (!s.image.shared()) return;
  const Image& view = s.image;
  s.scratch.Reshape(view.height(), view.width(), view.channels(), view.dtype());
  std::memcpy(s.scratch.data(), view.data(), view.size_bytes());
  s.SwapScratch();
}
}  // namespace

Status StepRunner::RunStep(Slot* slot, int i, int64_t* bytes, bool* fused) {
  Sample& s = slot->sample;
  Step& step = steps_[size_t(i)];
  Status st;
  try {
    if (i == 0) {
      st = source_.Read(s.index, &s);
      *bytes = s.encoded.empty() ? int64_t(s.image.size_bytes()) : int64_t(s.encoded.size());
    } else if (step.fused_output) {
      st = step.fused_output->FuseInto(s, Context(s, i), &slot->output_op);
      *fused = true;
    } else if (slot->region_decoded) {
      st = step.region_consumer->ProcessRegion(s, slot->region, slot->region_plan);
      slot->region_decoded = false;
      *bytes = int64_t(s.image.size_bytes());
    } else {
      // PlanFusion leaves no decoder whose output the cache keeps (that must be whole).
      if (step.region_decoder)
        st = step.region_decoder->DecodeRegion(s, *steps_[size_t(i) + 1].region_consumer,
                                               Context(s, i + 1), &slot->region_plan,
                                               &slot->region, &slot->region_decoded);
      if (st.ok() && !slot->region_decoded) {
        if (step.from_plugin) GiveAPrivateImage(s);
        st = step.stage->Process(s, Context(s, i));
      }
      *fused = slot->region_decoded;
      *bytes = int64_t(s.image.size_bytes());
    }
  } catch (const std::exception& e) {
    st = Status::Internal(std::string("stage threw an exception: ") + e.what());
  } catch (...) {
    st = Status::Internal("stage threw a non-standard exception");
  }
  return st;
}

// The copy into the cache, right after the step whose output it keeps, with the minor page
// faults it took (a fresh cache's pages are the fill's real cost).
void StepRunner::FillCache(const Sample& s, ThreadActivity* activity) {
  struct rusage before, after;
  ::getrusage(RUSAGE_THREAD, &before);
  uint64_t t1 = NowNs();
  activity->Enter(fill_label_);
  const int64_t filled = InsertIntoCache(s);
  activity->Leave();
  uint64_t t2 = NowNs();
  ::getrusage(RUSAGE_THREAD, &after);
  fill_faults_[size_t(s.epoch)].fetch_add(after.ru_minflt - before.ru_minflt,
                                          std::memory_order_relaxed);
  stats_->Record(s.epoch, ids_.fill(), t2 - t1, filled, false);
  trace_->Span(s, "cache_fill", t1, t2);
}

// Offers the cache what it keeps of `s`: the encoded file (placement at read) or the image.
// Returns the bytes offered.
int64_t StepRunner::InsertIntoCache(const Sample& s) {
  if (cache_stages_ > 0) {
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
void StepRunner::ConvertSample(Slot* slot, ThreadActivity* activity) {
  Sample& s = slot->sample;
  const Image& img = s.image;
  if (img.empty()) {
    slot->channels = 0;
    return;
  }
  uint64_t t0 = NowNs();
  size_t bytes = size_t(img.channels()) * img.height() * img.width() *
                 DTypeSize(options_.batch.dtype);
  if (!slot->tensor) slot->tensor = tensors_->Acquire();
  if (slot->tensor->size() < bytes) slot->tensor->resize(bytes);
  activity->Enter(collate_label_);
  ConvertInto(img, options_.batch.layout, options_.batch.dtype, slot->output_op,
              slot->tensor->data());
  activity->Leave();
  if (options_.digest) slot->tensor_digest = BatchDigest::SampleDigest(slot->tensor->data(), bytes);
  slot->channels = img.channels();
  slot->height = img.height();
  slot->width = img.width();
  uint64_t t1 = NowNs();
  stats_->Record(s.epoch, ids_.collate(), t1 - t0, int64_t(bytes), false);
  trace_->Span(s, "collate", t0, t1);
}

}  // namespace flowfeed
