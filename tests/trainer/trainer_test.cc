// The trainer on small data the tests make: it learns, it resumes exactly, it refuses bad
// checkpoints, and its ledger adds up.
#include "flowfeed/trainer.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>
#include <vector>

#include "fault_env.h"
#include "flowfeed/config.h"
#include "flowfeed/env.h"
#include "flowfeed/trace_file.h"
#include "flowfeed/util/clock.h"
#include "test_util.h"
#include "tiny_training.h"

namespace flowfeed {
namespace {

using test::TinyOptions;
using test::Train;

using test::TempDir;

// Every tensor of an archive and its nested archives (LibTorch saves a module's children as
// nested archives), by dotted name.
void Collect(torch::serialize::InputArchive& a, const std::string& prefix,
             std::map<std::string, torch::Tensor>* out) {
  for (const std::string& key : a.keys()) {
    torch::Tensor t;
    torch::serialize::InputArchive child;
    if (a.try_read(key, t))
      (*out)[prefix + key] = t;
    else if (a.try_read(key, child))
      Collect(child, prefix + key + ".", out);
  }
}

std::map<std::string, torch::Tensor> Weights(const std::string& path) {
  torch::serialize::InputArchive archive, model;
  archive.load_from(path);
  archive.read("model", model);
  std::map<std::string, torch::Tensor> out;
  Collect(model, "", &out);
  return out;
}

TEST(Trainer, LossFallsAndTheModelLearns) {
  TempDir dir;
  auto r = Train(TinyOptions(dir, 3));
  ASSERT_OK(r);
  ASSERT_EQ(r->epochs.size(), 3u);
  EXPECT_LT(r->epochs[2].loss, r->epochs[0].loss * 0.7);
  EXPECT_TRUE(r->epochs[2].has_eval);
  EXPECT_GT(r->epochs[2].eval_accuracy, 0.9);  // chance is 0.25
  EXPECT_EQ(r->epochs[0].steps, 8);
  EXPECT_EQ(r->epochs[0].samples, 256);
  EXPECT_EQ(r->epochs[2].eval_samples, 64);
  EXPECT_EQ(r->device, "cpu");
}

// The step records add up to the epoch's figures, and follow the schedule (warm-up then cosine).
TEST(Trainer, StepRecordsAddUpToTheEpochs) {
  TempDir dir;
  PipelineOptions o = TinyOptions(dir, 2);
  o.train.schedule.type = "cosine";
  o.train.schedule.warmup_epochs = 1;
  StageRegistry reg;
  RegisterBuiltinStages(&reg);
  auto t = Trainer::Create(o, reg);
  ASSERT_OK(t);
  std::vector<StepRecord> steps;
  const double before = WallSeconds();
  ASSERT_OK(t.value()->Run(nullptr, [&](const StepRecord& s) { steps.push_back(s); }));
  const TrainReport r = t.value()->report();
  ASSERT_EQ(steps.size(), 16u);
  double loss_sum[2] = {0, 0}, correct[2] = {0, 0}, wait[2] = {0, 0};
  int64_t samples[2] = {0, 0};
  for (size_t i = 0; i < steps.size(); ++i) {
    const StepRecord& s = steps[i];
    const int e = int(i / 8);
    EXPECT_EQ(s.epoch, e + 1);
    EXPECT_EQ(s.step, int64_t(i % 8) + 1);
    EXPECT_EQ(s.global_step, int64_t(i) + 1);
    EXPECT_EQ(s.steps_per_epoch, 8);
    EXPECT_EQ(s.samples, 32);
    EXPECT_GE(s.seconds, s.data_wait_seconds);
    EXPECT_GE(s.data_wait_seconds, 0);
    EXPECT_GE(s.wall_time, before);
    if (i > 0) {
      EXPECT_GE(s.wall_time, steps[i - 1].wall_time);
    }
    // Warm-up over epoch 1 (lr * step / 8), then cosine from the base down over epoch 2.
    if (i < 8) {
      EXPECT_DOUBLE_EQ(s.lr, 0.1 * double(i + 1) / 8);
    } else if (i > 8) {
      EXPECT_LT(s.lr, steps[i - 1].lr);
    }
    loss_sum[e] += s.loss * double(s.samples);
    correct[e] += s.accuracy * double(s.samples);
    wait[e] += s.data_wait_seconds;
    samples[e] += s.samples;
  }
  ASSERT_EQ(r.epochs.size(), 2u);
  for (int e = 0; e < 2; ++e) {
    EXPECT_EQ(samples[e], r.epochs[e].samples);
    EXPECT_NEAR(loss_sum[e] / double(samples[e]), r.epochs[e].loss, 1e-9);
    EXPECT_NEAR(correct[e] / double(samples[e]), r.epochs[e].accuracy, 1e-9);
    EXPECT_NEAR(wait[e], r.epochs[e].data_wait_seconds, 1e-9);
  }
  EXPECT_DOUBLE_EQ(steps.back().lr, r.epochs[1].lr);
}

TEST(Trainer, ResumeContinuesExactly) {
  TempDir a, b;
  // Uninterrupted: 3 epochs.
  ASSERT_OK(Train(TinyOptions(a, 3)));
  // Interrupted after epoch 2, then resumed for epoch 3.
  PipelineOptions first = TinyOptions(b, 2);
  ASSERT_OK(Train(first));
  PipelineOptions rest = TinyOptions(b, 3);
  auto resumed = Train(rest, b / "ckpt/model.pt");
  ASSERT_OK(resumed);
  EXPECT_EQ(resumed->start_epoch, 2);
  ASSERT_EQ(resumed->epochs.size(), 1u);
  EXPECT_EQ(resumed->epochs[0].epoch, 3);
  auto wa = Weights(a / "ckpt/model.pt"), wb = Weights(b / "ckpt/model.pt");
  ASSERT_FALSE(wa.empty());
  ASSERT_EQ(wa.size(), wb.size());
  for (const auto& [name, t] : wa) {
    ASSERT_TRUE(wb.count(name)) << name;
    EXPECT_TRUE(torch::equal(t, wb[name])) << name << " differs after resume";
  }
  // Nothing left to do: refused with a clear message.
  auto done = Train(TinyOptions(b, 3), b / "ckpt/model.pt");
  ASSERT_FALSE(done.ok());
  EXPECT_NE(done.status().message().find("nothing left"), std::string::npos);
}

TEST(Trainer, CorruptCheckpointsAreRefused) {
  TempDir dir;
  ASSERT_OK(Train(TinyOptions(dir, 1)));
  const std::string ckpt = dir / "ckpt/model.pt";
  std::vector<uint8_t> bytes = test::ReadBytes(ckpt);
  ASSERT_GT(bytes.size(), 100u);

  bytes.resize(bytes.size() / 2);  // cut short, as by a crash of a tool that is not atomic
  test::WriteBytes(dir / "cut.pt", bytes);
  auto r = Train(TinyOptions(dir, 2), dir / "cut.pt");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kCorrupt);
  EXPECT_NE(r.status().message().find("cut.pt"), std::string::npos) << r.status().message();

