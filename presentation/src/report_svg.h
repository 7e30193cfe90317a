// The page's building blocks: text and number formatting for HTML, the colours, and the inline
// SVG charts (stacked bars, bars around zero, lines over epochs) with their data-* attributes.
// Internal to flowfeed::presentation. Pure functions; every string they are given is escaped.
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "flowfeed/util/strings.h"  // Fmt

namespace flowfeed {
namespace html {

std::string Esc(const std::string& s);  // HTML-escaped
std::string Sig(double v);     // three significant digits, never in exponent form
std::string Secs(double s);    // "1.23 s", "456 ms"
std::string Pct(double share);  // 0.25 -> "25%"
std::string C(double v);       // an SVG coordinate

// Colours: stages keep one colour across every chart and run; runs have their own set.
inline constexpr const char* kStagePalette[] = {"#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
                                     "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac",
                                     "#1b9e77", "#7570b3"};
inline constexpr const char* kRunPalette[] = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#8c564b",
                                   "#e377c2"};
inline constexpr const char* kNoSplitColor = "#c7c7c7";
std::string RunColor(size_t run);

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

// Horizontal bars around zero, one row per part, one bar per run in a row (the gap's parts can
// be negative: a part that took less time in epoch 1 than in the later epochs).
struct HRow {
  std::string label;
  std::vector<std::pair<size_t, double>> values;  // (run, seconds)
};

// Lines over epochs: one per (run, series).
struct Series {
  size_t run = 0;
  std::string name;
  bool dashed = false;
  std::vector<std::pair<int, double>> points;  // (epoch, value)
};

// Vertical bars, stacked within a bar, bars of one group side by side. `fixed_max` > 0 pins the
// axis (percentages).
std::string BarChart(const std::string& id, const std::string& label,
                     const std::vector<Group>& groups,
                     const std::function<std::string(double)>& fmt, double fixed_max = 0);
std::string HBarChart(const std::string& id, const std::string& label,
                      const std::vector<HRow>& rows, size_t runs,
                      const std::vector<std::string>& run_labels);
std::string LineChart(const std::string& id, const std::string& label,
                      const std::vector<Series>& series,
                      const std::function<std::string(double)>& fmt,
                      const std::vector<std::string>& run_labels);
// Swatches and names; with `dashed_second` every second item is a dashed line.
std::string Legend(const std::vector<std::pair<std::string, std::string>>& items,
                   bool dashed_second = false);
// A chart or table with its title and caption (`caption` is HTML).
std::string Figure(const std::string& title, const std::string& body, const std::string& caption);

}  // namespace html
}  // namespace flowfeed
