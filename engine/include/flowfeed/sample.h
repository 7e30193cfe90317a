// flowfeed/sample.h: one item flowing through the pipeline.
//
// A Source fills either `encoded` (the file's bytes, for the decoder) or `image` (already pixels,
// as IDX records are). Stages then transform `image`. A stage that produces a new image writes it
// into `scratch` (Reshape() reuses its storage) and swaps it with `image`, so steady state
// allocates nothing. Samples are owned and recycled by the pipeline; a stage never keeps a
// pointer to one after Process() returns.
#pragma once

#include <cstdint>
#include <string_view>
#include <utility>
#include <vector>

#include "flowfeed/image.h"

namespace flowfeed {

struct Sample {
  int64_t index = -1;     // position in the dataset (the Source's numbering)
  int64_t label = -1;     // class id, or -1 when the source has none
  int epoch = 0;          // 0-based epoch this sample belongs to
  uint64_t sequence = 0;  // position in the run's stream of samples (across epochs)
  // A name for messages and reports: a path, or "train-images-idx3-ubyte.gz[42]". Points into
  // the Source's storage, valid while the pipeline lives.
  std::string_view source;

  std::vector<uint8_t> encoded;  // raw file bytes; capacity is reused across samples
  Image image;                   // the current pixels
  Image scratch;                 // spare buffer for stages that write a new image

  // After a stage wrote its output into scratch: make it the current image.
  void SwapScratch() { std::swap(image, scratch); }
};

}  // namespace flowfeed
