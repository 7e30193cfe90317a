// tiny_training.h: the trainer tests' small run (IDX band images the test writes, an MLP that
// learns them in a few epochs) and a helper that trains it to the end.
#pragma once

#include <gtest/gtest.h>

#include <string>

#include "flowfeed/config.h"
#include "flowfeed/registry.h"
#include "flowfeed/trainer.h"
#include "test_util.h"

namespace flowfeed::test {

// Writes 256 training and 64 evaluation images into `dir` and returns the run's options:
// flip + normalize, batches of 32, SGD with momentum, evaluation, a checkpoint in dir/ckpt.
inline PipelineOptions TinyOptions(const TempDir& dir, int epochs) {
  WriteBandIdx(dir / "train-images", dir / "train-labels", 256, 1);
  WriteBandIdx(dir / "test-images", dir / "test-labels", 64, 2);
  const std::string yaml =
      "seed: 3\n"
      "threads: 2\n"
      "epochs: " + std::to_string(epochs) + "\n"
      "source: {type: idx, root: " + dir.path() + ", images: train-images, labels: train-labels}\n"
      "pipeline:\n"
      "  - {type: random_horizontal_flip}\n"
      "  - {type: normalize, mean: [0.4], std: [0.3]}\n"
      "batch: {size: 32}\n"
      "model: {type: mlp, hidden: [32]}\n"
      "optimizer: {type: sgd, lr: 0.1, momentum: 0.9}\n"
      "schedule: {type: constant}\n"
      "eval:\n"
      "  source: {type: idx, root: " + dir.path() + ", images: test-images, labels: test-labels}\n"
      "  pipeline: [{type: normalize, mean: [0.4], std: [0.3]}]\n"
      "checkpoint: " + dir / "ckpt/model.pt" + "\n";
  StageRegistry reg;
  RegisterBuiltinStages(&reg);
  auto r = ParseConfig(yaml, "tiny.yaml", {}, reg);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? r.value() : PipelineOptions{};
}

// The trainer for `o` over the built-in stages, resuming from `resume` ("" for none), accepting
// changed settings when asked (--resume-changed).
inline Result<std::unique_ptr<Trainer>> Create(const PipelineOptions& o,
                                               const std::string& resume = "",
                                               bool accept_changes = false) {
  StageRegistry reg;  // the trainer keeps nothing of it
  RegisterBuiltinStages(&reg);
  return Trainer::Create(o, reg, resume, 0, accept_changes);
}

// Creates the trainer for `o` (built-in stages), runs it to the end, returns its report.
inline Result<TrainReport> Train(const PipelineOptions& o, const std::string& resume = "") {
  auto t = Create(o, resume);
  if (!t.ok()) return t.status();
  Status st = t.value()->Run();
  if (!st.ok()) return st;
  return t.value()->report();
}

}  // namespace flowfeed::test
