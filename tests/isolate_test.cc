// isolate: process (options.h StageSpec, engine/src/isolate/): a stage run in worker processes.
// A crash, an exit() or a hang in the stage is an error for that one sample (skipped and named,
// or the run stops under on_error: fail), the worker is replaced and the run goes on; the output
// is byte-identical to the in-process stage's; the stage's own errors come back in its words;
// config mistakes name the key; no worker outlives the pipeline. The crashing stage is the test
// plugin tests/test_plugins/crash.cc, triggered by FLOWFEED_TEST_CRASH, which the workers
// inherit with the rest of the environment.
#include <dirent.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "flowfeed/config.h"
#include "flowfeed/pipeline.h"
#include "flowfeed/plugin.h"
#include "flowfeed/registry.h"
#include "test_util.h"

namespace flowfeed {
namespace {

using test::TempDir;

const std::string kCrashPlugin = FLOWFEED_TEST_PLUGIN_DIR "/crash.so";

// Sets an environment variable for the test's scope (the workers spawned meanwhile inherit it).
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const std::string& value) : name_(name) {
    ::setenv(name, value.c_str(), 1);
  }
  ~ScopedEnv() { ::unsetenv(name_); }

 private:
  const char* name_;
};

// The processes whose parent is this one (workers, zombies included).
std::vector<int> Children() {
  std::vector<int> out;
  DIR* d = ::opendir("/proc");
  while (dirent* e = d ? ::readdir(d) : nullptr) {
    const int pid = std::atoi(e->d_name);
    if (pid <= 0) continue;
    std::ifstream in("/proc/" + std::string(e->d_name) + "/stat");
    std::string stat;
    std::getline(in, stat);
    const size_t close = stat.rfind(')');
    if (close == std::string::npos) continue;
    char state = 0;
    int ppid = 0;
    if (std::sscanf(stat.c_str() + close + 1, " %c %d", &state, &ppid) == 2 && ppid == ::getpid())
      out.push_back(pid);
  }
  if (d) ::closedir(d);
  return out;
}

// How a worker that dereferences null ends: by the signal, or, in the ASan build, by ASan's own
// SEGV handler, which reports and exits with status 1.
const std::string kSegvEnd =
    test::kAddressSanitizer ? "worker exited with status 1" : "worker killed by SIGSEGV";

StageRegistry RegistryWith(const std::vector<std::string>& plugins) {
  StageRegistry reg;
  RegisterBuiltinStages(&reg);
  for (const std::string& p : plugins) {
    Result<LoadedPlugin> loaded = LoadPlugin(p, &reg);
    EXPECT_TRUE(loaded.ok()) << loaded.status().ToString();
  }
  return reg;
}

StageSpec Stage(const std::string& type, const std::string& isolate = "none") {
  StageSpec s;
  s.type = type;
  s.name = type;
  s.isolate = isolate;
  return s;
}

// 30 photos in a file list, decoded and cropped, the crash stage between: `skip` leaves out one
// file (the list a run without that sample reads).
struct Photos {
  explicit Photos(const TempDir& dir) : dir(dir) {
    test::MakeImageFolder(dir / "photos", 2, 15);
    for (const auto& e : std::filesystem::recursive_directory_iterator(dir / "photos"))
      if (e.is_regular_file()) files.push_back(e.path().string());
    std::sort(files.begin(), files.end());
  }
  PipelineOptions Options(const std::string& isolate, int skip = -1) const {
    std::string list;
    for (size_t i = 0; i < files.size(); ++i)
      if (int(i) != skip) list += files[i] + "," + std::to_string(i % 2) + "\n";
    const std::string path = dir / ("list" + std::to_string(skip) + ".csv");
    test::WriteText(path, list);
    PipelineOptions o;
    o.source.type = "file_list";
    o.source.list = path;
    o.source.root = "/";
    o.shuffle = false;
    o.threads = 2;
    o.epochs = 1;
    o.batch.size = 4;
    o.cache.mode = CacheMode::kOff;
    o.pipeline = {Stage("decode"), Stage("test_crash", isolate), Stage("center_crop")};
    o.pipeline[2].params.Set("size", std::vector<int64_t>{24, 24});
    return o;
  }
  const TempDir& dir;
  std::vector<std::string> files;
};

