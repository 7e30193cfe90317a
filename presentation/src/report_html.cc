// The HTML report: JSON reports in, one self-contained page out (inline SVG and CSS, no script).
//
// Reading is tolerant on purpose: the page should draw whatever a report has (a bench report has
// no trainer figures, the DataLoader baseline has no stages, an interrupted run may have no
// epochs), and only a file that is not a report at all is refused.

#include "flowfeed/report_html.h"
#include "flowfeed/report.h"
#include "flowfeed/version.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <map>
#include <set>
#include <sstream>

#include "text_format.h"

namespace flowfeed {

namespace {

using text::Bytes;
using text::Join;
using text::Thousands;

// The gap's one part when nothing splits it (a report without stage times).
constexpr const char* kUnsplitGap = "epoch 1 minus epochs 2+";

// ---------------------------------------------------------------------------------------------
// Reading a report.

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

std::string BaseName(const std::string& path) {
  size_t slash = path.find_last_of('/');
  std::string b = slash == std::string::npos ? path : path.substr(slash + 1);
  if (b.size() > 5 && b.compare(b.size() - 5, 5, ".json") == 0) b.resize(b.size() - 5);
  return b;
}

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

// ---------------------------------------------------------------------------------------------
// Text.

std::string Esc(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string Fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

// Three significant digits, never in exponent form.
std::string Sig(double v) {
  double a = std::fabs(v);
  if (a >= 100) return Fmt("%.0f", v);
  if (a >= 10) return Fmt("%.1f", v);
  if (a >= 1) return Fmt("%.2f", v);
  if (a >= 0.1) return Fmt("%.3f", v);
  if (a == 0) return "0";
  return Fmt("%.4f", v);
}

std::string Secs(double s) {
  if (std::fabs(s) < 1 && s != 0) return Sig(s * 1000) + " ms";
  return Sig(s) + " s";
}

std::string Pct(double share) { return Fmt(share >= 0.1 || share == 0 ? "%.0f%%" : "%.1f%%", 100 * share); }

// SVG coordinates: one decimal is finer than a pixel.
std::string C(double v) { return Fmt("%.1f", v); }

// ---------------------------------------------------------------------------------------------
// Colours: stages keep one colour across every chart and run; runs have their own set.

const char* const kStagePalette[] = {"#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
                                     "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac",
                                     "#1b9e77", "#7570b3"};
const char* const kRunPalette[] = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#8c564b",
                                   "#e377c2"};
const char* const kNoSplitColor = "#c7c7c7";

std::string RunColor(size_t run) { return kRunPalette[run % (sizeof kRunPalette / sizeof *kRunPalette)]; }

// ---------------------------------------------------------------------------------------------
// Charts.

// One segment of a bar; a bar is a stack of them.
struct Seg {
  std::string series;
  double value = 0;
  std::string color;
  std::string tip;
};
struct Stack {
  size_t run = 0;
  std::string tag;  // under the bar when a group holds bars of several runs
  int epoch = 0;
  std::vector<Seg> segs;
  std::string total_tip;
};
struct Group {
  std::string label;
  std::vector<Stack> stacks;
};

double NiceStep(double span, int ticks) {
  double raw = span / ticks;
  double p = std::pow(10.0, std::floor(std::log10(raw)));
  double f = raw / p;
  double nice = f <= 1 ? 1 : f <= 2 ? 2 : f <= 2.5 ? 2.5 : f <= 5 ? 5 : 10;
  return nice * p;
}

constexpr double kW = 880, kH = 270, kLeft = 64, kRight = 14, kTop = 16, kBottom = 46;

std::string SvgOpen(const std::string& id, double h, const std::string& label) {
  return "<svg class=\"chart\" id=\"" + Esc(id) + "\" data-chart=\"" + Esc(id) +
         "\" viewBox=\"0 0 " + C(kW) + " " + C(h) + "\" role=\"img\" aria-label=\"" + Esc(label) +
         "\">\n";
}

std::string Text(double x, double y, const std::string& s, const std::string& anchor,
                 const std::string& cls = "") {
  return "<text x=\"" + C(x) + "\" y=\"" + C(y) + "\" text-anchor=\"" + anchor + "\"" +
         (cls.empty() ? "" : " class=\"" + cls + "\"") + ">" + Esc(s) + "</text>";
}

// Vertical bars, stacked within a bar, bars of one group side by side. `fixed_max` > 0 pins the
// axis (percentages).
std::string BarChart(const std::string& id, const std::string& label,
                     const std::vector<Group>& groups,
                     const std::function<std::string(double)>& fmt, double fixed_max = 0) {
  double max = 0;
  for (const Group& g : groups)
    for (const Stack& s : g.stacks) {
      double t = 0;
      for (const Seg& seg : s.segs) t += std::max(0.0, seg.value);
      max = std::max(max, t);
    }
  if (fixed_max > 0) max = fixed_max;
  if (!(max > 0)) max = 1;
  const double step = NiceStep(max, 5);
  const double top = std::ceil(max / step - 1e-9) * step;
  const double pw = kW - kLeft - kRight, ph = kH - kTop - kBottom, base = kTop + ph;
  std::ostringstream o;
  o << SvgOpen(id, kH, label);
  for (double v = 0; v <= top + step / 2; v += step) {
    double y = base - v / top * ph;
    o << "<line class=\"grid\" x1=\"" << C(kLeft) << "\" x2=\"" << C(kW - kRight) << "\" y1=\""
      << C(y) << "\" y2=\"" << C(y) << "\"/>" << Text(kLeft - 6, y + 4, fmt(v), "end", "axis")
      << "\n";
  }
  const double gw = pw / double(std::max<size_t>(groups.size(), 1));
  // Label every group while they fit, else every k-th (long training runs).
  const size_t label_every = std::max<size_t>(1, size_t(std::ceil(38.0 / gw)));
  for (size_t gi = 0; gi < groups.size(); ++gi) {
    const Group& g = groups[gi];
    const size_t n = std::max<size_t>(g.stacks.size(), 1);
    const double gap = n > 1 ? std::min(6.0, gw * 0.04) : 0;
    const double bw = std::max(1.0, std::min(46.0, (gw * 0.8 - gap * double(n - 1)) / double(n)));
    double x = kLeft + double(gi) * gw + (gw - bw * double(n) - gap * double(n - 1)) / 2;
    for (const Stack& s : g.stacks) {
      o << "<g class=\"stack\" data-chart=\"" << Esc(id) << "\" data-run=\"" << s.run
        << "\" data-epoch=\"" << s.epoch << "\">";
      double y = base, total = 0;
      for (const Seg& seg : s.segs) {
        double h = std::max(0.0, seg.value) / top * ph;
        total += std::max(0.0, seg.value);
        if (h <= 0) continue;
        y -= h;
        o << "<rect class=\"bar\" data-series=\"" << Esc(seg.series) << "\" data-value=\""
          << Fmt("%.6g", seg.value) << "\" x=\"" << C(x) << "\" y=\"" << C(y) << "\" width=\""
          << C(bw) << "\" height=\"" << C(h) << "\" fill=\"" << seg.color << "\"><title>"
          << Esc(seg.tip) << "</title></rect>";
      }
      if (bw >= 16 && total > 0)
        o << Text(x + bw / 2, y - 4, fmt(total), "middle", "value");
      if (g.stacks.size() > 1 && bw >= 9 && !s.tag.empty())
        o << Text(x + bw / 2, base + 12, s.tag, "middle", "tag");
      o << "</g>\n";
      x += bw + gap;
    }
    if (gi % label_every == 0)
      o << Text(kLeft + (double(gi) + 0.5) * gw, base + (g.stacks.size() > 1 ? 26 : 16),
                g.label, "middle", "axis")
        << "\n";
  }
  o << "<line class=\"axisline\" x1=\"" << C(kLeft) << "\" x2=\"" << C(kW - kRight) << "\" y1=\""
    << C(base) << "\" y2=\"" << C(base) << "\"/>\n</svg>\n";
  return o.str();
}

// Horizontal bars around zero, one row per part, one bar per run in a row (the gap's parts can
// be negative: a part that took less time in epoch 1 than in the later epochs).
struct HRow {
  std::string label;
  std::vector<std::pair<size_t, double>> values;  // (run, seconds)
};

std::string HBarChart(const std::string& id, const std::string& label,
                      const std::vector<HRow>& rows, size_t runs,
                      const std::vector<std::string>& run_labels) {
  const double left = 230, right = 80, row_h = 16.0 * double(std::max<size_t>(runs, 1)) + 10;
  const double h = kTop + row_h * double(rows.size()) + 24;
  double lo = 0, hi = 0;
  for (const HRow& r : rows)
    for (const auto& [run, v] : r.values) {
      lo = std::min(lo, v);
      hi = std::max(hi, v);
    }
  if (hi - lo <= 0) hi = 1;
  const double pw = kW - left - right;
  auto X = [&](double v) { return left + (v - lo) / (hi - lo) * pw; };
  std::ostringstream o;
  o << SvgOpen(id, h, label);
  const double step = NiceStep(hi - lo, 5);
  for (double v = std::ceil(lo / step) * step; v <= hi + step / 100; v += step) {
    o << "<line class=\"grid\" x1=\"" << C(X(v)) << "\" x2=\"" << C(X(v)) << "\" y1=\"" << C(kTop)
      << "\" y2=\"" << C(h - 22) << "\"/>" << Text(X(v), h - 8, Secs(v), "middle", "axis") << "\n";
  }
  double y = kTop;
  for (const HRow& r : rows) {
    o << Text(left - 8, y + row_h / 2 + 2, r.label, "end", "axis") << "\n";
    double by = y + 5;
    for (const auto& [run, v] : r.values) {
      double x0 = X(std::min(0.0, v)), x1 = X(std::max(0.0, v));
      std::string tip = (runs > 1 ? run_labels[run] + ": " : "") + r.label + ": " + Secs(v);
      o << "<rect class=\"bar\" data-chart=\"" << Esc(id) << "\" data-run=\"" << run
        << "\" data-series=\"" << Esc(r.label) << "\" data-value=\"" << Fmt("%.6g", v)
        << "\" x=\"" << C(x0) << "\" y=\"" << C(by) << "\" width=\"" << C(std::max(1.0, x1 - x0))
        << "\" height=\"12\" fill=\"" << RunColor(run) << "\"><title>" << Esc(tip)
        << "</title></rect>" << Text(x1 + 4, by + 10, Secs(v), "start", "value") << "\n";
      by += 16;
    }
    y += row_h;
  }
  o << "<line class=\"axisline\" x1=\"" << C(X(0)) << "\" x2=\"" << C(X(0)) << "\" y1=\""
    << C(kTop) << "\" y2=\"" << C(h - 22) << "\"/>\n</svg>\n";
  return o.str();
}

// Lines over epochs: one per (run, series).
struct Series {
  size_t run = 0;
  std::string name;
  bool dashed = false;
  std::vector<std::pair<int, double>> points;  // (epoch, value)
};

std::string LineChart(const std::string& id, const std::string& label,
                      const std::vector<Series>& series,
                      const std::function<std::string(double)>& fmt,
                      const std::vector<std::string>& run_labels) {
  int e_lo = INT32_MAX, e_hi = INT32_MIN;
  double lo = INFINITY, hi = -INFINITY;
  for (const Series& s : series)
    for (const auto& [e, v] : s.points) {
      e_lo = std::min(e_lo, e);
      e_hi = std::max(e_hi, e);
      lo = std::min(lo, v);
      hi = std::max(hi, v);
    }
  if (e_lo > e_hi) return "";
  if (hi - lo <= 0) {
    lo -= std::max(std::fabs(lo) * 0.1, 1e-3);
    hi += std::max(std::fabs(hi) * 0.1, 1e-3);
  }
  const double step = NiceStep(hi - lo, 5);
  lo = std::floor(lo / step) * step;
  hi = std::ceil(hi / step) * step;
  const double pw = kW - kLeft - kRight, ph = kH - kTop - kBottom, base = kTop + ph;
  // Inset so the first and last epochs' labels stay inside the chart.
  const double inset = 28;
  auto X = [&](int e) {
    return e_hi == e_lo ? kLeft + pw / 2
                        : kLeft + inset + double(e - e_lo) / double(e_hi - e_lo) * (pw - 2 * inset);
  };
  auto Y = [&](double v) { return base - (v - lo) / (hi - lo) * ph; };
  std::ostringstream o;
  o << SvgOpen(id, kH, label);
  for (double v = lo; v <= hi + step / 2; v += step)
    o << "<line class=\"grid\" x1=\"" << C(kLeft) << "\" x2=\"" << C(kW - kRight) << "\" y1=\""
      << C(Y(v)) << "\" y2=\"" << C(Y(v)) << "\"/>" << Text(kLeft - 6, Y(v) + 4, fmt(v), "end", "axis")
      << "\n";
  const int e_step = std::max(1, (e_hi - e_lo + 1) / 20);
  for (int e = e_lo; e <= e_hi; e += e_step)
    o << Text(X(e), base + 16, "epoch " + std::to_string(e), "middle", "axis");
  o << "\n";
  for (const Series& s : series) {
    if (s.points.empty()) continue;
    std::string pts;
    for (const auto& [e, v] : s.points) pts += C(X(e)) + "," + C(Y(v)) + " ";
    o << "<polyline class=\"line\" data-chart=\"" << Esc(id) << "\" data-run=\"" << s.run
      << "\" data-series=\"" << Esc(s.name) << "\" points=\"" << pts << "\" stroke=\""
      << RunColor(s.run) << "\"" << (s.dashed ? " stroke-dasharray=\"6 4\"" : "") << "/>\n";
    for (const auto& [e, v] : s.points)
      o << "<circle class=\"point\" data-chart=\"" << Esc(id) << "\" data-run=\"" << s.run
        << "\" data-series=\"" << Esc(s.name) << "\" data-epoch=\"" << e << "\" data-value=\""
        << Fmt("%.6g", v) << "\" cx=\"" << C(X(e)) << "\" cy=\"" << C(Y(v)) << "\" r=\"3.5\" fill=\""
        << RunColor(s.run) << "\"><title>"
        << Esc((run_labels.size() > 1 ? run_labels[s.run] + ", " : "") + s.name + ", epoch " +
               std::to_string(e) + ": " + fmt(v))
        << "</title></circle>";
    o << "\n";
  }
  o << "<line class=\"axisline\" x1=\"" << C(kLeft) << "\" x2=\"" << C(kW - kRight) << "\" y1=\""
    << C(base) << "\" y2=\"" << C(base) << "\"/>\n</svg>\n";
  return o.str();
}

std::string Legend(const std::vector<std::pair<std::string, std::string>>& items,
                   bool dashed_second = false) {
  std::string out = "<div class=\"legend\">";
  for (size_t i = 0; i < items.size(); ++i)
    out += "<span class=\"key\"><span class=\"sw" +
           std::string(dashed_second && i % 2 == 1 ? " dashed" : "") + "\" style=\"" +
           (dashed_second && i % 2 == 1 ? "border-color:" : "background:") + items[i].second +
           "\"></span>" + Esc(items[i].first) + "</span>";
  return out + "</div>\n";
}

std::string Figure(const std::string& title, const std::string& body, const std::string& caption) {
  return "<figure><figcaption><b>" + Esc(title) + "</b>" +
         (caption.empty() ? "" : " <span class=\"note\">" + caption + "</span>") +
         "</figcaption>\n" + body + "</figure>\n";
}

// ---------------------------------------------------------------------------------------------
// The page's sections.

class Page {
 public:
  explicit Page(std::vector<RunView> runs) : runs_(std::move(runs)) {
    for (const RunView& r : runs_) labels_.push_back(r.label);
    // One colour per stage name, in order of first appearance over every run.
    for (const RunView& r : runs_)
      for (const EpochView& e : r.epochs)
        for (const StageView& s : e.stages)
          if (!stage_colors_.count(s.name)) {
            size_t n = stage_colors_.size();
            stage_colors_[s.name] = kStagePalette[n % (sizeof kStagePalette / sizeof *kStagePalette)];
            stage_order_.push_back(s.name);
          }
    for (const RunView& r : runs_) max_epochs_ = std::max(max_epochs_, r.epochs.size());
  }

