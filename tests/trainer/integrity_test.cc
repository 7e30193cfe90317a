// What the trainer checks before it trusts what it resumes from and what it trains on: a
// damaged checkpoint, a loss that is no longer a number, a resume whose config changed, and
// evaluation data whose classes differ from the training data's.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "flowfeed/config.h"
#include "flowfeed/trainer.h"
#include "test_util.h"
#include "tiny_training.h"

namespace flowfeed {
namespace {

using test::Create;
using test::TempDir;
using test::TinyOptions;
using test::Train;

bool Contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

std::string Joined(const std::vector<std::string>& v) {
  std::string out;
  for (const std::string& s : v) out += s + "\n";
  return out;
}

// ------------------------------------------------------------------ damaged checkpoints

TEST(CheckpointChecksum, FlippedBitsAnywhereAreRefusedAsDamaged) {
  TempDir dir;
  ASSERT_OK(Train(TinyOptions(dir, 1)));
  const std::vector<uint8_t> good = test::ReadBytes(dir / "ckpt/model.pt");
  ASSERT_GT(good.size(), 1000u);
  // The middle of the file (tensor data: LibTorch's reader does not check the zip's CRCs), and
  // the checksum itself at the end.
  for (size_t at : {good.size() / 2, good.size() - 1}) {
    std::vector<uint8_t> bad = good;
    bad[at] ^= 0x10;
    test::WriteBytes(dir / "flipped.pt", bad);
    auto r = Train(TinyOptions(dir, 2), dir / "flipped.pt");
    ASSERT_FALSE(r.ok()) << "byte " << at;
    EXPECT_EQ(r.status().code(), StatusCode::kCorrupt) << r.status().ToString();
    EXPECT_TRUE(Contains(r.status().message(), dir / "flipped.pt")) << r.status().message();
    EXPECT_TRUE(Contains(r.status().message(), "damaged")) << r.status().message();
  }
  // Untouched, it resumes.
  ASSERT_OK(Train(TinyOptions(dir, 2), dir / "ckpt/model.pt"));
}

TEST(CheckpointChecksum, ACheckpointWhoseChecksumWasCutOffIsRefused) {
  TempDir dir;
  ASSERT_OK(Train(TinyOptions(dir, 1)));
  std::vector<uint8_t> bytes = test::ReadBytes(dir / "ckpt/model.pt");
  // Without its 30-byte zip comment (and with the comment's length put back to 0) it is a
  // well-formed zip: only the missing checksum shows that it was altered.
  bytes.resize(bytes.size() - 30);
  bytes[bytes.size() - 2] = 0;
  bytes[bytes.size() - 1] = 0;
  test::WriteBytes(dir / "cut.pt", bytes);
  auto r = Train(TinyOptions(dir, 2), dir / "cut.pt");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kCorrupt);
  EXPECT_TRUE(Contains(r.status().message(), "cut.pt is damaged: its checksum is missing"))
      << r.status().message();
}

// Copies every entry of an archive (nested archives, tensors, values) into `out`, leaving
// out `skip` at the top level, and rewriting "format" to `format`.
void CopyArchive(torch::serialize::InputArchive& in, torch::serialize::OutputArchive& out,
                 const std::string& skip, const std::string& format) {
  for (const std::string& key : in.keys()) {
    if (key == skip) continue;
    torch::serialize::InputArchive child;
    torch::Tensor t;
    c10::IValue v;
    if (key == "format") {
      out.write(key, c10::IValue(format));
    } else if (in.try_read(key, child)) {
      torch::serialize::OutputArchive copy;
      CopyArchive(child, copy, "", format);
      out.write(key, copy);
    } else if (in.try_read(key, t)) {
      out.write(key, t);
    } else if (in.try_read(key, v)) {
      out.write(key, v);
    }
  }
}

// Format 2 (before checksums and settings were recorded) is still resumed, with a warning
// that says what cannot be checked.
TEST(CheckpointChecksum, ACheckpointFromBeforeChecksumsResumesWithAWarning) {
  TempDir dir;
  ASSERT_OK(Train(TinyOptions(dir, 1)));
  {
    torch::serialize::InputArchive in;
    in.load_from(dir / "ckpt/model.pt");
    torch::serialize::OutputArchive out;
    CopyArchive(in, out, "fingerprint", "flowfeed-checkpoint-2");
    out.save_to(dir / "v2.pt");
  }
  auto t = Create(TinyOptions(dir, 2), dir / "v2.pt");
  ASSERT_OK(t);
  const std::string warnings = Joined(t.value()->report().warnings);
  EXPECT_TRUE(Contains(warnings, "v2.pt was written by an older flowfeed")) << warnings;
  EXPECT_TRUE(Contains(warnings, "no checksum")) << warnings;
  ASSERT_OK(t.value()->Run());
}

// ------------------------------------------------------------------ a loss that diverges

// A run to the same checkpoint with the largest learning rate a config allows on inputs scaled by
// 1/`std` (normalize's std): the training diverges.
PipelineOptions DivergingOptions(const TempDir& dir, int epochs, double std) {
  PipelineOptions o = TinyOptions(dir, epochs);
  o.train.optimizer.lr = kMaxRate;
  o.pipeline[1].params.Set("std", std::vector<double>{std});
  return o;
}

TEST(Divergence, ANonFiniteLossStopsTheRunAndKeepsTheLastCheckpoint) {
  TempDir dir;
  ASSERT_OK(Train(TinyOptions(dir, 1)));
  const std::vector<uint8_t> before = test::ReadBytes(dir / "ckpt/model.pt");
  // Inputs scaled by 5e19: the loss explodes within the first epoch.
  PipelineOptions o = DivergingOptions(dir, 2, 1e-20);
  std::vector<double> losses;
  auto t = Create(o);
  ASSERT_OK(t);
  Status st = t.value()->Run(nullptr, [&](const StepRecord& s) { losses.push_back(s.loss); });
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << st.ToString();
  ASSERT_FALSE(losses.empty());
  ASSERT_FALSE(std::isfinite(losses.back()));
  const std::string where = "epoch 1, step " + std::to_string(losses.size()) + ": the loss is";
  EXPECT_TRUE(Contains(st.message(), where)) << st.message();
  EXPECT_TRUE(Contains(st.message(), "were not saved")) << st.message();
  EXPECT_TRUE(Contains(st.message(), dir / "ckpt/model.pt")) << st.message();
  EXPECT_EQ(test::ReadBytes(dir / "ckpt/model.pt"), before);  // the last good one
}

// A step whose loss (computed before its update) was finite can still leave weights that are
// not: inputs scaled to about 5e36 (normalize's std 1e-37) keep the first forward pass finite
// (hidden values near 1e36, below float's 3.4e38), but the largest learning rate times those
// values overflows in the first update. With a checkpoint after every step, none is written
// from them; the earlier one stays.
TEST(Divergence, WeightsThatAreNotFiniteAreNeverSaved) {
  TempDir dir;
  ASSERT_OK(Train(TinyOptions(dir, 1)));
  const std::vector<uint8_t> before = test::ReadBytes(dir / "ckpt/model.pt");
  PipelineOptions o = DivergingOptions(dir, 1, 1e-37);
  o.train.checkpoint_every = 1;
  auto r = Train(o);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << r.status().ToString();
  EXPECT_TRUE(
      Contains(r.status().message(), "epoch 1, step 1: the weights after the step are not finite"))
      << r.status().message();
  EXPECT_TRUE(Contains(r.status().message(), "were not saved")) << r.status().message();
  EXPECT_EQ(test::ReadBytes(dir / "ckpt/model.pt"), before);
}

// ------------------------------------------------------------------ a resume that changed

TEST(ResumeSettings, ChangesAreRefusedNamingEachWithOldAndNewValues) {
  TempDir dir;
  ASSERT_OK(Train(TinyOptions(dir, 1)));
  PipelineOptions o = TinyOptions(dir, 2);
  o.seed = 4;
  o.train.optimizer.lr = 0.01;
  o.batch.size = 16;
  o.pipeline.pop_back();  // the normalize
  auto r = Train(o, dir / "ckpt/model.pt");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  const std::string& m = r.status().message();
  for (const char* change :
       {"sampler.seed: 3 -> 4", "optimizer.lr: 0.1 -> 0.01", "pipeline.batch.size: 32 -> 16",
        "pipeline.stages: ", "--resume-changed", "4 changed"})
    EXPECT_TRUE(Contains(m, change)) << change << " in\n" << m;
  EXPECT_TRUE(Contains(m, dir / "ckpt/model.pt")) << m;
  // The data: another dataset of the same shape.
  test::WriteBandIdx(dir / "other-images", dir / "other-labels", 256, 9);
  o = TinyOptions(dir, 2);
  o.source.images = "other-images";
  o.source.labels = "other-labels";
  r = Train(o, dir / "ckpt/model.pt");
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(Contains(r.status().message(), "data.source.images: train-images -> other-images"))
      << r.status().message();
  EXPECT_TRUE(Contains(r.status().message(), "data.listing: xxh3 ")) << r.status().message();
}

// A mid-epoch checkpoint resumed with another seed would train part of the epoch twice and
// part never: refused.
TEST(ResumeSettings, AMidEpochResumeWithAnotherSeedIsRefused) {
  TempDir dir;
  PipelineOptions o = TinyOptions(dir, 1);
  auto t = Create(o);
  ASSERT_OK(t);
  Trainer* trainer = t.value().get();
  Status st = trainer->Run(nullptr, [&](const StepRecord& s) {
    if (s.step == 3) trainer->RequestStop();
  });
  ASSERT_EQ(st.code(), StatusCode::kCancelled) << st.ToString();
  o.seed = 5;
  auto r = Train(o, dir / "ckpt/model.pt");
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(Contains(r.status().message(), "sampler.seed: 3 -> 5")) << r.status().message();
  // Accepted, the warning says what the changed order means for the interrupted epoch.
  auto accepted = Create(o, dir / "ckpt/model.pt", /*accept_changes=*/true);
  ASSERT_OK(accepted);
  const std::string w = Joined(accepted.value()->report().warnings);
  EXPECT_TRUE(Contains(w, "sampler.seed: 3 -> 5")) << w;
  EXPECT_TRUE(Contains(w, "may repeat or miss samples")) << w;
}

// The optimizer's hyper-parameters as the checkpoint's optimizer archive holds them (group 0).
std::map<std::string, double> SavedOptimizerOptions(const std::string& path) {
  torch::serialize::InputArchive archive, opt, groups, group, options;
  archive.load_from(path);
  archive.read("optimizer", opt);
  std::map<std::string, double> out;
  if (!opt.try_read("param_groups", groups)) return out;
  for (const std::string& g : groups.keys()) {
    if (!groups.try_read(g, group) || !group.try_read("options", options)) continue;
    for (const std::string& key : options.keys()) {
      c10::IValue v;
      if (options.try_read(key, v) && v.isDouble()) out[key] = v.toDouble();
    }
    break;
  }
  return out;
}

TEST(ResumeSettings, ResumeChangedAcceptsWithAWarningAndTheNewValuesApply) {
  TempDir dir;
  ASSERT_OK(Train(TinyOptions(dir, 1)));
  ASSERT_EQ(SavedOptimizerOptions(dir / "ckpt/model.pt")["momentum"], 0.9);
  PipelineOptions o = TinyOptions(dir, 2);
  o.train.optimizer.lr = 0.01;
  o.train.optimizer.momentum = 0.5;
  auto t = Create(o, dir / "ckpt/model.pt", /*accept_changes=*/true);
  ASSERT_OK(t);
  const std::string w = Joined(t.value()->report().warnings);
  EXPECT_TRUE(Contains(w, "optimizer.lr: 0.1 -> 0.01")) << w;
  EXPECT_TRUE(Contains(w, "optimizer.momentum: 0.9 -> 0.5")) << w;
  ASSERT_OK(t.value()->Run());
  const TrainReport r = t.value()->report();
  ASSERT_EQ(r.epochs.size(), 1u);
  EXPECT_DOUBLE_EQ(r.epochs[0].lr, 0.01);
  // The JSON report lists the warning with the pipeline's.
  const nlohmann::json j = nlohmann::json::parse(TrainReportJson(r));
  EXPECT_TRUE(Contains(j["run"]["warnings"].dump(), "optimizer.lr: 0.1 -> 0.01")) << j["run"];
  // The config's momentum, not the checkpoint's.
  EXPECT_EQ(SavedOptimizerOptions(dir / "ckpt/model.pt")["momentum"], 0.5);
}

TEST(ResumeSettings, AnotherOptimizerTypeIsRefusedOrStartsFresh) {
  TempDir dir;
  ASSERT_OK(Train(TinyOptions(dir, 1)));
  PipelineOptions o = TinyOptions(dir, 2);
  o.train.optimizer.type = "adamw";
  auto refused = Train(o, dir / "ckpt/model.pt");
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(Contains(refused.status().message(), "optimizer.type: sgd -> adamw"))
      << refused.status().message();
  auto t = Create(o, dir / "ckpt/model.pt", /*accept_changes=*/true);
  ASSERT_OK(t);  // not LibTorch's internal assert
  EXPECT_TRUE(Contains(Joined(t.value()->report().warnings), "the new optimizer starts fresh"));
  ASSERT_OK(t.value()->Run());
  EXPECT_EQ(t.value()->report().epochs.size(), 1u);
}

// Unchanged, a resume sees no change and says nothing.
TEST(ResumeSettings, AnUnchangedResumeHasNoWarnings) {
  TempDir dir;
  ASSERT_OK(Train(TinyOptions(dir, 1)));
  PipelineOptions o = TinyOptions(dir, 2);
  o.threads = 1;  // not a setting the resume depends on
  auto r = Train(o, dir / "ckpt/model.pt");
  ASSERT_OK(r);
  EXPECT_TRUE(r->warnings.empty()) << Joined(r->warnings);
}

// ------------------------------------------------------------------ evaluation classes

// Band images (class i: a bright band at rows 4i..4i+3 of 16) as JPEG files in one folder per
// class name; the band follows the name's position in "abcde".
void BandFolder(const std::string& root, const std::string& classes, int per_class) {
  for (char name : classes) {
    const int c = int(std::string("abcde").find(name));
    for (int i = 0; i < per_class; ++i) {
      Image img = Image::Allocate(16, 16, 1);
      for (int y = 0; y < 16; ++y)
        for (int x = 0; x < 16; ++x)
          img.row<uint8_t>(y)[x] = uint8_t((y / 4 == c ? 170 : 40) + (x * 7 + y * 3 + i) % 30);
      test::WriteJpeg(root + "/" + name + "/" + std::to_string(i) + ".jpg", img);
    }
  }
}

Result<PipelineOptions> FolderOptions(const TempDir& dir, const std::string& eval_root) {
  const std::string stages =
      "[{type: decode, color: gray}, {type: normalize, mean: [0.3], std: [0.3]}]\n";
  const std::string yaml = "seed: 1\nthreads: 2\nepochs: 3\n"
                           "source: {type: image_folder, root: " + dir / "train" + "}\n"
                           "pipeline: " + stages +
                           "batch: {size: 16}\n"
                           "model: {type: mlp, hidden: [32]}\n"
                           "optimizer: {type: sgd, lr: 0.1, momentum: 0.9}\n"
                           "schedule: {type: constant}\n"
                           "eval:\n"
                           "  source: {type: image_folder, root: " + eval_root + "}\n"
                           "  pipeline: " + stages;
  StageRegistry reg;
  RegisterBuiltinStages(&reg);
  return ParseConfig(yaml, "folders.yaml", {}, reg);
}

TEST(EvalClasses, AnEvalFolderMissingATrainingClassIsLabelledByName) {
  TempDir dir;
  BandFolder(dir / "train", "abcd", 24);
  BandFolder(dir / "val", "bcd", 8);  // no "a": its own numbering would shift every label
  auto o = FolderOptions(dir, dir / "val");
  ASSERT_OK(o);
  auto t = Create(o.value());
  ASSERT_OK(t);
  const std::string w = Joined(t.value()->report().warnings);
  EXPECT_TRUE(Contains(w, "lacks 1 of the 4 training classes (a)")) << w;
  ASSERT_OK(t.value()->Run());
  const TrainReport r = t.value()->report();
  ASSERT_TRUE(r.epochs.back().has_eval);
  EXPECT_EQ(r.epochs.back().eval_samples, 24);
  EXPECT_GT(r.epochs.back().accuracy, 0.9);
  EXPECT_GT(r.epochs.back().eval_accuracy, 0.9);
}

TEST(EvalClasses, AnEvalClassTheTrainingDataLacksIsRefusedBeforeTraining) {
  TempDir dir;
  BandFolder(dir / "train", "abcd", 4);
  BandFolder(dir / "val", "abcde", 2);
  auto o = FolderOptions(dir, dir / "val");
  ASSERT_OK(o);
  auto r = Train(o.value());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  const std::string& m = r.status().message();
  EXPECT_TRUE(Contains(m, "does not have: e")) << m;
  EXPECT_TRUE(Contains(m, dir / "val")) << m;
  EXPECT_TRUE(Contains(m, dir / "train")) << m;
}

}  // namespace
}  // namespace flowfeed
