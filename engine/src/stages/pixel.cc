// The per-pixel stages: random_horizontal_flip and normalize (both can be fused into the
// batch conversion).
#include "stages/common.h"

namespace flowfeed::builtin {

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

// These stages' schemas and factories, for RegisterBuiltinStages().
std::vector<StageInfo> PixelStageInfos() {
  std::vector<StageInfo> v;
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

}  // namespace flowfeed::builtin
