// The page's view of a run, from the report's document.

#include "report_view.h"

namespace flowfeed {
namespace html {

std::string BaseName(const std::string& path) {
  size_t slash = path.find_last_of('/');
  std::string b = slash == std::string::npos ? path : path.substr(slash + 1);
  if (b.size() > 5 && b.compare(b.size() - 5, 5, ".json") == 0) b.resize(b.size() - 5);
  return b;
}

namespace {

EpochView MakeEpochView(const ReportEpoch& re) {
  const EpochStats& p = re.pipeline;
  EpochView e;
  e.epoch = p.epoch;
  e.seconds = p.seconds;
  e.samples = p.samples;
  e.batches = p.batches;
  e.sps = p.samples_per_second;
  e.has_wait = re.has_consumer_wait;
  e.wait = p.consumer_wait_seconds;
  e.wait_p95 = p.consumer_wait_p95_ms;
  e.wait_max = p.consumer_wait_max_ms;
  e.has_cpu = re.has_cpu_seconds;
  e.cpu = p.cpu_seconds;
  e.cache_mode = p.cache.mode;
  e.hits = p.cache.hits;
  e.misses = p.cache.misses;
  for (const StageStats& s : p.stages) {
    StageView sv;
    sv.name = s.name;
    sv.type = s.type;
    sv.fused_into = s.fused_into;
    sv.count = s.count;
    sv.errors = s.errors;
    sv.fused = s.fused;
    sv.bytes = s.bytes;
    sv.busy = s.busy_seconds;
    sv.p50 = s.p50_ms;
    sv.p95 = s.p95_ms;
    sv.p99 = s.p99_ms;
    sv.max = s.max_ms;
    e.stages.push_back(std::move(sv));
  }
  // A report may list fewer samples than its count (a long list cut short), never more.
  e.skipped = p.skipped_count;
  for (const SkippedSample& s : p.skipped) e.skips.push_back({s.source, s.stage, s.reason});
  if (e.skipped < int64_t(e.skips.size())) e.skipped = int64_t(e.skips.size());
  if (re.trainer) {
    const ReportTrainerEpoch& t = *re.trainer;
    e.trainer = true;
    e.t_seconds = t.seconds;
    e.data_wait = t.data_wait_seconds;
    e.h2d = t.h2d_seconds;
    e.forward = t.forward_seconds;
    e.backward = t.backward_seconds;
    e.optimizer = t.optimizer_seconds;
    e.allreduce = t.allreduce_seconds;
    e.checkpoint = t.checkpoint_seconds;
    e.loss = t.loss;
    e.accuracy = t.accuracy;
  }
  if (re.eval) {
    e.eval = true;
    e.eval_loss = re.eval->loss;
    e.eval_accuracy = re.eval->accuracy;
    e.eval_seconds = re.eval->seconds;
  }
  return e;
}

}  // namespace

// The page's view of one run, from the report's document: the figures the charts draw, with
// the defaults ReadReportJson() gives what a report left out.
RunView MakeRunView(const ReportDoc& doc, const std::string& label, const std::string& path) {
  RunView r;
  r.path = path;
  r.label = label;
  const RunStats& run = doc.run;
  r.source = run.source;
  r.tool = doc.tool;
  r.threads = run.threads;
  r.dataset_size = run.dataset_size;
  r.warnings = run.warnings;
  r.cache_mode = run.cache_mode;
  r.cache_placement = run.cache_placement;
  r.cache_note = run.cache_note;
  r.cache_store = run.cache_store;
  r.cache_decision = run.cache_decision;
  r.training = doc.trainer.has_value();
  if (doc.trainer) {
    r.device = doc.trainer->device;
    r.model = doc.trainer->model;
  }
  if (doc.first_epoch_gap) {
    r.has_gap = true;
    r.gap_seconds = doc.first_epoch_gap->seconds;
    for (const ReportPart& p : doc.first_epoch_gap->parts) r.gap.emplace_back(p.name, p.seconds);
  }
  if (doc.ledger) {
    r.has_ledger = true;
    r.wall = doc.ledger->wall_seconds;
    r.setup = doc.ledger->setup_seconds;
    r.unexplained = doc.ledger->unexplained_seconds;
  }
  for (const ReportEpoch& re : doc.epochs) r.epochs.push_back(MakeEpochView(re));
  return r;
}

}  // namespace html
}  // namespace flowfeed
