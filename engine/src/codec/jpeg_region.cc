// jpeg_region.cc: decoding only the part of a JPEG that a crop needs (the only user of the
// libjpeg API; whole images go through TurboJPEG in codec.cc).
//
// libjpeg-turbo's jpeg_crop_scanline() restricts the inverse DCT, upsampling and colour
// conversion to a range of columns (widened to iMCU boundaries), jpeg_skip_scanlines() skips
// rows above the range without those steps, and rows below it are never entropy-decoded at all.
// scale_num/scale_denom picks a reduced DCT output (the IDCT itself does the downscaling), which
// is far cheaper than decoding full size and resizing.
//
// Errors longjmp out of libjpeg; anything that goes wrong simply declines the region path, and
// the caller decodes the whole image, which reports the error as the rest of flowfeed does.
// jpeglib.h needs size_t and FILE declared before it.
#include <cstddef>
#include <cstdio>

#include <jpeglib.h>

#include <algorithm>
#include <csetjmp>

#include "codec/codec.h"

namespace flowfeed {
namespace {

struct ErrorManager {
  jpeg_error_mgr pub;
  std::jmp_buf jump;
};

[[noreturn]] void OnError(j_common_ptr cinfo) {
  std::longjmp(reinterpret_cast<ErrorManager*>(cinfo->err)->jump, 1);
}

// Warnings (level -1: corrupt data that libjpeg would paper over) are errors here, as in
// codec.cc; trace messages (level >= 0) are ignored.
void OnMessage(j_common_ptr cinfo, int level) {
  if (level < 0) std::longjmp(reinterpret_cast<ErrorManager*>(cinfo->err)->jump, 1);
}

// A decompressor, created on first use (under setjmp, since creation can fail). One per call,
// not one per thread: libjpeg keeps Huffman and quantization tables from one image to the next,
// so a file lacking one would decode with the previous file's (see codec.cc's DecodeJpeg).
class Decompressor {
 public:
  ~Decompressor() {
    if (created_) jpeg_destroy_decompress(&cinfo_);
  }
  jpeg_decompress_struct* get() {
    if (!created_) {
      cinfo_.err = jpeg_std_error(&err_.pub);
      err_.pub.error_exit = OnError;
      err_.pub.emit_message = OnMessage;
      if (setjmp(err_.jump)) return nullptr;
      jpeg_create_decompress(&cinfo_);
      created_ = true;
    }
    return &cinfo_;
  }
  ErrorManager& errors() { return err_; }

