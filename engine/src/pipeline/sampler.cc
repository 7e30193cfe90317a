// pipeline/sampler.cc: the order of an epoch's samples, and their split between ranks.
//
// Everything here is a pure function of the options and the epoch, so that every rank, every
// thread count and every resumed run agree on it without talking to each other. TicketDrawer
// (sampler.h) walks those orders, one ticket per sample.
#include "pipeline/sampler.h"

#include <algorithm>
#include <cstdint>
#include <vector>

#include "flowfeed/pipeline.h"
#include "flowfeed/rng.h"

namespace flowfeed {

namespace {

// Streams of the sampler's generators, far from any stage's stream number (stages use their
// position in the pipeline). kSamplerStream is the one the single-process sampler has always
// used, so runs without ranks or shards keep their batches.
constexpr uint64_t kSamplerStream = uint64_t(1) << 40;
constexpr uint64_t kShardOrderStream = kSamplerStream + 1;
constexpr uint64_t kPartitionStream = kSamplerStream + 2;
// The "epoch" a stable partition is keyed by: the same for every epoch.
constexpr uint64_t kPartitionEpoch = ~uint64_t(0);

void FisherYates(std::vector<int64_t>* v, Rng* rng) {
  for (int64_t i = int64_t(v->size()) - 1; i > 0; --i)
    std::swap((*v)[size_t(i)], (*v)[size_t(rng->UniformInt(0, i))]);
}

// WebDataset's scheme on `items` (grouped by shard, each shard's samples in file order): the
// shards in a random order, then the stream through a buffer of `buffer` samples from which a
// random one is drawn each time a new one comes in. Reads then move through a few shards at a
// time, front to back, instead of jumping across the whole dataset.
std::vector<int64_t> ShardShuffle(const std::vector<int64_t>& items, const Source& source,
                                  int64_t buffer, Rng* shard_rng, Rng* sample_rng) {
  std::vector<std::pair<size_t, size_t>> runs;  // [begin, end) of each shard's run in items
  for (size_t i = 0; i < items.size();) {
    size_t j = i + 1;
    while (j < items.size() && source.shard(items[j]) == source.shard(items[i])) ++j;
    runs.emplace_back(i, j);
    i = j;
  }
  for (int64_t i = int64_t(runs.size()) - 1; i > 0; --i)
    std::swap(runs[size_t(i)], runs[size_t(shard_rng->UniformInt(0, i))]);
  std::vector<int64_t> out;
  out.reserve(items.size());
  std::vector<int64_t> pool;
  pool.reserve(size_t(std::min<int64_t>(buffer, int64_t(items.size()))));
  for (const auto& run : runs) {
    for (size_t k = run.first; k < run.second; ++k) {
      if (int64_t(pool.size()) < buffer) {
        pool.push_back(items[k]);
        continue;
      }
      size_t pick = size_t(sample_rng->UniformInt(0, int64_t(pool.size()) - 1));
      out.push_back(pool[pick]);
      pool[pick] = items[k];
    }
  }
  FisherYates(&pool, sample_rng);
  out.insert(out.end(), pool.begin(), pool.end());
  return out;
}

// `items` shuffled as the options say, with generators keyed by (epoch, who).
std::vector<int64_t> Shuffled(std::vector<int64_t> items, const PipelineOptions& options,
                              const Source& source, uint64_t epoch, uint64_t who,
                              uint64_t stream) {
  if (source.num_shards() > 0 && options.source.shuffle_buffer > 0) {
    Rng shard_rng(options.seed, epoch, who, kShardOrderStream);
    Rng sample_rng(options.seed, epoch, who, stream);
    return ShardShuffle(items, source, options.source.shuffle_buffer, &shard_rng, &sample_rng);
  }
  Rng rng(options.seed, epoch, who, stream);
  FisherYates(&items, &rng);
  return items;
}

// The first `length * world` entries of `seq`, repeating it from the start where it is short.
std::vector<int64_t> Fit(const std::vector<int64_t>& seq, int64_t total) {
  std::vector<int64_t> out(static_cast<size_t>(total));
  for (int64_t i = 0; i < total; ++i) out[size_t(i)] = seq[size_t(i % int64_t(seq.size()))];
  return out;
}

}  // namespace

int64_t EpochLength(const PipelineOptions& options, int64_t dataset_size) {
  const int64_t w = std::max(1, options.distributed.world_size);
  if (w == 1) return dataset_size;
  switch (options.distributed.uneven) {
    case UnevenPolicy::kPad: return (dataset_size + w - 1) / w;
    case UnevenPolicy::kDrop: return dataset_size / w;
    case UnevenPolicy::kAll: break;
  }
  return (dataset_size - options.distributed.rank + w - 1) / w;
}

std::vector<int64_t> EpochOrder(const PipelineOptions& options, const Source& source, int epoch) {
  const int64_t n = source.size();
  const int64_t w = std::max(1, options.distributed.world_size);
  const int64_t r = options.distributed.rank;
  const int64_t length = EpochLength(options, n);
  std::vector<int64_t> all(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) all[size_t(i)] = i;
  if (n == 0 || length == 0) return {};

  if (w == 1 || options.distributed.policy == ShardPolicy::kGlobal ||
      options.distributed.uneven == UnevenPolicy::kAll) {
    std::vector<int64_t> seq =
        options.shuffle ? Shuffled(std::move(all), options, source, uint64_t(epoch), 0, kSamplerStream)
                        : std::move(all);
    if (w == 1) return seq;
    if (options.distributed.uneven != UnevenPolicy::kAll) seq = Fit(seq, length * w);
    // Dealt out: the first world_size samples of the epoch make everyone's first sample, so the
    // ranks' k-th batches together hold the k-th global batch of a single-process run.
    std::vector<int64_t> mine(static_cast<size_t>(length));
    for (int64_t k = 0; k < length; ++k) mine[size_t(k)] = seq[size_t(r + w * k)];
    return mine;
  }

  // Stable: a partition keyed by the seed alone, in contiguous runs (whole shards, mostly).
  std::vector<int64_t> part =
      options.shuffle ? Shuffled(std::move(all), options, source, kPartitionEpoch, 0, kPartitionStream)
                      : std::move(all);
  part = Fit(part, length * w);
  std::vector<int64_t> mine(part.begin() + r * length, part.begin() + (r + 1) * length);
  if (!options.shuffle) return mine;
  // Sharded sources: the shuffle wants each shard's samples together and in file order again.
  if (source.num_shards() > 0 && options.source.shuffle_buffer > 0)
    std::stable_sort(mine.begin(), mine.end(), [&](int64_t a, int64_t b) {
      return source.shard(a) != source.shard(b) ? source.shard(a) < source.shard(b) : a < b;
    });
  return Shuffled(std::move(mine), options, source, uint64_t(epoch), uint64_t(r) + 1, kSamplerStream);
}

bool TicketDrawer::Draw(Ticket* t) {
  if (next_sequence_ >= total_) return false;
  t->sequence = next_sequence_++;
  // Sequences start at 0 (the sequencer needs that); epochs at start_epoch, positions at
  // start_position.
  const uint64_t at = t->sequence + uint64_t(options_.start_position);
  t->epoch = options_.start_epoch + int(at / uint64_t(per_epoch_));
  int64_t pos = int64_t(at % uint64_t(per_epoch_));
  if (pos == 0 || t->sequence == 0) order_ = EpochOrder(options_, source_, t->epoch);
  t->index = order_[size_t(pos)];
  return true;
}

}  // namespace flowfeed
