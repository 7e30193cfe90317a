// progress.h: the progress line that `flowfeed bench` and `flowfeed train` keep on stderr while
// an epoch runs (what the line says: flowfeed/progress.h).
//
// On a terminal the line is redrawn in place at most every 0.1 s ("\r", the line, then "\033[K"
// to clear what a longer line left), cut to the terminal's width so it never wraps, and ended
// with a newline when the epoch ends. Otherwise (a log, CI) a plain line every 5 s at most, and
// one summary line when the epoch ends.
//
// Thread-safety: one thread drives a Progress; `live` is called on that thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <functional>

#include "flowfeed/stats.h"

namespace flowfeed::cli {

class Progress {
 public:
  using LiveFn = std::function<LiveEpochStats()>;

  // `live` yields the epoch in progress (Pipeline::live, Trainer::live). Writes to `out`, in the
  // terminal form when `out` is a terminal. Time from here to the first Finish() counts as the
  // first epoch's, for the run's ETA.
  Progress(int epochs, LiveFn live, std::FILE* out = stderr);

  // Epoch `epoch` (0-based) begins: `total_batches` batches (0: unknown) of `epoch_samples`
  // samples in all (0: unknown; estimated from the batches).
  void Start(int epoch, int64_t total_batches, int64_t epoch_samples);
  // A batch was consumed; redraws when the last draw is old enough.
  void Update();
  // The epoch ended: its final line.
  void Finish();

 private:
  using Clock = std::chrono::steady_clock;
  void Draw(bool done);

  const bool tty_;
  const int epochs_;
  const LiveFn live_;
  std::FILE* const out_;
  int epoch_ = 0;
  int64_t total_ = 0, epoch_samples_ = 0, batches_ = 0;
  Clock::time_point last_draw_, epoch_mark_;  // epoch_mark_: when the previous epoch finished
  double finished_seconds_ = 0, last_epoch_seconds_ = 0;
};

}  // namespace flowfeed::cli
