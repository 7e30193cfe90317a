// The live progress line: FormatProgressLine()'s parts for a terminal and for a log, and the
// lines `flowfeed bench` really writes in both cases.
#include "flowfeed/progress.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>

#include "test_util.h"

namespace flowfeed {
namespace {

using test::TempDir;

// Epoch 2 of 5, 160 of 469 batches, 20,410 images in 10 s (2,041 img/s), 9 s of images still to
// come, all cache hits so far, resize with 4.8 of the stages' 10 busy seconds.
ProgressView MidEpoch() {
  ProgressView v;
  v.epoch = 2;
  v.epochs = 5;
  v.batches = 160;
  v.total_batches = 469;
  v.epoch_samples = 20410 + 9 * 2041;
  v.live.epoch = 2;
  v.live.seconds = 10;
  v.live.samples = 20410;
  v.live.batches = 160;
  v.live.cache_mode = "memory";
  v.live.cache_hits = 20410;
  v.live.cache_misses = 0;
  v.live.stages = {{"cache", 0.5, 20410}, {"read", 0.2, 0}, {"resize", 4.8, 20410},
                   {"random_resized_crop", 3.0, 20410}, {"batch", 1.5, 20410}};
  v.finished_seconds = 25.75;
  // Epoch 1 took 25.75 s, but epoch 2 is past a tenth: the run's ETA projects epochs 3-5 like
  // epoch 2 (19 s each): 9 s + 3 x 19 s = 66 s.
  v.last_epoch_seconds = 25.75;
  return v;
}

bool Has(const std::string& line, const std::string& part) {
  return line.find(part) != std::string::npos;
}

TEST(ProgressLine, TerminalForm) {
  EXPECT_EQ(FormatProgressLine(MidEpoch(), true),
            "epoch 2/5 [#######.............] 160/469  2,041 img/s  ETA 9s (run 1m06s)  "
            "cache 100% hit  busiest: resize 48%");
}

TEST(ProgressLine, PlainForm) {
  EXPECT_EQ(FormatProgressLine(MidEpoch(), false),
            "epoch 2/5: 160/469 batches, 2041 img/s, ETA 9s (run 1m06s), cache 100% hit, "
            "busiest stage resize (48% of stage time)");
}

TEST(ProgressLine, CachePartOnlyWithACacheThatWasLookedUp) {
  ProgressView v = MidEpoch();
  v.live.cache_mode = "off";
  EXPECT_FALSE(Has(FormatProgressLine(v, true), "cache"));
  EXPECT_FALSE(Has(FormatProgressLine(v, false), "cache"));
  v.live.cache_mode = "disk";
  v.live.cache_hits = v.live.cache_misses = 0;
  EXPECT_FALSE(Has(FormatProgressLine(v, false), "cache"));
  // Rounded, but never to 100% or 0% unless every lookup hit or missed.
  v.live.cache_hits = 997;
  v.live.cache_misses = 3;
  EXPECT_TRUE(Has(FormatProgressLine(v, false), ", cache 99% hit,"));
  v.live.cache_hits = 2;
  v.live.cache_misses = 998;
  EXPECT_TRUE(Has(FormatProgressLine(v, false), ", cache 1% hit,"));
  v.live.cache_hits = 0;
  EXPECT_TRUE(Has(FormatProgressLine(v, true), "  cache 0% hit  "));
  v.live.cache_hits = 250;
  v.live.cache_misses = 750;
  EXPECT_TRUE(Has(FormatProgressLine(v, true), "  cache 25% hit  "));
}

TEST(ProgressLine, BusiestStageAndItsShare) {
  ProgressView v = MidEpoch();
  v.live.stages = {{"read", 1, 1}, {"decode", 6, 1}, {"resize", 3, 1}};
  EXPECT_TRUE(Has(FormatProgressLine(v, true), "  busiest: decode 60%"));
  EXPECT_TRUE(Has(FormatProgressLine(v, false), ", busiest stage decode (60% of stage time)"));
  // The first of equals.
  v.live.stages = {{"read", 2, 1}, {"decode", 2, 1}, {"batch", 1, 1}};
  EXPECT_TRUE(Has(FormatProgressLine(v, false), "busiest stage read (40% of stage time)"));
  // The only stage with time has all of it.
  v.live.stages = {{"read", 0, 0}, {"decode", 0.25, 3}};
  EXPECT_TRUE(Has(FormatProgressLine(v, true), "busiest: decode 100%"));
  // No stage time yet: nothing to name.
  v.live.stages = {{"read", 0, 0}, {"decode", 0, 0}};
  EXPECT_FALSE(Has(FormatProgressLine(v, true), "busiest"));
  v.live.stages.clear();
  EXPECT_FALSE(Has(FormatProgressLine(v, false), "busiest"));
}

TEST(ProgressLine, RunEtaProjectsLaterEpochsLikeThisOneOnceItIsUnderWay) {
  ProgressView v;
  v.epoch = 2;
  v.epochs = 4;
  v.batches = 10;
  v.total_batches = 30;
  v.epoch_samples = 3000;
  v.live.epoch = 2;
  v.live.seconds = 10;
  v.live.samples = 1000;  // 100 img/s: 20 s to go, 30 s projected for the epoch
  // No finished epoch yet: the two after this one are projected like this one.
  EXPECT_TRUE(Has(FormatProgressLine(v, false), ", ETA 20s (run 1m20s)"));
  // Epoch 1 (the last finished one) took 12 s, but epoch 2 is a third done: the epochs after
  // it are projected like it, not like epoch 1 (which filled the cache).
  v.finished_seconds = 12;
  v.last_epoch_seconds = 12;
  EXPECT_TRUE(Has(FormatProgressLine(v, false), ", ETA 20s (run 1m20s)"));
  // Under a tenth of epoch 2 done: its projection is still noise, so the last finished epoch's
  // 12 s stands in: 29 s + 2 x 12 s.
  v.live.seconds = 1;
  v.live.samples = 100;
  EXPECT_TRUE(Has(FormatProgressLine(v, false), ", ETA 29s (run 53s)"));
  // In epoch 1 the projection of epoch 1 itself is all there is.
  v.epoch = 1;
  v.live.epoch = 1;
  v.finished_seconds = v.last_epoch_seconds = 0;
  v.live.seconds = 10;
  v.live.samples = 1000;
  EXPECT_TRUE(Has(FormatProgressLine(v, false), ", ETA 20s (run 1m50s)"));
  // The last epoch: nothing after it.
  v.epoch = 4;
  EXPECT_EQ(FormatProgressLine(v, false), "epoch 4/4: 10/30 batches, 100 img/s, ETA 20s");
}

TEST(ProgressLine, EtaUsesImagesAndFallsBackToBatches) {
  ProgressView v;
  v.epochs = 1;
  v.live.seconds = 4;
  v.live.samples = 320;  // 80 img/s
  v.batches = 10;
  v.total_batches = 40;
  // No sample count: 30 batches to go at the 32 samples per batch so far = 960 images = 12 s.
  EXPECT_EQ(FormatProgressLine(v, false), "epoch 1/1: 10/40 batches, 80 img/s, ETA 12s");
  // The epoch's sample count wins over its batches: 400 images to go = 5 s.
  v.epoch_samples = 720;
  EXPECT_EQ(FormatProgressLine(v, false), "epoch 1/1: 10/40 batches, 80 img/s, ETA 5s");
  // Nothing delivered yet: no rate, no ETA yet.
  v.live.samples = 0;
  v.batches = 0;
  EXPECT_EQ(FormatProgressLine(v, false), "epoch 1/1: 0/40 batches, 0 img/s, ETA ?");
  EXPECT_EQ(FormatProgressLine(v, true),
            "epoch 1/1 [....................] 0/40  0 img/s  ETA ?");
}

TEST(ProgressLine, NoTotalLeavesTheTotalAndTheEtaOut) {
  ProgressView v;
  v.epoch = 1;
  v.epochs = 2;
  v.batches = 12;
  v.live.seconds = 3;
  v.live.samples = 3600;
  EXPECT_EQ(FormatProgressLine(v, false), "epoch 1/2: 12 batches, 1200 img/s");
  EXPECT_EQ(FormatProgressLine(v, true), "epoch 1/2 12 batches  1,200 img/s");
}

TEST(ProgressLine, EpochEndSaysHowLongItTookAndWhatIsLeft) {
  ProgressView v = MidEpoch();
  v.done = true;
  v.batches = 469;
  v.live.seconds = 23.2;
  v.finished_seconds = 62;
  v.last_epoch_seconds = 23.4;
  EXPECT_EQ(FormatProgressLine(v, false),
            "epoch 2/5: 469/469 batches, 880 img/s, done in 23s (run 1m02s so far, ETA 1m10s), "
            "cache 100% hit, busiest stage resize (48% of stage time)");
  EXPECT_TRUE(Has(FormatProgressLine(v, true), "[####################] 469/469  880 img/s  "));
  v.epoch = 5;
  v.finished_seconds = 112;
  EXPECT_TRUE(Has(FormatProgressLine(v, false), ", done in 23s (run 1m52s), "));
}

TEST(ProgressLine, Durations) {
  EXPECT_EQ(FormatDuration(0), "0s");
  EXPECT_EQ(FormatDuration(9.4), "9s");
  EXPECT_EQ(FormatDuration(59.4), "59s");
  EXPECT_EQ(FormatDuration(59.6), "1m00s");
  EXPECT_EQ(FormatDuration(112), "1m52s");
  EXPECT_EQ(FormatDuration(3599.4), "59m59s");
  EXPECT_EQ(FormatDuration(3600), "1h00m");
  EXPECT_EQ(FormatDuration(3780), "1h03m");
  EXPECT_EQ(FormatDuration(100 * 3600 + 59), "100h00m");
  EXPECT_EQ(FormatDuration(-1), "?");
  EXPECT_EQ(FormatDuration(std::numeric_limits<double>::infinity()), "?");
  EXPECT_EQ(FormatDuration(std::nan("")), "?");
}

// --- The lines `flowfeed bench` writes ---

std::string CachedIdxConfig(const TempDir& dir) {
  test::WriteIdx(dir / "data/images.idx", dir / "data/labels.idx", 300, 16, 16);
  test::WriteText(dir / "idx.yaml",
                  "seed: 3\n"
                  "threads: 2\n"
                  "epochs: 2\n"
                  "shuffle: false\n"
                  "source: {type: idx, root: " + dir.path() + "/data, images: images.idx, "
                  "labels: labels.idx}\n"
                  "pipeline:\n"
                  "  - {type: resize, size: [24, 24]}\n"
                  "  - {type: random_horizontal_flip}\n"
                  "batch: {size: 16}\n"
                  "cache: {mode: memory}\n");
  return dir / "idx.yaml";
}

TEST(ProgressCli, BenchLogsOneSummaryLinePerEpochWhenNotATerminal) {
  TempDir dir;
  const std::string cfg = CachedIdxConfig(dir);
  // stderr into Shell()'s pipe (not a terminal), stdout (the tables) away.
  test::ShellRun r =
      test::Shell("{ " + std::string(FLOWFEED_BINARY) + " bench " + cfg + " 2>&1 >/dev/null; }");
  ASSERT_EQ(r.code, 0) << r.output;
  const std::string& err = r.output;
  EXPECT_FALSE(Has(err, "\r")) << err;
  EXPECT_FALSE(Has(err, "\033")) << err;
  // 300 samples in batches of 16: 19 batches, the last one short.
  EXPECT_TRUE(Has(err, "\nepoch 1/2: 19/19 batches, ")) << err;
  EXPECT_TRUE(Has(err, " (run ")) << err;
  EXPECT_TRUE(Has(err, "\nepoch 2/2: 19/19 batches, ")) << err;
  // The second epoch starts every sample from the cache (shuffle is off, so each was cached by
  // epoch 1 long before epoch 2 looks it up).
  EXPECT_TRUE(Has(err, ", cache 100% hit, busiest stage ")) << err;
}

TEST(ProgressCli, BenchRedrawsInPlaceOnATerminal) {
  if (test::Shell("command -v script").code != 0) GTEST_SKIP() << "no `script` to fake a terminal";
  TempDir dir;
  const std::string cfg = CachedIdxConfig(dir);
  // `script` runs the command on a pseudo-terminal and copies what it wrote to our stdout.
  test::ShellRun r = test::Shell("script -qec '" + std::string(FLOWFEED_BINARY) + " bench " +
                                 cfg + " >/dev/null' /dev/null");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_TRUE(Has(r.output, "\repoch 1/2 [####################] 19/19  ")) << r.output;
  EXPECT_TRUE(Has(r.output, "\033[K\r\nepoch 2/2") || Has(r.output, "\033[K\n\repoch 2/2") ||
              Has(r.output, "\033[K\r\n\repoch 2/2"))
      << r.output;
}

}  // namespace
}  // namespace flowfeed
