// The built-in stages' registration: each one's name, doc, traits and parameter schema, with its
// factory (stages/common.h).
#include <stdexcept>

#include "stages/common.h"

namespace flowfeed {
namespace builtin {
namespace {

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
}  // namespace builtin

void RegisterBuiltinStages(StageRegistry* registry) {
  using builtin::BuiltinStages;
  for (StageInfo& info : BuiltinStages()) {
    Status s = registry->Register(std::move(info));
    // Only a programming error gets here (registering twice, or a plugin registered first).
    if (!s.ok()) throw std::logic_error("RegisterBuiltinStages: " + s.ToString());
  }
}

}  // namespace flowfeed
