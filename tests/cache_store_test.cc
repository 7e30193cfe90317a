// What the cache keeps: encoded files or decoded pixels. Every cache mode gives the batches an
// uncached run gives, with fusion on (the default), whether the decode scales in the DCT or not;
// the cost model of `cache.mode: auto` on figures given to it directly.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include "pipeline/cache_choice.h"
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

Image Smooth(int h, int w, int seed) {
  Image img = Image::Allocate(h, w, 3);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int c = 0; c < 3; ++c) {
        double v = 128 + 60 * std::sin((x + 7 * seed) * (0.021 + 0.004 * c)) +
                   50 * std::cos((y + 3 * seed) * (0.017 + 0.003 * c)) + 15 * std::sin((x + y) * 0.05);
        img.row<uint8_t>(y)[x * 3 + c] = uint8_t(std::clamp(v, 0.0, 255.0));
      }
  return img;
}

// 24 JPEGs of 150-260 px in 2 classes, and torchvision's training transform at 32 px: crops of
// up to the whole image, so a DCT-scaling decoder decodes most of them at 1/2 or 1/4.
PipelineOptions Photos(const TempDir& dir, bool dct_scaling) {
  const std::string root = dir / "photos";
  if (!std::filesystem::exists(root))
    for (int i = 0; i < 24; ++i)
      test::WriteJpeg(root + "/" + (i % 2 ? "b/" : "a/") + std::to_string(i) + ".jpg",
                      Smooth(150 + 5 * i, 200 + 3 * i, i), 90);
  PipelineOptions o;
  o.source.root = root;
  o.epochs = 3;
  o.threads = 2;
  o.batch.size = 5;
  StageParams decode, crop;
  decode.Set("dct_scaling", dct_scaling);
  crop.Set("size", std::vector<int64_t>{32});
  o.pipeline = {Spec("decode", decode), Spec("random_resized_crop", crop),
                Spec("random_horizontal_flip"), Spec("normalize")};
  return o;
}

using RunOutcome = test::EpochsRun;
RunOutcome RunAll(const PipelineOptions& o) { return test::RunEpochs(o); }

const StageStats* FindStage(const EpochStats& e, const std::string& name) {
  for (const auto& s : e.stages)
    if (s.name == name || s.name.rfind(name + " ", 0) == 0) return &s;
  return nullptr;
}

// The promise: cache off, memory, disk, a reused disk cache, auto (memory and disk, and memory
// alone), explicit files, and any thread count give the same batches, with fusion on. Without
// DCT scaling the cache keeps decoded pixels; with it, the cache keeps the files (pixels of a
// whole image would differ from the crop-scaled decode an uncached sample gets).
TEST(CacheStore, EveryCacheModeGivesTheUncachedBatchesWithFusionOn) {
  for (bool dct : {false, true}) {
    SCOPED_TRACE(dct ? "dct_scaling: true" : "dct_scaling: false");
    TempDir dir;
    PipelineOptions o = Photos(dir, dct);
    o.cache.mode = CacheMode::kOff;
    RunOutcome off = RunAll(o);
    ASSERT_OK(off.status);
    ASSERT_EQ(off.digests.size(), 3u);
    EXPECT_GT(FindStage(off.stats.epochs[0], "decode")->fused, 0);  // fusion is at work

    struct Case {
      const char* name;
      CacheMode mode;
      std::string path, after;
      int64_t budget;
      int threads;
    };
    std::vector<Case> cases = {
        {"memory", CacheMode::kMemory, "", "", 0, 2},
        {"memory, 1 thread", CacheMode::kMemory, "", "", 0, 1},
        {"disk", CacheMode::kDisk, dir / "disk", "", 0, 2},
        {"disk reused", CacheMode::kDisk, dir / "disk", "", 0, 2},
        {"auto, memory and disk", CacheMode::kAuto, dir / "auto", "", 100000, 2},
        {"auto, memory only", CacheMode::kAuto, "", "", 0, 1},
        {"files (after read)", CacheMode::kMemory, "", "read", 0, 2},
        {"files on disk (after read)", CacheMode::kDisk, dir / "files", "read", 0, 2},
    };
    if (!dct) {  // explicit pixels (refused with DCT scaling: see below)
      cases.push_back({"pixels (after decode)", CacheMode::kMemory, "", "decode", 0, 2});
      cases.push_back({"pixels on disk (after decode)", CacheMode::kDisk, dir / "px", "decode", 0, 1});
    }
    for (const Case& c : cases) {
      SCOPED_TRACE(c.name);
      PipelineOptions p = o;
      p.cache.mode = c.mode;
      p.cache.path = c.path;
      p.cache.after = c.after;
      p.cache.budget_bytes = c.budget;
      p.threads = c.threads;
      RunOutcome r = RunAll(p);
      ASSERT_OK(r.status);
      EXPECT_EQ(r.digests, off.digests);
      const std::string& store = r.stats.cache_store;
      EXPECT_TRUE(store == "files" || store == "pixels") << store;
      if (dct || c.after == "read") {
        EXPECT_EQ(store, "files");
        EXPECT_EQ(r.stats.cache_placement, "read");
      } else if (c.after == "decode") {
        EXPECT_EQ(store, "pixels");
        EXPECT_EQ(r.stats.cache_placement, "decode");
      }
      // Without cache.after, what is kept was decided, and the decision says why.
      EXPECT_EQ(c.after.empty(), !r.stats.cache_decision.empty()) << r.stats.cache_decision;
      if (dct && c.after.empty()) {  // decided, not configured: says why
        EXPECT_NE(r.stats.cache_decision.find("dct_scaling: true"), std::string::npos);
      }
      // Epoch 3 starts every sample from the cache: nothing is read from storage.
      const EpochStats& e3 = r.stats.epochs[2];
      EXPECT_EQ(e3.cache.hits, 24);
      EXPECT_EQ(FindStage(e3, "read")->count, 0);
      EXPECT_EQ(e3.bytes_read, 0);
      if (std::string(c.name) == "disk reused") {
        EXPECT_EQ(r.stats.cache.reused_entries, 24);
      }
    }
  }
}