TEST(Isolate, ASegfaultingStageSkipsThatSampleAloneAndTheRunGoesOn) {
  TempDir dir;
  Photos photos(dir);
  StageRegistry reg = RegistryWith({kCrashPlugin});
  test::EpochsRun crashed;
  {
    ScopedEnv crash("FLOWFEED_TEST_CRASH", "segv:7");
    crashed = test::RunEpochs(photos.Options("process"), &reg);
  }
  ASSERT_TRUE(crashed.status.ok()) << crashed.status.ToString();
  const EpochStats& e = crashed.stats.epochs.at(0);
  ASSERT_EQ(e.skipped.size(), 1u);
  EXPECT_EQ(e.skipped[0].index, 7);
  EXPECT_EQ(e.skipped[0].source, photos.files[7]);
  EXPECT_EQ(e.skipped[0].stage, "test_crash");
  EXPECT_NE(e.skipped[0].reason.find("isolated stage 'test_crash' (plugin " + kCrashPlugin + ")"),
            std::string::npos) << e.skipped[0].reason;
  EXPECT_NE(e.skipped[0].reason.find("sample 7 (" + photos.files[7] + ")"), std::string::npos);
  EXPECT_NE(e.skipped[0].reason.find(kSegvEnd), std::string::npos)
      << e.skipped[0].reason;
  EXPECT_EQ(e.samples, 29);
  // Every other sample went through the replaced worker as a run without sample 7 gives it.
  const test::EpochsRun without = test::RunEpochs(photos.Options("none", 7), &reg);
  ASSERT_TRUE(without.status.ok()) << without.status.ToString();
  EXPECT_EQ(crashed.digests, without.digests);
}

TEST(Isolate, ExitOrAbortInTheStageIsAnErrorForThatSample) {
  TempDir dir;
  Photos photos(dir);
  StageRegistry reg = RegistryWith({kCrashPlugin});
  for (const auto& [mode, cause] : {std::pair<std::string, std::string>{"exit", "worker exited with status 0"},
                                    {"abort", "worker killed by SIGABRT"}}) {
    ScopedEnv crash("FLOWFEED_TEST_CRASH", mode + ":3");
    const test::EpochsRun run = test::RunEpochs(photos.Options("process"), &reg);
    ASSERT_TRUE(run.status.ok()) << run.status.ToString();
    ASSERT_EQ(run.stats.epochs.at(0).skipped.size(), 1u) << mode;
    EXPECT_EQ(run.stats.epochs[0].skipped[0].index, 3);
    EXPECT_NE(run.stats.epochs[0].skipped[0].reason.find(cause), std::string::npos)
        << run.stats.epochs[0].skipped[0].reason;
  }
}

TEST(Isolate, AStageStuckPastTimeoutIsSkippedAndItsWorkerReplaced) {
  TempDir dir;
  Photos photos(dir);
  StageRegistry reg = RegistryWith({kCrashPlugin});
  PipelineOptions o = photos.Options("process");
  o.pipeline[1].timeout_ms = 300;
  ScopedEnv crash("FLOWFEED_TEST_CRASH", "loop:5");
  const test::EpochsRun run = test::RunEpochs(o, &reg);
  ASSERT_TRUE(run.status.ok()) << run.status.ToString();
  const EpochStats& e = run.stats.epochs.at(0);
  ASSERT_EQ(e.skipped.size(), 1u);
  EXPECT_EQ(e.skipped[0].index, 5);
  EXPECT_NE(e.skipped[0].reason.find("no answer within 300 ms (timeout_ms); worker killed"),
            std::string::npos) << e.skipped[0].reason;
  EXPECT_EQ(e.samples, 29);  // the samples after it went through a new worker
}

