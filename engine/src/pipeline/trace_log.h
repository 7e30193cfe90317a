// pipeline/trace_log.h (internal): the spans recorded when options.trace is set.
//
// Threads: Enable() on the opening thread before the graph starts; Span() from any worker, into
// the buffer of its arena slot (CurrentWorkerSlot; one more for outsiders), each locked only by
// its own thread while the run goes on, so uncontended; ConsumerWait() from the consumer, under
// its own lock; Collect() from any thread, any time.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "flowfeed/sample.h"
#include "flowfeed/stats.h"

namespace flowfeed {

class TraceLog {
 public:
  // Turns tracing on: every k-th sample's spans are kept, k chosen so that `samples` samples of
  // `spans_per_sample` spans each stay near `max_events` events (at least 1000).
  void Enable(int threads, uint64_t samples, uint64_t spans_per_sample, int64_t max_events);

  // A span of `s` (a step, a cache lookup), if tracing is on and `s` is one of the traced
  // samples. Inline: when off it is one test on every sample's path.
  void Span(const Sample& s, const std::string& name, uint64_t t0, uint64_t t1) {
    if (!every_ || s.sequence % every_ != 0) return;
    Add(s, name, t0, t1);
  }

  // The consumer waited `waited` ns from t0 for a batch of epoch `epoch` (0-based).
  void ConsumerWait(uint64_t t0, uint64_t waited, int epoch);

  // Everything recorded so far (and not taken): the workers' spans, then the consumer's.
  std::vector<TraceEvent> Collect() const;
  // The same, removed from the log: what a writer streaming the trace to disk appends next.
  std::vector<TraceEvent> Take();

  bool on() const { return every_ != 0; }

 private:
  struct Buffer {
    std::mutex mu;
    std::vector<TraceEvent> events;
  };
  void Add(const Sample& s, const std::string& name, uint64_t t0, uint64_t t1);

  int threads_ = 0;
  uint64_t every_ = 0;  // trace every k-th sample; 0: off
  std::unique_ptr<Buffer[]> buffers_;  // threads_ + 1
  mutable std::mutex consumer_mu_;
  std::vector<TraceEvent> consumer_;
};

}  // namespace flowfeed
