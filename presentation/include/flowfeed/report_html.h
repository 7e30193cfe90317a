// flowfeed/report_html.h: the JSON reports of `bench` and `train` drawn as one HTML page.
//
// The page is self-contained: charts are inline SVG, styles are inline CSS, and there is no
// script. A Content-Security-Policy in the page forbids every load (default-src 'none'), so
// opening it never touches the network, whatever a report's strings hold (every string from a
// report is HTML-escaped).
//
// What it shows, per run: epoch time as stacked bars split by stage (epoch 1 next to epochs 2+),
// the first-epoch gap split into its named parts, images/s, consumer wait and cache hit rate per
// epoch, a per-stage latency table per epoch with the stage that took the most time marked, and
// for training runs the trainer's own split of each epoch and loss/accuracy per epoch. With two
// or more runs the same charts overlay them (bars side by side per epoch, one line per run) and
// a summary table gives each run's figures against the first run's.
//
// Input: a report as ReportJson() or TrainReportJson() writes it, or any JSON of the same shape
// (tools/bench/torch_baseline.py --report writes one for PyTorch's DataLoader). Only
// "epochs" (a list, each with "seconds") is required; a missing figure leaves its chart or row
// out, or says that the run did not measure it.
//
// Every chart element that stands for a figure carries data-* attributes (data-chart, data-run,
// data-epoch, data-series, data-value), so tools and tests can check a page without drawing it.
//
// Thread-safety: a pure function; call it from any thread.
#pragma once

#include <string>
#include <vector>

#include "flowfeed/status.h"

namespace flowfeed {

struct HtmlReportRun {
  std::string label;  // shown in legends and tables ("" = the file's base name, or "run N")
  std::string path;   // where the JSON came from; named in errors and in the page
  std::string json;   // the report's text
};

// Renders the page. Errors: InvalidArgument naming the run's path when its text is not JSON or
// not a report (no "epochs" list, an epoch without "seconds"); InvalidArgument when `runs` is
// empty. A report with no finished epoch renders, saying so.
Result<std::string> RenderHtmlReport(const std::vector<HtmlReportRun>& runs,
                                     const std::string& title = "");

}  // namespace flowfeed
