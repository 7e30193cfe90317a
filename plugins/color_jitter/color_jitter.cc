// color_jitter.cc: the `color_jitter` plugin stage: torchvision ColorJitter for uint8 images.
//
// Draws, from one ctx.rng() per Process() call and in this order: a random permutation of the
// four adjustments (Fisher-Yates), then the brightness, contrast and saturation factors (each
// uniform in [max(0, 1 - x), 1 + x]) and the hue shift (uniform in [-hue, hue] of a full turn).
// Every number is drawn even for a disabled adjustment, so the stream does not depend on which
// are enabled. The adjustments are then applied in the permuted order; one whose parameter is 0
// is skipped (like torchvision's None):
//   brightness  out = in * f
//   contrast    out = in * f + (1 - f) * mean(gray(in))
//   saturation  out = in * f + (1 - f) * gray(in), per pixel
//   hue         RGB -> HSV (OpenCV RGB2HSV_FULL, H in 0..255), H += round(shift * 256) mod 256,
//               back to RGB
// with gray = 0.299 R + 0.587 G + 0.114 B. Results are rounded and saturated to [0, 255] after
// each adjustment (torchvision's tensor path truncates instead; rounding is the closer value).
// A 1-channel image gets brightness and contrast only; other channel counts and float32 images
// are refused (Unsupported). The stage never writes into shared storage.
#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <array>
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

constexpr const char* kStage = "color_jitter";

std::string SampleError(const Sample& s, const std::string& what) {
  return std::string(s.source) + ": " + kStage + ": " + what;
}

cv::Mat MatOf(Image& img) {
  return cv::Mat(img.height(), img.width(), CV_MAKETYPE(CV_8U, img.channels()), img.data());
}

inline uint8_t Sat(double v) { return cv::saturate_cast<uint8_t>(v); }

enum Op { kBrightness = 0, kContrast = 1, kSaturation = 2, kHue = 3 };

class ColorJitterStage final : public Stage {
 public:
  ColorJitterStage(double brightness, double contrast, double saturation, double hue)
      : brightness_(brightness), contrast_(contrast), saturation_(saturation), hue_(hue) {}

  Status Process(Sample& sample, const StageContext& ctx) override {
    Image& in = sample.image;
    if (in.empty())
      return Status::InvalidArgument(
          SampleError(sample, "no image (does the pipeline start with decode?)"));
    if (in.dtype() != DType::kUInt8)
      return Status::Unsupported(
          SampleError(sample, "expected uint8 pixels, got " + in.ShapeString() +
                                  " (put color_jitter before normalize)"));
    const int channels = in.channels();
    if (channels != 1 && channels != 3)
      return Status::Unsupported(SampleError(
          sample, "expected 1 or 3 channels, got " + std::to_string(channels)));

    Rng rng = ctx.rng();
    // torchvision ColorJitter.get_params: the permutation first, then the factors.
    std::array<int, 4> order = {kBrightness, kContrast, kSaturation, kHue};
    for (int i = 3; i > 0; --i) std::swap(order[i], order[rng.UniformInt(0, i)]);
    const double b = rng.Uniform(std::max(0.0, 1 - brightness_), 1 + brightness_);
    const double c = rng.Uniform(std::max(0.0, 1 - contrast_), 1 + contrast_);
    const double s = rng.Uniform(std::max(0.0, 1 - saturation_), 1 + saturation_);
    const double h = rng.Uniform(-hue_, hue_);

    const bool enabled[4] = {brightness_ > 0, contrast_ > 0, saturation_ > 0 && channels == 3,
                             hue_ > 0 && channels == 3};
    if (!(enabled[0] || enabled[1] || enabled[2] || enabled[3])) return Status::Ok();

    if (in.shared()) {
      // The pixels may belong to a cache: work on a copy of our own.
      Image& out = sample.scratch;
      out.Reshape(in.height(), in.width(), channels, DType::kUInt8);
      std::memcpy(out.data(), in.data(), in.size_bytes());
      sample.SwapScratch();
    }
    Image& img = sample.image;
    try {
      for (int op : order) {
        if (!enabled[op]) continue;
        switch (op) {
          case kBrightness: ApplyLinear(img, b, 0.0); break;
          case kContrast: ApplyLinear(img, c, (1 - c) * GrayMean(img)); break;
          case kSaturation: ApplySaturation(img, s); break;
          case kHue: {
            Status st = ApplyHue(sample, h);
            if (!st.ok()) return st;
            break;
          }
        }
      }
    } catch (const cv::Exception& e) {
      return Status::Internal(SampleError(sample, std::string("OpenCV failed: ") + e.what()));
    }
    return Status::Ok();
  }

