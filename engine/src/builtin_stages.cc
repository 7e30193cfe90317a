// builtin_stages.cc: flowfeed's own stages: decode, resize, center_crop, random_resized_crop,
// random_horizontal_flip, normalize.
//
// Conventions every stage here follows:
//   * Images are HWC, uint8 or float32 (after normalize), any channel count (1 and 3 in practice).
//   * A stage that produces a new shape writes into sample.scratch (Reshape() reuses its storage)
//     and swaps it in; it never writes into sample.image's storage when that storage is shared
//     (a cache may hold it). Steady state allocates nothing.
//   * Stage objects have no mutable state, so Process() is thread-safe.
//   * Random stages draw every number from ctx.rng(), once per Process().
//   * Per-sample errors start with the sample's source and the stage name.
//   * Geometry follows torchvision (Resize, CenterCrop, RandomResizedCrop), including Python's
//     round-half-to-even where torchvision calls round().
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

#include "codec.h"
#include "flowfeed/registry.h"
#include "fusion.h"

namespace flowfeed {
namespace {

// Largest side a size parameter accepts (JPEG's own limit).
constexpr double kMaxSide = 65535;
// Largest output a geometric stage will produce, in pixels (guards against absurd aspect ratios).
constexpr int64_t kMaxOutputPixels = int64_t(1) << 30;

std::string SampleError(const Sample& s, const char* stage, const std::string& what) {
  return std::string(s.source) + ": " + stage + ": " + what;
}

Status NoImage(const Sample& s, const char* stage) {
  return Status::InvalidArgument(
      SampleError(s, stage, "no image (does the pipeline start with decode?)"));
}

int CvDepth(DType t) { return t == DType::kUInt8 ? CV_8U : CV_32F; }

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

enum class Interp { kAuto, kBilinear, kArea, kNearest, kBicubic };

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

// ---------------------------------------------------------------------------------------------
// decode

class DecodeStage final : public Stage, public RegionDecoder {
 public:
  DecodeStage(ColorMode color, int64_t max_pixels, bool apply_orientation, bool dct_scaling)
      : options_{color, max_pixels, apply_orientation, dct_scaling} {}

  bool ScalesInDct() const override { return options_.dct_scaling; }

  Status DecodeRegion(Sample& sample, const RegionConsumer& next, const StageContext& next_ctx,
                      RegionPlan* plan, DecodedRegion* region, bool* done) const override {
    *done = false;
    if (sample.encoded.empty()) return Status::Ok();
    struct Context {
      const RegionConsumer& next;
      const StageContext& ctx;
      RegionPlan* plan;
    } context{next, next_ctx, plan};
    JpegRegionPlanner planner = [](void* c, int h, int w, JpegRegionRequest* r) {
      Context& cx = *static_cast<Context*>(c);
      if (!cx.next.PlanRegion(h, w, cx.ctx, cx.plan)) return false;
      r->top = cx.plan->top;
      r->left = cx.plan->left;
      r->height = cx.plan->height;
      r->width = cx.plan->width;
      r->min_height = cx.plan->out_height;
      r->min_width = cx.plan->out_width;
      return true;
    };
    // Decoded into scratch: on a decline, sample.image is as it was.
    JpegRegionResult result;
    FLOWFEED_RETURN_IF_ERROR(DecodeJpegRegion(sample.encoded.data(), sample.encoded.size(),
                                              options_, planner, &context, &sample.scratch,
                                              &result, done));
    if (!*done) return Status::Ok();
    sample.SwapScratch();
    sample.encoded.clear();
    region->x = result.x;
    region->y = result.y;
    region->width = result.width;
    region->height = result.height;
    region->scale_eighths = result.scale_eighths;
    region->origin_x = result.origin_x;
    region->origin_y = result.origin_y;
    return Status::Ok();
  }

