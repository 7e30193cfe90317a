// The flowfeed command line: bench, train, validate, stages, dataset, launch.
//
// Exit codes: 0 success, 2 bad usage or config (nothing ran), 1 failure while running.

#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "flowfeed/config.h"
#include "flowfeed/pipeline.h"
#include "flowfeed/registry.h"
#include "flowfeed/stats.h"
#if FLOWFEED_WITH_TORCH
#include "flowfeed/trainer.h"
#endif

namespace flowfeed::cli {
int RunDatasetCommand(const std::vector<std::string>& args);
int RunLaunchCommand(const std::vector<std::string>& args);
}  // namespace flowfeed::cli

namespace {

using flowfeed::Status;

constexpr int kExitOk = 0;
constexpr int kExitRuntime = 1;
constexpr int kExitUsage = 2;

double Seconds(std::chrono::steady_clock::time_point a, std::chrono::steady_clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

// One progress line per epoch: redrawn in place on a terminal, a plain line every few seconds
// otherwise, so CI logs stay readable.
class Progress {
 public:
  Progress(int epochs, int64_t batches_per_epoch)
      : tty_(isatty(STDERR_FILENO) != 0), epochs_(epochs), total_(batches_per_epoch) {}

  void Start(int epoch) {
    epoch_ = epoch;
    start_ = last_ = std::chrono::steady_clock::now();
    batches_ = samples_ = 0;
  }

  void Update(int64_t batch_samples) {
    ++batches_;
    samples_ += batch_samples;
    auto now = std::chrono::steady_clock::now();
    double since = Seconds(last_, now);
    if (tty_ ? since < 0.1 : since < 5.0) return;
    last_ = now;
    Draw(now, false);
  }

  void Finish() {
    if (tty_) {
      Draw(std::chrono::steady_clock::now(), true);
    }
  }

 private:
  void Draw(std::chrono::steady_clock::time_point now, bool done) {
    double el = Seconds(start_, now);
    double rate = el > 0 ? double(samples_) / el : 0;
    double frac = total_ > 0 ? double(batches_) / double(total_) : 0;
    double eta = frac > 0 && !done ? el / frac - el : 0;
    char buf[256];
    if (tty_) {
      const int width = 30;
      int filled = int(frac * width + 0.5);
      std::string bar(size_t(std::min(filled, width)), '#');
      bar += std::string(size_t(width - std::min(filled, width)), '.');
      std::snprintf(buf, sizeof buf, "\repoch %d/%d [%s] %lld/%lld batches  %.0f samples/s  ETA %.0fs ",
                    epoch_ + 1, epochs_, bar.c_str(), (long long)batches_, (long long)total_, rate,
                    eta);
      std::fputs(buf, stderr);
      if (done) std::fputs("\n", stderr);
    } else {
      std::snprintf(buf, sizeof buf, "epoch %d/%d: %lld/%lld batches, %.0f samples/s, ETA %.0fs\n",
                    epoch_ + 1, epochs_, (long long)batches_, (long long)total_, rate, eta);
      std::fputs(buf, stderr);
    }
    std::fflush(stderr);
  }

  bool tty_;
  int epochs_;
  int64_t total_;
  int epoch_ = 0;
  int64_t batches_ = 0, samples_ = 0;
  std::chrono::steady_clock::time_point start_, last_;
};

// Loads the config and the plugins it lists into `registry`; prints every problem and returns
// false on failure.
bool Load(const std::string& path, const std::vector<std::string>& sets,
          flowfeed::StageRegistry* registry, flowfeed::PipelineOptions* out) {
  auto r = flowfeed::LoadConfigWithPlugins(path, sets, registry);
  if (!r.ok()) {
    std::cerr << "flowfeed: " << r.status().message() << "\n";
    return false;
  }
  *out = std::move(r.value());
  return true;
}

// Load() plus what `bench` and `train` take from their own flags.
bool LoadRun(const std::string& path, const std::vector<std::string>& sets, int epochs, bool cold,
             const std::string& trace_path, flowfeed::StageRegistry* registry,
             flowfeed::PipelineOptions* out) {
  if (!Load(path, sets, registry, out)) return false;
  Status env = flowfeed::ApplyDistributedEnvironment(out);
  if (!env.ok()) {
    std::cerr << "flowfeed: " << env.message() << "\n";
    return false;
  }
  if (epochs > 0) out->epochs = epochs;
  out->cold = cold;
  out->trace = !trace_path.empty();
  return true;
}

std::string MiB(int64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.0f MiB", double(bytes) / (1024.0 * 1024.0));
  return buf;
}

// What a run says before its first epoch: the cache's placement and state, and warnings.
void PrintCacheHeader(const flowfeed::RunStats& head, bool cold) {
  if (!head.cache_placement.empty()) {
    std::cerr << "cache: " << head.cache_mode << ", after '" << head.cache_placement
              << "', memory budget " << MiB(head.cache.budget_bytes) << ", fingerprint "
              << head.cache_fingerprint << "\n";
  } else {
    std::cerr << "cache: none (" << head.cache_note << ")\n";
  }
  for (const std::string& m : head.cache.messages) std::cerr << "cache: " << m << "\n";
  for (const std::string& w : head.warnings) std::cerr << "warning: " << w << "\n";
  if (cold) std::cerr << "cold: the dataset's files were evicted from the page cache\n";
}

// Writes a report through a temporary file and a rename, so a reader never sees half of one.
bool WriteFileAtomic(const std::string& path, const std::string& text) {
  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << text;
    if (!out) return false;
  }
  return std::rename(tmp.c_str(), path.c_str()) == 0;
}

// Writes a JSON report or trace (`what`) to `path`; the exit code for it.
int WriteOutput(const std::string& what, const std::string& path, const std::string& text) {
  if (!WriteFileAtomic(path, text)) {
    std::cerr << "flowfeed: cannot write " << what << " " << path << "\n";
    return kExitRuntime;
  }
  std::cerr << what << ": " << path << "\n";
  return kExitOk;
}

int WriteTrace(const std::string& path, const std::vector<flowfeed::TraceEvent>& events) {
  std::cerr << "trace: " << events.size()
            << " spans; open it in https://ui.perfetto.dev or chrome://tracing\n";
  return WriteOutput("trace", path, flowfeed::ChromeTraceJson(events));
}

// Ctrl-C (SIGINT) and SIGTERM. The first asks the run to stop cleanly: `train` stops after the
// step in progress (or abandons the wait for a batch), writes its checkpoint and report; `bench`
// cancels the pipeline and reports the epochs it finished. The handler then restores the
// default action, so a second signal ends the process at once. The exit code is 128 + the
// signal's number (130 for Ctrl-C, 143 for SIGTERM), as a shell reports a process it killed.
std::atomic<int> g_signal{0};
#if FLOWFEED_WITH_TORCH
std::atomic<flowfeed::Trainer*> g_stoppable{nullptr};
#endif

extern "C" void OnStopSignal(int sig) {
  g_signal.store(sig);
#if FLOWFEED_WITH_TORCH
  if (flowfeed::Trainer* t = g_stoppable.load()) t->RequestStop();
#endif
  static const char msg[] = "\nflowfeed: stopping (again to abort at once)\n";
  ssize_t ignored = write(STDERR_FILENO, msg, sizeof msg - 1);
  (void)ignored;
  signal(sig, SIG_DFL);
}

// Installs OnStopSignal for its lifetime. With a pipeline, a thread turns the first signal into
// Pipeline::Cancel() (not async-signal-safe, so not called from the handler itself).
class StopOnSignals {
 public:
  explicit StopOnSignals(flowfeed::Pipeline* cancel = nullptr) : pipeline_(cancel) {
    struct sigaction sa {};
    sa.sa_handler = OnStopSignal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int_);
    sigaction(SIGTERM, &sa, &old_term_);
    if (pipeline_) watcher_ = std::thread([this] { Watch(); });
  }
  ~StopOnSignals() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      done_ = true;
    }
    cv_.notify_all();
    if (watcher_.joinable()) watcher_.join();
    sigaction(SIGINT, &old_int_, nullptr);
    sigaction(SIGTERM, &old_term_, nullptr);
  }
  StopOnSignals(const StopOnSignals&) = delete;
  StopOnSignals& operator=(const StopOnSignals&) = delete;

 private:
  void Watch() {
    std::unique_lock<std::mutex> lock(mu_);
    while (!done_) {
      cv_.wait_for(lock, std::chrono::milliseconds(20));
      if (g_signal.load() != 0) {
        pipeline_->Cancel();
        return;
      }
    }
  }

  flowfeed::Pipeline* pipeline_;
  struct sigaction old_int_ {}, old_term_ {};
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  std::thread watcher_;
};

