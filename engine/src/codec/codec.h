// codec/codec.h (internal): what the engine's decoders need beyond the public codec API
// (flowfeed/codec.h): EXIF orientation, and the region decode a fused crop asks for
// (stages/fusion.h). Thread-safety: every function is safe to call concurrently on different
// images (each call uses its own decompressor).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "flowfeed/codec.h"
#include "flowfeed/image.h"
#include "flowfeed/status.h"

namespace flowfeed {

// The EXIF orientation (1-8, TIFF tag 0x0112) of a JPEG's APP1 "Exif" segment; 1 when the data
// is not a JPEG, has no such tag, or the segment is damaged (a bad tag never fails a decode).
// Reads only the header segments before the first scan; every offset is bounds-checked.
int JpegExifOrientation(const uint8_t* data, size_t size);

// Rearranges *image (HWC uint8) as EXIF orientation `orientation` says (2-8; 1 and anything
// else leave it alone), through *scratch; 5-8 swap height and width.
void ApplyOrientation(int orientation, Image* image, Image* scratch);

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

// The error of a build without OpenCV's imgcodecs (FLOWFEED_OPENCV_IMGCODECS=OFF) for an image
// only imgcodecs would decode: names the file (`name`), the format ("PNG", "WebP", ...; "JPEG"
// for a variant TurboJPEG refuses) and why. Defined in every build so that tests can check it.
std::string JpegOnlyMessage(std::string_view name, std::string_view format);

// (name, version) of the libraries decoded pixels depend on: libjpeg-turbo, OpenCV. CodecVersions()
// (flowfeed/codec.h) is these joined.
std::vector<std::pair<std::string, std::string>> CodecLibraryVersions();

}  // namespace flowfeed
