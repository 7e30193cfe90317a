// pipeline/batch_digest.cc: BatchDigest (pipeline.h), the one definition of an epoch's
// batch_digest: the batcher folds its samples' digests into one, and a consumer can recompute
// it from what it received. Used by one thread at a time.
#include <xxhash.h>

#include <cstdio>

#include "flowfeed/pipeline.h"

namespace flowfeed {

BatchDigest::BatchDigest() : state_(XXH3_createState()) { Reset(); }

BatchDigest::~BatchDigest() { XXH3_freeState(static_cast<XXH3_state_t*>(state_)); }

void BatchDigest::Reset() { XXH3_64bits_reset(static_cast<XXH3_state_t*>(state_)); }

uint64_t BatchDigest::SampleDigest(const void* data, size_t bytes) {
  return XXH3_64bits(data, bytes);
}

void BatchDigest::AddSample(uint64_t sample_digest) {
  XXH3_64bits_update(static_cast<XXH3_state_t*>(state_), &sample_digest, sizeof sample_digest);
}

void BatchDigest::AddLabels(const int64_t* labels, size_t count) {
  XXH3_64bits_update(static_cast<XXH3_state_t*>(state_), labels, count * sizeof(int64_t));
}

void BatchDigest::AddBatch(const uint8_t* data, size_t sample_bytes, size_t samples,
                           const int64_t* labels) {
  for (size_t i = 0; i < samples; ++i) AddSample(SampleDigest(data + i * sample_bytes, sample_bytes));
  AddLabels(labels, samples);
}

std::string BatchDigest::Hex() const {
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx",
                static_cast<unsigned long long>(
                    XXH3_64bits_digest(static_cast<const XXH3_state_t*>(state_))));
  return hex;
}

}  // namespace flowfeed