// The exit code of a run that a signal stopped.
int SignalExitCode() { return 128 + g_signal.load(); }

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
  std::cerr << "flowfeed: the pipeline's threads did not finish within " << seconds
            << " s (a read may be stuck in storage); exiting without them\n";
  std::cerr.flush();
  std::fflush(nullptr);
  std::_Exit(code);
}

constexpr double kTearDownSeconds = 10;

int Bench(const std::string& config, const std::vector<std::string>& sets, int epochs,
          const std::string& report_path, bool cold, const std::string& trace_path) {
  flowfeed::StageRegistry registry;
  flowfeed::RegisterBuiltinStages(&registry);
  flowfeed::PipelineOptions options;
  if (!LoadRun(config, sets, epochs, cold, trace_path, &registry, &options)) return kExitUsage;

  auto opened = flowfeed::Pipeline::Open(options, registry);
  if (!opened.ok()) {
    std::cerr << "flowfeed: " << config << ": " << opened.status().ToString() << "\n";
    return kExitUsage;
  }
  std::unique_ptr<flowfeed::Pipeline> pipeline = std::move(opened.value());
  flowfeed::RunStats head = pipeline->stats();
  std::cerr << "flowfeed bench " << config << ": " << head.source << "; " << head.threads
            << " threads, batch " << options.batch.size << ", " << options.epochs
            << " epochs (open " << std::fixed << std::setprecision(2) << head.open_seconds
            << " s)\n" << std::defaultfloat;
  PrintCacheHeader(head, cold);

  Progress progress(options.epochs, pipeline->batches_per_epoch());
  StopOnSignals stop_on_signals(pipeline.get());
  for (int e = 0; e < options.epochs; ++e) {
    progress.Start(e);
    while (true) {
      flowfeed::BatchPtr batch;
      Status st = pipeline->Next(&batch);
      if (!st.ok()) {
        std::cerr << "\nflowfeed: " << st.ToString() << "\n";
        // The epochs that finished are still worth a report, whatever stopped the run.
        if (!report_path.empty())
          WriteOutput("report", report_path, flowfeed::ReportJson(pipeline->stats()));
        const int code = st.code() == flowfeed::StatusCode::kCancelled && g_signal.load() != 0
                             ? SignalExitCode()
                             : kExitRuntime;
        return TearDownWithin(std::move(pipeline), kTearDownSeconds, code);
      }
      if (!batch) break;
      progress.Update(batch->size);
    }
    progress.Finish();
    flowfeed::RunStats rs = pipeline->stats();
    if (!rs.epochs.empty()) std::cout << flowfeed::FormatEpochTable(rs.epochs.back()) << std::flush;
  }

  flowfeed::RunStats rs = pipeline->stats();
  std::string verdict = flowfeed::FirstEpochVerdict(rs);
  if (!verdict.empty()) std::cout << verdict << "\n";
  {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    std::cout << "memory: peak RSS " << MiB(int64_t(ru.ru_maxrss) * 1024);
    if (!rs.cache_placement.empty())
      std::cout << "; cache holds " << MiB(rs.cache.memory_bytes) << " in memory (budget "
                << MiB(rs.cache.budget_bytes) << ", " << rs.cache.memory_entries << " samples, "
                << rs.cache.overhead_bytes / std::max<int64_t>(1, rs.dataset_size)
                << " bytes of bookkeeping per sample) and " << MiB(rs.cache.disk_bytes)
                << " on disk (" << rs.cache.disk_entries << " samples)";
    std::cout << "; at most " << rs.tokens << " samples in flight\n";
  }
  for (const std::string& w : rs.warnings)
    if (std::find(head.warnings.begin(), head.warnings.end(), w) == head.warnings.end())
      std::cerr << "warning: " << w << "\n";
  if (rs.epochs.size() >= 2) {
    double first = rs.epochs[0].samples_per_second;
    double later = 0;
    for (size_t i = 1; i < rs.epochs.size(); ++i) later += rs.epochs[i].samples_per_second;
    later /= double(rs.epochs.size() - 1);
    char line[200];
    std::snprintf(line, sizeof line,
                  "summary: epoch 1 %.0f samples/s, epochs 2+ %.0f samples/s (x%.2f)\n", first,
                  later, first > 0 ? later / first : 0);
    std::cout << line;
  }
  if (!report_path.empty() && WriteOutput("report", report_path, flowfeed::ReportJson(rs)) != 0)
    return kExitRuntime;
  if (!trace_path.empty()) return WriteTrace(trace_path, pipeline->trace());
  return kExitOk;
}

