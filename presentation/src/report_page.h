// The page: one object that holds the runs' views and renders each section. Its methods are
// defined by section: report_html.cc (the page, the runs, the summary's figures),
// report_charts.cc (the charts) and report_tables.cc (the tables).
// Internal to flowfeed::presentation; a Page is built, rendered once and dropped (one thread).
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "report_svg.h"
#include "report_view.h"

namespace flowfeed {
namespace html {

// The gap's one part when nothing splits it (a report without stage times).
inline constexpr const char* kUnsplitGap = "epoch 1 minus epochs 2+";

class Page {
 public:
  explicit Page(std::vector<RunView> runs);

  std::string Render(const std::string& title) const;

 private:
  std::vector<std::string> Paths() const;
  bool Multi() const { return runs_.size() > 1; }
  std::string Tag(size_t run) const { return std::string(1, char('A' + run % 26)); }
  std::string Who(size_t run) const { return Multi() ? runs_[run].label + ", " : ""; }

  static std::string Css();

  // Who ran what: one block per run.
  std::string Runs() const;

  // Epoch 1 against the later epochs, in one sentence.
  static std::string Verdict(const RunView& r);

  // The first-epoch gap's parts: the trainer's own split when the report has one; otherwise the
  // wall-clock gap shared among the stages in proportion to how much more they worked in
  // epoch 1 than in the mean later epoch (stages run in parallel, so busy time is thread time,
  // not wall time: only the proportions carry over).
  static std::vector<std::pair<std::string, double>> GapParts(const RunView& r);

  // One row per run with the figures people compare, and ratios against the first run.
  std::string Summary() const;
  static std::string SummaryMeasures(const RunView& r, bool any_cpu, bool any_eval);

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

  std::string RunLegend() const;

  std::string EpochTime() const;

  std::string TrainerSplit() const;

  std::string Gap() const;

  std::string Throughput() const;

  std::string Wait() const;

  std::string CacheRate() const;

  std::string Learning() const;

  std::string LatencyTable(const EpochView& e) const;

  std::string LatencyTables() const;

  std::string Skipped() const;

  std::vector<RunView> runs_;
  std::vector<std::string> labels_;
  std::map<std::string, std::string> stage_colors_;
  std::vector<std::string> stage_order_;
  size_t max_epochs_ = 0;
};

}  // namespace html
}  // namespace flowfeed
