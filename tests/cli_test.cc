// Runs the flowfeed binary as a user would: exit codes, messages, the JSON report.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <string>
#include <thread>

#include "test_util.h"

namespace flowfeed {
namespace {

using test::TempDir;

using CliRun = test::ShellRun;

CliRun Flowfeed(const std::string& args) { return test::Shell(std::string(FLOWFEED_BINARY) + " " + args); }

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

bool HasTrainer() {
  return Flowfeed("train /nonexistent.yaml").output.find("this build has no trainer") ==
         std::string::npos;
}

// A small training run over IDX data, one epoch, with a checkpoint.
std::string TrainConfig(const TempDir& dir) {
  test::WriteBandIdx(dir / "data/img.idx", dir / "data/lab.idx", 128, 3);
  test::WriteText(dir / "t.yaml",
                  "seed: 3\nthreads: 2\nepochs: 1\n"
                  "source: {type: idx, root: " + dir / "data" +
                      ", images: img.idx, labels: lab.idx}\n"
                  "pipeline: [{type: normalize, mean: [0.4], std: [0.3]}]\n"
                  "batch: {size: 32}\nmodel: {type: mlp, hidden: [16]}\n"
                  "optimizer: {type: sgd, lr: 0.1, momentum: 0.9}\n"
                  "checkpoint: " + dir / "ck.pt" + "\n");
  return dir / "t.yaml";
}

// A resume whose config changed what the checkpoint records is a usage error (exit 2) naming
// each change; --resume-changed accepts it with a warning; a damaged checkpoint is refused.
TEST(Cli, TrainResumeRefusesChangedSettingsUnlessAccepted) {
  if (!HasTrainer()) GTEST_SKIP() << "this build has no trainer (LibTorch not found)";
  TempDir dir;
  const std::string cfg = TrainConfig(dir);
  CliRun r = Flowfeed("train " + cfg);
  ASSERT_EQ(r.code, 0) << r.output;
  const std::string resume = " --epochs 2 --resume " + dir / "ck.pt";
  r = Flowfeed("train " + cfg + resume + " --set seed=9 --set optimizer.lr=0.01");
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_NE(r.output.find("sampler.seed: 3 -> 9"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("optimizer.lr: 0.1 -> 0.01"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("--resume-changed"), std::string::npos) << r.output;
  r = Flowfeed("train " + cfg + " --resume-changed");
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_NE(r.output.find("--resume-changed goes with --resume"), std::string::npos) << r.output;
  // A damaged copy: refused naming it, before anything runs.
  std::vector<uint8_t> bytes = test::ReadBytes(dir / "ck.pt");
  bytes[bytes.size() / 2] ^= 1;
  test::WriteBytes(dir / "bad.pt", bytes);
  r = Flowfeed("train " + cfg + " --epochs 2 --resume " + dir / "bad.pt");
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_NE(r.output.find(dir / "bad.pt is damaged"), std::string::npos) << r.output;
  r = Flowfeed("train " + cfg + resume + " --set seed=9 --resume-changed");
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("warning: resuming " + dir / "ck.pt" + " with changed settings"),
            std::string::npos)
      << r.output;
}

// A loss that is no longer a number ends the run with exit 1, naming the epoch and step, and
// leaves the checkpoint as it was.
TEST(Cli, TrainStopsOnANonFiniteLoss) {
  if (!HasTrainer()) GTEST_SKIP() << "this build has no trainer (LibTorch not found)";
  TempDir dir;
  const std::string cfg = TrainConfig(dir);
  ASSERT_EQ(Flowfeed("train " + cfg).code, 0);
  const std::vector<uint8_t> before = test::ReadBytes(dir / "ck.pt");
  // The largest learning rate on inputs scaled by 5e19: the loss explodes within the epoch.
  CliRun r = Flowfeed("train " + cfg +
                      " --set optimizer.lr=1000 --set 'pipeline.0.std=[1e-20]' --set epochs=2");
  EXPECT_EQ(r.code, 1) << r.output;
  EXPECT_TRUE(std::regex_search(r.output, std::regex("epoch 1, step [0-9]+: the loss is")))
      << r.output;
  EXPECT_NE(r.output.find("these weights were not saved"), std::string::npos) << r.output;
  EXPECT_EQ(test::ReadBytes(dir / "ck.pt"), before);
}

// A file name that carries terminal control sequences (retitle the window, turn text red) and
// a byte that is not UTF-8 is printed escaped, in the skip list and in an error alike.
TEST(Cli, ControlBytesInNamesAreEscapedOnTheTerminal) {
  TempDir dir;
  test::MakeImageFolder(dir / "photos", 1, 3);
  const std::string evil = "evil\x1b]0;pwned\x07\x1b[31m\x9b\xc2\x9b.jpg";
  const std::string shown = "evil\\x1b]0;pwned\\x07\\x1b[31m\\x9b\\xc2\\x9b.jpg";
  test::WriteText(dir / ("photos/class0/" + evil), "not a jpeg");
  for (const char* policy : {"skip", "fail"}) {
    test::WriteText(dir / "c.yaml",
                    "source: {type: image_folder, root: " + dir / "photos" + "}\n"
                    "shuffle: false\n"
                    "pipeline:\n"
                    "  - {type: decode, on_error: " + policy + "}\n"
                    "  - {type: center_crop, size: 16}\n"
                    "batch: {size: 2}\ncache: {mode: off}\n");
    CliRun r = Flowfeed("bench " + dir / "c.yaml");
    EXPECT_EQ(r.code, std::string(policy) == "skip" ? 0 : 1) << r.output;
    EXPECT_NE(r.output.find(shown), std::string::npos) << policy << ":\n" << r.output;
    for (char c : {'\x1b', '\x07', '\x9b'})
      EXPECT_EQ(r.output.find(c), std::string::npos) << policy << ": a raw control byte:\n"
                                                     << r.output;
  }
}

TEST(Cli, StagesListsEveryBuiltinWithParameters) {
  CliRun r = Flowfeed("stages");
  ASSERT_EQ(r.code, 0) << r.output;
  for (const char* s : {"decode", "resize", "center_crop", "random_resized_crop",
                        "random_horizontal_flip", "normalize", "scale", "ratio", "mean"})
    EXPECT_NE(r.output.find(s), std::string::npos) << s;
}

TEST(Cli, AMistypedCommandGetsASuggestion) {
  CliRun r = Flowfeed("bnech configs/photos.yaml");
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_NE(r.output.find("unknown command 'bnech'; did you mean 'bench'?"), std::string::npos)
      << r.output;
  CliRun far = Flowfeed("zzzz");
  EXPECT_EQ(far.code, 2) << far.output;
  EXPECT_NE(far.output.find("unknown command 'zzzz' (commands: bench, train"), std::string::npos)
      << far.output;
  EXPECT_EQ(far.output.find("did you mean"), std::string::npos) << far.output;
}

// A bare plugin name that is neither beside the config nor in FLOWFEED_PLUGIN_PATH is found in
// the program's own plugin folder: plugins/ beside the flowfeed binary (the build tree's
// build/plugins, whatever the build folder is called). tests/sdk_test.cc: the installed one.
TEST(Cli, ABarePluginNameIsFoundInTheProgramsPluginFolder) {
  namespace fs = std::filesystem;
  TempDir dir;
  test::MakeImageFolder(dir / "images", 1, 2);
  test::WriteText(dir / "c.yaml",
                  "plugins: [grayscale.so]\n"
                  "source: {type: image_folder, root: " +
                      dir / "images" +
                      "}\n"
                      "pipeline:\n  - {type: decode}\n  - {type: grayscale}\n");
  const std::string no_path = "env -u FLOWFEED_PLUGIN_PATH ";
  CliRun r = test::Shell(no_path + FLOWFEED_BINARY + " validate " + dir / "c.yaml");
  EXPECT_EQ(r.code, 0) << r.output;

  // A copy of the program elsewhere looks beside itself, not in the build tree.
  fs::create_directories(dir / "elsewhere");
  fs::copy_file(FLOWFEED_BINARY, dir / "elsewhere/flowfeed");
  r = test::Shell(no_path + dir / "elsewhere/flowfeed validate " + dir / "c.yaml");
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_NE(r.output.find("plugins[0]: plugin grayscale.so: no such file (looked for " +
                          dir / "grayscale.so)"),
            std::string::npos)
      << r.output;
  fs::create_directories(dir / "elsewhere/plugins");
  fs::copy_file(FLOWFEED_PLUGIN_DIR "/grayscale.so", dir / "elsewhere/plugins/grayscale.so");
  r = test::Shell(no_path + dir / "elsewhere/flowfeed validate " + dir / "c.yaml");
  EXPECT_EQ(r.code, 0) << r.output;
  // `stages --plugins` finds names the same way; it names the file each stage came from.
  r = test::Shell(no_path + dir / "elsewhere/flowfeed stages --plugins grayscale.so");
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find(dir / "elsewhere/plugins/grayscale.so"), std::string::npos) << r.output;
}

// Every shipped config, on data the test makes: the configs name folders this machine may lack
// (data/photos, build/data/fashion-mnist, Debian's Fashion-MNIST), which validate refuses.
TEST(Cli, ShippedConfigsValidate) {
  TempDir dir;
  test::MakeImageFolder(dir / "photos", 2, 2);
  test::WriteIdx(dir / "fm/train-images-idx3-ubyte.gz", dir / "fm/train-labels-idx1-ubyte.gz", 20,
                 28, 28);
  test::WriteIdx(dir / "fm/t10k-images-idx3-ubyte.gz", dir / "fm/t10k-labels-idx1-ubyte.gz", 10, 28,
                 28);
  const std::string photos = " --set source.root=" + dir / "photos";
  const std::string fm =
      " --set source.root=" + dir / "fm" + " --set eval.source.root=" + dir / "fm";
  const std::string fm_images = photos + " --set eval.source.root=" + dir / "photos";
  const std::vector<std::pair<std::string, std::string>> configs = {
      {"configs/fashion_mnist.yaml", fm},
      {"configs/fashion_mnist_images.yaml", fm_images},
      {"configs/photos.yaml", photos},
      {"configs/photos_resize256.yaml", photos},
      {"configs/photos_plugins.yaml", photos}};
  for (const auto& [cfg, data] : configs) {
    CliRun r = Flowfeed(std::string("validate ") + FLOWFEED_SOURCE_DIR + "/" + cfg + data);
    EXPECT_EQ(r.code, 0) << cfg << "\n" << r.output;
  }
  // Each of them is listed above.
  size_t shipped = 0;
  for (const auto& e : std::filesystem::directory_iterator(FLOWFEED_SOURCE_DIR "/configs"))
    shipped += e.path().extension() == ".yaml";
  EXPECT_EQ(shipped, configs.size());
}

// validate (and config, "checked like validate") refuse a dataset folder that does not exist,
// naming the key and where it looked: a relative root is taken from the current directory, as
// the run takes it, and the run says the same.
TEST(Cli, ValidateRefusesAMissingSourceRoot) {
  TempDir dir;
  test::MakeImageFolder(dir / "data", 1, 2);
  std::filesystem::create_directories(dir / "sub");
  test::WriteText(dir / "c.yaml",
                  "source: {type: image_folder, root: data}\n"
                  "pipeline: [{type: decode}, {type: center_crop, size: 8}]\n"
                  "batch: {size: 2}\n");
  const std::string bin = FLOWFEED_BINARY;
  CliRun ok = test::Shell("cd " + dir.path() + " && " + bin + " validate c.yaml");
  EXPECT_EQ(ok.code, 0) << ok.output;
  const std::string missing =
      "../c.yaml:1:1: source.root: data does not exist (relative to the current directory: " +
      dir / "sub/data" + ")";
  for (const char* command : {"validate", "config", "bench"}) {
    CliRun r = test::Shell("cd " + dir / "sub" + " && " + bin + " " + command + " ../c.yaml");
    EXPECT_EQ(r.code, 2) << command << "\n" << r.output;
    // bench says it through the pipeline's open, without the config's line.
    const std::string expected =
        std::string(command) == "bench" ? missing.substr(missing.find("source.root")) : missing;
    EXPECT_NE(r.output.find(expected), std::string::npos) << command << "\n" << r.output;
  }
  CliRun absolute = Flowfeed("validate " + dir / "c.yaml" + " --set source.root=" + dir / "nope");
  EXPECT_EQ(absolute.code, 2) << absolute.output;
  EXPECT_NE(absolute.output.find("source.root: " + dir / "nope" + " does not exist"),
            std::string::npos)
      << absolute.output;
  CliRun file = Flowfeed("validate " + dir / "c.yaml" + " --set source.root=" + dir / "c.yaml");
  EXPECT_EQ(file.code, 2) << file.output;
  EXPECT_NE(file.output.find("source.root: " + dir / "c.yaml" + " is not a directory"),
            std::string::npos)
      << file.output;
  // The evaluation set's folder is checked too.
  CliRun eval =
      Flowfeed("validate " + dir / "c.yaml" + " --set source.root=" + dir / "data" +
               " --set 'eval={source: {type: image_folder, root: " + dir / "gone" + "}}'");
  EXPECT_EQ(eval.code, 2) << eval.output;
  EXPECT_NE(eval.output.find("eval.source.root: " + dir / "gone" + " does not exist"),
            std::string::npos)
      << eval.output;
}

// Beyond the root: validate opens the datasets as a run would, so a missing images file, file
// list or shard is found before the run, named, with exit 2; --schema-only checks the config
// alone. The ok line gives the sample counts it found.
TEST(Cli, ValidateOpensTheDatasetsUnlessSchemaOnly) {
  TempDir dir;
  test::WriteIdx(dir / "fm/train-images-idx3-ubyte.gz", dir / "fm/train-labels-idx1-ubyte.gz", 20,
                 4, 4);
  test::WriteText(dir / "c.yaml", "source: {type: idx, root: " + dir / "fm" +
                                      "}\nbatch: {size: 4}\n");
  CliRun ok = Flowfeed("validate " + dir / "c.yaml");
  EXPECT_EQ(ok.code, 0) << ok.output;
  EXPECT_NE(ok.output.find("ok (idx source of 20 samples,"), std::string::npos) << ok.output;

  const std::vector<std::pair<std::string, std::string>> missing = {
      {" --set source.images=gone.gz", dir / "fm/gone.gz"},
      {" --set source.labels=gone.gz", dir / "fm/gone.gz"},
      {" --set 'source={type: file_list, root: " + dir / "fm" + ", list: gone.csv}'",
       "source.list: gone.csv: No such file"},
      {" --set 'source={type: tar, root: " + dir / "fm" + ", shards: \"s-{0..1}.tar\"}'",
       dir / "fm/s-0.tar"},
      {" --set 'eval={source: {type: idx, root: " + dir / "fm" + ", images: none.gz}}'",
       dir / "fm/none.gz"}};
  for (const auto& [set, file] : missing) {
    CliRun r = Flowfeed("validate " + dir / "c.yaml" + set);
    EXPECT_EQ(r.code, 2) << set << "\n" << r.output;
    EXPECT_NE(r.output.find(file), std::string::npos) << set << "\n" << r.output;
    CliRun schema = Flowfeed("validate --schema-only " + dir / "c.yaml" + set);
    EXPECT_EQ(schema.code, 0) << set << "\n" << schema.output;
    EXPECT_NE(schema.output.find("datasets not opened"), std::string::npos) << schema.output;
  }
}

}  // namespace
}  // namespace flowfeed