// "out/report.json" -> "out/report.rank1.json" (or "report" -> "report.rank1").
std::string RankPath(const std::string& path, int rank) {
  const std::string tag = ".rank" + std::to_string(rank);
  const size_t slash = path.find_last_of('/');
  const size_t dot = path.find_last_of('.');
  if (dot == std::string::npos || (slash != std::string::npos && dot < slash)) return path + tag;
  return path.substr(0, dot) + tag + path.substr(dot);
}

int Train(const std::string& config, const std::vector<std::string>& sets, int epochs,
          const std::string& report_path, const std::string& resume, bool cold,
          const std::string& trace_path) {
#if FLOWFEED_WITH_TORCH
  auto t0 = std::chrono::steady_clock::now();
  flowfeed::StageRegistry registry;
  flowfeed::RegisterBuiltinStages(&registry);
  flowfeed::PipelineOptions options;
  if (!LoadRun(config, sets, epochs, cold, trace_path, &registry, &options)) return kExitUsage;
  double config_seconds = Seconds(t0, std::chrono::steady_clock::now());
  const int rank = options.distributed.rank;
  const std::string who = rank == 0 && options.distributed.world_size == 1
                              ? "flowfeed: "
                              : "flowfeed [rank " + std::to_string(rank) + "]: ";
  // Only rank 0 talks and reports; the others say only what went wrong (and write
  // report.rank<N>.json when distributed.rank_reports asks for it).
  std::string report_to = report_path;
  if (rank != 0) {
    std::cout.setstate(std::ios::failbit);
    if (!options.distributed.rank_reports) report_to.clear();
    else if (!report_to.empty()) report_to = RankPath(report_to, rank);
  }
  auto created = flowfeed::Trainer::Create(options, registry, resume, config_seconds);
  if (!created.ok()) {
    std::cerr << who << config << ": " << created.status().ToString() << "\n";
    return created.status().code() == flowfeed::StatusCode::kInternal ||
                   created.status().code() == flowfeed::StatusCode::kIoError
               ? kExitRuntime
               : kExitUsage;
  }
  std::unique_ptr<flowfeed::Trainer> trainer = std::move(created.value());
  g_stoppable.store(trainer.get());
  StopOnSignals stop_on_signals;
  flowfeed::TrainReport head = trainer->report();
  if (rank == 0)
    std::cerr << "flowfeed train " << config << ": " << head.pipeline.source << "; "
            << head.pipeline.threads << " threads, batch " << options.batch.size << ", epochs "
            << head.start_epoch + 1 << ".." << options.epochs << "\n";
  if (rank == 0) PrintCacheHeader(head.pipeline, cold);
  if (options.distributed.world_size > 1 && rank == 0)
    std::cerr << "distributed: " << head.world_size << " ranks over " << head.backend
              << ", shard policy " << head.shard_policy << ", uneven " << head.uneven << "\n";
  if (head.start_position > 0 && rank == 0)
    std::cerr << "resume: epoch " << head.start_epoch + 1 << " from sample "
              << head.start_position << " of its order\n";
  std::cout << flowfeed::FormatSetup(head) << std::flush;

  Progress progress(options.epochs, 0);
  int progress_epoch = -1;
  flowfeed::Trainer* tp = trainer.get();
  flowfeed::Status st = trainer->Run(
      [&](const flowfeed::TrainEpochStats& e) {
        if (rank != 0) return;
        progress.Finish();
        flowfeed::TrainReport r = tp->report();
        for (const auto& pe : r.pipeline.epochs)
          if (pe.epoch == e.epoch) std::cout << flowfeed::FormatEpochTable(pe);
        std::cout << flowfeed::FormatTrainEpoch(e) << std::flush;
      },
      [&](int epoch, int64_t step, int64_t steps, double loss) {
        if (rank != 0) return;
        if (epoch != progress_epoch) {
          progress = Progress(options.epochs, steps);
          progress.Start(epoch);
          progress_epoch = epoch;
        }
        progress.Update(options.batch.size);
        (void)step;
        (void)loss;
      });
  if (!st.ok()) {
    std::cerr << "\n" << who << st.ToString() << "\n";
    // A stopped or failed run still says how far it got.
    if (!report_to.empty())
      WriteOutput("report", report_to, flowfeed::TrainReportJson(trainer->report()));
    const int code = st.code() == flowfeed::StatusCode::kCancelled && g_signal.load() != 0
                         ? SignalExitCode()
                         : kExitRuntime;
    g_stoppable.store(nullptr);
    return TearDownWithin(std::move(trainer), kTearDownSeconds, code);
  }
  flowfeed::TrainReport r = trainer->report();
  std::string verdict = flowfeed::FirstEpochVerdict(r.pipeline);
  if (!verdict.empty()) std::cout << "pipeline: " << verdict << "\n";
  std::cout << flowfeed::FormatGap(r);
  if (!r.epochs.empty() && r.epochs.back().has_eval)
    std::cout << "final: eval accuracy " << std::fixed << std::setprecision(2)
              << 100 * r.epochs.back().eval_accuracy << "% after epoch " << r.epochs.back().epoch
              << ", " << r.wall_seconds << " s in all" << std::defaultfloat << "\n";
  if (!report_to.empty() && WriteOutput("report", report_to, flowfeed::TrainReportJson(r)) != 0)
    return kExitRuntime;
  if (!trace_path.empty() && rank == 0) return WriteTrace(trace_path, trainer->trace());
  return kExitOk;
#else
  (void)config, (void)sets, (void)epochs, (void)report_path, (void)resume, (void)cold;
  (void)trace_path;
  std::cerr << "flowfeed: this build has no trainer: LibTorch was not found when it was "
               "configured (install libtorch-dev, or point CMake at a LibTorch, and rebuild)\n";
  return kExitUsage;
#endif
}

