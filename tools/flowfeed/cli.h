// cli.h: what the `flowfeed` commands share: exit codes, loading a run's config, the run's
// outputs (reports, page, trace), and stopping on Ctrl-C / SIGTERM. One command per file:
// bench.cc, train.cc, inspect.cc (validate, config, stages, report), dataset.cc, launch.cc
// (`options` is one line in main.cc). main.cc parses the command line (CLI11) and calls them;
// dataset.cc and launch.cc register their own subcommand and options (AddDatasetCommand,
// AddLaunchCommand). metrics_out.cc turns bench's and train's figures into metrics records.
//
// Thread-safety: everything here runs on the command's main thread, except the signal handler
// and the watcher thread StopOnSignals starts (both touch only atomics and Pipeline::Cancel()).
#pragma once

#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "flowfeed/config.h"
#include "flowfeed/crash_report.h"
#include "flowfeed/trace_file.h"
#include "flowfeed/pipeline.h"
#include "flowfeed/registry.h"
#include "flowfeed/stats.h"
#include "flowfeed/util/poller.h"

namespace CLI {
class App;
}
namespace flowfeed {
class Trainer;
}

namespace flowfeed::cli {

// Exit codes: 0 success, 2 bad usage or config (nothing ran), 1 failure while running; a run a
// signal stopped exits 128 + the signal's number; a run in which a stage called exit() exits 70
// (kExitCalledFromStage, flowfeed/crash_report.h; set by its handler, not by a command).
constexpr int kExitOk = 0;
constexpr int kExitRuntime = 1;
constexpr int kExitUsage = 2;

// What `bench` and `train` take from their command line.
struct RunArgs {
  std::string config;
  std::vector<std::string> sets;  // --set key.path=value
  int epochs = 0;                 // 0: the config's
  std::string report, html, trace, resume;
  std::string tensorboard, jsonl, csv;  // metrics logs (metrics_out.h); "" for none
  bool cold = false;
  bool resume_changed = false;  // train --resume-changed
  std::string command_line;  // the program's arguments, for the report's provenance
};

int Bench(const RunArgs& args);                                      // bench.cc
int Train(const RunArgs& args);                                      // train.cc
// `schema_only`: the config and its plugins only, the datasets not opened.
int Validate(const std::string& config, const std::vector<std::string>& sets,
             bool schema_only);  // inspect.cc
int PrintConfig(const std::string& config, const std::vector<std::string>& sets,
                bool schema_only);  // inspect.cc
int Stages(const std::vector<std::string>& plugins);                 // inspect.cc
int Report(const std::vector<std::string>& paths, std::string output,
           const std::vector<std::string>& labels, const std::string& title);  // inspect.cc

// A subcommand that registers its own options on the program's CLI::App: `app` is the
// subcommand (true once the command line named it), `run` runs it after a successful parse and
// returns the exit code (kExitUsage for what the parser's checks cannot see, such as options
// that exclude each other).
struct Subcommand {
  CLI::App* app;
  std::function<int()> run;
};
Subcommand AddDatasetCommand(CLI::App* program);  // dataset.cc: photos, shards, fashion-mnist
Subcommand AddLaunchCommand(CLI::App* program);   // launch.cc

// ---- Loading (outputs.cc) ----

// This program's file (/proc/self/exe, links resolved); "" when it cannot be read.
std::string ProgramPath();
// The program's own plugin folders, the last place a bare plugin name is looked for (plugin.h's
// FindPlugin): plugins/ beside the program (the build tree's build/plugins), and the installed
// plugin folder relative to the installed program (FLOWFEED_INSTALLED_PLUGIN_DIR, from CMake's
// install rules). Only those that exist; none when the program's path cannot be read.
std::vector<std::string> ProgramPluginDirs();

// Loads the config and the plugins it lists into `registry` (bare names found in
// ProgramPluginDirs() last); prints every problem and returns false on failure.
bool Load(const std::string& path, const std::vector<std::string>& sets,
          StageRegistry* registry, PipelineOptions* out);
// Load() plus what `bench` and `train` take from their own flags and the environment
// (distributed ranks).
bool LoadRun(const RunArgs& args, StageRegistry* registry, PipelineOptions* out);

// ---- Outputs (outputs.cc) ----

std::string MiB(int64_t bytes);
// What a run says before its first epoch: the cache's placement and state, and warnings.
void PrintCacheHeader(const RunStats& head, bool cold);
// Writes a JSON report or page (`what`) to `path`; the exit code for it. Through a temporary
// file, synced, and a rename, then the folder synced: a reader never sees half of one, and a
// power cut after "report: PATH" does not leave an empty file there.
int WriteOutput(const std::string& what, const std::string& path, const std::string& text);
// Writes a run's JSON report to `json_path` and, when `html_path` is set, the same report drawn
// as a page (flowfeed/report_html.h) labelled `label`; either path may be "". The exit code.
int WriteReport(const std::string& json_path, const std::string& html_path,
                const std::string& json, const std::string& label);
// "configs/photos.yaml" -> "photos": how a run is named on its page.
std::string RunLabel(const std::string& config);

// `--trace FILE`: the run's spans streamed to FILE.partial by a thread of its own, taken from
// the run (`take`: Pipeline::TakeTrace or Trainer::TakeTrace) every second, so they never pile
// up in memory and a crash leaves what was recorded; Finish() (also on a stopped or failed run)
// takes the rest and renames the whole trace to FILE. Times count from the program's start.
class TraceStream {
 public:
  TraceStream(std::string path, std::function<std::vector<TraceEvent>()> take);
  ~TraceStream();  // stops the thread; without Finish() FILE is left as it was
  // Creates FILE.partial and starts the thread; false, having said why, when it cannot.
  bool Start();
  // Stops the thread, appends the rest, completes FILE; the exit code for it.
  int Finish();

