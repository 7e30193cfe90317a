// The geometric stages: resize, center_crop, random_resized_crop (torchvision's geometry).
#include "stages/common.h"

namespace flowfeed::builtin {

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

// These stages' schemas and factories, for RegisterBuiltinStages().
std::vector<StageInfo> GeometryStageInfos() {
  std::vector<StageInfo> v;
  v.push_back(Info(
      "resize",
      "Resizes the image. One size value: the shorter side becomes that value and the longer "
      "keeps the aspect ratio (torchvision Resize(int)); two values [height, width]: exactly "
      "that size.",
      true,
      {ParamSpec::IntList("size", std::nullopt,
                          "shorter side (one value) or [height, width] (two values)", 1, 2, 1.0,
                          kMaxSide),
       ParamSpec::String("interpolation", std::string("auto"), InterpDoc(), InterpChoices())},
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
       ParamSpec::String("interpolation", std::string("bilinear"), InterpDoc(), InterpChoices())},
      "random_resized_crop", MakeRandomResizedCrop));
  return v;
}

}  // namespace flowfeed::builtin