  test::WriteText(dir / "text.pt", "definitely not a checkpoint");
  r = Train(TinyOptions(dir, 2), dir / "text.pt");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("text.pt"), std::string::npos);

  r = Train(TinyOptions(dir, 2), dir / "missing.pt");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
}

TEST(Trainer, CheckpointOfAnotherModelIsRefused) {
  TempDir dir;
  ASSERT_OK(Train(TinyOptions(dir, 1)));
  PipelineOptions other = TinyOptions(dir, 2);
  other.train.model.hidden = {64};
  auto r = Train(other, dir / "ckpt/model.pt");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("mlp/32"), std::string::npos) << r.status().message();
  EXPECT_NE(r.status().message().find("mlp/64"), std::string::npos) << r.status().message();
}

TEST(Trainer, AFailedCheckpointWriteKeepsTheOldOne) {
  TempDir dir;
  PipelineOptions o = TinyOptions(dir, 1);
  ASSERT_OK(Train(o));
  const std::vector<uint8_t> before = test::ReadBytes(dir / "ckpt/model.pt");
  // The temporary file's name taken by a folder: writing the new checkpoint fails.
  std::filesystem::create_directories(dir / "ckpt/model.pt.tmp/blocker");
  auto r = Train(TinyOptions(dir, 2), dir / "ckpt/model.pt");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kIoError);
  EXPECT_EQ(test::ReadBytes(dir / "ckpt/model.pt"), before);  // untouched
}