 private:
  void Stop();
  const std::string path_;
  const std::function<std::vector<TraceEvent>()> take_;
  std::unique_ptr<TraceFile> file_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

// ---- Stopping (signals.cc) ----

// Ctrl-C (SIGINT) and SIGTERM. The first asks the run to stop cleanly: `train` stops after the
// step in progress (or abandons the wait for a batch), writes its checkpoint and report; `bench`
// cancels the pipeline and reports the epochs it finished. The handler then restores the
// default action, so a second signal ends the process at once.
//
// Installs the handler for its lifetime. With a pipeline, a poller turns the first signal into
// Pipeline::Cancel() (not async-signal-safe, so not called from the handler itself). With a
// trainer, the handler calls Trainer::RequestStop() (which is async-signal-safe).
class StopOnSignals {
 public:
  explicit StopOnSignals(Pipeline* cancel = nullptr, Trainer* trainer = nullptr);
  ~StopOnSignals();
  // From now on a signal no longer reaches the trainer: call it before the trainer is destroyed
  // while the handler is still installed.
  void ForgetTrainer();
  StopOnSignals(const StopOnSignals&) = delete;
  StopOnSignals& operator=(const StopOnSignals&) = delete;

 private:
  struct Saved;
  std::unique_ptr<Saved> saved_;
  std::unique_ptr<Poller> watcher_;
};

// The exit code of a run that ended with `st`: 128 + the signal when a signal cancelled it
// (130 for Ctrl-C, 143 for SIGTERM, as a shell reports a process it killed), otherwise a
// failure while running.
int StoppedExitCode(const Status& st);

// Destroys what a stopped run still holds (joining the pipeline's threads, making the disk
// cache's records durable) on another thread, and gives it `seconds`: a read stuck in the
// kernel (a hung network mount, a FIFO nobody writes) would block that join forever, and a
// stopped run must end. Everything worth keeping (checkpoint, report) is written before this.
template <typename T>
int TearDownWithin(std::unique_ptr<T> owner, double seconds, int code) {
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  std::thread t([&] {
    owner.reset();
    std::lock_guard<std::mutex> lock(mu);
    done = true;
    cv.notify_all();
  });
  std::unique_lock<std::mutex> lock(mu);
  if (cv.wait_for(lock, std::chrono::duration<double>(seconds), [&] { return done; })) {
    lock.unlock();
    t.join();
    return code;
  }
  // What each thread is stuck in, rather than a guess: a read of a hung mount shows as the
  // read step on its file, a stage that loops as that stage (and its plugin) on its sample.
  std::cerr << "flowfeed: the pipeline's threads did not finish within " << seconds
            << " s; exiting without them. What each pipeline thread is doing:\n";
  std::cerr.flush();
  std::fflush(nullptr);
  WritePipelineActivity(STDERR_FILENO);
  std::_Exit(code);
}

constexpr double kTearDownSeconds = 10;

}  // namespace flowfeed::cli
