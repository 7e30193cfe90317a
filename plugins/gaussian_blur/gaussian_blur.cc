// gaussian_blur.cc: the `gaussian_blur` plugin stage: a random Gaussian blur.
//
// With probability p, blurs the image with a kernel x kernel Gaussian whose sigma is uniform in
// [sigma[0], sigma[1]] (the same sigma along both axes, like torchvision GaussianBlur), borders
// reflected without repeating the edge pixel (torchvision's "reflect" padding). Draws from one
// ctx.rng() per Process() call: Bernoulli(p), then sigma. Works on uint8 and float32 images of
// 1 to 4 channels; the result goes to sample.scratch and is swapped in, so the input storage is
// never written.
#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>

#include <cmath>
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

constexpr const char* kStage = "gaussian_blur";
constexpr int64_t kMaxKernel = 1001;

std::string SampleError(const Sample& s, const std::string& what) {
  return std::string(s.source) + ": " + kStage + ": " + what;
}

cv::Mat MatOf(Image& img) {
  const int depth = img.dtype() == DType::kUInt8 ? CV_8U : CV_32F;
  return cv::Mat(img.height(), img.width(), CV_MAKETYPE(depth, img.channels()), img.data());
}

class GaussianBlurStage final : public Stage {
 public:
  GaussianBlurStage(int kernel, double sigma_lo, double sigma_hi, double p)
      : kernel_(kernel), sigma_{sigma_lo, sigma_hi}, p_(p) {}

  Status Process(Sample& sample, const StageContext& ctx) override {
    Image& in = sample.image;
    if (in.empty())
      return Status::InvalidArgument(
          SampleError(sample, "no image (does the pipeline start with decode?)"));
    if (in.channels() > 4)
      return Status::Unsupported(SampleError(
          sample, "expected 1 to 4 channels, got " + std::to_string(in.channels())));
    Rng rng = ctx.rng();
    if (!rng.Bernoulli(p_)) return Status::Ok();
    const double sigma = rng.Uniform(sigma_[0], sigma_[1]);

    Image& out = sample.scratch;
    out.Reshape(in.height(), in.width(), in.channels(), in.dtype());
    try {
      cv::Mat src = MatOf(in), dst = MatOf(out);
      cv::GaussianBlur(src, dst, cv::Size(kernel_, kernel_), sigma, sigma,
                       cv::BORDER_REFLECT_101);
      if (dst.data != out.data())
        return Status::Internal(SampleError(sample, "cv::GaussianBlur reallocated its output"));
    } catch (const cv::Exception& e) {
      return Status::Internal(
          SampleError(sample, std::string("cv::GaussianBlur failed: ") + e.what()));
    }
    sample.SwapScratch();
    return Status::Ok();
  }

 private:
  const int kernel_;
  const double sigma_[2];
  const double p_;
};

Result<std::unique_ptr<Stage>> MakeGaussianBlur(const StageParams& params) {
  try {
    const int64_t kernel = params.Int("kernel");
    const std::vector<double> sigma = params.FloatList("sigma");
    const double p = params.Float("p");
    if (kernel < 3 || kernel > kMaxKernel)
      return Status::InvalidArgument("kernel: must be in [3, " + std::to_string(kMaxKernel) +
                                     "], got " + std::to_string(kernel));
    if (kernel % 2 == 0)
      return Status::InvalidArgument("kernel: must be odd, got " + std::to_string(kernel));
    if (sigma.size() != 2)
      return Status::InvalidArgument("sigma: expected 2 values, got " + std::to_string(sigma.size()));
    if (!(sigma[0] > 0)) return Status::InvalidArgument("sigma: values must be > 0");
    if (!(sigma[0] <= sigma[1])) return Status::InvalidArgument("sigma: first value must be <= second");
    if (!std::isfinite(sigma[1])) return Status::InvalidArgument("sigma: values must be finite");
    if (!(p >= 0 && p <= 1)) return Status::InvalidArgument("p: must be in [0, 1]");
    return std::unique_ptr<Stage>(new GaussianBlurStage(int(kernel), sigma[0], sigma[1], p));
  } catch (const std::exception& e) {
    return Status::InvalidArgument(std::string(kStage) + ": " + e.what());
  }
}

}  // namespace

FLOWFEED_PLUGIN("gaussian_blur", "1.0.0", registrar) {
  flowfeed::StageInfo info;
  info.name = "gaussian_blur";
  info.doc =
      "With probability p, blurs the image with a square Gaussian kernel whose sigma is drawn "
      "uniformly from a range, like torchvision GaussianBlur.";
  info.traits.deterministic = false;
  info.traits.thread_safe = true;
  info.params = {
      ParamSpec::Int("kernel", int64_t(5), "side of the square kernel in pixels (odd, >= 3)", 3.0,
                     double(kMaxKernel)),
      ParamSpec::FloatList("sigma", std::vector<double>{0.1, 2.0},
                           "range [min, max] the Gaussian's standard deviation is drawn from", 2, 2,
                           0.0),
      ParamSpec::Float("p", 0.5, "probability that the image is blurred", 0.0, 1.0),
  };
  info.factory = MakeGaussianBlur;
  // A failure is remembered by the registrar and fails the whole plugin.
  registrar.AddStage(std::move(info));
}
