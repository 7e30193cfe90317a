#include "flowfeed/pipeline.h"

#include <sys/resource.h>
#include <time.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "flowfeed/registry.h"
#include "flowfeed/stats.h"
#include "test_util.h"

namespace flowfeed {
namespace {

using test::TempDir;

// Adds a random offset in [0, 16) to every pixel, drawn from the sample's generator.
class JitterStage : public Stage {
 public:
  Status Process(Sample& s, const StageContext& ctx) override {
    Rng rng = ctx.rng();
    s.scratch.Reshape(s.image.height(), s.image.width(), s.image.channels(), s.image.dtype());
    const uint8_t* in = s.image.data();
    uint8_t* out = s.scratch.data();
    for (size_t i = 0; i < s.image.size_bytes(); ++i)
      out[i] = uint8_t(in[i] + uint8_t(rng.UniformInt(0, 15)));
    s.SwapScratch();
    return Status::Ok();
  }
};

// Fails the samples whose dataset index is a multiple of `every` plus `offset`.
class FailStage : public Stage {
 public:
  FailStage(int64_t every, int64_t offset) : every_(every), offset_(offset) {}
  Status Process(Sample& s, const StageContext&) override {
    if (s.index % every_ == offset_)
      return Status::Corrupt(std::string(s.source) + ": injected failure");
    return Status::Ok();
  }

 private:
  int64_t every_, offset_;
};

// Records the highest sequence number that reached it, and how many samples are inside at once.
struct Probe {
  std::atomic<uint64_t> max_sequence{0};
  std::atomic<int> inside{0};
  std::atomic<int> max_inside{0};
  std::atomic<int64_t> calls{0};
};
Probe* g_probe = nullptr;

class ProbeStage : public Stage {
 public:
  explicit ProbeStage(int64_t sleep_us) : sleep_us_(sleep_us) {}
  Status Process(Sample& s, const StageContext&) override {
    Probe& p = *g_probe;
    uint64_t cur = p.max_sequence.load();
    while (s.sequence > cur && !p.max_sequence.compare_exchange_weak(cur, s.sequence)) {
    }
    int in = ++p.inside;
    int m = p.max_inside.load();
    while (in > m && !p.max_inside.compare_exchange_weak(m, in)) {
    }
    if (sleep_us_ > 0) std::this_thread::sleep_for(std::chrono::microseconds(sleep_us_));
    --p.inside;
    ++p.calls;
    return Status::Ok();
  }

 private:
  int64_t sleep_us_;
};

// Uses `us` microseconds of its thread's CPU time per sample, whatever the scheduling, so a
// run's CPU time has a known lower bound.
class BurnCpuStage final : public Stage {
 public:
  explicit BurnCpuStage(int64_t us) : us_(us) {}
  Status Process(Sample&, const StageContext&) override {
    auto now_us = [] {
      timespec ts{};
      clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
      return int64_t(ts.tv_sec) * 1000000 + ts.tv_nsec / 1000;
    };
    const int64_t end = now_us() + us_;
    volatile uint64_t x = 0;
    while (now_us() < end) x = x + 1;
    return Status::Ok();
  }

