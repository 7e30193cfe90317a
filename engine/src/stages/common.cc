// The helpers the built-in stages share (stages/common.h).
#include "stages/common.h"

namespace flowfeed::builtin {

std::string SampleError(const Sample& s, const char* stage, const std::string& what) {
  return std::string(s.source) + ": " + stage + ": " + what;
}

Status NoImage(const Sample& s, const char* stage) {
  return Status::InvalidArgument(
      SampleError(s, stage, "no image (does the pipeline start with decode?)"));
}

// A cv::Mat header over the image's pixels (no copy).
cv::Mat MatOf(Image& img) {
  return cv::Mat(img.height(), img.width(), CV_MAKETYPE(CvDepth(img.dtype()), img.channels()),
                 img.data());
}

// Python's round(): halves go to the even neighbour. torchvision uses it for crop geometry.
int64_t RoundHalfEven(double x) {
  double f = std::floor(x);
  double d = x - f;
  if (d > 0.5 || (d == 0.5 && std::fmod(f, 2.0) != 0.0)) f += 1.0;
  return int64_t(f);
}

// ---------------------------------------------------------------------------------------------
// Interpolation


const std::vector<std::string>& InterpChoices() {
  static const std::vector<std::string> c = {"auto", "bilinear", "area", "nearest", "bicubic"};
  return c;
}

Result<Interp> ParseInterp(const std::string& s) {
  if (s == "auto") return Interp::kAuto;
  if (s == "bilinear") return Interp::kBilinear;
  if (s == "area") return Interp::kArea;
  if (s == "nearest") return Interp::kNearest;
  if (s == "bicubic") return Interp::kBicubic;
  return Status::InvalidArgument("interpolation: expected one of auto, bilinear, area, nearest, "
                                 "bicubic, got \"" + s + "\"");
}

// auto: area averaging when no dimension grows (an antialiased downscale, like torchvision's
// antialias=True), bilinear otherwise.
int CvInterp(Interp i, int src_h, int src_w, int dst_h, int dst_w) {
  switch (i) {
    case Interp::kAuto:
      return (dst_h <= src_h && dst_w <= src_w) ? cv::INTER_AREA : cv::INTER_LINEAR;
    case Interp::kBilinear: return cv::INTER_LINEAR;
    case Interp::kArea: return cv::INTER_AREA;
    case Interp::kNearest: return cv::INTER_NEAREST;
    case Interp::kBicubic: return cv::INTER_CUBIC;
  }
  return cv::INTER_LINEAR;
}

// Resizes `src` (the whole image or a ROI of it) into sample.scratch and swaps it in.
Status ResizeIntoScratch(Sample& sample, const cv::Mat& src, int out_h, int out_w, Interp interp,
                         const char* stage) {
  if (int64_t(out_h) * out_w > kMaxOutputPixels)
    return Status::ResourceExhausted(SampleError(
        sample, stage,
        "output of " + std::to_string(out_h) + "x" + std::to_string(out_w) + " is too large"));
  return WriteIntoScratch(sample, out_h, out_w, stage, "cv::resize", [&](cv::Mat& dst) {
    cv::resize(src, dst, cv::Size(out_w, out_h), 0, 0,
               CvInterp(interp, src.rows, src.cols, out_h, out_w));
  });
}

// The consumer's half of a fused decode: resize the decoded rectangle to the plan's output.
// At full scale the rectangle is whole pixels: the same cv::resize as Process() on the same
// ROI. At a reduced DCT scale the rectangle's edges fall between scaled pixels, and rounding
// them would shift and stretch the crop by up to one original pixel (visible on any gradient),
// so the exact map is applied instead: output pixel u samples scaled coordinate
// s * (left + (u + 0.5) * width / out_width) - 0.5, as cv::resize would on the full image.
// What remains after the DCT scale is a downscale by less than 2 (or an upscale): bilinear
// serves for `auto` and `area` there.
Status ResizeRegion(Sample& sample, const DecodedRegion& region, const RegionPlan& plan,
                    Interp interp, const char* stage) {
  if (region.scale_eighths == 8) {
    cv::Mat roi = MatOf(sample.image)(cv::Rect(region.x, region.y, region.width, region.height));
    return ResizeIntoScratch(sample, roi, plan.out_height, plan.out_width, interp, stage);
  }
  const double s = region.scale_eighths / 8.0;
  const double sx = s * plan.width / plan.out_width, sy = s * plan.height / plan.out_height;
  const cv::Matx23d map(sx, 0, s * plan.left + 0.5 * sx - 0.5 - region.origin_x,  //
                        0, sy, s * plan.top + 0.5 * sy - 0.5 - region.origin_y);
  int flags = cv::INTER_LINEAR;
  if (interp == Interp::kNearest) flags = cv::INTER_NEAREST;
  if (interp == Interp::kBicubic) flags = cv::INTER_CUBIC;
  const cv::Mat src = MatOf(sample.image);
  return WriteIntoScratch(sample, plan.out_height, plan.out_width, stage, "cv::warpAffine",
                          [&](cv::Mat& dst) {
                            cv::warpAffine(src, dst, map, dst.size(), flags | cv::WARP_INVERSE_MAP,
                                           cv::BORDER_REPLICATE);
                          });
}

// A size list of 1 or 2 values in [1, kMaxSide]; `what` names the parameter.
Status CheckSizeList(const std::vector<int64_t>& size, const char* what) {
  if (size.empty() || size.size() > 2)
    return Status::InvalidArgument(std::string(what) + ": expected 1 or 2 values, got " +
                                   std::to_string(size.size()));
  for (int64_t v : size)
    if (v < 1 || v > int64_t(kMaxSide))
      return Status::InvalidArgument(std::string(what) + ": values must be in [1, 65535], got " +
                                     std::to_string(v));
  return Status::Ok();
}

// Parameter errors found by StageParams (a missing or mistyped value) become InvalidArgument.
StageFactory Guarded(const char* stage, StageFactory f) {
  return [stage, f = std::move(f)](const StageParams& p) -> Result<std::unique_ptr<Stage>> {
    try {
      return f(p);
    } catch (const std::exception& e) {
      return Status::InvalidArgument(std::string(stage) + ": " + e.what());
    }
  };
}

ParamSpec Broadcast(ParamSpec p) {
  p.scalar_broadcast = true;
  return p;
}

StageInfo Info(std::string name, std::string doc, bool deterministic, std::vector<ParamSpec> params,
               const char* stage, StageFactory factory) {
  StageInfo info;
  info.name = std::move(name);
  info.doc = std::move(doc);
  info.traits.deterministic = deterministic;
  info.traits.thread_safe = true;
  info.params = std::move(params);
  info.factory = Guarded(stage, std::move(factory));
  return info;
}

std::string InterpDoc() {
  return "auto (area averaging when shrinking, bilinear when enlarging), bilinear, area, nearest "
         "or bicubic";
}

}  // namespace flowfeed::builtin
