// The HTML report: what the page holds for bench, train and baseline reports, comparisons,
// hostile strings and bad input; and `flowfeed report` / `--html` as a user runs them.
#include "flowfeed/report_html.h"

#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include "report_page_util.h"
#include "test_util.h"

namespace flowfeed {
namespace {

using nlohmann::json;
using test::TempDir;

std::string Render(const std::vector<HtmlReportRun>& runs) {
  auto r = RenderHtmlReport(runs);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? r.value() : "";
}

// A pipeline-only report with `n` epochs, two stages; epoch 1 decodes, later epochs hit the
// cache.
json BenchReport(int n, double first_seconds = 2.0, double later_seconds = 0.5) {
  json j;
  j["run"] = {{"source", "image_folder data/photos"}, {"threads", 2}, {"dataset_size", 100}};
  j["cache"] = {{"mode", "memory"}, {"placement", "decode"}};
  for (int e = 1; e <= n; ++e) {
    json je;
    je["epoch"] = e;
    je["seconds"] = e == 1 ? first_seconds : later_seconds;
    je["samples"] = 100;
    je["batches"] = 10;
    je["samples_per_second"] = 100 / je["seconds"].get<double>();
    je["consumer_wait_seconds"] = e == 1 ? 1.5 : 0.1;
    je["cache"] = {{"mode", "memory"}, {"hits", e == 1 ? 0 : 100}, {"misses", e == 1 ? 100 : 0}};
    je["stages"] = {
        {"decode", {{"count", e == 1 ? 100 : 0}, {"busy_seconds", e == 1 ? 3.0 : 0.0}, {"p50_ms", 30.0}}},
        {"flip", {{"count", 100}, {"busy_seconds", 0.4}, {"p50_ms", 4.0}}}};
    je["stage_order"] = {"decode", "flip"};
    j["epochs"].push_back(je);
  }
  return j;
}

TEST(HtmlReport, BenchReportHasEveryChartWithOneBarPerEpoch) {
  std::string page = Render({{"", "bench.json", BenchReport(3).dump()}});
  test::ReportPage p(page);
  EXPECT_EQ(p.Stacks("epoch-time"), 3u);
  EXPECT_EQ(p.NonEmptyStacks("epoch-time"), 3u);
  EXPECT_EQ(p.NonEmptyStacks("throughput"), 3u);
  EXPECT_EQ(p.NonEmptyStacks("consumer-wait"), 3u);
  // Epoch 1 fills the cache: no hit, so no bar; epochs 2 and 3 hit every sample.
  EXPECT_EQ(p.NonEmptyStacks("cache-hit-rate"), 2u);
  EXPECT_EQ(p.Values("cache-hit-rate", "hit rate"), (std::vector<double>{100, 100}));
  // Epoch 1's 2 s split by busy time: decode 3.0 / 3.4, flip 0.4 / 3.4.
  std::vector<double> decode = p.Values("epoch-time", "decode");
  ASSERT_EQ(decode.size(), 1u);
  EXPECT_NEAR(decode[0], 2.0 * 3.0 / 3.4, 1e-4);
  EXPECT_EQ(p.Values("epoch-time", "flip").size(), 3u);
  // The gap (2.0 - 0.5 s) goes to decode alone: the only stage that worked more in epoch 1.
  EXPECT_EQ(p.Values("gap", "decode"), (std::vector<double>{1.5}));
  // Per-stage table per epoch, the stage with most time marked in each.
  EXPECT_EQ(p.Count("<table class=\"latency\">"), 3u);
  EXPECT_EQ(p.SlowestStages(), (std::vector<std::string>{"decode", "flip", "flip"}));
  // No trainer figures: no trainer or learning charts.
  EXPECT_EQ(p.Stacks("trainer-time"), 0u);
  EXPECT_EQ(page.find("id=\"loss\""), std::string::npos);
  EXPECT_NE(page.find("epoch 1 took 4.00x as long"), std::string::npos);
  EXPECT_NE(page.find("100% decode"), std::string::npos);
}

TEST(HtmlReport, TrainingReportDrawsTrainerPartsLossAndAccuracy) {
  json j = BenchReport(4);
  j["trainer"] = {{"device", "cpu"}, {"model", "cnn (1,000 parameters)"}};
  j["first_epoch_gap"] = {{"seconds", 2.0},
                          {"parts", {{"unexplained", 0.01}, {"data wait: decode", 1.5},
                                     {"set-up", 0.3}, {"first step", -0.11}, {"evaluation", 0.2}}}};
  j["ledger"] = {{"wall_seconds", 4.0}, {"setup_seconds", 0.3}, {"unexplained_seconds", 0.01}};
  for (int e = 0; e < 4; ++e) {
    j["epochs"][e]["trainer"] = {{"seconds", 1.0}, {"data_wait_seconds", e == 0 ? 0.6 : 0.0},
                                 {"forward_seconds", 0.2}, {"backward_seconds", 0.15},
                                 {"optimizer_seconds", 0.05}, {"loss", 1.0 / (e + 1)},
                                 {"accuracy", 0.5 + 0.1 * e}};
    if (e != 1) j["epochs"][e]["eval"] = {{"loss", 0.9 / (e + 1)}, {"accuracy", 0.55 + 0.1 * e}};
  }
  std::string page = Render({{"", "train.json", j.dump()}});
  test::ReportPage p(page);
  EXPECT_EQ(p.NonEmptyStacks("trainer-time"), 4u);
  EXPECT_EQ(p.Values("trainer-time", "waiting for data"), (std::vector<double>{0.6}));
  // Parts that fill the epoch: the rest is "other" (1.0 - 0.6 - 0.2 - 0.15 - 0.05 = 0 in epoch 1).
  EXPECT_EQ(p.Values("trainer-time", "other").size(), 3u);
  // Loss and accuracy: one point per epoch for training, per evaluated epoch for eval.
  std::vector<double> loss = p.Points("loss", "training loss");
  ASSERT_EQ(loss.size(), 4u);
  for (int e = 0; e < 4; ++e) EXPECT_NEAR(loss[size_t(e)], 1.0 / (e + 1), 1e-5);
  EXPECT_EQ(p.Points("loss", "eval loss").size(), 3u);
  EXPECT_EQ(p.Points("accuracy", "training accuracy").size(), 4u);
  EXPECT_NEAR(p.Points("accuracy", "eval accuracy").back(), 85.0, 1e-9);
  // The trainer's own gap parts, largest first, "unexplained" last, negatives kept.
  EXPECT_EQ(p.Series("gap"), (std::vector<std::string>{"data wait: decode", "set-up", "evaluation",
                                                        "first step", "unexplained"}));
  EXPECT_EQ(p.Values("gap", "first step"), (std::vector<double>{-0.11}));
  EXPECT_NE(page.find("final eval accuracy"), std::string::npos);
  EXPECT_NE(page.find("85.00% (epoch 4)"), std::string::npos);
}

TEST(HtmlReport, ComparisonOverlaysRunsSideBySide) {
  json a = BenchReport(3, 2.0, 0.5), b = BenchReport(2, 1.0, 0.25);
  std::string page = Render({{"", "dir/run.json", a.dump()}, {"", "other/run.json", b.dump()}});
  test::ReportPage p(page);
  // Epochs 1 and 2 hold a bar of each run, epoch 3 only A's.
  EXPECT_EQ(p.Stacks("epoch-time"), 5u);
  EXPECT_EQ(p.StacksOfRun("throughput", 0), 3u);
  EXPECT_EQ(p.StacksOfRun("throughput", 1), 2u);
  // Same file name twice: the labels still differ.
  EXPECT_NE(page.find("A: run<"), std::string::npos);
  EXPECT_NE(page.find("B: run (2)<"), std::string::npos);
  // B's epochs 2+ run at 400 samples/s against A's 200.
  EXPECT_NE(page.find("<td>2.00x</td>"), std::string::npos);
  EXPECT_NE(page.find("<td>1.00x</td>"), std::string::npos);
  // Labels given by the user win.
  page = Render({{"before", "a.json", a.dump()}, {"after", "b.json", b.dump()}});
  EXPECT_NE(page.find("flowfeed comparison: before vs after"), std::string::npos);
}

TEST(HtmlReport, BaselineWithoutStagesStillDrawsEveryEpoch) {
  // The shape tools/bench/torch_baseline.py --report writes: no stage figures.
  json j;
  j["run"] = {{"source", "PyTorch DataLoader"}, {"tool", "pytorch-dataloader"}, {"threads", 2}};
  for (int e = 1; e <= 2; ++e)
    j["epochs"].push_back({{"epoch", e}, {"seconds", e == 1 ? 4.0 : 3.0}, {"samples", 300},
                           {"consumer_wait_seconds", 2.9}});
  std::string page = Render({{"", "dl.json", j.dump()}, {"", "ff.json", BenchReport(2).dump()}});
  test::ReportPage p(page);
  EXPECT_EQ(p.Values("epoch-time", "epoch"), (std::vector<double>{4.0, 3.0}));
  EXPECT_EQ(p.StacksOfRun("epoch-time", 1), 2u);
  // samples/s derived from samples and seconds when the report has none.
  EXPECT_EQ(p.Values("throughput", "samples/s").front(), 75.0);
  // Its gap is one unsplit part, and its verdict does not pretend to split it.
  EXPECT_EQ(p.Values("gap", "epoch 1 minus epochs 2+"), (std::vector<double>{1.0}));
  EXPECT_EQ(page.find("The extra time: 100% epoch 1 minus"), std::string::npos);
  EXPECT_NE(page.find("The extra time: 100% decode"), std::string::npos);  // the other run's
  EXPECT_NE(page.find("This report has no per-stage figures."), std::string::npos);
}

// tools/bench/peers/ writes the peers' runs in this shape with cpu_seconds per epoch, as
// flowfeed's own reports have them: the summary gives each run's CPU per 1,000 samples, and
// says "not measured" for a run whose report has no CPU figures.
TEST(HtmlReport, SummaryGivesCpuPerThousandSamplesWhereMeasured) {
  json a = BenchReport(2), b = BenchReport(2), c = BenchReport(2);
  a["epochs"][0]["cpu_seconds"] = 0.3;  // 0.5 s over 200 samples: 2.50 per 1,000
  a["epochs"][1]["cpu_seconds"] = 0.2;
  b["epochs"][0]["cpu_seconds"] = 0.1;
  b["epochs"][1]["cpu_seconds"] = 0.1;  // 1.00 per 1,000
  std::string page = Render({{"flowfeed", "a.json", a.dump()}, {"DALI", "b.json", b.dump()},
                             {"old", "c.json", c.dump()}});
  EXPECT_NE(page.find("<th>CPU s per 1,000 samples</th>"), std::string::npos);
  EXPECT_NE(page.find("<td>2.50</td>"), std::string::npos);
  EXPECT_NE(page.find("<td>1.00</td>"), std::string::npos);
  EXPECT_NE(page.find("<td>not measured</td>"), std::string::npos);
  page = Render({{"old", "c.json", c.dump()}});
  EXPECT_EQ(page.find("CPU s per 1,000"), std::string::npos);
}

TEST(HtmlReport, HostileStringsAreEscapedAndThePageLoadsNothing) {
  json j = BenchReport(2);
  j["run"]["source"] = "<script>alert(1)</script> \"q\" & 'a'";
  j["run"]["warnings"] = {"<img src=http://example.com/x.png>"};
  j["epochs"][0]["stages"]["<b onload=x>"] = {{"busy_seconds", 1.0}, {"count", 1}};
  j["epochs"][0]["skipped"] = {{"count", 1},
                               {"samples", {{{"source", "</td><script>"}, {"reason", "bad"}}}}};
  std::string page = Render({{"<svg onload=alert(1)>", "x.json", j.dump()}});
  EXPECT_EQ(page.find("<script"), std::string::npos);
  EXPECT_EQ(page.find("<img"), std::string::npos);
  EXPECT_EQ(page.find("<b onload"), std::string::npos);
  EXPECT_EQ(page.find("<svg onload"), std::string::npos);
  EXPECT_NE(page.find("&lt;script&gt;alert(1)&lt;/script&gt; &quot;q&quot; &amp; &#39;a&#39;"),
            std::string::npos);
  EXPECT_TRUE(test::ReportPage(page).LoadsNothing()) << "the page references outside content";
  EXPECT_NE(page.find("default-src 'none'"), std::string::npos);
}

TEST(HtmlReport, RunsWithoutEpochsRenderAndSaySo) {
  std::string page = Render({{"", "stopped.json", R"({"run": {}, "epochs": []})"}});
  EXPECT_NE(page.find("No epoch finished in this run"), std::string::npos);
  EXPECT_EQ(test::ReportPage(page).Stacks("epoch-time"), 0u);
}

TEST(HtmlReport, BadInputIsRefusedNamingTheFile) {
  auto r = RenderHtmlReport({{"", "a.json", "{\"epochs\": [1, 2"}});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("a.json: not JSON"), std::string::npos) << r.status().message();
  r = RenderHtmlReport({{"", "b.json", R"({"traceEvents": []})"}});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("b.json: not a flowfeed report"), std::string::npos);
  r = RenderHtmlReport({{"", "c.json", R"({"epochs": [{"epoch": 1, "seconds": 1}, {"epoch": 2}]})"}});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("c.json: epochs[1] has no \"seconds\""), std::string::npos);
  EXPECT_FALSE(RenderHtmlReport({}).ok());
  // Wrong types inside an epoch are read as missing, not thrown.
  r = RenderHtmlReport({{"", "d.json", R"({"epochs": [{"seconds": 1, "samples": "many",
      "stages": {"x": {"busy_seconds": "slow"}}, "cache": [], "trainer": {"loss": null}}]})"}});
  EXPECT_TRUE(r.ok()) << r.status().ToString();
}