TEST(Trainer, ReportHasTheLedgerAndItAddsUp) {
  TempDir dir;
  StageRegistry reg;
  RegisterBuiltinStages(&reg);
  auto t = Trainer::Create(TinyOptions(dir, 3), reg, "", 0.0);
  ASSERT_OK(t);
  ASSERT_OK(t.value()->Run());
  TrainReport r = t.value()->report();
  nlohmann::json j = nlohmann::json::parse(TrainReportJson(r));
  for (const char* part : {"config", "torch_threads", "device_probe", "pipeline_open",
                           "eval_pipeline_open", "first_batch",
                           "model_build", "model_to_device", "optimizer"})
    EXPECT_TRUE(j["setup"]["parts"].contains(part)) << part;
  ASSERT_EQ(j["epochs"].size(), 3u);
  for (const auto& e : j["epochs"]) {
    for (const char* f : {"steps", "data_wait_seconds", "h2d_seconds", "forward_seconds",
                          "backward_seconds", "optimizer_seconds"})
      EXPECT_TRUE(e["trainer"].contains(f)) << f;
    EXPECT_TRUE(e["eval"].contains("loss"));
    EXPECT_TRUE(e["eval"].contains("accuracy"));
    EXPECT_TRUE(e.contains("stages"));  // the pipeline's table for the same epoch
  }
  // Set-up parts plus each epoch's training, evaluation and checkpoint account for the wall
  // time within 5%, or 15 ms: this run lasts 60-200 ms, and on a loaded machine (the asan suite
  // in CI) the scheduler's gaps between the parts reached 10 ms, 5.7%.
  double parts = j["setup"]["seconds"].get<double>();
  for (const auto& e : r.epochs) parts += e.seconds + e.eval_seconds + e.checkpoint_seconds;
  std::string ledger;
  for (const auto& p : r.setup) ledger += p.name + "=" + std::to_string(p.seconds) + " ";
  for (const auto& e : r.epochs)
    ledger += "epoch" + std::to_string(e.epoch) + "=" + std::to_string(e.seconds) + "+" +
              std::to_string(e.eval_seconds) + "+" + std::to_string(e.checkpoint_seconds) + " ";
  EXPECT_NEAR(parts, r.wall_seconds, std::max(0.05 * r.wall_seconds, 0.015)) << ledger << " wall=" << r.wall_seconds;
  EXPECT_NEAR(j["ledger"]["unexplained_seconds"].get<double>(), r.wall_seconds - parts, 1e-9);
  EXPECT_NE(FormatTrainEpoch(r.epochs[0]).find("verdict"), std::string::npos);

  // The first-epoch gap: measured parts plus "unexplained" add up to it exactly.
  ASSERT_FALSE(r.gap.empty());
  double gap = 0;
  for (const auto& p : r.gap) gap += p.seconds;
  EXPECT_NEAR(gap, r.gap_seconds, 1e-9);
  EXPECT_EQ(r.gap.front().name, "set-up");
  EXPECT_EQ(r.gap.back().name, "unexplained");
  EXPECT_TRUE(j["first_epoch_gap"]["parts"].contains("set-up"));
  EXPECT_TRUE(j["first_epoch_gap"]["parts"].contains("first step"));
  EXPECT_NEAR(j["first_epoch_gap"]["seconds"].get<double>(), r.gap_seconds, 1e-9);
  EXPECT_NE(FormatGap(r).find("unexplained"), std::string::npos);
  EXPECT_TRUE(t.value()->trace().empty());  // not asked for
}