 private:
  // out = saturate(round(in * a + offset)), through a 256-entry table.
  static void ApplyLinear(Image& img, double a, double offset) {
    uint8_t lut[256];
    for (int v = 0; v < 256; ++v) lut[v] = Sat(v * a + offset);
    uint8_t* p = img.data();
    const size_t n = img.size_bytes();
    for (size_t i = 0; i < n; ++i) p[i] = lut[p[i]];
  }

  // Mean of the grayscale image (the image itself when it has one channel).
  static double GrayMean(const Image& img) {
    const uint8_t* p = img.data();
    const size_t pixels = size_t(img.height()) * img.width();
    double sum = 0;
    if (img.channels() == 1) {
      for (size_t i = 0; i < pixels; ++i) sum += p[i];
    } else {
      for (size_t i = 0; i < pixels; ++i, p += 3) sum += 0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2];
    }
    return pixels ? sum / double(pixels) : 0.0;
  }

  static void ApplySaturation(Image& img, double f) {
    uint8_t* p = img.data();
    const size_t pixels = size_t(img.height()) * img.width();
    const double g = 1 - f;
    for (size_t i = 0; i < pixels; ++i, p += 3) {
      const double gray = 0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2];
      p[0] = Sat(f * p[0] + g * gray);
      p[1] = Sat(f * p[1] + g * gray);
      p[2] = Sat(f * p[2] + g * gray);
    }
  }

  // HSV goes through sample.scratch; sample.image is unshared here (Process made sure).
  static Status ApplyHue(Sample& sample, double shift) {
    Image& img = sample.image;
    const int delta = (int(std::lround(shift * 256)) % 256 + 256) % 256;
    if (delta == 0) return Status::Ok();
    Image& hsv = sample.scratch;
    hsv.Reshape(img.height(), img.width(), 3, DType::kUInt8);
    cv::Mat src = MatOf(img), tmp = MatOf(hsv);
    cv::cvtColor(src, tmp, cv::COLOR_RGB2HSV_FULL);
    if (tmp.data != hsv.data())
      return Status::Internal(SampleError(sample, "cv::cvtColor reallocated its output"));
    uint8_t* p = hsv.data();
    const size_t pixels = size_t(img.height()) * img.width();
    for (size_t i = 0; i < pixels; ++i, p += 3) p[0] = uint8_t((p[0] + delta) & 255);
    cv::cvtColor(tmp, src, cv::COLOR_HSV2RGB_FULL);
    if (src.data != img.data())
      return Status::Internal(SampleError(sample, "cv::cvtColor reallocated its output"));
    return Status::Ok();
  }

  const double brightness_, contrast_, saturation_, hue_;
};

Result<std::unique_ptr<Stage>> MakeColorJitter(const StageParams& params) {
  try {
    const double brightness = params.Float("brightness");
    const double contrast = params.Float("contrast");
    const double saturation = params.Float("saturation");
    const double hue = params.Float("hue");
    if (!(brightness >= 0 && std::isfinite(brightness)))
      return Status::InvalidArgument("brightness: must be >= 0 and finite");
    if (!(contrast >= 0 && std::isfinite(contrast)))
      return Status::InvalidArgument("contrast: must be >= 0 and finite");
    if (!(saturation >= 0 && std::isfinite(saturation)))
      return Status::InvalidArgument("saturation: must be >= 0 and finite");
    if (!(hue >= 0 && hue <= 0.5)) return Status::InvalidArgument("hue: must be in [0, 0.5]");
    return std::unique_ptr<Stage>(new ColorJitterStage(brightness, contrast, saturation, hue));
  } catch (const std::exception& e) {
    return Status::InvalidArgument(std::string(kStage) + ": " + e.what());
  }
}

}  // namespace

FLOWFEED_PLUGIN("color_jitter", "1.0.0", registrar) {
  flowfeed::StageInfo info;
  info.name = "color_jitter";
  info.doc =
      "Randomly changes brightness, contrast, saturation and hue of a uint8 image in a random "
      "order, like torchvision ColorJitter (1-channel images: brightness and contrast only).";
  info.traits.deterministic = false;
  info.traits.thread_safe = true;
  info.params = {
      ParamSpec::Float("brightness", 0.4,
                       "brightness factor is uniform in [max(0, 1 - x), 1 + x] (0: unchanged)", 0.0),
      ParamSpec::Float("contrast", 0.4,
                       "contrast factor is uniform in [max(0, 1 - x), 1 + x] (0: unchanged)", 0.0),
      ParamSpec::Float("saturation", 0.4,
                       "saturation factor is uniform in [max(0, 1 - x), 1 + x] (0: unchanged)", 0.0),
      ParamSpec::Float("hue", 0.1,
                       "hue shift is uniform in [-x, x] of a full turn of the colour wheel "
                       "(0: unchanged)",
                       0.0, 0.5),
  };
  info.factory = MakeColorJitter;
  // A failure is remembered by the registrar and fails the whole plugin.
  registrar.AddStage(std::move(info));
}
