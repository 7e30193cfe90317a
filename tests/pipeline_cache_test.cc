// The first-epoch cache seen through the pipeline: same batches with and without it, placement
// rules, partial budgets, reuse across runs.
#include <gtest/gtest.h>

#include <filesystem>
#include <map>

#include "flowfeed/config.h"
#include "flowfeed/pipeline.h"
#include "flowfeed/registry.h"
#include "test_util.h"

namespace flowfeed {
namespace {

using test::TempDir;

StageSpec Spec(const std::string& type, StageParams params = {}) {
  StageSpec s;
  s.type = type;
  s.params = std::move(params);
  return s;
}

// A JPEG folder with torchvision-like training transforms behind a deterministic prefix
// (decode, resize to 48x48): the cache sits after `resize`.
PipelineOptions PhotoOptions(const TempDir& dir) {
  if (!std::filesystem::exists(dir / "photos")) test::MakeImageFolder(dir / "photos", 3, 12);
  PipelineOptions o;
  o.source.root = dir / "photos";
  o.epochs = 3;
  o.threads = 2;
  o.batch.size = 5;
  StageParams resize;
  resize.Set("size", std::vector<int64_t>{48, 48});
  StageParams crop;
  crop.Set("size", std::vector<int64_t>{32});
  o.pipeline = {Spec("decode"), Spec("resize", resize), Spec("random_resized_crop", crop),
                Spec("random_horizontal_flip"), Spec("normalize")};
  o.cache.after = "resize";  // pixels; what the cost model chooses is cache_store_test's
  return o;
}

using RunResult = test::EpochsRun;
RunResult RunAll(const PipelineOptions& o) { return test::RunEpochs(o); }

const StageStats* FindStage(const EpochStats& e, const std::string& name) {
  for (const auto& s : e.stages)
    if (s.name == name) return &s;
  return nullptr;
}

TEST(PipelineCache, SameBatchesOffMemoryDiskAndReusedDisk) {
  TempDir dir;
  PipelineOptions o = PhotoOptions(dir);
  o.cache.mode = CacheMode::kOff;
  RunResult off = RunAll(o);
  ASSERT_OK(off.status);
  ASSERT_EQ(off.digests.size(), 3u);
  EXPECT_EQ(off.stats.cache_placement, "");

  o.cache.mode = CacheMode::kMemory;
  RunResult memory = RunAll(o);
  ASSERT_OK(memory.status);
  EXPECT_EQ(memory.digests, off.digests);
  EXPECT_EQ(memory.stats.cache_placement, "resize");
  // The pipeline prefetches across the epoch boundary, so an early epoch-2 sample may be
  // computed (a miss) before the late epoch-1 sample with the same index looks it up (then a
  // hit): which epoch a lookup counts in depends on scheduling. What does not: every lookup is
  // a hit or a miss, and once the token window (28 samples here, fewer than an epoch) has moved
  // past epoch 1, every lookup hits. So epoch 3 is exact.
  for (const EpochStats& e : memory.stats.epochs) EXPECT_EQ(e.cache.hits + e.cache.misses, 36);
  const EpochStats& m1 = memory.stats.epochs[0];
  const EpochStats& m3 = memory.stats.epochs[2];
  EXPECT_GE(m1.cache.misses, 28);
  EXPECT_EQ(m3.cache.hits, 36);
  EXPECT_EQ(m3.cache.bytes, 36 * 48 * 48 * 3);
  // Epochs 2+ skip reading, decoding and resizing altogether.
  EXPECT_EQ(FindStage(m3, "read")->count, 0);
  EXPECT_EQ(FindStage(m3, "decode")->count, 0);
  EXPECT_EQ(FindStage(m3, "resize")->count, 0);
  EXPECT_EQ(FindStage(m3, "random_resized_crop")->count, 36);
  EXPECT_EQ(m3.bytes_read, 0);
  EXPECT_GT(m1.bytes_read, 0);
  EXPECT_EQ(memory.stats.cache.memory_entries, 36);
  // Charged by storage capacity: the pixels, plus at most 1/8 for reused buffers.
  EXPECT_GE(memory.stats.cache.memory_bytes, 36 * 48 * 48 * 3);
  EXPECT_LE(memory.stats.cache.memory_bytes, 36 * 48 * 48 * 3 * 9 / 8);
  EXPECT_GT(memory.stats.cache.overhead_bytes, 0);
  EXPECT_EQ(memory.stats.cache_fingerprint.size(), 16u);

  o.cache.mode = CacheMode::kDisk;
  o.cache.path = dir / "cache";
  RunResult disk = RunAll(o);
  ASSERT_OK(disk.status);
  EXPECT_EQ(disk.digests, off.digests);
  EXPECT_EQ(disk.stats.epochs[2].cache.hits, 36);
  EXPECT_EQ(disk.stats.cache.memory_entries, 0);

  // A second run finds the disk cache committed and starts from it in epoch 1 already.
  RunResult again = RunAll(o);
  ASSERT_OK(again.status);
  EXPECT_EQ(again.digests, off.digests);
  EXPECT_EQ(again.stats.epochs[0].cache.hits, 36);
  EXPECT_EQ(FindStage(again.stats.epochs[0], "decode")->count, 0);
  EXPECT_EQ(again.stats.cache.reused_entries, 36);
  bool said_reusing = false;
  for (const auto& m : again.stats.cache.messages)
    if (m.find("reusing 36") != std::string::npos) said_reusing = true;
  EXPECT_TRUE(said_reusing);

  // Different thread counts and prefetch depths change nothing either.
  o.threads = 1;
  o.prefetch = 1;
  RunResult one = RunAll(o);
  ASSERT_OK(one.status);
  EXPECT_EQ(one.digests, off.digests);
}

TEST(PipelineCache, ChangedStageParametersRebuildTheDiskCache) {
  TempDir dir;
  PipelineOptions o = PhotoOptions(dir);
  o.cache.mode = CacheMode::kDisk;
  o.cache.path = dir / "cache";
  ASSERT_OK(RunAll(o).status);
  o.pipeline[1].params.Set("size", std::vector<int64_t>{40, 40});
  RunResult r = RunAll(o);
  ASSERT_OK(r.status);
  EXPECT_LE(r.stats.epochs[0].cache.hits, 8);  // only what epoch 2's prefetch computed first
  bool explained = false;
  for (const auto& m : r.stats.cache.messages)
    if (m.find("rebuilding") != std::string::npos && m.find("stages") != std::string::npos)
      explained = true;
  EXPECT_TRUE(explained);
  EXPECT_EQ(r.stats.epochs[2].cache.hits, 36);
}

TEST(PipelineCache, BudgetSmallerThanTheDataServesWhatFits) {
  TempDir dir;
  PipelineOptions o = PhotoOptions(dir);
  o.cache.mode = CacheMode::kOff;
  RunResult off = RunAll(o);
  ASSERT_OK(off.status);
  o.cache.mode = CacheMode::kMemory;
  const int64_t per_sample = 48 * 48 * 3;
  o.cache.budget_bytes = 10 * per_sample;
  RunResult partial = RunAll(o);
  ASSERT_OK(partial.status);
  EXPECT_EQ(partial.digests, off.digests);
  for (const auto& e : partial.stats.epochs) EXPECT_EQ(e.cache.hits + e.cache.misses, 36);
  // The cache charges each image's storage capacity, at most 1/8 above its pixels (larger
  // buffers are cached as right-sized copies): 8 to 10 samples fit.
  const int64_t kept = partial.stats.cache.memory_entries;
  EXPECT_GE(kept, 8);
  EXPECT_LE(kept, 10);
  EXPECT_LE(partial.stats.cache.memory_bytes, o.cache.budget_bytes);
  EXPECT_EQ(partial.stats.epochs[2].cache.hits, kept);
  EXPECT_EQ(FindStage(partial.stats.epochs[2], "decode")->count, 36 - kept);
  // Every miss offers its sample; all but the ones that fit are turned away.
  int64_t misses = 0;
  for (const auto& e : partial.stats.epochs) misses += e.cache.misses;
  EXPECT_EQ(partial.stats.cache.dropped, misses - kept);

  // auto: what does not fit in memory goes to the disk file.
  o.cache.mode = CacheMode::kAuto;
  o.cache.path = dir / "auto";
  RunResult spill = RunAll(o);
  ASSERT_OK(spill.status);
  EXPECT_EQ(spill.digests, off.digests);
  EXPECT_EQ(spill.stats.epochs[2].cache.hits, 36);
  const int64_t in_memory = spill.stats.cache.memory_entries;
  EXPECT_GE(in_memory, 8);
  // The rest spilled to the file: the next run reuses them (and keeps others in memory once
  // epoch 1 has read them again).
  RunResult reuse = RunAll(o);
  ASSERT_OK(reuse.status);
  EXPECT_EQ(reuse.digests, off.digests);
  EXPECT_EQ(reuse.stats.cache.reused_entries, 36 - in_memory);
  EXPECT_GE(reuse.stats.epochs[0].cache.hits, 36 - in_memory);
  EXPECT_EQ(reuse.stats.epochs[2].cache.hits, 36);
}

TEST(PipelineCache, PlacementFollowsTheDeterministicPrefix) {
  StageRegistry reg;
  RegisterBuiltinStages(&reg);
  TempDir dir;
  PipelineOptions o = PhotoOptions(dir);
  o.cache.after = "";  // the default point
  Result<CachePlacement> plan = PlanCache(o, reg);
  ASSERT_OK(plan);
  EXPECT_TRUE(plan->enabled);
  EXPECT_EQ(plan->stages, 2);
  EXPECT_EQ(plan->after, "resize");

  o.cache.after = "decode";  // earlier is always allowed
  plan = PlanCache(o, reg);
  ASSERT_OK(plan);
  EXPECT_EQ(plan->stages, 1);

  o.cache.after = "random_horizontal_flip";  // after two random stages: refused
  plan = PlanCache(o, reg);
  ASSERT_FALSE(plan.ok());
  EXPECT_NE(plan.status().message().find("random_resized_crop"), std::string::npos)
      << plan.status().message();
  EXPECT_NE(plan.status().message().find("allow_frozen_augmentation"), std::string::npos);

  o.cache.allow_frozen_augmentation = true;  // opted in: allowed, with a warning
  plan = PlanCache(o, reg);
  ASSERT_OK(plan);
  EXPECT_TRUE(plan->frozen);
  EXPECT_EQ(plan->stages, 4);
  RunResult frozen = RunAll(o);
  ASSERT_OK(frozen.status);
  ASSERT_EQ(frozen.stats.warnings.size(), 1u);
  EXPECT_NE(frozen.stats.warnings[0].find("random_resized_crop"), std::string::npos);
  EXPECT_EQ(FindStage(frozen.stats.epochs[2], "random_resized_crop")->count, 0);
  // Frozen: epochs 2 and 3 replay epoch 1's crops and flips (same samples, same order of
  // draws), so only the shuffled order differs; the unfrozen pipeline differs in pixels too.

  o.cache.after = "no_such_stage";
  plan = PlanCache(o, reg);
  ASSERT_FALSE(plan.ok());
  EXPECT_NE(plan.status().message().find("no_such_stage"), std::string::npos);

  o.cache.after = "";
  o.pipeline.insert(o.pipeline.begin() + 1, Spec("random_horizontal_flip"));
  plan = PlanCache(o, reg);  // decode, flip, ...: only decode is cached
  ASSERT_OK(plan);
  EXPECT_EQ(plan->after, "decode");

  o.cache.mode = CacheMode::kOff;
  plan = PlanCache(o, reg);
  ASSERT_OK(plan);
  EXPECT_FALSE(plan->enabled);
}

TEST(PipelineCache, ConfigRefusesAFrozenCachePointWithItsLine) {
  StageRegistry reg;
  RegisterBuiltinStages(&reg);
  std::vector<ConfigError> errors;
  auto r = ParseConfig(
      "source: {type: image_folder, root: x}\n"
      "pipeline:\n"
      "  - {type: decode}\n"
      "  - {type: random_horizontal_flip}\n"
      "  - {type: normalize}\n"
      "cache: {mode: memory, after: normalize}\n",
      "c.yaml", {}, reg, &errors);
  ASSERT_FALSE(r.ok());
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].where.line, 6);
  EXPECT_NE(errors[0].ToString().find("random_horizontal_flip"), std::string::npos)
      << errors[0].ToString();
  r = ParseConfig(
      "source: {type: image_folder, root: x}\n"
      "pipeline: [{type: decode}, {type: random_horizontal_flip}]\n"
      "cache: {mode: auto, budget: 64MiB, path: /tmp/c, commit_seconds: 0.5}\n",
      "c.yaml", {}, reg, &errors);
  ASSERT_OK(r);
  EXPECT_EQ(r->cache.mode, CacheMode::kAuto);
  EXPECT_EQ(r->cache.budget_bytes, int64_t(64) << 20);
  EXPECT_EQ(r->cache.path, "/tmp/c");
  EXPECT_EQ(r->cache.commit_seconds, 0.5);
  r = ParseConfig(
      "source: {type: image_folder, root: x}\n"
      "pipeline: [{type: decode}]\n"
      "cache: {mode: disk, budget: lots}\n",
      "c.yaml", {}, reg, &errors);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(errors.size(), 2u);  // the budget, and disk without a path
}

TEST(PipelineCache, IdxWithOnlyRandomStagesHasNothingToCache) {
  TempDir dir;
  test::WriteIdx(dir / "i.idx", dir / "l.idx", 20, 4, 4);
  PipelineOptions o;
  o.source.type = "idx";
  o.source.root = dir.path();
  o.source.images = "i.idx";
  o.source.labels = "l.idx";
  o.pipeline = {Spec("random_horizontal_flip")};
  RunResult r = RunAll(o);
  ASSERT_OK(r.status);
  EXPECT_EQ(r.stats.cache_placement, "");
  EXPECT_NE(r.stats.cache_note.find("nothing to cache"), std::string::npos);
  EXPECT_EQ(r.stats.epochs[0].cache.mode, "off");
}

}  // namespace
}  // namespace flowfeed
