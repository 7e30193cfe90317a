// fuzz/fuzz_decode.cc: the image decode path on arbitrary bytes.
//
// DecodeImage (TurboJPEG for JPEG, OpenCV for PNG and the rest) in rgb and gray modes, and
// DecodeJpegRegion with a crop chosen from a hash of the input. max_pixels is modest (2^22), so
// a valid header announcing a huge image is refused before anything is allocated, as it is in a
// run.
//
// Invariants checked besides "no crash, no sanitizer report":
//   - a decoded image has the mode's channels, uint8 pixels and at most max_pixels pixels;
//   - an error is Corrupt, Unsupported or ResourceExhausted with a message (Internal is a bug);
//   - a region decode reports a rectangle inside its output, and at full DCT scale its pixels
//     are exactly the whole-image decode's (what the fused decode promises).
#include <cstdint>
#include <cstring>
#include <limits>

#include "codec/codec.h"
#include "fuzz_util.h"

namespace flowfeed {
namespace {

constexpr int64_t kMaxPixels = int64_t(1) << 22;

int Channels(ColorMode mode) { return mode == ColorMode::kGray ? 1 : 3; }

void CheckDecoded(const Status& s, const Image& img, ColorMode mode) {
  if (!s.ok()) {
    FUZZ_CHECK(!s.message().empty(), "an error without a message");
    FUZZ_CHECK(s.code() == StatusCode::kCorrupt || s.code() == StatusCode::kUnsupported ||
                   s.code() == StatusCode::kResourceExhausted,
               "unexpected error: %s", s.ToString().c_str());
    return;
  }
  FUZZ_CHECK(!img.empty(), "ok but empty");
  FUZZ_CHECK(img.dtype() == DType::kUInt8 && img.channels() == Channels(mode), "shape %s",
             img.ShapeString().c_str());
  FUZZ_CHECK(int64_t(img.height()) * img.width() <= kMaxPixels, "%s is over max_pixels",
             img.ShapeString().c_str());
  FUZZ_CHECK(img.capacity_bytes() >= img.size_bytes(), "storage smaller than the image");
  // Read every pixel, so that the sanitizers see a buffer shorter than the shape says.
  uint32_t sum = 0;
  for (size_t i = 0; i < img.size_bytes(); ++i) sum += img.data()[i];
  volatile uint32_t sink = sum;
  (void)sink;
}

struct PlannerInput {
  uint64_t hash;
  bool asked = false;
  int height = 0, width = 0;
  JpegRegionRequest request;
};

// A crop derived from the input's hash: usually a valid rectangle with a minimum size that
// selects one of the DCT scales, sometimes the whole image, a decline, or a rectangle that is
// out of bounds (which the decoder must refuse).
bool Plan(void* context, int height, int width, JpegRegionRequest* r) {
  PlannerInput& in = *static_cast<PlannerInput*>(context);
  in.asked = true;
  in.height = height;
  in.width = width;
  uint64_t h = in.hash;
  auto next = [&h](uint64_t n) {  // in [0, n)
    h = h * 6364136223846793005ull + 1442695040888963407ull;
    return n == 0 ? 0 : (h >> 17) % n;
  };
  switch (next(16)) {
    case 0:
      return false;
    case 1:  // the whole image
      *r = JpegRegionRequest{0, 0, height, width, height, width};
      break;
    case 2: {  // out of bounds, or absurd
      const int big = std::numeric_limits<int>::max();
      const int choices[] = {-1, 0, 1, height, width, big, big - 1, -big};
      r->top = choices[next(8)];
      r->left = choices[next(8)];
      r->height = choices[next(8)];
      r->width = choices[next(8)];
      r->min_height = choices[next(8)];
      r->min_width = choices[next(8)];
      break;
    }
    default: {
      if (height <= 0 || width <= 0) return false;
      r->top = int(next(uint64_t(height)));
      r->left = int(next(uint64_t(width)));
      r->height = 1 + int(next(uint64_t(height - r->top)));
      r->width = 1 + int(next(uint64_t(width - r->left)));
      const int shift = int(next(5));  // 0: full scale ... 4: 1/8 allowed
      r->min_height = r->height >> shift;
      r->min_width = r->width >> shift;
      break;
    }
  }
  in.request = *r;
  return true;
}

void FuzzRegion(const uint8_t* data, size_t size, ColorMode mode, const Image* whole) {
  PlannerInput in;
  in.hash = fuzz::Hash(data, size);
  DecodeOptions options;
  options.color = mode;
  options.max_pixels = kMaxPixels;
  options.dct_scaling = true;  // every scale the region decoder has
  Image out;
  JpegRegionResult result;
  bool done = false;
  const Status s = DecodeJpegRegion(data, size, options, Plan, &in, &out, &result, &done);
  FUZZ_CHECK(s.ok(), "DecodeJpegRegion failed instead of declining: %s", s.ToString().c_str());
  FUZZ_LOG("region: %s for %d,%d %dx%d (min %dx%d) of %dx%d: at %d,%d %dx%d, origin %d,%d, "
           "scale %d/8",
           done ? out.ShapeString().c_str() : "declined", in.request.top, in.request.left,
           in.request.height, in.request.width, in.request.min_height, in.request.min_width,
           in.height, in.width, result.x, result.y, result.width, result.height, result.origin_x,
           result.origin_y, result.scale_eighths);
  if (!done) return;
  FUZZ_CHECK(in.asked, "done without asking the planner");
  const JpegRegionRequest& r = in.request;
  FUZZ_CHECK(!out.empty() && out.channels() == Channels(mode) && out.dtype() == DType::kUInt8,
             "region output %s", out.ShapeString().c_str());
  FUZZ_CHECK(result.scale_eighths == 1 || result.scale_eighths == 2 ||
                 result.scale_eighths == 4 || result.scale_eighths == 8,
             "scale %d", result.scale_eighths);
  FUZZ_CHECK(result.width > 0 && result.height > 0 && result.x >= 0 && result.y >= 0 &&
                 result.x + result.width <= out.width() && result.y + result.height <= out.height(),
             "rectangle %d,%d %dx%d outside the %s output", result.x, result.y, result.width,
             result.height, out.ShapeString().c_str());
  FUZZ_CHECK(r.top >= 0 && r.left >= 0 && r.height > 0 && r.width > 0 &&
                 int64_t(r.top) + r.height <= in.height && int64_t(r.left) + r.width <= in.width,
             "decoded a region for the bad request %d,%d %dx%d of %dx%d", r.top, r.left,
             r.height, r.width, in.height, in.width);
  uint32_t sum = 0;
  for (size_t i = 0; i < out.size_bytes(); ++i) sum += out.data()[i];
  volatile uint32_t sink = sum;
  (void)sink;
  if (result.scale_eighths != 8 || !whole || whole->empty()) return;
  // Full scale: exactly the whole-image decode's pixels.
  FUZZ_CHECK(whole->height() == in.height && whole->width() == in.width,
             "whole image %s, region decoder saw %dx%d", whole->ShapeString().c_str(), in.height,
             in.width);
  FUZZ_CHECK(result.width == r.width && result.height == r.height,
             "full-scale region %dx%d for a request of %dx%d", result.width, result.height,
             r.width, r.height);
  const int c = out.channels();
  for (int y = 0; y < result.height; ++y) {
    const uint8_t* got = out.row<uint8_t>(result.y + y) + size_t(result.x) * c;
    const uint8_t* want =
        whole->row<uint8_t>(result.origin_y + result.y + y) + size_t(result.origin_x + result.x) * c;
    FUZZ_CHECK(std::memcmp(got, want, size_t(result.width) * c) == 0,
               "region row %d differs from the whole-image decode", y);
  }
}

}  // namespace
}  // namespace flowfeed

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace flowfeed;
  DecodeOptions options;
  options.max_pixels = kMaxPixels;
  options.dct_scaling = true;  // every scale the region decoder has
  Image decoded[2];
  const ColorMode modes[2] = {ColorMode::kRgb, ColorMode::kGray};
  for (int m = 0; m < 2; ++m) {
    options.color = modes[m];
    const Status s = DecodeImage(data, size, options, "fuzz", &decoded[m]);
    FUZZ_LOG("%s: %s", m ? "gray" : "rgb",
             s.ok() ? decoded[m].ShapeString().c_str() : s.ToString().c_str());
    CheckDecoded(s, decoded[m], modes[m]);
    if (!s.ok()) decoded[m] = Image();
  }
  // A fresh TurboJPEG-decoded whole image is the reference only for JPEG bytes.
  const bool jpeg = size >= 3 && data[0] == 0xFF && data[1] == 0xD8 && data[2] == 0xFF;
  const int m = int(fuzz::Hash(data, size, 7) & 1);
  FuzzRegion(data, size, modes[m], jpeg ? &decoded[m] : nullptr);
  return 0;
}
