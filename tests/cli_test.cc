// Runs the flowfeed binary as a user would: exit codes, messages, the JSON report.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "test_util.h"

namespace flowfeed {
namespace {

using test::TempDir;

struct CliRun {
  int code = -1;
  std::string output;  // stdout and stderr together
};

CliRun Flowfeed(const std::string& args) {
  CliRun r;
  std::string cmd = std::string(FLOWFEED_BINARY) + " " + args + " 2>&1";
  FILE* f = popen(cmd.c_str(), "r");
  if (!f) return r;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0) r.output.append(buf, n);
  int status = pclose(f);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

std::string IdxConfig(const TempDir& dir) {
  test::WriteIdx(dir / "data/images.idx.gz", dir / "data/labels.idx.gz", 100, 6, 6);
  std::string cfg =
      "seed: 3\n"
      "threads: 2\n"
      "epochs: 2\n"
      "source:\n"
      "  type: idx\n"
      "  root: " + dir.path() + "/data\n"
      "  images: images.idx.gz\n"
      "  labels: labels.idx.gz\n"
      "pipeline:\n"
      "  - {type: random_horizontal_flip}\n"
      "  - {type: normalize, mean: [0.5], std: [0.5]}\n"
      "batch: {size: 16}\n";
  test::WriteText(dir / "idx.yaml", cfg);
  return dir / "idx.yaml";
}

TEST(Cli, BenchWritesTheReportAndExitsZero) {
  TempDir dir;
  std::string cfg = IdxConfig(dir);
  CliRun r = Flowfeed("bench " + cfg + " --report " + dir / "report.json");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("epoch 1:"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("random_horizontal_flip"), std::string::npos) << r.output;
  std::ifstream in(dir / "report.json");
  nlohmann::json j = nlohmann::json::parse(in);
  ASSERT_EQ(j["epochs"].size(), 2u);
  EXPECT_EQ(j["epochs"][0]["samples"], 100);
  EXPECT_EQ(j["epochs"][0]["stages"]["read"]["count"], 100);
}

TEST(Cli, SetOverridesAndEpochsFlag) {
  TempDir dir;
  std::string cfg = IdxConfig(dir);
  CliRun r = Flowfeed("bench " + cfg + " --epochs 1 --set batch.size=50 --set seed=9 --report " +
                   dir / "r.json");
  ASSERT_EQ(r.code, 0) << r.output;
  std::ifstream in(dir / "r.json");
  nlohmann::json j = nlohmann::json::parse(in);
  ASSERT_EQ(j["epochs"].size(), 1u);
  EXPECT_EQ(j["epochs"][0]["batches"], 2);
}

TEST(Cli, SameSeedSameDigestAcrossThreadCounts) {
  TempDir dir;
  std::string cfg = IdxConfig(dir);
  CliRun a = Flowfeed("bench " + cfg + " --set threads=1 --report " + dir / "a.json");
  CliRun b = Flowfeed("bench " + cfg + " --set threads=2 --report " + dir / "b.json");
  ASSERT_EQ(a.code, 0) << a.output;
  ASSERT_EQ(b.code, 0) << b.output;
  std::ifstream ia(dir / "a.json"), ib(dir / "b.json");
  nlohmann::json ja = nlohmann::json::parse(ia), jb = nlohmann::json::parse(ib);
  for (int e = 0; e < 2; ++e)
    EXPECT_EQ(ja["epochs"][e]["batch_digest"], jb["epochs"][e]["batch_digest"]);
}

TEST(Cli, BadConfigExitsTwoWithLineAndColumn) {
  TempDir dir;
  test::WriteText(dir / "bad.yaml",
                  "seed: 0\n"
                  "threads: two\n"
                  "source: {type: idx, root: /tmp}\n"
                  "batch:\n"
                  "  sise: 4\n");
  CliRun r = Flowfeed("validate " + dir / "bad.yaml");
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_NE(r.output.find("bad.yaml:2:10"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("threads"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("bad.yaml:5:3"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("did you mean"), std::string::npos) << r.output;
  // bench refuses it the same way, without running anything.
  r = Flowfeed("bench " + dir / "bad.yaml");
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_EQ(r.output.find("epoch 1"), std::string::npos) << r.output;
}

TEST(Cli, MissingDatasetRootExitsTwo) {
  TempDir dir;
  std::string cfg = IdxConfig(dir);
  CliRun r = Flowfeed("bench " + cfg + " --set source.root=" + dir / "missing");
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_NE(r.output.find(dir / "missing"), std::string::npos) << r.output;
}

TEST(Cli, MissingConfigAndBadUsage) {
  CliRun r = Flowfeed("bench /nonexistent/config.yaml");
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_NE(r.output.find("/nonexistent/config.yaml"), std::string::npos) << r.output;
  r = Flowfeed("frobnicate");
  EXPECT_EQ(r.code, 2) << r.output;
  r = Flowfeed("bench");
  EXPECT_EQ(r.code, 2) << r.output;
}

TEST(Cli, FailPolicyExitsOneNamingTheSample) {
  TempDir dir;
  test::MakeImageFolder(dir / "photos", 1, 3);
  test::WriteText(dir / "photos/class0/aaa_broken.jpg", "not a jpeg");
  test::WriteText(dir / "c.yaml",
                  "source: {type: image_folder, root: " + dir / "photos" + "}\n"
                  "shuffle: false\n"
                  "pipeline:\n"
                  "  - {type: decode, on_error: fail}\n"
                  "  - {type: center_crop, size: 16}\n"
                  "batch: {size: 2}\n");
  CliRun r = Flowfeed("bench " + dir / "c.yaml");
  EXPECT_EQ(r.code, 1) << r.output;
  EXPECT_NE(r.output.find("aaa_broken.jpg"), std::string::npos) << r.output;
}

TEST(Cli, StagesListsEveryBuiltinWithParameters) {
  CliRun r = Flowfeed("stages");
  ASSERT_EQ(r.code, 0) << r.output;
  for (const char* s : {"decode", "resize", "center_crop", "random_resized_crop",
                        "random_horizontal_flip", "normalize", "scale", "ratio", "mean"})
    EXPECT_NE(r.output.find(s), std::string::npos) << s;
}

TEST(Cli, ShippedConfigsValidate) {
  for (const char* cfg : {"configs/fashion_mnist.yaml", "configs/photos.yaml"}) {
    CliRun r = Flowfeed(std::string("validate ") + FLOWFEED_SOURCE_DIR + "/" + cfg);
    EXPECT_EQ(r.code, 0) << cfg << "\n" << r.output;
  }
}

}  // namespace
}  // namespace flowfeed