TEST(Isolate, OnErrorFailStopsTheRunNamingTheCrash) {
  TempDir dir;
  Photos photos(dir);
  StageRegistry reg = RegistryWith({kCrashPlugin});
  PipelineOptions o = photos.Options("process");
  o.pipeline[1].on_error = OnError::kFail;
  ScopedEnv crash("FLOWFEED_TEST_CRASH", "segv:7");
  const test::EpochsRun run = test::RunEpochs(o, &reg);
  ASSERT_FALSE(run.status.ok());
  EXPECT_NE(run.status.message().find("stage 'test_crash' failed on"), std::string::npos)
      << run.status.ToString();
  EXPECT_NE(run.status.message().find(kSegvEnd), std::string::npos)
      << run.status.ToString();
}

TEST(Isolate, TheCommandLineFailsWithTheMessageUnderOnErrorFail) {
  TempDir dir;
  Photos photos(dir);
  std::string list;
  for (size_t i = 0; i < photos.files.size(); ++i) list += photos.files[i] + ",0\n";
  test::WriteText(dir / "list.csv", list);
  test::WriteText(dir / "c.yaml",
                  "source: {type: file_list, list: " + dir / "list.csv" + ", root: /}\n"
                  "shuffle: false\nthreads: 2\ncache: {mode: off}\n"
                  "plugins: [" + kCrashPlugin + "]\n"
                  "pipeline:\n"
                  "  - {type: decode}\n"
                  "  - {type: test_crash, isolate: process, on_error: fail}\n"
                  "  - {type: center_crop, size: 24}\n"
                  "batch: {size: 4}\n");
  const test::ShellRun run = test::Shell("FLOWFEED_TEST_CRASH=segv:7 " +
                                         std::string(FLOWFEED_BINARY) + " bench " + dir / "c.yaml");
  EXPECT_EQ(run.code, 1) << run.output;
  EXPECT_NE(run.output.find(kSegvEnd), std::string::npos) << run.output;
  EXPECT_NE(run.output.find(photos.files[7]), std::string::npos) << run.output;
  EXPECT_EQ(run.output.find("fatal signal"), std::string::npos) << run.output;  // the host lived
}

// The worker draws from the same StageContext: a random stage's batches are the same bytes.
TEST(Isolate, ARandomPluginStageGivesTheSameBytesIsolatedOrNot) {
#ifndef FLOWFEED_PLUGIN_DIR
  GTEST_SKIP() << "no example plugins in this build";
#else
  TempDir dir;
  StageRegistry reg = RegistryWith({FLOWFEED_PLUGIN_DIR "/cutout.so",
                                    FLOWFEED_PLUGIN_DIR "/color_jitter.so"});
  PipelineOptions o = test::IdxOptions(dir, 40, 12, 10);
  o.pipeline = {Stage("color_jitter"), Stage("cutout")};
  const test::EpochsRun inside = test::RunEpochs(o, &reg);
  ASSERT_TRUE(inside.status.ok()) << inside.status.ToString();
  for (StageSpec& s : o.pipeline) s.isolate = "process";
  const test::EpochsRun isolated = test::RunEpochs(o, &reg);
  ASSERT_TRUE(isolated.status.ok()) << isolated.status.ToString();
  ASSERT_EQ(inside.digests.size(), 2u);
  EXPECT_NE(inside.digests[0], inside.digests[1]);  // the stages really draw
  EXPECT_EQ(isolated.digests, inside.digests);
#endif
}

