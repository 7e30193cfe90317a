// The train report and its ledger: where every second of a run went. The first-epoch gap
// (ComputeGap, for TorchTrainer::report()), the text the CLI prints (FormatSetup,
// FormatTrainEpoch, FormatGap) and the JSON report (TrainReportJson), all from a TrainReport.
//
// Threads: pure functions of the report they are given; any thread.

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "flowfeed/report.h"
#include "flowfeed/trainer.h"
#include "flowfeed/util/strings.h"
#include "train_report.h"

namespace flowfeed {

void ComputeGap(TrainReport* r) {
  r->gap.clear();
  r->gap_seconds = 0;
  if (r->epochs.size() < 2) return;
  const TrainEpochStats& first = r->epochs.front();
  const double n = double(r->epochs.size() - 1);
  auto later_mean = [&](auto field) {
    double sum = 0;
    for (size_t i = 1; i < r->epochs.size(); ++i) sum += field(r->epochs[i]);
    return sum / n;
  };
  auto whole = [](const TrainEpochStats& e) { return e.seconds + e.eval_seconds + e.checkpoint_seconds; };
  auto compute = [](const TrainEpochStats& e) {
    return e.h2d_seconds + e.forward_seconds + e.backward_seconds + e.optimizer_seconds +
           e.allreduce_seconds;
  };
  auto first_extra = [](const TrainEpochStats& e) { return e.first_step_seconds - e.median_step_seconds; };
  double setup = 0;
  for (const auto& p : r->setup) setup += p.seconds;
  r->gap_seconds = setup + whole(first) - later_mean(whole);

  std::vector<SetupPart> parts;
  parts.push_back({"set-up", setup});
  // The extra wait for data, shared among the stages that worked more in the first epoch.
  const double wait = first.data_wait_seconds - later_mean([](const TrainEpochStats& e) { return e.data_wait_seconds; });
  const RunStats& ps = r->pipeline;
  const EpochStats* p1 = nullptr;
  std::vector<const EpochStats*> pl;
  for (const auto& e : ps.epochs) {
    if (e.epoch == first.epoch) p1 = &e;
    else if (e.epoch > first.epoch) pl.push_back(&e);
  }
  std::vector<std::pair<std::string, double>> extra;
  double extra_total = 0;
  if (p1 && !pl.empty()) {
    for (const StageStats& s : p1->stages) {
      double later = 0;
      for (const EpochStats* e : pl)
        for (const StageStats& t : e->stages)
          if (t.name == s.name) later += t.busy_seconds;
      double d = s.busy_seconds - later / double(pl.size());
      if (d > 0) {
        extra.emplace_back(s.name, d);
        extra_total += d;
      }
    }
  }
  if (wait > 0 && extra_total > 0) {
    std::sort(extra.begin(), extra.end(), [](auto& a, auto& b) { return a.second > b.second; });
    for (const auto& [name, d] : extra) parts.push_back({"data wait: " + name, wait * d / extra_total});
  } else {
    parts.push_back({"data wait", wait});
  }
  const double first_step = first_extra(first) - later_mean(first_extra);
  parts.push_back({"first step", first_step});
  parts.push_back({"other step compute", compute(first) - later_mean(compute) - first_step});
  parts.push_back({"evaluation", first.eval_seconds - later_mean([](const TrainEpochStats& e) { return e.eval_seconds; })});
  parts.push_back({"checkpoint", first.checkpoint_seconds - later_mean([](const TrainEpochStats& e) { return e.checkpoint_seconds; })});
  double sum = 0;
  for (const auto& p : parts) sum += p.seconds;
  parts.push_back({"unexplained", r->gap_seconds - sum});
  r->gap = std::move(parts);
}

std::string FormatGap(const TrainReport& r) {
  if (r.gap.empty()) return "";
  std::string out = "first epoch against the rest: " + Fmt("%+.2f", r.gap_seconds) +
                    " s (set-up + epoch " + std::to_string(r.epochs.front().epoch) +
                    " - mean of the later epochs)\n";
  for (const auto& p : r.gap)
    out += "  " + p.name + std::string(p.name.size() < 34 ? 34 - p.name.size() : 1, ' ') +
           Fmt("%+8.3f s", p.seconds) +
           Fmt("  %5.1f%%", r.gap_seconds != 0 ? 100 * p.seconds / r.gap_seconds : 0) + "\n";
  return out;
}

std::string FormatSetup(const TrainReport& r) {
  double total = 0;
  for (const auto& p : r.setup) total += p.seconds;
  std::string out = "set-up " + Fmt("%.2f", total) + " s on " + r.device + " (" +
                    std::to_string(r.torch_threads) + " LibTorch threads), model " + r.model + ":";
  for (const auto& p : r.setup) out += " " + p.name + " " + Fmt("%.3f", p.seconds);
  return out + "\n";
}

std::string FormatTrainEpoch(const TrainEpochStats& e) {
  const double step = e.h2d_seconds + e.forward_seconds + e.backward_seconds +
                      e.optimizer_seconds + e.allreduce_seconds;
  const double wait_share = e.seconds > 0 ? e.data_wait_seconds / e.seconds : 0;
  std::string out = "train epoch " + std::to_string(e.epoch) + ": loss " + Fmt("%.4f", e.loss) +
                    ", accuracy " + Fmt("%.2f%%", 100 * e.accuracy) + ", " +
                    Fmt("%.0f", e.samples_per_second) + " samples/s, lr " + Fmt("%.4g", e.lr);
  if (e.has_eval)
    out += "; eval loss " + Fmt("%.4f", e.eval_loss) + ", accuracy " +
           Fmt("%.2f%%", 100 * e.eval_accuracy) + " (" + std::to_string(e.eval_samples) +
           " samples, " + Fmt("%.2f", e.eval_seconds) + " s)";
  out += "\n  steps " + std::to_string(e.steps) + ": data wait " + Fmt("%.2f", e.data_wait_seconds) +
         " s, to device " + Fmt("%.2f", e.h2d_seconds) + " s, forward " +
         Fmt("%.2f", e.forward_seconds) + " s, backward " + Fmt("%.2f", e.backward_seconds) +
         " s, optimiser " + Fmt("%.2f", e.optimizer_seconds) + " s" +
         (e.allreduce_seconds > 0 ? ", all-reduce " + Fmt("%.2f", e.allreduce_seconds) + " s" : "") +
         "; first step " +
         Fmt("%.1f", 1e3 * e.first_step_seconds) + " ms, median " +
         Fmt("%.1f", 1e3 * e.median_step_seconds) + " ms";
  out += "\n  verdict: " +
         std::string(wait_share > 0.2 ? "input-bound" : "compute-bound") + ": waited for data " +
         Fmt("%.0f%%", 100 * wait_share) + " of the epoch, computed " +
         Fmt("%.0f%%", e.seconds > 0 ? 100 * step / e.seconds : 0) + "\n";
  return out;
}

namespace {

// The report's document: the pipeline's figures, then the trainer's sections, each training
// epoch's figures next to the pipeline epoch of the same number.
ReportDoc TrainReportDoc(const TrainReport& r) {
  RunStats run = r.pipeline;  // the trainer's warnings join the pipeline's
  run.warnings.insert(run.warnings.begin(), r.warnings.begin(), r.warnings.end());
  ReportDoc doc = PipelineReportDoc(run);
  ReportSetup setup;
  for (const auto& p : r.setup) {
    setup.parts.push_back({p.name, p.seconds});
    setup.seconds += p.seconds;
  }
  double epochs = 0;
  for (const auto& e : r.epochs) epochs += e.seconds + e.eval_seconds + e.checkpoint_seconds;
  // The whole run accounted for: set-up parts, then each epoch's training, evaluation and
  // checkpoint; what no part measured is shown, not hidden.
  ReportGap gap;
  gap.seconds = r.gap_seconds;
  for (const auto& p : r.gap) gap.parts.push_back({p.name, p.seconds});
  doc.first_epoch_gap = std::move(gap);
  doc.ledger = ReportLedger{r.wall_seconds, setup.seconds, epochs, r.unexplained_seconds};
  doc.setup = std::move(setup);
  doc.trainer = ReportTrainer{r.device,        r.torch_threads,  r.model,
                              r.synchronized_timing, r.start_epoch, r.start_position,
                              r.wall_seconds,  r.precision,      r.memory_format,
                              r.normalize_on_device, r.timing, r.device_memory};
  doc.distributed = ReportDistributed{r.rank, r.world_size,
                                      r.world_size > 1 ? r.backend : std::string("none"),
                                      r.shard_policy, r.uneven};
  for (ReportEpoch& re : doc.epochs) {
    for (const auto& e : r.epochs) {
      if (re.pipeline.epoch != e.epoch) continue;
      re.trainer = ReportTrainerEpoch{e.steps,
                                      e.samples,
                                      e.seconds,
                                      e.samples_per_second,
                                      e.data_wait_seconds,
                                      e.h2d_seconds,
                                      e.forward_seconds,
                                      e.backward_seconds,
                                      e.optimizer_seconds,
                                      e.first_step_seconds,
                                      e.median_step_seconds,
                                      e.loss,
                                      e.accuracy,
                                      e.lr,
                                      e.checkpoint_seconds,
                                      e.allreduce_seconds,
                                      e.global_samples,
                                      e.model_digest,
                                      e.resumed_at,
                                      e.indices};
      if (!e.rank_cache_hit_rate.empty()) re.cache_hit_rate_per_rank = e.rank_cache_hit_rate;
      if (e.has_eval)
        re.eval = ReportEval{e.eval_loss, e.eval_accuracy, e.eval_samples, e.eval_seconds};
    }
  }
  return doc;
}

}  // namespace

std::string TrainReportJson(const TrainReport& r) { return WriteReportJson(TrainReportDoc(r)); }

}  // namespace flowfeed