  Status Process(Sample& sample, const StageContext& ctx) override {
    if (!sample.encoded.empty()) {
      Status s = DecodeImage(sample.encoded.data(), sample.encoded.size(), options_,
                             sample.source, &sample.image);
      if (!s.ok()) return s;
      sample.encoded.clear();  // keeps the capacity for the next file
      return Status::Ok();
    }
    Image& img = sample.image;
    if (img.empty())
      return Status::Corrupt(std::string(sample.source) + ": empty file (0 bytes), nothing to decode");
    // Already pixels (IDX records): bring the channels to the requested layout.
    if (img.dtype() != DType::kUInt8)
      return Status::InvalidArgument(SampleError(
          sample, "decode", "expected uint8 pixels from the source, got " + img.ShapeString()));
    ColorMode have;
    if (img.channels() == 1)
      have = ColorMode::kGray;
    else if (img.channels() == 3)
      have = ColorMode::kRgb;  // sources hand out RGB
    else
      return Status::Unsupported(SampleError(
          sample, "decode", "cannot convert a " + std::to_string(img.channels()) +
                                "-channel image to " + ColorName(options_.color)));
    if (options_.max_pixels > 0 && int64_t(img.height()) * img.width() > options_.max_pixels)
      return Status::ResourceExhausted(SampleError(
          sample, "decode", "image has more than max_pixels = " + std::to_string(options_.max_pixels) +
                                " pixels"));
    Status s = ConvertColor(have, options_.color, &sample.image, &sample.scratch);
    if (!s.ok()) return Status(s.code(), SampleError(sample, "decode", s.message()));
    return Status::Ok();
  }

  static const char* ColorName(ColorMode c) {
    return c == ColorMode::kRgb ? "rgb" : c == ColorMode::kBgr ? "bgr" : "gray";
  }

 private:
  const DecodeOptions options_;
};

Result<std::unique_ptr<Stage>> MakeDecode(const StageParams& p) {
  const std::string& color = p.String("color");
  ColorMode mode;
  if (color == "rgb") mode = ColorMode::kRgb;
  else if (color == "bgr") mode = ColorMode::kBgr;
  else if (color == "gray") mode = ColorMode::kGray;
  else return Status::InvalidArgument("color: expected rgb, gray or bgr, got \"" + color + "\"");
  int64_t max_pixels = p.Int("max_pixels");
  if (max_pixels < 0) return Status::InvalidArgument("max_pixels: must be >= 0 (0: no limit)");
  const std::string& orientation = p.String("orientation");
  if (orientation != "exif" && orientation != "ignore")
    return Status::InvalidArgument("orientation: expected exif or ignore, got \"" + orientation + "\"");
  return std::unique_ptr<Stage>(
      new DecodeStage(mode, max_pixels, orientation == "exif", p.Bool("dct_scaling")));
}

// ---------------------------------------------------------------------------------------------
// resize

class ResizeStage final : public Stage, public RegionConsumer {
 public:
  ResizeStage(std::vector<int64_t> size, Interp interp) : size_(std::move(size)), interp_(interp) {}

  // The whole image. Declines what Process() leaves alone (same size) or refuses (too large).
  bool PlanRegion(int height, int width, const StageContext&, RegionPlan* plan) const override {
    int64_t oh, ow;
    OutputSize(height, width, &oh, &ow);
    if ((oh == height && ow == width) || TooLarge(oh, ow)) return false;
    *plan = {0, 0, height, width, int(oh), int(ow)};
    return true;
  }

  Status ProcessRegion(Sample& sample, const DecodedRegion& region,
                       const RegionPlan& plan) const override {
    return ResizeRegion(sample, region, plan, interp_, "resize");
  }

  Status Process(Sample& sample, const StageContext& ctx) override {
    Image& in = sample.image;
    if (in.empty()) return NoImage(sample, "resize");
    const int h = in.height(), w = in.width();
    int64_t oh, ow;
    OutputSize(h, w, &oh, &ow);
    if (TooLarge(oh, ow))
      return Status::ResourceExhausted(SampleError(
          sample, "resize",
          "output of " + std::to_string(oh) + "x" + std::to_string(ow) + " is too large"));
    if (oh == h && ow == w) return Status::Ok();
    return ResizeIntoScratch(sample, MatOf(in), int(oh), int(ow), interp_, "resize");
  }

 private:
  static bool TooLarge(int64_t oh, int64_t ow) {
    return oh > std::numeric_limits<int>::max() || ow > std::numeric_limits<int>::max() ||
           oh * ow > kMaxOutputPixels;
  }

