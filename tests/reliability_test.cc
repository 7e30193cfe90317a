// What the pipeline promises when the data goes bad under it: the error budget (max_skipped),
// every skipped sample listed, files that vanish or turn unreadable between epochs, and memory
// that stays flat under a slow consumer.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "flowfeed/config.h"
#include "flowfeed/pipeline.h"
#include "flowfeed/registry.h"
#include "flowfeed/stats.h"
#include "test_util.h"

namespace flowfeed {
namespace {

using test::TempDir;

// Fails every sample whose dataset index is odd.
class FailOddStage : public Stage {
 public:
  Status Process(Sample& s, const StageContext&) override {
    if (s.index % 2 == 1) return Status::Corrupt(std::string(s.source) + ": odd sample refused");
    return Status::Ok();
  }
};

StageRegistry Registry() {
  StageRegistry reg;
  RegisterBuiltinStages(&reg);
  StageInfo odd;
  odd.name = "fail_odd";
  odd.doc = "test: fails odd dataset indices";
  odd.factory = [](const StageParams&) -> Result<std::unique_ptr<Stage>> {
    return std::unique_ptr<Stage>(new FailOddStage());
  };
  EXPECT_OK(reg.Register(std::move(odd)));
  return reg;
}

// A folder of `good` JPEGs and `bad` text files named .jpg, in one class.
std::string MixedFolder(const TempDir& dir, int good, int bad) {
  test::MakeImageFolder(dir / "mixed", 1, good);
  for (int i = 0; i < bad; ++i)
    test::WriteText(dir / ("mixed/class0/broken" + std::to_string(i) + ".jpg"), "not a jpeg");
  return dir / "mixed";
}

struct Outcome {
  Status status;
  int64_t delivered = 0;
  RunStats stats;
};

Outcome RunYaml(const std::string& yaml, const StageRegistry& reg, int sleep_ms = 0) {
  Outcome out;
  auto options = ParseConfig(yaml, "test.yaml", {}, reg);
  if (!options.ok()) {
    out.status = options.status();
    return out;
  }
  auto opened = Pipeline::Open(options.value(), reg);
  if (!opened.ok()) {
    out.status = opened.status();
    return out;
  }
  Pipeline& p = *opened.value();
  for (int e = 0; e < options.value().epochs; ++e) {
    while (true) {
      BatchPtr b;
      out.status = p.Next(&b);
      if (!out.status.ok()) {
        out.stats = p.stats();
        return out;
      }
      if (!b) break;
      out.delivered += b->size;
      if (sleep_ms) std::this_thread::sleep_for(std::chrono::milliseconds(sleep_ms));
    }
  }
  out.stats = p.stats();
  return out;
}

std::string FolderYaml(const std::string& root, const std::string& extra, int epochs = 1) {
  return "seed: 1\nthreads: 2\nepochs: " + std::to_string(epochs) + "\nsource: {type: image_folder, root: " + root +
         "}\npipeline:\n  - {type: decode}\n  - {type: center_crop, size: 16}\nbatch: {size: 4}\n" +
         extra;
}

// --- The error budget ---------------------------------------------------------------------------

TEST(SkipBudget, ACountStopsTheRunOnceExceededNamingTheSamples) {
  TempDir dir;
  const std::string root = MixedFolder(dir, 6, 3);
  StageRegistry reg = Registry();
  Outcome over = RunYaml(FolderYaml(root, "max_skipped: 2\n"), reg);
  ASSERT_FALSE(over.status.ok());
  EXPECT_EQ(over.status.code(), StatusCode::kResourceExhausted);
  const std::string& m = over.status.message();
  EXPECT_NE(m.find("max_skipped"), std::string::npos) << m;
  EXPECT_NE(m.find("2 samples"), std::string::npos) << m;
  EXPECT_NE(m.find("3 of the first"), std::string::npos) << m;
  for (int i = 0; i < 3; ++i)
    EXPECT_NE(m.find("broken" + std::to_string(i) + ".jpg"), std::string::npos) << m;
  EXPECT_NE(m.find("not a recognised image format"), std::string::npos) << m;

  Outcome within = RunYaml(FolderYaml(root, "max_skipped: 3\n"), reg);
  ASSERT_OK(within.status);
  EXPECT_EQ(within.delivered, 6);
  EXPECT_EQ(within.stats.epochs.at(0).skipped_count, 3);
}

TEST(SkipBudget, TheDefaultStopsDataThatIsMostlyBroken) {
  TempDir dir;
  StageRegistry reg = Registry();
  // 4 readable of 10: more than half skipped.
  Outcome mostly = RunYaml(FolderYaml(MixedFolder(dir, 4, 6), ""), reg);
  ASSERT_FALSE(mostly.status.ok());
  EXPECT_NE(mostly.status.message().find("50% of the epoch's 10 samples = 5"), std::string::npos)
      << mostly.status.message();
  // The same data with a looser budget runs, and the refilled batches are full.
  TempDir dir2;
  Outcome loose = RunYaml(FolderYaml(MixedFolder(dir2, 4, 6), "max_skipped: 60%\n"), reg);
  ASSERT_OK(loose.status);
  EXPECT_EQ(loose.delivered, 4);
  // 1.0 (or 100%) turns the budget off.
  Outcome off = RunYaml(FolderYaml(dir2 / "mixed", "max_skipped: 1.0\n"), reg);
  ASSERT_OK(off.status);
}

TEST(SkipBudget, CountsPerEpochAndListsEverySkippedSample) {
  TempDir dir;
  test::WriteIdx(dir / "img.idx", dir / "lab.idx", 3000, 2, 2);
  StageRegistry reg = Registry();
  const std::string yaml = "seed: 1\nthreads: 2\nepochs: 2\nsource: {type: idx, root: " +
                           dir.path() +
                           ", images: img.idx, labels: lab.idx}\npipeline:\n  - {type: fail_odd}\n"
                           "batch: {size: 64}\n";
  // Exactly half fails: 1500 of 3000 is within the default 50% in both epochs.
  Outcome o = RunYaml(yaml, reg);
  ASSERT_OK(o.status);
  EXPECT_EQ(o.delivered, 3000);
  ASSERT_EQ(o.stats.epochs.size(), 2u);
  for (const EpochStats& e : o.stats.epochs) {
    EXPECT_EQ(e.skipped_count, 1500);
    ASSERT_EQ(e.skipped.size(), 1500u) << "every skipped sample is listed";
    std::set<int64_t> idx;
    for (const SkippedSample& s : e.skipped) {
      idx.insert(s.index);
      EXPECT_EQ(s.stage, "fail_odd");
      EXPECT_NE(s.reason.find("odd sample refused"), std::string::npos);
    }
    EXPECT_EQ(idx.size(), 1500u);
    EXPECT_EQ(*idx.begin(), 1);
    EXPECT_EQ(*idx.rbegin(), 2999);
  }
  nlohmann::json j = nlohmann::json::parse(ReportJson(o.stats));
  EXPECT_EQ(j["epochs"][0]["skipped"]["count"], 1500);
  EXPECT_EQ(j["epochs"][0]["skipped"]["samples"].size(), 1500u);
  // One more than the budget allows stops it.
  Outcome tight = RunYaml(yaml + "max_skipped: 1499\n", reg);
  ASSERT_FALSE(tight.status.ok());
  EXPECT_NE(tight.status.message().find("1500 of the first"), std::string::npos)
      << tight.status.message();
}

TEST(SkipBudget, BadValuesAreConfigErrorsAtTheKey) {
  StageRegistry reg = Registry();
  for (const std::string bad : {"-1", "150%", "1.5", "lots", "'10'", "[1, 2]", "-5%"}) {
    SCOPED_TRACE(bad);
    auto r = ParseConfig("source: {type: image_folder, root: /x}\nmax_skipped: " + bad + "\n",
                         "b.yaml", {}, reg);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.status().message().find("b.yaml:2:"), std::string::npos) << r.status().message();
    EXPECT_NE(r.status().message().find("max_skipped"), std::string::npos) << r.status().message();
  }
  for (const auto& [text, count, fraction] :
       std::vector<std::tuple<std::string, int64_t, double>>{
           {"0", 0, 0.5}, {"25", 25, 0.5}, {"5%", -1, 0.05}, {"0.1", -1, 0.1}, {"100%", -1, 1.0}}) {
    auto r = ParseConfig("source: {type: image_folder, root: /x}\nmax_skipped: " + text + "\n",
                         "g.yaml", {}, reg);
    ASSERT_OK(r);
    EXPECT_EQ(r.value().max_skipped.count, count) << text;
    EXPECT_DOUBLE_EQ(r.value().max_skipped.fraction, fraction) << text;
  }
  SkipBudget b;
  EXPECT_EQ(b.Limit(7), 3);  // at most half of 7
  b.fraction = 1.0;
  EXPECT_GT(b.Limit(7), int64_t(1) << 40);
  b.count = 0;
  EXPECT_EQ(b.Limit(7), 0);
}

// --- Files that vanish or become unreadable during a run ----------------------------------------

TEST(StorageFaults, FilesThatVanishOrBreakAfterListingAreSkippedAndNamed) {
  TempDir dir;
  test::MakeImageFolder(dir / "photos", 2, 10);
  StageRegistry reg = Registry();
  // In dataset order, with at most 3 samples alive (prefetch 1 x batch 2 + 1 in flight): the
  // pipeline cannot have read past sample 3 before the consumer asks, and no cache serves what
  // was read once.
  auto options = ParseConfig(FolderYaml(dir / "photos",
                                        "shuffle: false\nprefetch: 1\nmax_in_flight: 1\n"
                                        "cache: {mode: off}\n"),
                             "v.yaml", {"batch.size=2"}, reg);
  ASSERT_OK(options);
  auto opened = Pipeline::Open(options.value(), reg);  // lists the 20 files
  ASSERT_OK(opened);
  Pipeline& p = *opened.value();
  // After the listing: one file deleted, one replaced by a folder, one cut to nothing.
  std::filesystem::remove(dir / "photos/class0/img5.jpg");
  std::filesystem::remove(dir / "photos/class1/img4.jpg");
  std::filesystem::create_directory(dir / "photos/class1/img4.jpg");
  test::WriteBytes(dir / "photos/class1/img7.jpg", {});
  int64_t delivered = 0;
  while (true) {
    BatchPtr b;
    ASSERT_OK(p.Next(&b));
    if (!b) break;
    EXPECT_EQ(b->height, 16);
    delivered += b->size;
  }
  EXPECT_EQ(delivered, 17);
  RunStats rs = p.stats();
  std::map<std::string, std::string> why;
  for (const SkippedSample& s : rs.epochs.at(0).skipped)
    why[s.source.substr(s.source.find("photos/") + 7)] = s.stage + ": " + s.reason;
  ASSERT_EQ(why.size(), 3u);
  EXPECT_NE(why["class0/img5.jpg"].find("No such file"), std::string::npos) << why["class0/img5.jpg"];
  EXPECT_NE(why["class1/img4.jpg"].find("directory"), std::string::npos) << why["class1/img4.jpg"];
  EXPECT_NE(why["class1/img7.jpg"].find("empty file"), std::string::npos) << why["class1/img7.jpg"];
}

// Entries that are not regular files are samples skipped with their reason, never dropped from
// the listing: a class of dangling symlinks shows in the skip count and the report (and the
// budget) instead of vanishing, and a FIFO is refused at once instead of blocking a worker.
TEST(StorageFaults, DanglingSymlinksAndFifosAreSkippedSamplesNotDropped) {
  TempDir dir;
  test::MakeImageFolder(dir / "photos", 2, 4);
  ASSERT_EQ(symlink((dir / "gone.jpg").c_str(), (dir / "photos/class1/dangling.jpg").c_str()), 0);
  ASSERT_EQ(mkfifo((dir / "photos/class1/fifo.jpg").c_str(), 0644), 0);
  StageRegistry reg = Registry();
  auto options = ParseConfig(FolderYaml(dir / "photos", "shuffle: false\ncache: {mode: off}\n"),
                             "v.yaml", {"batch.size=2"}, reg);
  ASSERT_OK(options);
  auto opened = Pipeline::Open(options.value(), reg);
  ASSERT_OK(opened);
  Pipeline& p = *opened.value();
  int64_t delivered = 0;
  while (true) {
    BatchPtr b;
    ASSERT_OK(p.Next(&b));
    if (!b) break;
    delivered += b->size;
  }
  EXPECT_EQ(delivered, 8);
  RunStats rs = p.stats();
  EXPECT_EQ(rs.epochs.at(0).skipped_count, 2);
  std::map<std::string, std::string> why;
  for (const SkippedSample& s : rs.epochs.at(0).skipped)
    why[s.source.substr(s.source.find("photos/") + 7)] = s.reason;
  ASSERT_EQ(why.size(), 2u);
  EXPECT_NE(why["class1/dangling.jpg"].find("dangling symlink"), std::string::npos)
      << why["class1/dangling.jpg"];
  EXPECT_NE(why["class1/fifo.jpg"].find("not a regular file (a FIFO)"), std::string::npos)
      << why["class1/fifo.jpg"];
}

// --- A slow consumer ----------------------------------------------------------------------------

int64_t ResidentBytes() {
  std::ifstream statm("/proc/self/statm");
  int64_t size = 0, resident = 0;
  statm >> size >> resident;
  return resident * int64_t(sysconf(_SC_PAGESIZE));
}

TEST(SlowConsumer, MemoryStaysFlatAndTheQueueWithinPrefetch) {
  TempDir dir;
  // 480 photos of 320x320; each batch of 8 at 224x224 float32 is 4.8 MB, so a pipeline that
  // ran ahead of the consumer without bound would hold ~290 MB by the end.
  test::WriteJpeg(dir / "one.jpg", test::PatternImage(320, 320, 3, 5));
  std::vector<uint8_t> bytes = test::ReadBytes(dir / "one.jpg");
  for (int i = 0; i < 480; ++i)
    test::WriteBytes(dir / ("photos/c" + std::to_string(i % 4) + "/" + std::to_string(i) + ".jpg"),
                     bytes);
  StageRegistry reg = Registry();
  const std::string yaml =
      "seed: 1\nthreads: 2\nepochs: 1\nprefetch: 3\ncache: {mode: off}\nsource: {type: image_folder, root: " +
      dir / "photos" +
      "}\npipeline:\n  - {type: decode}\n  - {type: random_resized_crop, size: 224}\n"
      "  - {type: normalize, mean: [0.5, 0.5, 0.5], std: [0.2, 0.2, 0.2]}\nbatch: {size: 8}\n";
  auto options = ParseConfig(yaml, "slow.yaml", {}, reg);
  ASSERT_OK(options);
  auto opened = Pipeline::Open(options.value(), reg);
  ASSERT_OK(opened);
  Pipeline& p = *opened.value();
  int64_t batches = 0, warm = 0, peak = 0;
  while (true) {
    BatchPtr b;
    ASSERT_OK(p.Next(&b));
    if (!b) break;
    ++batches;
    b.reset();
    // The consumer is far slower than the pipeline: it has every chance to run ahead.
    std::this_thread::sleep_for(std::chrono::milliseconds(15));
    const int64_t rss = ResidentBytes();
    if (batches == 8) warm = rss;
    if (batches > 8) peak = std::max(peak, rss);
  }
  ASSERT_EQ(batches, 60);
  // Flat: after the first batches nothing accumulates. The margin is for allocator noise;
  // unbounded, the growth would be ~200 MB. Not under ASan: it parks freed blocks in its
  // quarantine (256 MB) instead of reusing them, so RSS grows with what was freed, not held.
  if (!test::kAddressSanitizer) {
    EXPECT_LT(peak - warm, int64_t(48) << 20) << "RSS grew from " << warm << " to " << peak;
  }
  const RunStats rs = p.stats();
  int max_queue = 0;
  for (const auto& point : rs.epochs.at(0).queue_occupancy)
    max_queue = std::max(max_queue, point.second);
  // Ready batches: the prefetched ones, plus the batch the in-flight samples (max_in_flight,
  // 4 per thread by default) complete. Never more than the token bound allows.
  EXPECT_LE(max_queue, rs.tokens / 8) << "more batches ready than the token bound allows";
  EXPECT_EQ(rs.tokens, 3 * 8 + 4 * 2);
  EXPECT_GE(max_queue, 2) << "the consumer was slow: the queue should have filled";
}


// Runs `yaml` to the end and returns the run's stats.
RunStats RunToEnd(const std::string& yaml, int64_t* batches) {
  StageRegistry reg = Registry();
  auto options = ParseConfig(yaml, "large.yaml", {}, reg);
  EXPECT_OK(options);
  auto opened = Pipeline::Open(options.value(), reg);
  EXPECT_OK(opened);
  Pipeline& p = *opened.value();
  *batches = 0;
  while (true) {
    BatchPtr b;
    EXPECT_OK(p.Next(&b));
    if (!b) break;
    ++*batches;
  }
  return p.stats();
}

std::string LargeImagesConfig(const std::string& root, int threads, int prefetch, int batch,
                              int in_flight) {
  return "seed: 1\nthreads: " + std::to_string(threads) + "\nepochs: 1\nshuffle: false\n" +
         "fuse: false\nprefetch: " + std::to_string(prefetch) +
         "\nmax_in_flight: " + std::to_string(in_flight) +
         "\ncache: {mode: off}\nsource: {type: image_folder, root: " + root +
         "}\npipeline:\n  - {type: decode}\n  - {type: resize, size: 16}\nbatch: {size: " +
         std::to_string(batch) + "}\n";
}

// `count` copies of `image` as a JPEG, named dir/photos/c/<prefix>NN.jpg.
void WriteCopies(const TempDir& dir, const std::string& prefix, int count, const Image& image) {
  test::WriteJpeg(dir / (prefix + ".jpg"), image);
  const std::vector<uint8_t> bytes = test::ReadBytes(dir / (prefix + ".jpg"));
  char name[32];
  for (int i = 0; i < count; ++i) {
    std::snprintf(name, sizeof name, "%02d.jpg", i);
    test::WriteBytes(dir / ("photos/c/" + prefix + name), bytes);
  }
}

TEST(LargeBuffers, HugeImagesLeaveTheirSlotsOnceDone) {
  TempDir dir;
  // 12 decodes of 27 MB each (solid colour: a few KB as JPEG), then 64 small photos. The 16
  // slots are taken in dataset order, so each big image passes through a slot of its own.
  WriteCopies(dir, "a", 12, test::SolidImage(3000, 3000, 3, 90));
  WriteCopies(dir, "b", 64, test::PatternImage(48, 48, 3, 2));
  int64_t batches = 0;
  const RunStats rs = RunToEnd(LargeImagesConfig(dir / "photos", 2, 2, 4, 8), &batches);
  ASSERT_EQ(batches, 76 / 4);
  ASSERT_EQ(rs.tokens, 16);
  // What stays: the small buffers of the 16 slots (well under 1 MiB each) and the shared pool of
  // large ones (64 MiB a thread, at least 2 threads' worth). Kept per slot, the 12 big decodes
  // would stay: over 320 MB.
  const int64_t pool = int64_t(2 * 64) << 20;
  EXPECT_LE(rs.retained_buffer_bytes, pool + (int64_t(16) << 20));
  EXPECT_GT(rs.retained_buffer_bytes, 0) << "small buffers are kept for reuse";
}

TEST(LargeBuffers, LargeDecodesReuseBuffersThroughThePool) {
  TempDir dir;
  // 16 decodes of 36.75 MB (a 12 MP photo's size; above glibc's largest mmap threshold, so a
  // freed one is returned to the OS and a new one costs its first touch, one page fault a page).
  WriteCopies(dir, "a", 16, test::SolidImage(3500, 3500, 3, 40));
  struct rusage before, after;
  ::getrusage(RUSAGE_SELF, &before);
  int64_t batches = 0;
  // 4 slots, one thread.
  const RunStats rs = RunToEnd(LargeImagesConfig(dir / "photos", 1, 1, 2, 2), &batches);
  ::getrusage(RUSAGE_SELF, &after);
  ASSERT_EQ(batches, 8);
  ASSERT_EQ(rs.tokens, 4);
  const int64_t pages_per_decode = 3500 * 3500 * 3 / sysconf(_SC_PAGESIZE);
  const int64_t faults = after.ru_minflt - before.ru_minflt;
  // A buffer freed with its sample would cost all 16 decodes their pages; kept in each slot, 8
  // (each of the 4 slots' two ping-pong buffers grows once); through the pool, one or two.
  // Not under ASan: its allocator and shadow memory fault on their own schedule.
  if (!test::kAddressSanitizer) {
    EXPECT_LT(faults, 4 * pages_per_decode)
        << faults << " minor page faults for 16 decodes of " << pages_per_decode << " pages";
  }
  EXPECT_GE(rs.retained_buffer_bytes, 3500 * 3500 * 3) << "the pool keeps a large buffer";
}

TEST(ByteBudget, SamplesInWorkersHoldAtMostTheBudgetPlusOneSample) {
  TempDir dir;
  // 12 decodes of 27 MB with 4 workers: unbudgeted, 4 at once hold ~108 MB.
  WriteCopies(dir, "a", 12, test::SolidImage(3000, 3000, 3, 90));
  const int64_t one_sample = 3000 * 3000 * 3 + (int64_t(1) << 20);  // decode, file, resized
  const std::string yaml = LargeImagesConfig(dir / "photos", 4, 2, 4, 8);
  int64_t batches = 0;
  RunStats rs = RunToEnd(yaml + "max_in_flight_bytes: 64MiB\n", &batches);
  ASSERT_EQ(batches, 3);
  EXPECT_LE(rs.peak_in_flight_bytes, (int64_t(64) << 20) + one_sample);
  EXPECT_GE(rs.peak_in_flight_bytes, 3000 * 3000 * 3) << "a decode is counted";
  // A budget smaller than one sample: each runs alone, and the run completes.
  rs = RunToEnd(yaml + "max_in_flight_bytes: 1MiB\n", &batches);
  ASSERT_EQ(batches, 3);
  EXPECT_LE(rs.peak_in_flight_bytes, one_sample);
}
}  // namespace
}  // namespace flowfeed
