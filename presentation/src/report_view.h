// The page's view of a run: the figures its charts and tables draw, made from a report's
// ReportDoc (flowfeed/report.h), with what the page derives (labels, means over epochs).
// Internal to flowfeed::presentation. Plain values; pure functions.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "flowfeed/report.h"

namespace flowfeed {
namespace html {

struct StageView {
  std::string name, type, fused_into;
  int64_t count = 0, errors = 0, fused = 0, bytes = 0;
  double busy = 0, p50 = 0, p95 = 0, p99 = 0, max = 0;
};

struct SkipView {
  std::string source, stage, reason;
};

struct EpochView {
  int epoch = 0;
  double seconds = 0, sps = 0;
  int64_t samples = 0, batches = 0;
  bool has_wait = false;
  double wait = 0, wait_p95 = 0, wait_max = 0;
  bool has_cpu = false;
  double cpu = 0;  // CPU seconds of the whole process (tree) over the epoch
  std::string cache_mode = "off";
  int64_t hits = 0, misses = 0;
  std::vector<StageView> stages;
  int64_t skipped = 0;
  std::vector<SkipView> skips;
  // The trainer's side of the epoch (train reports).
  bool trainer = false;
  double t_seconds = 0, data_wait = 0, h2d = 0, forward = 0, backward = 0, optimizer = 0,
         allreduce = 0, checkpoint = 0, loss = 0, accuracy = 0;
  bool eval = false;
  double eval_loss = 0, eval_accuracy = 0, eval_seconds = 0;

  double StageBusy() const {
    double t = 0;
    for (const auto& s : stages) t += s.busy;
    return t;
  }
  bool HasCache() const { return cache_mode != "off" && hits + misses > 0; }
  double HitRate() const { return hits + misses > 0 ? double(hits) / double(hits + misses) : 0; }
};

struct RunView {
  std::string label, tag, path, source, tool, device, model;
  int threads = 0;
  int64_t dataset_size = 0;
  std::string cache_mode = "off", cache_placement, cache_note, cache_store, cache_decision;
  std::vector<std::string> warnings;
  bool training = false;
  std::vector<EpochView> epochs;
  bool has_gap = false;  // the trainer's own first-epoch gap
  double gap_seconds = 0;
  std::vector<std::pair<std::string, double>> gap;
  bool has_ledger = false;
  double wall = 0, setup = 0, unexplained = 0;

  bool HasTrainer() const {
    return std::any_of(epochs.begin(), epochs.end(), [](const EpochView& e) { return e.trainer; });
  }
  bool HasEval() const {
    return std::any_of(epochs.begin(), epochs.end(), [](const EpochView& e) { return e.eval; });
  }
  // Mean over epochs 2+ of f, or NaN with fewer than two epochs.
  double LaterMean(const std::function<double(const EpochView&)>& f) const {
    if (epochs.size() < 2) return NAN;
    double t = 0;
    for (size_t i = 1; i < epochs.size(); ++i) t += f(epochs[i]);
    return t / double(epochs.size() - 1);
  }
};

// The file's base name without ".json": a run's label when it is given none.
std::string BaseName(const std::string& path);

// The view of one run; `label` and `path` as HtmlReportRun has them (the label resolved).
RunView MakeRunView(const ReportDoc& doc, const std::string& label, const std::string& path);

}  // namespace html
}  // namespace flowfeed