// test_flaky throws on every fifth sample: the same reasons, isolated or not.
TEST(Isolate, TheStagesOwnErrorsComeBackInItsWords) {
  TempDir dir;
  StageRegistry reg = RegistryWith({FLOWFEED_TEST_PLUGIN_DIR "/flaky.so"});
  PipelineOptions o = test::IdxOptions(dir, 20);
  o.epochs = 1;
  o.shuffle = false;
  o.pipeline = {Stage("test_flaky")};
  const test::EpochsRun inside = test::RunEpochs(o, &reg);
  o.pipeline[0].isolate = "process";
  const test::EpochsRun isolated = test::RunEpochs(o, &reg);
  ASSERT_TRUE(inside.status.ok() && isolated.status.ok()) << isolated.status.ToString();
  ASSERT_EQ(isolated.stats.epochs[0].skipped.size(), 4u);
  ASSERT_EQ(inside.stats.epochs[0].skipped.size(), 4u);
  std::vector<std::string> a, b;
  for (const auto& s : inside.stats.epochs[0].skipped) a.push_back(s.reason);
  for (const auto& s : isolated.stats.epochs[0].skipped) b.push_back(s.reason);
  std::sort(a.begin(), a.end());
  std::sort(b.begin(), b.end());
  EXPECT_EQ(a, b);
  EXPECT_NE(b[0].find("flaky plugin exploded"), std::string::npos) << b[0];
  EXPECT_EQ(inside.digests, isolated.digests);
}

TEST(Isolate, ConfigMistakesNameTheKey) {
  StageRegistry reg = RegistryWith({});
  const std::string head = "source: {type: idx, root: data, images: a, labels: b}\npipeline:\n";
  struct Case {
    std::string entry, expect;
  };
  for (const Case& c : std::vector<Case>{
           {"  - {type: normalize, isolate: thread}\n",
            "c.yaml:3:32: pipeline[0] (normalize).isolate: expected one of none, process, got \"thread\""},
           {"  - {type: normalize, timeout_ms: 500}\n",
            "c.yaml:3:35: pipeline[0] (normalize).timeout_ms: timeout_ms needs isolate: process"},
           {"  - {type: normalize, isolate: process, timeout_ms: 0}\n",
            "c.yaml:3:53: pipeline[0] (normalize).timeout_ms: expected an integer in [1, 604800000]"},
       }) {
    Result<PipelineOptions> r = ParseConfig(head + c.entry, "c.yaml", {}, reg);
    ASSERT_FALSE(r.ok()) << c.entry;
    EXPECT_NE(r.status().message().find(c.expect), std::string::npos) << r.status().message();
  }
  Result<PipelineOptions> ok =
      ParseConfig(head + "  - {type: normalize, isolate: process, timeout_ms: 500}\n", "c.yaml",
                  {}, reg);
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_EQ(ok->pipeline[0].isolate, "process");
  EXPECT_EQ(ok->pipeline[0].timeout_ms, 500);
  // Options built in code are checked by Pipeline::Open's Validate.
  PipelineOptions code = ok.value();
  code.pipeline[0].isolate = "none";
  EXPECT_NE(Validate(code).message().find("pipeline[0].timeout_ms needs isolate: process"),
            std::string::npos) << Validate(code).ToString();
}

// A worker runs code that is not trusted: a result header claiming a 1 GiB image the worker
// never wrote is refused (that sample skipped, the worker replaced), not allocated and copied.
TEST(Isolate, AWorkerThatLiesAboutItsResultIsRefused) {
  TempDir dir;
  PipelineOptions o = test::IdxOptions(dir, 8);
  o.pipeline = {Stage("random_horizontal_flip", "process")};
  ScopedEnv worker("FLOWFEED_STAGE_WORKER", FLOWFEED_TEST_LYING_WORKER);
  ScopedEnv lie("FLOWFEED_TEST_LIE", "3");
  const test::EpochsRun run = test::RunEpochs(o);
  ASSERT_TRUE(run.status.ok()) << run.status.ToString();
  const EpochStats& e = run.stats.epochs.at(0);
  ASSERT_EQ(e.skipped.size(), 1u);
  EXPECT_EQ(e.skipped[0].index, 3);
  EXPECT_NE(e.skipped[0].reason.find("the stage worker sent an invalid result: 1073741824 pixel "
                                     "bytes beyond the shared memory's"),
            std::string::npos) << e.skipped[0].reason;
  EXPECT_NE(e.skipped[0].reason.find("worker killed by SIGKILL"), std::string::npos)
      << e.skipped[0].reason;
  EXPECT_EQ(e.samples, 7);
}

