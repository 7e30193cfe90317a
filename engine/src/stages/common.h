// stages/common.h (internal): what the built-in stages share: error text, OpenCV views of
// images, torchvision's rounding, interpolation choices, resizing into a sample's scratch image,
// and the factory guard; plus each built-in stage's factory, for the registration table
// (stages/builtin.cc).
//
// Conventions every built-in stage follows:
//   * Images are HWC, uint8 or float32 (after normalize), any channel count (1 and 3 in practice).
//   * A stage that produces a new shape writes into sample.scratch (Reshape() reuses its storage)
//     and swaps it in; it never writes into sample.image's storage when that storage is shared
//     (a cache may hold it). Steady state allocates nothing.
//   * Stage objects have no mutable state, so Process() is thread-safe.
//   * Random stages draw every number from ctx.rng(), once per Process().
//   * Per-sample errors start with the sample's source and the stage name.
//   * Geometry follows torchvision (Resize, CenterCrop, RandomResizedCrop), including Python's
//     round-half-to-even where torchvision calls round().
//
// Thread-safety: every function here is safe to call from any thread (no shared state).
#pragma once

#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "codec/codec.h"
#include "flowfeed/registry.h"
#include "stages/fusion.h"

namespace flowfeed::builtin {

// Largest side a size parameter accepts (JPEG's own limit).
inline constexpr double kMaxSide = 65535;
// Largest output a geometric stage will produce, in pixels (guards against absurd aspect ratios).
inline constexpr int64_t kMaxOutputPixels = int64_t(1) << 30;

enum class Interp { kAuto, kBilinear, kArea, kNearest, kBicubic };

// "<source>: <stage>: <what>", the start every per-sample error of a built-in stage has.
std::string SampleError(const Sample& s, const char* stage, const std::string& what);
// InvalidArgument for a sample that reached an image stage without pixels (no decode first).
Status NoImage(const Sample& s, const char* stage);

inline int CvDepth(DType t) { return t == DType::kUInt8 ? CV_8U : CV_32F; }

// A cv::Mat header over the image's pixels (no copy).
cv::Mat MatOf(Image& img);

// Python's round(): halves go to the even neighbour. torchvision uses it for crop geometry.
int64_t RoundHalfEven(double x);

// The `interpolation` parameter's values, in the order of Interp, and their parsing
// (InvalidArgument naming the choices).
const std::vector<std::string>& InterpChoices();
Result<Interp> ParseInterp(const std::string& s);

// auto: area averaging when no dimension grows (an antialiased downscale, like torchvision's
// antialias=True), bilinear otherwise.
int CvInterp(Interp i, int src_h, int src_w, int dst_h, int dst_w);

// Resizes `src` (the whole image or a ROI of it) into sample.scratch and swaps it in.
Status ResizeIntoScratch(Sample& sample, const cv::Mat& src, int out_h, int out_w, Interp interp,
                         const char* stage);

// The consumer's half of a fused decode: resize the decoded rectangle to the plan's output.
// At full scale the rectangle is whole pixels: the same cv::resize as Process() on the same
// ROI. At a reduced DCT scale the rectangle's edges fall between scaled pixels, and rounding
// them would shift and stretch the crop by up to one original pixel (visible on any gradient),
// so the exact map is applied instead: output pixel u samples scaled coordinate
// s * (left + (u + 0.5) * width / out_width) - 0.5, as cv::resize would on the full image.
// What remains after the DCT scale is a downscale by less than 2 (or an upscale): bilinear
// serves for `auto` and `area` there.
Status ResizeRegion(Sample& sample, const DecodedRegion& region, const RegionPlan& plan,
                    Interp interp, const char* stage);

// A size list of 1 or 2 values in [1, kMaxSide]; `what` names the parameter.
Status CheckSizeList(const std::vector<int64_t>& size, const char* what);

// Parameter errors found by StageParams (a missing or mistyped value) become InvalidArgument.
StageFactory Guarded(const char* stage, StageFactory f);

// Runs `write`, an OpenCV call that fills the cv::Mat it is given, with sample.scratch
// (reshaped to out_h x out_w, the input's channels and dtype) as that Mat, then swaps it in. An
// OpenCV exception, or OpenCV allocating a Mat of its own, is an Internal error naming `what`.
template <typename Write>
Status WriteIntoScratch(Sample& sample, int out_h, int out_w, const char* stage, const char* what,
                        Write write) {
  const Image& in = sample.image;
  sample.scratch.Reshape(out_h, out_w, in.channels(), in.dtype());
  cv::Mat dst = MatOf(sample.scratch);
  try {
    write(dst);
  } catch (const cv::Exception& e) {
    return Status::Internal(SampleError(sample, stage, std::string(what) + " failed: " + e.what()));
  }
  if (dst.data != sample.scratch.data())
    return Status::Internal(SampleError(sample, stage, std::string(what) + " reallocated its output"));
  sample.SwapScratch();
  return Status::Ok();
}

// A list parameter that also accepts one scalar, meaning that value for every element.
ParamSpec Broadcast(ParamSpec p);
// A built-in stage's StageInfo: thread-safe, with its factory Guarded under `stage`.
StageInfo Info(std::string name, std::string doc, bool deterministic, std::vector<ParamSpec> params,
               const char* stage, StageFactory factory);
// The doc of every `interpolation` parameter.
std::string InterpDoc();

// Each file's stages, schema and factory (decode.cc, geometry.cc, pixel.cc).
std::vector<StageInfo> DecodeStageInfos();
std::vector<StageInfo> GeometryStageInfos();
std::vector<StageInfo> PixelStageInfos();

}  // namespace flowfeed::builtin
