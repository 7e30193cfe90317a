// The page's tables: the runs side by side, stage latencies per epoch, skipped samples.

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

std::string Page::Summary() const {
  std::string out = "<h2>Summary</h2>\n<table class=\"summary\"><tr><th>run</th><th>epoch 1</th>"
                    "<th>epochs 2+ (mean)</th><th>epoch 1 samples/s</th><th>epochs 2+ samples/s</th>";
  if (Multi()) out += "<th>epochs 2+ vs " + Esc(runs_[0].label) + "</th>";
  out += "<th>consumer wait (all epochs)</th><th>cache hits, epochs 2+</th>";
  // What each sample cost the machine, where the reports measured it (flowfeed's and the
  // peers' harness's do; older reports do not).
  auto has_cpu = [](const EpochView& e) { return e.has_cpu; };
  const bool any_cpu = std::any_of(runs_.begin(), runs_.end(), [&](const RunView& r) {
    return std::any_of(r.epochs.begin(), r.epochs.end(), has_cpu);
  });
  if (any_cpu) out += "<th>CPU s per 1,000 samples</th>";
  bool any_eval = std::any_of(runs_.begin(), runs_.end(), [](const RunView& r) { return r.HasEval(); });
  if (any_eval) out += "<th>final eval accuracy</th>";
  out += "</tr>\n";
  auto later_sps = [](const RunView& r) {
    double v = r.LaterMean([](const EpochView& e) { return e.sps; });
    return std::isnan(v) && !r.epochs.empty() ? r.epochs[0].sps : v;
  };
  const double base_sps = runs_.empty() ? NAN : later_sps(runs_[0]);
  for (size_t i = 0; i < runs_.size(); ++i) {
    const RunView& r = runs_[i];
    out += "<tr><td>" + (Multi() ? Tag(i) + ": " : "") + Esc(r.label) + "</td>";
    if (r.epochs.empty()) {
      out += "<td colspan=\"" + std::to_string((Multi() ? 7 : 6) + any_cpu + any_eval) +
             "\">no epoch finished</td>";
    } else {
      double later = r.LaterMean([](const EpochView& e) { return e.seconds; });
      double sps = r.LaterMean([](const EpochView& e) { return e.sps; });
      out += "<td>" + Secs(r.epochs[0].seconds) + "</td><td>" +
             (std::isnan(later) ? "&ndash;" : Secs(later)) + "</td><td>" +
             Thousands(r.epochs[0].sps) + "</td><td>" +
             (std::isnan(sps) ? "&ndash;" : Thousands(sps)) + "</td>";
      if (Multi()) {
        double mine = later_sps(r);
        out += "<td>" + (base_sps > 0 && !std::isnan(mine) ? Fmt("%.2fx", mine / base_sps)
                                                           : std::string("&ndash;")) +
               "</td>";
      }
      out += SummaryMeasures(r, any_cpu, any_eval);
    }
    out += "</tr>\n";
  }
  return out + "</table>\n";
}

// A run's consumer wait, later cache hits, CPU per sample and final accuracy (the last two when
// any run has them), as the summary's cells.
std::string Page::SummaryMeasures(const RunView& r, bool any_cpu, bool any_eval) {
  std::string out;
  double wait = 0, secs = 0;
  bool has_wait = false;
  for (const EpochView& e : r.epochs) {
    wait += e.wait;
    secs += e.seconds;
    has_wait = has_wait || e.has_wait;
  }
  out += "<td>" + (has_wait ? Secs(wait) + " (" + Pct(secs > 0 ? wait / secs : 0) + ")"
                            : std::string("not measured")) +
         "</td>";
  int64_t hits = 0, lookups = 0;
  for (size_t k = 1; k < r.epochs.size(); ++k) {
    hits += r.epochs[k].hits;
    lookups += r.epochs[k].hits + r.epochs[k].misses;
  }
  out += "<td>" + (lookups > 0 ? Pct(double(hits) / double(lookups)) : std::string("&ndash;")) +
         "</td>";
  if (any_cpu) {
    double cpu = 0;
    int64_t samples = 0;
    bool has = true;
    for (const EpochView& e : r.epochs) {
      cpu += e.cpu;
      samples += e.samples;
      has = has && e.has_cpu;
    }
    out += "<td>" + (has && samples > 0 ? Fmt("%.2f", 1000 * cpu / double(samples))
                                        : std::string("not measured")) +
           "</td>";
  }
  if (any_eval) {
    const EpochView* last = nullptr;
    for (const EpochView& e : r.epochs)
      if (e.eval) last = &e;
    out += "<td>" + (last ? Fmt("%.2f%%", 100 * last->eval_accuracy) + " (epoch " +
                                std::to_string(last->epoch) + ")"
                          : std::string("&ndash;")) +
           "</td>";
  }
  return out;
}

