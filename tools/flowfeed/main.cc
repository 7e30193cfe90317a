// The flowfeed command line: bench, train, report, validate, stages, dataset, launch.
//
// Exit codes: 0 success, 2 bad usage or config (nothing ran), 1 failure while running.

#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
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
#include "flowfeed/report_html.h"
#include "flowfeed/source.h"
#include "flowfeed/source_registry.h"
#include "flowfeed/stats.h"
#include "flowfeed/version.h"
#include "progress.h"
#include "flowfeed/util/clock.h"
#include "flowfeed/util/file.h"
#include "flowfeed/util/poller.h"
#include "flowfeed/util/strings.h"
#if FLOWFEED_WITH_TORCH
#include "flowfeed/trainer.h"
#endif

namespace flowfeed::cli {
int RunDatasetCommand(const std::vector<std::string>& args);
int RunLaunchCommand(const std::vector<std::string>& args);
}  // namespace flowfeed::cli

namespace {

using flowfeed::Status;
using flowfeed::cli::Progress;

constexpr int kExitOk = 0;
constexpr int kExitRuntime = 1;
constexpr int kExitUsage = 2;

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
  return flowfeed::Fmt("%.0f MiB", double(bytes) / (1024.0 * 1024.0));
}

// What a run says before its first epoch: the cache's placement and state, and warnings.
void PrintCacheHeader(const flowfeed::RunStats& head, bool cold) {
  if (!head.cache_placement.empty()) {
    std::cerr << "cache: " << head.cache_mode << ", after '" << head.cache_placement
              << "', memory budget " << MiB(head.cache.budget_bytes) << ", fingerprint "
              << head.cache_fingerprint << "\n";
    if (!head.cache_decision.empty()) std::cerr << "cache: " << head.cache_decision << "\n";
  } else {
    std::cerr << "cache: none (" << head.cache_note << ")\n";
  }
  for (const std::string& m : head.cache.messages) std::cerr << "cache: " << m << "\n";
  for (const std::string& w : head.warnings) std::cerr << "warning: " << w << "\n";
  if (cold) std::cerr << "cold: the dataset's files were evicted from the page cache\n";
}

// Writes a JSON report or trace (`what`) to `path`; the exit code for it. Through a temporary
// file and a rename, so a reader never sees half of one; not synced (Durability::kNone): a
// report is read by people and tools after the run, nothing resumes from it.
int WriteOutput(const std::string& what, const std::string& path, const std::string& text) {
  const flowfeed::Status s =
      flowfeed::WriteFileAtomically(nullptr, path, text, flowfeed::Durability::kNone);
  if (!s.ok()) {
    std::cerr << "flowfeed: cannot write " << what << " " << path << " (" << s.message()
              << ")\n";
    return kExitRuntime;
  }
  std::cerr << what << ": " << path << "\n";
  return kExitOk;
}

// Writes a run's JSON report to `json_path` and, when `html_path` is set, the same report drawn
// as a page (flowfeed/report_html.h) labelled `label`; either path may be "". The exit code.
int WriteReport(const std::string& json_path, const std::string& html_path,
                const std::string& json, const std::string& label) {
  int code = kExitOk;
  if (!json_path.empty()) code = WriteOutput("report", json_path, json);
  if (!html_path.empty()) {
    auto page = flowfeed::RenderHtmlReport({{label, json_path, json}});
    if (!page.ok()) {
      std::cerr << "flowfeed: " << html_path << ": " << page.status().message() << "\n";
      return kExitRuntime;
    }
    if (WriteOutput("html report", html_path, page.value()) != kExitOk) code = kExitRuntime;
  }
  return code;
}

// "configs/photos.yaml" -> "photos": how a run is named on its page.
std::string RunLabel(const std::string& config) {
  size_t slash = config.find_last_of('/');
  std::string base = slash == std::string::npos ? config : config.substr(slash + 1);
  size_t dot = base.find_last_of('.');
  return dot == std::string::npos || dot == 0 ? base : base.substr(0, dot);
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

// Installs OnStopSignal for its lifetime. With a pipeline, a poller turns the first signal into
// Pipeline::Cancel() (not async-signal-safe, so not called from the handler itself).
class StopOnSignals {
 public:
  explicit StopOnSignals(flowfeed::Pipeline* cancel = nullptr) {
    struct sigaction sa {};
    sa.sa_handler = OnStopSignal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int_);
    sigaction(SIGTERM, &sa, &old_term_);
    if (cancel)
      watcher_ = std::make_unique<flowfeed::Poller>(std::chrono::milliseconds(20), [cancel] {
        if (g_signal.load() == 0) return true;
        cancel->Cancel();
        return false;
      });
  }
  ~StopOnSignals() {
    watcher_.reset();  // before the handlers go: a signal meanwhile is still turned into a stop
    sigaction(SIGINT, &old_int_, nullptr);
    sigaction(SIGTERM, &old_term_, nullptr);
  }
  StopOnSignals(const StopOnSignals&) = delete;
  StopOnSignals& operator=(const StopOnSignals&) = delete;

 private:
  struct sigaction old_int_ {}, old_term_ {};
  std::unique_ptr<flowfeed::Poller> watcher_;
};