TEST(Trainer, TraceHasTheTrainersStepsAndThePipelinesStages) {
  TempDir dir;
  PipelineOptions o = TinyOptions(dir, 1);
  o.trace = true;
  StageRegistry reg;
  RegisterBuiltinStages(&reg);
  auto t = Trainer::Create(o, reg);
  ASSERT_OK(t);
  ASSERT_OK(t.value()->Run());
  std::map<std::string, int> n;
  for (const auto& e : t.value()->trace()) ++n[e.track + "/" + e.name];
  EXPECT_EQ(n["trainer/forward"], 8);
  EXPECT_EQ(n["trainer/backward"], 8);
  EXPECT_EQ(n["trainer/optimizer"], 8);
  EXPECT_EQ(n["trainer/evaluate"], 1);
  EXPECT_EQ(n["trainer/checkpoint"], 1);
  int normalize = 0;
  for (const auto& [k, v] : n)
    if (k.size() > 10 && k.compare(k.size() - 10, 10, "/normalize") == 0) normalize += v;
  EXPECT_EQ(normalize, 256);
  nlohmann::json trace = nlohmann::json::parse(ChromeTraceJson(t.value()->trace()));
  EXPECT_GT(trace["traceEvents"].size(), 256u);
}

}  // namespace
}  // namespace flowfeed

