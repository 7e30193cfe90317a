// metrics_out.h: `--tensorboard DIR`, `--jsonl FILE` and `--csv DIR` of `flowfeed bench` and
// `flowfeed train`: which figures of a training step and epoch become metrics records
// (flowfeed/metrics_log.h writes them; docs/metrics.md lists the names).
//
// A sink that fails while the run goes on (a full disk) is reported once on stderr, naming its
// file, and dropped; the run itself goes on.
//
// Thread-safety: the command's main thread only (the trainer's callbacks arrive on it).
#pragma once

#include "cli.h"
#include "flowfeed/metrics_log.h"
#include "flowfeed/stats.h"

namespace flowfeed {
struct StepRecord;
struct TrainEpochStats;
}  // namespace flowfeed

namespace flowfeed::cli {

class MetricsOut {
 public:
  MetricsOut();
  // Opens the sinks `args` asks for; prints what failed and returns false (nothing ran yet).
  bool Open(const RunArgs& args, const Provenance& provenance);

  // A training step (train only).
  void Step(const StepRecord& step);
  // A training epoch with its pipeline's figures (`pipeline` null when the report lacks them).
  // With `eval_configured`, the evaluation's columns are in every record (NaN for an epoch that
  // has none, a stopped one), so a CSV's columns stay the same.
  void TrainEpoch(const TrainEpochStats& epoch, const EpochStats* pipeline, int64_t global_step,
                  bool eval_configured);
  // A pipeline epoch of `flowfeed bench`.
  void PipelineEpoch(const EpochStats& epoch) { sinks_.Write(PipelineEpochRecord(epoch, 0)); }
  void Close() { sinks_.Close(); }

 private:
  MetricsSinks sinks_;
};

}  // namespace flowfeed::cli
