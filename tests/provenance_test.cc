// Provenance: every report says which flowfeed, config (as resolved), command, host, time and
// libraries produced it; `flowfeed config` prints the resolved config.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "flowfeed/config.h"
#include "flowfeed/pipeline.h"
#include "flowfeed/registry.h"
#include "flowfeed/report.h"
#include "flowfeed/version.h"
#include "test_util.h"

namespace flowfeed {
namespace {

using test::TempDir;

std::string Config(const TempDir& dir) {
  test::WriteIdx(dir / "img.idx", dir / "lab.idx", 40, 6, 5);
  return "epochs: 1\n"
         "source: {type: idx, root: " + dir.path() + ", images: img.idx, labels: lab.idx}\n"
         "pipeline:\n  - {type: random_horizontal_flip}\n"
         "batch: {size: 8}\n";
}

TEST(Provenance, TheLoaderKeepsTheConfigAsResolved) {
  TempDir dir;
  StageRegistry reg;
  RegisterBuiltinStages(&reg);
  auto o = ParseConfig(Config(dir), "c.yaml", {"batch.size=5", "threads=2"}, reg);
  ASSERT_OK(o.status());
  const std::string& resolved = o.value().resolved_config;
  EXPECT_NE(resolved.find("size: 5"), std::string::npos) << resolved;
  EXPECT_NE(resolved.find("threads: 2"), std::string::npos) << resolved;
  EXPECT_EQ(resolved.find("size: 8"), std::string::npos) << resolved;
  // The resolved text is a config: read again it gives the same options.
  auto again = ParseConfig(resolved, "resolved", {}, reg);
  ASSERT_OK(again.status());
  EXPECT_EQ(again.value().batch.size, 5);
  EXPECT_EQ(again.value().threads, 2);
}

TEST(Provenance, EveryRunsReportCarriesIt) {
  TempDir dir;
  StageRegistry reg;
  RegisterBuiltinStages(&reg);
  auto o = ParseConfig(Config(dir), "c.yaml", {"batch.size=5"}, reg);
  ASSERT_OK(o.status());
  o.value().command_line = "flowfeed bench c.yaml --set batch.size=5";
  auto p = Pipeline::Open(o.value(), reg);
  ASSERT_OK(p.status());
  BatchPtr b;
  do ASSERT_OK(p.value()->Next(&b));
  while (b);
  const RunStats rs = p.value()->stats();
  const Provenance& pv = rs.provenance;
  EXPECT_EQ(pv.flowfeed_version, FLOWFEED_VERSION);
  EXPECT_EQ(pv.command_line, "flowfeed bench c.yaml --set batch.size=5");
  EXPECT_EQ(pv.config_path, "c.yaml");
  EXPECT_EQ(pv.resolved_config, o.value().resolved_config);
  EXPECT_FALSE(pv.host.empty());
  ASSERT_EQ(pv.started.size(), 20u) << pv.started;  // 2026-12-05T18:01:02Z
  EXPECT_EQ(pv.started[10], 'T');
  EXPECT_EQ(pv.started.back(), 'Z');
  std::map<std::string, std::string> libs(pv.libraries.begin(), pv.libraries.end());
  for (const char* name : {"oneTBB", "OpenCV", "libjpeg-turbo", "zlib", "xxHash"})
    EXPECT_FALSE(libs[name].empty()) << name;

  // Written and read back whole.
  const std::string text = ReportJson(rs);
  auto j = nlohmann::json::parse(text);
  EXPECT_EQ(j["provenance"]["flowfeed_version"], FLOWFEED_VERSION);
  EXPECT_EQ(j["provenance"]["libraries"]["oneTBB"], libs["oneTBB"]);
  auto doc = ReadReportJson(text, "report");
  ASSERT_OK(doc.status());
  const Provenance& back = doc.value().run.provenance;
  EXPECT_EQ(back.resolved_config, pv.resolved_config);
  EXPECT_EQ(back.command_line, pv.command_line);
  EXPECT_EQ(back.started, pv.started);
  EXPECT_EQ(back.libraries.size(), pv.libraries.size());
}

TEST(Provenance, TheCliPrintsTheResolvedConfigAndRecordsItsCommand) {
  TempDir dir;
  test::WriteText(dir / "c.yaml", Config(dir));
  auto shown = test::Shell(std::string(FLOWFEED_BINARY) + " config " + (dir / "c.yaml") +
                           " --set batch.size=3");
  ASSERT_EQ(shown.code, 0) << shown.output;
  EXPECT_NE(shown.output.find("size: 3"), std::string::npos) << shown.output;
  // A config that does not validate prints the problems instead, and exits 2.
  auto bad = test::Shell(std::string(FLOWFEED_BINARY) + " config " + (dir / "c.yaml") +
                         " --set batch.size=0");
  EXPECT_EQ(bad.code, 2) << bad.output;
  EXPECT_NE(bad.output.find("batch.size"), std::string::npos) << bad.output;

  auto run = test::Shell(std::string(FLOWFEED_BINARY) + " bench " + (dir / "c.yaml") +
                         " --set 'threads=1' --report " + (dir / "r.json"));
  ASSERT_EQ(run.code, 0) << run.output;
  auto j = nlohmann::json::parse(test::ReadText(dir / "r.json"));
  const std::string line = j["provenance"]["command_line"];
  EXPECT_NE(line.find(" bench "), std::string::npos) << line;
  EXPECT_NE(line.find("--set threads=1"), std::string::npos) << line;
  EXPECT_NE(std::string(j["provenance"]["resolved_config"]).find("threads: 1"),
            std::string::npos);
}

}  // namespace
}  // namespace flowfeed
