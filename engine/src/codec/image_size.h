// image_size.h (internal): an image's size as its header states it, read without decoding.
//
// codec.cc checks it against DecodeOptions::max_pixels before handing a file to OpenCV, whose
// decoders allocate the whole image (and TIFF/OpenEXR tiles, JPEG 2000 components) from header
// fields alone: a 50-byte BMP header announcing 30000 x 30000 pixels made OpenCV allocate 3 GB
// (found by fuzz/fuzz_decode.cc). Covered: every format this project's OpenCV decodes from
// memory besides JPEG and PNG (codec.cc reads those itself): BMP, PBM/PGM/PPM, PAM, PFM, Sun
// raster, TIFF (and BigTIFF), WebP, Radiance HDR, OpenEXR, JPEG 2000 (codestream and JP2); and
// DICOM, which is recognised but not read. Every read is bounds-checked; nothing is allocated.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace flowfeed {

struct HeaderSize {
  // "BMP", "TIFF", ...; "" when the bytes start like none of the formats above (then nothing
  // else is set).
  const char* format = "";
  // True when width and height were read. False for a known format: `problem` says why (a
  // damaged header, or a format whose header is not read here).
  bool known = false;
  int64_t width = 0, height = 0;
  // Pixels of the largest tile the decoder allocates at once, when the format has tiles whose
  // size the header sets independently of the image's (TIFF, OpenEXR); 0 otherwise.
  int64_t tile_pixels = 0;
  // JPEG 2000: the number of tiles (the decoder keeps a structure per tile) and of components
  // (up to 16384, each decoded into an image-sized buffer of its own); 0 for other formats.
  int64_t tiles = 0;
  int64_t components = 0;
  std::string problem;
};

HeaderSize ReadHeaderSize(const uint8_t* data, size_t size);

}  // namespace flowfeed
