// codec.h (internal): image decoding and JPEG encoding.
//
// JPEG goes through libjpeg-turbo's TurboJPEG API; everything else (PNG, BMP, WebP, TIFF ...)
// through OpenCV's imdecode. The format is sniffed from the bytes, never from the file name.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "flowfeed/image.h"
#include "flowfeed/status.h"

namespace flowfeed {

enum class ColorMode { kRgb, kGray, kBgr };

struct DecodeOptions {
  ColorMode color = ColorMode::kRgb;
  // Refuse images with more pixels than this before allocating (0: no limit).
  int64_t max_pixels = int64_t(1) << 28;
};

// Decodes `data` into *out (HWC uint8, 3 channels for rgb/bgr, 1 for gray), reusing out's storage
// when it is unshared. Corrupt/Unsupported/ResourceExhausted errors name `name` (the sample's
// source). An empty input is Corrupt("empty file").
Status DecodeImage(const uint8_t* data, size_t size, const DecodeOptions& options,
                   std::string_view name, Image* out);

// Converts a decoded uint8 image in place (through scratch) between channel layouts: 1 <-> 3
// channels, RGB <-> BGR. `have` is how the image's channels are ordered now.
Status ConvertColor(ColorMode have, ColorMode want, Image* image, Image* scratch);

// "libjpeg-turbo 2.1.5, OpenCV 4.6.0": what decoded pixels depend on, for cache fingerprints.
std::string CodecVersions();

// Encodes an RGB (3-channel) or gray (1-channel) uint8 image as a baseline JPEG, 4:2:0.
Status EncodeJpeg(const Image& image, int quality, std::vector<uint8_t>* out);

}  // namespace flowfeed
