// The crash report (flowfeed/crash_report.h) against the flowfeed binary: a plugin stage that
// dereferences a null pointer, overflows its stack or calls exit(0) on one sample. The process
// must say which stage, plugin file and sample, still end by the signal (or fail with 70 for
// exit()), and leave a disk cache that the next run reuses safely. The crashing stage is the
// test plugin tests/test_plugins/crash.cc, triggered by FLOWFEED_TEST_CRASH so that the config
// (and the cache's fingerprint) is the same in the crashing run and the rerun.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "flowfeed/crash_report.h"
#include "flowfeed/pipeline.h"
#include "flowfeed/registry.h"
#include "test_util.h"

extern char** environ;

namespace flowfeed {
namespace {

using test::TempDir;

struct Exit {
  int status = 0;
  std::string err;  // stdout and stderr
  bool Signaled(int sig) const { return WIFSIGNALED(status) && WTERMSIG(status) == sig; }
  int Code() const { return WIFEXITED(status) ? WEXITSTATUS(status) : -1; }
};

// Runs `flowfeed args...` with FLOWFEED_TEST_CRASH=`crash` (unset when empty) and waits for it.
Exit RunFlowfeed(const std::vector<std::string>& args, const std::string& crash,
                 const std::string& log) {
  std::vector<std::string> all = {FLOWFEED_BINARY};
  all.insert(all.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& a : all) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<std::string> env_strings;
  for (char** e = environ; *e; ++e)
    if (std::string(*e).rfind("FLOWFEED_TEST_CRASH=", 0) != 0) env_strings.push_back(*e);
  if (!crash.empty()) env_strings.push_back("FLOWFEED_TEST_CRASH=" + crash);
  std::vector<char*> envp;
  for (std::string& e : env_strings) envp.push_back(e.data());
  envp.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  pid_t pid;
  Exit r;
  const bool started =
      posix_spawn(&pid, all[0].c_str(), &actions, nullptr, argv.data(), envp.data()) == 0;
  posix_spawn_file_actions_destroy(&actions);
  if (!started) return r;
  waitpid(pid, &r.status, 0);
  r.err = test::ReadText(log);
  return r;
}

// 30 photos in a file list (index i is line i, so the test knows each sample's path), a disk
// cache after center_crop, and the crash plugin between decode and center_crop.
struct CrashSetup {
  explicit CrashSetup(const TempDir& dir) {
    test::MakeImageFolder(dir / "photos", 2, 15);
    for (const auto& e : std::filesystem::recursive_directory_iterator(dir / "photos"))
      if (e.is_regular_file()) files.push_back(e.path().string());
    std::sort(files.begin(), files.end());
    std::string list;
    for (size_t i = 0; i < files.size(); ++i)
      list += files[i] + "," + std::to_string(i % 2) + "\n";
    test::WriteText(dir / "list.csv", list);
    plugin = FLOWFEED_TEST_PLUGIN_DIR "/crash.so";
    config = dir / "c.yaml";
    test::WriteText(config,
                    "source: {type: file_list, list: " + dir / "list.csv" + ", root: /}\n"
                    "shuffle: false\n"
                    "threads: 2\n"
                    "plugins: [" + plugin + "]\n"
                    "pipeline:\n"
                    "  - {type: decode}\n"
                    "  - {type: test_crash}\n"
                    "  - {type: center_crop, size: 24}\n"
                    "  - {type: random_horizontal_flip}\n"
                    "batch: {size: 4}\n"
                    "cache: {mode: disk, after: center_crop, path: " + dir / "cache" +
                    ", commit_seconds: 0.01}\n");
  }
  // What the line of the thread that ran the stage on `sample` says.
  std::string Named(int sample) const {
    return "stage 'test_crash' (type test_crash, plugin " + plugin + ") on sample " +
           std::to_string(sample) + " (" + files[size_t(sample)] + "), epoch 1";
  }
  std::vector<std::string> files;
  std::string plugin, config;
};

std::string ReportDigest(const std::string& path) {
  std::ifstream in(path);
  nlohmann::json j = nlohmann::json::parse(in);
  return j["epochs"][0]["batch_digest"].get<std::string>();
}

// The line of the thread that `note` marks (e.g. "got SIGSEGV"), or "".
std::string LineMarked(const std::string& text, const std::string& note) {
  const size_t at = text.find("(" + note + ")");
  if (at == std::string::npos) return "";
  const size_t begin = text.rfind('\n', at) + 1;
  return text.substr(begin, text.find('\n', at) - begin);
}

// Finding 1 of issue 21: the run died with 139, nothing on stderr, and a disk cache nobody
// knew whether to trust.
TEST(CrashReport, ASegfaultingPluginIsNamedAndItsCacheIsReusedSafely) {
  TempDir dir;
  CrashSetup setup(dir);
  const int victim = 17;
  Exit crashed = RunFlowfeed({"bench", setup.config, "--report", dir / "crashed.json"},
                             "segv:" + std::to_string(victim), dir / "crashed.log");
  ASSERT_TRUE(crashed.Signaled(SIGSEGV)) << "status " << crashed.status << "\n" << crashed.err;
  EXPECT_NE(crashed.err.find("flowfeed: fatal signal SIGSEGV in thread "), std::string::npos)
      << crashed.err;
  EXPECT_NE(LineMarked(crashed.err, "got SIGSEGV").find(setup.Named(victim)), std::string::npos)
      << crashed.err;
  EXPECT_FALSE(std::filesystem::exists(dir / "crashed.json"));

  // The rerun, same config, no trigger: it opens what the crash left and its batches are those
  // of a run without any cache.
  Exit again = RunFlowfeed({"bench", setup.config, "--report", dir / "again.json"}, "",
                           dir / "again.log");
  ASSERT_EQ(again.Code(), 0) << again.err;
  Exit clean = RunFlowfeed(
      {"bench", setup.config, "--set", "cache.mode=off", "--report", dir / "clean.json"}, "",
      dir / "clean.log");
  ASSERT_EQ(clean.Code(), 0) << clean.err;
  EXPECT_EQ(ReportDigest(dir / "again.json"), ReportDigest(dir / "clean.json"));
  // And a third run served from the cache the rerun completed.
  Exit cached = RunFlowfeed({"bench", setup.config, "--report", dir / "cached.json"}, "",
                            dir / "cached.log");
  ASSERT_EQ(cached.Code(), 0) << cached.err;
  EXPECT_EQ(ReportDigest(dir / "cached.json"), ReportDigest(dir / "clean.json"));
}

// A stack overflow is a SIGSEGV with no stack left: the handler runs on the thread's alternate
// signal stack. abort() (a failed assert in a plugin) is SIGABRT. Each is named, and the process
// ends by its signal.
TEST(CrashReport, AStackOverflowOrAnAbortInAPluginIsNamedToo) {
  struct Case {
    const char* trigger;
    int sample, signal;
    const char* note;
  };
  for (const Case& c : {Case{"overflow", 5, SIGSEGV, "got SIGSEGV"},
                        Case{"abort", 3, SIGABRT, "got SIGABRT"}}) {
    SCOPED_TRACE(c.trigger);
    TempDir dir;
    CrashSetup setup(dir);
    Exit crashed = RunFlowfeed({"bench", setup.config},
                               std::string(c.trigger) + ":" + std::to_string(c.sample),
                               dir / "crashed.log");
    ASSERT_TRUE(crashed.Signaled(c.signal)) << "status " << crashed.status << "\n" << crashed.err;
    EXPECT_NE(LineMarked(crashed.err, c.note).find(setup.Named(c.sample)), std::string::npos)
        << crashed.err;
  }
}

// Finding 2 of issue 21: exit(0) in a stage made a broken run look finished.
TEST(CrashReport, ExitFromAStageFailsTheRunNamingIt) {
  TempDir dir;
  CrashSetup setup(dir);
  Exit exited = RunFlowfeed({"bench", setup.config, "--report", dir / "r.json"}, "exit:9",
                            dir / "exited.log");
  ASSERT_EQ(exited.Code(), kExitCalledFromStage) << "status " << exited.status << "\n"
                                                 << exited.err;
  EXPECT_NE(exited.err.find("flowfeed: error: exit() was called inside a stage"),
            std::string::npos)
      << exited.err;
  EXPECT_NE(LineMarked(exited.err, "called exit()").find(setup.Named(9)), std::string::npos)
      << exited.err;
  EXPECT_FALSE(std::filesystem::exists(dir / "r.json"));
}

// A stage that never returns is not "a read stuck in storage": when a stopped run gives up on
// its threads, it says what each was doing, the looping stage and its sample included.
TEST(CrashReport, AStageStuckInALoopIsNamedWhenTheRunGivesUpOnIt) {
  TempDir dir;
  CrashSetup setup(dir);
  // SIGTERM a second after the run has started (on a loaded machine that takes a while); the
  // run then waits kTearDownSeconds (10 s) for its threads.
  const std::string log = dir / "log";
  const test::ShellRun r = test::Shell(
      "bash -c 'FLOWFEED_TEST_CRASH=loop:5 " + std::string(FLOWFEED_BINARY) + " bench " +
      setup.config + " > " + log + " 2>&1 & pid=$!; for i in $(seq 600); do grep -q \"flowfeed bench\" " +
      log + " && break; sleep 0.1; done; sleep 1; kill -TERM $pid; wait $pid; echo rc=$?'; cat " +
      log);
  EXPECT_NE(r.output.find("rc=" + std::to_string(128 + SIGTERM)), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("did not finish within 10 s"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("stuck in storage"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find(setup.Named(5)), std::string::npos) << r.output;
}

// A stage that waits on sample 3 until the test has looked.
class Gate : public Stage {
 public:
  struct Shared {
    std::mutex mu;
    std::condition_variable cv;
    bool entered = false, open = false;
  };
  explicit Gate(Shared* shared) : shared_(shared) {}
  Status Process(Sample& s, const StageContext&) override {
    if (s.index != 3) return {};
    std::unique_lock<std::mutex> lock(shared_->mu);
    shared_->entered = true;
    shared_->cv.notify_all();
    shared_->cv.wait(lock, [&] { return shared_->open; });
    return {};
  }

 private:
  Shared* shared_;
};

// The library's entry point: what WritePipelineActivity writes while a stage is busy names the
// stage and the sample, without any signal.
TEST(CrashReport, WritePipelineActivityNamesTheBusyStageAndSample) {
  TempDir dir;
  Gate::Shared shared;
  StageRegistry registry;
  RegisterBuiltinStages(&registry);
  StageInfo info;
  info.name = "gate";
  info.factory = [&shared](const StageParams&) -> Result<std::unique_ptr<Stage>> {
    return std::unique_ptr<Stage>(new Gate(&shared));
  };
  ASSERT_TRUE(registry.Register(std::move(info)).ok());
  PipelineOptions o = test::IdxOptions(dir, 16, 4, 4);
  o.epochs = 1;
  StageSpec gate;
  gate.type = "gate";
  o.pipeline.push_back(gate);
  auto opened = Pipeline::Open(o, registry);
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  std::unique_ptr<Pipeline> pipeline = std::move(opened.value());
  {
    std::unique_lock<std::mutex> lock(shared.mu);
    shared.cv.wait(lock, [&] { return shared.entered; });
  }
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  const int threads = WritePipelineActivity(fds[1]);
  close(fds[1]);
  std::string text;
  char buf[4096];
  for (ssize_t n; (n = read(fds[0], buf, sizeof buf)) > 0;) text.append(buf, size_t(n));
  close(fds[0]);
  {
    std::lock_guard<std::mutex> lock(shared.mu);
    shared.open = true;
  }
  shared.cv.notify_all();
  for (BatchPtr b; pipeline->Next(&b).ok() && b;) b.reset();
  EXPECT_GE(threads, 1);
  EXPECT_NE(text.find("stage 'gate' (type gate) on sample 3 (img.idx[3]), epoch 1"),
            std::string::npos)
      << text;
}

}  // namespace
}  // namespace flowfeed
