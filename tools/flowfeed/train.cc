// train.cc: `flowfeed train`: a Trainer on the config's pipeline, with the progress line, the
// per-epoch tables, the closing figures and the reports. Runs on the command's main thread; the
// trainer's callbacks arrive on it too. A build without LibTorch says so and exits 2.
#include <iomanip>
#include <iostream>

#include "cli.h"
#include "metrics_out.h"
#include "progress.h"
#if FLOWFEED_WITH_TORCH
#include "flowfeed/trainer.h"
#include "flowfeed/util/clock.h"
#endif

namespace flowfeed::cli {

#if FLOWFEED_WITH_TORCH
namespace {

// "out/report.json" -> "out/report.rank1.json" (or "report" -> "report.rank1").
std::string RankPath(const std::string& path, int rank) {
  const std::string tag = ".rank" + std::to_string(rank);
  const size_t slash = path.find_last_of('/');
  const size_t dot = path.find_last_of('.');
  if (dot == std::string::npos || (slash != std::string::npos && dot < slash)) return path + tag;
  return path.substr(0, dot) + tag + path.substr(dot);
}

// Only rank 0 talks and reports; the others say only what went wrong (and write
// report.rank<N>.json when distributed.rank_reports asks for it).
void SilenceOtherRanks(const DistributedOptions& dist, std::string* report, std::string* html) {
  if (dist.rank == 0) return;
  std::cout.setstate(std::ios::failbit);
  if (!dist.rank_reports) {
    report->clear();
    html->clear();
    return;
  }
  if (!report->empty()) *report = RankPath(*report, dist.rank);
  if (!html->empty()) *html = RankPath(*html, dist.rank);
}

// What rank 0 says before the first step.
void PrintTrainHeader(const TrainReport& head, const PipelineOptions& options,
                      const RunArgs& args) {
  if (options.distributed.rank == 0) {
    std::cerr << "flowfeed train " << args.config << ": " << head.pipeline.source << "; "
              << head.pipeline.threads << " threads, batch " << options.batch.size
              << ", epochs " << head.start_epoch + 1 << ".." << options.epochs << "\n";
    PrintCacheHeader(head.pipeline, args.cold);
    if (options.distributed.world_size > 1)
      std::cerr << "distributed: " << head.world_size << " ranks over " << head.backend
                << ", shard policy " << head.shard_policy << ", uneven " << head.uneven << "\n";
    if (head.start_position > 0)
      std::cerr << "resume: epoch " << head.start_epoch + 1 << " from sample "
                << head.start_position << " of its order\n";
    for (const std::string& w : head.warnings) std::cerr << "warning: " << w << "\n";
  }
  std::cout << FormatSetup(head) << std::flush;
}

// The closing lines: the pipeline's verdicts, the first-epoch gap, the final accuracy.
void PrintTrainSummary(const TrainReport& r) {
  std::string verdict = FirstEpochVerdict(r.pipeline);
  if (!verdict.empty()) std::cout << "pipeline: " << verdict << "\n";
  if (std::string c = CacheVerdict(r.pipeline); !c.empty()) std::cout << "pipeline: " << c << "\n";
  std::cout << FormatGap(r);
  if (!r.epochs.empty() && r.epochs.back().has_eval)
    std::cout << "final: eval accuracy " << std::fixed << std::setprecision(2)
              << 100 * r.epochs.back().eval_accuracy << "% after epoch " << r.epochs.back().epoch
              << ", " << r.wall_seconds << " s in all" << std::defaultfloat << "\n";
}

// Trains the configured epochs with the progress line, the per-epoch tables and the metrics
// logs (rank 0).
Status RunWithProgress(Trainer* trainer, const PipelineOptions& options, MetricsOut* metrics) {
  const bool talk = options.distributed.rank == 0;
  Progress progress(options.epochs, [trainer] { return trainer->live(); });
  int progress_epoch = -1;
  int64_t global_step = 0;
  return trainer->Run(
      [&](const TrainEpochStats& e) {
        if (!talk) return;
        progress.Finish();
        TrainReport r = trainer->report();
        const EpochStats* pipeline = nullptr;
        for (const auto& pe : r.pipeline.epochs)
          if (pe.epoch == e.epoch) pipeline = &pe;
        if (pipeline) std::cout << FormatEpochTable(*pipeline);
        std::cout << FormatTrainEpoch(e) << std::flush;
        metrics->TrainEpoch(e, pipeline, global_step, options.train.eval.enabled);
      },
      [&](const StepRecord& s) {
        if (!talk) return;
        global_step = s.global_step;
        metrics->Step(s);
        if (s.epoch != progress_epoch) {
          progress.Start(s.epoch - 1, s.steps_per_epoch, 0);
          progress_epoch = s.epoch;
        }
        progress.Update();
      });
}

}  // namespace

int Train(const RunArgs& args) {
  auto t0 = SteadyClock::now();
  StageRegistry registry;
  RegisterBuiltinStages(&registry);
  PipelineOptions options;
  if (!LoadRun(args, &registry, &options)) return kExitUsage;
  const double config_seconds = SecondsSince(t0);
  const int rank = options.distributed.rank;
  const std::string who = rank == 0 && options.distributed.world_size == 1
                              ? "flowfeed: "
                              : "flowfeed [rank " + std::to_string(rank) + "]: ";
  std::string report_to = args.report, html_to = args.html;
  SilenceOtherRanks(options.distributed, &report_to, &html_to);
  const bool report = !report_to.empty() || !html_to.empty();
  const std::string label = RunLabel(args.config);

  if (args.resume_changed && args.resume.empty()) {
    std::cerr << "flowfeed: --resume-changed goes with --resume CHECKPOINT\n";
    return kExitUsage;
  }
  auto created = Trainer::Create(options, registry, args.resume, config_seconds,
                                 /*accept_changes=*/args.resume_changed);
  if (!created.ok()) {
    std::cerr << who << args.config << ": " << created.status().ToString() << "\n";
    const StatusCode code = created.status().code();
    return code == StatusCode::kInternal || code == StatusCode::kIoError ? kExitRuntime
                                                                         : kExitUsage;
  }
  std::unique_ptr<Trainer> trainer = std::move(created.value());
  StopOnSignals stop_on_signals(nullptr, trainer.get());
  const TrainReport head = trainer->report();
  PrintTrainHeader(head, options, args);
  MetricsOut metrics;
  if (rank == 0 && !metrics.Open(args, head.pipeline.provenance)) return kExitUsage;

  std::optional<TraceStream> trace;
  if (!args.trace.empty() && rank == 0) {
    trace.emplace(args.trace, [t = trainer.get()] { return t->TakeTrace(); });
    if (!trace->Start()) return kExitRuntime;
  }
  const Status st = RunWithProgress(trainer.get(), options, &metrics);
  metrics.Close();
  if (!st.ok()) {
    std::cerr << "\n" << who << st.ToString() << "\n";
    // A stopped or failed run still says how far it got.
    if (report) WriteReport(report_to, html_to, TrainReportJson(trainer->report()), label);
    if (trace) trace->Finish();
    stop_on_signals.ForgetTrainer();
    return TearDownWithin(std::move(trainer), kTearDownSeconds, StoppedExitCode(st));
  }
  const TrainReport r = trainer->report();
  PrintTrainSummary(r);
  if (report && WriteReport(report_to, html_to, TrainReportJson(r), label) != kExitOk)
    return kExitRuntime;
  if (trace) return trace->Finish();
  return kExitOk;
}

#else

int Train(const RunArgs&) {
  std::cerr << "flowfeed: this build has no trainer: LibTorch was not found when it was "
               "configured (install libtorch-dev, or point CMake at a LibTorch, and rebuild)\n";
  return kExitUsage;
}

#endif

}  // namespace flowfeed::cli
