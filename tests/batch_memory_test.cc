// Batches collated into the memory a consumer gives (PipelineOptions::batch_memory): every batch
// lies in a block the allocator handed out, the batches are the heap's bit for bit, a batch kept
// past the pipeline stays valid, every block is freed at the end, and a copy is on the heap.
#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <vector>

#include "flowfeed/batch_memory.h"
#include "flowfeed/pipeline.h"
#include "flowfeed/registry.h"
#include "test_util.h"

namespace flowfeed {
namespace {

using test::TempDir;

// Hands out heap blocks and remembers them; counts the blocks still alive.
class RecordingMemory : public BatchAllocator {
 public:
  BatchBlock Allocate(size_t bytes) override {
    BatchBlock b = HeapBatchMemory()->Allocate(bytes);
    auto alive = alive_;
    alive->fetch_add(1);
    // The block's owner also counts it down when the pipeline lets it go.
    b.owner = std::shared_ptr<void>(b.data, [inner = b.owner, alive](void*) { alive->fetch_sub(1); });
    std::lock_guard<std::mutex> lock(mu_);
    blocks_.emplace_back(b.data, bytes);
    return b;
  }
  std::string name() const override { return "recording"; }

  bool Holds(const uint8_t* p, size_t bytes) {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [start, size] : blocks_)
      if (p >= start && p + bytes <= start + size) return true;
    return false;
  }
  size_t blocks() {
    std::lock_guard<std::mutex> lock(mu_);
    return blocks_.size();
  }
  int alive() const { return alive_->load(); }

 private:
  std::mutex mu_;
  std::vector<std::pair<const uint8_t*, size_t>> blocks_;
  std::shared_ptr<std::atomic<int>> alive_ = std::make_shared<std::atomic<int>>(0);
};

PipelineOptions Options(const TempDir& dir) {
  PipelineOptions o = test::IdxOptions(dir, 50, 6, 5);
  StageSpec flip;
  flip.type = "random_horizontal_flip";
  o.pipeline.push_back(flip);
  return o;
}

std::vector<std::string> Digests(Pipeline& p, int epochs, RecordingMemory* memory,
                                 std::vector<BatchPtr>* keep) {
  std::vector<std::string> out;
  for (int e = 0; e < epochs; ++e) {
    BatchDigest d;
    while (true) {
      BatchPtr b;
      EXPECT_OK(p.Next(&b));
      if (!b) break;
      if (memory) {
        EXPECT_TRUE(memory->Holds(b->data(), b->bytes())) << "batch " << b->number;
      }
      d.AddBatch(b->data(), b->sample_bytes(), size_t(b->size), b->labels.data());
      if (keep && keep->empty()) keep->push_back(b);
    }
    out.push_back(d.Hex());
  }
  return out;
}

TEST(BatchMemory, BatchesAreCollatedIntoTheGivenMemoryAndAreTheHeapsBitForBit) {
  TempDir dir;
  StageRegistry reg;
  RegisterBuiltinStages(&reg);
  PipelineOptions heap_options = Options(dir);
  auto heap = Pipeline::Open(heap_options, reg);
  ASSERT_OK(heap);
  const std::vector<std::string> want = Digests(*heap.value(), 2, nullptr, nullptr);

  auto memory = std::make_shared<RecordingMemory>();
  PipelineOptions o = Options(dir);
  o.batch_memory = memory;
  std::vector<BatchPtr> kept;
  std::vector<std::string> got;
  {
    auto p = Pipeline::Open(o, reg);
    ASSERT_OK(p);
    got = Digests(*p.value(), 2, memory.get(), &kept);
  }
  EXPECT_EQ(got, want);
  // Recycled, not one block per batch: at most one per batch the pipeline holds at once.
  EXPECT_GT(memory->blocks(), 0u);
  EXPECT_LE(memory->blocks(), size_t(o.prefetch + 2));
  // The batch kept past the pipeline is intact; its block goes with it.
  ASSERT_EQ(kept.size(), 1u);
  BatchDigest again;
  again.AddBatch(kept[0]->data(), kept[0]->sample_bytes(), size_t(kept[0]->size),
                 kept[0]->labels.data());
  EXPECT_TRUE(memory->Holds(kept[0]->data(), kept[0]->bytes()));
  EXPECT_EQ(memory->alive(), 1);
  kept.clear();
  EXPECT_EQ(memory->alive(), 0);
}

TEST(BatchMemory, ACopyOfABatchIsOnTheHeap) {
  auto memory = std::make_shared<RecordingMemory>();
  Batch b;
  b.data_ = BatchStorage(memory);
  b.data_.Reserve(64);
  for (int i = 0; i < 64; ++i) b.data_.data()[i] = uint8_t(i);
  EXPECT_EQ(b.data_.memory(), "recording");
  Batch copy(b);
  EXPECT_FALSE(memory->Holds(copy.data(), 64));
  EXPECT_EQ(copy.data_.memory(), "heap");
  for (int i = 0; i < 64; ++i) ASSERT_EQ(copy.data()[i], uint8_t(i));
  // Growing takes a new block of the allocator; shrinking keeps the block.
  const uint8_t* first = b.data();
  b.data_.Reserve(32);
  EXPECT_EQ(b.data(), first);
  EXPECT_EQ(b.data_.size(), 32u);
  b.data_.Reserve(4096);
  EXPECT_TRUE(memory->Holds(b.data(), 4096));
  EXPECT_EQ(memory->blocks(), 2u);
  EXPECT_EQ(memory->alive(), 1);  // the first block was let go
}

}  // namespace
}  // namespace flowfeed
