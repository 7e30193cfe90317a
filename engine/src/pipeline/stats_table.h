// pipeline/stats_table.h (internal): per-thread, per-epoch, per-step timing accumulators.
//
// Threads: a slot is written only by the worker whose arena index it is (CurrentWorkerSlot), so
// recording takes no lock; a thread outside the arena (never expected) uses the overflow slot,
// under its lock. Any thread reads the live totals at any time; the consumer merges an epoch's
// accumulators once the epoch's samples are all recorded.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "flowfeed/stats.h"
#include "pipeline/histogram.h"
#include "pipeline/worker_slot.h"

namespace flowfeed {

// The rows of the table: the pipeline's steps ([0] is read), then the engine's own.
struct StatSteps {
  explicit StatSteps(int pipeline_steps) : steps(pipeline_steps) {}
  int batch() const { return steps; }
  int collate() const { return steps + 1; }
  int cache() const { return steps + 2; }
  int fill() const { return steps + 3; }
  int count() const { return steps + 4; }
  int steps;  // pipeline entries, read included
};

struct StepAcc {
  LatencyHistogram hist;
  int64_t errors = 0;
  int64_t bytes = 0;
  int64_t hits = 0;  // the cache step: lookups that found the sample; decode: region decodes
};

// A step's running totals for Pipeline::live(), readable while the epoch runs. Each is written
// by its slot's owner thread (the overflow slot's under the overflow lock) and read by any
// thread: relaxed atomics, since a reader needs each number to be whole, not the numbers to
// agree.
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

// Accumulators indexed [thread slot][epoch][step]. Epoch tables are allocated on first use by
// their writer and published with release/acquire; they live as long as the table.
class StatsTable {
 public:
  StatsTable(int slots, int epochs, int steps);
  ~StatsTable();
  StatsTable(const StatsTable&) = delete;
  StatsTable& operator=(const StatsTable&) = delete;

  // One run of `step` on a sample of `epoch`. Inline: it is on every sample's path.
  void Record(int epoch, int step, uint64_t ns, int64_t bytes, bool error, bool hit = false) {
    int slot = CurrentWorkerSlot();
    int overflow = int(slots_.size()) - 1;
    if (slot < 0 || slot >= overflow) {
      std::lock_guard<std::mutex> lock(overflow_mu_);
      Add(Table(overflow, epoch), step, ns, bytes, error, hit);
      return;
    }
    Add(Table(slot, epoch), step, ns, bytes, error, hit);
  }

  // Merged accumulators of one epoch; call only once the epoch's samples are all recorded.
  std::vector<StepAcc> Merged(int epoch);

  // The running totals of one epoch so far, per step (zeros for epoch -1); any thread, any
  // time, no lock. Once the epoch's samples are all recorded, busy_ns and count equal Merged()'s
  // hist.sum_ns() and hist.count(), and hits its hits.
  std::vector<LiveTotal> LiveTotals(int epoch) const;

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

// A step's report line (EpochStats::stages) from its merged accumulator.
StageStats StageStatsOf(const StepAcc& a, const std::string& name, const std::string& type);

}  // namespace flowfeed