// --- the command line --------------------------------------------------------------------

test::ShellRun Flowfeed(const std::string& args) {
  return test::Shell(std::string(FLOWFEED_BINARY) + " " + args);
}

TEST(CliReport, BenchWritesTheHtmlPageNextToTheJson) {
  TempDir dir;
  std::string cfg = test::WriteReportConfig(dir);
  auto r = Flowfeed("bench " + cfg + " --report " + dir / "r.json" + " --html " + dir / "r.html");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("html report: " + dir / "r.html"), std::string::npos) << r.output;
  test::ReportPage p(test::ReadText(dir / "r.html"));
  EXPECT_EQ(p.NonEmptyStacks("epoch-time"), 3u);
  EXPECT_EQ(p.NonEmptyStacks("cache-hit-rate"), 2u);
  EXPECT_NE(p.html().find("flowfeed report: report"), std::string::npos);  // from report.yaml
  // `report` draws the same JSON again; its default output sits next to it.
  r = Flowfeed("report " + dir / "r.json");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_EQ(test::ReportPage(test::ReadText(dir / "r.html")).NonEmptyStacks("epoch-time"), 3u);
  r = Flowfeed("report " + dir / "r.json " + dir / "r.json --label x --label y");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_EQ(test::ReportPage(test::ReadText(dir / "r.compare.html")).Stacks("epoch-time"), 6u);
}

TEST(CliReport, MissingOrBadReportsExitTwoNamingTheFile) {
  TempDir dir;
  auto r = Flowfeed("report " + dir / "nope.json -o " + dir / "o.html");
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_NE(r.output.find("cannot read report " + dir / "nope.json"), std::string::npos) << r.output;
  test::WriteText(dir / "t.json", "{\"traceEvents\": []}");
  r = Flowfeed("report " + dir / "t.json -o " + dir / "o.html");
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_NE(r.output.find(dir / "t.json: not a flowfeed report"), std::string::npos) << r.output;
  EXPECT_FALSE(std::ifstream(dir / "o.html").good());
  r = Flowfeed("report " + dir / "t.json --label a --label b");
  EXPECT_EQ(r.code, 2) << r.output;
  // An output folder that does not exist: a runtime failure naming it.
  test::WriteText(dir / "ok.json", BenchReport(2).dump());
  r = Flowfeed("report " + dir / "ok.json -o " + dir / "no/such/dir/o.html");
  EXPECT_EQ(r.code, 1) << r.output;
  EXPECT_NE(r.output.find("no/such/dir/o.html"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace flowfeed
