// cutout.cc: the `cutout` plugin stage: torchvision RandomErasing-like random erasing.
//
// With probability p, picks a rectangle whose area is a uniform fraction of the image (scale)
// and whose aspect ratio is log-uniform in ratio, up to 10 attempts to fit it strictly inside
// the image (as torchvision does), and fills it with `value` in every channel. Nothing is erased
// when no attempt fits. Works on uint8 and float32 images of any channel count (1 and 3 in
// practice); uint8 fills saturate (round, clamp to [0, 255]).
//
// All randomness comes from one ctx.rng() per Process() call: Bernoulli(p), then per attempt
// (area fraction, log aspect ratio), then (top, left). The stage never writes into shared
// storage: a shared image is copied into sample.scratch and swapped in first.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <flowfeed/plugin.h>

namespace {

using flowfeed::DType;
using flowfeed::Image;
using flowfeed::ParamSpec;
using flowfeed::Result;
using flowfeed::Rng;
using flowfeed::Sample;
using flowfeed::Stage;
using flowfeed::StageContext;
using flowfeed::StageParams;
using flowfeed::Status;

constexpr const char* kStage = "cutout";

std::string SampleError(const Sample& s, const std::string& what) {
  return std::string(s.source) + ": " + kStage + ": " + what;
}

class CutoutStage final : public Stage {
 public:
  CutoutStage(double p, double s0, double s1, double r0, double r1, double value)
      : p_(p), scale_{s0, s1}, log_ratio_{std::log(r0), std::log(r1)}, value_(value) {}

  Status Process(Sample& sample, const StageContext& ctx) override {
    Image& in = sample.image;
    if (in.empty())
      return Status::InvalidArgument(SampleError(sample, "no image (does the pipeline start with decode?)"));
    Rng rng = ctx.rng();
    if (!rng.Bernoulli(p_)) return Status::Ok();

    const int height = in.height(), width = in.width();
    const double area = double(height) * double(width);
    int top = 0, left = 0, h = 0, w = 0;
    bool found = false;
    // torchvision RandomErasing.get_params.
    for (int attempt = 0; attempt < 10; ++attempt) {
      const double erase_area = area * rng.Uniform(scale_[0], scale_[1]);
      const double aspect = std::exp(rng.Uniform(log_ratio_[0], log_ratio_[1]));
      // torch.round: half to even (the default floating-point rounding mode).
      const double hd = std::nearbyint(std::sqrt(erase_area * aspect));
      const double wd = std::nearbyint(std::sqrt(erase_area / aspect));
      if (!(hd < height && wd < width)) continue;
      h = int(hd);
      w = int(wd);
      top = int(rng.UniformInt(0, height - h));
      left = int(rng.UniformInt(0, width - w));
      found = true;
      break;
    }
    if (!found || h <= 0 || w <= 0) return Status::Ok();

    if (in.shared()) {
      // The pixels may belong to a cache: copy them into storage of our own first.
      Image& out = sample.scratch;
      out.Reshape(height, width, in.channels(), in.dtype());
      std::memcpy(out.data(), in.data(), in.size_bytes());
      sample.SwapScratch();
    }
    Image& img = sample.image;
    const int channels = img.channels();
    if (img.dtype() == DType::kUInt8) {
      const double r = std::nearbyint(value_);
      const uint8_t v = uint8_t(std::clamp(std::isnan(r) ? 0.0 : r, 0.0, 255.0));
      for (int y = top; y < top + h; ++y)
        std::memset(img.row<uint8_t>(y) + size_t(left) * channels, v, size_t(w) * channels);
    } else {
      const float v = float(value_);
      for (int y = top; y < top + h; ++y) {
        float* row = img.row<float>(y) + size_t(left) * channels;
        std::fill(row, row + size_t(w) * channels, v);
      }
    }
    return Status::Ok();
  }

 private:
  const double p_;
  const double scale_[2];
  const double log_ratio_[2];
  const double value_;
};

Result<std::unique_ptr<Stage>> MakeCutout(const StageParams& params) {
  try {
    const double p = params.Float("p");
    const std::vector<double> scale = params.FloatList("scale");
    const std::vector<double> ratio = params.FloatList("ratio");
    const double value = params.Float("value");
    if (!(p >= 0 && p <= 1)) return Status::InvalidArgument("p: must be in [0, 1]");
    if (scale.size() != 2)
      return Status::InvalidArgument("scale: expected 2 values, got " + std::to_string(scale.size()));
    if (!(scale[0] > 0 && scale[1] <= 1))
      return Status::InvalidArgument("scale: values must be in (0, 1]");
    if (!(scale[0] <= scale[1])) return Status::InvalidArgument("scale: first value must be <= second");
    if (ratio.size() != 2)
      return Status::InvalidArgument("ratio: expected 2 values, got " + std::to_string(ratio.size()));
    if (!(ratio[0] > 0)) return Status::InvalidArgument("ratio: values must be > 0");
    if (!(ratio[0] <= ratio[1])) return Status::InvalidArgument("ratio: first value must be <= second");
    if (!std::isfinite(ratio[1])) return Status::InvalidArgument("ratio: values must be finite");
    if (!std::isfinite(value)) return Status::InvalidArgument("value: must be finite");
    return std::unique_ptr<Stage>(new CutoutStage(p, scale[0], scale[1], ratio[0], ratio[1], value));
  } catch (const std::exception& e) {
    return Status::InvalidArgument(std::string(kStage) + ": " + e.what());
  }
}

}  // namespace

FLOWFEED_PLUGIN("cutout", "1.0.0", registrar) {
  flowfeed::StageInfo info;
  info.name = "cutout";
  info.doc =
      "With probability p, fills a random rectangle (area fraction in scale, log-uniform aspect "
      "ratio in ratio, like torchvision RandomErasing) with a constant value.";
  info.traits.deterministic = false;
  info.traits.thread_safe = true;
  info.params = {
      ParamSpec::Float("p", 0.5, "probability that a rectangle is erased", 0.0, 1.0),
      ParamSpec::FloatList("scale", std::vector<double>{0.02, 0.33},
                           "range [min, max] of the erased area as a fraction of the image area",
                           2, 2, 0.0, 1.0),
      ParamSpec::FloatList("ratio", std::vector<double>{0.3, 3.3},
                           "range [min, max] of the rectangle's aspect ratio, sampled log-uniformly",
                           2, 2, 0.0),
      ParamSpec::Float("value", 0.0,
                       "fill value for every channel of the rectangle (uint8 images: rounded and "
                       "clamped to [0, 255])"),
  };
  info.factory = MakeCutout;
  // A failure is remembered by the registrar and fails the whole plugin.
  registrar.AddStage(std::move(info));
}