// A files cache holds the files' bytes: hits skip the read, and the decode (fused) still runs.
TEST(CacheStore, FilesAreServedInsteadOfReadsAndDecodedAgain) {
  TempDir dir;
  PipelineOptions o = Photos(dir, false);
  o.cache.mode = CacheMode::kMemory;
  o.cache.after = "read";
  RunOutcome r = RunAll(o);
  ASSERT_OK(r.status);
  int64_t file_bytes = 0;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir / "photos"))
    if (e.is_regular_file()) file_bytes += int64_t(e.file_size());
  EXPECT_EQ(r.stats.cache.memory_entries, 24);
  EXPECT_GE(r.stats.cache.memory_bytes, file_bytes);
  EXPECT_LE(r.stats.cache.memory_bytes, file_bytes + 24 * 64);  // rounded up to 64 bytes each
  const EpochStats& e3 = r.stats.epochs[2];
  EXPECT_EQ(e3.cache.bytes, file_bytes);
  EXPECT_EQ(FindStage(e3, "read")->count, 0);
  EXPECT_EQ(FindStage(e3, "decode")->count, 24);
  EXPECT_EQ(FindStage(e3, "decode")->fused, 24);  // region decodes, as uncached samples get
}

// An explicit cache point at a DCT-scaling decoder whose crop is fused is refused, naming the
// key and the ways out; the default point moves to the files and says why.
TEST(CacheStore, ExplicitPixelCacheUnderDctScalingIsRefused) {
  TempDir dir;
  PipelineOptions o = Photos(dir, true);
  o.cache.mode = CacheMode::kMemory;
  o.cache.after = "decode";
  RunOutcome r = RunAll(o);
  ASSERT_FALSE(r.status.ok());
  const std::string m = r.status.message();
  EXPECT_NE(m.find("cache.after: 'decode'"), std::string::npos) << m;
  EXPECT_NE(m.find("dct_scaling: false"), std::string::npos) << m;
  EXPECT_NE(m.find("fuse: false"), std::string::npos) << m;

  o.fuse = false;  // no fused crop: whole images are what every sample gets
  r = RunAll(o);
  ASSERT_OK(r.status);
  EXPECT_EQ(r.stats.cache_store, "pixels");
}

// Without cache.after, every mode decides between files and pixels and says why; with it,
// nothing is probed.
TEST(CacheStore, TheDecisionSaysWhatIsKeptAndWhy) {
  TempDir dir;
  PipelineOptions o = Photos(dir, false);
  for (CacheMode mode : {CacheMode::kAuto, CacheMode::kMemory}) {
    o.cache.mode = mode;
    RunOutcome r = RunAll(o);
    ASSERT_OK(r.status);
    EXPECT_EQ(r.stats.cache_decision.rfind("keeping ", 0), 0u) << r.stats.cache_decision;
    EXPECT_NE(r.stats.cache_decision.find("to fill"), std::string::npos);
    EXPECT_EQ(r.stats.cache_store == "files", r.stats.cache_placement == "read");
  }
  o.cache.after = "decode";
  EXPECT_EQ(RunAll(o).stats.cache_decision, "");
}