 private:
  int64_t us_;
};

StageRegistry TestRegistry() {
  StageRegistry reg;
  RegisterBuiltinStages(&reg);
  StageInfo jitter;
  jitter.name = "jitter";
  jitter.doc = "test: random offset";
  jitter.traits.deterministic = false;
  jitter.factory = [](const StageParams&) -> Result<std::unique_ptr<Stage>> {
    return std::unique_ptr<Stage>(new JitterStage());
  };
  EXPECT_OK(reg.Register(std::move(jitter)));
  StageInfo fail;
  fail.name = "fail_some";
  fail.doc = "test: fails index % every == offset";
  fail.params = {ParamSpec::Int("every", 7, "", 1), ParamSpec::Int("offset", 3, "", 0)};
  fail.factory = [](const StageParams& p) -> Result<std::unique_ptr<Stage>> {
    return std::unique_ptr<Stage>(new FailStage(p.Int("every"), p.Int("offset")));
  };
  EXPECT_OK(reg.Register(std::move(fail)));
  StageInfo probe;
  probe.name = "probe";
  probe.doc = "test: records sequence numbers";
  probe.params = {ParamSpec::Int("sleep_us", 0, "", 0)};
  probe.factory = [](const StageParams& p) -> Result<std::unique_ptr<Stage>> {
    return std::unique_ptr<Stage>(new ProbeStage(p.Int("sleep_us")));
  };
  EXPECT_OK(reg.Register(std::move(probe)));
  StageInfo burn;
  burn.name = "burn_cpu";
  burn.doc = "test: uses us microseconds of CPU per sample";
  burn.params = {ParamSpec::Int("us", 1000, "", 0)};
  burn.factory = [](const StageParams& p) -> Result<std::unique_ptr<Stage>> {
    return std::unique_ptr<Stage>(new BurnCpuStage(p.Int("us")));
  };
  EXPECT_OK(reg.Register(std::move(burn)));
  return reg;
}

StageSpec Spec(const std::string& type, StageParams params = {}, OnError on_error = OnError::kSkip) {
  StageSpec s;
  s.type = type;
  s.params = std::move(params);
  s.on_error = on_error;
  return s;
}

using test::IdxOptions;

struct Collected {
  std::vector<std::vector<int64_t>> indices;  // per epoch, in delivery order
  std::vector<std::vector<int64_t>> batch_sizes;
  RunStats stats;
  Status status;
};

Collected RunAll(const PipelineOptions& o, const StageRegistry& reg, int sleep_ms = 0) {
  Collected c;
  auto p = Pipeline::Open(o, reg);
  if (!p.ok()) {
    c.status = p.status();
    return c;
  }
  for (int e = 0; e < o.epochs; ++e) {
    c.indices.emplace_back();
    c.batch_sizes.emplace_back();
    while (true) {
      BatchPtr b;
      c.status = p.value()->Next(&b);
      if (!c.status.ok()) return c;
      if (!b) break;
      EXPECT_EQ(b->epoch, e);
      EXPECT_EQ(b->number, int64_t(c.batch_sizes.back().size()));
      c.indices.back().insert(c.indices.back().end(), b->indices.begin(), b->indices.end());
      c.batch_sizes.back().push_back(b->size);
      if (sleep_ms) std::this_thread::sleep_for(std::chrono::milliseconds(sleep_ms));
    }
  }
  c.stats = p.value()->stats();
  return c;
}

TEST(Pipeline, SequentialOrderAndPartialLastBatch) {
  TempDir dir;
  PipelineOptions o = IdxOptions(dir, 21);
  o.shuffle = false;
  StageRegistry reg = TestRegistry();
  Collected c = RunAll(o, reg);
  ASSERT_OK(c.status);
  ASSERT_EQ(c.indices.size(), 2u);
  for (int e = 0; e < 2; ++e) {
    ASSERT_EQ(c.indices[e].size(), 21u);
    for (int64_t i = 0; i < 21; ++i) EXPECT_EQ(c.indices[e][size_t(i)], i);
    EXPECT_EQ(c.batch_sizes[e], (std::vector<int64_t>{8, 8, 5}));
  }
  EXPECT_EQ(c.stats.epochs.size(), 2u);
  EXPECT_EQ(c.stats.epochs[0].samples, 21);
  EXPECT_EQ(c.stats.epochs[0].batches, 3);
}

TEST(Pipeline, DropLast) {
  TempDir dir;
  PipelineOptions o = IdxOptions(dir, 21);
  o.batch.drop_last = true;
  StageRegistry reg = TestRegistry();
  Collected c = RunAll(o, reg);
  ASSERT_OK(c.status);
  for (int e = 0; e < 2; ++e) EXPECT_EQ(c.batch_sizes[e], (std::vector<int64_t>{8, 8}));
}

TEST(Pipeline, ShuffleIsAPermutationPerEpochAndDiffersBetweenEpochs) {
  TempDir dir;
  PipelineOptions o = IdxOptions(dir, 100);
  o.epochs = 3;
  StageRegistry reg = TestRegistry();
  Collected c = RunAll(o, reg);
  ASSERT_OK(c.status);
  for (int e = 0; e < 3; ++e) {
    std::vector<int64_t> sorted = c.indices[e];
    std::sort(sorted.begin(), sorted.end());
    for (int64_t i = 0; i < 100; ++i) ASSERT_EQ(sorted[size_t(i)], i);
  }
  EXPECT_NE(c.indices[0], c.indices[1]);
  EXPECT_NE(c.indices[1], c.indices[2]);
  // The same seed gives the same order; another seed another.
  Collected again = RunAll(o, reg);
  EXPECT_EQ(again.indices, c.indices);
  o.seed = 7;
  Collected other = RunAll(o, reg);
  EXPECT_NE(other.indices[0], c.indices[0]);
}

TEST(Pipeline, ExactBatchContentsForBothLayoutsAndDtypes) {
  TempDir dir;
  PipelineOptions o = IdxOptions(dir, 3, 2, 3);  // pixel(i, y, x) = (i*7 + y*3 + x) % 256
  o.shuffle = false;
  o.epochs = 1;
  o.batch.size = 3;
  StageParams dp;
  dp.Set("color", std::string("rgb"));
  o.pipeline = {Spec("decode", dp)};  // 1 -> 3 channels, replicated
  StageRegistry reg = TestRegistry();
  for (Layout layout : {Layout::kNCHW, Layout::kNHWC}) {
    for (DType dtype : {DType::kUInt8, DType::kFloat32}) {
      o.batch.layout = layout;
      o.batch.dtype = dtype;
      auto p = Pipeline::Open(o, reg);
      ASSERT_OK(p);
      BatchPtr b;
      ASSERT_OK(p.value()->Next(&b));
      ASSERT_TRUE(b);
      ASSERT_EQ(b->size, 3);
      EXPECT_EQ(b->channels, 3);
      EXPECT_EQ(b->height, 2);
      EXPECT_EQ(b->width, 3);
      EXPECT_EQ(b->labels, (std::vector<int64_t>{0, 1, 2}));
      if (layout == Layout::kNCHW) EXPECT_EQ(b->shape(), (std::vector<int64_t>{3, 3, 2, 3}));
      else EXPECT_EQ(b->shape(), (std::vector<int64_t>{3, 2, 3, 3}));
      for (int i = 0; i < 3; ++i)
        for (int c = 0; c < 3; ++c)
          for (int y = 0; y < 2; ++y)
            for (int x = 0; x < 3; ++x) {
              size_t off = layout == Layout::kNCHW ? size_t(((i * 3 + c) * 2 + y) * 3 + x)
                                                   : size_t(((i * 2 + y) * 3 + x) * 3 + c);
              double want = (i * 7 + y * 3 + x) % 256;
              double got = dtype == DType::kUInt8
                               ? double(b->data()[off])
                               : double(reinterpret_cast<const float*>(b->data())[off]);
              ASSERT_EQ(got, want) << "sample " << i << " c" << c << " y" << y << " x" << x;
            }
      ASSERT_OK(p.value()->Next(&b));
      EXPECT_FALSE(b);  // end of the only epoch
    }
  }
}

// The reproducibility promise: the same seed gives the same batches for any thread count and
// any prefetch depth, down to the bit.
TEST(Pipeline, DigestIndependentOfThreadsAndPrefetch) {
  TempDir dir;
  PipelineOptions o = IdxOptions(dir, 300, 6, 6);
  o.epochs = 2;
  StageParams norm;
  norm.Set("mean", std::vector<double>{0.5});
  norm.Set("std", std::vector<double>{0.25});
  o.pipeline = {Spec("jitter"), Spec("random_horizontal_flip"), Spec("normalize", norm)};
  StageRegistry reg = TestRegistry();
  std::vector<std::string> reference;
  for (int threads : {1, 2, 4}) {
    for (int prefetch : {1, 3}) {
      o.threads = threads;
      o.prefetch = prefetch;
      o.max_in_flight = threads == 4 ? 1 : 0;
      Collected c = RunAll(o, reg);
      ASSERT_OK(c.status);
      std::vector<std::string> digests;
      for (const auto& e : c.stats.epochs) digests.push_back(e.batch_digest);
      ASSERT_EQ(digests.size(), 2u);
      EXPECT_EQ(digests[0].size(), 16u);
      if (reference.empty()) reference = digests;
      EXPECT_EQ(digests, reference) << "threads=" << threads << " prefetch=" << prefetch;
    }
  }
  EXPECT_NE(reference[0], reference[1]);  // epochs draw different augmentations
  o.seed = 1;
  Collected c = RunAll(o, reg);
  EXPECT_NE(c.stats.epochs[0].batch_digest, reference[0]);
}

TEST(Pipeline, DigestIndependentOfThreadsOnJpegFolder) {
  TempDir dir;
  test::MakeImageFolder(dir / "photos", 3, 10);
  PipelineOptions o;
  o.source.root = dir / "photos";
  o.epochs = 1;
  o.batch.size = 4;
  StageParams crop;
  crop.Set("size", std::vector<int64_t>{24});
  o.pipeline = {Spec("decode"), Spec("random_resized_crop", crop), Spec("random_horizontal_flip"),
                Spec("normalize")};
  StageRegistry reg = TestRegistry();
  o.threads = 1;
  Collected one = RunAll(o, reg);
  ASSERT_OK(one.status);
  o.threads = 2;
  Collected two = RunAll(o, reg);
  ASSERT_OK(two.status);
  EXPECT_EQ(one.stats.epochs[0].batch_digest, two.stats.epochs[0].batch_digest);
  EXPECT_EQ(one.stats.epochs[0].samples, 30);
}

TEST(Pipeline, SkippedSamplesAreNamedAndBatchesRefilled) {
  TempDir dir;
  PipelineOptions o = IdxOptions(dir, 50);
  o.epochs = 1;
  StageParams fp;
  fp.Set("every", int64_t(7));
  fp.Set("offset", int64_t(3));
  o.pipeline = {Spec("fail_some", fp)};
  StageRegistry reg = TestRegistry();
  Collected c = RunAll(o, reg);
  ASSERT_OK(c.status);
  // Indices 3, 10, 17, 24, 31, 38, 45 fail: 43 samples left, in full batches of 8 but the last.
  EXPECT_EQ(c.indices[0].size(), 43u);
  EXPECT_EQ(c.batch_sizes[0], (std::vector<int64_t>{8, 8, 8, 8, 8, 3}));
  for (int64_t i : c.indices[0]) EXPECT_NE(i % 7, 3);
  const EpochStats& e = c.stats.epochs[0];
  EXPECT_EQ(e.skipped_count, 7);
  ASSERT_EQ(e.skipped.size(), 7u);
  std::set<int64_t> skipped;
  for (const auto& s : e.skipped) {
    skipped.insert(s.index);
    EXPECT_EQ(s.stage, "fail_some");
    EXPECT_NE(s.reason.find("injected failure"), std::string::npos);
    EXPECT_NE(s.source.find("img.idx["), std::string::npos) << s.source;
  }
  EXPECT_EQ(skipped, (std::set<int64_t>{3, 10, 17, 24, 31, 38, 45}));
  // The stage table counts the failures against the stage.
  bool found = false;
  for (const auto& st : e.stages)
    if (st.name == "fail_some") {
      found = true;
      EXPECT_EQ(st.errors, 7);
      EXPECT_EQ(st.count, 50);
    }
  EXPECT_TRUE(found);
}

// A sample's token is its ring slot. With two tokens and half the samples skipped, the slot a
// skip releases is refilled at once by the next ticket; the batcher must have read all it needs
// from the slot before that (a race here once ended epochs early and lost their statistics).
TEST(Pipeline, ReleasedSlotsAreNotReadAgainByTheBatcher) {
  TempDir dir;
  PipelineOptions o = IdxOptions(dir, 40);
  o.epochs = 40;
  o.threads = 2;
  o.prefetch = 1;
  o.max_in_flight = 1;
  o.batch.size = 1;
  o.cache.mode = CacheMode::kOff;
  StageParams fp;
  fp.Set("every", int64_t(2));
  fp.Set("offset", int64_t(0));
  o.pipeline = {Spec("fail_some", fp)};
  StageRegistry reg = TestRegistry();
  Collected c = RunAll(o, reg);
  ASSERT_OK(c.status);
  ASSERT_EQ(c.stats.epochs.size(), 40u);
  for (int e = 0; e < 40; ++e) {
    const EpochStats& es = c.stats.epochs[size_t(e)];
    EXPECT_EQ(es.epoch, e + 1);
    EXPECT_EQ(es.samples, 20) << "epoch " << e + 1;
    EXPECT_EQ(es.skipped_count, 20) << "epoch " << e + 1;
    EXPECT_EQ(c.indices[size_t(e)].size(), 20u) << "epoch " << e + 1;
  }
}

TEST(Pipeline, OnErrorFailStopsWithTheSampleNamed) {
  TempDir dir;
  PipelineOptions o = IdxOptions(dir, 50);
  o.shuffle = false;
  StageParams fp;
  fp.Set("every", int64_t(1000));
  fp.Set("offset", int64_t(20));
  o.pipeline = {Spec("fail_some", fp, OnError::kFail)};
  StageRegistry reg = TestRegistry();
  Collected c = RunAll(o, reg);
  ASSERT_FALSE(c.status.ok());
  EXPECT_EQ(c.status.code(), StatusCode::kCorrupt);
  EXPECT_NE(c.status.message().find("img.idx[20]"), std::string::npos) << c.status.message();
  EXPECT_NE(c.status.message().find("fail_some"), std::string::npos) << c.status.message();
  // The two full batches before the failing sample were delivered first.
  EXPECT_EQ(c.batch_sizes[0], (std::vector<int64_t>{8, 8}));
}

TEST(Pipeline, SamplesInFlightStayWithinTheTokenBound) {
  TempDir dir;
  PipelineOptions o = IdxOptions(dir, 400);
  o.epochs = 1;
  o.shuffle = false;
  o.threads = 2;
  o.prefetch = 2;
  o.max_in_flight = 4;
  o.batch.size = 8;
  const uint64_t tokens = 2 * 8 + 4;
  o.pipeline = {Spec("probe")};
  Probe probe;
  g_probe = &probe;
  StageRegistry reg = TestRegistry();
  auto p = Pipeline::Open(o, reg);
  ASSERT_OK(p);
  uint64_t released = 0;
  while (true) {
    BatchPtr b;
    ASSERT_OK(p.value()->Next(&b));
    if (!b) break;
    // A slow consumer lets the producer run ahead as far as it can.
    std::this_thread::sleep_for(std::chrono::milliseconds(3));
    uint64_t max_seq = probe.max_sequence.load();
    // Samples 0..released-1 are released; the held batch and the in-flight ones hold tokens.
    EXPECT_LT(max_seq, released + tokens) << "after " << released << " released";
    released += uint64_t(b->size);
    b.reset();
  }
  EXPECT_EQ(probe.calls.load(), 400);
  g_probe = nullptr;
}

TEST(Pipeline, ConsumerKeepingBatchesPastThePipelineIsSafe) {
  TempDir dir;
  PipelineOptions o = IdxOptions(dir, 64);
  o.epochs = 1;
  o.prefetch = 4;
  o.shuffle = false;
  StageRegistry reg = TestRegistry();
  std::vector<BatchPtr> kept;
  {
    auto p = Pipeline::Open(o, reg);
    ASSERT_OK(p);
    for (int i = 0; i < 3; ++i) {
      BatchPtr b;
      ASSERT_OK(p.value()->Next(&b));
      ASSERT_TRUE(b);
      kept.push_back(b);
    }
  }  // destroyed while batches are alive and the graph is mid-epoch
  ASSERT_EQ(kept.size(), 3u);
  EXPECT_EQ(kept[2]->indices[0], 16);
  EXPECT_EQ(reinterpret_cast<const float*>(kept[2]->data())[0], float((16 * 7) % 256));
}

TEST(Pipeline, CancelUnblocksAndStops) {
  TempDir dir;
  PipelineOptions o = IdxOptions(dir, 200);
  o.epochs = 5;
  StageParams sp;
  sp.Set("sleep_us", int64_t(2000));
  o.pipeline = {Spec("probe", sp)};
  Probe probe;
  g_probe = &probe;
  StageRegistry reg = TestRegistry();
  auto p = Pipeline::Open(o, reg);
  ASSERT_OK(p);
  BatchPtr b;
  ASSERT_OK(p.value()->Next(&b));
  std::thread canceller([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    p.value()->Cancel();
  });
  Status st;
  int n = 0;
  while (st.ok() && n < 10000) {
    st = p.value()->Next(&b);
    ++n;
  }
  canceller.join();
  EXPECT_EQ(st.code(), StatusCode::kCancelled);
  p.value().reset();  // joins the graph
  EXPECT_LT(probe.calls.load(), 1000);
  g_probe = nullptr;
}

double ProcessCpuSeconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return double(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         double(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1e-6;
}

// Each epoch's cpu_seconds is that epoch's CPU time, all threads: together at least what the
// stages burned, and no more than the whole run used (a running total instead of each epoch's
// own would count epoch 1 again in epochs 2 and 3 and exceed it).
TEST(Pipeline, EachEpochReportsItsOwnCpuTime) {
  TempDir dir;
  PipelineOptions o = IdxOptions(dir, 40);
  o.epochs = 3;
  o.cache.mode = CacheMode::kOff;
  StageParams bp;
  bp.Set("us", int64_t(5000));  // 40 samples x 5 ms = 0.2 s of CPU an epoch
  o.pipeline = {Spec("burn_cpu", bp)};
  StageRegistry reg = TestRegistry();
  const double before = ProcessCpuSeconds();
  Collected c = RunAll(o, reg);
  const double used = ProcessCpuSeconds() - before;
  ASSERT_OK(c.status);
  ASSERT_EQ(c.stats.epochs.size(), 3u);
  // Samples of the next epoch may be computed ahead, inside this one's span, so only the sum
  // is bounded below: every burn happens between Open() and the last epoch's end.
  double sum = 0;
  for (const EpochStats& e : c.stats.epochs) {
    EXPECT_GT(e.cpu_seconds, 0) << "epoch " << e.epoch;
    sum += e.cpu_seconds;
  }
  EXPECT_GE(sum, 3 * 0.2 - 0.005);
  EXPECT_LE(sum, used + 0.01);
  nlohmann::json j = nlohmann::json::parse(ReportJson(c.stats));
  EXPECT_DOUBLE_EQ(j["epochs"][2]["cpu_seconds"].get<double>(), c.stats.epochs[2].cpu_seconds);
}

TEST(Pipeline, StatsAndReportFields) {
  TempDir dir;
  PipelineOptions o = IdxOptions(dir, 40);
  o.epochs = 2;
  StageParams fp;
  fp.Set("every", int64_t(10));
  fp.Set("offset", int64_t(0));
  o.cache.mode = CacheMode::kOff;
  o.pipeline = {Spec("fail_some", fp), Spec("normalize", [] {
                  StageParams p;
                  p.Set("mean", std::vector<double>{0.5});
                  p.Set("std", std::vector<double>{0.5});
                  return p;
                }())};
  StageRegistry reg = TestRegistry();
  Collected c = RunAll(o, reg);
  ASSERT_OK(c.status);
  ASSERT_EQ(c.stats.epochs.size(), 2u);
  const EpochStats& e = c.stats.epochs[0];
  EXPECT_EQ(e.epoch, 1);
  EXPECT_GT(e.seconds, 0);
  EXPECT_EQ(e.samples, 36);
  EXPECT_GT(e.samples_per_second, 0);
  ASSERT_EQ(e.stages.size(), 5u);  // read, fail_some, normalize, collate, batch
  EXPECT_EQ(e.stages[0].name, "read");
  EXPECT_EQ(e.stages[0].count, 40);
  EXPECT_EQ(e.stages[0].bytes, 40 * 20);
  EXPECT_EQ(e.bytes_read, 40 * 20);
  // The trailing normalize runs inside the conversion into the batch (fuse: true): counted
  // under its own name, its work and bytes under collate.
  EXPECT_EQ(e.stages[2].name, "normalize");
  EXPECT_EQ(e.stages[2].count, 36);
  EXPECT_EQ(e.stages[2].fused, 36);
  EXPECT_EQ(e.stages[2].fused_into, "collate");
  EXPECT_EQ(e.stages[2].bytes, 0);
  EXPECT_EQ(e.stages[3].name, "collate");
  EXPECT_EQ(e.stages[3].count, 36);
  EXPECT_EQ(e.stages[3].bytes, 36 * 20 * 4);
  EXPECT_EQ(e.stages[4].name, "batch");
  EXPECT_EQ(e.stages[4].count, 36);
  EXPECT_GE(e.consumer_wait_p95_ms, 0);
  EXPECT_GE(e.consumer_wait_max_ms, e.consumer_wait_p95_ms);
  EXPECT_FALSE(e.queue_occupancy.empty());
  EXPECT_EQ(e.cache.mode, "off");
  for (const auto& s : e.stages) {
    EXPECT_GE(s.p95_ms, s.p50_ms) << s.name;
    EXPECT_GE(s.p99_ms, s.p95_ms) << s.name;
    EXPECT_GE(s.max_ms, s.p99_ms) << s.name;
  }

  nlohmann::json j = nlohmann::json::parse(ReportJson(c.stats));
  ASSERT_EQ(j["epochs"].size(), 2u);
  const auto& je = j["epochs"][1];
  EXPECT_EQ(je["epoch"], 2);
  EXPECT_GT(je["seconds"].get<double>(), 0);
  EXPECT_EQ(je["samples"], 36);
  EXPECT_GT(je["samples_per_second"].get<double>(), 0);
  EXPECT_TRUE(je.contains("consumer_wait_seconds"));
  EXPECT_TRUE(je.contains("consumer_wait_p95_ms"));
  EXPECT_TRUE(je.contains("bytes_read"));
  for (const char* field : {"mode", "hits", "misses", "bytes"})
    EXPECT_TRUE(je["cache"].contains(field)) << field;
  EXPECT_TRUE(je["queue"].contains("occupancy"));
  EXPECT_TRUE(j["cache"].contains("fingerprint"));
  EXPECT_TRUE(j["cache"].contains("placement"));
  for (const char* stage : {"read", "fail_some", "normalize", "collate", "batch"}) {
    ASSERT_TRUE(je["stages"].contains(stage)) << stage;
    for (const char* field : {"count", "busy_seconds", "p50_ms", "p95_ms", "p99_ms"})
      EXPECT_TRUE(je["stages"][stage].contains(field)) << stage << "." << field;
  }
  EXPECT_EQ(je["skipped"]["count"], 4);
  ASSERT_EQ(je["skipped"]["samples"].size(), 4u);
  EXPECT_TRUE(je["skipped"]["samples"][0].contains("source"));
  EXPECT_TRUE(je["skipped"]["samples"][0].contains("reason"));
  EXPECT_EQ(je["batch_digest"].get<std::string>(), c.stats.epochs[1].batch_digest);
  EXPECT_NE(FormatEpochTable(e).find("fail_some"), std::string::npos);
}

TEST(Pipeline, OpenErrors) {
  StageRegistry reg = TestRegistry();
  TempDir dir;
  PipelineOptions o;
  o.source.root = dir / "nope";
  o.pipeline = {Spec("decode")};
  auto p = Pipeline::Open(o, reg);
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), StatusCode::kNotFound);
  EXPECT_NE(p.status().message().find(dir / "nope"), std::string::npos);