  void OutputSize(int h, int w, int64_t* out_h, int64_t* out_w) const {
    int64_t oh, ow;
    if (size_.size() == 1) {
      // torchvision Resize(int): the shorter side becomes `size`, the longer one
      // int(size * long / short), truncated.
      const int64_t s = size_[0];
      if (w <= h) {
        ow = s;
        oh = int64_t(double(s * h) / double(w));
      } else {
        oh = s;
        ow = int64_t(double(s * w) / double(h));
      }
    } else {
      oh = size_[0];
      ow = size_[1];
    }
    *out_h = oh;
    *out_w = ow;
  }

  const std::vector<int64_t> size_;
  const Interp interp_;
};

Result<std::unique_ptr<Stage>> MakeResize(const StageParams& p) {
  std::vector<int64_t> size = p.IntList("size");
  FLOWFEED_RETURN_IF_ERROR(CheckSizeList(size, "size"));
  Result<Interp> interp = ParseInterp(p.String("interpolation"));
  if (!interp.ok()) return interp.status();
  return std::unique_ptr<Stage>(new ResizeStage(std::move(size), interp.value()));
}

// ---------------------------------------------------------------------------------------------
// center_crop

class CenterCropStage final : public Stage {
 public:
  CenterCropStage(int height, int width) : crop_h_(height), crop_w_(width) {}

  Status Process(Sample& sample, const StageContext& ctx) override {
    const Image& in = sample.image;
    if (in.empty()) return NoImage(sample, "center_crop");
    const int h = in.height(), w = in.width();
    if (h == crop_h_ && w == crop_w_) return Status::Ok();
    const Span sy = Fit(h, crop_h_), sx = Fit(w, crop_w_);

    Image& out = sample.scratch;
    out.Reshape(crop_h_, crop_w_, in.channels(), in.dtype());
    if (crop_h_ > h || crop_w_ > w) std::memset(out.data(), 0, out.size_bytes());  // padding
    const size_t px = size_t(in.channels()) * DTypeSize(in.dtype());
    for (int y = 0; y < sy.len; ++y)
      std::memcpy(out.row<uint8_t>(sy.dst + y) + sx.dst * px,
                  in.row<uint8_t>(sy.src + y) + sx.src * px, sx.len * px);
    sample.SwapScratch();
    return Status::Ok();
  }

 private:
  // Along one dimension: copy `len` pixels from src offset to dst offset.
  struct Span {
    int src, dst, len;
  };
  // torchvision CenterCrop: pad (zeros, the extra pixel after) when the crop is larger, else
  // offset int(round((n - crop) / 2.0)).
  static Span Fit(int n, int crop) {
    if (crop > n) return {0, (crop - n) / 2, n};
    return {int(RoundHalfEven((n - crop) / 2.0)), 0, crop};
  }

  const int crop_h_, crop_w_;
};

Result<std::unique_ptr<Stage>> MakeCenterCrop(const StageParams& p) {
  const std::vector<int64_t>& size = p.IntList("size");
  FLOWFEED_RETURN_IF_ERROR(CheckSizeList(size, "size"));
  const int h = int(size[0]), w = int(size.size() == 2 ? size[1] : size[0]);
  return std::unique_ptr<Stage>(new CenterCropStage(h, w));
}

// ---------------------------------------------------------------------------------------------
// random_resized_crop

class RandomResizedCropStage final : public Stage, public RegionConsumer {
 public:
  RandomResizedCropStage(int height, int width, std::array<double, 2> scale,
                         std::array<double, 2> ratio, Interp interp)
      : out_h_(height), out_w_(width), scale_(scale), ratio_(ratio), interp_(interp) {}

  bool PlanRegion(int height, int width, const StageContext& ctx, RegionPlan* plan) const override {
    Rng rng = ctx.rng();
    const Box box = GetParams(height, width, rng);
    *plan = {box.top, box.left, box.h, box.w, out_h_, out_w_};
    return true;
  }

  Status ProcessRegion(Sample& sample, const DecodedRegion& region,
                       const RegionPlan& plan) const override {
    return ResizeRegion(sample, region, plan, interp_, "random_resized_crop");
  }

