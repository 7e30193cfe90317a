// fusion.h (internal): the interfaces through which the pipeline fuses neighbouring built-in
// stages, when `fuse` is on (the default).
//
// Two fusions, each planned once at Pipeline::Open and applied per sample:
//
//   decode -> random_resized_crop | resize
//       The crop stage says which rectangle of the image it will read and how large its output
//       is (drawing the same random numbers Process() would); the decoder then decodes only
//       that rectangle's rows and columns, at the smallest DCT scale (1/8, 1/4, 1/2 or 1) that
//       keeps the rectangle at least as large as the output; the crop stage resizes what was
//       decoded. Not used when the decoded image is what the cache keeps (the cache needs the
//       whole image), nor for a file the region decoder declines (not a baseline JPEG, any
//       warning, anything after the end-of-image marker): that sample takes the unfused path.
//
//   trailing random_horizontal_flip / normalize
//       Stages after the cache point, at the end of the pipeline, that only mirror columns or
//       map values per channel (at most one normalize) are not run as passes of their own: they
//       add their effect to an OutputOp and the final conversion into the batch's layout and
//       dtype applies it while it copies. Same random draws, same arithmetic, so batches are
//       bit-identical to the unfused pipeline's.
//
// Only built-in stages implement these (plugins are never fused). The pipeline finds them with
// dynamic_cast on the Stage objects it created.
#pragma once

#include "flowfeed/sample.h"
#include "flowfeed/stage.h"
#include "flowfeed/status.h"

namespace flowfeed {

// A rectangle of a full-size image and the size the stage turns it into.
struct RegionPlan {
  int top = 0, left = 0, height = 0, width = 0;
  int out_height = 0, out_width = 0;
};

// Where the decoder left the planned rectangle inside sample.image (after any DCT scaling).
struct DecodedRegion {
  // The rectangle's whole pixels in sample.image (at a reduced scale, widened to whole pixels).
  int x = 0, y = 0, width = 0, height = 0;
  int scale_eighths = 8;  // the DCT scale used: scale_eighths / 8
  // Scaled-image coordinates of sample.image's first column and row, so that a consumer can map
  // the plan's exact (fractional, once scaled) rectangle into the buffer.
  int origin_x = 0, origin_y = 0;
};

// A stage whose output is one rectangle of its input, resized (random_resized_crop, resize).
class RegionConsumer {
 public:
  virtual ~RegionConsumer() = default;
  // The rectangle Process() would read from an h x w image, and its output size. Draws from
  // ctx.rng() exactly as Process() does, so either path gives the same geometry. False: this
  // image takes the unfused path (Process() has nothing to do, or will report an error).
  virtual bool PlanRegion(int height, int width, const StageContext& ctx,
                          RegionPlan* plan) const = 0;
  // Process() for a sample whose image holds only (a scaled copy of) the planned rectangle, at
  // `region`: resizes it to the plan's output size.
  virtual Status ProcessRegion(Sample& sample, const DecodedRegion& region,
                               const RegionPlan& plan) const = 0;
};

// A decoder that can decode just what a following RegionConsumer needs.
class RegionDecoder {
 public:
  virtual ~RegionDecoder() = default;
  // Sets *done and fills sample.image, *plan and *region when it decoded the region; leaves
  // *done false (and the sample untouched but for scratch storage) when the file is not one it
  // region-decodes, in which case the caller runs Process() and the consumer as usual. Errors
  // only for what Process() would also fail on.
  virtual Status DecodeRegion(Sample& sample, const RegionConsumer& next,
                              const StageContext& next_ctx, RegionPlan* plan,
                              DecodedRegion* region, bool* done) const = 0;
  // True when DecodeRegion() may decode at a reduced DCT scale: its output then differs from
  // Process()'s whole image cropped and resized, so that whole image must not stand in for it
  // (a cache after this decoder keeps the encoded file instead).
  virtual bool ScalesInDct() const = 0;
};

// What the final conversion applies while it copies a sample into the batch.
struct OutputOp {
  static constexpr int kMaxValues = 4;
  bool flip = false;       // mirror the columns
  int affine_values = 0;   // 0: values unchanged; 1: a[0], b[0] for every channel; else per channel
  float a[kMaxValues] = {1, 1, 1, 1};
  float b[kMaxValues] = {0, 0, 0, 0};
};

// A stage that can hand its effect to the final conversion instead of running Process().
class OutputFusable {
 public:
  virtual ~OutputFusable() = default;
  // True when the stage maps values (at most one such stage is fused); false when it only
  // moves pixels.
  virtual bool MapsValues() const = 0;
  // Adds the stage's effect on this sample to *op, drawing from ctx.rng() as Process() would;
  // fails where Process() would (e.g. a channel count the stage cannot handle).
  virtual Status FuseInto(const Sample& sample, const StageContext& ctx, OutputOp* op) const = 0;
};

}  // namespace flowfeed