extern char** environ;

namespace flowfeed {
namespace {

std::string ReadReportDigest(const std::string& path) {
  std::ifstream in(path);
  nlohmann::json j = nlohmann::json::parse(in);
  return j["epochs"][0]["batch_digest"].get<std::string>();
}

// What tools/run.sh main runs before training, on a small copy of Debian's four files: written
// once, then reused; a missing file is named. (The exporter itself: idx_folder_test.cc.)
TEST(Cli, DatasetFashionMnistWritesOnceThenReuses) {
  TempDir dir;
  test::WriteIdx(dir / "idx/train-images-idx3-ubyte.gz", dir / "idx/train-labels-idx1-ubyte.gz",
                 30, 28, 28);
  test::WriteIdx(dir / "idx/t10k-images-idx3-ubyte.gz", dir / "idx/t10k-labels-idx1-ubyte.gz",
                 10, 28, 28);
  const std::string out = dir / "fm", from = " --from " + dir / "idx";
  CliRun r = Flowfeed("dataset fashion-mnist --threads 2 --out " + out + from);
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("wrote 30 train images"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("wrote 10 test images"), std::string::npos) << r.output;
  EXPECT_TRUE(std::filesystem::exists(out + "/test/9_ankle_boot/00009.png"));  // label 9
  r = Flowfeed("dataset fashion-mnist --out " + out + from);
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("reusing " + out), std::string::npos) << r.output;

