// flowfeed/report.h: the JSON report of `flowfeed bench` and `flowfeed train` as plain data,
// written and read in one place.
//
// A ReportDoc is the whole document: the pipeline's figures (RunStats and EpochStats, as the
// engine measured them) and, for training runs, the sections the trainer adds (set-up parts,
// the first-epoch gap, the ledger, the trainer and distributed settings, and per epoch the
// trainer's split, the evaluation and the per-rank cache hit rates). The trainer fills these
// from its TrainReport; the types here need no LibTorch.
//
// The document carries "schema_version" (kReportSchemaVersion) at the top level. Reports
// written before the field existed read as version 0; their layout is the same as version 1.
//
// Reading is tolerant on purpose: reports also come from elsewhere (the peer harness in
// tools/bench/peers/harness.py, tools/bench/torch_baseline.py) with only some of the fields, and
// from older flowfeed versions. Only "epochs" (a list whose every entry has a number
// "seconds") is required; a missing or mistyped field reads as its default (0, "", "off",
// empty), a missing section as std::nullopt, and the few figures a reader must tell apart from
// zero say whether they were present (ReportEpoch::has_*). Keys the reader does not know are
// ignored.
//
// Thread-safety: plain values and pure functions; use them from any thread.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "flowfeed/stats.h"
#include "flowfeed/status.h"

namespace flowfeed {

// The "schema_version" WriteReportJson() writes.
inline constexpr int kReportSchemaVersion = 1;

// One named span of seconds: a set-up part ("config", "model") or a part of the first-epoch gap.
struct ReportPart {
  std::string name;
  double seconds = 0;
};

// "setup": the trainer's one-time costs. Written as an object keyed by part name, so parts come
// back sorted by name, and a repeated name keeps its last value.
struct ReportSetup {
  std::vector<ReportPart> parts;
  double seconds = 0;  // all parts together
};

// "first_epoch_gap" (TrainReport::gap_seconds and gap); parts as in ReportSetup.
struct ReportGap {
  double seconds = 0;
  std::vector<ReportPart> parts;
};

// "ledger": the training run's wall time accounted for.
struct ReportLedger {
  double wall_seconds = 0;
  double setup_seconds = 0;
  double epochs_seconds = 0;  // every epoch's training, evaluation and checkpoint
  double unexplained_seconds = 0;
};

// "trainer": where and how the model was trained.
struct ReportTrainer {
  std::string device;  // "cpu", "cuda:0"
  int torch_threads = 0;
  std::string model;
  bool synchronized_timing = false;
  int start_epoch = 0;
  int64_t start_position = 0;
  double wall_seconds = 0;
  // How the steps ran: "float32" or "bf16 autocast"; "contiguous" or "channels_last"; whether
  // a trailing normalize ran on the device (batches travelled as uint8); "host clock",
  // "synchronized" or "cuda events" for how the step parts were timed.
  std::string precision = "float32";
  std::string memory_format = "contiguous";
  bool normalize_on_device = false;
  std::string timing = "host clock";
  // CUDA's caching allocator after the run (bytes and counts); empty on the CPU.
  std::map<std::string, double> device_memory;
};

// "distributed": this rank in its world. `backend` is "none" for a single process.
struct ReportDistributed {
  int rank = 0;
  int world_size = 1;
  std::string backend;
  std::string policy;
  std::string uneven;
};

// "epochs[i].trainer": the trainer's side of one epoch (TrainEpochStats, less the evaluation).
struct ReportTrainerEpoch {
  int64_t steps = 0;
  int64_t samples = 0;
  double seconds = 0;
  double samples_per_second = 0;
  double data_wait_seconds = 0;
  double h2d_seconds = 0;
  double forward_seconds = 0;
  double backward_seconds = 0;
  double optimizer_seconds = 0;
  double first_step_seconds = 0;
  double median_step_seconds = 0;
  double loss = 0;
  double accuracy = 0;
  double lr = 0;
  double checkpoint_seconds = 0;
  double allreduce_seconds = 0;
  int64_t global_samples = 0;
  std::string model_digest;
  int64_t resumed_at = 0;
  std::vector<int64_t> indices;  // written only when not empty
};

// "epochs[i].eval": the evaluation after the epoch.
struct ReportEval {
  double loss = 0;
  double accuracy = 0;
  int64_t samples = 0;
  double seconds = 0;
};

struct ReportEpoch {
  EpochStats pipeline;  // pipeline.epoch is 1-based; read as the list position + 1 if absent
  // Figures flowfeed always writes but other tools may not: false when the report lacked them
  // (the reader then leaves the EpochStats field 0). The writer ignores these.
  bool has_consumer_wait = true;  // "consumer_wait_seconds"
  bool has_cpu_seconds = true;    // "cpu_seconds"
  std::optional<ReportTrainerEpoch> trainer;
  std::optional<ReportEval> eval;
  // "distributed.cache_hit_rate_per_rank": written only when not empty.
  std::vector<double> cache_hit_rate_per_rank;
};

struct ReportDoc {
  // What the file said; 0 for a report older than the field. WriteReportJson() always writes
  // kReportSchemaVersion, whatever this holds.
  int schema_version = kReportSchemaVersion;
  // The run's settings and cache. run.epochs is not part of the document: the epochs are in
  // `epochs` below (the writer ignores run.epochs, the reader leaves it empty).
  RunStats run;
  // "run.tool": which program measured the run, written by other tools ("pytorch-dataloader",
  // a peer's name); flowfeed leaves it "" and then it is not written.
  std::string tool;
  std::vector<ReportEpoch> epochs;
  // The trainer's sections: all present in a training run's report, absent in a bench report.
  // The reader takes first_epoch_gap only when its "parts" is a non-empty object, and ledger only
  // with a number "wall_seconds" (without them they say nothing).
  std::optional<ReportSetup> setup;
  std::optional<ReportGap> first_epoch_gap;
  std::optional<ReportLedger> ledger;
  std::optional<ReportTrainer> trainer;
  std::optional<ReportDistributed> distributed;
};

// The document of a pipeline run (`flowfeed bench`): `run` with its epochs moved into
// ReportDoc::epochs, no trainer sections.
ReportDoc PipelineReportDoc(const RunStats& run);

// The JSON text, two-space indented, keys sorted, ending in a newline. Never fails.
std::string WriteReportJson(const ReportDoc& doc);

// Reads a report written by WriteReportJson() (any schema version so far) or by another tool in
// the same shape (see the top of this file). `name` (a path, or "run 2") starts every error
// message. Errors: InvalidArgument when the text is not JSON, has no "epochs" list, or an epoch
// has no number "seconds".
Result<ReportDoc> ReadReportJson(const std::string& text, const std::string& name);

}  // namespace flowfeed