// The exit code of a run that a signal stopped.
int SignalExitCode() { return 128 + g_signal.load(); }

// The exit code of a run that ended with `st`: 128 + the signal when a signal cancelled it,
// otherwise a failure while running.
int StoppedExitCode(const Status& st) {
  return st.code() == flowfeed::StatusCode::kCancelled && g_signal.load() != 0 ? SignalExitCode()
                                                                               : kExitRuntime;
}

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
          const std::string& report_path, const std::string& html_path, bool cold,
          const std::string& trace_path) {
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

  Progress progress(options.epochs, [p = pipeline.get()] { return p->live(); });
  // drop_last leaves the partial last batch out of the epoch.
  const int64_t epoch_samples =
      std::min(pipeline->epoch_length(), pipeline->batches_per_epoch() * options.batch.size);
  StopOnSignals stop_on_signals(pipeline.get());
  for (int e = 0; e < options.epochs; ++e) {
    progress.Start(e, pipeline->batches_per_epoch(), epoch_samples);
    while (true) {
      flowfeed::BatchPtr batch;
      Status st = pipeline->Next(&batch);
      if (!st.ok()) {
        std::cerr << "\nflowfeed: " << st.ToString() << "\n";
        // The epochs that finished are still worth a report, whatever stopped the run.
        if (!report_path.empty() || !html_path.empty())
          WriteReport(report_path, html_path, flowfeed::ReportJson(pipeline->stats()),
                      RunLabel(config));
        return TearDownWithin(std::move(pipeline), kTearDownSeconds, StoppedExitCode(st));
      }
      if (!batch) break;
      progress.Update();
    }
    progress.Finish();
    flowfeed::RunStats rs = pipeline->stats();
    if (!rs.epochs.empty()) std::cout << flowfeed::FormatEpochTable(rs.epochs.back()) << std::flush;
  }

  flowfeed::RunStats rs = pipeline->stats();
  std::string verdict = flowfeed::FirstEpochVerdict(rs);
  if (!verdict.empty()) std::cout << verdict << "\n";
  if (std::string c = flowfeed::CacheVerdict(rs); !c.empty()) std::cout << c << "\n";
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
  if ((!report_path.empty() || !html_path.empty()) &&
      WriteReport(report_path, html_path, flowfeed::ReportJson(rs), RunLabel(config)) != kExitOk)
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
          const std::string& report_path, const std::string& html_path, const std::string& resume,
          bool cold, const std::string& trace_path) {
#if FLOWFEED_WITH_TORCH
  auto t0 = flowfeed::SteadyClock::now();
  flowfeed::StageRegistry registry;
  flowfeed::RegisterBuiltinStages(&registry);
  flowfeed::PipelineOptions options;
  if (!LoadRun(config, sets, epochs, cold, trace_path, &registry, &options)) return kExitUsage;
  double config_seconds = flowfeed::SecondsSince(t0);
  const int rank = options.distributed.rank;
  const std::string who = rank == 0 && options.distributed.world_size == 1
                              ? "flowfeed: "
                              : "flowfeed [rank " + std::to_string(rank) + "]: ";
  // Only rank 0 talks and reports; the others say only what went wrong (and write
  // report.rank<N>.json when distributed.rank_reports asks for it).
  std::string report_to = report_path, html_to = html_path;
  if (rank != 0) {
    std::cout.setstate(std::ios::failbit);
    if (!options.distributed.rank_reports) {
      report_to.clear();
      html_to.clear();
    } else {
      if (!report_to.empty()) report_to = RankPath(report_to, rank);
      if (!html_to.empty()) html_to = RankPath(html_to, rank);
    }
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

  flowfeed::Trainer* tp = trainer.get();
  Progress progress(options.epochs, [tp] { return tp->live(); });
  int progress_epoch = -1;
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
          progress.Start(epoch, steps, 0);
          progress_epoch = epoch;
        }
        progress.Update();
        (void)step;
        (void)loss;
      });
  if (!st.ok()) {
    std::cerr << "\n" << who << st.ToString() << "\n";
    // A stopped or failed run still says how far it got.
    if (!report_to.empty() || !html_to.empty())
      WriteReport(report_to, html_to, flowfeed::TrainReportJson(trainer->report()),
                  RunLabel(config));
    g_stoppable.store(nullptr);
    return TearDownWithin(std::move(trainer), kTearDownSeconds, StoppedExitCode(st));
  }
  flowfeed::TrainReport r = trainer->report();
  std::string verdict = flowfeed::FirstEpochVerdict(r.pipeline);
  if (!verdict.empty()) std::cout << "pipeline: " << verdict << "\n";
  if (std::string c = flowfeed::CacheVerdict(r.pipeline); !c.empty())
    std::cout << "pipeline: " << c << "\n";
  std::cout << flowfeed::FormatGap(r);
  if (!r.epochs.empty() && r.epochs.back().has_eval)
    std::cout << "final: eval accuracy " << std::fixed << std::setprecision(2)
              << 100 * r.epochs.back().eval_accuracy << "% after epoch " << r.epochs.back().epoch
              << ", " << r.wall_seconds << " s in all" << std::defaultfloat << "\n";
  if ((!report_to.empty() || !html_to.empty()) &&
      WriteReport(report_to, html_to, flowfeed::TrainReportJson(r), RunLabel(config)) != kExitOk)
    return kExitRuntime;
  if (!trace_path.empty() && rank == 0) return WriteTrace(trace_path, trainer->trace());
  return kExitOk;