  test::MakeImageFolder(dir / "photos", 1, 2);
  o.source.root = dir / "photos";
  o.pipeline = {};
  p = Pipeline::Open(o, reg);
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.status().message().find("decode"), std::string::npos) << p.status().message();

  o.pipeline = {Spec("no_such_stage")};
  p = Pipeline::Open(o, reg);
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.status().message().find("no_such_stage"), std::string::npos);

  o.pipeline = {Spec("decode")};
  o.batch.size = 0;
  p = Pipeline::Open(o, reg);
  EXPECT_EQ(p.status().code(), StatusCode::kInvalidArgument);
}

TEST(Pipeline, MixedShapesInABatchAreAClearError) {
  TempDir dir;
  test::MakeImageFolder(dir / "photos", 2, 4);  // sizes vary between 40 and 80
  PipelineOptions o;
  o.source.root = dir / "photos";
  o.pipeline = {Spec("decode")};
  StageRegistry reg = TestRegistry();
  Collected c = RunAll(o, reg);
  ASSERT_FALSE(c.status.ok());
  EXPECT_NE(c.status.message().find("one shape"), std::string::npos) << c.status.message();
}

TEST(Pipeline, CorruptFilesAreSkippedWithTheirReason) {
  TempDir dir;
  test::MakeImageFolder(dir / "photos", 2, 5);
  test::WriteText(dir / "photos/class0/bad_text.jpg", "this is not an image");
  test::WriteBytes(dir / "photos/class1/empty.jpg", {});
  std::vector<uint8_t> good = test::ReadBytes(dir / "photos/class0/img0.jpg");
  good.resize(good.size() / 2);
  test::WriteBytes(dir / "photos/class1/truncated.jpg", good);
  PipelineOptions o;
  o.source.root = dir / "photos";
  o.epochs = 1;
  o.batch.size = 4;
  StageParams crop;
  crop.Set("size", std::vector<int64_t>{16});
  o.pipeline = {Spec("decode"), Spec("center_crop", crop)};
  StageRegistry reg = TestRegistry();
  Collected c = RunAll(o, reg);
  ASSERT_OK(c.status);
  EXPECT_EQ(c.indices[0].size(), 10u);
  EXPECT_EQ(c.batch_sizes[0], (std::vector<int64_t>{4, 4, 2}));
  const EpochStats& e = c.stats.epochs[0];
  ASSERT_EQ(e.skipped_count, 3);
  std::set<std::string> names;
  for (const auto& s : e.skipped) {
    names.insert(s.source.substr(s.source.rfind('/') + 1));
    EXPECT_EQ(s.stage, "decode");
    EXPECT_FALSE(s.reason.empty());
  }
  EXPECT_EQ(names, (std::set<std::string>{"bad_text.jpg", "empty.jpg", "truncated.jpg"}));

  // The same folder under on_error: fail stops at the first bad file, naming it.
  o.pipeline[0].on_error = OnError::kFail;
  o.shuffle = false;
  c = RunAll(o, reg);
  ASSERT_FALSE(c.status.ok());
  EXPECT_NE(c.status.message().find("bad_text.jpg"), std::string::npos) << c.status.message();
}

}  // namespace
}  // namespace flowfeed

