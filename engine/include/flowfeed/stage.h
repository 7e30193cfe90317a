// flowfeed/stage.h: the interface every pipeline stage implements, built-in or plugin.
//
// A Stage transforms one Sample in place. The engine creates one instance per entry of the
// config's `pipeline:` list (through the StageRegistry) and calls Process() for every sample.
//
// Traits (declared in the stage's StageInfo, see registry.h) tell the engine how to run it:
//   deterministic  the output is a pure function of the input and the parameters: no
//                  randomness, no clock, no global state. Only a deterministic prefix of the
//                  pipeline may be cached; a random stage must draw every random number from
//                  ctx.rng() so results are reproducible.
//   thread_safe    Process() may run on many samples at once. When false the engine calls it
//                  from one thread at a time.
//
// Failure: return a non-OK Status (Corrupt, InvalidArgument, ...) for a sample the stage cannot
// handle; the stage's `on_error` policy then skips the sample (named in the report) or stops the
// run. Exceptions thrown from Process() are caught and treated the same way.
#pragma once

#include <cstdint>
#include <string>

#include "flowfeed/rng.h"
#include "flowfeed/sample.h"
#include "flowfeed/status.h"

namespace flowfeed {

struct StageTraits {
  bool deterministic = true;
  bool thread_safe = true;
};

// What a stage may know about the call besides the sample. Cheap to construct, per call.
class StageContext {
 public:
  StageContext(uint64_t seed, int epoch, int64_t index, int stage_index)
      : seed_(seed), epoch_(epoch), index_(index), stage_index_(stage_index) {}

  uint64_t seed() const { return seed_; }
  int epoch() const { return epoch_; }
  int64_t index() const { return index_; }
  int stage_index() const { return stage_index_; }

  // The generator for this (seed, epoch, sample, stage). Each call returns a fresh generator
  // starting at the same point, so call it once per Process() and keep the value.
  Rng rng() const { return Rng(seed_, uint64_t(epoch_), uint64_t(index_), uint64_t(stage_index_)); }

 private:
  uint64_t seed_;
  int epoch_;
  int64_t index_;
  int stage_index_;
};

class Stage {
 public:
  virtual ~Stage() = default;
  virtual Status Process(Sample& sample, const StageContext& ctx) = 0;
};

}  // namespace flowfeed