  std::filesystem::remove(dir / "idx/t10k-labels-idx1-ubyte.gz");
  r = Flowfeed("dataset fashion-mnist --out " + dir / "fm2" + from);
  EXPECT_EQ(r.code, 1) << r.output;
  EXPECT_NE(r.output.find(dir / "idx/t10k-labels-idx1-ubyte.gz"), std::string::npos) << r.output;
  EXPECT_FALSE(std::filesystem::exists(dir / "fm2"));
  r = Flowfeed("dataset fashion-mnist --out " + out + " --threads many");
  EXPECT_EQ(r.code, 2) << r.output;
}

// A run killed with SIGKILL while it writes the disk cache leaves a cache whose committed part
// the next run reuses, with the same batches as a run without any cache.
TEST(Cli, KilledWhileWritingTheDiskCacheLeavesAReusableCache) {
  TempDir dir;
  test::MakeImageFolder(dir / "photos", 2, 15);
  std::string list;
  std::vector<std::string> files;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir / "photos"))
    if (e.is_regular_file()) files.push_back(e.path().string());
  std::sort(files.begin(), files.end());
  // Sample 20 waits in the test plugin's `test_stuck`, on a FIFO nobody writes, so the run stops
  // there deterministically, after the samples before it were cached and committed.
  ASSERT_EQ(mkfifo((dir / "block.fifo").c_str(), 0644), 0);
  for (size_t i = 0; i < files.size(); ++i) list += files[i] + "," + std::to_string(i % 2) + "\n";
  test::WriteText(dir / "list.csv", list);
  test::WriteText(dir / "c.yaml",
                  "plugins: [" + std::string(FLOWFEED_TEST_PLUGIN_DIR) + "/stuck.so]\n"
                  "source: {type: file_list, list: " + dir / "list.csv" + ", root: /}\n"
                  "shuffle: false\n"
                  "threads: 2\n"
                  "pipeline:\n"
                  "  - {type: test_stuck, gate: " + dir / "block.fifo" + ", index: 20}\n"
                  "  - {type: decode}\n"
                  "  - {type: center_crop, size: 24}\n"
                  "  - {type: random_horizontal_flip}\n"
                  "batch: {size: 4}\n"
                  "cache: {mode: disk, after: decode, path: " + dir / "cache" + ", commit_seconds: 0.05}\n");

  std::string bin = FLOWFEED_BINARY, cfg = dir / "c.yaml";
  std::vector<char*> argv = {bin.data(), const_cast<char*>("bench"), cfg.data(), nullptr};
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
  pid_t pid;
  ASSERT_EQ(posix_spawn(&pid, bin.c_str(), &actions, nullptr, argv.data(), environ), 0);
  posix_spawn_file_actions_destroy(&actions);

  // Wait until the index has stopped growing: everything before the FIFO is committed.
  const std::string index = dir / "cache/flowfeed-cache.index";
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  uintmax_t last = 0;
  int stable = 0;
  while (std::chrono::steady_clock::now() < deadline && stable < 10) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    std::error_code ec;
    uintmax_t size = std::filesystem::file_size(index, ec);
    if (ec || size <= 16) continue;  // 16: the file header alone, no segment yet
    stable = size == last ? stable + 1 : 0;
    last = size;
  }
  ASSERT_GT(last, 0u) << "the cache index was never committed";
  ASSERT_EQ(kill(pid, SIGKILL), 0);
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFSIGNALED(status));

  // The rerun, with the FIFO gone, has the same listing and stages, and reuses what was
  // committed.
  std::filesystem::remove(dir / "block.fifo");
  CliRun again = Flowfeed("bench " + cfg + " --report " + dir / "again.json");
  ASSERT_EQ(again.code, 0) << again.output;
  EXPECT_NE(again.output.find("reusing"), std::string::npos) << again.output;
  std::ifstream in(dir / "again.json");
  nlohmann::json j = nlohmann::json::parse(in);
  EXPECT_GE(j["epochs"][0]["cache"]["hits"].get<int>(), 20) << j["epochs"][0]["cache"];
  EXPECT_EQ(j["epochs"][0]["cache"]["hits"].get<int>() +
                j["epochs"][0]["cache"]["misses"].get<int>(),
            30);
  EXPECT_EQ(j["epochs"][0]["skipped"]["count"], 0);

  CliRun off = Flowfeed("bench " + cfg + " --set cache.mode=off --report " + dir / "off.json");
  ASSERT_EQ(off.code, 0) << off.output;
  EXPECT_EQ(ReadReportDigest(dir / "again.json"), ReadReportDigest(dir / "off.json"));
}

}  // namespace
}  // namespace flowfeed