std::string Page::LatencyTable(const EpochView& e) const {
  const double busy = e.StageBusy();
  size_t slowest = e.stages.size();
  for (size_t k = 0; k < e.stages.size(); ++k)
    if (e.stages[k].busy > 0 && (slowest == e.stages.size() || e.stages[k].busy > e.stages[slowest].busy))
      slowest = k;
  std::string out =
      "<table class=\"latency\"><tr><th>stage</th><th>samples</th><th>errors</th><th>busy</th>"
      "<th>share</th><th>p50 ms</th><th>p95 ms</th><th>p99 ms</th><th>max ms</th><th>bytes</th></tr>\n";
  for (size_t k = 0; k < e.stages.size(); ++k) {
    const StageView& s = e.stages[k];
    std::string name = Esc(s.name);
    if (!s.fused_into.empty()) name += " <span class=\"note\">(inside " + Esc(s.fused_into) + ")</span>";
    else if (s.fused > 0) name += " <span class=\"note\">(" + Thousands(double(s.fused)) + " region decodes)</span>";
    if (k == slowest) name += "<span class=\"badge\">most time</span>";
    out += std::string("<tr") + (k == slowest ? " class=\"slowest\"" : "") + " data-stage=\"" +
           Esc(s.name) + "\"><td><span class=\"sw\" style=\"background:" +
           stage_colors_.at(s.name) + "\"></span>" + name + "</td><td>" +
           Thousands(double(s.count)) + "</td><td>" + std::to_string(s.errors) + "</td><td>" +
           Secs(s.busy) + "</td><td>" + Pct(busy > 0 ? s.busy / busy : 0) + "</td><td>" +
           Sig(s.p50) + "</td><td>" + Sig(s.p95) + "</td><td>" + Sig(s.p99) + "</td><td>" +
           Sig(s.max) + "</td><td>" + Bytes(s.bytes) + "</td></tr>\n";
  }
  return out + "</table>\n";
}

std::string Page::LatencyTables() const {
  std::string out =
      "<p class=\"note\">Per sample, per stage, from each epoch's histograms; busy time is "
      "summed over threads. The highlighted row is the stage that took the most time: the "
      "first place to look for a faster epoch.</p>\n";
  for (size_t i = 0; i < runs_.size(); ++i) {
    const RunView& r = runs_[i];
    if (Multi()) out += "<h3>" + Tag(i) + ": " + Esc(r.label) + "</h3>\n";
    bool any = false;
    for (size_t k = 0; k < r.epochs.size(); ++k) {
      const EpochView& e = r.epochs[k];
      if (e.stages.empty()) continue;
      any = true;
      // Epoch 1 and the last epoch open: the two a reader compares.
      bool open = k == 0 || k + 1 == r.epochs.size();
      out += std::string("<details") + (open ? " open" : "") + "><summary>epoch " +
             std::to_string(e.epoch) + ": " + Secs(e.seconds) + ", " + Thousands(e.sps) +
             " samples/s</summary>\n" + LatencyTable(e) + "</details>\n";
    }
    if (!any) out += "<p class=\"note\">This report has no per-stage figures.</p>\n";
  }
  return out;
}

std::string Page::Skipped() const {
  std::string out;
  for (size_t i = 0; i < runs_.size(); ++i)
    for (const EpochView& e : runs_[i].epochs) {
      if (e.skipped == 0) continue;
      out += "<details><summary>" + Esc(Who(i)) + "epoch " + std::to_string(e.epoch) + ": " +
             Thousands(double(e.skipped)) + " samples skipped</summary><table><tr><th>sample"
             "</th><th>stage</th><th>reason</th></tr>\n";
      size_t shown = std::min<size_t>(e.skips.size(), 200);
      for (size_t k = 0; k < shown; ++k)
        out += "<tr><td>" + Esc(e.skips[k].source) + "</td><td>" + Esc(e.skips[k].stage) +
               "</td><td>" + Esc(e.skips[k].reason) + "</td></tr>\n";
      out += "</table>";
      if (e.skips.size() > shown)
        out += "<p class=\"note\">and " + Thousands(double(e.skips.size() - shown)) +
               " more, all listed in the JSON report.</p>";
      out += "</details>\n";
    }
  return out.empty() ? "" : "<h2>Skipped samples</h2>\n" + out;
}

}  // namespace html
}  // namespace flowfeed