#else
  (void)config, (void)sets, (void)epochs, (void)report_path, (void)html_path, (void)resume;
  (void)cold;
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
  std::cout << "source types (source.type):\n\n";
  for (const flowfeed::SourceInfo* info : flowfeed::BuiltinSources().List()) {
    std::cout << info->name << "  (" << (info->traits.gives_pixels ? "pixels" : "encoded files")
              << (info->traits.sequential ? ", read in shard order" : "") << ")\n    "
              << info->doc << "\n";
    for (const flowfeed::SourceKeySpec& k : info->keys) {
      std::cout << "    " << k.name;
      if (k.required)
        std::cout << " (required)";
      else if (!k.default_value.empty())
        std::cout << " = " << k.default_value;
      std::cout << "\n        " << k.doc << "\n";
    }
    std::cout << "\n";
  }
  return kExitOk;
}

// `flowfeed report A.json [B.json ...] -o page.html`: one report drawn, or several overlaid.
int Report(const std::vector<std::string>& paths, std::string output,
           const std::vector<std::string>& labels, const std::string& title) {
  if (labels.size() > paths.size()) {
    std::cerr << "flowfeed: " << labels.size() << " --label values for " << paths.size()
              << " reports\n";
    return kExitUsage;
  }
  std::vector<flowfeed::HtmlReportRun> runs;
  for (size_t i = 0; i < paths.size(); ++i) {
    std::vector<uint8_t> bytes;
    Status read = flowfeed::ReadFileBytes(paths[i], &bytes);
    if (!read.ok()) {
      std::cerr << "flowfeed: cannot read report " << read.message() << "\n";  // names the file
      return kExitUsage;
    }
    runs.push_back({i < labels.size() ? labels[i] : "", paths[i],
                    std::string(bytes.begin(), bytes.end())});
  }
  auto page = flowfeed::RenderHtmlReport(runs, title);
  if (!page.ok()) {
    std::cerr << "flowfeed: " << page.status().message() << "\n";
    return kExitUsage;
  }
  if (output.empty()) {
    // report.json -> report.html, next to the (first) report.
    output = paths[0];
    size_t slash = output.find_last_of('/');
    size_t dot = output.find_last_of('.');
    if (dot != std::string::npos && (slash == std::string::npos || dot > slash)) output.resize(dot);
    output += paths.size() > 1 ? ".compare.html" : ".html";
  }
  return WriteOutput("html report", output, page.value());
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

  std::string html;
  bench->add_option("--html", html, "Write the report as an HTML page with charts to this file");
  train->add_option("--html", html, "Write the report as an HTML page with charts to this file");

  auto* report_cmd = app.add_subcommand(
      "report", "Draw JSON reports (bench/train --report) as one HTML page; two or more overlay");
  std::vector<std::string> report_files, labels;
  std::string output, title;
  report_cmd->add_option("reports", report_files, "JSON reports")->required();
  report_cmd->add_option("-o,--output", output,
                         "The HTML file (default: the first report's name with .html)");
  report_cmd->add_option("--label", labels,
                         "Name of each report in the page, in order (default: file names)");
  report_cmd->add_option("--title", title, "The page's title");

  auto* validate = app.add_subcommand("validate", "Check a config without running it");
  validate->add_option("config", config, "YAML config")->required();
  validate->add_option("--set", sets, "Override a config key: key.path=value (repeatable)");

  auto* stages = app.add_subcommand(
      "stages", "List the stage types and their parameters, then the source types and their keys");
  std::vector<std::string> plugin_files;
  stages->add_option("--plugins", plugin_files, "Plugin files whose stages to list too");
  auto* options_cmd =
      app.add_subcommand("options", "Print the config key reference (docs/config.md's key tables)");
  app.add_subcommand("dataset", "Build datasets from Debian's real data, write tar shards (see: flowfeed dataset --help)");
  app.add_subcommand("launch", "Start N ranks of a command with RANK/WORLD_SIZE/... set (see: flowfeed launch --help)");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? kExitOk : kExitUsage;
  }
  try {
    if (*bench) return Bench(config, sets, epochs, report, html, cold, trace);
    if (*train) return Train(config, sets, epochs, report, html, resume, cold, trace);
    if (*report_cmd) return Report(report_files, output, labels, title);
    if (*validate) return Validate(config, sets);
    if (*stages) return Stages(plugin_files);
    if (*options_cmd) {
      std::cout << flowfeed::ConfigReference();
      return kExitOk;
    }
  } catch (const std::exception& e) {
    std::cerr << "flowfeed: internal error: " << e.what() << "\n";
    return kExitRuntime;
  }
  return kExitUsage;
}
