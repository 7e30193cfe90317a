// flowfeed/progress.h: the live progress line of `flowfeed bench` and `flowfeed train`.
//
// A pure function of what the run knows at one moment (ProgressView), so that the line can be
// tested without a terminal or a clock. One line per epoch says: where the epoch is, images per
// second, the ETA of the epoch and of the whole run, the cache hit rate so far in this epoch and
// the busiest stage so far in this epoch (the most busy time, with its share of all stages'). On
// a terminal:
//
//   epoch 1/2 [#############.......] 51/79  642 img/s  ETA 3s (run 10s)  cache 0% hit  busiest:
//   decode 38%
//
// (one line), and for a log:
//
//   epoch 1/2: 51/79 batches, 642 img/s, ETA 3s (run 10s), cache 0% hit, busiest stage decode
//   (38% of stage time)
//
// When the epoch has ended (ProgressView::done) the ETA gives way to "done in 8s (run 8s so
// far, ETA 8s)", or "done in 2s (run 10s)" after the last epoch.
//
// Thread-safety: plain values and a function without state.
#pragma once

#include <cstdint>
#include <string>

#include "flowfeed/stats.h"

namespace flowfeed {

struct ProgressView {
  int epoch = 1;   // 1-based
  int epochs = 1;  // in the run
  int64_t batches = 0;        // done in this epoch
  int64_t total_batches = 0;  // one epoch's; 0 when unknown: the line leaves the total out
  // Samples the epoch delivers in all, for its ETA; 0 when unknown: then estimated from the
  // batches (total_batches / batches of what was delivered so far), or no ETA without either.
  int64_t epoch_samples = 0;
  LiveEpochStats live;  // this epoch so far: its samples and seconds (the rate), cache, stages
  // Wall time of the run's finished epochs together, and of the last of them (0 before the first
  // ends). With `done` both include this epoch.
  double finished_seconds = 0;
  double last_epoch_seconds = 0;
  bool done = false;  // the epoch has ended: the line says how long it took instead of its ETA
};

// The line, without a newline or terminal controls (the caller redraws it with "\r" and clears
// the rest of the terminal's line). `tty`: the compact form with a bar; otherwise the plain
// form for logs. The cache part is left out when the cache is off or nothing was looked up yet;
// the busiest stage before any stage time is recorded; the ETA when no total is known ("ETA ?"
// while no sample has arrived yet).
std::string FormatProgressLine(const ProgressView& view, bool tty);

// A duration for people, rounded to the second: "9s", "1m52s", "1h03m" (minutes, from an hour
// on); "?" for a negative or infinite one.
std::string FormatDuration(double seconds);

}  // namespace flowfeed