int Validate(const std::string& config, const std::vector<std::string>& sets) {
  flowfeed::StageRegistry registry;
  flowfeed::RegisterBuiltinStages(&registry);
  flowfeed::PipelineOptions options;
  if (!Load(config, sets, &registry, &options)) return kExitUsage;
  std::cout << config << ": ok (" << options.source.type << " source, "
            << options.pipeline.size() << " stages, batch " << options.batch.size << ", "
            << options.epochs << " epochs)\n";
  return kExitOk;
}

int Stages(const std::vector<std::string>& plugins) {
  flowfeed::StageRegistry registry;
  flowfeed::RegisterBuiltinStages(&registry);
  for (const std::string& path : plugins) {
    auto loaded = flowfeed::LoadPlugin(path, &registry);
    if (!loaded.ok()) {
      std::cerr << "flowfeed: " << loaded.status().message() << "\n";
      return kExitUsage;
    }
  }
  for (const flowfeed::StageInfo* info : registry.List()) {
    std::cout << info->name << "  ("
              << (info->traits.deterministic ? "deterministic" : "random")
              << (info->traits.thread_safe ? ", thread-safe" : ", serial") << "; " << info->origin
              << ")\n    " << info->doc << "\n";
    for (const auto& p : info->params) {
      std::cout << "    " << p.name << ": " << flowfeed::ParamTypeName(p.type);
      if (p.default_value)
        std::cout << " = " << flowfeed::ParamSpec::FormatValue(*p.default_value);
      else
        std::cout << " (required)";
      if (p.min || p.max) {
        std::cout << " in [" << (p.min ? std::to_string(*p.min) : "-inf") << ", "
                  << (p.max ? std::to_string(*p.max) : "inf") << "]";
      }
      if (!p.choices.empty()) {
        std::cout << " one of";
        for (const auto& c : p.choices) std::cout << " " << c;
      }
      std::cout << "\n        " << p.doc << "\n";
    }
    std::cout << "\n";
  }
  return kExitOk;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 2 && std::string(argv[1]) == "dataset") {
    return flowfeed::cli::RunDatasetCommand(std::vector<std::string>(argv + 2, argv + argc));
  }
  if (argc >= 2 && std::string(argv[1]) == "launch") {
    return flowfeed::cli::RunLaunchCommand(std::vector<std::string>(argv + 2, argv + argc));
  }
  CLI::App app{"flowfeed: a data pipeline for deep-learning training"};
  app.set_version_flag("--version", std::string("flowfeed ") + FLOWFEED_VERSION);
  app.require_subcommand(1);

  std::string config, report;
  std::vector<std::string> sets;
  int epochs = 0;

  auto* bench = app.add_subcommand("bench", "Run the pipeline alone and report each epoch");
  bench->add_option("config", config, "YAML config")->required();
  bench->add_option("--epochs", epochs, "Override the config's epochs")->check(CLI::PositiveNumber);
  bench->add_option("--report", report, "Write a JSON report to this file");
  bench->add_option("--set", sets, "Override a config key: key.path=value (repeatable)");
  bool cold = false;
  std::string trace;
  bench->add_option("--trace", trace, "Write a Chrome trace (Perfetto) of the run to this file");
  bench->add_flag("--cold", cold,
                  "Evict the dataset's files (and the disk cache) from the OS page cache before "
                  "epoch 1, so it measures storage reads");

  std::string resume;
  auto* train = app.add_subcommand("train", "Train the config's model on its pipeline");
  train->add_option("config", config, "YAML config")->required();
  train->add_option("--epochs", epochs, "Override the config's epochs")->check(CLI::PositiveNumber);
  train->add_option("--report", report, "Write a JSON report to this file");
  train->add_option("--set", sets, "Override a config key: key.path=value (repeatable)");
  train->add_option("--resume", resume, "Continue from this checkpoint");
  train->add_flag("--cold", cold, "Evict the dataset's files from the page cache first");
  train->add_option("--trace", trace, "Write a Chrome trace (Perfetto) of the run to this file");

  auto* validate = app.add_subcommand("validate", "Check a config without running it");
  validate->add_option("config", config, "YAML config")->required();
  validate->add_option("--set", sets, "Override a config key: key.path=value (repeatable)");

  auto* stages = app.add_subcommand("stages", "List the stage types and their parameters");
  std::vector<std::string> plugin_files;
  stages->add_option("--plugins", plugin_files, "Plugin files whose stages to list too");
  app.add_subcommand("dataset", "Build datasets from Debian's real data, write tar shards (see: flowfeed dataset --help)");
  app.add_subcommand("launch", "Start N ranks of a command with RANK/WORLD_SIZE/... set (see: flowfeed launch --help)");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? kExitOk : kExitUsage;
  }
  try {
    if (*bench) return Bench(config, sets, epochs, report, cold, trace);
    if (*train) return Train(config, sets, epochs, report, resume, cold, trace);
    if (*validate) return Validate(config, sets);
    if (*stages) return Stages(plugin_files);
  } catch (const std::exception& e) {
    std::cerr << "flowfeed: internal error: " << e.what() << "\n";
    return kExitRuntime;
  }
  return kExitUsage;
}