namespace flowfeed {
namespace {

using test::TinyOptions;
using test::Train;

// uint8 batches (a quarter of the bytes of float32) are scaled to [0, 1] by the trainer.
TEST(Trainer, TrainsOnUint8Batches) {
  TempDir dir;
  PipelineOptions o = TinyOptions(dir, 3);
  o.batch.dtype = DType::kUInt8;
  o.pipeline.pop_back();  // no normalize
  o.train.eval.pipeline.clear();
  auto r = Train(o);
  ASSERT_OK(r);
  EXPECT_LT(r->epochs[2].loss, r->epochs[0].loss * 0.8);
  EXPECT_GT(r->epochs[2].eval_accuracy, 0.8);
}

// The CUDA path (pinned batches, copies on the copy stream, uint8 batches scaled on the device) trains
// like the CPU one. Runs where LibTorch sees a GPU; skipped, and says so, elsewhere.
TEST(TrainerCuda, TrainsOnTheGpuWithUint8Batches) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device visible to LibTorch";
  TempDir dir;
  PipelineOptions o = TinyOptions(dir, 3);
  o.train.device = "cuda";
  o.batch.dtype = DType::kUInt8;
  o.pipeline.pop_back();  // no normalize: uint8 pixels go to the GPU and are scaled there
  o.train.eval.pipeline.clear();
  auto r = Train(o);
  ASSERT_OK(r);
  EXPECT_EQ(r->device.substr(0, 4), "cuda");
  EXPECT_FALSE(r->synchronized_timing);
  EXPECT_EQ(r->timing, "cuda events");
  EXPECT_LT(r->epochs[2].loss, r->epochs[0].loss);
}

// A stop requested while the evaluation runs abandons it: no metrics from part of the evaluation
// set, the epoch's checkpoint is written, and the run stops at the next epoch's first step.
std::atomic<Trainer*> g_stop_target{nullptr};
std::atomic<bool> g_stop_armed{false};

class StopDuringEvalStage : public Stage {
 public:
  Status Process(Sample&, const StageContext&) override {
    if (g_stop_armed.load())
      if (Trainer* t = g_stop_target.load()) t->RequestStop();
    return Status::Ok();
  }
};

TEST(Trainer, AStopDuringEvaluationAbandonsIt) {
  TempDir dir;
  PipelineOptions base = TinyOptions(dir, 3);  // writes the data
  StageRegistry reg;
  RegisterBuiltinStages(&reg);
  StageInfo info;
  info.name = "stop_during_eval";
  info.doc = "test: asks the trainer to stop once armed";
  info.factory = [](const StageParams&) -> Result<std::unique_ptr<Stage>> {
    return std::unique_ptr<Stage>(new StopDuringEvalStage());
  };
  ASSERT_OK(reg.Register(std::move(info)));
  // 64 evaluation samples in batches of 8: the evaluation pipeline can prefetch at most 40
  // (4 batches + 8 in flight) before the evaluation starts, so the stage sees the rest during it.
  const std::string yaml =
      "seed: 3\nthreads: 2\nepochs: 3\n"
      "source: {type: idx, root: " + dir.path() + ", images: train-images, labels: train-labels}\n"
      "pipeline: [{type: normalize, mean: [0.4], std: [0.3]}]\n"
      "batch: {size: 32}\nmodel: {type: mlp, hidden: [32]}\n"
      "eval:\n"
      "  source: {type: idx, root: " + dir.path() + ", images: test-images, labels: test-labels}\n"
      "  pipeline: [{type: stop_during_eval}]\n"
      "  batch_size: 8\n"
      "checkpoint: " + dir / "ckpt/model.pt" + "\n";
  auto options = ParseConfig(yaml, "stop.yaml", {}, reg);
  ASSERT_OK(options);
  auto created = Trainer::Create(options.value(), reg);
  ASSERT_OK(created);
  Trainer* t = created.value().get();
  g_stop_target.store(t);
  Status st = t->Run(nullptr, [&](const StepRecord& s) {
    if (s.epoch == 1 && s.step == s.steps_per_epoch) g_stop_armed.store(true);  // its last step
  });
  g_stop_target.store(nullptr);
  g_stop_armed.store(false);
  EXPECT_EQ(st.code(), StatusCode::kCancelled) << st.ToString();
  EXPECT_NE(st.message().find("stopped during epoch 2 after step 0"), std::string::npos)
      << st.message();
  TrainReport r = t->report();
  ASSERT_GE(r.epochs.size(), 1u);
  EXPECT_EQ(r.epochs[0].epoch, 1);
  EXPECT_EQ(r.epochs[0].steps, 8);
  EXPECT_FALSE(r.epochs[0].has_eval) << "the evaluation ran to its end despite the stop";
  // The checkpoint holds epoch 1 finished: a resume trains epochs 2 and 3.
  auto resumed = Trainer::Create(options.value(), reg, dir / "ckpt/model.pt");
  ASSERT_OK(resumed);
  EXPECT_EQ(resumed.value()->report().start_epoch, 1);
}

}  // namespace
}  // namespace flowfeed

namespace flowfeed {
namespace {

using test::TinyOptions;
using test::Train;

// Trainer::live() during Run(): the training pipeline's epoch, timed by the training loop, from
// the step callback and from another thread; at each epoch's end it agrees with the reports.
TEST(Trainer, LiveStatsFollowTheTrainingLoop) {
  TempDir dir;
  PipelineOptions o = TinyOptions(dir, 2);
  StageRegistry reg;
  RegisterBuiltinStages(&reg);
  auto created = Trainer::Create(o, reg);
  ASSERT_OK(created);
  Trainer& t = *created.value();
  std::atomic<bool> done{false};
  std::atomic<int> reads{0};
  std::thread watcher([&] {
    while (!done.load()) {
      LiveEpochStats l = t.live();
      EXPECT_GE(l.epoch, 1);
      EXPECT_LE(l.samples, 256);
      ++reads;
    }
  });
  int steps_seen = 0;
  std::vector<LiveEpochStats> ended;
  Status st = t.Run(
      [&](const TrainEpochStats& e) {
        LiveEpochStats l = t.live();
        EXPECT_EQ(l.epoch, e.epoch);
        EXPECT_DOUBLE_EQ(l.seconds, e.seconds);  // the loop's time, not evaluation's
        ended.push_back(std::move(l));
      },
      [&](const StepRecord& s) {
        LiveEpochStats l = t.live();
        EXPECT_EQ(l.epoch, s.epoch);
        EXPECT_EQ(l.samples, s.step * 32);
        EXPECT_EQ(l.batches, s.step);
        ++steps_seen;
      });
  done.store(true);
  watcher.join();
  ASSERT_OK(st);
  EXPECT_EQ(steps_seen, 16);
  EXPECT_GT(reads.load(), 0);
  TrainReport r = t.report();
  ASSERT_EQ(ended.size(), 2u);
  ASSERT_EQ(r.pipeline.epochs.size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    const EpochStats& es = r.pipeline.epochs[i];
    EXPECT_EQ(ended[i].samples, 256);
    ASSERT_EQ(ended[i].stages.size(), es.stages.size());
    for (size_t k = 0; k < es.stages.size(); ++k) {
      EXPECT_EQ(ended[i].stages[k].name, es.stages[k].name);
      EXPECT_EQ(ended[i].stages[k].count, es.stages[k].count);
    }
  }
}

}  // namespace
}  // namespace flowfeed

