// bench.cc: `flowfeed bench`: the pipeline alone, epoch by epoch, with the per-stage table after
// each epoch and the verdicts, memory and summary at the end. Runs on the command's main thread
// (the pipeline's own threads are its business).
#include <sys/resource.h>

#include <algorithm>
#include <cstdio>
#include <iomanip>
#include <iostream>

#include "cli.h"
#include "metrics_out.h"
#include "progress.h"

namespace flowfeed::cli {
namespace {

// The run's closing lines: verdicts, memory, new warnings, epoch 1 against the later ones.
void PrintBenchSummary(const RunStats& rs, const RunStats& head) {
  std::string verdict = FirstEpochVerdict(rs);
  if (!verdict.empty()) std::cout << verdict << "\n";
  if (std::string c = CacheVerdict(rs); !c.empty()) std::cout << c << "\n";
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
}

}  // namespace

int Bench(const RunArgs& args) {
  StageRegistry registry;
  RegisterBuiltinStages(&registry);
  PipelineOptions options;
  if (!LoadRun(args, &registry, &options)) return kExitUsage;

  auto opened = Pipeline::Open(options, registry);
  if (!opened.ok()) {
    std::cerr << "flowfeed: " << args.config << ": " << opened.status().ToString() << "\n";
    return kExitUsage;
  }
  std::unique_ptr<Pipeline> pipeline = std::move(opened.value());
  const RunStats head = pipeline->stats();
  std::cerr << "flowfeed bench " << args.config << ": " << head.source << "; " << head.threads
            << " threads, batch " << options.batch.size << ", " << options.epochs
            << " epochs (open " << std::fixed << std::setprecision(2) << head.open_seconds
            << " s)\n" << std::defaultfloat;
  PrintCacheHeader(head, args.cold);
  MetricsOut metrics;
  if (!metrics.Open(args, head.provenance)) return kExitUsage;

  const std::string label = RunLabel(args.config);
  const bool report = !args.report.empty() || !args.html.empty();
  Progress progress(options.epochs, [p = pipeline.get()] { return p->live(); });
  // drop_last leaves the partial last batch out of the epoch.
  const int64_t epoch_samples =
      std::min(pipeline->epoch_length(), pipeline->batches_per_epoch() * options.batch.size);
  std::optional<TraceStream> trace;
  if (!args.trace.empty()) {
    trace.emplace(args.trace, [p = pipeline.get()] { return p->TakeTrace(); });
    if (!trace->Start()) return kExitRuntime;
  }
  StopOnSignals stop_on_signals(pipeline.get());
  for (int e = 0; e < options.epochs; ++e) {
    progress.Start(e, pipeline->batches_per_epoch(), epoch_samples);
    while (true) {
      BatchPtr batch;
      Status st = pipeline->Next(&batch);
      if (!st.ok()) {
        std::cerr << "\nflowfeed: " << st.ToString() << "\n";
        // The epochs that finished are still worth a report, whatever stopped the run.
        if (report) WriteReport(args.report, args.html, ReportJson(pipeline->stats()), label);
        if (trace) trace->Finish();
        metrics.Close();
        return TearDownWithin(std::move(pipeline), kTearDownSeconds, StoppedExitCode(st));
      }
      if (!batch) break;
      progress.Update();
    }
    progress.Finish();
    RunStats rs = pipeline->stats();
    if (!rs.epochs.empty()) {
      std::cout << FormatEpochTable(rs.epochs.back()) << std::flush;
      metrics.PipelineEpoch(rs.epochs.back());
    }
  }
  metrics.Close();

  const RunStats rs = pipeline->stats();
  PrintBenchSummary(rs, head);
  if (report && WriteReport(args.report, args.html, ReportJson(rs), label) != kExitOk)
    return kExitRuntime;
  if (trace) return trace->Finish();
  return kExitOk;
}

}  // namespace flowfeed::cli