namespace flowfeed {
namespace {

// A disk cache on a file system that fills up mid-epoch: the disk store switches itself off
// with a warning naming the path, the run finishes, and the batches are those of a run without
// any cache.
TEST(Cli, FullDiskDisablesTheDiskCacheAndTheRunGoesOn) {
  TempDir dir;
  const std::string small = dir / "small";
  std::filesystem::create_directories(small);
  if (::mount("tmpfs", small.c_str(), "tmpfs", 0, "size=160k") != 0)
    GTEST_SKIP() << "cannot mount a small tmpfs here (" << std::strerror(errno)
                 << "; needs root): the full-disk path is covered by CacheFailure.* instead";
  struct Unmount {
    std::string path;
    ~Unmount() { ::umount2(path.c_str(), MNT_DETACH); }
  } unmount{small};

  test::MakeImageFolder(dir / "photos", 3, 10);  // 30 images of 40-80 px: ~270 KiB decoded
  test::WriteText(dir / "c.yaml",
                  "source: {type: image_folder, root: " + dir / "photos" + "}\n"
                  "epochs: 2\n"
                  "pipeline:\n"
                  "  - {type: decode}\n"
                  "  - {type: random_resized_crop, size: 24}\n"
                  "batch: {size: 4}\n"
                  "cache: {mode: disk, after: decode, path: " + small + "/cache}\n");
  CliRun full = Flowfeed("bench " + dir / "c.yaml" + " --report " + dir / "full.json");
  ASSERT_EQ(full.code, 0) << full.output;
  EXPECT_NE(full.output.find("disk cache disabled"), std::string::npos) << full.output;
  EXPECT_NE(full.output.find("No space left on device"), std::string::npos) << full.output;
  EXPECT_NE(full.output.find(small), std::string::npos) << full.output;
  std::ifstream in(dir / "full.json");
  nlohmann::json j = nlohmann::json::parse(in);
  EXPECT_TRUE(j["cache"]["disk_disabled"].get<bool>());
  EXPECT_EQ(j["epochs"][1]["samples"], 30);

  // The same batches as without a cache, where the decoder decodes only each crop's region.
  CliRun off = Flowfeed("bench " + dir / "c.yaml" + " --set cache.mode=off --report " +
                        dir / "off.json");
  ASSERT_EQ(off.code, 0) << off.output;
  std::ifstream in_off(dir / "off.json");
  nlohmann::json k = nlohmann::json::parse(in_off);
  for (int e = 0; e < 2; ++e) EXPECT_EQ(j["epochs"][e]["batch_digest"], k["epochs"][e]["batch_digest"]);
}

}  // namespace
}  // namespace flowfeed