 private:
  jpeg_decompress_struct cinfo_{};
  ErrorManager err_{};
  bool created_ = false;
};

int Channels(ColorMode mode) { return mode == ColorMode::kGray ? 1 : 3; }

J_COLOR_SPACE OutputSpace(ColorMode mode) {
  switch (mode) {
    case ColorMode::kGray: return JCS_GRAYSCALE;
    case ColorMode::kBgr: return JCS_EXT_BGR;
    case ColorMode::kRgb: break;
  }
  return JCS_EXT_RGB;
}

// The smallest of 1/8, 1/4, 1/2 that keeps `request` at least its minimum size; 8/8 otherwise.
// (libjpeg-turbo has SIMD IDCTs for these scales only; 3/8, 5/8 ... run slower than full size.)
int ChooseScale(const JpegRegionRequest& r) {
  for (int eighths : {1, 2, 4})
    if (int64_t(r.width) * eighths / 8 >= r.min_width &&
        int64_t(r.height) * eighths / 8 >= r.min_height)
      return eighths;
  return 8;
}

}  // namespace

Status DecodeJpegRegion(const uint8_t* data, size_t size, const DecodeOptions& options,
                        JpegRegionPlanner planner, void* context, Image* out,
                        JpegRegionResult* result, bool* done) {
  *done = false;
  // A file cut short loses its end-of-image marker; only the whole-image path notices the
  // missing rows, so such files go there.
  if (size < 4 || data[0] != 0xFF || data[1] != 0xD8 || data[size - 2] != 0xFF ||
      data[size - 1] != 0xD9)
    return Status::Ok();
  // The planner's rectangle is in upright coordinates; a rotated or mirrored file takes the
  // whole-image path, which turns it upright first.
  if (options.apply_orientation && JpegExifOrientation(data, size) != 1) return Status::Ok();
  Decompressor decompressor;
  jpeg_decompress_struct* cinfo = decompressor.get();
  if (!cinfo) return Status::Ok();
  if (setjmp(decompressor.errors().jump)) {  // *done is set only after the last libjpeg call
    jpeg_abort_decompress(cinfo);
    return Status::Ok();
  }
  jpeg_mem_src(cinfo, data, static_cast<unsigned long>(size));
  if (jpeg_read_header(cinfo, TRUE) != JPEG_HEADER_OK || cinfo->progressive_mode ||
      (cinfo->jpeg_color_space != JCS_YCbCr && cinfo->jpeg_color_space != JCS_GRAYSCALE &&
       cinfo->jpeg_color_space != JCS_RGB)) {
    jpeg_abort_decompress(cinfo);
    return Status::Ok();
  }
  const int full_w = int(cinfo->image_width), full_h = int(cinfo->image_height);
  JpegRegionRequest req;
  if ((options.max_pixels > 0 && int64_t(full_w) * full_h > options.max_pixels) ||
      !planner(context, full_h, full_w, &req) || req.width <= 0 || req.height <= 0 ||
      req.left < 0 || req.top < 0 || int64_t(req.left) + req.width > full_w ||
      int64_t(req.top) + req.height > full_h) {  // int64: no overflow for absurd requests
    jpeg_abort_decompress(cinfo);
    return Status::Ok();
  }
  const int eighths = options.dct_scaling ? ChooseScale(req) : 8;
  cinfo->scale_num = unsigned(eighths);
  cinfo->scale_denom = 8;
  cinfo->out_color_space = OutputSpace(options.color);
  cinfo->dct_method = JDCT_ISLOW;       // TurboJPEG's default: same pixels as the full path
  cinfo->do_fancy_upsampling = TRUE;
  jpeg_start_decompress(cinfo);
  const int out_w = int(cinfo->output_width), out_h = int(cinfo->output_height);
  // The rectangle in scaled pixels, widened to whole pixels.
  const int x0 = int(int64_t(req.left) * eighths / 8);
  const int y0 = int(int64_t(req.top) * eighths / 8);
  const int x1 = std::min(out_w, int((int64_t(req.left + req.width) * eighths + 7) / 8));
  const int y1 = std::min(out_h, int((int64_t(req.top + req.height) * eighths + 7) / 8));
  if (x1 <= x0 || y1 <= y0) {
    jpeg_abort_decompress(cinfo);
    return Status::Ok();
  }
  // One pixel more on every side: chroma upsampling at a crop's edge sees no neighbour and
  // would differ slightly from the whole-image decode there. And at least two iMCUs of columns
  // (an iMCU is max_h_samp_factor blocks of `eighths` pixels): libjpeg-turbo's h2v2 fancy
  // upsampling of a crop only one chroma sample wide gives other pixels than the whole-image
  // decode, inside the rectangle too (found by fuzz/fuzz_decode.cc: the first column of a 4:2:0
  // file).
  const int min_cols = 2 * cinfo->max_h_samp_factor * eighths;
  const int dx0 = std::max(0, x0 - 1), dx1 = std::min(out_w, std::max(x1 + 1, dx0 + min_cols));
  const int dy0 = std::max(0, y0 - 1), dy1 = std::min(out_h, y1 + 1);
  JDIMENSION xoff = JDIMENSION(dx0), cols = JDIMENSION(dx1 - dx0);
  jpeg_crop_scanline(cinfo, &xoff, &cols);  // widens to iMCU boundaries
  if (dy0 > 0 && jpeg_skip_scanlines(cinfo, JDIMENSION(dy0)) != JDIMENSION(dy0)) {
    jpeg_abort_decompress(cinfo);
    return Status::Ok();
  }
  const int channels = Channels(options.color);
  out->Reshape(dy1 - dy0, int(cols), channels);
  const size_t stride = size_t(cols) * channels;
  constexpr int kRowsPerCall = 16;
  JSAMPROW rows[kRowsPerCall];
  while (int(cinfo->output_scanline) < dy1) {
    const int first = int(cinfo->output_scanline) - dy0;
    const int n = std::min(kRowsPerCall, dy1 - int(cinfo->output_scanline));
    for (int i = 0; i < n; ++i) rows[i] = out->data() + size_t(first + i) * stride;
    if (jpeg_read_scanlines(cinfo, rows, JDIMENSION(n)) == 0) {  // suspended: data ran out
      jpeg_abort_decompress(cinfo);
      return Status::Ok();
    }
  }
  jpeg_abort_decompress(cinfo);  // the rows below are not needed
  result->x = x0 - int(xoff);
  result->y = y0 - dy0;
  result->width = x1 - x0;
  result->height = y1 - y0;
  result->scale_eighths = eighths;
  result->origin_x = int(xoff);
  result->origin_y = dy0;
  *done = true;
  return Status::Ok();
}

}  // namespace flowfeed