  Status Process(Sample& sample, const StageContext& ctx) override {
    Image& in = sample.image;
    if (in.empty()) return NoImage(sample, "random_resized_crop");
    Rng rng = ctx.rng();
    const Box box = GetParams(in.height(), in.width(), rng);
    cv::Mat roi = MatOf(in)(cv::Rect(box.left, box.top, box.w, box.h));
    return ResizeIntoScratch(sample, roi, out_h_, out_w_, interp_, "random_resized_crop");
  }

 private:
  struct Box {
    int top, left, h, w;
  };

  // torchvision's RandomResizedCrop.get_params.
  Box GetParams(int height, int width, Rng& rng) const {
    const double area = double(height) * double(width);
    const double log_r0 = std::log(ratio_[0]), log_r1 = std::log(ratio_[1]);
    for (int attempt = 0; attempt < 10; ++attempt) {
      const double target_area = area * rng.Uniform(scale_[0], scale_[1]);
      const double aspect = std::exp(rng.Uniform(log_r0, log_r1));
      const int64_t w = RoundHalfEven(std::sqrt(target_area * aspect));
      const int64_t h = RoundHalfEven(std::sqrt(target_area / aspect));
      if (0 < w && w <= width && 0 < h && h <= height) {
        const int64_t top = rng.UniformInt(0, height - h);
        const int64_t left = rng.UniformInt(0, width - w);
        return {int(top), int(left), int(h), int(w)};
      }
    }
    // Fallback: the whole image, cropped to the nearest allowed aspect ratio, centred.
    const double in_ratio = double(width) / double(height);
    int64_t w, h;
    if (in_ratio < ratio_[0]) {
      w = width;
      h = RoundHalfEven(w / ratio_[0]);
    } else if (in_ratio > ratio_[1]) {
      h = height;
      w = RoundHalfEven(h * ratio_[1]);
    } else {
      w = width;
      h = height;
    }
    h = std::clamp<int64_t>(h, 1, height);
    w = std::clamp<int64_t>(w, 1, width);
    return {int((height - h) / 2), int((width - w) / 2), int(h), int(w)};
  }

  const int out_h_, out_w_;
  const std::array<double, 2> scale_, ratio_;
  const Interp interp_;
};

Result<std::unique_ptr<Stage>> MakeRandomResizedCrop(const StageParams& p) {
  const std::vector<int64_t>& size = p.IntList("size");
  FLOWFEED_RETURN_IF_ERROR(CheckSizeList(size, "size"));
  const std::vector<double> scale = p.FloatList("scale");
  const std::vector<double> ratio = p.FloatList("ratio");
  if (scale.size() != 2)
    return Status::InvalidArgument("scale: expected 2 values, got " + std::to_string(scale.size()));
  if (!(scale[0] > 0)) return Status::InvalidArgument("scale: values must be > 0");
  if (!(scale[0] <= scale[1]))
    return Status::InvalidArgument("scale: first value must be <= second");
  if (!std::isfinite(scale[1])) return Status::InvalidArgument("scale: values must be finite");
  if (ratio.size() != 2)
    return Status::InvalidArgument("ratio: expected 2 values, got " + std::to_string(ratio.size()));
  if (!(ratio[0] > 0)) return Status::InvalidArgument("ratio: values must be > 0");
  if (!(ratio[0] <= ratio[1]))
    return Status::InvalidArgument("ratio: first value must be <= second");
  if (!std::isfinite(ratio[1])) return Status::InvalidArgument("ratio: values must be finite");
  Result<Interp> interp = ParseInterp(p.String("interpolation"));
  if (!interp.ok()) return interp.status();
  const int h = int(size[0]), w = int(size.size() == 2 ? size[1] : size[0]);
  return std::unique_ptr<Stage>(new RandomResizedCropStage(
      h, w, {scale[0], scale[1]}, {ratio[0], ratio[1]}, interp.value()));
}

// ---------------------------------------------------------------------------------------------
// random_horizontal_flip

class RandomHorizontalFlipStage final : public Stage, public OutputFusable {
 public:
  explicit RandomHorizontalFlipStage(double p) : p_(p) {}