namespace flowfeed {
namespace {

TEST(Cli, TraceIsChromeTraceEventJson) {
  TempDir dir;
  std::string cfg = IdxConfig(dir);
  CliRun r = Flowfeed("bench " + cfg + " --trace " + dir / "t.json");
  ASSERT_EQ(r.code, 0) << r.output;
  std::ifstream in(dir / "t.json");
  nlohmann::json j = nlohmann::json::parse(in);
  ASSERT_TRUE(j.contains("traceEvents"));
  std::map<std::string, int> names;
  std::set<std::string> tracks;
  for (const auto& e : j["traceEvents"]) {
    if (e["ph"] == "M") {
      tracks.insert(e["args"]["name"].get<std::string>());
      continue;
    }
    EXPECT_EQ(e["ph"], "X");
    EXPECT_GE(e["ts"].get<double>(), 0);
    EXPECT_GE(e["dur"].get<double>(), 0);
    ++names[e["name"].get<std::string>()];
  }
  // 100 samples x 2 epochs, every one traced at this size.
  EXPECT_EQ(names["read"], 200);
  EXPECT_EQ(names["normalize"], 200);
  EXPECT_GT(names["wait for batch"], 0);
  EXPECT_TRUE(tracks.count("consumer"));
  EXPECT_TRUE(tracks.count("worker 0") || tracks.count("worker 1"));
}

}  // namespace
}  // namespace flowfeed

