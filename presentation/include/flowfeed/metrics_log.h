// flowfeed/metrics_log.h: a run's scalars, out of flowfeed and into the tools a team already
// reads: TensorBoard event files, JSON Lines and CSV.
//
// A MetricsRecord is one step's or one epoch's figures: who it is (epoch, step, global step,
// wall time) and named values in an order that is the same for every record of a kind within a
// run. What the names are is the caller's choice (`flowfeed train` and `bench` write those listed
// in docs/metrics.md); a sink writes them as they come:
//   - TensorBoard: one event file per sink, `DIR/events.out.tfevents.<time>.<host>.<pid>.flowfeed`
//     (a new file per run, as TensorBoard expects; it reads a folder's files as one run). Each
//     value is a scalar tagged `<kind>/<name>` ("step/loss", "epoch/eval_accuracy"); a step
//     record's x is its global step, an epoch record's its epoch number (1-based).
//   - JSON Lines: one object per record, `{"kind": "step", "epoch": 1, "step": 3,
//     "global_step": 3, "wall_time": ..., "<name>": value, ...}`; a non-finite value is null. A
//     file that exists is appended to (a resumed run continues its log); each run begins with a
//     `{"kind": "run", ...}` line saying when and what started it.
//   - CSV: `DIR/steps.csv` and `DIR/epochs.csv`, a header line (from the kind's first record)
//     then one row per record. A file that exists is appended to when its header is the one this
//     run writes, so a resumed run continues it; another header is refused at that kind's first
//     record (InvalidArgument naming the file and both headers), so no file mixes two layouts. A
//     later record whose names differ from its file's header is refused the same way.
//
// Durability: records are buffered and handed to the OS at every epoch record, at least every
// two seconds, and at Close(); never fsynced (a log, not a checkpoint). A crash can leave the
// last record cut short: TensorBoard's reader ignores a cut record, a JSON Lines reader sees one
// bad last line, a CSV reader one short last row.
//
// Failure: Open* returns IoError naming the file when the folder cannot be made or the file
// cannot be opened; Write/Flush/Close return IoError naming the file (a full disk, a removed
// folder), or InvalidArgument for a CSV layout mismatch. A sink that failed stays failed.
//
// Thread-safety: none; one thread writes a sink.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "flowfeed/stats.h"
#include "flowfeed/status.h"

namespace flowfeed {

struct MetricsRecord {
  enum class Kind { kStep, kEpoch };
  Kind kind = Kind::kStep;
  int epoch = 0;            // 1-based
  int64_t step = 0;         // step records: 1-based within the epoch; epoch records: unused
  int64_t global_step = 0;  // steps since training began (epoch records: at the epoch's end)
  double wall_time = 0;     // seconds since the Unix epoch
  std::vector<std::pair<std::string, double>> values;
};

// "step" or "epoch".
const char* MetricsKindName(MetricsRecord::Kind kind);

class MetricsSink {
 public:
  virtual ~MetricsSink() = default;  // closes (errors then go unreported: call Close())
  virtual Status Write(const MetricsRecord& record) = 0;
  virtual Status Flush() = 0;
  virtual Status Close() = 0;  // flushes and closes; a second call does nothing
  // The file written ("DIR/steps.csv, DIR/epochs.csv" for CSV).
  virtual std::string path() const = 0;
};

// `run` is what produced the run (the report's provenance): its start time, host, command line
// and config go into a JSON Lines log's opening "run" line, its host into a TensorBoard file's
// name.
Result<std::unique_ptr<MetricsSink>> OpenTensorBoardLog(const std::string& dir,
                                                        const Provenance& run);
Result<std::unique_ptr<MetricsSink>> OpenJsonLinesLog(const std::string& path,
                                                      const Provenance& run);
Result<std::unique_ptr<MetricsSink>> OpenCsvLog(const std::string& dir);

// Where a run's metrics go ("" for none of a kind), as `--tensorboard`, `--jsonl` and `--csv`
// (or the Python Pipeline's arguments of those names) say.
struct MetricsDestinations {
  std::string tensorboard;  // a folder
  std::string jsonl;        // a file
  std::string csv;          // a folder
};

// The sinks of a run, written together. A sink that fails is closed and dropped, `on_failure`
// is told (its path, the error) so that the user hears of it once, and the others go on: a
// metrics log is a copy of what the report holds, not worth stopping a training for.
class MetricsSinks {
 public:
  using OnFailure = std::function<void(const std::string& path, const Status& error)>;
  explicit MetricsSinks(OnFailure on_failure) : on_failure_(std::move(on_failure)) {}
  ~MetricsSinks() { Close(); }

  // Opens every destination set in `where`. On failure the error names the option
  // ("--tensorboard: DIR: ...") and nothing stays open.
  Status Open(const MetricsDestinations& where, const Provenance& run);
  bool empty() const { return sinks_.empty(); }
  void Write(const MetricsRecord& record);
  void Close();  // flushes and closes them all (failures go to on_failure)

 private:
  void Drop(size_t i, const Status& error);

  OnFailure on_failure_;
  std::vector<std::unique_ptr<MetricsSink>> sinks_;
};

// The pipeline's figures of an epoch (wall time, throughput, the consumer's wait, CPU time,
// bytes read, skipped samples, the cache's hit rate when there is a cache, each stage's busy
// time as "stage_<name>_seconds"), appended to `values` under the names docs/metrics.md lists.
void AppendPipelineEpochValues(const EpochStats& epoch,
                               std::vector<std::pair<std::string, double>>* values);
// An epoch record of those figures alone (with "samples" and "batches" first): what `flowfeed
// bench` and the Python Pipeline write per epoch.
MetricsRecord PipelineEpochRecord(const EpochStats& epoch, int64_t global_step);

}  // namespace flowfeed
