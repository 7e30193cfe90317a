// The HTML report: JSON reports in, one self-contained page out (inline SVG and CSS, no script).
// This file assembles the page (head, the runs, the verdicts); the charts are in
// report_charts.cc, the tables in report_tables.cc, their SVG and text in report_svg.cc.
//
// Reading is tolerant on purpose: the page should draw whatever a report has (a bench report has
// no trainer figures, the DataLoader baseline has no stages, an interrupted run may have no
// epochs), and only a file that is not a report at all is refused. ReadReportJson()
// (flowfeed/report.h) reads it so; report_view.cc turns what it read into what the page draws.

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

#include "report_page.h"
#include "flowfeed/util/text_format.h"

namespace flowfeed {
namespace html {

using text::Bytes;
using text::Join;
using text::Thousands;

Page::Page(std::vector<RunView> runs) : runs_(std::move(runs)) {
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

std::string Page::Render(const std::string& title) const {
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

std::vector<std::string> Page::Paths() const {
  std::vector<std::string> p;
  for (const RunView& r : runs_) p.push_back(r.path.empty() ? r.label : r.path);
  return p;
}

std::string Page::Css() {
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

std::string Page::Runs() const {
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

std::string Page::Verdict(const RunView& r) {
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

std::vector<std::pair<std::string, double>> Page::GapParts(const RunView& r) {
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

}  // namespace html

using html::BaseName;
using html::MakeRunView;
using html::Page;
using html::RunView;

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

