// pipeline/trace_log.cc: the trace's buffers (trace_log.h).
#include "pipeline/trace_log.h"

#include <algorithm>

#include "pipeline/worker_slot.h"

namespace flowfeed {

void TraceLog::Enable(int threads, uint64_t samples, uint64_t spans_per_sample,
                      int64_t max_events) {
  const uint64_t max = uint64_t(std::max<int64_t>(1000, max_events));
  threads_ = threads;
  every_ = std::max<uint64_t>(1, (samples * spans_per_sample + max - 1) / max);
  buffers_.reset(new Buffer[size_t(threads) + 1]);
}

void TraceLog::Add(const Sample& s, const std::string& name, uint64_t t0, uint64_t t1) {
  int slot = CurrentWorkerSlot();
  if (slot < 0 || slot >= threads_) slot = threads_;
  Buffer& b = buffers_[size_t(slot)];
  std::lock_guard<std::mutex> lock(b.mu);
  b.events.push_back(TraceEvent{name, slot < threads_ ? "worker " + std::to_string(slot) : "other",
                                t0, t1 - t0, s.epoch + 1, s.index});
}

void TraceLog::ConsumerWait(uint64_t t0, uint64_t waited, int epoch) {
  std::lock_guard<std::mutex> lock(consumer_mu_);
  consumer_.push_back(TraceEvent{"wait for batch", "consumer", t0, waited, epoch + 1, -1});
}

std::vector<TraceEvent> TraceLog::Take() {
  std::vector<TraceEvent> out;
  if (!every_) return out;
  for (int i = 0; i <= threads_; ++i) {
    std::vector<TraceEvent> mine;
    {
      std::lock_guard<std::mutex> lock(buffers_[size_t(i)].mu);
      mine.swap(buffers_[size_t(i)].events);
    }
    out.insert(out.end(), std::make_move_iterator(mine.begin()),
               std::make_move_iterator(mine.end()));
  }
  std::lock_guard<std::mutex> lock(consumer_mu_);
  out.insert(out.end(), std::make_move_iterator(consumer_.begin()),
             std::make_move_iterator(consumer_.end()));
  consumer_.clear();
  return out;
}

std::vector<TraceEvent> TraceLog::Collect() const {
  std::vector<TraceEvent> out;
  if (!every_) return out;
  for (int i = 0; i <= threads_; ++i) {
    std::lock_guard<std::mutex> lock(buffers_[size_t(i)].mu);
    out.insert(out.end(), buffers_[size_t(i)].events.begin(), buffers_[size_t(i)].events.end());
  }
  std::lock_guard<std::mutex> lock(consumer_mu_);
  out.insert(out.end(), consumer_.begin(), consumer_.end());
  return out;
}

}  // namespace flowfeed
