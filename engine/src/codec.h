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
  // Turn JPEGs upright by their EXIF orientation tag (what a photo viewer shows, and what
  // PIL's ImageOps.exif_transpose and OpenCV's imread do); false keeps the stored pixel order.
  bool apply_orientation = true;
  // Region decodes (DecodeJpegRegion) may shrink a crop at least twice its output size inside
  // the inverse DCT (1/2, 1/4, 1/8). The pixels are then those of a scaled image, specific to
  // each crop: within interpolation tolerance of full-scale decoding, not identical to it.
  bool dct_scaling = false;
};

// The EXIF orientation (1-8, TIFF tag 0x0112) of a JPEG's APP1 "Exif" segment; 1 when the data
// is not a JPEG, has no such tag, or the segment is damaged (a bad tag never fails a decode).
// Reads only the header segments before the first scan; every offset is bounds-checked.
int JpegExifOrientation(const uint8_t* data, size_t size);

// Rearranges *image (HWC uint8) as EXIF orientation `orientation` says (2-8; 1 and anything
// else leave it alone), through *scratch; 5-8 swap height and width.
void ApplyOrientation(int orientation, Image* image, Image* scratch);

// Decodes `data` into *out (HWC uint8, 3 channels for rgb/bgr, 1 for gray), reusing out's storage
// when it is unshared. 16-bit images are reduced to 8 bits (the high byte); an alpha channel is
// dropped; palette images are expanded; JPEGs are turned upright by their EXIF orientation
// unless options.apply_orientation is false. Corrupt/Unsupported/ResourceExhausted errors name
// `name` (the sample's source). An empty input is Corrupt("empty file").
Status DecodeImage(const uint8_t* data, size_t size, const DecodeOptions& options,
                   std::string_view name, Image* out);

// The part of a JPEG a crop needs: a rectangle in full-image pixels, and the size below which
// the decoder must not scale it.
struct JpegRegionRequest {
  int top = 0, left = 0, height = 0, width = 0;
  int min_height = 0, min_width = 0;
};

// Where the decoded rectangle lies in *out, and the DCT scale (eighths) it was decoded at.
struct JpegRegionResult {
  int x = 0, y = 0, width = 0, height = 0;
  int scale_eighths = 8;
  int origin_x = 0, origin_y = 0;  // scaled-image coordinates of out's first column and row
};

// Asks for the rectangle once the image size is known; false: decode nothing (the caller takes
// the whole-image path).
using JpegRegionPlanner = bool (*)(void* context, int height, int width, JpegRegionRequest* request);

// Decodes only the rows and columns of a baseline JPEG that `planner`'s rectangle needs, at the
// smallest DCT scale (1/8, 1/4, 1/2, 1) that keeps it at least min_height x min_width, into *out
// (HWC uint8; rows are the rectangle's, columns start at the iMCU boundary at or left of it).
// Sets *done only on success. Declines (Ok, *done false) anything it does not region-decode, so
// the caller falls back to DecodeImage, which reports errors with their usual messages:
// progressive or CMYK files, data that does not end with the end-of-image marker (a truncated
// file), images over max_pixels, JPEGs whose EXIF orientation would rotate or flip them (when
// options.apply_orientation), and any libjpeg error or warning. Rows below the rectangle are
// never read, so damage confined to them goes unnoticed (the whole-image path reports it).
Status DecodeJpegRegion(const uint8_t* data, size_t size, const DecodeOptions& options,
                        JpegRegionPlanner planner, void* context, Image* out,
                        JpegRegionResult* result, bool* done);

// Converts a decoded uint8 image in place (through scratch) between channel layouts: 1 <-> 3
// channels, RGB <-> BGR. `have` is how the image's channels are ordered now.
Status ConvertColor(ColorMode have, ColorMode want, Image* image, Image* scratch);

// "libjpeg-turbo 2.1.5, OpenCV 4.6.0": what decoded pixels depend on, for cache fingerprints.
std::string CodecVersions();

// Encodes an RGB (3-channel) or gray (1-channel) uint8 image as a baseline JPEG, 4:2:0.
Status EncodeJpeg(const Image& image, int quality, std::vector<uint8_t>* out);

}  // namespace flowfeed