namespace flowfeed {
namespace {

// `flowfeed dataset` refuses bad usage with exit 2 before writing anything.
TEST(Cli, DatasetRefusesBadUsage) {
  TempDir dir;
  const std::string out = " --out " + dir / "out";
  for (const std::string& args : std::vector<std::string>{
           "dataset", "dataset photos", "dataset photos" + out + " --quality 0",
           "dataset photos" + out + " --val-fraction 1", "dataset photos" + out + " --seed -1",
           "dataset photos" + out + " --seed 99999999999999999999", "dataset photos --out ''",
           "dataset photos" + out + " --bogus", "dataset shards" + out,
           "dataset shards --from " + dir.path() + out + " --per-shard 0",
           "dataset fashion-mnist --from ''"}) {
    CliRun r = Flowfeed(args);
    EXPECT_EQ(r.code, 2) << args << "\n" << r.output;
  }
  EXPECT_FALSE(std::filesystem::exists(dir / "out"));
  CliRun sides = Flowfeed("dataset photos" + out + " --min-side 400 --max-side 300");
  EXPECT_EQ(sides.code, 2) << sides.output;
  EXPECT_NE(sides.output.find("--min-side (400) is larger than --max-side (300)"),
            std::string::npos)
      << sides.output;
  CliRun typo = Flowfeed("dataset photo --out " + dir / "out");
  EXPECT_EQ(typo.code, 2) << typo.output;
  EXPECT_NE(typo.output.find("flowfeed dataset: unknown command 'photo'; did you mean 'photos'?"),
            std::string::npos)
      << typo.output;
}

TEST(Cli, DatasetHelpListsEachCommandsOptions) {
  CliRun r = Flowfeed("dataset --help");
  ASSERT_EQ(r.code, 0) << r.output;
  for (const char* word : {"photos", "shards", "fashion-mnist"})
    EXPECT_NE(r.output.find(word), std::string::npos) << word << "\n" << r.output;
  r = Flowfeed("dataset photos --help");
  ASSERT_EQ(r.code, 0) << r.output;
  for (const char* word : {"--out", "--count", "--seed", "--source", "--quality", "--min-side",
                           "--max-side", "--val-fraction", "--threads", "--overwrite"})
    EXPECT_NE(r.output.find(word), std::string::npos) << word << "\n" << r.output;
}

TEST(Cli, DatasetPhotosTakesItsOptions) {
  TempDir dir;
  test::WriteJpeg(dir / "src/harbour.jpg", test::PatternImage(200, 300, 3, 1));
  test::WriteJpeg(dir / "src/hills.jpg", test::PatternImage(220, 280, 3, 2));
  CliRun r = Flowfeed("dataset photos --source " + dir / "src" + " --out " + dir / "out" +
                      " --count 8 --seed 3 --quality 80 --min-side 32 --max-side 48"
                      " --val-fraction 0.5 --threads 1");
  ASSERT_EQ(r.code, 0) << r.output;
  int train = 0, val = 0;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir / "out")) {
    if (e.path().extension() != ".jpg") continue;
    const std::string p = e.path().string();
    (p.find("/out/train/") != std::string::npos ? train : val) += 1;
  }
  EXPECT_EQ(train + val, 8);
  EXPECT_GT(val, 0);
  EXPECT_GT(train, 0);
}