// Fault injection into checkpoint writing (through Env::Default(), the trainer's Env): each
// failure is reported naming the file, and the previous checkpoint is left intact.
namespace flowfeed {
namespace {

using test::TinyOptions;
using test::Train;

// Trains one epoch cleanly, then resumes for a second with `env` in place; the second run's
// checkpoint write must fail with an IoError whose message contains `part` (the file it names),
// and leave the first run's checkpoint as it was.
void ExpectResumeFailsKeepingTheOldOne(test::FaultEnv* env, const std::string& part) {
  TempDir dir;
  ASSERT_OK(Train(TinyOptions(dir, 1)));
  const std::vector<uint8_t> before = test::ReadBytes(dir / "ckpt/model.pt");
  Result<TrainReport> r = Status::Internal("not run");
  {
    ScopedDefaultEnv scoped(env);
    r = Train(TinyOptions(dir, 2), dir / "ckpt/model.pt");
  }
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kIoError);
  const std::string expected = dir / "ckpt/" + part;
  EXPECT_NE(r.status().message().find(expected), std::string::npos)
      << r.status().message() << "\nexpected: " << expected;
  EXPECT_EQ(test::ReadBytes(dir / "ckpt/model.pt"), before);  // the last good one
  EXPECT_FALSE(std::filesystem::exists(dir / "ckpt/model.pt.tmp"));
}

TEST(CheckpointFault, AFullDiskKeepsTheOldOne) {
  test::FaultEnv env("model.pt");
  env.write_budget = 100;  // a short write, then ENOSPC
  ExpectResumeFailsKeepingTheOldOne(&env, "model.pt.tmp: No space left on device");
}

TEST(CheckpointFault, AFailedSyncKeepsTheOldOne) {
  test::FaultEnv env("model.pt");
  env.fail_sync = true;
  ExpectResumeFailsKeepingTheOldOne(&env, "model.pt.tmp: Input/output error");
  EXPECT_EQ(env.renames, 0);  // an unsynced checkpoint never replaces the good one
}

TEST(CheckpointFault, AFailedRenameKeepsTheOldOne) {
  test::FaultEnv env("model.pt");
  env.fail_rename = true;
  ExpectResumeFailsKeepingTheOldOne(&env, "model.pt: Invalid cross-device link");
}

TEST(CheckpointFault, AFailedFolderSyncIsAnError) {
  TempDir dir;
  ASSERT_OK(Train(TinyOptions(dir, 1)));
  test::FaultEnv env;
  env.fail_sync_dir = true;
  Result<TrainReport> r = Status::Internal("not run");
  {
    ScopedDefaultEnv scoped(&env);
    r = Train(TinyOptions(dir, 2), dir / "ckpt/model.pt");
  }
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find(dir / "ckpt: Input/output error"), std::string::npos)
      << r.status().message();
}

}  // namespace
}  // namespace flowfeed