namespace flowfeed {
namespace {

// A run resumed at epoch 2 produces exactly the batches the full run produced for epoch 2.
TEST(Pipeline, StartEpochReproducesThatEpoch) {
  TempDir dir;
  PipelineOptions o = IdxOptions(dir, 60, 6, 6);
  o.epochs = 3;
  o.pipeline = {Spec("jitter"), Spec("random_horizontal_flip")};
  StageRegistry reg = TestRegistry();
  Collected full = RunAll(o, reg);
  ASSERT_OK(full.status);
  o.start_epoch = 2;
  auto p = Pipeline::Open(o, reg);
  ASSERT_OK(p);
  EXPECT_EQ(p.value()->current_epoch(), 2);
  std::vector<int64_t> indices;
  while (true) {
    BatchPtr b;
    ASSERT_OK(p.value()->Next(&b));
    if (!b) break;
    EXPECT_EQ(b->epoch, 2);
    indices.insert(indices.end(), b->indices.begin(), b->indices.end());
  }
  EXPECT_EQ(indices, full.indices[2]);
  RunStats s = p.value()->stats();
  ASSERT_EQ(s.epochs.size(), 1u);
  EXPECT_EQ(s.epochs[0].epoch, 3);
  EXPECT_EQ(s.epochs[0].batch_digest, full.stats.epochs[2].batch_digest);
  o.start_epoch = 3;
  EXPECT_FALSE(Pipeline::Open(o, reg).ok());
}

}  // namespace
}  // namespace flowfeed