  bool MapsValues() const override { return false; }
  Status FuseInto(const Sample& sample, const StageContext& ctx, OutputOp* op) const override {
    if (sample.image.empty()) return NoImage(sample, "random_horizontal_flip");
    Rng rng = ctx.rng();
    if (rng.Bernoulli(p_)) op->flip = !op->flip;
    return Status::Ok();
  }

  Status Process(Sample& sample, const StageContext& ctx) override {
    Image& in = sample.image;
    if (in.empty()) return NoImage(sample, "random_horizontal_flip");
    Rng rng = ctx.rng();
    if (!rng.Bernoulli(p_)) return Status::Ok();
    cv::Mat src = MatOf(in);
    try {
      if (in.shared()) {
        // The pixels may belong to a cache: write the flipped image elsewhere.
        sample.scratch.Reshape(in.height(), in.width(), in.channels(), in.dtype());
        cv::Mat dst = MatOf(sample.scratch);
        cv::flip(src, dst, 1);
        if (dst.data != sample.scratch.data())
          return Status::Internal(SampleError(sample, "random_horizontal_flip",
                                              "cv::flip reallocated its output"));
        sample.SwapScratch();
      } else {
        cv::flip(src, src, 1);  // OpenCV flips in place by swapping column pairs
      }
    } catch (const cv::Exception& e) {
      return Status::Internal(
          SampleError(sample, "random_horizontal_flip", std::string("cv::flip failed: ") + e.what()));
    }
    return Status::Ok();
  }

 private:
  const double p_;
};

Result<std::unique_ptr<Stage>> MakeRandomHorizontalFlip(const StageParams& p) {
  const double prob = p.Float("p");
  if (!(prob >= 0 && prob <= 1)) return Status::InvalidArgument("p: must be in [0, 1]");
  return std::unique_ptr<Stage>(new RandomHorizontalFlipStage(prob));
}

// ---------------------------------------------------------------------------------------------
// normalize

class NormalizeStage final : public Stage, public OutputFusable {
 public:
  static constexpr int kMaxValues = 4;
  static_assert(kMaxValues == OutputOp::kMaxValues, "fused and staged normalize hold as many values");

  bool MapsValues() const override { return true; }
  Status FuseInto(const Sample& sample, const StageContext&, OutputOp* op) const override {
    if (sample.image.empty()) return NoImage(sample, "normalize");
    FLOWFEED_RETURN_IF_ERROR(CheckChannels(sample));
    op->affine_values = n_;
    for (int c = 0; c < n_; ++c) {
      op->a[c] = a_[c];
      op->b[c] = b_[c];
    }
    return Status::Ok();
  }

  NormalizeStage(const std::vector<double>& mean, const std::vector<double>& stdev, double scale)
      : n_(int(mean.size())) {
    for (int c = 0; c < n_; ++c) {
      a_[c] = float(scale / stdev[c]);
      b_[c] = float(-mean[c] / stdev[c]);
    }
  }

  Status Process(Sample& sample, const StageContext& ctx) override {
    const Image& in = sample.image;
    if (in.empty()) return NoImage(sample, "normalize");
    const int channels = in.channels();
    FLOWFEED_RETURN_IF_ERROR(CheckChannels(sample));
    Image& out = sample.scratch;
    out.Reshape(in.height(), in.width(), channels, DType::kFloat32);
    const size_t total = size_t(in.height()) * in.width() * channels;
    float* dst = reinterpret_cast<float*>(out.data());
    if (in.dtype() == DType::kUInt8)
      Apply(in.data(), dst, total, channels);
    else
      Apply(reinterpret_cast<const float*>(in.data()), dst, total, channels);
    sample.SwapScratch();
    return Status::Ok();
  }

 private:
  Status CheckChannels(const Sample& sample) const {
    const int channels = sample.image.channels();
    if (n_ != 1 && n_ != channels)
      return Status::InvalidArgument(SampleError(
          sample, "normalize",
          "image has " + std::to_string(channels) + (channels == 1 ? " channel" : " channels") +
              ", mean has " + std::to_string(n_) + " values"));
    return Status::Ok();
  }

