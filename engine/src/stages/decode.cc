// The decode stage: encoded bytes to pixels (libjpeg-turbo, OpenCV for other formats), whole or
// only the region a later crop needs.
#include "stages/common.h"

namespace flowfeed::builtin {

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

// The decode stage's schema and factory, for RegisterBuiltinStages().
std::vector<StageInfo> DecodeStageInfos() {
  std::vector<StageInfo> v;
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
  return v;
}

}  // namespace flowfeed::builtin
