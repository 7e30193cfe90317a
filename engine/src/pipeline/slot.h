// pipeline/slot.h (internal): a sample's ticket, and the slot it is processed in.
//
// Ownership: slots live in the graph's ring (graph.h), one per token; a slot belongs to
// whichever node holds its sample (the input node's ticket names it, then each segment's
// worker, then the batcher), and is free again once the batcher released its token.
#pragma once

#include <cstddef>
#include <cstdint>

#include "flowfeed/image.h"
#include "flowfeed/sample.h"
#include "flowfeed/status.h"
#include "stages/fusion.h"
#include "pipeline/batch_pool.h"

namespace flowfeed {

// What the input node draws: the sample's place in the run's stream and in the dataset.
struct Ticket {
  uint64_t sequence = 0;
  int64_t index = 0;
  int epoch = 0;
};

struct Slot {
  Sample sample;
  int failed_step = -1;  // -1: fine
  bool fatal = false;    // the failing step's policy is `fail`, or its isolated stage is broken
  Status error;
  int resume = 0;  // first step to run: past the cached ones on a cache hit
  // An owned buffer kept aside while `sample.image` is a cache view, so the slot's ping-pong
  // buffers survive a hit and steady state allocates nothing.
  Image spare;
  // The cached file of a hit when the cache keeps encoded files (placement at read): a view of
  // the memory store (dropped at once), or a disk record read into this reused buffer.
  Image cached_file;
  // The sample in the batch's layout and dtype, made by the worker so that the serial batcher
  // only copies; from the TensorPool, given back by the batcher.
  TensorPool::Buffer tensor;
  int channels = 0, height = 0, width = 0;
  // XXH3-64 of `tensor`'s bytes (options.digest), hashed by the worker while they are still in
  // its cache; the batcher folds these into the epoch's batch_digest in batch order.
  uint64_t tensor_digest = 0;
  // Fused decode: the region the decoder left in sample.image for the next step.
  bool region_decoded = false;
  RegionPlan region_plan;
  DecodedRegion region;
  // Fused tail: the flips and value map the conversion applies.
  OutputOp output_op;
  // Bytes of the buffers the slot kept when its last sample was done with its worker (counted
  // in StepRunner::retained_bytes() until the next sample takes the slot).
  size_t kept_bytes = 0;
  // What the in-flight byte budget charges the sample, and the most its buffers held
  // (byte_budget.h); from Begin until the sample is done with its worker.
  int64_t budget_charge = 0;
  int64_t budget_peak = 0;
};

}  // namespace flowfeed