  // out = in * a[c] + b[c]. The per-channel coefficients are laid out for a block of 64 pixels,
  // so the inner loop is a plain element-wise multiply-add over a compile-time length (no
  // modulo, no channel loop) that the compiler vectorises even at -O2.
  template <typename T>
  void Apply(const T* src, float* dst, size_t total, int channels) const {
    // The coefficient pattern repeats every `period` values: 1 when one value serves all
    // channels (then any channel count works), else the channel count (1 to 4).
    switch (n_ == 1 ? 1 : channels) {
      case 1: return ApplyPeriod<1>(src, dst, total);
      case 2: return ApplyPeriod<2>(src, dst, total);
      case 3: return ApplyPeriod<3>(src, dst, total);
      default: return ApplyPeriod<4>(src, dst, total);
    }
  }

  template <int kPeriod, typename T>
  void ApplyPeriod(const T* src, float* dst, size_t total) const {
    constexpr size_t kBlock = 64 * kPeriod;
    alignas(64) float a[kBlock];
    alignas(64) float b[kBlock];
    for (size_t j = 0; j < kBlock; ++j) {
      a[j] = a_[j % kPeriod];
      b[j] = b_[j % kPeriod];
    }
    size_t i = 0;
    for (; i + kBlock <= total; i += kBlock) MulAdd<kBlock>(src + i, dst + i, a, b, kBlock);
    MulAdd<kBlock>(src + i, dst + i, a, b, total - i);  // the tail, shorter than a block
  }

  template <size_t kMax, typename T>
  static void MulAdd(const T* __restrict s, float* __restrict d, const float* __restrict a,
                     const float* __restrict b, size_t n) {
    if (n == kMax) {
      for (size_t j = 0; j < kMax; ++j) d[j] = float(s[j]) * a[j] + b[j];
    } else {
      for (size_t j = 0; j < n; ++j) d[j] = float(s[j]) * a[j] + b[j];
    }
  }