TEST(Isolate, AMissingWorkerProgramIsAClearErrorAtOpen) {
  TempDir dir;
  PipelineOptions o = test::IdxOptions(dir, 8);
  o.pipeline = {Stage("random_horizontal_flip", "process")};
  ScopedEnv env("FLOWFEED_STAGE_WORKER", dir / "no-such-worker");
  const test::EpochsRun run = test::RunEpochs(o);
  ASSERT_FALSE(run.status.ok());
  EXPECT_NE(run.status.message().find("pipeline[0] (random_horizontal_flip): isolated stage "
                                      "'random_horizontal_flip': FLOWFEED_STAGE_WORKER=" +
                                      dir / "no-such-worker" + " is not an executable file"),
            std::string::npos) << run.status.ToString();
}

TEST(Isolate, AWorkerThatCannotBuildTheStageFailsOpenNamingThePlugin) {
  TempDir dir;
  Photos photos(dir);
  StageRegistry reg = RegistryWith({kCrashPlugin});
  test::WriteText(dir / "gate", "");
  ScopedEnv gate("FLOWFEED_TEST_CRASH_BUILD", dir / "gate");
  const test::EpochsRun run = test::RunEpochs(photos.Options("process"), &reg);
  ASSERT_FALSE(run.status.ok());
  EXPECT_NE(run.status.message().find("isolated stage 'test_crash' (plugin " + kCrashPlugin +
                                      "): stage worker"),
            std::string::npos) << run.status.ToString();
  EXPECT_NE(run.status.message().find("while starting: worker killed by SIGABRT"),
            std::string::npos) << run.status.ToString();
  EXPECT_TRUE(Children().empty());
}

// Workers that die before serving anything, again and again, stop the run even under
// on_error: skip, rather than failing every later sample the same way.
TEST(Isolate, WorkersThatKeepFailingToStartStopTheRun) {
  TempDir dir;
  Photos photos(dir);
  StageRegistry reg = RegistryWith({kCrashPlugin});
  ScopedEnv gate("FLOWFEED_TEST_CRASH_BUILD", dir / "gate");
  ScopedEnv crash("FLOWFEED_TEST_CRASH", "segv:4");
  PipelineOptions o = photos.Options("process");
  o.threads = 1;  // one worker: sample 4's crash makes every later sample start a new one
  o.max_skipped.fraction = 1;  // no skip budget: only the failing starts may stop the run
  Result<std::unique_ptr<Pipeline>> p = Pipeline::Open(o, reg);
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  test::WriteText(dir / "gate", "");  // from now on a worker aborts while building the stage
  Status st;
  for (BatchPtr b;;) {
    st = p.value()->Next(&b);
    if (!st.ok() || !b) break;
  }
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("which stops the run: isolated stage 'test_crash'"),
            std::string::npos) << st.ToString();
  EXPECT_NE(st.message().find("cannot start a worker"), std::string::npos) << st.ToString();
  EXPECT_NE(st.message().find("worker killed by SIGABRT"), std::string::npos) << st.ToString();
}

TEST(Isolate, NoWorkerOutlivesThePipeline) {
  TempDir dir;
  PipelineOptions o = test::IdxOptions(dir, 64);
  o.threads = 2;
  o.pipeline = {Stage("random_horizontal_flip", "process")};
  StageRegistry reg = RegistryWith({});
  {
    Result<std::unique_ptr<Pipeline>> p = Pipeline::Open(o, reg);
    ASSERT_TRUE(p.ok()) << p.status().ToString();
    BatchPtr b;
    ASSERT_TRUE(p.value()->Next(&b).ok());
    EXPECT_FALSE(Children().empty());  // workers serve it
    // Closed mid-epoch, with samples in flight.
  }
  EXPECT_TRUE(Children().empty());
}

}  // namespace
}  // namespace flowfeed