// A disk cache the last run filled decides what this run keeps, without a probe: a close call
// of the model must not throw away a warm cache.
TEST(CacheStore, WhatTheDiskCacheHoldsIsKept) {
  for (const char* first : {"decode", "read"}) {
    SCOPED_TRACE(first);
    TempDir dir;
    PipelineOptions o = Photos(dir, false);
    o.cache.mode = CacheMode::kDisk;
    o.cache.path = dir / "cache";
    o.cache.after = first;
    ASSERT_OK(RunAll(o).status);
    o.cache.after = "";
    RunOutcome again = RunAll(o);
    ASSERT_OK(again.status);
    EXPECT_EQ(again.stats.cache_store, std::string(first) == "read" ? "files" : "pixels");
    EXPECT_EQ(again.stats.cache.reused_entries, 24);
    EXPECT_NE(again.stats.cache_decision.find("as the disk cache at"), std::string::npos)
        << again.stats.cache_decision;
  }
}

// The model on given figures: photos (large pixels, decoding dearer than filling is cheap).
CacheCosts PhotoCosts() {
  CacheCosts c;
  c.probed = 16;
  c.read_seconds = 0.1e-3;
  c.compute_seconds = 0.56e-3;  // whole-image decode
  c.rerun_seconds = 0.40e-3;    // region decode
  c.file_bytes = 27e3;
  c.pixel_bytes = 640e3;
  c.fresh_bytes_per_second = 1.6e9;  // fill 0.4 ms
  return c;
}

TEST(CacheChoiceModel, ShortRunsKeepFilesLongRunsKeepPixels) {
  const int64_t budget = int64_t(8) << 30;
  CacheChoice three = ChooseCacheStore(PhotoCosts(), 5000, 3, budget, false, "decode");
  EXPECT_FALSE(three.keep_pixels) << three.reason;
  // fill 0.4 ms + compute 0.56 ms - file fill 0.017 ms = 0.943 ms = 2.36 reruns: 1.36 later epochs.
  EXPECT_NEAR(three.payback_epochs, 1.36, 0.02);
  EXPECT_EQ(three.reason.rfind("keeping the encoded files", 0), 0u) << three.reason;
  CacheChoice ten = ChooseCacheStore(PhotoCosts(), 5000, 10, budget, false, "decode");
  EXPECT_TRUE(ten.keep_pixels) << ten.reason;
  EXPECT_LT(ten.pixels_seconds, ten.files_seconds);
  EXPECT_EQ(ten.reason.rfind("keeping the output of 'decode'", 0), 0u) << ten.reason;
  EXPECT_NE(ten.reason.find("this run has 9"), std::string::npos) << ten.reason;
}

TEST(CacheChoiceModel, SmallImagesKeepPixels) {
  CacheCosts c;  // a 28x28 grey PNG: the pixels are about the file's size
  c.probed = 16;
  c.read_seconds = 20e-6;
  c.compute_seconds = c.rerun_seconds = 15e-6;
  c.file_bytes = 350;
  c.pixel_bytes = 784;
  c.fresh_bytes_per_second = 1e9;
  EXPECT_TRUE(ChooseCacheStore(c, 60000, 3, int64_t(1) << 30, false, "decode").keep_pixels);
  EXPECT_FALSE(ChooseCacheStore(c, 60000, 1, int64_t(1) << 30, false, "decode").keep_pixels);
}

TEST(CacheChoiceModel, PixelsThatDoNotFitTheBudgetAreRecomputed) {
  // 5000 x 640 KB = 3.2 GB against a 320 MB budget and no disk: 90% of pixels recomputed.
  CacheChoice c = ChooseCacheStore(PhotoCosts(), 5000, 20, int64_t(320e6), false, "decode");
  EXPECT_FALSE(c.keep_pixels) << c.reason;
  // With a disk store the rest is kept there: pixels again.
  EXPECT_TRUE(ChooseCacheStore(PhotoCosts(), 5000, 20, int64_t(320e6), true, "decode").keep_pixels);
}

TEST(CacheChoiceModel, NothingMeasuredKeepsFiles) {
  CacheCosts c;
  CacheChoice choice = ChooseCacheStore(c, 100, 50, int64_t(1) << 30, false, "decode");
  EXPECT_FALSE(choice.keep_pixels);
  EXPECT_NE(choice.reason.find("no sample could be measured"), std::string::npos);
}

TEST(CacheChoiceModel, FreshMemoryProbeTimesItsCopies) {
  FreshMemoryProbe probe(size_t(1) << 20);
  EXPECT_EQ(probe.SlowestBytesPerSecond(), 0);
  std::vector<uint8_t> data(300000, 7);
  EXPECT_TRUE(probe.Copy(data.data(), data.size()));
  EXPECT_TRUE(probe.Copy(data.data(), data.size()));
  EXPECT_GT(probe.SlowestBytesPerSecond(), 0);
  EXPECT_TRUE(probe.Copy(data.data(), data.size()));
  EXPECT_FALSE(probe.Copy(data.data(), data.size()));  // 1 MiB holds three
}

}  // namespace
}  // namespace flowfeed
