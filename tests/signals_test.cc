// Ctrl-C and SIGTERM against the flowfeed binary, as a user or a cluster scheduler sends them:
// the run stops within seconds, exits 128 + the signal, leaves a checkpoint that resumes and a
// report; a second Ctrl-C ends it at once; a read stuck in storage (a FIFO nobody writes, the
// stand-in for a hung network mount) does not make the process hang.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <iostream>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "test_util.h"

extern char** environ;

namespace flowfeed {
namespace {

using test::TempDir;
using Clock = std::chrono::steady_clock;

// The binary running in the background, its stdout and stderr in a file.
class Running {
 public:
  Running(const std::vector<std::string>& args, const std::string& log) : log_(log) {
    std::vector<std::string> all = {FLOWFEED_BINARY};
    all.insert(all.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (std::string& a : all) argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 1, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&actions, 1, 2);
    ok_ = posix_spawn(&pid_, all[0].c_str(), &actions, nullptr, argv.data(), environ) == 0;
    posix_spawn_file_actions_destroy(&actions);
  }
  ~Running() {
    if (ok_ && !reaped_) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }
  bool started() const { return ok_; }
  void Signal(int sig) { kill(pid_, sig); }

  // Waits for the exit; false after `seconds` (the process is then still running).
  bool Wait(double seconds) {
    const auto deadline = Clock::now() + std::chrono::duration<double>(seconds);
    while (Clock::now() < deadline) {
      pid_t r = waitpid(pid_, &status_, WNOHANG);
      if (r == pid_) {
        reaped_ = true;
        return true;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return false;
  }
  bool Exited() const { return WIFEXITED(status_); }
  int Code() const { return WIFEXITED(status_) ? WEXITSTATUS(status_) : -1; }
  int KilledBy() const { return WIFSIGNALED(status_) ? WTERMSIG(status_) : 0; }
  std::string Log() const {
    return test::ReadText(log_);
  }

 private:
  std::string log_;
  pid_t pid_ = -1;
  bool ok_ = false, reaped_ = false;
  int status_ = 0;
};

bool WaitFor(const std::function<bool()>& ready, double seconds) {
  const auto deadline = Clock::now() + std::chrono::duration<double>(seconds);
  while (Clock::now() < deadline) {
    if (ready()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

bool HasTrainer() {
  test::ShellRun r = test::Shell(std::string(FLOWFEED_BINARY) + " train /nonexistent.yaml");
  return r.output.find("this build has no trainer") == std::string::npos;
}

double SecondsSince(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// A training config over IDX data: many short epochs, a checkpoint after each.
std::string TrainConfig(const TempDir& dir, const std::string& extra = "") {
  test::WriteBandIdx(dir / "data/img.idx", dir / "data/lab.idx", 3000, 7);
  const std::string cfg = "seed: 1\nthreads: 2\nepochs: 200\n"
                          "source: {type: idx, root: " + dir / "data" +
                          ", images: img.idx, labels: lab.idx}\n"
                          "pipeline:\n  - {type: random_horizontal_flip}\n"
                          "batch: {size: 32}\nmodel: {type: mlp, hidden: [64]}\n"
                          "optimizer: {type: sgd, lr: 0.05}\n"
                          "checkpoint: " + dir / "ckpt/model.pt" + "\n" + extra;
  test::WriteText(dir / "train.yaml", cfg);
  return dir / "train.yaml";
}

// "stopped during epoch 3 after step 17" -> 3
int StoppedEpoch(const std::string& log) {
  const std::string key = "stopped during epoch ";
  size_t at = log.find(key);
  return at == std::string::npos ? -1 : std::atoi(log.c_str() + at + key.size());
}

TEST(Signals, FirstSignalStopsCleanlyWithCheckpointReportAndExitCode) {
  if (!HasTrainer()) GTEST_SKIP() << "this build has no trainer (LibTorch not found)";
  for (int sig : {SIGINT, SIGTERM}) {
    SCOPED_TRACE(sig == SIGINT ? "SIGINT" : "SIGTERM");
    TempDir dir;
    const std::string cfg = TrainConfig(dir);
    Running run({"train", cfg, "--report", dir / "report.json"}, dir / "log.txt");
    ASSERT_TRUE(run.started());
    // After the first epoch's checkpoint the run is well into training.
    ASSERT_TRUE(WaitFor([&] { return std::filesystem::exists(dir / "ckpt/model.pt"); }, 120))
        << run.Log();
    const auto t0 = Clock::now();
    run.Signal(sig);
    ASSERT_TRUE(run.Wait(30)) << "still running 30 s after the signal\n" << run.Log();
    const double took = SecondsSince(t0);
    ASSERT_TRUE(run.Exited()) << "killed by signal " << run.KilledBy() << "\n" << run.Log();
    EXPECT_EQ(run.Code(), 128 + sig) << run.Log();
    const std::string log = run.Log();
    EXPECT_NE(log.find("stopped during epoch"), std::string::npos) << log;
    EXPECT_NE(log.find("--resume"), std::string::npos) << log;
    EXPECT_EQ(log.find("did not finish within"), std::string::npos) << log;
    std::cerr << "stopped " << took << " s after the signal\n";
    // The report is complete JSON with the epochs that finished.
    std::ifstream in(dir / "report.json");
    ASSERT_TRUE(in.good()) << log;
    nlohmann::json j = nlohmann::json::parse(in);
    EXPECT_GE(j["epochs"].size(), 1u);
    EXPECT_FALSE(std::filesystem::exists(dir / "ckpt/model.pt.tmp"));
    // The checkpoint resumes and finishes the interrupted epoch.
    const int epoch = StoppedEpoch(log);
    ASSERT_GE(epoch, 1) << log;
    test::ShellRun resumed = test::Shell(std::string(FLOWFEED_BINARY) + " train " + cfg +
                                         " --resume " + dir / "ckpt/model.pt" + " --epochs " +
                                         std::to_string(epoch));
    EXPECT_EQ(resumed.code, 0) << resumed.output;
  }
}

// A file list whose sample 5 waits in the kernel forever, as a read from a hung network mount
// does: the test plugin's `test_stuck` opens the FIFO dir/stuck.fifo, which nobody writes (a FIFO
// given as a sample is refused without blocking). Removing the FIFO lets the stage go on.
std::string StuckListConfig(const TempDir& dir, const std::string& extra) {
  test::MakeImageFolder(dir / "photos", 2, 6);
  EXPECT_EQ(mkfifo((dir / "stuck.fifo").c_str(), 0644), 0);
  std::string list;
  for (int i = 0; i < 12; ++i)
    list += dir / ("photos/class" + std::to_string(i % 2) + "/img" + std::to_string(i / 2) +
                   ".jpg") +
            "," + std::to_string(i % 2) + "\n";
  test::WriteText(dir / "list.csv", list);
  const std::string cfg = "seed: 1\nthreads: 2\nepochs: 1\nshuffle: false\n"
                          "plugins: [" + std::string(FLOWFEED_TEST_PLUGIN_DIR) + "/stuck.so]\n"
                          "source: {type: file_list, list: " + dir / "list.csv" + ", root: /}\n"
                          "pipeline:\n  - {type: test_stuck, gate: " + dir / "stuck.fifo" +
                          ", index: 5}\n  - {type: decode}\n  - {type: center_crop, size: 16}\n"
                          "batch: {size: 2}\ncache: {mode: off}\n" + extra;
  test::WriteText(dir / "stuck.yaml", cfg);
  return dir / "stuck.yaml";
}

TEST(Signals, SecondCtrlCAbortsAtOnce) {
  if (!HasTrainer()) GTEST_SKIP() << "this build has no trainer (LibTorch not found)";
  TempDir dir;
  // A stuck read keeps the first stop's clean-up waiting, which leaves time for a second Ctrl-C.
  const std::string cfg = StuckListConfig(
      dir, "model: {type: mlp, hidden: [8]}\ncheckpoint: " + dir / "ckpt/model.pt" +
               "\ncheckpoint_every: 1\n");
  Running run({"train", cfg}, dir / "log.txt");
  ASSERT_TRUE(run.started());
  ASSERT_TRUE(WaitFor([&] { return std::filesystem::exists(dir / "ckpt/model.pt"); }, 120))
      << run.Log();
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  run.Signal(SIGINT);
  // Signals of one kind do not queue: wait until the first was handled before sending another.
  ASSERT_TRUE(WaitFor([&] { return run.Log().find("stopped during epoch") != std::string::npos; }, 30))
      << run.Log();
  const auto t0 = Clock::now();
  run.Signal(SIGINT);
  ASSERT_TRUE(run.Wait(5)) << "the second Ctrl-C did not end it\n" << run.Log();
  EXPECT_EQ(run.KilledBy(), SIGINT) << "exit code " << run.Code() << "\n" << run.Log();
  EXPECT_LT(SecondsSince(t0), 5.0);
  // The checkpoint written before is whole: it resumes (with the FIFO gone).
  std::filesystem::remove(dir / "stuck.fifo");
  test::ShellRun resumed = test::Shell(std::string(FLOWFEED_BINARY) + " train " + cfg +
                                       " --resume " + dir / "ckpt/model.pt");
  EXPECT_EQ(resumed.code, 0) << resumed.output;
}

TEST(Signals, AStuckReadDoesNotHangTraining) {
  if (!HasTrainer()) GTEST_SKIP() << "this build has no trainer (LibTorch not found)";
  TempDir dir;
  const std::string cfg = StuckListConfig(
      dir, "model: {type: mlp, hidden: [8]}\ncheckpoint: " + dir / "ckpt/model.pt" +
               "\ncheckpoint_every: 1\n");
  Running run({"train", cfg, "--report", dir / "report.json"}, dir / "log.txt");
  ASSERT_TRUE(run.started());
  // Steps 1 and 2 (samples 0-3) train and checkpoint; step 3 waits for the FIFO forever.
  ASSERT_TRUE(WaitFor([&] { return std::filesystem::exists(dir / "ckpt/model.pt"); }, 120))
      << run.Log();
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  const auto t0 = Clock::now();
  run.Signal(SIGINT);
  ASSERT_TRUE(run.Wait(40)) << "hung after Ctrl-C\n" << run.Log();
  const double took = SecondsSince(t0);
  ASSERT_TRUE(run.Exited()) << run.Log();
  EXPECT_EQ(run.Code(), 130) << run.Log();
  const std::string log = run.Log();
  EXPECT_NE(log.find("stopped during epoch 1"), std::string::npos) << log;
  // The stuck thread cannot be joined; the process says so and exits anyway.
  EXPECT_NE(log.find("did not finish within"), std::string::npos) << log;
  EXPECT_TRUE(std::filesystem::exists(dir / "report.json")) << log;
  std::cerr << "exited " << took << " s after Ctrl-C\n";
  // With the FIFO gone, the checkpoint resumes and completes the epoch.
  std::filesystem::remove(dir / "stuck.fifo");
  test::ShellRun resumed = test::Shell(std::string(FLOWFEED_BINARY) + " train " + cfg +
                                       " --resume " + dir / "ckpt/model.pt");
  EXPECT_EQ(resumed.code, 0) << resumed.output;
  EXPECT_NE(resumed.output.find("resume: epoch 1 from sample"), std::string::npos)
      << resumed.output;
}

TEST(Signals, AStuckReadDoesNotHangBench) {
  TempDir dir;
  const std::string cfg = StuckListConfig(dir, "");
  Running run({"bench", cfg, "--report", dir / "report.json"}, dir / "log.txt");
  ASSERT_TRUE(run.started());
  ASSERT_TRUE(WaitFor([&] { return run.Log().find("flowfeed bench") != std::string::npos; }, 60))
      << run.Log();
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  run.Signal(SIGTERM);
  ASSERT_TRUE(run.Wait(40)) << "hung after SIGTERM\n" << run.Log();
  ASSERT_TRUE(run.Exited()) << run.Log();
  EXPECT_EQ(run.Code(), 128 + SIGTERM) << run.Log();
  EXPECT_NE(run.Log().find("cancelled"), std::string::npos) << run.Log();
  std::ifstream in(dir / "report.json");
  ASSERT_TRUE(in.good()) << run.Log();
  nlohmann::json j = nlohmann::json::parse(in);  // whole, with no finished epoch
  EXPECT_EQ(j["epochs"].size(), 0u);
}

TEST(CheckpointFaults, FullDiskKeepsThePreviousCheckpoint) {
  if (!HasTrainer()) GTEST_SKIP() << "this build has no trainer (LibTorch not found)";
  TempDir dir;
  const std::string small = dir / "small";
  std::filesystem::create_directories(small);
  if (::mount("tmpfs", small.c_str(), "tmpfs", 0, "size=1m") != 0)
    GTEST_SKIP() << "cannot mount a small tmpfs here (" << std::strerror(errno)
                 << "; needs root): Trainer.AFailedCheckpointWriteKeepsTheOldOne covers a "
                    "failing write instead";
  struct Unmount {
    std::string path;
    ~Unmount() { ::umount2(path.c_str(), MNT_DETACH); }
  } unmount{small};
  const std::string cfg = TrainConfig(dir);
  const std::string ckpt = small + "/model.pt";
  const std::string run = std::string(FLOWFEED_BINARY) + " train " + cfg +
                          " --set checkpoint=" + ckpt;
  test::ShellRun first = test::Shell(run + " --epochs 1");
  ASSERT_EQ(first.code, 0) << first.output;
  const std::vector<uint8_t> before = test::ReadBytes(ckpt);
  ASSERT_FALSE(before.empty());
  // Fill the rest of the disk.
  {
    std::ofstream filler(small + "/filler", std::ios::binary);
    std::vector<char> block(64 << 10, 'x');
    while (filler.write(block.data(), std::streamsize(block.size()))) filler.flush();
  }
  test::ShellRun second = test::Shell(run + " --resume " + ckpt + " --epochs 2");
  EXPECT_EQ(second.code, 1) << second.output;
  EXPECT_NE(second.output.find(ckpt), std::string::npos) << second.output;
  EXPECT_NE(second.output.find("No space left on device"), std::string::npos) << second.output;
  EXPECT_EQ(test::ReadBytes(ckpt), before) << "the good checkpoint was replaced";
  EXPECT_FALSE(std::filesystem::exists(ckpt + ".tmp")) << "a partial checkpoint was left behind";
  // Space again: the same resume now succeeds from the untouched checkpoint.
  std::filesystem::remove(small + "/filler");
  test::ShellRun third = test::Shell(run + " --resume " + ckpt + " --epochs 2");
  EXPECT_EQ(third.code, 0) << third.output;
}

}  // namespace
}  // namespace flowfeed