  const int n_;
  std::array<float, kMaxValues> a_{}, b_{};
};

Result<std::unique_ptr<Stage>> MakeNormalize(const StageParams& p) {
  const std::vector<double> mean = p.FloatList("mean");
  const std::vector<double> stdev = p.FloatList("std");
  const double scale = p.Float("scale");
  if (mean.empty() || mean.size() > size_t(NormalizeStage::kMaxValues))
    return Status::InvalidArgument("mean: expected 1 to 4 values, got " + std::to_string(mean.size()));
  if (stdev.size() != mean.size())
    return Status::InvalidArgument("std: must have as many values as mean (" +
                                   std::to_string(mean.size()) + "), got " +
                                   std::to_string(stdev.size()));
  for (double s : stdev)
    if (s == 0 || !std::isfinite(s)) return Status::InvalidArgument("std: values must be non-zero and finite");
  for (double m : mean)
    if (!std::isfinite(m)) return Status::InvalidArgument("mean: values must be finite");
  if (!std::isfinite(scale)) return Status::InvalidArgument("scale: must be finite");
  return std::unique_ptr<Stage>(new NormalizeStage(mean, stdev, scale));
}

// ---------------------------------------------------------------------------------------------
// Registration

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

std::vector<StageInfo> BuiltinStages() {
  std::vector<StageInfo> v;
  const std::string interp_doc =
      "auto (area averaging when shrinking, bilinear when enlarging), bilinear, area, nearest or "
      "bicubic";

  v.push_back(Info(
      "decode",
      "Decodes the sample's file bytes (JPEG through libjpeg-turbo, PNG/BMP/WebP/TIFF through "
      "OpenCV) into HWC uint8 pixels; for sources that give pixels already (IDX), converts the "
      "channels to the requested colour. JPEGs are turned upright by their EXIF orientation; "
      "16-bit images keep their high byte; alpha is dropped. Truncated or damaged files are "
      "errors.",
      true,
      {ParamSpec::String("color", std::string("rgb"),
                         "channel layout of the output: rgb, bgr (3 channels) or gray (1)",
                         {"rgb", "gray", "bgr"}),
       ParamSpec::Int("max_pixels", int64_t(1) << 28,
                      "refuse images with more pixels than this before allocating (0: no limit)",
                      0.0),
       ParamSpec::String("orientation", std::string("exif"),
                         "exif: turn JPEGs upright by their EXIF orientation tag; ignore: keep "
                         "the stored pixel order",
                         {"exif", "ignore"}),
       ParamSpec::Bool("dct_scaling", false,
                       "with fuse on and a crop or resize next: decode a JPEG crop at least twice "
                       "its output size at 1/2, 1/4 or 1/8 scale inside the inverse DCT (faster "
                       "for images far larger than the output; within interpolation tolerance of "
                       "full-scale decoding, not identical). The decoded pixels then depend on "
                       "each crop, so a cache after decode keeps the encoded file instead (see "
                       "docs/cache.md). false: decode at full scale (only the crop's rows and "
                       "columns with fuse on), bit-identical to decoding the whole image")},
      "decode", MakeDecode));

  v.push_back(Info(
      "resize",
      "Resizes the image. One size value: the shorter side becomes that value and the longer "
      "keeps the aspect ratio (torchvision Resize(int)); two values [height, width]: exactly "
      "that size.",
      true,
      {ParamSpec::IntList("size", std::nullopt,
                          "shorter side (one value) or [height, width] (two values)", 1, 2, 1.0,
                          kMaxSide),
       ParamSpec::String("interpolation", std::string("auto"), interp_doc, InterpChoices())},
      "resize", MakeResize));

  v.push_back(Info(
      "center_crop",
      "Crops the centre of the image (torchvision CenterCrop); a side smaller than the crop is "
      "padded with zeros, so the output always has the requested size.",
      true,
      {Broadcast(ParamSpec::IntList("size", std::nullopt,
                                    "[height, width] of the crop; one value for a square", 1, 2,
                                    1.0, kMaxSide))},
      "center_crop", MakeCenterCrop));

  v.push_back(Info(
      "random_resized_crop",
      "Crops a random part of the image (a random fraction of its area with a random aspect "
      "ratio) and resizes it to `size`, as torchvision's RandomResizedCrop.",
      false,
      {Broadcast(ParamSpec::IntList("size", std::nullopt,
                                    "[height, width] of the output; one value for a square", 1, 2,
                                    1.0, kMaxSide)),
       Broadcast(ParamSpec::FloatList("scale", std::vector<double>{0.08, 1.0},
                                      "[min, max] fraction of the image area to crop (min > 0)", 2,
                                      2, 0.0, 1.0)),
       Broadcast(ParamSpec::FloatList("ratio", std::vector<double>{0.75, 1.3333333333333333},
                                      "[min, max] aspect ratio (width / height) of the crop, > 0",
                                      2, 2, 0.0)),
       ParamSpec::String("interpolation", std::string("bilinear"), interp_doc, InterpChoices())},
      "random_resized_crop", MakeRandomResizedCrop));

  v.push_back(Info("random_horizontal_flip",
                   "Mirrors the image left-right with probability p.", false,
                   {ParamSpec::Float("p", 0.5, "probability of flipping", 0.0, 1.0)},
                   "random_horizontal_flip", MakeRandomHorizontalFlip));

  v.push_back(Info(
      "normalize",
      "Converts to float32 and normalises each channel: out = (in * scale - mean) / std.",
      true,
      {ParamSpec::FloatList("mean", std::vector<double>{0.485, 0.456, 0.406},
                            "per-channel mean (one value: every channel)", 1, 4),
       ParamSpec::FloatList("std", std::vector<double>{0.229, 0.224, 0.225},
                            "per-channel standard deviation, non-zero (as many values as mean)",
                            1, 4),
       ParamSpec::Float("scale", 1.0 / 255.0,
                        "multiplies pixels first: 1/255 maps uint8 to [0, 1]")},
      "normalize", MakeNormalize));
  return v;
}

}  // namespace

void RegisterBuiltinStages(StageRegistry* registry) {
  for (StageInfo& info : BuiltinStages()) {
    Status s = registry->Register(std::move(info));
    // Only a programming error gets here (registering twice, or a plugin registered first).
    if (!s.ok()) throw std::logic_error("RegisterBuiltinStages: " + s.ToString());
  }
}

}  // namespace flowfeed