TEST(Cli, DatasetShardsWritesTheFolderAsShards) {
  TempDir dir;
  test::MakeImageFolder(dir / "images", 2, 3);
  CliRun r = Flowfeed("dataset shards --from " + dir / "images" + " --out " + dir / "shards" +
                      " --per-shard 4 --prefix part --seed 5 --no-shuffle");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("6 samples, 2 classes"), std::string::npos) << r.output;
  EXPECT_TRUE(std::filesystem::exists(dir / "shards/part-000000.tar"));
  EXPECT_TRUE(std::filesystem::exists(dir / "shards/part-000001.tar"));
  EXPECT_FALSE(std::filesystem::exists(dir / "shards/part-000002.tar"));
  // A non-empty folder is refused (a failure of the work, not of usage) unless --overwrite.
  r = Flowfeed("dataset shards --from " + dir / "images" + " --out " + dir / "shards");
  EXPECT_EQ(r.code, 1) << r.output;
  r = Flowfeed("dataset shards --from " + dir / "images" + " --out " + dir / "shards" +
               " --overwrite");
  EXPECT_EQ(r.code, 0) << r.output;
}

// What each rank of `flowfeed launch` sees, one line per rank.
const char* kPrintRank =
    "sh -c 'echo \"R=$RANK L=$LOCAL_RANK W=$WORLD_SIZE LW=$LOCAL_WORLD_SIZE "
    "A=$MASTER_ADDR P=$MASTER_PORT\"'";

TEST(Cli, LaunchSetsTheRankVariables) {
  CliRun r = Flowfeed(
      "launch --nproc 2 --nnodes 2 --node-rank 1 --master-addr 10.1.2.3 "
      "--master-port 1234 --grace 5 -- " +
      std::string(kPrintRank));
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("R=2 L=0 W=4 LW=2 A=10.1.2.3 P=1234"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("R=3 L=1 W=4 LW=2 A=10.1.2.3 P=1234"), std::string::npos) << r.output;
  CliRun defaults = Flowfeed("launch -- " + std::string(kPrintRank));
  ASSERT_EQ(defaults.code, 0) << defaults.output;
  EXPECT_NE(defaults.output.find("R=1 L=1 W=2 LW=2 A=127.0.0.1 P=29500"), std::string::npos)
      << defaults.output;
}

