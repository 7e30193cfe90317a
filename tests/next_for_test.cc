// Pipeline::NextFor (a wait in slices, as the Python module waits) and BatchDigest (the
// consumer's own recomputation of an epoch's batch_digest).
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "flowfeed/pipeline.h"
#include "flowfeed/registry.h"
#include "test_util.h"

namespace flowfeed {
namespace {

using test::TempDir;

// Holds every sample until Open() is called on the gate: until then no batch can be made.
struct Gate {
  std::mutex mu;
  std::condition_variable cv;
  bool open = false;
  void Open() {
    {
      std::lock_guard<std::mutex> lock(mu);
      open = true;
    }
    cv.notify_all();
  }
  void Wait() {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [this] { return open; });
  }
};
Gate* g_gate = nullptr;

class GateStage : public Stage {
 public:
  Status Process(Sample&, const StageContext&) override {
    g_gate->Wait();
    return Status::Ok();
  }
};

StageRegistry GateRegistry() {
  StageRegistry reg;
  RegisterBuiltinStages(&reg);
  StageInfo gate;
  gate.name = "gate";
  gate.doc = "test: waits for the test's gate";
  gate.factory = [](const StageParams&) -> Result<std::unique_ptr<Stage>> {
    return std::unique_ptr<Stage>(new GateStage());
  };
  EXPECT_OK(reg.Register(std::move(gate)));
  return reg;
}

PipelineOptions Options(const TempDir& dir) {
  PipelineOptions o = test::IdxOptions(dir, 50, 6, 5);
  // No cache: its cost probe at Open() would run the gate stage before the test opens it.
  o.cache.mode = CacheMode::kOff;
  StageSpec flip;
  flip.type = "random_horizontal_flip";
  o.pipeline.push_back(flip);
  return o;
}

// Every epoch's digest, recomputed from the batches as delivered.
std::vector<std::string> ConsumerDigests(Pipeline& p, int epochs, bool sliced, int* timeouts) {
  std::vector<std::string> out;
  for (int e = 0; e < epochs; ++e) {
    BatchDigest d;
    while (true) {
      BatchPtr b;
      if (sliced) {
        bool timed_out = true;
        while (timed_out) {
          EXPECT_OK(p.NextFor(&b, 0.001, &timed_out));
          if (timed_out) {
            EXPECT_EQ(b, nullptr);
            ++*timeouts;
          }
        }
      } else {
        EXPECT_OK(p.Next(&b));
      }
      if (!b) break;
      d.AddBatch(b->data(), b->sample_bytes(), size_t(b->size), b->labels.data());
    }
    out.push_back(d.Hex());
  }
  return out;
}

TEST(NextFor, TimesOutWhileNothingIsReadyThenDeliversTheSameBatches) {
  TempDir dir;
  PipelineOptions o = Options(dir);
  StageRegistry reg = GateRegistry();
  StageSpec gate;
  gate.type = "gate";
  o.pipeline.insert(o.pipeline.begin(), gate);

  // The same pipeline with its gate open from the start, read with plain Next().
  Gate open_gate;
  open_gate.Open();
  g_gate = &open_gate;
  auto plain = Pipeline::Open(o, reg);
  ASSERT_OK(plain.status());
  int unused = 0;
  const std::vector<std::string> expected = ConsumerDigests(*plain.value(), 2, false, &unused);
  // The consumer's recomputation is the engine's own digest.
  RunStats rs = plain.value()->stats();
  ASSERT_EQ(rs.epochs.size(), 2u);
  EXPECT_EQ(expected[0], rs.epochs[0].batch_digest);
  EXPECT_EQ(expected[1], rs.epochs[1].batch_digest);
  plain.value().reset();

  Gate closed;
  g_gate = &closed;
  auto sliced = Pipeline::Open(o, reg);
  ASSERT_OK(sliced.status());
  // Nothing can be ready while the gate is shut: the wait times out, and says so.
  BatchPtr b;
  bool timed_out = false;
  ASSERT_OK(sliced.value()->NextFor(&b, 0.05, &timed_out));
  EXPECT_TRUE(timed_out);
  EXPECT_EQ(b, nullptr);
  ASSERT_OK(sliced.value()->NextFor(&b, 0.0, &timed_out));
  EXPECT_TRUE(timed_out);
  const auto t0 = std::chrono::steady_clock::now();
  std::thread opener([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    closed.Open();
  });
  int timeouts = 0;
  EXPECT_EQ(ConsumerDigests(*sliced.value(), 2, true, &timeouts), expected);
  opener.join();
  EXPECT_GT(timeouts, 0);
  // The waits that timed out were one wait: the first batch's, which began before the gate
  // opened, so the epoch's consumer wait covers the 0.15 s the test kept the gate shut.
  RunStats srs = sliced.value()->stats();
  EXPECT_GE(srs.epochs[0].consumer_wait_seconds, 0.1);
  EXPECT_LE(srs.epochs[0].consumer_wait_seconds,
            std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() + 0.1);
  g_gate = nullptr;
}

TEST(BatchDigest, IsPerSampleDigestsThenLabels) {
  const uint8_t data[6] = {1, 2, 3, 4, 5, 6};
  const int64_t labels[2] = {7, 9};
  BatchDigest whole;
  whole.AddBatch(data, 3, 2, labels);
  BatchDigest parts;
  parts.AddSample(BatchDigest::SampleDigest(data, 3));
  parts.AddSample(BatchDigest::SampleDigest(data + 3, 3));
  parts.AddLabels(labels, 2);
  EXPECT_EQ(whole.Hex(), parts.Hex());
  EXPECT_EQ(whole.Hex().size(), 16u);
  BatchDigest other;
  const int64_t swapped[2] = {9, 7};
  other.AddBatch(data, 3, 2, swapped);
  EXPECT_NE(whole.Hex(), other.Hex());
  other.Reset();
  other.AddBatch(data, 3, 2, labels);
  EXPECT_EQ(whole.Hex(), other.Hex());
}

}  // namespace
}  // namespace flowfeed
