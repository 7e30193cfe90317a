// pipeline/byte_budget.h (internal): the bytes that samples in their workers may hold at once
// (config `max_in_flight_bytes`), on top of the token count that bounds how many samples are
// alive.
//
// What counts: a sample's own pixel and file buffers (image, scratch, the slot's spare and
// cached file, the encoded bytes; capacities, so a reused buffer counts at its full size) from
// the moment a worker takes its slot until the sample is done with its last step and its large
// buffers went to the pool. A cache view is the cache's (it has its own budget); the converted
// sample waiting for the batcher and the batches are bounded by the tokens and the batch shape.
//
// A sample is admitted when nothing is held, or when what is held plus the size of the last
// finished sample fits: so a sample larger than the whole budget still runs, alone, and the peak
// stays within the budget plus the growth of samples larger than their predecessor. Until a
// first sample has finished, its size is unknown and samples are admitted one at a time.
//
// Waiting blocks the worker thread. It cannot deadlock: at most `threads - 1` workers wait at
// once (`threads`: the workers that really run, at most the machine's cores), so one is always
// free to carry the holders' later steps; and, as a last resort, a waiter that sees no step of
// any sample finish for kStallSeconds goes ahead anyway. Cancel() lets every waiter go.
//
// Locking: one mutex, taken once per step of a sample; any thread.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>

namespace flowfeed {

class ByteBudget {
 public:
  static constexpr double kStallSeconds = 10.0;

  ByteBudget(int64_t limit, int threads) : limit_(limit), max_waiting_(threads - 1) {}

  // A sample about to start: waits as described above, then reserves the expected size.
  // Returns the bytes charged to the sample.
  int64_t Admit();

  // A step of the sample finished and its buffers now hold `bytes`; `*charged` grows to it (never shrinks before
  // Release, so the reservation covers the sample's peak). `*peak` is the most it held.
  void Grow(int64_t bytes, int64_t* charged, int64_t* peak);

  // The sample is done: its charge is given back, its peak becomes the next estimate.
  void Release(int64_t charged, int64_t peak);

  // Waiters go, nobody waits from now on (the pipeline is stopping).
  void Cancel();

  // The most bytes charged at once (RunStats::peak_in_flight_bytes).
  int64_t peak() const;

 private:
  mutable std::mutex mu_;
  std::condition_variable released_;
  int64_t held_ = 0;
  int64_t peak_ = 0;
  int64_t estimate_ = -1;  // -1: no sample finished yet
  std::atomic<uint64_t> progress_{0};  // steps finished and samples released; relaxed
  int waiting_ = 0;
  bool cancelled_ = false;
  const int64_t limit_;
  const int max_waiting_;
};

}  // namespace flowfeed
