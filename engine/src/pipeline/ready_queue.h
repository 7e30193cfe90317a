// pipeline/ready_queue.h (internal): batches and epoch markers on their way to Pipeline::Next().
//
// Locking: one mutex guards the queue, the final status and what live() reports of the epoch
// being delivered; the batcher pushes (any worker, serially), the consumer takes, any thread
// reads Live(). Never held while calling out of this class.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <utility>
#include <vector>

#include "flowfeed/pipeline.h"
#include "flowfeed/status.h"

namespace flowfeed {

struct ReadyItem {
  enum Kind { kBatch, kEpochEnd, kDone, kError } kind = kBatch;
  BatchPtr batch;
  int epoch = 0;
  Status status;
};

class ReadyQueue {
 public:
  void Push(ReadyItem item);
  void PushError(Status status) {
    Push(ReadyItem{ReadyItem::kError, nullptr, 0, std::move(status)});
  }

  // Unless the run is over or failed, makes every Take() from now on return Cancelled, and wakes
  // a waiting one.
  void Cancel();

  // What Take() took, and how long the consumer waited for it.
  struct Taken {
    ReadyItem::Kind kind = ReadyItem::kDone;
    BatchPtr batch;          // kBatch
    int epoch = 0;           // kEpochEnd: the epoch that ended
    uint64_t t0 = 0;         // when the call began to wait
    uint64_t waited = 0;     // ns; 0 when it did not wait
    uint64_t end_ns = 0;     // kEpochEnd: when the marker was taken
    bool timed_out = false;  // nothing arrived within the timeout: nothing was taken
  };

  // Consumer thread only. Blocks until an item is ready and takes it; kDone and kError stay
  // queued, so every later call ends there too. `epoch_now` is the epoch being delivered
  // (0-based) and `epoch_start_ns` when it started: the first call of an epoch moves Live() on
  // to it; `epochs` is the run's count. Returns the run's final status once it stopped
  // (cancelled, failed), Ok otherwise. With `timeout_ns` >= 0 it waits at most that long; a
  // call that times out takes nothing (out->timed_out) and the next call continues its wait
  // (same t0, one occupancy sample).
  Status Take(int epoch_now, int epochs, uint64_t epoch_start_ns, Taken* out,
              int64_t timeout_ns = -1);

  // The epoch Next() is delivering (0-based; -1 before the first call), its seconds so far (or
  // until its end marker), and the samples and batches taken of it. Any thread.
  struct Live {
    int epoch = -1;
    double seconds = 0;
    int64_t samples = 0, batches = 0;
  };
  Live LiveNow() const;

  // The ready batches seen at each Take() since the last call: their mean, and at most 200
  // (seconds into the epoch, batches) points, evenly thinned. Then starts afresh.
  void TakeOccupancy(double* mean, std::vector<std::pair<double, int>>* points);

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<ReadyItem> queue_;
  int ready_batches_ = 0;
  Status final_status_;
  uint64_t pending_t0_ = 0;  // when the wait a timed-out Take() left unfinished began; 0: none
  // What Live() reports, set by Take(): the epoch, when it started and ended (0 while it runs),
  // what was taken of it.
  int live_epoch_ = -1;
  uint64_t live_start_ns_ = 0, live_end_ns_ = 0;
  int64_t live_samples_ = 0, live_batches_ = 0;
  std::vector<std::pair<double, int>> occupancy_;
  double occupancy_sum_ = 0;
};

}  // namespace flowfeed
