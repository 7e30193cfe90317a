// pipeline/convert.h (internal): one sample's image into its place in a batch.
//
// Any thread; no shared state (the SSE path keeps a per-thread row buffer). The workers call it
// once per sample, so that the serial batcher only copies.
#pragma once

#include <cstdint>

#include "flowfeed/image.h"
#include "flowfeed/options.h"
#include "stages/fusion.h"

namespace flowfeed {

// Writes `img` (HWC, uint8 or float32) to `dst` in `layout` and `out_type`, applying `op` (the
// fused tail's column flip and value map v * a[c] + b[c], computed in float as the normalize
// stage does) in the same pass. Float to uint8 rounds to nearest and saturates. `dst` holds
// channels * height * width values of `out_type`. Where SSE2 is available, 3 channels to float
// NCHW take a vectorised path that gives the same bits as ConvertIntoScalar.
void ConvertInto(const Image& img, Layout layout, DType out_type, const OutputOp& op,
                 uint8_t* dst);

// ConvertInto without the vectorised path: the reference it must equal bit for bit.
void ConvertIntoScalar(const Image& img, Layout layout, DType out_type, const OutputOp& op,
                       uint8_t* dst);

}  // namespace flowfeed
