// flowfeed/codec.h: image decoding and JPEG encoding, as the decode stage does them.
//
// JPEG goes through libjpeg-turbo's TurboJPEG API; everything else (PNG, BMP, WebP, TIFF ...)
// through OpenCV's imdecode. The format is sniffed from the bytes, never from the file name.
// A plugin or a tool that decodes files itself gets the same pixels, the same limits and the
// same error messages as the pipeline.
//
// Thread-safety: every function may run concurrently with any other on different images; each
// call uses its own decompressor, so nothing carries over from one image to the next.
// Failure: Status Corrupt / Unsupported / ResourceExhausted naming the sample; no exceptions.
// Ownership: *out is the caller's; its storage is reused when unshared.
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
  // Turn JPEGs upright by their EXIF orientation tag (what a photo viewer shows, and what
  // PIL's ImageOps.exif_transpose and OpenCV's imread do); false keeps the stored pixel order.
  bool apply_orientation = true;
  // Region decodes (DecodeJpegRegion) may shrink a crop at least twice its output size inside
  // the inverse DCT (1/2, 1/4, 1/8). The pixels are then those of a scaled image, specific to
  // each crop: within interpolation tolerance of full-scale decoding, not identical to it.
  bool dct_scaling = false;
};

// Decodes `data` into *out (HWC uint8, 3 channels for rgb/bgr, 1 for gray), reusing out's storage
// when it is unshared. 16-bit images are reduced to 8 bits (the high byte); an alpha channel is
// dropped; palette images are expanded; JPEGs are turned upright by their EXIF orientation
// unless options.apply_orientation is false. Corrupt/Unsupported/ResourceExhausted errors name
// `name` (the sample's source). An empty input is Corrupt("empty file").
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