  std::string Render(const std::string& title) const {
    std::string t = title;
    if (t.empty())
      t = runs_.size() == 1 ? "flowfeed report: " + runs_[0].label
                            : "flowfeed comparison: " + Join(labels_, " vs ");
    std::string out;
    out += "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n";
    // The page must never load anything: no fonts, scripts, images or styles from anywhere.
    out += "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
           "style-src 'unsafe-inline'; img-src data:\">\n";
    out += "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n";
    out += "<meta name=\"generator\" content=\"flowfeed " FLOWFEED_VERSION "\">\n";
    out += "<title>" + Esc(t) + "</title>\n<style>\n" + Css() + "</style>\n</head>\n<body>\n";
    out += "<h1>" + Esc(t) + "</h1>\n";
    out += Runs();
    out += Summary();
    if (max_epochs_ == 0) {
      out += "<p class=\"empty\">No epoch finished in " +
             std::string(runs_.size() == 1 ? "this run" : "these runs") +
             ": there is nothing to chart.</p>\n";
    } else {
      out += "<h2>Where the epochs' time went</h2>\n";
      out += EpochTime();
      out += TrainerSplit();
      out += Gap();
      out += "<h2>Throughput, waiting and the cache</h2>\n";
      out += Throughput();
      out += Wait();
      out += CacheRate();
      out += Learning();
      out += "<h2>Stage latencies</h2>\n";
      out += LatencyTables();
      out += Skipped();
    }
    out += "<footer>Written by flowfeed " FLOWFEED_VERSION " from " +
           Esc(Join(Paths(), ", ")) +
           ". The page is self-contained: it loads nothing from the network. Hover a bar or a "
           "point for its figure.</footer>\n</body>\n</html>\n";
    return out;
  }