namespace flowfeed {
namespace {

// live() from the consumer after every batch and from a second thread all along, on a cached
// two-epoch run: it follows what Next() returned, lists the stages EpochStats lists, and once an
// epoch's last batch is out it agrees with that epoch's stats.
TEST(Pipeline, LiveStatsFollowTheEpochAndMatchItsStats) {
  TempDir dir;
  PipelineOptions o = IdxOptions(dir, 203, 8, 8);  // 26 batches of 8, the last one of 3
  o.shuffle = false;  // so that epoch 2 finds every sample in the cache (see pipeline_cache_test)
  o.cache.mode = CacheMode::kMemory;
  StageParams resize;
  resize.Set("size", std::vector<int64_t>{6, 6});
  o.pipeline = {Spec("resize", resize), Spec("jitter")};
  StageRegistry reg = TestRegistry();
  auto opened = Pipeline::Open(o, reg);
  ASSERT_OK(opened);
  Pipeline& p = *opened.value();
  const int64_t per_epoch = p.batches_per_epoch();
  ASSERT_EQ(per_epoch, 26);

  LiveEpochStats before = p.live();
  EXPECT_EQ(before.epoch, 0);
  EXPECT_EQ(before.samples, 0);
  EXPECT_EQ(before.cache_mode, "memory");
  std::vector<std::string> names;
  for (const auto& s : before.stages) names.push_back(s.name);
  EXPECT_EQ(names, (std::vector<std::string>{"cache", "read", "resize", "cache_fill", "jitter",
                                             "collate", "batch"}));

  // The second thread: whatever it sees is whole and only moves forward.
  std::atomic<bool> done{false};
  std::atomic<int> reads{0};
  std::thread watcher([&] {
    LiveEpochStats last;
    while (!done.load()) {
      LiveEpochStats l = p.live();
      EXPECT_GE(l.epoch, last.epoch);
      if (l.epoch == last.epoch) {
        EXPECT_GE(l.samples, last.samples);
        EXPECT_GE(l.batches, last.batches);
        EXPECT_GE(l.cache_hits + l.cache_misses, last.cache_hits + last.cache_misses);
      }
      EXPECT_LE(l.batches, per_epoch);
      EXPECT_LE(l.samples, 203);
      EXPECT_LE(l.samples, l.batches * 8);
      EXPECT_EQ(l.stages.size(), names.size());
      for (const auto& s : l.stages) {
        EXPECT_GE(s.count, 0);
        EXPECT_GE(s.busy_seconds, 0);
      }
      last = std::move(l);
      ++reads;
    }
  });

  for (int e = 0; e < o.epochs; ++e) {
    int64_t samples = 0, batches = 0;
    LiveEpochStats at_end;
    while (true) {
      BatchPtr b;
      ASSERT_OK(p.Next(&b));
      if (!b) break;
      samples += b->size;
      ++batches;
      LiveEpochStats l = p.live();
      EXPECT_EQ(l.epoch, e + 1);
      EXPECT_EQ(l.samples, samples);
      EXPECT_EQ(l.batches, batches);
      EXPECT_GT(l.seconds, 0);
      if (batches == per_epoch) at_end = l;  // the epoch's last batch is out: complete
      // A slow consumer: the watcher reads many mid-epoch states while the workers run ahead.
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    RunStats rs = p.stats();
    ASSERT_EQ(rs.epochs.size(), size_t(e + 1));
    const EpochStats& es = rs.epochs[size_t(e)];
    // Between the epoch's end and the next Next() call, live() holds the ended epoch as it ended.
    LiveEpochStats ended = p.live();
    EXPECT_EQ(ended.epoch, e + 1);
    EXPECT_DOUBLE_EQ(ended.seconds, es.seconds);
    for (const LiveEpochStats* l : {&at_end, &ended}) {
      EXPECT_EQ(l->epoch, e + 1);
      EXPECT_EQ(l->samples, es.samples);
      EXPECT_EQ(l->batches, es.batches);
      EXPECT_EQ(l->cache_hits, es.cache.hits);
      EXPECT_EQ(l->cache_misses, es.cache.misses);
      ASSERT_EQ(l->stages.size(), es.stages.size());
      for (size_t i = 0; i < es.stages.size(); ++i) {
        EXPECT_EQ(l->stages[i].name, es.stages[i].name);
        EXPECT_EQ(l->stages[i].count, es.stages[i].count) << es.stages[i].name;
        EXPECT_NEAR(l->stages[i].busy_seconds, es.stages[i].busy_seconds, 1e-9)
            << es.stages[i].name;
      }
    }
    EXPECT_EQ(es.samples, 203);
    EXPECT_EQ(es.cache.hits + es.cache.misses, 203);
    if (e == 1) {
      EXPECT_EQ(at_end.cache_hits, at_end.samples);
      EXPECT_EQ(at_end.cache_misses, 0);
    }
  }
  done.store(true);
  watcher.join();
  EXPECT_GT(reads.load(), 0);
  // After the last epoch live() keeps holding it.
  BatchPtr b;
  ASSERT_OK(p.Next(&b));
  EXPECT_EQ(b, nullptr);
  EXPECT_EQ(p.live().epoch, 2);
  EXPECT_EQ(p.live().samples, 203);
}

}  // namespace
}  // namespace flowfeed