// Everything after `--` is the command's, words that look like the launcher's options included.
TEST(Cli, LaunchPassesTheCommandsArgumentsUntouched) {
  CliRun r = Flowfeed(
      "launch --nproc 1 -- sh -c 'printf \"[%s]\" \"$@\"' sh --nproc 5 -h -- "
      "--help --master-port=1");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("[--nproc][5][-h][--][--help][--master-port=1]"), std::string::npos)
      << r.output;
}

// torchrun's spellings of the options, and its command without `--`.
TEST(Cli, LaunchTakesTorchrunsSpellings) {
  for (const char* options :
       {"--nproc_per_node 2 --nnodes=2 --node_rank 1 --master_addr 10.1.2.3 --master_port=1234",
        "--nproc-per-node=2 --nnodes 2 --node-rank=1 --master-addr=10.1.2.3 --master-port 1234"}) {
    CliRun r = Flowfeed(std::string("launch ") + options + " -- " + kPrintRank);
    ASSERT_EQ(r.code, 0) << options << "\n" << r.output;
    EXPECT_NE(r.output.find("R=2 L=0 W=4 LW=2 A=10.1.2.3 P=1234"), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("R=3 L=1 W=4 LW=2 A=10.1.2.3 P=1234"), std::string::npos) << r.output;
  }
  CliRun bare = Flowfeed("launch --nproc 1 sh -c 'printf \"[%s]\" \"$@\"' sh --nproc 5 -- -h");
  ASSERT_EQ(bare.code, 0) << bare.output;
  EXPECT_NE(bare.output.find("[--nproc][5][--][-h]"), std::string::npos) << bare.output;
}

// --standalone: one node, the rendezvous on loopback at a port the kernel says is free (from
// its ephemeral range, which leaves out 29500), the same for every rank.
TEST(Cli, LaunchStandalonePicksAFreeLocalPort) {
  CliRun r = Flowfeed("launch --standalone --nproc 2 -- " + std::string(kPrintRank));
  ASSERT_EQ(r.code, 0) << r.output;
  std::smatch m0, m1;
  const std::string out = r.output;
  ASSERT_TRUE(std::regex_search(out, m0, std::regex("R=0 L=0 W=2 LW=2 A=127\\.0\\.0\\.1 P=(\\d+)")))
      << out;
  ASSERT_TRUE(std::regex_search(out, m1, std::regex("R=1 L=1 W=2 LW=2 A=127\\.0\\.0\\.1 P=(\\d+)")))
      << out;
  EXPECT_EQ(m0[1].str(), m1[1].str());
  EXPECT_NE(m0[1].str(), "29500");
  EXPECT_NE(out.find("rendezvous 127.0.0.1:" + m0[1].str()), std::string::npos) << out;

  CliRun two = Flowfeed("launch --standalone --nnodes 2 -- true");
  EXPECT_EQ(two.code, 2) << two.output;
  EXPECT_NE(two.output.find("--standalone runs a single node; it cannot be combined with "
                            "--nnodes 2"),
            std::string::npos)
      << two.output;
  for (const char* args : {"launch --standalone --node-rank 1 -- true",
                           "launch --standalone --master-port 29501 -- true",
                           "launch --standalone --master_addr 10.0.0.1 -- true"}) {
    CliRun refused = Flowfeed(args);
    EXPECT_EQ(refused.code, 2) << args << "\n" << refused.output;
    EXPECT_NE(refused.output.find("--standalone"), std::string::npos) << refused.output;
  }
  CliRun one = Flowfeed("launch --standalone --nnodes 1 --nproc 1 -- true");
  EXPECT_EQ(one.code, 0) << one.output;
}

TEST(Cli, LaunchRefusesBadUsageAndReportsARanksFailure) {
  for (const char* args : {"launch", "launch --nproc 2", "launch --nproc 0 -- true",
                           "launch --nnodes 2 --node-rank 2 -- true",
                           "launch --master-port 70000 -- true", "launch --bogus -- true"}) {
    CliRun r = Flowfeed(args);
    EXPECT_EQ(r.code, 2) << args << "\n" << r.output;
  }
  CliRun failed = Flowfeed("launch --nproc 2 -- sh -c 'exit $((RANK + 3))'");
  EXPECT_TRUE(failed.code == 3 || failed.code == 4) << failed.output;
  EXPECT_NE(failed.output.find("exited with status"), std::string::npos) << failed.output;
  CliRun help = Flowfeed("launch --help");
  EXPECT_EQ(help.code, 0) << help.output;
  EXPECT_NE(help.output.find("--grace"), std::string::npos) << help.output;
}

}  // namespace
}  // namespace flowfeed