 private:
  std::vector<std::string> Paths() const {
    std::vector<std::string> p;
    for (const RunView& r : runs_) p.push_back(r.path.empty() ? r.label : r.path);
    return p;
  }
  bool Multi() const { return runs_.size() > 1; }
  std::string Tag(size_t run) const { return std::string(1, char('A' + run % 26)); }
  std::string Who(size_t run) const { return Multi() ? runs_[run].label + ", " : ""; }

  static std::string Css() {
    return R"(body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#222;max-width:940px;margin:24px auto;padding:0 16px}
h1{font-size:22px;margin:0 0 12px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
figure{margin:14px 0 22px}figcaption{margin-bottom:4px}.note{color:#555}
svg.chart{width:100%;height:auto;display:block;background:#fff}
svg text{font-size:11px;fill:#333}svg text.value{font-size:10px;fill:#222}svg text.tag{font-weight:600;fill:#555}
.grid{stroke:#e6e6e6;stroke-width:1}.axisline{stroke:#888;stroke-width:1}
polyline.line{fill:none;stroke-width:2}
.legend{margin:2px 0 4px;font-size:12px}.key{margin-right:14px;white-space:nowrap}
.sw{display:inline-block;width:11px;height:11px;margin-right:4px;vertical-align:-1px;border-radius:2px}
.sw.dashed{background:none;border-top:2px dashed;height:0;width:16px;border-radius:0;vertical-align:3px}
table{border-collapse:collapse;margin:6px 0 12px;font-size:13px}th,td{padding:3px 8px;border-bottom:1px solid #eee;text-align:right}
th{background:#f6f6f6}td:first-child,th:first-child{text-align:left}
tr.slowest td{background:#fde2e1;font-weight:600}.badge{font-size:11px;color:#b3261e;margin-left:6px}
.verdict{background:#f4f8fb;border-left:4px solid #4e79a7;padding:6px 10px;margin:8px 0}
.warn{color:#8a5300}.empty{color:#b3261e}details{margin:4px 0}summary{cursor:pointer}
footer{margin-top:32px;color:#777;font-size:12px}
)";
  }

  // Who ran what: one block per run.
  std::string Runs() const {
    std::string out;
    for (size_t i = 0; i < runs_.size(); ++i) {
      const RunView& r = runs_[i];
      out += "<div class=\"run\"><b>";
      if (Multi())
        out += "<span class=\"sw\" style=\"background:" + RunColor(i) + "\"></span>" + Tag(i) +
               ": ";
      out += Esc(r.label) + "</b>";
      if (!r.source.empty()) out += " &mdash; " + Esc(r.source);
      std::vector<std::string> facts;
      if (r.threads > 0) facts.push_back(std::to_string(r.threads) + " threads");
      if (r.dataset_size > 0) facts.push_back(Thousands(double(r.dataset_size)) + " samples");
      facts.push_back(std::to_string(r.epochs.size()) + " epoch" +
                      (r.epochs.size() == 1 ? "" : "s"));
      if (r.cache_mode != "off")
        facts.push_back("cache " + r.cache_mode +
                        (r.cache_store.empty() ? "" : " of " + r.cache_store) +
                        (r.cache_placement.empty() ? "" : " after " + r.cache_placement));
      else
        facts.push_back("no cache" + (r.cache_note.empty() ? "" : " (" + r.cache_note + ")"));
      if (!r.device.empty()) facts.push_back("trained on " + r.device);
      if (!r.model.empty()) facts.push_back("model " + r.model);
      if (!r.tool.empty()) facts.push_back(r.tool);
      out += "<br><span class=\"note\">" + Esc(Join(facts, "; ")) + "</span>";
      if (!r.cache_decision.empty())
        out += "<br><span class=\"note\">" + Esc(r.cache_decision) + "</span>";
      if (r.has_ledger)
        out += "<br><span class=\"note\">wall time " + Esc(Secs(r.wall)) + ": set-up " +
               Esc(Secs(r.setup)) + ", epochs " + Esc(Secs(r.wall - r.setup - r.unexplained)) +
               ", not measured by any part " + Esc(Secs(r.unexplained)) + "</span>";
      for (const std::string& w : r.warnings)
        out += "<br><span class=\"warn\">warning: " + Esc(w) + "</span>";
      out += "<p class=\"verdict\">" + Esc(Verdict(r)) + "</p></div>\n";
    }
    return out;
  }

  // Epoch 1 against the later epochs, in one sentence.
  static std::string Verdict(const RunView& r) {
    if (r.epochs.empty()) return "No epoch finished.";
    const EpochView& first = r.epochs[0];
    std::string out = "Epoch 1: " + Secs(first.seconds) + ", " + Thousands(first.sps) + " samples/s";
    if (r.epochs.size() < 2) return out + " (one epoch: nothing to compare it with).";
    double later = r.LaterMean([](const EpochView& e) { return e.seconds; });
    double later_sps = r.LaterMean([](const EpochView& e) { return e.sps; });
    out += "; epochs 2+: " + Secs(later) + " each, " + Thousands(later_sps) + " samples/s";
    if (later > 0) {
      double x = first.seconds / later;
      out += x >= 1 ? " (epoch 1 took " + Fmt("%.2f", x) + "x as long)"
                    : " (epoch 1 was faster: " + Fmt("%.2f", x) + "x their time)";
    }
    auto parts = GapParts(r);
    double pos = 0;
    for (const auto& p : parts) pos += std::max(0.0, p.second);
    const bool unsplit = parts.size() == 1 && parts[0].first == kUnsplitGap;
    if (pos > 0 && first.seconds > later && !unsplit) {
      std::sort(parts.begin(), parts.end(),
                [](const auto& a, const auto& b) { return a.second > b.second; });
      std::vector<std::string> top;
      for (const auto& p : parts) {
        if (top.size() == 3 || p.second <= 0 || p.second / pos < 0.05) break;
        top.push_back(Pct(p.second / pos) + " " + p.first);
      }
      if (!top.empty()) out += ". The extra time: " + Join(top, ", ");
    }
    return out + ".";
  }

  // The first-epoch gap's parts: the trainer's own split when the report has one; otherwise the
  // wall-clock gap shared among the stages in proportion to how much more they worked in
  // epoch 1 than in the mean later epoch (stages run in parallel, so busy time is thread time,
  // not wall time: only the proportions carry over).
  static std::vector<std::pair<std::string, double>> GapParts(const RunView& r) {
    if (r.has_gap) {
      auto parts = r.gap;
      // Largest first; "unexplained" last, where a reader looks for what is left over.
      std::stable_sort(parts.begin(), parts.end(), [](const auto& a, const auto& b) {
        bool ua = a.first == "unexplained", ub = b.first == "unexplained";
        if (ua != ub) return ub;
        return std::fabs(a.second) > std::fabs(b.second);
      });
      return parts;
    }
    std::vector<std::pair<std::string, double>> parts;
    if (r.epochs.size() < 2) return parts;
    const EpochView& first = r.epochs[0];
    const double gap = first.seconds - r.LaterMean([](const EpochView& e) { return e.seconds; });
    std::vector<std::pair<std::string, double>> extra;
    double total = 0;
    for (const StageView& s : first.stages) {
      double later = r.LaterMean([&](const EpochView& e) {
        for (const StageView& t : e.stages)
          if (t.name == s.name) return t.busy;
        return 0.0;
      });
      double d = s.busy - later;
      if (d > 0) {
        extra.emplace_back(s.name, d);
        total += d;
      }
    }
    if (total <= 0 || gap <= 0) {
      parts.emplace_back(kUnsplitGap, gap);
      return parts;
    }
    std::sort(extra.begin(), extra.end(),
              [](const auto& a, const auto& b) { return a.second > b.second; });
    for (const auto& [name, d] : extra) parts.emplace_back(name, gap * d / total);
    return parts;
  }

  // One row per run with the figures people compare, and ratios against the first run.
  std::string Summary() const {
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
      }
      out += "</tr>\n";
    }
    return out + "</table>\n";
  }

  // Groups of bars, one group per epoch number, one bar per run that has that epoch.
  template <typename F>
  std::vector<Group> PerEpoch(F&& make_segs) const {
    std::vector<Group> groups;
    for (size_t k = 0; k < max_epochs_; ++k) {
      Group g;
      for (size_t i = 0; i < runs_.size(); ++i) {
        if (k >= runs_[i].epochs.size()) continue;
        const EpochView& e = runs_[i].epochs[k];
        g.label = "epoch " + std::to_string(e.epoch);
        Stack s;
        s.run = i;
        s.tag = Tag(i);
        s.epoch = e.epoch;
        s.segs = make_segs(i, e);
        g.stacks.push_back(std::move(s));
      }
      if (!g.stacks.empty()) groups.push_back(std::move(g));
    }
    return groups;
  }

  std::string RunLegend() const {
    if (!Multi()) return "";
    std::vector<std::pair<std::string, std::string>> items;
    for (size_t i = 0; i < runs_.size(); ++i) items.emplace_back(Tag(i) + ": " + runs_[i].label, RunColor(i));
    return Legend(items);
  }

  std::string EpochTime() const {
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

  std::string TrainerSplit() const {
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

  std::string Gap() const {
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

  std::string Throughput() const {
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

  std::string Wait() const {
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

  std::string CacheRate() const {
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

  std::string Learning() const {
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

  std::string LatencyTable(const EpochView& e) const {
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

  std::string LatencyTables() const {
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

  std::string Skipped() const {
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

  std::vector<RunView> runs_;
  std::vector<std::string> labels_;
  std::map<std::string, std::string> stage_colors_;
  std::vector<std::string> stage_order_;
  size_t max_epochs_ = 0;
};

}  // namespace

Result<std::string> RenderHtmlReport(const std::vector<HtmlReportRun>& runs,
                                     const std::string& title) {
  if (runs.empty()) return Status::InvalidArgument("no report to render");
  std::vector<RunView> views;
  std::set<std::string> labels;
  for (size_t i = 0; i < runs.size(); ++i) {
    const HtmlReportRun& in = runs[i];
    const std::string run_n = "run " + std::to_string(i + 1);
    auto doc = ReadReportJson(in.json, in.path.empty() ? run_n : in.path);
    if (!doc.ok()) return doc.status();
    RunView r = MakeRunView(*doc,
                            !in.label.empty() ? in.label : !in.path.empty() ? BaseName(in.path)
                                                                             : run_n,
                            in.path);
    // Two runs never share a label: the legend would not tell them apart.
    std::string label = r.label;
    for (int n = 2; labels.count(label); ++n) label = r.label + " (" + std::to_string(n) + ")";
    r.label = label;
    labels.insert(label);
    views.push_back(std::move(r));
  }
  return Page(std::move(views)).Render(title);
}

}  // namespace flowfeed
