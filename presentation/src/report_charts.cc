// The page's charts: where the epochs' time went, throughput, waiting, the cache, learning.

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <set>
#include <sstream>

#include "report_page.h"
#include "flowfeed/util/text_format.h"

namespace flowfeed {
namespace html {

using text::Bytes;
using text::Join;
using text::Thousands;

std::string Page::RunLegend() const {
  if (!Multi()) return "";
  std::vector<std::pair<std::string, std::string>> items;
  for (size_t i = 0; i < runs_.size(); ++i) items.emplace_back(Tag(i) + ": " + runs_[i].label, RunColor(i));
  return Legend(items);
}

std::string Page::EpochTime() const {
  bool unsplit = false;
  auto groups = PerEpoch([&](size_t run, const EpochView& e) {
    std::vector<Seg> segs;
    const double busy = e.StageBusy();
    if (busy <= 0) {
      unsplit = true;
      segs.push_back({"epoch", e.seconds, kNoSplitColor,
                      Who(run) + "epoch " + std::to_string(e.epoch) + ": " + Secs(e.seconds) +
                          " (no stage times in this report)"});
      return segs;
    }
    for (const StageView& s : e.stages) {
      if (s.busy <= 0) continue;
      const double share = s.busy / busy;
      segs.push_back({s.name, e.seconds * share, stage_colors_.at(s.name),
                      Who(run) + "epoch " + std::to_string(e.epoch) + ": " + s.name + " " +
                          Pct(share) + " of the stages' busy time (" + Secs(s.busy) +
                          " summed over threads) = " + Secs(e.seconds * share) + " of " +
                          Secs(e.seconds)});
    }
    return segs;
  });
  std::vector<std::pair<std::string, std::string>> keys;
  for (const std::string& s : stage_order_) keys.emplace_back(s, stage_colors_.at(s));
  if (unsplit) keys.emplace_back("no stage split in the report", kNoSplitColor);
  std::string caption =
      "Each bar is an epoch's wall time, divided among the pipeline's stages in proportion to "
      "their busy time (stages run in parallel on the worker threads, so each segment is a "
      "share, not a stopwatch reading). Epoch 1 stands next to epochs 2+: what the cache "
      "keeps disappears from the later bars.";
  if (Multi()) caption += " Bars are lettered by run.";
  return Figure("Epoch time by stage",
                RunLegend() + Legend(keys) +
                    BarChart("epoch-time", "epoch time by stage", groups, Secs),
                Esc(caption));
}

std::string Page::TrainerSplit() const {
  bool any = std::any_of(runs_.begin(), runs_.end(), [](const RunView& r) { return r.HasTrainer(); });
  if (!any) return "";
  struct Part {
    const char* name;
    const char* color;
    double EpochView::*field;
  };
  static const Part kParts[] = {
      {"waiting for data", "#e15759", &EpochView::data_wait},
      {"to device", "#f28e2b", &EpochView::h2d},
      {"forward", "#4e79a7", &EpochView::forward},
      {"backward", "#76b7b2", &EpochView::backward},
      {"optimizer", "#59a14f", &EpochView::optimizer},
      {"all-reduce", "#b07aa1", &EpochView::allreduce},
      {"evaluation", "#edc948", &EpochView::eval_seconds},
      {"checkpoint", "#9c755f", &EpochView::checkpoint},
  };
  auto groups = PerEpoch([&](size_t run, const EpochView& e) {
    std::vector<Seg> segs;
    if (!e.trainer) return segs;
    double parts = 0;
    const double total = e.t_seconds + e.eval_seconds + e.checkpoint;
    for (const Part& p : kParts) {
      double v = e.*(p.field);
      if (v <= 0) continue;
      parts += v;
      segs.push_back({p.name, v, p.color,
                      Who(run) + "epoch " + std::to_string(e.epoch) + ": " + p.name + " " +
                          Secs(v) + " (" + Pct(total > 0 ? v / total : 0) + ")"});
    }
    double other = total - parts;
    if (other > 0)
      segs.push_back({"other", other, kNoSplitColor,
                      Who(run) + "epoch " + std::to_string(e.epoch) +
                          ": not in a timed part (the step loop, logging) " + Secs(other)});
    return segs;
  });
  std::vector<std::pair<std::string, std::string>> keys;
  for (const Part& p : kParts) keys.emplace_back(p.name, p.color);
  keys.emplace_back("other", kNoSplitColor);
  return Figure("The trainer's epoch",
                RunLegend() + Legend(keys) +
                    BarChart("trainer-time", "the trainer's epoch by part", groups, Secs),
                "Training loop, evaluation and checkpoint of each epoch, as the trainer timed "
                "them. A tall red segment means the model waited for the pipeline.");
}

std::string Page::Gap() const {
  std::vector<HRow> rows;
  std::map<std::string, size_t> row_of;
  std::string notes;
  for (size_t i = 0; i < runs_.size(); ++i) {
    const RunView& r = runs_[i];
    if (r.epochs.size() < 2) continue;
    auto parts = GapParts(r);
    double sum = 0;
    for (const auto& [name, v] : parts) {
      auto [it, fresh] = row_of.emplace(name, rows.size());
      if (fresh) rows.push_back({name, {}});
      rows[it->second].values.emplace_back(i, v);
      sum += v;
    }
    notes += (notes.empty() ? "" : " ") + (Multi() ? Tag(i) + ": " : std::string()) +
             "epoch 1 took " + Secs(r.has_gap ? r.gap_seconds : sum) + " more than epochs 2+" +
             (r.has_gap ? " (counting set-up)" : "") + ".";
  }
  if (rows.empty())
    return Figure("The first-epoch gap", "<p class=\"note\">One epoch per run: no gap to split.</p>", "");
  std::string caption =
      Esc(notes) +
      " Training reports split the gap into the trainer's measured parts (they add up to it; "
      "a negative part took less time in epoch 1). Pipeline-only reports share it among the "
      "stages that worked more in epoch 1, in proportion to their extra busy time.";
  return Figure("The first-epoch gap", RunLegend() + HBarChart("gap", "first-epoch gap", rows, runs_.size(), labels_),
                caption);
}

std::string Page::Throughput() const {
  auto groups = PerEpoch([&](size_t run, const EpochView& e) {
    return std::vector<Seg>{{"samples/s", e.sps, RunColor(run),
                             Who(run) + "epoch " + std::to_string(e.epoch) + ": " +
                                 Thousands(e.sps) + " samples/s (" +
                                 Thousands(double(e.samples)) + " samples in " +
                                 Secs(e.seconds) + ")"}};
  });
  return Figure("Samples per second", RunLegend() +
                    BarChart("throughput", "samples per second per epoch", groups,
                             [](double v) { return Thousands(v); }),
                "Samples delivered to the consumer per second of the epoch's wall time.");
}

std::string Page::Wait() const {
  bool any = false;
  auto groups = PerEpoch([&](size_t run, const EpochView& e) {
    std::vector<Seg> segs;
    if (!e.has_wait) return segs;
    any = true;
    segs.push_back({"consumer wait", e.wait, RunColor(run),
                    Who(run) + "epoch " + std::to_string(e.epoch) + ": waited " + Secs(e.wait) +
                        " (" + Pct(e.seconds > 0 ? e.wait / e.seconds : 0) +
                        " of the epoch); per batch p95 " + Sig(e.wait_p95) + " ms, max " +
                        Sig(e.wait_max) + " ms"});
    return segs;
  });
  if (!any) return "";
  return Figure("Consumer wait", RunLegend() + BarChart("consumer-wait", "consumer wait per epoch", groups, Secs),
                "Time the consumer (the trainer, or bench's loop) spent blocked waiting for its "
                "next batch. Near zero means the pipeline kept ahead.");
}

std::string Page::CacheRate() const {
  bool any = false;
  for (const RunView& r : runs_)
    for (const EpochView& e : r.epochs) any = any || e.HasCache();
  if (!any)
    return Figure("Cache hit rate",
                  "<p class=\"note\">The cache was off in " +
                      std::string(Multi() ? "every run" : "this run") +
                      " (cache.mode: off, or nothing deterministic to keep): every epoch "
                      "read and computed every sample.</p>",
                  "");
  auto groups = PerEpoch([&](size_t run, const EpochView& e) {
    std::vector<Seg> segs;
    if (!e.HasCache()) return segs;
    segs.push_back({"hit rate", 100 * e.HitRate(), RunColor(run),
                    Who(run) + "epoch " + std::to_string(e.epoch) + ": " + Pct(e.HitRate()) +
                        " hits (" + Thousands(double(e.hits)) + " hits, " +
                        Thousands(double(e.misses)) + " misses)"});
    return segs;
  });
  return Figure("Cache hit rate", RunLegend() +
                    BarChart("cache-hit-rate", "cache hit rate per epoch", groups,
                             [](double v) { return Fmt("%.0f%%", v); }, 100),
                "Share of the epoch's samples that started from the cache instead of being read "
                "and computed. Epoch 1 fills it; 100% later means no I/O and no deterministic "
                "work repeated.");
}

std::string Page::Learning() const {
  bool any = std::any_of(runs_.begin(), runs_.end(), [](const RunView& r) { return r.HasTrainer(); });
  if (!any) return "";
  std::vector<Series> loss, acc;
  for (size_t i = 0; i < runs_.size(); ++i) {
    const RunView& r = runs_[i];
    if (!r.HasTrainer()) continue;
    Series tl{i, "training loss", false, {}}, el{i, "eval loss", true, {}};
    Series ta{i, "training accuracy", false, {}}, ea{i, "eval accuracy", true, {}};
    for (const EpochView& e : r.epochs) {
      if (!e.trainer) continue;
      tl.points.emplace_back(e.epoch, e.loss);
      ta.points.emplace_back(e.epoch, 100 * e.accuracy);
      if (e.eval) {
        el.points.emplace_back(e.epoch, e.eval_loss);
        ea.points.emplace_back(e.epoch, 100 * e.eval_accuracy);
      }
    }
    loss.push_back(tl);
    acc.push_back(ta);
    if (!el.points.empty()) loss.push_back(el);
    if (!ea.points.empty()) acc.push_back(ea);
  }
  std::vector<std::pair<std::string, std::string>> keys;
  for (size_t i = 0; i < runs_.size(); ++i) {
    if (!runs_[i].HasTrainer()) continue;
    std::string who = Multi() ? Tag(i) + " " : "";
    keys.emplace_back(who + "training", RunColor(i));
    keys.emplace_back(who + "evaluation", RunColor(i));
  }
  std::string out = "<h2>Learning</h2>\n";
  out += Figure("Loss per epoch",
                Legend(keys, true) + LineChart("loss", "loss per epoch", loss, Sig, labels_),
                "Mean training loss over the epoch's (augmented) samples; evaluation loss after "
                "the epoch, dashed.");
  out += Figure("Accuracy per epoch",
                Legend(keys, true) +
                    LineChart("accuracy", "accuracy per epoch", acc,
                              [](double v) { return Fmt("%.1f%%", v); }, labels_),
                "Top-1 accuracy: training (on augmented samples) and evaluation, dashed.");
  return out;
}

}  // namespace html
}  // namespace flowfeed
