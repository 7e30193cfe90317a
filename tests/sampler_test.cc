// The sampler: rank sharding (global and stable), shard-aware shuffling, mid-epoch resume, and
// tar shards read through the pipeline.
#include <xxhash.h>

#include <algorithm>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "flowfeed/pipeline.h"
#include "flowfeed/source.h"
#include "flowfeed/shards.h"
#include "test_util.h"

namespace flowfeed {
namespace {

using test::TempDir;

// A listing-only source: n samples in shards of `per_shard` (0: not sharded).
class FakeSource final : public Source {
 public:
  FakeSource(int64_t n, int64_t per_shard) : n_(n), per_(per_shard) {}
  int64_t size() const override { return n_; }
  int64_t label(int64_t) const override { return 0; }
  std::string_view key(int64_t) const override { return "fake"; }
  const std::vector<std::string>& classes() const override { return classes_; }
  Status Read(int64_t, Sample*) const override { return Status::Unsupported("fake"); }
  std::string Describe() const override { return "fake"; }
  std::vector<std::string> Files() const override { return {}; }
  int64_t num_shards() const override { return per_ ? (n_ + per_ - 1) / per_ : 0; }
  int64_t shard(int64_t i) const override { return per_ ? i / per_ : -1; }

 private:
  int64_t n_, per_;
  std::vector<std::string> classes_{"0"};
};

PipelineOptions Ranks(int rank, int world, ShardPolicy policy, UnevenPolicy uneven) {
  PipelineOptions o;
  o.seed = 11;
  o.distributed.rank = rank;
  o.distributed.world_size = world;
  o.distributed.policy = policy;
  o.distributed.uneven = uneven;
  return o;
}

TEST(Sampler, GlobalRanksAreDisjointAndCoverTheEpoch) {
  FakeSource src(100, 0);
  for (UnevenPolicy uneven : {UnevenPolicy::kPad, UnevenPolicy::kDrop}) {
    for (int epoch : {0, 1}) {
      std::multiset<int64_t> all;
      for (int r = 0; r < 3; ++r) {
        PipelineOptions o = Ranks(r, 3, ShardPolicy::kGlobal, uneven);
        std::vector<int64_t> mine = EpochOrder(o, src, epoch);
        EXPECT_EQ(int64_t(mine.size()), EpochLength(o, 100));
        EXPECT_EQ(mine.size(), uneven == UnevenPolicy::kPad ? 34u : 33u);
        all.insert(mine.begin(), mine.end());
      }
      std::set<int64_t> distinct(all.begin(), all.end());
      if (uneven == UnevenPolicy::kPad) {
        EXPECT_EQ(distinct.size(), 100u);  // every sample, two of them twice
        EXPECT_EQ(all.size(), 102u);
      } else {
        EXPECT_EQ(distinct.size(), 99u);  // one left out, none twice
        EXPECT_EQ(all.size(), 99u);
      }
    }
  }
}

TEST(Sampler, GlobalRanksTogetherAreTheSingleProcessOrder) {
  FakeSource src(96, 0);
  PipelineOptions one;
  one.seed = 11;
  std::vector<int64_t> single = EpochOrder(one, src, 4);
  std::vector<std::vector<int64_t>> ranks;
  for (int r = 0; r < 4; ++r) ranks.push_back(EpochOrder(Ranks(r, 4, ShardPolicy::kGlobal, UnevenPolicy::kPad), src, 4));
  // Batch k of 8 on each rank = batch k of 32 in one process.
  for (int k = 0; k < 3; ++k) {
    std::multiset<int64_t> together, alone(single.begin() + 32 * k, single.begin() + 32 * (k + 1));
    for (const auto& r : ranks) together.insert(r.begin() + 8 * k, r.begin() + 8 * (k + 1));
    EXPECT_EQ(together, alone) << "batch " << k;
  }
}

TEST(Sampler, StableRanksKeepTheirSamplesAndReshuffleThem) {
  for (int64_t per_shard : {int64_t(0), int64_t(10)}) {
    FakeSource src(100, per_shard);
    std::set<int64_t> seen;
    for (int r = 0; r < 4; ++r) {
      PipelineOptions o = Ranks(r, 4, ShardPolicy::kStable, UnevenPolicy::kPad);
      o.source.shuffle_buffer = 5;
      std::vector<int64_t> e0 = EpochOrder(o, src, 0), e1 = EpochOrder(o, src, 1);
      EXPECT_EQ(e0.size(), 25u);
      EXPECT_NE(e0, e1) << "the order within a rank's part changes every epoch";
      EXPECT_EQ(std::set<int64_t>(e0.begin(), e0.end()), std::set<int64_t>(e1.begin(), e1.end()))
          << "rank " << r << " kept its samples";
      for (int64_t i : e0) EXPECT_TRUE(seen.insert(i).second) << "sample " << i << " on two ranks";
    }
    EXPECT_EQ(seen.size(), 100u);
  }
}

TEST(Sampler, ShardShuffleIsAPermutationThatReadsFewShardsAtATime) {
  FakeSource src(500, 50);
  PipelineOptions o;
  o.seed = 3;
  o.source.shuffle_buffer = 20;
  std::vector<int64_t> e0 = EpochOrder(o, src, 0), e1 = EpochOrder(o, src, 1);
  std::vector<int64_t> sorted = e0;
  std::sort(sorted.begin(), sorted.end());
  for (int64_t i = 0; i < 500; ++i) ASSERT_EQ(sorted[size_t(i)], i);
  EXPECT_NE(e0, e1);
  // With a buffer of 20 and shards of 50, the first 50 samples come from at most 2 shards.
  std::set<int64_t> shards;
  for (size_t i = 0; i < 50; ++i) shards.insert(src.shard(e0[i]));
  EXPECT_LE(shards.size(), 2u);
  // shuffle_buffer 0: a full permutation instead (many shards early).
  o.source.shuffle_buffer = 0;
  std::vector<int64_t> full = EpochOrder(o, src, 0);
  shards.clear();
  for (size_t i = 0; i < 50; ++i) shards.insert(src.shard(full[i]));
  EXPECT_GT(shards.size(), 5u);
}

// ---------------------------------------------------------------------------- resume

struct Seen {
  std::string digest;  // of the batch's bytes and labels
  int epoch;
  int64_t number, end_position;
};

std::vector<Seen> Drain(const PipelineOptions& o, const StageRegistry& reg) {
  std::vector<Seen> out;
  auto p = Pipeline::Open(o, reg);
  EXPECT_TRUE(p.ok()) << p.status().ToString();
  if (!p.ok()) return out;
  for (int e = o.start_epoch; e < o.epochs; ++e) {
    while (true) {
      BatchPtr b;
      Status st = p.value()->Next(&b);
      EXPECT_TRUE(st.ok()) << st.ToString();
      if (!st.ok() || !b) break;
      uint64_t h = XXH3_64bits(b->data(), b->bytes()) ^
                   XXH3_64bits(b->labels.data(), b->labels.size() * sizeof(int64_t));
      out.push_back({std::to_string(h), b->epoch, b->number, b->end_position});
    }
  }
  return out;
}

TEST(Resume, FromAnyBatchTheRestIsTheSameForAnyThreadCount) {
  TempDir dir;
  test::MakeImageFolder(dir / "img", 3, 12, 5);
  test::WriteBytes(dir / "img/class0/zz_broken.jpg", {0xFF, 0xD8, 0xFF, 0x00});  // skipped
  StageRegistry reg;
  RegisterBuiltinStages(&reg);
  PipelineOptions o;
  o.source.root = dir / "img";
  o.seed = 21;
  o.epochs = 3;
  o.threads = 2;
  o.batch.size = 5;
  StageParams crop;
  crop.Set("size", std::vector<int64_t>{24});
  o.pipeline = {StageSpec{"decode", "", {}, OnError::kSkip, 0, {}},
                StageSpec{"random_resized_crop", "", crop, OnError::kSkip, 0, {}},
                StageSpec{"random_horizontal_flip", "", {}, OnError::kSkip, 0, {}}};
  o.cache.mode = CacheMode::kOff;
  std::vector<Seen> whole = Drain(o, reg);
  ASSERT_EQ(whole.size(), 3u * 8u);  // 36 good samples in batches of 5, per epoch
  for (size_t cut : {size_t(2), size_t(9), size_t(13)}) {
    for (int threads : {1, 3}) {
      PipelineOptions r = o;
      r.threads = threads;
      r.start_epoch = whole[cut].epoch;
      r.start_position = whole[cut].end_position;
      r.start_batch = whole[cut].number + 1;
      std::vector<Seen> rest = Drain(r, reg);
      ASSERT_EQ(rest.size(), whole.size() - cut - 1) << "cut after batch " << cut;
      for (size_t i = 0; i < rest.size(); ++i) {
        EXPECT_EQ(rest[i].digest, whole[cut + 1 + i].digest) << "cut " << cut << ", batch " << i;
        EXPECT_EQ(rest[i].number, whole[cut + 1 + i].number);
        EXPECT_EQ(rest[i].epoch, whole[cut + 1 + i].epoch);
      }
    }
  }
  PipelineOptions bad = o;
  bad.start_position = 37;
  auto p = Pipeline::Open(bad, reg);
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.status().message().find("start_position 37"), std::string::npos);
}

// -------------------------------------------------------------------------- tar shards

TEST(TarPipeline, ShardsGiveTheFoldersBatches) {
  TempDir dir;
  test::MakeImageFolder(dir / "img", 4, 9, 8);
  SourceOptions so;
  so.root = dir / "img";
  auto folder = OpenImageFolder(so);
  ASSERT_OK(folder);
  ShardWriterOptions w;
  w.out_dir = dir / "shards";
  w.samples_per_shard = 10;
  w.shuffle = false;  // the folder's order, so that unshuffled batches line up
  std::ostringstream log;
  std::string pattern;
  ASSERT_OK(WriteShards(*folder.value(), w, log, &pattern));
  EXPECT_EQ(pattern, "shard-{000000..000003}.tar");

  StageRegistry reg;
  RegisterBuiltinStages(&reg);
  PipelineOptions o;
  o.shuffle = false;
  o.source.root = dir / "img";
  o.batch.size = 6;
  o.threads = 2;
  StageParams resize;
  resize.Set("size", std::vector<int64_t>{16, 16});
  o.pipeline = {StageSpec{"decode", "", {}, OnError::kSkip, 0, {}},
                StageSpec{"resize", "", resize, OnError::kSkip, 0, {}}};
  o.cache.mode = CacheMode::kOff;
  std::vector<Seen> a = Drain(o, reg);
  PipelineOptions t = o;
  t.source.type = "tar";
  t.source.root = dir / "shards";
  t.source.shards = pattern;
  std::vector<Seen> b = Drain(t, reg);
  ASSERT_EQ(a.size(), 6u);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_EQ(a[i].digest, b[i].digest) << "batch " << i;

  // Shuffled: shard order and a buffer; every sample once per epoch.
  t.shuffle = true;
  t.epochs = 2;
  t.source.shuffle_buffer = 4;
  auto p = Pipeline::Open(t, reg);
  ASSERT_OK(p);
  for (int e = 0; e < 2; ++e) {
    std::set<int64_t> seen;
    BatchPtr batch;
    while (true) {
      ASSERT_OK(p.value()->Next(&batch));
      if (!batch) break;
      seen.insert(batch->indices.begin(), batch->indices.end());
    }
    EXPECT_EQ(seen.size(), 36u);
  }
}

}  // namespace
}  // namespace flowfeed
