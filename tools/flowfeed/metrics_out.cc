// metrics_out.cc: the figures of a step and of an epoch as metrics records, and the sinks the
// command line asked for (metrics_out.h).
#include "metrics_out.h"

#include <cmath>
#include <iostream>

#include "flowfeed/util/clock.h"
#if FLOWFEED_WITH_TORCH
#include "flowfeed/trainer.h"
#endif

namespace flowfeed::cli {

MetricsOut::MetricsOut()
    : sinks_([](const std::string& path, const Status& error) {
        std::cerr << "flowfeed: warning: metrics log " << path << ": " << error.message()
                  << "; no more records go to it (the run goes on)\n";
      }) {}

bool MetricsOut::Open(const RunArgs& args, const Provenance& provenance) {
  const Status st = sinks_.Open({args.tensorboard, args.jsonl, args.csv}, provenance);
  if (!st.ok()) std::cerr << "flowfeed: " << st.message() << "\n";
  return st.ok();
}

#if FLOWFEED_WITH_TORCH

void MetricsOut::Step(const StepRecord& s) {
  if (sinks_.empty()) return;
  MetricsRecord r;
  r.kind = MetricsRecord::Kind::kStep;
  r.epoch = s.epoch;
  r.step = s.step;
  r.global_step = s.global_step;
  r.wall_time = s.wall_time;
  r.values = {
      {"loss", s.loss},
      {"accuracy", s.accuracy},
      {"lr", s.lr},
      {"samples", double(s.samples)},
      {"seconds", s.seconds},
      {"samples_per_second", s.seconds > 0 ? double(s.samples) / s.seconds : 0},
      {"data_wait_seconds", s.data_wait_seconds},
      {"data_wait_share", s.seconds > 0 ? s.data_wait_seconds / s.seconds : 0},
  };
  sinks_.Write(r);
}

void MetricsOut::TrainEpoch(const TrainEpochStats& e, const EpochStats* pipeline,
                            int64_t global_step, bool eval_configured) {
  if (sinks_.empty()) return;
  MetricsRecord r;
  r.kind = MetricsRecord::Kind::kEpoch;
  r.epoch = e.epoch;
  r.global_step = global_step;
  r.wall_time = WallSeconds();
  r.values = {
      {"loss", e.loss},
      {"accuracy", e.accuracy},
      {"lr", e.lr},
      {"steps", double(e.steps)},
      {"samples", double(e.samples)},
      {"seconds", e.seconds},
      {"samples_per_second", e.samples_per_second},
      {"data_wait_seconds", e.data_wait_seconds},
      {"data_wait_share", e.seconds > 0 ? e.data_wait_seconds / e.seconds : 0},
      {"h2d_seconds", e.h2d_seconds},
      {"forward_seconds", e.forward_seconds},
      {"backward_seconds", e.backward_seconds},
      {"optimizer_seconds", e.optimizer_seconds},
      {"allreduce_seconds", e.allreduce_seconds},
      {"first_step_seconds", e.first_step_seconds},
      {"median_step_seconds", e.median_step_seconds},
      {"checkpoint_seconds", e.checkpoint_seconds},
  };
  if (eval_configured || e.has_eval) {
    const double none = std::nan("");
    r.values.emplace_back("eval_loss", e.has_eval ? e.eval_loss : none);
    r.values.emplace_back("eval_accuracy", e.has_eval ? e.eval_accuracy : none);
    r.values.emplace_back("eval_seconds", e.has_eval ? e.eval_seconds : none);
  }
  if (pipeline) AppendPipelineEpochValues(*pipeline, &r.values);
  sinks_.Write(r);
}

#else

void MetricsOut::Step(const StepRecord&) {}
void MetricsOut::TrainEpoch(const TrainEpochStats&, const EpochStats*, int64_t, bool) {}

#endif

}  // namespace flowfeed::cli
