// grayscale.cc: the `grayscale` plugin stage: RGB to gray with the ITU-R 601 weights.
//
// gray = 0.299 R + 0.587 G + 0.114 B, rounded (half to even) for uint8 images, exact for float32
// ones. channels: 1 gives a one-channel image, 3 repeats the gray value in three channels (like
// torchvision Grayscale(num_output_channels=3)). A one-channel input is already gray: kept, or
// replicated for channels: 3. Deterministic (no randomness), so a cache may sit after it. The
// output goes to sample.scratch and is swapped in; the input storage is never written.
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
using flowfeed::Sample;
using flowfeed::Stage;
using flowfeed::StageContext;
using flowfeed::StageParams;
using flowfeed::Status;

constexpr const char* kStage = "grayscale";

std::string SampleError(const Sample& s, const std::string& what) {
  return std::string(s.source) + ": " + kStage + ": " + what;
}

inline uint8_t ToU8(double v) {
  v = std::nearbyint(v);
  return uint8_t(v < 0 ? 0 : v > 255 ? 255 : v);
}

class GrayscaleStage final : public Stage {
 public:
  explicit GrayscaleStage(int channels) : out_channels_(channels) {}

  Status Process(Sample& sample, const StageContext& ctx) override {
    const Image& in = sample.image;
    if (in.empty())
      return Status::InvalidArgument(
          SampleError(sample, "no image (does the pipeline start with decode?)"));
    const int channels = in.channels();
    if (channels != 1 && channels != 3)
      return Status::Unsupported(SampleError(
          sample, "expected 1 or 3 channels, got " + std::to_string(channels)));
    if (channels == out_channels_ && channels == 1) return Status::Ok();  // already gray

    const int h = in.height(), w = in.width(), oc = out_channels_;
    Image& out = sample.scratch;
    out.Reshape(h, w, oc, in.dtype());
    if (in.dtype() == DType::kUInt8) {
      for (int y = 0; y < h; ++y) {
        const uint8_t* s = in.row<uint8_t>(y);
        uint8_t* d = out.row<uint8_t>(y);
        for (int x = 0; x < w; ++x, s += channels, d += oc) {
          const uint8_t g =
              channels == 1 ? s[0] : ToU8(0.299 * s[0] + 0.587 * s[1] + 0.114 * s[2]);
          for (int c = 0; c < oc; ++c) d[c] = g;
        }
      }
    } else {
      for (int y = 0; y < h; ++y) {
        const float* s = in.row<float>(y);
        float* d = out.row<float>(y);
        for (int x = 0; x < w; ++x, s += channels, d += oc) {
          const float g =
              channels == 1 ? s[0] : float(0.299 * s[0] + 0.587 * s[1] + 0.114 * s[2]);
          for (int c = 0; c < oc; ++c) d[c] = g;
        }
      }
    }
    sample.SwapScratch();
    return Status::Ok();
  }

 private:
  const int out_channels_;
};

Result<std::unique_ptr<Stage>> MakeGrayscale(const StageParams& params) {
  try {
    const int64_t channels = params.Int("channels");
    if (channels != 1 && channels != 3)
      return Status::InvalidArgument("channels: must be 1 or 3, got " + std::to_string(channels));
    return std::unique_ptr<Stage>(new GrayscaleStage(int(channels)));
  } catch (const std::exception& e) {
    return Status::InvalidArgument(std::string(kStage) + ": " + e.what());
  }
}

}  // namespace

FLOWFEED_PLUGIN("grayscale", "1.0.0", registrar) {
  flowfeed::StageInfo info;
  info.name = "grayscale";
  info.doc =
      "Converts an RGB image to gray (0.299 R + 0.587 G + 0.114 B, ITU-R 601), with one output "
      "channel or the gray value repeated in three.";
  info.traits.deterministic = true;
  info.traits.thread_safe = true;
  info.params = {
      ParamSpec::Int("channels", int64_t(1),
                     "output channels: 1, or 3 to repeat the gray value (torchvision "
                     "num_output_channels)",
                     1.0, 3.0),
  };
  info.factory = MakeGrayscale;
  // A failure is remembered by the registrar and fails the whole plugin.
  registrar.AddStage(std::move(info));
}
